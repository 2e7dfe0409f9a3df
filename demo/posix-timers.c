/* posix-timers: POSIX timers (timer_create) of every notify kind, which a
 * restart must bring back under the same ids, still running.
 *
 *   periodic   CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN, value 101: every
 *              100 ms; the main thread prints "tick N" for each, 1 to 30,
 *              then disarms it
 *   oneshot    CLOCK_MONOTONIC, SIGEV_SIGNAL SIGUSR1, value 202: once,
 *              3.5 s after the start
 *   thread     CLOCK_MONOTONIC, SIGEV_THREAD_ID SIGRTMIN+1 to a worker
 *              thread, value 303: every 300 ms, 12 times (the worker
 *              disarms it then)
 *   callback   CLOCK_MONOTONIC, SIGEV_THREAD (to glibc's helper thread,
 *              which runs the callback in a new thread), value 404: every
 *              400 ms, 8 calls (the callback disarms it then)
 *   realtime   CLOCK_REALTIME, SIGEV_NONE: armed for 60 s every 60 s, only
 *              looked at (its time left after the restart is at most 60 s)
 *
 * The signals are blocked in every thread and taken with sigtimedwait; a
 * signal with the wrong si_value, in the wrong thread, or none for 5 s,
 * is an error. At the end the main thread checks each timer_t with
 * timer_gettime, deletes it with timer_delete, and prints
 *
 *   done oneshot=1 thread=12 callback=8 realtime=armed errors=0 ids ok
 *
 * and exits 0 (1 on any error). Every line is flushed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICKS 30
#define THREAD_TICKS 12
#define CALLBACKS 8

static timer_t periodic, oneshot, thread_timer, callback_timer, quiet;
static atomic_int thread_ticks, callbacks, errors, worker_tid;

static void arm(timer_t t, long first_ms, long every_ms) {
    struct itimerspec v = {{every_ms / 1000, every_ms % 1000 * 1000000}, {first_ms / 1000, first_ms % 1000 * 1000000}};
    if (timer_settime(t, 0, &v, NULL) != 0) errors++;
}

static void disarm(timer_t t) {
    struct itimerspec zero;
    memset(&zero, 0, sizeof zero);
    if (timer_settime(t, 0, &zero, NULL) != 0) errors++;
}

/* Waits up to 5 s for one of `set`; 0 when none came. */
static int wait_for(const sigset_t *set, siginfo_t *info) {
    struct timespec limit = {5, 0};
    for (;;) {
        int sig = sigtimedwait(set, info, &limit);
        if (sig > 0) return sig;
        if (errno != EINTR) return 0; /* EINTR: the checkpoint signal */
    }
}

static void *worker(void *arg) {
    (void)arg;
    worker_tid = gettid();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    siginfo_t info;
    while (thread_ticks < THREAD_TICKS) {
        if (!wait_for(&set, &info)) {
            printf("thread timer stalled at %d\n", thread_ticks);
            fflush(stdout);
            errors++;
            return NULL;
        }
        if (info.si_value.sival_int != 303 || gettid() != worker_tid) errors++;
        thread_ticks++;
    }
    disarm(thread_timer);
    return NULL;
}

static void on_callback(union sigval v) {
    if (v.sival_int != 404) errors++;
    if (++callbacks == CALLBACKS) disarm(callback_timer);
}

static void make(clockid_t clock, int notify, int sig, int value, timer_t *t) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = value;
    if (notify == SIGEV_THREAD_ID) ev._sigev_un._tid = worker_tid;
    if (notify == SIGEV_THREAD) ev.sigev_notify_function = on_callback;
    if (timer_create(clock, &ev, t) != 0) {
        perror("timer_create");
        errors++;
    }
}

int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t w;
    pthread_create(&w, NULL, worker, NULL);
    while (!worker_tid) usleep(1000);

    make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN, 101, &periodic);
    make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, 202, &oneshot);
    make(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 1, 303, &thread_timer);
    make(CLOCK_MONOTONIC, SIGEV_THREAD, 0, 404, &callback_timer);
    make(CLOCK_REALTIME, SIGEV_NONE, 0, 505, &quiet);
    arm(periodic, 100, 100);
    arm(oneshot, 3500, 0);
    arm(thread_timer, 300, 300);
    arm(callback_timer, 400, 400);
    arm(quiet, 60000, 60000);
    printf("armed\n");
    fflush(stdout);

    sigset_t mine;
    sigemptyset(&mine);
    sigaddset(&mine, SIGRTMIN);
    sigaddset(&mine, SIGUSR1);
    int ticks = 0, oneshots = 0;
    siginfo_t info;
    while (ticks < TICKS || !oneshots) {
        int sig = wait_for(&mine, &info);
        if (!sig) {
            printf("stalled: ticks=%d oneshot=%d\n", ticks, oneshots);
            fflush(stdout);
            return 1;
        }
        if (sig == SIGUSR1) {
            oneshots++;
            if (info.si_value.sival_int != 202 || ticks < 20) errors++; /* at 3.5 s: after tick 20 */
            continue;
        }
        if (info.si_value.sival_int != 101) errors++;
        if (ticks < TICKS) {
            printf("tick %d\n", ++ticks);
            fflush(stdout);
            if (ticks == TICKS) disarm(periodic);
        }
    }
    pthread_join(w, NULL);
    for (int i = 0; callbacks < CALLBACKS && i < 5000; i++) usleep(1000);

    /* Every timer is still the process's, under its id. */
    int ids_ok = 1;
    struct itimerspec left;
    int realtime_armed = timer_gettime(quiet, &left) == 0 && left.it_interval.tv_sec == 60 && left.it_value.tv_sec < 60 &&
                         (left.it_value.tv_sec || left.it_value.tv_nsec);
    timer_t all[] = {periodic, oneshot, thread_timer, callback_timer, quiet};
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (timer_gettime(all[i], &left) != 0 || (all[i] != quiet && (left.it_value.tv_sec || left.it_value.tv_nsec)))
            ids_ok = 0;
        if (timer_delete(all[i]) != 0) ids_ok = 0;
    }
    printf("done oneshot=%d thread=%d callback=%d realtime=%s errors=%d ids %s\n", oneshots, (int)thread_ticks,
           (int)callbacks, realtime_armed ? "armed" : "LOST", (int)errors, ids_ok ? "ok" : "LOST");
    fflush(stdout);
    return errors || !ids_ok || !realtime_armed;
}
