/* cow-wait: reaps with waitpid(-1) and counts SIGCHLD, to show that ckpt's
 * copy-on-write writer is never its child.
 *
 * Forks one child of its own, which waits on a pipe, and prints "started".
 * Until stdin ends it calls waitpid(-1, WNOHANG) every millisecond; then it
 * lets its child go, reaps with waitpid(-1, 0) until there is nothing left,
 * and prints how many processes it reaped (its own child, and any other)
 * and how many SIGCHLD it caught. The output does not depend on how long it
 * ran. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t sigchld;

static void on_chld(int sig) {
    (void)sig;
    sigchld++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    int p[2];
    if (pipe(p) != 0)
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(7);
    }
    close(p[0]);
    printf("started\n");
    fflush(stdout);
    int own = 0, others = 0;
    for (;;) {
        struct pollfd pf = {0, POLLIN, 0};
        int r = poll(&pf, 1, 1);
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w > 0) {
            if (w == child)
                own++;
            else
                others++;
        }
        if (r > 0) {
            char buf[256];
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR))
                break;
        }
    }
    close(p[1]);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == child && WIFEXITED(st) && WEXITSTATUS(st) == 7)
            own++;
        else
            others++;
    }
    printf("own child reaped %d\nother processes reaped %d\nSIGCHLD caught %d\n", own, others, (int)sigchld);
    return 0;
}
