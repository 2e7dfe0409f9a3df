/* Threads that end by pthread_exit and by pthread_cancel (forced unwinding
 * through every frame of the thread, ckpt's start wrapper included), each
 * after checking whether it has an alternate signal stack.
 *
 * prints "exit 7 altstack=yes", "cancel yes altstack=yes" (altstack: the
 * thread had one; "no" without ckpt), "done". */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

static int has_altstack(void)
{
    stack_t ss;
    return sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE);
}

static volatile int alt[2];

static void *exits(void *a)
{
    (void)a;
    alt[0] = has_altstack();
    pthread_exit((void *)7);
    return NULL;
}

static void *cancelled(void *a)
{
    (void)a;
    alt[1] = has_altstack();
    for (;;)
        pthread_testcancel();
    return NULL;
}

int main(void)
{
    pthread_t t;
    void *v;
    pthread_create(&t, NULL, exits, NULL);
    pthread_join(t, &v);
    printf("exit %ld altstack=%s\n", (long)v, alt[0] ? "yes" : "no");
    pthread_create(&t, NULL, cancelled, NULL);
    pthread_cancel(t);
    pthread_join(t, &v);
    printf("cancel %s altstack=%s\n", v == PTHREAD_CANCELED ? "yes" : "no", alt[1] ? "yes" : "no");
    printf("done\n");
    return 0;
}
