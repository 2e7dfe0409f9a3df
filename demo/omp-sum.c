/* An OpenMP program (libgomp's thread pool) computing a known result:
 * the sum of i*i mod 1000003 over 40 slices, with progress on stderr. */
#include <omp.h>
#include <stdio.h>

int main(void) {
    const long slice = 40000000;
    unsigned long long total = 0;
    for (int s = 0; s < 40; s++) {
        unsigned long long part = 0;
#pragma omp parallel for reduction(+ : part) num_threads(4)
        for (long i = s * slice; i < (s + 1) * slice; i++)
            part += (unsigned long long)(i % 1000003) * (i % 1000003);
        total += part;
        fprintf(stderr, "slice %d\n", s);
    }
    printf("total %llu\n", total);
    return 0;
}
