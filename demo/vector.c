/* vector: a long pure-compute loop whose state lives in vector registers.
 *
 *   vector [STEPS [ITERS_PER_STEP]]
 *
 * With -march=native on an AVX-512 machine the accumulators are zmm
 * registers, the lane masks are opmask (k) registers, and one more
 * accumulator is an x87 long double; the MXCSR rounding mode is set to
 * "toward zero" so that a restart that loses MXCSR changes the result.
 * Without AVX-512 the same computation runs on ymm (AVX2) or xmm (SSE2).
 *
 * The hot loop makes no system call for ITERS_PER_STEP iterations (about
 * a tenth of a second); between steps it prints "vector: progress I/STEPS"
 * on stderr. At the end it prints on stdout a digest of the exact bits of
 * every accumulator, so a checkpoint that lands anywhere in the loop and
 * restores any register imperfectly gives a different digest.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 30;
    long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 4000000;
    uint64_t h = 0xcbf29ce484222325ULL;

    _MM_SET_ROUNDING_MODE(_MM_ROUND_TOWARD_ZERO);
    long double x87 = 1.0L;

#if defined(__AVX512F__) && defined(__AVX512DQ__)
    const char *isa = "avx512";
    __m512d a0 = _mm512_set_pd(1, 2, 3, 4, 5, 6, 7, 8);
    __m512d a1 = _mm512_set1_pd(0.5);
    __m512d a2 = _mm512_set_pd(-1, -2, -3, -4, -5, -6, -7, -8);
    __m512d a3 = _mm512_set1_pd(3.25);
    __m512i s0 = _mm512_set_epi64(1, 2, 3, 4, 5, 6, 7, 8);
    __m512i s1 = _mm512_set_epi64(0x9e3779b97f4a7c15LL, 11, 12, 13, 14, 15, 16, 17);
    __mmask8 k = 0x55;
    const __m512d mul = _mm512_set1_pd(0.9999991);
    const __m512d add = _mm512_set1_pd(0.3333333);
    const __m512d scale = _mm512_set1_pd(1.0 / 9007199254740992.0);
    for (long step = 1; step <= steps; step++) {
        for (long i = 0; i < iters; i++) {
            /* xorshift64 on eight lanes */
            s0 = _mm512_xor_si512(s0, _mm512_slli_epi64(s0, 13));
            s0 = _mm512_xor_si512(s0, _mm512_srli_epi64(s0, 7));
            s0 = _mm512_xor_si512(s0, _mm512_slli_epi64(s0, 17));
            s1 = _mm512_add_epi64(s1, s0);
            __m512d r = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(s0, 11)), scale);
            a0 = _mm512_fmadd_pd(a0, mul, r);
            a1 = _mm512_mask_fmadd_pd(a1, k, mul, add);
            a2 = _mm512_mask_add_pd(a2, (__mmask8)~k, a2, _mm512_mul_pd(r, add));
            a2 = _mm512_mul_pd(a2, mul);
            a3 = _mm512_sqrt_pd(_mm512_add_pd(_mm512_mul_pd(a3, a3), r));
            a3 = _mm512_min_pd(a3, _mm512_set1_pd(1e6));
            k = _mm512_cmplt_epu64_mask(s0, s1) ^ (__mmask8)i;
            x87 = x87 * 0.99999987L + (long double)(i & 255);
        }
        fprintf(stderr, "vector: progress %ld/%ld\n", step, steps);
    }
    double out[4][8];
    uint64_t ints[2][8];
    _mm512_storeu_pd(out[0], a0);
    _mm512_storeu_pd(out[1], a1);
    _mm512_storeu_pd(out[2], a2);
    _mm512_storeu_pd(out[3], a3);
    _mm512_storeu_si512(ints[0], s0);
    _mm512_storeu_si512(ints[1], s1);
    unsigned kk = k;
    h = fnv(h, &kk, sizeof kk);
#elif defined(__AVX2__) && defined(__FMA__)
    const char *isa = "avx2";
    __m256d a0 = _mm256_set_pd(1, 2, 3, 4);
    __m256d a1 = _mm256_set1_pd(0.5);
    __m256d a2 = _mm256_set_pd(-1, -2, -3, -4);
    __m256d a3 = _mm256_set1_pd(3.25);
    __m256i s0 = _mm256_set_epi64x(1, 2, 3, 4);
    __m256i s1 = _mm256_set_epi64x(0x9e3779b97f4a7c15LL, 11, 12, 13);
    const __m256d mul = _mm256_set1_pd(0.9999991);
    const __m256d add = _mm256_set1_pd(0.3333333);
    const __m256d scale = _mm256_set1_pd(1.0 / 4294967296.0);
    for (long step = 1; step <= steps; step++) {
        for (long i = 0; i < iters; i++) {
            s0 = _mm256_xor_si256(s0, _mm256_slli_epi64(s0, 13));
            s0 = _mm256_xor_si256(s0, _mm256_srli_epi64(s0, 7));
            s0 = _mm256_xor_si256(s0, _mm256_slli_epi64(s0, 17));
            s1 = _mm256_add_epi64(s1, s0);
            __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                _mm256_srli_epi64(s0, 33), _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0)));
            __m256d r = _mm256_mul_pd(_mm256_cvtepi32_pd(lo), scale);
            __m256d m = _mm256_castsi256_pd(_mm256_cmpgt_epi64(s0, s1));
            a0 = _mm256_fmadd_pd(a0, mul, r);
            a1 = _mm256_blendv_pd(a1, _mm256_fmadd_pd(a1, mul, add), m);
            a2 = _mm256_mul_pd(_mm256_add_pd(a2, _mm256_mul_pd(r, add)), mul);
            a3 = _mm256_sqrt_pd(_mm256_add_pd(_mm256_mul_pd(a3, a3), r));
            a3 = _mm256_min_pd(a3, _mm256_set1_pd(1e6));
            x87 = x87 * 0.99999987L + (long double)(i & 255);
        }
        fprintf(stderr, "vector: progress %ld/%ld\n", step, steps);
    }
    double out[4][4];
    uint64_t ints[2][4];
    _mm256_storeu_pd(out[0], a0);
    _mm256_storeu_pd(out[1], a1);
    _mm256_storeu_pd(out[2], a2);
    _mm256_storeu_pd(out[3], a3);
    _mm256_storeu_si256((__m256i *)ints[0], s0);
    _mm256_storeu_si256((__m256i *)ints[1], s1);
#else
    const char *isa = "sse2";
    __m128d a0 = _mm_set_pd(1, 2), a1 = _mm_set1_pd(0.5), a2 = _mm_set_pd(-1, -2);
    __m128d a3 = _mm_set1_pd(3.25);
    __m128i s0 = _mm_set_epi64x(1, 2), s1 = _mm_set_epi64x(0x9e3779b97f4a7c15LL, 11);
    const __m128d mul = _mm_set1_pd(0.9999991), add = _mm_set1_pd(0.3333333);
    const __m128d scale = _mm_set1_pd(1.0 / 4294967296.0);
    for (long step = 1; step <= steps; step++) {
        for (long i = 0; i < iters; i++) {
            s0 = _mm_xor_si128(s0, _mm_slli_epi64(s0, 13));
            s0 = _mm_xor_si128(s0, _mm_srli_epi64(s0, 7));
            s0 = _mm_xor_si128(s0, _mm_slli_epi64(s0, 17));
            s1 = _mm_add_epi64(s1, s0);
            __m128d r = _mm_mul_pd(
                _mm_cvtepi32_pd(_mm_shuffle_epi32(_mm_srli_epi64(s0, 33), 0x08)), scale);
            a0 = _mm_add_pd(_mm_mul_pd(a0, mul), r);
            a1 = _mm_add_pd(_mm_mul_pd(a1, mul), add);
            a2 = _mm_mul_pd(_mm_add_pd(a2, _mm_mul_pd(r, add)), mul);
            a3 = _mm_min_pd(_mm_sqrt_pd(_mm_add_pd(_mm_mul_pd(a3, a3), r)), _mm_set1_pd(1e6));
            x87 = x87 * 0.99999987L + (long double)(i & 255);
        }
        fprintf(stderr, "vector: progress %ld/%ld\n", step, steps);
    }
    double out[4][2];
    uint64_t ints[2][2];
    _mm_storeu_pd(out[0], a0);
    _mm_storeu_pd(out[1], a1);
    _mm_storeu_pd(out[2], a2);
    _mm_storeu_pd(out[3], a3);
    _mm_storeu_si128((__m128i *)ints[0], s0);
    _mm_storeu_si128((__m128i *)ints[1], s1);
#endif
    h = fnv(h, out, sizeof out);
    h = fnv(h, ints, sizeof ints);
    h = fnv(h, &x87, 10); /* the 80 significant bits of the long double */
    unsigned mxcsr = _mm_getcsr();
    h = fnv(h, &mxcsr, sizeof mxcsr);
    printf("vector: isa %s, %ld steps of %ld iterations\n", isa, steps, iters);
    printf("vector: a0[0] %.17g x87 %.21Lg mxcsr %#x\n", out[0][0], x87, mxcsr);
    printf("vector: digest %016llx\n", (unsigned long long)h);
    return 0;
}
