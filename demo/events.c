/* events: event descriptors and an in-process socketpair across a checkpoint.
 *   10 eventfd, counter 7, EFD_SEMAPHORE | EFD_NONBLOCK; 19 a dup of it
 *   11 eventfd, counter 0x123456789
 *   12 timerfd CLOCK_MONOTONIC, one-shot in 30 s (relative)
 *   13 timerfd CLOCK_MONOTONIC, one-shot 1 ms, expired: one tick pending
 *   14 timerfd CLOCK_REALTIME, TFD_TIMER_ABSTIME, deadline in one hour
 *   15 signalfd {SIGUSR1, SIGWINCH}, non-blocking; SIGUSR1 blocked, pending
 *   16 epoll: 10 (EPOLLET, data 0xa), 13 (0xd), 15 (0xf), 20 (EPOLLONESHOT,
 *      0x14), 11 registered as fd 18, since closed (0x12), and 18 again,
 *      now another eventfd (0x212, counter 0: ready once written)
 *   17 epoll watching epoll 16 (data 0x10)
 *   26 a dup of epoll 16; 27 an epoll watching it through 26 (data 0x1a),
 *      and 11 as fd 28 (0x1c), since closed, 28 now an eventfd it does not watch
 *   20/21 stream socketpair: "hello" waiting on 20, "world!" on 21
 *   22/23 datagram socketpair: "one", "two2", "three33" waiting on 22
 *   24 inotify, non-blocking: watch 2 on watch-b (IN_CREATE), watch 3 on
 *      watch-c (IN_CREATE | IN_ONESHOT); watch 1 (watch-a) was removed
 *   25 memfd "ckpt-demo", 4096 bytes starting "memfd contents", sealed
 *      against shrinking and growing, mapped shared once; offset 6
 *   a POSIX semaphore (sem_open, /dev/shm/sem.ckpt-events-PID), value 2
 * Says "events: ready" on stderr and waits for a line on stdin (the
 * checkpoint comes then); then prints the state of each, the same whether
 * or not a checkpoint and restart happened in between. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <semaphore.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "fd-at.h"

static void add(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

static int cmp(const void *a, const void *b) {
    uint64_t x = ((const struct epoll_event *)a)->data.u64, y = ((const struct epoll_event *)b)->data.u64;
    return x < y ? -1 : x > y;
}

static void wait_list(int ep, const char *what) {
    struct epoll_event evs[16];
    int n = epoll_wait(ep, evs, 16, 0);
    qsort(evs, n > 0 ? n : 0, sizeof evs[0], cmp);
    printf("%s:", what);
    for (int i = 0; i < n; i++)
        printf(" %#llx(%s%s)", (unsigned long long)evs[i].data.u64, evs[i].events & EPOLLIN ? "in" : "",
               evs[i].events & EPOLLOUT ? "out" : "");
    printf("%s\n", n == 0 ? " nothing" : "");
}

static long long ns(struct timespec t) {
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(void) {
    at(eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK), 10);
    at(dup(10), 19);
    at(eventfd(0, 0), 11);
    uint64_t big = 0x123456789ULL;
    if (write(11, &big, 8) != 8)
        return 1;

    at(timerfd_create(CLOCK_MONOTONIC, 0), 12);
    struct itimerspec thirty = {.it_value = {30, 0}};
    timerfd_settime(12, 0, &thirty, NULL);
    at(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 13);
    struct itimerspec short_one = {.it_value = {0, 1000000}};
    timerfd_settime(13, 0, &short_one, NULL);
    at(timerfd_create(CLOCK_REALTIME, 0), 14);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec hour = {.it_value = {now.tv_sec + 3600, now.tv_nsec}};
    long long deadline = ns(hour.it_value);
    timerfd_settime(14, TFD_TIMER_ABSTIME, &hour, NULL);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGWINCH);
    at(signalfd(-1, &mask, SFD_NONBLOCK), 15);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    raise(SIGUSR1);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    at(sv[0], 20);
    at(sv[1], 21);
    if (write(21, "hello", 5) != 5 || write(20, "world!", 6) != 6)
        return 1;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
        return 1;
    at(sv[0], 22);
    at(sv[1], 23);
    const char *msgs[] = {"one", "two2", "three33"};
    for (int i = 0; i < 3; i++)
        if (send(23, msgs[i], strlen(msgs[i]), 0) < 0)
            return 1;

    at(epoll_create1(0), 16);
    add(16, 10, EPOLLIN | EPOLLET, 0xa);
    add(16, 13, EPOLLIN, 0xd);
    add(16, 15, EPOLLIN, 0xf);
    add(16, 20, EPOLLIN | EPOLLONESHOT, 0x14);
    at(dup(11), 18);
    add(16, 18, EPOLLIN, 0x12);
    close(18);
    at(eventfd(0, 0), 18);
    add(16, 18, EPOLLIN, 0x212);
    at(epoll_create1(EPOLL_CLOEXEC), 17);
    add(17, 16, EPOLLIN, 0x10);
    fcntl(17, F_SETFD, FD_CLOEXEC);
    at(dup(16), 26);
    at(epoll_create1(0), 27);
    add(27, 26, EPOLLIN, 0x1a);
    at(dup(11), 28);
    add(27, 28, EPOLLIN, 0x1c);
    close(28);
    at(eventfd(0, 0), 28);

    const char *dirs[] = {"watch-a", "watch-b", "watch-c"};
    for (int i = 0; i < 3; i++) {
        char f[32];
        snprintf(f, sizeof f, "%s/new", dirs[i]);
        unlink(f);
        if (mkdir(dirs[i], 0700) != 0 && errno != EEXIST)
            return 1;
    }
    at(inotify_init1(IN_NONBLOCK), 24);
    int wa = inotify_add_watch(24, "watch-a", IN_CREATE);
    inotify_add_watch(24, "watch-b", IN_CREATE);
    inotify_rm_watch(24, wa);
    inotify_add_watch(24, "watch-c", IN_CREATE | IN_ONESHOT);
    char ibuf[4096];
    while (read(24, ibuf, sizeof ibuf) > 0) /* the IN_IGNORED of watch 1 */
        ;

    at(memfd_create("ckpt-demo", MFD_ALLOW_SEALING), 25);
    if (ftruncate(25, 4096) != 0 || pwrite(25, "memfd contents", 14, 0) != 14)
        return 1;
    fcntl(25, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
    char *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 25, 0);
    if (map == MAP_FAILED)
        return 1;
    lseek(25, 6, SEEK_SET);

    char sem_name[64];
    snprintf(sem_name, sizeof sem_name, "/ckpt-events-%d", (int)getpid());
    sem_t *sem = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 3);
    if (sem == SEM_FAILED || sem_wait(sem) != 0)
        return 1;

    /* Let the 1 ms timer expire. */
    struct timespec ms2 = {0, 2000000};
    nanosleep(&ms2, NULL);

    fprintf(stderr, "events: ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;

    printf("fd 10 flags: %s%s\n", fcntl(10, F_GETFL) & O_NONBLOCK ? "nonblock" : "block",
           fcntl(17, F_GETFD) & FD_CLOEXEC ? ", fd 17 cloexec" : "");
    wait_list(17, "epoll 17");
    wait_list(27, "epoll 27");
    wait_list(16, "epoll 16");
    wait_list(16, "epoll 16 again");
    uint64_t one = 1;
    if (write(18, &one, 8) != 8)
        return 1;
    wait_list(16, "epoll 16 with 18 written");
    uint64_t v = 0;
    for (int i = 0; i < 2; i++) {
        v = 0;
        ssize_t r = read(i ? 19 : 10, &v, 8);
        printf("eventfd 10 read %zd: %llu\n", r, (unsigned long long)v);
    }
    v = 0;
    ssize_t r = read(11, &v, 8);
    printf("eventfd 11 read %zd: %#llx\n", r, (unsigned long long)v);
    struct itimerspec cur;
    timerfd_gettime(12, &cur);
    long long left = ns(cur.it_value);
    printf("timerfd 12: %s\n", left > 0 && left <= 30000000000LL ? "armed, at most 30 s left" : "WRONG");
    v = 0;
    r = read(13, &v, 8);
    printf("timerfd 13 read %zd: %llu expiration(s)\n", r, (unsigned long long)v);
    timerfd_gettime(14, &cur);
    clock_gettime(CLOCK_REALTIME, &now);
    long long off = ns(now) + ns(cur.it_value) - deadline;
    printf("timerfd 14: deadline %s\n", off > -1000000000LL && off < 1000000000LL ? "kept" : "WRONG");
    struct signalfd_siginfo si;
    r = read(15, &si, sizeof si);
    printf("signalfd 15 read %zd: signal %d%s\n", r, r > 0 ? (int)si.ssi_signo : 0,
           r > 0 && si.ssi_signo == SIGUSR1 ? " (SIGUSR1)" : "");
    r = read(15, &si, sizeof si);
    printf("signalfd 15 again: %s\n", r < 0 && errno == EAGAIN ? "EAGAIN" : "something else");
    char buf[64] = {0};
    r = recv(20, buf, sizeof buf, MSG_DONTWAIT);
    printf("socket 20: %zd \"%.*s\"\n", r, r > 0 ? (int)r : 0, buf);
    r = recv(21, buf, sizeof buf, MSG_DONTWAIT);
    printf("socket 21: %zd \"%.*s\"\n", r, r > 0 ? (int)r : 0, buf);
    if (write(21, "more", 4) != 4)
        return 1;
    r = recv(20, buf, sizeof buf, MSG_DONTWAIT);
    printf("socket 20 then: %zd \"%.*s\"\n", r, r > 0 ? (int)r : 0, buf);
    for (int i = 0; i < 4; i++) {
        r = recv(22, buf, sizeof buf, MSG_DONTWAIT);
        printf("datagram %d: %zd \"%.*s\"\n", i, r, r > 0 ? (int)r : 0, buf);
    }
    close(open("watch-c/new", O_CREAT | O_WRONLY, 0600));
    close(open("watch-b/new", O_CREAT | O_WRONLY, 0600));
    r = read(24, ibuf, sizeof ibuf);
    for (char *p = ibuf; r > 0 && p < ibuf + r;) {
        struct inotify_event *e = (struct inotify_event *)p;
        printf("inotify: watch %d mask %#x name \"%s\"\n", e->wd, e->mask, e->len ? e->name : "");
        p += sizeof *e + e->len;
    }
    char mbuf[32] = {0};
    r = read(25, mbuf, 8);
    printf("memfd: seals %#x, size %ld, read at 6: \"%s\"\n", fcntl(25, F_GET_SEALS), (long)lseek(25, 0, SEEK_END), mbuf);
    memcpy(map + 100, "through the map", 15);
    memset(mbuf, 0, sizeof mbuf);
    r = pread(25, mbuf, 15, 100);
    printf("memfd: the mapping %s the file; %s\n", strcmp(mbuf, "through the map") == 0 ? "reaches" : "DOES NOT reach",
           ftruncate(25, 100) != 0 && errno == EPERM ? "cannot shrink" : "WRONG: shrinks");
    /* The semaphore still is its file: a second mapping of the file sees
       what the first one does. */
    sem_post(sem);
    char sem_path[80];
    snprintf(sem_path, sizeof sem_path, "/dev/shm/sem.%s", sem_name + 1);
    int sfd = open(sem_path, O_RDWR);
    sem_t *again = sfd < 0 ? MAP_FAILED : mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    int v1 = -1, v2 = -1;
    sem_getvalue(sem, &v1);
    if (again != MAP_FAILED)
        sem_getvalue(again, &v2);
    printf("semaphore: %d, through its file %d\n", v1, v2);
    sem_unlink(sem_name);
    printf("events: done\n");
    return 0;
}
