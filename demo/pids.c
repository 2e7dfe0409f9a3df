/* What a program knows of its own ids, before and after a restart: its pid,
 * the tid of each of its threads, /proc/self and /proc/self/task (which must
 * agree with them), /proc/self/exe; and mutexes whose owner is a tid: an
 * error-checking one held by main and a recursive one held twice by a
 * thread, across the checkpoint, unlocked afterwards by their owners.
 *
 * Prints an "ids ..." line, "ppid N" and "ready" (stderr), then waits for a
 * line on stdin (the test checkpoints it there, and restarts it), then
 * prints the "ids ..." line again, "ppid N" and each unlock's result
 * (0, or an errno such as EPERM=1). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 3
static pid_t tids[N];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: report tids again, 2: end */
static int reported;
static pthread_mutex_t errorcheck, recursive;
static int recursive_unlocks[2];

static void *thread(void *arg) {
    long i = (long)arg;
    if (i == 0) {
        pthread_mutex_lock(&recursive);
        pthread_mutex_lock(&recursive);
    }
    pthread_mutex_lock(&lock);
    tids[i] = syscall(SYS_gettid);
    reported++;
    pthread_cond_broadcast(&cond);
    while (phase == 0)
        pthread_cond_wait(&cond, &lock);
    tids[i] = syscall(SYS_gettid);
    if (i == 0) {
        recursive_unlocks[0] = pthread_mutex_unlock(&recursive);
        recursive_unlocks[1] = pthread_mutex_unlock(&recursive);
    }
    reported++;
    pthread_cond_broadcast(&cond);
    while (phase == 1) /* alive until main has listed /proc/self/task */
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

/* One line with every id, as the program sees them. */
static void ids(void) {
    char exe[4096] = "", self[64] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    n = readlink("/proc/self", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    int task[64], nt = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d)) && nt < 64;)
        if (e->d_name[0] != '.')
            task[nt++] = atoi(e->d_name);
    if (d)
        closedir(d);
    qsort(task, nt, sizeof task[0], cmp);
    printf("ids pid %d gettid %ld /proc/self %s exe %s threads", (int)getpid(), (long)syscall(SYS_gettid), self,
           exe);
    for (int i = 0; i < N; i++)
        printf(" %d", (int)tids[i]);
    printf(" task");
    for (int i = 0; i < nt; i++)
        printf(" %d", task[i]);
    printf("\n");
}

int main(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&errorcheck, &a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&recursive, &a);
    pthread_mutex_lock(&errorcheck);
    pthread_t t[N];
    for (long i = 0; i < N; i++)
        pthread_create(&t[i], NULL, thread, (void *)i);
    pthread_mutex_lock(&lock);
    while (reported < N)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    ids();
    printf("ppid %d\n", (int)getppid());
    fflush(stdout);
    fprintf(stderr, "ready\n");
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 2;
    pthread_mutex_lock(&lock);
    phase = 1;
    pthread_cond_broadcast(&cond);
    while (reported < 2 * N)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    ids();
    printf("ppid %d\n", (int)getppid());
    printf("unlock errorcheck %d recursive %d %d\n", pthread_mutex_unlock(&errorcheck), recursive_unlocks[0],
           recursive_unlocks[1]);
    pthread_mutex_lock(&lock);
    phase = 2;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    return 0;
}
