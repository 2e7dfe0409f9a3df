/* popread: the benchmark's baseline for a restart.
 *
 *   popread FILE
 *
 * What restoring memory from a file costs without ckpt: maps anonymous
 * memory the size of FILE, faults it in with MADV_POPULATE_WRITE, and
 * reads the whole file into it (one thread, 4 MiB per read); prints the
 * size and exits.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: popread FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror("popread: open");
        return 1;
    }
    size_t len = st.st_size;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || madvise(mem, len, MADV_POPULATE_WRITE) != 0) {
        perror("popread: mmap");
        return 1;
    }
    for (size_t done = 0; done < len;) {
        size_t n = len - done < (4u << 20) ? len - done : 4u << 20;
        ssize_t r = read(fd, mem + done, n);
        if (r <= 0) {
            perror("popread: read");
            return 1;
        }
        done += r;
    }
    printf("popread: %zu bytes\n", len);
    return 0;
}
