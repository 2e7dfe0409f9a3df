/* locks: file locks across a checkpoint. fd 10 holds a record (fcntl) write
 * lock on bytes 10-29 of lk-record, fd 11 an OFD write lock from byte 5 to
 * the end of lk-ofd, fd 12 a flock write lock on lk-flock (13 is a dup of
 * 12). Says "locks: ready" on stderr and waits for a line on stdin (the
 * checkpoint comes then); then a child process tries to take each lock
 * (it must not get them) and the program releases them (the child then
 * can). The output is the same whether or not a restart came between. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static void at(int fd, int want) {
    if (fd != want) {
        dup2(fd, want);
        close(fd);
    }
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

/* In a child: whether each lock can be taken by another process. */
static void probe(const char *when) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int r = open("lk-record", O_RDWR), o = open("lk-ofd", O_RDWR), f = open("lk-flock", O_RDWR);
        int e1 = setlk(r, F_SETLK, F_WRLCK, 15, 1);
        int e2 = setlk(o, F_OFD_SETLK, F_RDLCK, 100, 1);
        int e3 = flock(f, LOCK_SH | LOCK_NB) == 0 ? 0 : errno;
        printf("%s: record %s, ofd %s, flock %s\n", when, e1 ? strerror(e1) : "taken", e2 ? strerror(e2) : "taken",
               e3 ? strerror(e3) : "taken");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(void) {
    at(open("lk-record", O_RDWR | O_CREAT, 0600), 10);
    at(open("lk-ofd", O_RDWR | O_CREAT, 0600), 11);
    at(open("lk-flock", O_RDWR | O_CREAT, 0600), 12);
    dup2(12, 13);
    if (setlk(10, F_SETLK, F_WRLCK, 10, 20) || setlk(11, F_OFD_SETLK, F_WRLCK, 5, 0) || flock(12, LOCK_EX | LOCK_NB)) {
        perror("lock");
        return 1;
    }
    fprintf(stderr, "locks: ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    probe("held");
    setlk(10, F_SETLK, F_UNLCK, 0, 0);
    setlk(11, F_OFD_SETLK, F_UNLCK, 0, 0);
    flock(13, LOCK_UN);
    probe("released");
    printf("locks: done\n");
    return 0;
}
