/* vectors.h: GCC's vector extension types of the compiled core's products and transposes. Each +
 * and * is one elementwise IEEE operation per lane; loads and stores go through memcpy, at any
 * alignment. */
#ifndef CONVLENS_VECTORS_H
#define CONVLENS_VECTORS_H

#include <string.h>

/* CPU dispatch (GCC on x86-64): the AVX-512 loops, the loops cloned for AVX2 and the baseline CPU,
 * and those cloned for all three; the dynamic loader picks the widest the CPU has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FOR_AVX512 __attribute__((target("arch=x86-64-v4")))
#define FOR_AVX2_AND_BASELINE __attribute__((target_clones("arch=x86-64-v3", "default")))
#define FOR_EVERY_CPU __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FOR_AVX512
#define FOR_AVX2_AND_BASELINE
#define FOR_EVERY_CPU
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
