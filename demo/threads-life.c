/* Thread lifetimes across a checkpoint: a worker runs through it and is
 * joined after the restart; pthread_kill and raise reach the right threads
 * (glibc's cached tids are the new ones); new threads are created and exit
 * after the restart. Prints "ready" on stderr when the checkpoint may come,
 * then waits for it in a sleep (any signal ends the sleep). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t hits_worker, hits_main;
static volatile int stop;
static pthread_t main_thread;

static void on_usr1(int sig) {
    (void)sig;
    if (pthread_equal(pthread_self(), main_thread))
        hits_main++;
    else
        hits_worker++;
}

static void *worker(void *arg) {
    long n = 0;
    while (!stop) {
        n++;
        usleep(1000);
    }
    return (void *)(long)(arg != NULL);
}

static void *short_lived(void *arg) {
    return (void *)((long)arg * 2);
}

int main(void) {
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t w;
    pthread_create(&w, NULL, worker, (void *)1);
    fprintf(stderr, "ready\n");
    sleep(3);

    long created = 0;
    for (long i = 0; i < 20; i++) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, short_lived, (void *)i);
        pthread_join(t, &r);
        created += (long)r;
    }
    pthread_kill(w, SIGUSR1);
    raise(SIGUSR1);
    while (hits_worker == 0 || hits_main == 0)
        usleep(1000);
    stop = 1;
    void *r;
    int err = pthread_join(w, &r);
    printf("join %s %ld, created %ld, worker hits %d, main hits %d\n", strerror(err), (long)r, created,
           (int)hits_worker, (int)hits_main);
    return 0;
}
