/* files-flags DIR: descriptors with assorted flags, offsets and sharing,
 * described before and after a checkpoint (which comes while it waits for
 * a line on stdin, after "files-flags: ready" on stderr), then used:
 *   10  DIR/append.log  O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, "one" written
 *   11  dup of 10 (same open file, without FD_CLOEXEC)
 *   12  DIR/input       O_RDONLY|O_NONBLOCK, 5 bytes read
 *   13  DIR/rw          O_RDWR|O_CREAT, "0123456789" written, at offset 4
 *   14  DIR/rw again    O_RDONLY, its own offset: 2 bytes read
 *   15  DIR             O_RDONLY|O_DIRECTORY
 *   16  /dev/null       O_WRONLY|O_CLOEXEC
 *   17  /dev/zero       O_RDONLY
 *  100  dup of 12 (same open file: shares its offset)                    */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-at.h"

static const int fds[] = {10, 11, 12, 13, 14, 15, 16, 17, 100};

static void state(const char *when) {
    for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int fd = fds[i];
        int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
        struct stat st;
        if (fl < 0 || fdf < 0 || fstat(fd, &st) != 0) {
            printf("%s: fd %d: closed\n", when, fd);
            continue;
        }
        const char *acc = (fl & O_ACCMODE) == O_RDONLY ? "r" : (fl & O_ACCMODE) == O_WRONLY ? "w" : "rw";
        const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISCHR(st.st_mode) ? "chr" : "other";
        printf("%s: fd %d: %s %s%s%s%s offset %ld\n", when, fd, type, acc, fl & O_APPEND ? " append" : "",
               fl & O_NONBLOCK ? " nonblock" : "", fdf & FD_CLOEXEC ? " cloexec" : "",
               S_ISDIR(st.st_mode) ? 0L : (long)lseek(fd, 0, SEEK_CUR));
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: files-flags DIR\n");
        return 2;
    }
    at(open("append.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_TRUNC, 0644), 10);
    at(dup(10), 11);
    at(open("input", O_RDONLY | O_NONBLOCK), 12);
    at(open("rw", O_RDWR | O_CREAT | O_TRUNC, 0644), 13);
    at(open("rw", O_RDONLY), 14);
    at(open(".", O_RDONLY | O_DIRECTORY), 15);
    at(open("/dev/null", O_WRONLY | O_CLOEXEC), 16);
    at(open("/dev/zero", O_RDONLY), 17);
    at(dup(12), 100);
    /* dup2 (in at) never copies FD_CLOEXEC: set where it was asked for. */
    fcntl(10, F_SETFD, FD_CLOEXEC);
    fcntl(16, F_SETFD, FD_CLOEXEC);
    char b[64] = {0};
    if (write(10, "one\n", 4) != 4 || read(12, b, 5) != 5 || write(13, "0123456789", 10) != 10 ||
        lseek(13, 4, SEEK_SET) != 4 || read(14, b, 2) != 2)
        return 1;
    state("before");
    fprintf(stderr, "files-flags: ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    state("after");

    /* Appends through both, in the shared open file. */
    if (write(11, "two\n", 4) != 4 || write(10, "three\n", 6) != 6)
        return 1;
    int a = open("append.log", O_RDONLY);
    memset(b, 0, sizeof b);
    ssize_t r = read(a, b, sizeof b - 1);
    printf("append.log: %zd bytes: %s", r, b);
    memset(b, 0, sizeof b);
    r = read(100, b, 3);
    printf("read 3 through fd 100: \"%s\"; fd 12 now at %ld\n", b, (long)lseek(12, 0, SEEK_CUR));
    memset(b, 0, sizeof b);
    r = read(14, b, 2);
    printf("read through fd 14: \"%s\"", b);
    memset(b, 0, sizeof b);
    r = read(13, b, 2);
    printf(", through fd 13: \"%s\"\n", b);
    unsigned char z[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    r = read(17, z, 8);
    printf("/dev/zero gives %zd bytes, sum %d; /dev/null takes %zd\n", r, z[0] + z[1] + z[7], write(16, "x", 1));
    struct stat st;
    printf("fd 15 is %s\n", fstat(15, &st) == 0 && S_ISDIR(st.st_mode) ? "a directory" : "not a directory");
    printf("files-flags: done\n");
    return 0;
}
