/* tree-fork N: a process tree of N small processes (the benchmark's tree
 * checkpoint): the first forks N-1 children that wait, says "ready" once
 * they all are waiting, then waits for them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    for (int i = 1; i < n; i++) {
        if (fork() == 0) {
            close(ready[0]);
            write(ready[1], "x", 1);
            for (;;)
                pause();
        }
    }
    close(ready[1]);
    char c;
    for (int i = 1; i < n; i++)
        read(ready[0], &c, 1);
    puts("ready");
    fflush(stdout);
    for (;;)
        pause();
}
