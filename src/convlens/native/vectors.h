/* vectors.h: GCC's vector extension types of the compiled core's products and transposes. Each +
 * and * is one elementwise IEEE operation per lane; loads and stores go through memcpy, at any
 * alignment. */
#ifndef CONVLENS_VECTORS_H
#define CONVLENS_VECTORS_H

#include <string.h>

/* CPU dispatch (GCC on x86-64): the AVX-512 loops, the loops cloned for AVX2 and the baseline CPU,
 * and those cloned for all three; the dynamic loader picks the widest the CPU has. A build for one
 * instruction set (setup.py's CONVLENS_NATIVE_ARCH, e.g. x86-64-v3: an AVX2 machine's kernels on
 * any CPU that has AVX2, for measuring them beside torch held to AVX2) compiles every loop for that
 * set alone and runs the AVX-512 loops only where that set has AVX-512. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(CONVLENS_ONE_ARCH)
#define FOR_AVX512 __attribute__((target("arch=x86-64-v4")))
#define FOR_AVX2_AND_BASELINE __attribute__((target_clones("arch=x86-64-v3", "default")))
#define FOR_EVERY_CPU __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define HAVE_AVX512_LOOPS 1
/* Whether this CPU runs the x86-64-v4 (AVX-512) loops. */
static inline int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
}
/* Whether it runs the x86-64-v3 (AVX2 and FMA) ones. */
static inline int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3");
}
#else
#define FOR_AVX512
#define FOR_AVX2_AND_BASELINE
#define FOR_EVERY_CPU
#ifdef __AVX512F__
#define HAVE_AVX512_LOOPS 1
#endif
static inline int cpu_has_avx512(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}
static inline int cpu_has_avx2(void) {
#if defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return 0;
#endif
}
#endif

typedef float Wide __attribute__((vector_size(16 * sizeof(float)))); /* one AVX-512 register */
typedef float Half __attribute__((vector_size(8 * sizeof(float))));  /* one AVX2 register, two SSE ones */
typedef int HalfIndex __attribute__((vector_size(8 * sizeof(int))));

static inline __attribute__((always_inline)) Half load_half(const float *from) {
    Half half;
    memcpy(&half, from, sizeof half);
    return half;
}
static inline __attribute__((always_inline)) void store_half(float *to, Half half) { memcpy(to, &half, sizeof half); }

#endif
