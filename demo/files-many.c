/* files-many N DIR: holds N descriptors (from 3 up) across a checkpoint and
 * checks each of them afterwards. Descriptor 3 + i is, by i % 4:
 *   0  DIR/f<i % 16>, O_RDWR|O_CREAT, at offset i (its own open file)
 *   1  a dup of the one before (shares its offset)
 *   2  the read end of a new pipe holding one byte, i % 251
 *   3  that pipe's write end
 * It raises its soft RLIMIT_NOFILE to the hard one if it needs to (exit 77
 * if the hard limit is too low), says "files-many: ready" on stderr, waits
 * for a line on stdin (the checkpoint comes then), and checks every
 * descriptor: offsets (and that dups still share theirs), pipe bytes.
 * Prints "files-many: N descriptors checked" or the first mismatch (exit 1). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static int fail(int fd, const char *what) {
    printf("files-many: fd %d: %s\n", fd, what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: files-many N DIR\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < (rlim_t)n + 16) {
        fprintf(stderr, "files-many: the hard limit on open files (%lu) is below %ld\n", (unsigned long)lim.rlim_max, n + 16);
        return 77;
    }
    if (lim.rlim_cur < (rlim_t)n + 16) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            perror("setrlimit");
            return 1;
        }
    }
    char path[4096];
    for (long i = 0; i < n; i++) {
        int want = 3 + i, fd = -1;
        switch (i % 4) {
        case 0:
            snprintf(path, sizeof path, "%s/f%ld", argv[2], i % 16);
            fd = open(path, O_RDWR | O_CREAT, 0600);
            if (fd >= 0 && lseek(fd, i, SEEK_SET) != i)
                return fail(fd, "lseek");
            break;
        case 1:
            fd = dup(want - 1);
            break;
        case 2: {
            int p[2];
            if (pipe(p) != 0 || p[0] != want || p[1] != want + 1)
                return fail(want, "pipe");
            char b = i % 251;
            if (write(p[1], &b, 1) != 1)
                return fail(p[1], "write");
            fd = p[0];
            break;
        }
        case 3:
            fd = want; /* made with its read end */
            break;
        }
        if (fd != want)
            return fail(want, "not opened at its number");
    }
    fprintf(stderr, "files-many: ready\n");
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return fail(0, "no go line");
    for (long i = 0; i < n; i++) {
        int fd = 3 + i;
        switch (i % 4) {
        case 0:
            if (lseek(fd, 0, SEEK_CUR) != i)
                return fail(fd, "offset");
            break;
        case 1:
            /* Moving the dup moves the original: they share the open file. */
            if (lseek(fd, 7, SEEK_CUR) != i - 1 + 7 || lseek(fd - 1, 0, SEEK_CUR) != i - 1 + 7)
                return fail(fd, "not shared with the one before");
            break;
        case 2: {
            unsigned char b;
            if (read(fd, &b, 1) != 1 || b != i % 251)
                return fail(fd, "pipe byte");
            break;
        }
        case 3: {
            char b = 'x', c;
            if (write(fd, &b, 1) != 1 || read(fd - 1, &c, 1) != 1 || c != 'x')
                return fail(fd, "pipe write end");
            break;
        }
        }
    }
    printf("files-many: %ld descriptors checked\n", n);
    return 0;
}
