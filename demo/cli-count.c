/* cli-count STEPS DELAY_MS: a deterministic computation over heap memory,
 * one flushed line per step ("step I HASH"), DELAY_MS apart, then
 * "done HASH". Any corruption of its memory by a checkpoint or a restart
 * changes the hashes, so the output of a run, or of a restart, can be
 * compared with that of an uninterrupted run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORDS (1 << 16)

int main(int argc, char **argv) {
    long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 20;
    long delay = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
    uint64_t *a = malloc(WORDS * sizeof *a);
    if (!a)
        return 1;
    for (long j = 0; j < WORDS; j++)
        a[j] = (uint64_t)j * 0x9E3779B97F4A7C15ULL;
    uint64_t h = 0;
    for (long i = 0; i < steps; i++) {
        for (long j = 0; j < WORDS; j++) {
            a[j] = a[j] * 6364136223846793005ULL + (uint64_t)i + 1442695040888963407ULL;
            h ^= a[j] >> 17;
            h *= 0x100000001B3ULL;
        }
        printf("step %ld %016llx\n", i, (unsigned long long)h);
        fflush(stdout);
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    printf("done %016llx\n", (unsigned long long)h);
    return 0;
}
