/* Threads blocked in system calls at checkpoint time: one in read() on a
 * pipe, one in pthread_cond_wait. After "ready" (both are asleep in the
 * kernel), main sleeps until a signal ends the sleep, then feeds both. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fds[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int value;
static volatile pid_t tids[2];

static void *reader(void *arg) {
    (void)arg;
    tids[0] = syscall(SYS_gettid);
    static char buf[64];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void *waiter(void *arg) {
    (void)arg;
    tids[1] = syscall(SYS_gettid);
    pthread_mutex_lock(&lock);
    while (value == 0)
        pthread_cond_wait(&cond, &lock);
    int v = value;
    pthread_mutex_unlock(&lock);
    return (void *)(long)v;
}

/* Whether thread tid is asleep in the kernel (State S). */
static int sleeping(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

int main(void) {
    pipe(fds);
    pthread_t r, w;
    pthread_create(&r, NULL, reader, NULL);
    pthread_create(&w, NULL, waiter, NULL);
    while (!tids[0] || !tids[1] || !sleeping(tids[0]) || !sleeping(tids[1]))
        usleep(1000);
    fprintf(stderr, "ready\n");
    sleep(2);
    write(fds[1], "through the pipe", 16);
    pthread_mutex_lock(&lock);
    value = 42;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    void *got_r, *got_w;
    pthread_join(r, &got_r);
    pthread_join(w, &got_w);
    printf("reader got '%s', waiter got %ld\n", (char *)got_r, (long)got_w);
    return 0;
}
