/* A coroutine on a small makecontext stack, checkpointed while it runs.
 *
 * usage: sig-coroutine own|none|thread STEPS
 *   own:    the program gives its thread an alternate signal stack, as
 *           coroutine libraries do; none: it does not (ckpt gives the main
 *           thread one of its own); thread: none either, and everything
 *           below runs in a second thread (pthread_create) while the main
 *           one waits in pthread_join.
 *
 * The coroutine runs on a 16 KiB stack (a guard page below it). Each step
 * it computes a little (recursion, on that stack), then paints everything
 * below its stack pointer (minus a margin for read's own frame) with a
 * pattern, blocks in read(0) for one byte, and checks the pattern: a
 * signal frame pushed on this stack while it waited would have overwritten
 * it. main prints each step's result.
 *
 * prints: "stack LO HI" (the coroutine's stack), then "step N SUM" per
 * step, "done"; exit 3 if the coroutine's stack was written by something
 * else ("overwritten ..."), 0 at the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK (16 << 10)
#define MARGIN 512
#define PAINT 0x5a

static ucontext_t main_ctx, co_ctx;
static unsigned char *stack_lo;
static uint64_t result;
static int steps, step;

static uint64_t walk(unsigned n, uint64_t x)
{
    if (n == 0)
        return x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t a = walk(n - 1, x ^ n);
    return (a ^ (a >> 13)) + n;
}

/* Paints below the current stack pointer, waits for a byte, and checks. */
static __attribute__((noinline)) void wait_for_go(void)
{
    unsigned char *sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    volatile unsigned char *p = stack_lo;
    unsigned char *top = sp - MARGIN;
    while (p < top)
        *p++ = PAINT;
    char c;
    if (read(0, &c, 1) != 1) {
        fprintf(stderr, "sig-coroutine: stdin ended\n");
        exit(4);
    }
    for (p = stack_lo; p < top; p++)
        if (*p != PAINT) {
            printf("overwritten %ld bytes below the coroutine's stack pointer\n", (long)(sp - (unsigned char *)p));
            fflush(stdout);
            exit(3);
        }
}

static void coroutine(void)
{
    uint64_t x = 1;
    for (step = 0; step < steps; step++) {
        for (int i = 0; i < 20000; i++)
            x = walk(i % 40, x);
        wait_for_go();
        result = x;
        swapcontext(&co_ctx, &main_ctx);
    }
}

static int run(const char *mode);

static void *in_thread(void *mode)
{
    return (void *)(long)run(mode);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "own") && strcmp(argv[1], "none") && strcmp(argv[1], "thread"))) {
        fprintf(stderr, "usage: sig-coroutine own|none|thread STEPS\n");
        return 2;
    }
    steps = atoi(argv[2]);
    if (strcmp(argv[1], "thread"))
        return run(argv[1]);
    pthread_t t;
    void *status;
    if (pthread_create(&t, NULL, in_thread, argv[1]) || pthread_join(t, &status))
        return 1;
    return (int)(long)status;
}

static int run(const char *mode)
{
    if (!strcmp(mode, "own")) {
        stack_t ss = {.ss_sp = malloc(64 << 10), .ss_size = 64 << 10};
        if (!ss.ss_sp || sigaltstack(&ss, NULL)) {
            perror("sigaltstack");
            return 1;
        }
    }
    unsigned char *m = mmap(NULL, 4096 + STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE)) {
        perror("mmap");
        return 1;
    }
    stack_lo = m + 4096;
    /* Bind read now: the dynamic linker's lazy binding saves every
     * register on the caller's stack, which would be the coroutine's. */
    if (read(0, NULL, 0) < 0) {
        perror("read");
        return 1;
    }
    printf("stack %lx %lx\n", (unsigned long)stack_lo, (unsigned long)(stack_lo + STACK));
    fflush(stdout);
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = stack_lo;
    co_ctx.uc_stack.ss_size = STACK;
    co_ctx.uc_link = &main_ctx;
    makecontext(&co_ctx, coroutine, 0);
    for (int i = 0; i < steps; i++) {
        swapcontext(&main_ctx, &co_ctx);
        printf("step %d %016llx\n", i, (unsigned long long)result);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
