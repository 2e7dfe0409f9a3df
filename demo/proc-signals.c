/* proc-signals: signal state that a restart must keep — handlers, the
 * blocked mask, and signals pending for the process and for one thread.
 *
 *   proc-signals
 *
 * Installs handlers for SIGUSR1, SIGTERM, SIGHUP and SIGWINCH, blocks
 * SIGTERM, SIGHUP and SIGWINCH, then makes two signals pending:
 * SIGHUP for the whole process (kill) and SIGWINCH for the main thread
 * alone (raise, i.e. tgkill). Prints one "state" line, then "ready", then
 * waits in pause(). Every time pause() returns it prints a "state" line
 *
 *   state WHEN usr1=N blocked=TERM,HUP,WINCH shdpnd=HUP sigpnd=WINCH
 *
 * (blocked: from sigprocmask; shdpnd and sigpnd: the process-wide and the
 * thread's own pending sets of /proc/self/status and /proc/thread-self/
 * status, limited to the four signals). Every handler prints one line
 * ("handler SIGUSR1 1", ...). On the second SIGUSR1 it unblocks everything,
 * so that the pending signals are delivered (their handlers print), then
 * prints "done" and exits 0. Every line is flushed.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;

static void say(const char *s) { (void)!write(1, s, strlen(s)); }

static void on_signal(int sig) {
    char line[64] = "handler SIG";
    strcat(line, sigabbrev_np(sig));
    if (sig == SIGUSR1) {
        usr1++;
        char n[] = {' ', (char)('0' + usr1 % 10), 0};
        strcat(line, n);
    }
    strcat(line, "\n");
    say(line);
}

static const int sigs[] = {SIGTERM, SIGHUP, SIGWINCH};

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

static void list(char *out, size_t n, int (*has)(int, void *), void *arg) {
    out[0] = 0;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (has(sigs[i], arg)) {
            if (out[0]) strncat(out, ",", n - strlen(out) - 1);
            strncat(out, sigabbrev_np(sigs[i]), n - strlen(out) - 1);
        }
    if (!out[0]) strncat(out, "-", n - 1);
}

static int in_set(int sig, void *set) { return sigismember((sigset_t *)set, sig) == 1; }
static int in_bits(int sig, void *bits) { return (*(unsigned long long *)bits >> (sig - 1)) & 1; }

static void state(const char *when) {
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    unsigned long long shd = status_field("/proc/self/status", "ShdPnd:");
    unsigned long long own = status_field("/proc/thread-self/status", "SigPnd:");
    char b[64], s[64], t[64];
    list(b, sizeof b, in_set, &blocked);
    list(s, sizeof s, in_bits, &shd);
    list(t, sizeof t, in_bits, &own);
    printf("state %s usr1=%d blocked=%s shdpnd=%s sigpnd=%s\n", when, (int)usr1, b, s, t);
    fflush(stdout);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);

    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGHUP);
    raise(SIGWINCH);

    state("start");
    printf("ready\n");
    fflush(stdout);
    while (usr1 < 2) {
        pause();
        state("woke");
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    state("unblocked");
    printf("done\n");
    return 0;
}
