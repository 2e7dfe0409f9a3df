/* The seed's second demo: counting-test N prints N, N+1, ... N+9, one per
 * second. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    for (long i = n; i < n + 10; i++) {
        printf("%ld\n", i);
        sleep(1);
    }
    return 0;
}
