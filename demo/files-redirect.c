/* files-redirect FILE N: stdout redirected by the program itself, as
 * `sort -o FILE` does.
 *
 * Opens FILE (created, truncated) and dup2s it onto descriptor 1, then
 * writes "line I" for I in 0..N-1 with stdio (fully buffered: a file), the
 * first half before and the second half after waiting for one byte on
 * stdin. On stderr: "ready" while it waits, "done" at the end (flushed). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: files-redirect FILE N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    for (long i = 0; i < n / 2; i++)
        printf("line %ld\n", i);
    fprintf(stderr, "ready\n");
    char c;
    if (read(0, &c, 1) != 1) {
        fprintf(stderr, "files-redirect: stdin ended\n");
        return 4;
    }
    for (long i = n / 2; i < n; i++)
        printf("line %ld\n", i);
    fflush(stdout);
    fprintf(stderr, "done\n");
    return 0;
}
