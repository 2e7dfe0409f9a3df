/* files-socket: a descriptor that cannot be restored among ones that can.
 * A socket pair (10, 11: restored), a listening TCP socket on 127.0.0.1
 * (12: cannot be), an eventfd (13: restored), and a plain file (14, "keep"
 * in the working directory). It describes them, says "files-socket: ready"
 * on stderr, waits for a line on stdin (the checkpoint comes then), and
 * describes them again: after a restart the lost one is /dev/null
 * (character device 1:3). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void at(int fd, int want) {
    if (fd < 0) {
        perror("socket");
        exit(1);
    }
    if (fd != want) {
        dup2(fd, want);
        close(fd);
    }
}

static void describe(const char *when) {
    for (int fd = 10; fd <= 14; fd++) {
        struct stat st;
        char link[256] = {0}, path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (fstat(fd, &st) != 0 || readlink(path, link, sizeof link - 1) < 0) {
            printf("%s: fd %d: closed\n", when, fd);
            continue;
        }
        const char *what = S_ISSOCK(st.st_mode) ? "a socket"
                           : S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3 ? "/dev/null (char 1:3)"
                           : S_ISREG(st.st_mode) ? "a regular file"
                           : strncmp(link, "anon_inode:", 11) == 0 ? "an anonymous inode"
                                                                   : "something else";
        /* Only the kind of a socket or anonymous inode: their numbers change. */
        if (link[0] != '/')
            link[strcspn(link, ":")] = 0;
        else if (strrchr(link, '/'))
            memmove(link, strrchr(link, '/') + 1, strlen(strrchr(link, '/')));
        printf("%s: fd %d: %s (%s)\n", when, fd, what, link);
    }
    fflush(stdout);
}

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    at(sv[0], 10);
    at(sv[1], 11);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 1) != 0)
        return 1;
    at(s, 12);
    at(eventfd(0, 0), 13);
    at(open("keep", O_RDWR | O_CREAT, 0644), 14);
    describe("before");
    fprintf(stderr, "files-socket: ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    describe("after");
    printf("writing to fd 10: %zd\n", write(10, "x", 1));
    printf("files-socket: done\n");
    return 0;
}
