/* N threads take turns under one mutex and condition variable, each adding
 * to a shared total and to its own thread-local sum; main joins them all
 * and prints the totals. Progress goes to stderr (flushed), results to
 * stdout. Usage: threads-count NTHREADS ROUNDS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long total, rounds;
static int turn, nthreads;
static __thread long mine;

static void *worker(void *arg) {
    long id = (long)arg;
    for (long r = 0; r < rounds; r++) {
        pthread_mutex_lock(&lock);
        while (turn != id)
            pthread_cond_wait(&turn_changed, &lock);
        total += id + 1;
        mine += id + 1;
        turn = (turn + 1) % nthreads;
        if (id == 0 && r % 20 == 0)
            fprintf(stderr, "round %ld\n", r);
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
        usleep(1000);
    }
    return (void *)mine;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 4;
    rounds = argc > 2 ? atol(argv[2]) : 200;
    pthread_t *t = calloc(nthreads, sizeof *t);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("thread %d: %ld\n", i, (long)r);
        sum += (long)r;
    }
    printf("total %ld, sum of thread-local %ld\n", total, sum);
    return total == sum ? 0 : 3;
}
