/* cow-dontfork: memory a forked process does not get.
 *
 * Maps 1 MiB, fills it with a pattern, marks it MADV_DONTFORK, prints
 * "started", and works (rewriting the pattern with a round number) until
 * stdin ends; then checks the pattern and prints "pattern ok" (or BAD)
 * and "done". The output does not depend on how long it ran. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORDS ((1 << 20) / 8)

int main(void) {
    uint64_t *m = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || madvise(m, WORDS * 8, MADV_DONTFORK) != 0)
        return 2;
    uint64_t round = 1;
    for (uint64_t i = 0; i < WORDS; i++)
        m[i] = i;
    printf("started\n");
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {
        round++;
        for (uint64_t i = 0; i < WORDS; i++)
            m[i] = i * round;
    }
    int bad = 0;
    for (uint64_t i = 0; i < WORDS; i++)
        bad += m[i] != i * round;
    printf("pattern %s\ndone\n", bad ? "BAD" : "ok");
    return 0;
}
