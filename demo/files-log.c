/* files-log INPUT LOG STEPS: reads INPUT line by line (stdio fgets, so the
 * descriptor's offset runs ahead of what the program has used: the rest is
 * in the FILE buffer, in memory) and, for every line, appends a numbered
 * line to LOG through a raw descriptor (write(2)) and to LOG.stdio through
 * fprintf + fflush. Each of STEPS steps handles 7 lines, prints a digest of
 * them on stdout (flushed), says "files-log: step K" on stderr and sleeps
 * 20 ms. At the end it prints how many lines it read and a digest of all. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long digest(unsigned long h, const char *s) {
    for (; *s; s++)
        h = h * 131 + (unsigned char)*s;
    return h;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: files-log INPUT LOG STEPS\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    int log = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char name[4096];
    snprintf(name, sizeof name, "%s.stdio", argv[2]);
    FILE *log2 = fopen(name, "w");
    if (log < 0 || !log2) {
        perror(argv[2]);
        return 1;
    }
    long steps = strtol(argv[3], NULL, 10);
    unsigned long all = 0;
    long n = 0;
    char line[1024];
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (long k = 1; k <= steps; k++) {
        unsigned long h = 0;
        for (int j = 0; j < 7 && fgets(line, sizeof line, in); j++) {
            n++;
            h = digest(h, line);
            all = digest(all, line);
            char out[1200];
            int len = snprintf(out, sizeof out, "%ld %s", n, line);
            if (write(log, out, len) != len) {
                perror("write");
                return 1;
            }
            fprintf(log2, "%ld %s", n, line);
            fflush(log2);
        }
        printf("step %ld: %ld lines, digest %lx\n", k, n, h);
        fflush(stdout);
        fprintf(stderr, "files-log: step %ld\n", k);
        nanosleep(&ts, NULL);
    }
    printf("files-log: done, %ld lines, digest %lx\n", n, all);
    return 0;
}
