/* files-pipe N FIFO: bytes waiting in pipes and a FIFO across a checkpoint.
 * Pipe A (fds 10/11, plus 12 = dup of the read end and 13 = dup of the
 * write end) gets N bytes of a pattern, written in pieces; pipe B (20/21)
 * has a non-blocking read end and holds "abc"; pipe C (30/31) is empty;
 * FIFO is created and opened both ways (40 read, non-blocking; 41 write),
 * empty (the bytes in a FIFO are not saved). It prints what each holds, says
 * "files-pipe: ready" on stderr, and waits for a line on stdin (the
 * checkpoint comes then). Afterwards it prints what each holds again,
 * reads everything back, and sends a line through the FIFO. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static void at(int fd, int want) {
    if (fd != want) {
        if (dup2(fd, want) != want) {
            perror("dup2");
            exit(1);
        }
        close(fd);
    }
}

static int waiting(int fd) {
    int n = -1;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static unsigned char pattern(long i) {
    return (unsigned char)(i * 7 + i / 251);
}

static void state(const char *when) {
    printf("%s: A holds %d (via 12: %d), B holds %d, C holds %d, FIFO holds %d\n", when, waiting(10), waiting(12),
           waiting(20), waiting(30), waiting(40));
    fflush(stdout);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 5000;
    const char *fifo = argc > 2 ? argv[2] : "fifo";
    int p[2];
    if (n > 60000 || pipe(p) != 0)
        return 1;
    at(p[0], 10);
    at(p[1], 11);
    at(dup(10), 12);
    at(dup(11), 13);
    unsigned char *buf = malloc(n);
    for (long i = 0; i < n; i++)
        buf[i] = pattern(i);
    for (long i = 0; i < n; i += 1000) { /* several pipe buffers */
        long len = n - i < 1000 ? n - i : 1000;
        if (write(i % 2000 ? 11 : 13, buf + i, len) != len)
            return 1;
    }
    if (pipe(p) != 0)
        return 1;
    at(p[0], 20);
    at(p[1], 21);
    fcntl(20, F_SETFL, O_NONBLOCK);
    if (write(21, "abc", 3) != 3)
        return 1;
    if (pipe(p) != 0)
        return 1;
    at(p[0], 30);
    at(p[1], 31);
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) {
        perror(fifo);
        return 1;
    }
    at(open(fifo, O_RDONLY | O_NONBLOCK), 40);
    at(open(fifo, O_WRONLY), 41);

    state("before");
    fprintf(stderr, "files-pipe: ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    state("after");

    /* A: close every write end, read to the end through the dup. */
    close(11);
    close(13);
    long got = 0, bad = 0;
    ssize_t r;
    unsigned char chunk[4096];
    while ((r = read(12, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < r; i++)
            bad += chunk[i] != pattern(got + i);
        got += r;
    }
    printf("A: %ld bytes, %ld wrong, then %s\n", got, bad, r == 0 ? "EOF" : strerror(errno));
    char b[16] = {0};
    r = read(20, b, sizeof b - 1);
    printf("B: %zd bytes \"%s\"", r, r > 0 ? b : "");
    r = read(20, b, sizeof b - 1);
    printf(", then %s\n", r < 0 && errno == EAGAIN ? "EAGAIN (non-blocking)" : "something else");
    if (write(31, "xyz", 3) != 3)
        return 1;
    memset(b, 0, sizeof b);
    r = read(30, b, sizeof b - 1);
    printf("C: %zd bytes \"%s\" after writing xyz\n", r, r > 0 ? b : "");
    if (write(41, "fifo data\n", 10) != 10)
        return 1;
    memset(b, 0, sizeof b);
    r = read(40, b, sizeof b - 1);
    printf("FIFO: %zd bytes \"%.*s\"\n", r, r > 0 ? (int)r - 1 : 0, b);
    printf("files-pipe: done\n");
    return 0;
}
