/* compressible: memory of three kinds, for compressed images.
 *
 *   compressible TEXT_MIB ZERO_MIB RANDOM_MIB [tick]
 *
 * Fills TEXT_MIB MiB with log lines (a cycle of a few lines, as a
 * program's log buffer would hold: compresses very well), touches ZERO_MIB
 * MiB with zeros (stored, all zero), and fills RANDOM_MIB MiB with
 * pseudo-random words (does not compress). Prints "compressible: ready"
 * (flushed), then waits for one line on stdin (checkpoint it while it
 * waits; restart it with the line on the restart's stdin). It then checks
 * every byte and prints "compressible: OK digest D", or
 * "compressible: BAD ..." and exits 2 at the first byte that differs.
 * With `tick` (for the benchmark) it prints "tick N" (flushed) every
 * millisecond instead, forever: the time from starting a restart to its
 * first line is the restart time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static const char *const LINES[] = {
    "2026-11-30T08:15:02.117Z INFO  worker-3 GET /api/v1/items?page=2 200 4ms bytes=1834\n",
    "2026-11-30T08:15:02.118Z DEBUG cache hit key=user:1029:profile ttl=300\n",
    "2026-11-30T08:15:02.121Z INFO  worker-1 POST /api/v1/orders 201 17ms bytes=211\n",
    "2026-11-30T08:15:02.125Z WARN  pool db-main: 7 of 8 connections busy\n",
    "2026-11-30T08:15:02.130Z INFO  worker-2 GET /health 200 0ms bytes=2\n",
};

static uint64_t word(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static char *block(size_t bytes) {
    if (bytes == 0) return NULL;
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("compressible: BAD mmap of %zu bytes failed\n", bytes);
        exit(2);
    }
    return p;
}

/* The text: the lines one after the other, cycled, cut at `bytes`. */
static void text(char *p, size_t bytes, int check) {
    size_t at = 0, line = 0;
    while (at < bytes) {
        const char *l = LINES[line++ % (sizeof LINES / sizeof LINES[0])];
        size_t n = strlen(l);
        if (n > bytes - at) n = bytes - at;
        if (check && memcmp(p + at, l, n) != 0) {
            printf("compressible: BAD text differs near offset %zu\n", at);
            exit(2);
        }
        if (!check) memcpy(p + at, l, n);
        at += n;
    }
}

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "tick") == 0)) {
        fprintf(stderr, "usage: compressible TEXT_MIB ZERO_MIB RANDOM_MIB [tick]\n");
        return 2;
    }
    size_t text_b = strtoul(argv[1], NULL, 10) << 20;
    size_t zero_b = strtoul(argv[2], NULL, 10) << 20;
    size_t rand_b = strtoul(argv[3], NULL, 10) << 20;
    char *t = block(text_b), *z = block(zero_b);
    uint64_t *r = (uint64_t *)block(rand_b);
    text(t, text_b, 0);
    for (size_t i = 0; i < zero_b; i += 4096) ((volatile char *)z)[i] = 0;
    for (size_t i = 0; i < rand_b / 8; i++) r[i] = word(i);
    printf("compressible: ready\n");
    fflush(stdout);
    for (unsigned long n = 0; argc == 5; n++) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
        printf("tick %lu\n", n);
        fflush(stdout);
    }

    char line[256];
    if (!fgets(line, sizeof line, stdin)) {
        printf("compressible: BAD no line on stdin\n");
        return 2;
    }
    text(t, text_b, 1);
    for (size_t i = 0; i < zero_b; i++)
        if (z[i] != 0) {
            printf("compressible: BAD zero block differs at offset %zu\n", i);
            return 2;
        }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < rand_b / 8; i++) {
        if (r[i] != word(i)) {
            printf("compressible: BAD random word %zu differs\n", i);
            return 2;
        }
        h = (h ^ r[i]) * 0x100000001b3ULL;
    }
    printf("compressible: OK digest %016llx\n", (unsigned long long)h);
    return 0;
}
