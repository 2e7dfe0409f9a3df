/* proc-limits: resource limits and prctl settings that a restart must keep.
 *
 *   proc-limits
 *
 * Lowers the soft RLIMIT_NOFILE to 100 (hard unchanged), sets RLIMIT_CORE
 * to 65536/1048576, names itself "proc-renamed" (PR_SET_NAME), and sets
 * PR_SET_PDEATHSIG to SIGWINCH, PR_SET_CHILD_SUBREAPER to 1 and
 * PR_SET_DUMPABLE to 0. Prints a "limits" line, then "ready", then waits in
 * sigsuspend() (SIGUSR1 is blocked but there); every time it returns it
 * prints the "limits" line again:
 *
 *   limits nofile=SOFT/HARD core=SOFT/HARD name=NAME pdeathsig=N dumpable=N
 *          subreaper=N dupfd150=ok|EINVAL
 *
 * (one line; "inf" for an unlimited value; dupfd150: whether a descriptor
 * numbered 150 can be made, which the soft RLIMIT_NOFILE forbids). SIGUSR1
 * ends it: "done", exit 0. Every line is flushed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t quit;
static void on_usr1(int sig) { (void)sig; quit = 1; }

static void num(char *out, size_t n, rlim_t v) {
    if (v == RLIM_INFINITY)
        snprintf(out, n, "inf");
    else
        snprintf(out, n, "%llu", (unsigned long long)v);
}

static void show(void) {
    struct rlimit nofile, core;
    getrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_CORE, &core);
    char ns[32], nh[32], cs[32], ch[32], name[17] = {0};
    num(ns, sizeof ns, nofile.rlim_cur);
    num(nh, sizeof nh, nofile.rlim_max);
    num(cs, sizeof cs, core.rlim_cur);
    num(ch, sizeof ch, core.rlim_max);
    prctl(PR_GET_NAME, name);
    int pdeathsig = -1, subreaper = -1;
    prctl(PR_GET_PDEATHSIG, &pdeathsig);
    prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
    int dumpable = prctl(PR_GET_DUMPABLE);
    int fd = fcntl(1, F_DUPFD, 150);
    const char *dup = fd >= 0 ? "ok" : errno == EINVAL ? "EINVAL" : strerror(errno);
    if (fd >= 0) close(fd);
    printf("limits nofile=%s/%s core=%s/%s name=%s pdeathsig=%d dumpable=%d subreaper=%d dupfd150=%s\n", ns, nh, cs,
           ch, name, pdeathsig, dumpable, subreaper, dup);
    fflush(stdout);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set, wait_mask;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);

    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = 100;
    if (setrlimit(RLIMIT_NOFILE, &nofile)) perror("setrlimit RLIMIT_NOFILE");
    struct rlimit core = {65536, 1048576};
    if (setrlimit(RLIMIT_CORE, &core)) perror("setrlimit RLIMIT_CORE");
    prctl(PR_SET_NAME, "proc-renamed");
    prctl(PR_SET_PDEATHSIG, SIGWINCH);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_SET_DUMPABLE, 0);

    show();
    printf("ready\n");
    fflush(stdout);
    while (!quit) {
        sigsuspend(&wait_mask);
        show();
    }
    printf("done\n");
    return 0;
}
