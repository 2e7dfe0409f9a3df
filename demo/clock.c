/* clock: reads the time through every user-space path (clock_gettime
 * REALTIME and MONOTONIC, gettimeofday, time: all vDSO calls on x86-64)
 * and prints it, so that a restart can be checked for a working vDSO with
 * current times.
 *
 *   clock [TICKS [INTERVAL_MS]]
 *
 * Prints "clock: start" then, every INTERVAL_MS, one flushed line
 *   tick I real SEC.NSEC tod SEC.USEC time SEC mono_delta_ns D real_delta_ns R
 * where the deltas are since the previous tick, then "clock: done". A tick
 * whose three wall clocks disagree by more than a second, or whose monotonic
 * clock went backwards, also prints a line starting "clock: BAD".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

int main(int argc, char **argv) {
    long ticks = argc > 1 ? strtol(argv[1], NULL, 10) : 30;
    long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
    struct timespec real0, mono0;
    clock_gettime(CLOCK_REALTIME, &real0);
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    printf("clock: start\n");
    fflush(stdout);
    for (long i = 0; i < ticks; i++) {
        struct timespec d = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
        nanosleep(&d, NULL);
        struct timespec real, mono, coarse;
        struct timeval tod;
        clock_gettime(CLOCK_REALTIME, &real);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
        gettimeofday(&tod, NULL);
        time_t t = time(NULL);
        int64_t mono_delta = ns(mono) - ns(mono0);
        int64_t real_delta = ns(real) - ns(real0);
        printf("tick %ld real %lld.%09ld tod %lld.%06ld time %lld mono_delta_ns %" PRId64
               " real_delta_ns %" PRId64 "\n",
               i, (long long)real.tv_sec, real.tv_nsec, (long long)tod.tv_sec, (long)tod.tv_usec,
               (long long)t, mono_delta, real_delta);
        int64_t tod_ns = (int64_t)tod.tv_sec * 1000000000 + tod.tv_usec * 1000;
        if (mono_delta < 0 || llabs(tod_ns - ns(real)) > 1000000000 ||
            llabs((int64_t)t - real.tv_sec) > 1 || llabs(ns(coarse) - ns(real)) > 1000000000)
            printf("clock: BAD at tick %ld\n", i);
        fflush(stdout);
        real0 = real;
        mono0 = mono;
    }
    printf("clock: done\n");
    return 0;
}
