/* The program's own signals under ckpt.
 *
 *   cli-signals own N     handles SIGUSR2 itself (run it with ckpt -s USR1):
 *                         prints "ready", then "usr2 K" after the K-th
 *                         SIGUSR2, and "done" after the N-th.
 *   cli-signals steal N   tries to take SIGUSR2 (ckpt's default checkpoint
 *                         signal) with signal, sigaction and sigset, checks
 *                         that it is told its own handler back, blocks every
 *                         signal in main and in a second thread, then prints
 *                         "step I" every 50 ms, N times, and "done". If its
 *                         handler is ever called it says so.
 *
 * Every line is flushed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t count;

static void on_usr2(int sig) {
    (void)sig;
    count++;
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int own(int n) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    int shown = 0;
    while (shown < n) {
        nap(10);
        while (shown < count) {
            printf("usr2 %d\n", ++shown);
            fflush(stdout);
        }
    }
    printf("done\n");
    return 0;
}

static void *blocker(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;)
        nap(20);
    return NULL;
}

static int steal(int n) {
    void (*old)(int) = signal(SIGUSR2, on_usr2);
    printf("signal: old handler is the default: %s\n", old == SIG_DFL ? "yes" : "no");
    struct sigaction sa, prev;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, &prev);
    printf("sigaction: old handler is mine: %s\n", prev.sa_handler == on_usr2 ? "yes" : "no");
    sigaction(SIGUSR2, NULL, &prev);
    printf("sigaction: current handler is mine: %s, flags kept: %s\n", prev.sa_handler == on_usr2 ? "yes" : "no",
           (prev.sa_flags & SA_RESTART) ? "yes" : "no");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    old = sigset(SIGUSR2, on_usr2);
#pragma GCC diagnostic pop
    printf("sigset: old handler is mine: %s\n", old == on_usr2 ? "yes" : "no");
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    pthread_t t;
    pthread_create(&t, NULL, blocker, NULL);
    for (int i = 0; i < n; i++) {
        printf("step %d\n", i);
        fflush(stdout);
        nap(50);
        if (count) {
            printf("HANDLER CALLED %d\n", (int)count);
            fflush(stdout);
            count = 0;
        }
    }
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 2 ? atoi(argv[2]) : 4;
    if (argc > 1 && strcmp(argv[1], "own") == 0)
        return own(n);
    if (argc > 1 && strcmp(argv[1], "steal") == 0)
        return steal(n);
    fprintf(stderr, "usage: cli-signals own|steal N\n");
    return 2;
}
