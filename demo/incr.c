/* incr: the subject of the incremental (delta) checkpoint tests.
 *
 *   incr STATE_MIB [CHUNK_KIB [fast]]
 *
 * Fills STATE_MIB MiB of anonymous memory with a deterministic pattern and
 * prints "state ADDR LEN INBOX" (hex: the state's address and length, the
 * address of a page of its own that only read() writes), then, for every
 * line it reads from stdin (read() into the inbox: only the kernel writes
 * it), rewrites a few pages chosen from the line's number (about 2% of the
 * state), maps or unmaps a small buffer now and then, and prints
 * "step N hash H" with H a hash of the whole state and the inbox. At end of input
 * it prints "done" and exits 0. CHUNK_KIB (default 4: single pages) is the
 * size of each piece rewritten, at random places (2% of the state in all);
 * with "fast" (the benchmark), it prints "step N" without hashing. With
 * INCR_UFFD set in its environment it opens a userfaultfd of its own first
 * (and keeps it, unused). The
 * output depends only on the input: a
 * restarted run and an uninterrupted one print the same lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t hash(const uint64_t *w, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = mix(h ^ w[i]) + i;
    return h;
}

int main(int argc, char **argv) {
    size_t len = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20;
    size_t chunk = (argc > 2 ? strtoul(argv[2], NULL, 10) : 4) << 10, words = len / 8;
    int fast = argc > 3 && strcmp(argv[3], "fast") == 0;
    if (chunk == 0 || chunk > len || len % chunk) {
        fprintf(stderr, "incr: CHUNK_KIB must divide the state\n");
        return 2;
    }
    if (getenv("INCR_UFFD") && syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */) < 0) {
        perror("incr: userfaultfd");
        return 1;
    }
    uint64_t *state = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (state == MAP_FAILED) {
        perror("incr: mmap");
        return 1;
    }
    for (size_t i = 0; i < words; i++) state[i] = mix(i);
    char *inbox = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (inbox == MAP_FAILED) {
        perror("incr: mmap");
        return 1;
    }
    printf("state %lx %lx %lx\n", (unsigned long)state, (unsigned long)len, (unsigned long)inbox);
    fflush(stdout);
    char *extra = NULL;
    for (unsigned long step = 1;; step++) {
        /* The line goes into the inbox, written by the kernel alone, one
         * byte at a time (a pipe may hold several lines). */
        size_t n = 0;
        while (n < 4095 && read(0, inbox + n, 1) == 1 && inbox[n++] != '\n') {
        }
        if (n == 0 || inbox[n - 1] != '\n') break;
        size_t chunks = len / chunk;
        for (size_t k = 0; k < chunks / 50 + 1; k++) {
            uint64_t *p = state + mix(step * 1000003 + k) % chunks * (chunk / 8);
            for (size_t i = 0; i < chunk / 8; i += 7) p[i] = mix(p[i] + step);
        }
        if (step % 3 == 0) {
            if (extra) munmap(extra, 1 << 20);
            extra = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (extra != MAP_FAILED) memset(extra, (int)step, 1 << 20);
            else extra = NULL;
        }
        if (fast) {
            printf("step %lu\n", step);
            fflush(stdout);
            continue;
        }
        uint64_t h = hash(state, words) ^ hash((uint64_t *)inbox, 512);
        if (extra) h ^= (uint64_t)(unsigned char)extra[12345];
        printf("step %lu hash %016lx\n", step, (unsigned long)h);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
