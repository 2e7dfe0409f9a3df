/* cli-threads [N]: N threads (default 8, at most 64) that work until stdin ends, each keeping state
 * whose consistency it checks at the end: its own array (a[j] == j + rounds
 * * (k+1)), a thread-local round counter, and a counter shared under a
 * mutex (the sum of every thread's rounds). Half the threads sleep 1 ms per
 * round (in the kernel at checkpoint time), half only compute. Prints
 * "started" once every thread has done a round, and after stdin ends one
 * line per thread, "shared ok" and "done"; the output does not depend on how
 * long it ran. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
static int nthreads = 8;
#define WORDS 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long shared;
static volatile int stop;
static volatile int begun[MAX_THREADS];
static long rounds_of[MAX_THREADS];
static __thread long tls_rounds;

static void *work(void *arg) {
    long k = (long)arg;
    long *a = malloc(WORDS * sizeof *a);
    for (long j = 0; j < WORDS; j++)
        a[j] = j;
    long rounds = 0;
    while (!stop) {
        for (long j = 0; j < WORDS; j++)
            a[j] += k + 1;
        rounds++;
        tls_rounds++;
        pthread_mutex_lock(&lock);
        shared++;
        pthread_mutex_unlock(&lock);
        begun[k] = 1;
        if (k % 2 == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    long bad = tls_rounds != rounds;
    for (long j = 0; j < WORDS; j++)
        bad += a[j] != j + rounds * (k + 1);
    rounds_of[k] = rounds;
    free(a);
    return (void *)bad;
}

int main(int argc, char **argv) {
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (nthreads < 1 || nthreads > MAX_THREADS)
        return 2;
    pthread_t t[MAX_THREADS];
    for (long k = 0; k < nthreads; k++)
        pthread_create(&t[k], NULL, work, (void *)k);
    for (int k = 0; k < nthreads; k++)
        while (!begun[k])
            usleep(1000);
    printf("started\n");
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    stop = 1;
    long total = 0;
    for (int k = 0; k < nthreads; k++) {
        void *bad;
        pthread_join(t[k], &bad);
        total += rounds_of[k];
        printf("thread %d %s\n", k, bad ? "BAD" : "ok");
    }
    printf("shared %s\n", shared == total ? "ok" : "BAD");
    printf("done\n");
    return 0;
}
