/* mallocs: heavy malloc/free on both of glibc's paths, before and after a
 * checkpoint, plus direct sbrk calls.
 *
 *   mallocs [ROUNDS [OPS_PER_ROUND]]
 *
 * Small blocks (16 B .. 4 KiB) come from the brk heap; large ones
 * (128 KiB .. 1 MiB, above the fixed M_MMAP_THRESHOLD) are mmapped.
 * M_TRIM_THRESHOLD is low, so frees also shrink the heap with brk. Every
 * block is filled with a pattern that depends on its slot and generation,
 * and checked before it is freed; every round also checks every live block
 * and a region obtained directly with sbrk, and that sbrk(0) agrees with
 * the kernel's brk. A round prints one flushed line with a digest of what
 * happened (sizes, counts; never addresses, so any run of the same
 * arguments prints the same lines). A failed check prints "mallocs: BAD"
 * and exits 2.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 600
#define SBRK_CHUNK (256 * 1024)
#define MAX_SBRK 8

struct slot {
    unsigned char *p;
    size_t size;
    uint64_t gen;
};

static struct slot slots[SLOTS];
static uint64_t rng = 0x243f6a8885a308d3ULL;
static uint64_t digest = 0xcbf29ce484222325ULL;
static unsigned char *sbrk_area[MAX_SBRK];
static int n_sbrk;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void mix(uint64_t v) {
    digest ^= v;
    digest *= 0x100000001b3ULL;
}

static unsigned char pattern(size_t slot, uint64_t gen, size_t i) {
    return (unsigned char)(slot * 131 + gen * 7 + i * 31 + (i >> 12));
}

static void bad(const char *what, long a, long b) {
    printf("mallocs: BAD %s (%ld, %ld)\n", what, a, b);
    fflush(stdout);
    exit(2);
}

static void fill(size_t s) {
    struct slot *b = &slots[s];
    /* Every byte of small blocks; every 64th byte and the last of large ones
     * (so the pages are all touched without spending the time of a memset). */
    size_t step = b->size > 65536 ? 64 : 1;
    for (size_t i = 0; i < b->size; i += step) b->p[i] = pattern(s, b->gen, i);
    b->p[b->size - 1] = pattern(s, b->gen, b->size - 1);
}

static void check(size_t s) {
    struct slot *b = &slots[s];
    size_t step = b->size > 65536 ? 64 : 1;
    for (size_t i = 0; i < b->size; i += step)
        if (b->p[i] != pattern(s, b->gen, i)) bad("block contents", (long)s, (long)i);
    if (b->p[b->size - 1] != pattern(s, b->gen, b->size - 1)) bad("block end", (long)s, 0);
}

static void check_sbrk(void) {
    for (int j = 0; j < n_sbrk; j++)
        for (size_t i = 0; i < SBRK_CHUNK; i += 512)
            if (sbrk_area[j][i] != (unsigned char)(j * 17 + i / 512)) bad("sbrk area", j, (long)i);
    /* glibc's idea of the break must be the kernel's */
    void *mine = sbrk(0);
    void *kernel = (void *)syscall(SYS_brk, 0);
    if (mine != kernel) bad("sbrk(0) differs from the kernel's brk", (long)mine, (long)kernel);
}

static void grow_sbrk(void) {
    if (n_sbrk == MAX_SBRK) return;
    unsigned char *p = sbrk(SBRK_CHUNK);
    if (p == (void *)-1) bad("sbrk failed", n_sbrk, 0);
    for (size_t i = 0; i < SBRK_CHUNK; i += 512) p[i] = (unsigned char)(n_sbrk * 17 + i / 512);
    sbrk_area[n_sbrk++] = p;
    mix(0x5b4c);
}

static void op(void) {
    size_t s = next() % SLOTS;
    struct slot *b = &slots[s];
    if (b->p) {
        check(s);
        mix(b->size);
        free(b->p);
        b->p = NULL;
        return;
    }
    uint64_t r = next();
    if (r % 8 == 0)
        b->size = 128 * 1024 + (r >> 8) % (896 * 1024); /* mmap path */
    else
        b->size = 16 + (r >> 8) % 4080; /* brk heap */
    b->gen++;
    b->p = (r >> 40) % 4 == 0 ? calloc(1, b->size) : malloc(b->size);
    if (!b->p) bad("allocation failed", (long)s, (long)b->size);
    if ((r >> 40) % 4 == 0)
        for (size_t i = 0; i < b->size; i += 4096)
            if (b->p[i]) bad("calloc memory not zero", (long)s, (long)i);
    fill(s);
    mix(b->size ^ (b->gen << 32));
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 30;
    long ops = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
    printf("mallocs: start\n");
    fflush(stdout);
    for (long round = 1; round <= rounds; round++) {
        for (long i = 0; i < ops; i++) op();
        if (round % 5 == 1) grow_sbrk();
        if (round % 7 == 0) malloc_trim(0);
        for (size_t s = 0; s < SLOTS; s++)
            if (slots[s].p) check(s);
        check_sbrk();
        long live = 0, big = 0;
        for (size_t s = 0; s < SLOTS; s++)
            if (slots[s].p) {
                live++;
                big += slots[s].size >= 128 * 1024;
            }
        printf("round %ld live %ld large %ld sbrk %d digest %016llx\n", round, live, big, n_sbrk,
               (unsigned long long)digest);
        fflush(stdout);
        struct timespec d = {0, 30 * 1000000};
        nanosleep(&d, NULL);
    }
    for (size_t s = 0; s < SLOTS; s++)
        if (slots[s].p) {
            check(s);
            free(slots[s].p);
        }
    malloc_trim(0);
    check_sbrk();
    printf("mallocs: OK digest %016llx\n", (unsigned long long)digest);
    return 0;
}
