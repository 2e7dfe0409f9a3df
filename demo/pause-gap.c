/* pause-gap: the pause a program sees (the benchmark's subject for
 * copy-on-write checkpoints).
 *
 *   pause-gap MIB
 *
 * Fills MIB MiB of anonymous memory, starts a thread that reads
 * CLOCK_MONOTONIC in a tight loop and keeps the largest gap between two
 * readings, and prints "ready". Then, for each line read on stdin, prints
 * "gap US": the largest gap since the previous line, in microseconds, and
 * starts over. Ends at the end of stdin. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static _Atomic uint64_t max_gap;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *spin(void *arg) {
    (void)arg;
    uint64_t prev = now_ns();
    for (;;) {
        uint64_t t = now_ns();
        if (t - prev > atomic_load_explicit(&max_gap, memory_order_relaxed))
            atomic_store_explicit(&max_gap, t - prev, memory_order_relaxed);
        prev = t;
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t len = (argc > 1 ? strtoul(argv[1], NULL, 10) : 0) << 20;
    if (len) {
        uint64_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("pause-gap: mmap");
            return 1;
        }
        for (size_t i = 0; i < len / 8; i++) m[i] = i * 0x9e3779b97f4a7c15ULL;
    }
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        printf("gap %llu\n", (unsigned long long)(atomic_exchange(&max_gap, 0) / 1000));
        fflush(stdout);
    }
    return 0;
}
