/* reexec GEN STEPS DELAY_MS: prints "gen G step I" (flushed) STEPS times,
 * DELAY_MS apart; then, while GEN > 0, execs itself (argv[0], which must be
 * a path) as generation GEN-1 in the same process; generation 0 prints
 * "done" and exits 0. A program that re-execs itself, as servers reloading
 * their configuration do. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long gen = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    long steps = argc > 2 ? strtol(argv[2], NULL, 10) : 10;
    long delay = argc > 3 ? strtol(argv[3], NULL, 10) : 100;
    for (long i = 0; i < steps; i++) {
        printf("gen %ld step %ld\n", gen, i);
        fflush(stdout);
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    if (gen > 0) {
        char next[32];
        snprintf(next, sizeof next, "%ld", gen - 1);
        char *args[] = {argv[0], next, argv[2], argv[3], NULL};
        execv(argv[0], args);
        perror("reexec: execv");
        return 1;
    }
    printf("done\n");
    return 0;
}
