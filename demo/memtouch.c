/* memtouch: the benchmark's subject.
 *
 *   memtouch RESERVE_MIB TOUCH_MIB
 *
 * Maps RESERVE_MIB MiB of anonymous memory, writes a pattern into the first
 * TOUCH_MIB MiB of it, prints "ready" (flushed), then prints "tick N"
 * (flushed) every millisecond, forever. The time from starting a restart to
 * its first line is the restart time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv) {
    size_t reserve = (argc > 1 ? strtoul(argv[1], NULL, 10) : 1024) << 20;
    size_t touch = (argc > 2 ? strtoul(argv[2], NULL, 10) : 1024) << 20;
    if (touch > reserve) touch = reserve;
    uint64_t *mem = NULL;
    if (reserve) {
        mem = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) {
            perror("memtouch: mmap");
            return 1;
        }
    }
    for (size_t i = 0; i < touch / 8; i++) mem[i] = i * 0x9e3779b97f4a7c15ULL;
    printf("ready\n");
    fflush(stdout);
    for (unsigned long n = 0;; n++) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
        printf("tick %lu\n", n);
        fflush(stdout);
    }
}
