/* proc-timers: interval timers that a restart must keep running.
 *
 *   proc-timers alarm      alarm(3), plus ITIMER_VIRTUAL (20 s, every 10 s)
 *                          and ITIMER_PROF (30 s, every 5 s), which a
 *                          sleeping program never reaches
 *   proc-timers interval   ITIMER_REAL: first after 300 ms, then every
 *                          200 ms; stops after 8 expirations
 *
 * SIGALRM is blocked but in sigsuspend(), so that no expiration is missed
 * between two waits. Prints "armed" once the timers are set, then waits in
 * sigsuspend(). Every time sigsuspend() returns it prints the timers as
 * getitimer sees them:
 *
 *   timers real=VALUE_MS/INTERVAL_MS virtual=V/I prof=V/I alarms=N
 *
 * The SIGALRM handler prints "alarm N" (N counts from 1). "alarm" mode
 * ends after the first alarm, "interval" mode after the eighth (it then
 * disarms the timer); both print "done" and exit 0. Every line is flushed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
    (void)sig;
    int n = ++alarms, i = 6;
    char line[16] = "alarm ";
    if (n >= 10) line[i++] = (char)('0' + n / 10 % 10);
    line[i++] = (char)('0' + n % 10);
    line[i++] = '\n';
    (void)!write(1, line, i);
}

static long ms(struct timeval t) { return t.tv_sec * 1000 + (t.tv_usec + 999) / 1000; }

static void show(void) {
    struct itimerval r, v, p;
    getitimer(ITIMER_REAL, &r);
    getitimer(ITIMER_VIRTUAL, &v);
    getitimer(ITIMER_PROF, &p);
    printf("timers real=%ld/%ld virtual=%ld/%ld prof=%ld/%ld alarms=%d\n", ms(r.it_value), ms(r.it_interval),
           ms(v.it_value), ms(v.it_interval), ms(p.it_value), ms(p.it_interval), (int)alarms);
    fflush(stdout);
}

static void arm(int which, long value_ms, long interval_ms) {
    struct itimerval t = {{interval_ms / 1000, interval_ms % 1000 * 1000}, {value_ms / 1000, value_ms % 1000 * 1000}};
    setitimer(which, &t, NULL);
}

int main(int argc, char **argv) {
    int interval = argc > 1 && strcmp(argv[1], "interval") == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigset_t set, wait_mask;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, &wait_mask);
    sigdelset(&wait_mask, SIGALRM);
    int last = interval ? 8 : 1;
    if (interval) {
        arm(ITIMER_REAL, 300, 200);
    } else {
        alarm(3);
        arm(ITIMER_VIRTUAL, 20000, 10000);
        arm(ITIMER_PROF, 30000, 5000);
    }
    printf("armed\n");
    fflush(stdout);
    while (alarms < last) {
        sigsuspend(&wait_mask);
        show();
    }
    arm(ITIMER_REAL, 0, 0);
    printf("done\n");
    return 0;
}
