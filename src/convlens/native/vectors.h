/* vectors.h: GCC's vector extension types of the compiled core's products and transposes. Each +
 * and * is one elementwise IEEE operation per lane; loads and stores go through memcpy, at any
 * alignment. */
#ifndef CONVLENS_VECTORS_H
#define CONVLENS_VECTORS_H

#include <string.h>

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
