/* events-many REGS TIMERS [eventfd|socket]: REGS eventfds (or REGS/2
 * socketpairs, both ends) registered in one epoll, and TIMERS armed
 * timerfds (for make bench: the capture of many event descriptors).
 * Says "events-many: ready" on stderr and waits for a line on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>

int main(int argc, char **argv) {
    int regs = argc > 1 ? atoi(argv[1]) : 1000, timers = argc > 2 ? atoi(argv[2]) : 100;
    struct rlimit rl = {4096, 4096};
    setrlimit(RLIMIT_NOFILE, &rl);
    int ep = epoll_create1(0);
    int sockets = argc > 3 && strcmp(argv[3], "socket") == 0;
    for (int i = 0; i < regs; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        int fd, sv[2];
        if (sockets && i % 2 == 0)
            fd = socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 ? sv[0] : -1;
        else
            fd = sockets ? sv[1] : eventfd(i, 0);
        if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("eventfd");
            return 1;
        }
    }
    for (int i = 0; i < timers; i++) {
        struct itimerspec t = {.it_interval = {1, 0}, .it_value = {100 + i, 0}};
        int fd = timerfd_create(CLOCK_MONOTONIC, 0);
        if (fd < 0 || timerfd_settime(fd, 0, &t, NULL) != 0) {
            perror("timerfd");
            return 1;
        }
    }
    fprintf(stderr, "events-many: ready\n");
    char line[16];
    return fgets(line, sizeof line, stdin) ? 0 : 1;
}
