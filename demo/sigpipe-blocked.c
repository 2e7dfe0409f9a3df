/* sigpipe-blocked MODE STEPS: blocks SIGPIPE; with MODE "raise" makes one
 * pending (raise), with "clean" not. Prints "step I" (flushed) STEPS times,
 * 30 ms apart, then "SIGPIPE pending: yes" or "no". A checkpoint in between
 * must leave that answer as the program made it: ckpt's own lines on a
 * broken stderr neither add a SIGPIPE nor take the program's away. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    int pending = argc > 1 && strcmp(argv[1], "raise") == 0;
    long steps = argc > 2 ? strtol(argv[2], NULL, 10) : 20;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (pending)
        raise(SIGPIPE);
    for (long i = 0; i < steps; i++) {
        printf("step %ld\n", i);
        fflush(stdout);
        struct timespec ts = {0, 30 * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    sigset_t now;
    sigpending(&now);
    printf("SIGPIPE pending: %s\n", sigismember(&now, SIGPIPE) ? "yes" : "no");
    return 0;
}
