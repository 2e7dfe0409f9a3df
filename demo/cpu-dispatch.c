/* cpu-dispatch: memory and string work of the kind glibc dispatches on the
 * CPU (memcpy, memmove, memset, memcmp, memchr, strlen, strchr: SSE2, AVX2,
 * EVEX and AVX-512 variants), with results that are the same on every CPU.
 *
 *   cpu-dispatch [STEPS [ROUNDS]]
 *
 * After each step it prints "step I/STEPS DIGEST" on stdout (flushed), and
 * at the end "done DIGEST". Under `ckpt --portable` glibc picks only the
 * variants of that level, so the program's images hold no wider register
 * state; without it, on an AVX-512 machine, they hold AVX-512 state that
 * glibc's EVEX functions leave in zmm16-31 and the opmask registers.
 * `make bench` times it with and without --portable, and the cross-CPU
 * fixture (tests/fixtures/) is this program stopped mid-run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (1 << 18)

static uint64_t fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int sign(int v) { return (v > 0) - (v < 0); }

int main(int argc, char **argv) {
    long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 20;
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 40000;
    unsigned char *a = malloc(SIZE), *b = malloc(SIZE);
    if (!a || !b)
        return 1;
    uint64_t x = 0x9e3779b97f4a7c15ULL, h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < SIZE; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        a[i] = (unsigned char)(x >> 56) | 1; /* no NUL yet */
    }
    memcpy(b, a, SIZE);
    for (long s = 1; s <= steps; s++) {
        for (long r = 0; r < rounds; r++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t off = (x >> 20) % (SIZE / 2), len = (x >> 40) % 4096 + 1;
            memcpy(b + off, a + off + 7, len);
            memmove(b + off + 3, b + off, len);
            memset(a + (x >> 8) % (SIZE - 64), (int)(x & 0x7f) | 1, 33);
            h = fnv(h, (uint64_t)sign(memcmp(a + off, b + off, len)));
            unsigned char *p = memchr(b + off, (int)(x >> 3) & 0xff, len);
            h = fnv(h, p ? (uint64_t)(p - b) : 0);
            b[off + len] = 0;
            h = fnv(h, strlen((char *)b + off));
            char *q = strchr((char *)b + off, (int)(x >> 11) & 0x7f | 1);
            h = fnv(h, q ? (uint64_t)(q - (char *)b) : 0);
            b[off + len] = 1;
        }
        printf("step %ld/%ld %016llx\n", s, steps, (unsigned long long)h);
        fflush(stdout);
    }
    printf("done %016llx\n", (unsigned long long)h);
    return 0;
}
