/* fd-at.h: at(FD, WANT) puts a freshly opened descriptor at number WANT
 * (dup2, then close the original), or exits 1 if opening it failed.
 * Shared by the demos that lay out a descriptor table by number. */
#ifndef FD_AT_H
#define FD_AT_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void at(int fd, int want) {
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    if (fd != want) {
        if (dup2(fd, want) != want) {
            perror("dup2");
            exit(1);
        }
        close(fd);
    }
}
#endif
