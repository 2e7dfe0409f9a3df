/* proc-signals: signal state that a restart must keep — handlers, blocked
 * masks, and signals pending for the process and for single threads.
 *
 *   proc-signals
 *
 * Installs handlers for SIGUSR1, SIGTERM, SIGHUP, SIGWINCH and SIGPWR.
 * The main thread blocks SIGTERM, SIGHUP, SIGWINCH (and SIGUSR1, which it
 * takes only in sigsuspend), then makes two signals pending: SIGHUP for the
 * whole process (kill) and SIGWINCH for itself alone (raise: tgkill). A
 * worker thread blocks the same signals and SIGPWR, raises SIGPWR for
 * itself alone, and waits on a semaphore.
 *
 * Prints one "state" line, then "ready", then waits in sigsuspend() with
 * only SIGUSR1 unblocked. Every time sigsuspend() returns it prints
 *
 *   state WHEN usr1=N blocked=TERM,HUP,WINCH shdpnd=HUP sigpnd=WINCH worker=PWR
 *
 * (blocked: sigprocmask, limited to TERM, HUP, WINCH; shdpnd: the
 * process-wide pending set, sigpnd: the main thread's own, worker: the
 * worker's own, from /proc/.../status, limited to the five signals; "-":
 * none). Every handler prints one line ("handler SIGUSR1 1", "handler
 * SIGHUP", ...). On the second SIGUSR1 the worker is released (it unblocks
 * SIGPWR and ends) and the main thread unblocks everything, so that every
 * pending signal is delivered; then "done", exit 0. Every line is flushed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;
static sem_t started, release;

static void on_signal(int sig) {
    char line[64] = "handler SIG";
    strcat(line, sigabbrev_np(sig));
    if (sig == SIGUSR1) {
        usr1++;
        char n[] = {' ', (char)('0' + usr1 % 10), 0};
        strcat(line, n);
    }
    strcat(line, "\n");
    (void)!write(1, line, strlen(line));
}

static const int sigs[] = {SIGTERM, SIGHUP, SIGWINCH, SIGUSR1, SIGPWR};
#define NSIGS (sizeof sigs / sizeof sigs[0])

/* The bits of the hex field KEY of a /proc status file. */
static unsigned long long status_field(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    char line[4096];
    unsigned long long v = ~0ULL;
    if (!f) return v;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) v = strtoull(line + strlen(key), NULL, 16);
    fclose(f);
    return v;
}

/* The names of the signals of `sigs` (the first N) in bit set `bits`. */
static void list(char *out, size_t size, unsigned long long bits, size_t n) {
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        if ((bits >> (sigs[i] - 1)) & 1) {
            if (out[0]) strncat(out, ",", size - strlen(out) - 1);
            strncat(out, sigabbrev_np(sigs[i]), size - strlen(out) - 1);
        }
    if (!out[0]) strncat(out, "-", size - 1);
}

static void state(const char *when) {
    sigset_t blocked;
    pthread_sigmask(SIG_BLOCK, NULL, &blocked);
    unsigned long long mask = 0;
    for (size_t i = 0; i < NSIGS; i++)
        if (sigismember(&blocked, sigs[i]) == 1) mask |= 1ULL << (sigs[i] - 1);
    /* The worker's tid: the other task (a restart gives threads new tids). */
    char path[300] = "";
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.' && atoi(e->d_name) != gettid())
            snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    if (d) closedir(d);
    unsigned long long shd = status_field("/proc/self/status", "ShdPnd:");
    unsigned long long own = status_field("/proc/thread-self/status", "SigPnd:");
    unsigned long long worker = path[0] ? status_field(path, "SigPnd:") : 0;
    char b[64], s[64], t[64], w[64];
    list(b, sizeof b, mask, 3);
    list(s, sizeof s, shd, NSIGS);
    list(t, sizeof t, own, NSIGS);
    list(w, sizeof w, worker, NSIGS);
    printf("state %s usr1=%d blocked=%s shdpnd=%s sigpnd=%s worker=%s\n", when, (int)usr1, b, s, t, w);
    fflush(stdout);
}

static void *worker(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPWR);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_kill(pthread_self(), SIGPWR);
    sem_post(&started);
    while (sem_wait(&release) != 0) {
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIGS; i++) sigaction(sigs[i], &sa, NULL);

    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < 4; i++) sigaddset(&set, sigs[i]); /* not SIGPWR */
    sigprocmask(SIG_BLOCK, &set, NULL);
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (sem_wait(&started) != 0) {
    }
    kill(getpid(), SIGHUP);
    raise(SIGWINCH);

    sigset_t wait_mask;
    pthread_sigmask(SIG_BLOCK, NULL, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);
    state("start");
    printf("ready\n");
    fflush(stdout);
    while (usr1 < 2) {
        sigsuspend(&wait_mask);
        state("woke");
    }
    sem_post(&release);
    pthread_join(t, NULL);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    state("unblocked");
    printf("done\n");
    return 0;
}
