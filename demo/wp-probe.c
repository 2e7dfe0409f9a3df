/* wp-probe: does this kernel track writes the way `ckpt --incremental`
 * uses it (preload/src/dirty.rs, sys/src/wp.rs)? Unprivileged.
 *
 * A userfaultfd opened with UFFD_USER_MODE_ONLY, features WP_ASYNC and
 * WP_UNPOPULATED; for each kind of mapping (64 pages, 10 of them touched):
 * register it for write protection, then PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC for pages written (or mapped
 * to the zero page), which reports them and protects them again. Prints,
 * per kind, one line:
 *
 *   KIND: first F, clean C, written W, again A, dropped D
 *
 * F: pages reported right after registering (all 64), C: a second scan (0),
 * W: after a write to a populated page, one to an unpopulated page and a
 * read() into a third (3), A: a scan after that (0), D: after MADV_DONTNEED
 * of a page and a read of it (1 for private anonymous memory: the zero
 * page). Or "KIND: register: ERROR". Without the kernel's support, one line
 * "unsupported: ..." and exit status 2. (The constants are spelled out: the
 * C headers of Debian 12 predate them.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct page_region {
    uint64_t start, end, categories;
};
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING 1
#define PM_SCAN_CHECK_WPASYNC 2
#define PAGE_IS_WRITTEN 2
#define PAGE_IS_PFNZERO 32
#define WP_UNPOPULATED (1 << 13)
#define WP_ASYNC (1 << 15)
#define PAGES 64

static int pagemap;

static long scan(char *a, int protect) {
    struct page_region r[PAGES];
    struct pm_scan_arg arg = {.size = sizeof arg,
        .flags = (protect ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
        .start = (uint64_t)a,
        .end = (uint64_t)a + PAGES * 4096,
        .vec = (uint64_t)r,
        .vec_len = PAGES,
        .category_anyof_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO,
        .return_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO};
    long n = ioctl(pagemap, PAGEMAP_SCAN, &arg), pages = 0;
    if (n < 0) return -1;
    for (long i = 0; i < n; i++) pages += (r[i].end - r[i].start) / 4096;
    return pages;
}

int main(void) {
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
    struct uffdio_api api = {.api = UFFD_API, .features = WP_ASYNC | WP_UNPOPULATED};
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
        printf("unsupported: userfaultfd with asynchronous write protection: %m\n");
        return 2;
    }
    pagemap = open("/proc/self/pagemap", O_RDONLY);
    const char *kinds[] = {"anon private", "file private", "anon shared", "memfd shared"};
    for (int k = 0; k < 4; k++) {
        size_t len = PAGES * 4096;
        int fd = -1;
        if (k == 1) {
            FILE *f = tmpfile();
            fd = dup(fileno(f));
        } else if (k == 3) {
            fd = memfd_create("probe", 0);
        }
        if (fd >= 0 && ftruncate(fd, len)) return 1;
        int flags = (k < 2 ? MAP_PRIVATE : MAP_SHARED) | (fd < 0 ? MAP_ANONYMOUS : 0);
        char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
        if (a == MAP_FAILED) return 1;
        memset(a, 1, 10 * 4096);
        struct uffdio_register reg = {.range = {(uint64_t)a, len}, .mode = UFFDIO_REGISTER_MODE_WP};
        if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
            printf("%s: register: %m\n", kinds[k]);
            continue;
        }
        long first = scan(a, 1), clean = scan(a, 0);
        a[5 * 4096] = 2;  /* populated */
        a[40 * 4096] = 3; /* not populated yet */
        int p[2];
        if (pipe(p) || write(p[1], "hello", 5) != 5 || read(p[0], a + 20 * 4096, 5) != 5) return 1;
        long written = scan(a, 1), again = scan(a, 0);
        madvise(a + 7 * 4096, 4096, MADV_DONTNEED);
        volatile char c = a[7 * 4096];
        (void)c;
        long dropped = scan(a, 0);
        printf("%s: first %ld, clean %ld, written %ld, again %ld, dropped %ld\n", kinds[k], first, clean, written,
            again, dropped);
    }
    return 0;
}
