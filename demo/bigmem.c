/* bigmem: fills a large block of memory with a pattern, waits, then
 * checks every word of it.
 *
 *   bigmem [MIB]            (default 256)
 *
 * Prints "bigmem: ready N MiB" (flushed) once the memory is filled, then
 * waits for one line on stdin (checkpoint it while it waits; restart it with
 * the line on the restart's stdin). It then checks every 8-byte word,
 * rewrites the block (so it must be writable), and prints
 * "bigmem: OK digest D", or "bigmem: BAD ..." and exits 2 at the first
 * word that differs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t word(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    size_t n = mib * 1024 * 1024 / 8;
    uint64_t *mem = malloc(n * 8);
    if (!mem) {
        printf("bigmem: BAD malloc of %zu MiB failed\n", mib);
        return 2;
    }
    for (size_t i = 0; i < n; i++) mem[i] = word(i);
    printf("bigmem: ready %zu MiB\n", mib);
    fflush(stdout);

    char line[256];
    if (!fgets(line, sizeof line, stdin)) {
        printf("bigmem: BAD no line on stdin\n");
        return 2;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        if (mem[i] != word(i)) {
            printf("bigmem: BAD word %zu (offset %#zx) is %016llx, expected %016llx\n", i, i * 8,
                   (unsigned long long)mem[i], (unsigned long long)word(i));
            return 2;
        }
        h = (h ^ mem[i]) * 0x100000001b3ULL;
        mem[i] = ~mem[i];
    }
    for (size_t i = 0; i < n; i += 512)
        if (mem[i] != ~word(i)) {
            printf("bigmem: BAD rewrite of word %zu\n", i);
            return 2;
        }
    printf("bigmem: OK %zu MiB digest %016llx input %s", mib, (unsigned long long)h, line);
    return 0;
}
