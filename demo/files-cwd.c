/* files-cwd SUBDIR STEPS: makes SUBDIR, goes into it, and from then on uses
 * relative paths only: "journal" stays open (O_APPEND) and gets one line
 * per step; each step also creates "step-K" holding K. Prints "step K" on
 * stdout (flushed) and sleeps 20 ms. At the end it reads every step file
 * back by its relative name and prints the sum, and the last component of
 * its working directory. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: files-cwd SUBDIR STEPS\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) != 0 || chdir(argv[1]) != 0) {
        perror(argv[1]);
        return 1;
    }
    int journal = open("journal", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (journal < 0) {
        perror("journal");
        return 1;
    }
    long steps = strtol(argv[2], NULL, 10);
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (long k = 1; k <= steps; k++) {
        char name[64], text[64];
        snprintf(name, sizeof name, "step-%ld", k);
        FILE *f = fopen(name, "w");
        if (!f) {
            perror(name);
            return 1;
        }
        fprintf(f, "%ld\n", k);
        fclose(f);
        int len = snprintf(text, sizeof text, "journal %ld\n", k);
        if (write(journal, text, len) != len) {
            perror("write journal");
            return 1;
        }
        printf("step %ld\n", k);
        fflush(stdout);
        nanosleep(&ts, NULL);
    }
    long sum = 0;
    for (long k = 1; k <= steps; k++) {
        char name[64];
        snprintf(name, sizeof name, "step-%ld", k);
        FILE *f = fopen(name, "r");
        long v = 0;
        if (!f || fscanf(f, "%ld", &v) != 1) {
            printf("missing %s\n", name);
            continue;
        }
        fclose(f);
        sum += v;
    }
    char cwd[4096];
    const char *base = getcwd(cwd, sizeof cwd) ? strrchr(cwd, '/') + 1 : "?";
    printf("files-cwd: done, sum %ld, in %s\n", sum, base);
    return 0;
}
