/* epoll-orphan: an epoll (fd 6) whose only registration is of an eventfd
 * that no descriptor holds any more: it was sent away over a socketpair
 * (SCM_RIGHTS, still in flight) and closed. Such a registration cannot be
 * added again at restart. Says "epoll-orphan: ready" on stderr, waits for
 * a line on stdin, then prints what epoll_wait reports. */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
        return 1;
    int e = eventfd(1, 0), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    if (e < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) != 0)
        return 1;
    char c[CMSG_SPACE(sizeof(int))];
    struct iovec io = {"x", 1};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = c, .msg_controllen = sizeof c};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &e, sizeof e);
    if (sendmsg(sv[1], &m, 0) != 1)
        return 1;
    close(e);
    fprintf(stderr, "epoll-orphan: ready\n");
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    struct epoll_event out;
    printf("epoll_wait: %d\n", epoll_wait(ep, &out, 1, 0));
    return 0;
}
