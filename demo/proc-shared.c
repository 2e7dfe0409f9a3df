/* proc-shared: a MAP_SHARED file mapping across a checkpoint and restart.
 *
 *   proc-shared FILE
 *
 * Makes FILE two pages and 100 bytes long, maps four pages of it MAP_SHARED
 * (the third ends past the end of the file, the fourth lies wholly past
 * it), closes the descriptor, and writes
 * "checkpointed" at the start of the first page. Also maps one page of
 * shared anonymous memory holding "anon". Prints "ready", then waits in
 * sigsuspend() (SIGUSR1 is blocked but there). Each time sigsuspend()
 * returns (step 1, 2, ...) it writes "step N" at the start of the second
 * page, msyncs, and prints
 *
 *   wrote step N mem0=TEXT anon=TEXT
 *
 * (mem0: the string at the start of the first page, as the program sees
 * it). SIGUSR1 ends it after that step's line: "done", exit 0. Every line
 * is flushed.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t quit;
static void on_usr1(int sig) { (void)sig; quit = 1; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: proc-shared FILE\n");
        return 2;
    }
    long page = sysconf(_SC_PAGESIZE);
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 2 * page + 100) != 0) {
        perror(argv[1]);
        return 1;
    }
    char *m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *anon = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || anon == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    strcpy(m, "checkpointed");
    strcpy(anon, "anon");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set, wait_mask;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);

    printf("ready\n");
    fflush(stdout);
    for (int step = 1; !quit; step++) {
        sigsuspend(&wait_mask);
        snprintf(m + page, 64, "step %d", step);
        msync(m, 2 * page, MS_SYNC);
        printf("wrote step %d mem0=%s anon=%s\n", step, m, anon);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
