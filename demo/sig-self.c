/* A program that sends itself its own SIGUSR2, under its own handler.
 *
 *   sig-self
 *
 * Installs an SA_SIGINFO handler for SIGUSR2 (sa_mask: SIGUSR1), then, in
 * each of two rounds, sends itself SIGUSR2 five ways: raise, kill(getpid),
 * sigqueue, tgkill to its own thread, and pthread_kill from a second
 * thread to the main one. After each it prints what its handler saw:
 *
 *   round R how: si_code=C from_self=yes usr1_blocked=yes usr2_blocked=yes count=N
 *
 * Between the rounds it prints "ready" and blocks in read(0) for one byte.
 * Then "done", exit 0. Every line is flushed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t count, code, from_self, usr1_blocked, usr2_blocked;

static void on_usr2(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    code = info->si_code;
    from_self = info->si_pid == getpid();
    usr1_blocked = sigismember(&now, SIGUSR1);
    usr2_blocked = sigismember(&now, SIGUSR2);
    count++;
}

static pthread_t main_thread;

static void *poke_main(void *arg)
{
    (void)arg;
    pthread_kill(main_thread, SIGUSR2);
    return NULL;
}

static void report(int round, const char *how)
{
    /* Every way above delivers before it returns (to this thread), except
     * the second thread's: joined first. */
    printf("round %d %s: si_code=%d from_self=%s usr1_blocked=%s usr2_blocked=%s count=%d\n", round, how, (int)code,
           from_self ? "yes" : "no", usr1_blocked ? "yes" : "no", usr2_blocked ? "yes" : "no", (int)count);
    fflush(stdout);
}

static void round_of(int r)
{
    raise(SIGUSR2);
    report(r, "raise");
    kill(getpid(), SIGUSR2);
    report(r, "kill");
    union sigval v = {.sival_int = 7};
    sigqueue(getpid(), SIGUSR2, v);
    report(r, "sigqueue");
    syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2);
    report(r, "tgkill");
    pthread_t t;
    pthread_create(&t, NULL, poke_main, NULL);
    pthread_join(t, NULL);
    report(r, "pthread_kill");
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    if (sigaction(SIGUSR2, &sa, NULL) != 0) {
        perror("sigaction");
        return 1;
    }
    main_thread = pthread_self();
    round_of(1);
    printf("ready\n");
    fflush(stdout);
    char c;
    if (read(0, &c, 1) != 1) {
        fprintf(stderr, "sig-self: stdin ended\n");
        return 4;
    }
    round_of(2);
    printf("done\n");
    return 0;
}
