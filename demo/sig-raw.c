/* A program that installs its SIGUSR2 handler with a raw rt_sigaction
 * system call, behind libc's sigaction.
 *
 *   sig-raw syscall   through libc's syscall(SYS_rt_sigaction, ...): checks
 *                     that the old action is the default and that reading it
 *                     back gives its own handler; raises SIGUSR2 once, prints
 *                     "ready", waits for one byte on stdin, raises SIGUSR2
 *                     again, prints "done".
 *   sig-raw asm       with the syscall instruction itself; then calls
 *                     sigaction for SIGINT (leaving it at its default),
 *                     prints "ready", waits for one byte, prints "done".
 *
 * The handler counts; "handler calls: N" follows each raise. Every line is
 * flushed. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

static volatile sig_atomic_t calls;

static void on_usr2(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    calls++;
}

static long raw_rt_sigaction(int sig, const struct kaction *act, struct kaction *old)
{
    long r;
    register long r10 __asm__("r10") = 8;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_rt_sigaction), "D"((long)sig), "S"(act), "d"(old), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static void wait_byte(void)
{
    printf("ready\n");
    fflush(stdout);
    char c;
    if (read(0, &c, 1) != 1) {
        fprintf(stderr, "sig-raw: stdin ended\n");
        _exit(4);
    }
}

int main(int argc, char **argv)
{
    int use_asm = argc > 1 && !strcmp(argv[1], "asm");
    /* glibc's signal return trampoline, as it installs it for SIGUSR1. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGUSR1, &sa, NULL);
    struct kaction k, old;
    syscall(SYS_rt_sigaction, SIGUSR1, NULL, &k, 8);
    k.handler = (void *)on_usr2;
    k.flags |= SA_SIGINFO | SA_RESTART;
    k.mask = 0;
    if (use_asm) {
        if (raw_rt_sigaction(SIGUSR2, &k, NULL) != 0)
            return 1;
        sigaction(SIGINT, &sa, NULL);
        wait_byte();
        printf("done\n");
        return 0;
    }
    if (syscall(SYS_rt_sigaction, SIGUSR2, &k, &old, 8) != 0) {
        perror("rt_sigaction");
        return 1;
    }
    struct kaction now;
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &now, 8);
    printf("old action default: %s; reads back its own handler: %s\n", old.handler == SIG_DFL ? "yes" : "no",
           now.handler == (void *)on_usr2 ? "yes" : "no");
    raise(SIGUSR2);
    printf("handler calls: %d\n", (int)calls);
    wait_byte();
    raise(SIGUSR2);
    printf("handler calls: %d\n", (int)calls);
    printf("done\n");
    return 0;
}
