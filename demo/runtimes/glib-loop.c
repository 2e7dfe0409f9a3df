/* glib-loop N: a GLib main loop (the event loop of GTK and GNOME programs:
 * its own eventfd wakeups and poll) with a timeout source every 30 ms, a
 * socketpair watched with a GIOChannel, and a GThreadPool of 2 workers.
 * Each tick hands a job to the pool; the worker computes and writes a line
 * into the socketpair (in job order, whichever worker finishes first);
 * the loop's watch reads it and prints it. After N
 * lines the loop quits. Built by the events test (it needs libglib2.0-dev). */
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sv[2];
static int n, done_lines;
static GMainLoop *loop;
static GThreadPool *pool;
static GMutex write_lock;
static GCond turn;
static long next_job = 1;

static void work(gpointer data, gpointer user) {
    (void)user;
    long i = GPOINTER_TO_INT(data);
    unsigned long sum = 0;
    for (long k = 0; k < 200000; k++)
        sum += (unsigned long)(k % (i + 3));
    char line[64];
    int len = snprintf(line, sizeof line, "job %ld: %lu\n", i, sum);
    g_mutex_lock(&write_lock);
    while (next_job != i)
        g_cond_wait(&turn, &write_lock);
    if (write(sv[1], line, len) != len)
        perror("write");
    next_job++;
    g_cond_broadcast(&turn);
    g_mutex_unlock(&write_lock);
}

static gboolean tick(gpointer user) {
    static int i;
    (void)user;
    g_thread_pool_push(pool, GINT_TO_POINTER(++i), NULL);
    return i < n ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean readable(GIOChannel *ch, GIOCondition cond, gpointer user) {
    (void)cond;
    (void)user;
    gchar *line = NULL;
    gsize len = 0;
    while (g_io_channel_read_line(ch, &line, &len, NULL, NULL) == G_IO_STATUS_NORMAL) {
        printf("%s", line);
        fflush(stdout);
        g_free(line);
        if (++done_lines == n) {
            g_main_loop_quit(loop);
            return G_SOURCE_REMOVE;
        }
    }
    return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv) {
    n = argc > 1 ? atoi(argv[1]) : 40;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    loop = g_main_loop_new(NULL, FALSE);
    pool = g_thread_pool_new(work, NULL, 2, TRUE, NULL);
    GIOChannel *ch = g_io_channel_unix_new(sv[0]);
    g_io_channel_set_flags(ch, G_IO_FLAG_NONBLOCK, NULL);
    g_io_add_watch(ch, G_IO_IN, readable, NULL);
    g_timeout_add(30, tick, NULL);
    g_main_loop_run(loop);
    g_thread_pool_free(pool, FALSE, TRUE);
    printf("done\n");
    return 0;
}
