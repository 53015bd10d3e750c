/* winograd_products.c: the t*t products of the fused Winograd (winograd.c's convlens_winograd_fused)
 * for one block of tiles that sits in the cache, their sums in registers.
 *
 *   M[xi][p][k] = sum over c < C of V[xi][p][c] * U[xi][c][k]
 *
 *   V (t*t, P, C)   the block's transformed input tiles, V[xi] contiguous, v_xi_stride floats apart
 *   U (t*t, C, K)   the transformed weight, in panels of PANEL = 64 output channels (the last one
 *                   narrower: K % 64): U[xi][c][k] at xi*C*K + panel*C + c*width + (k - panel),
 *                   panel = k / 64 * 64 (transforms.py's ``panels``). A panel's rows are contiguous:
 *                   a block of DEPTH of them, 32 KiB, stays in L1 (rows K floats apart fell in a
 *                   few cache sets: 256 and 512 channels ran 10-20% slower)
 *   M (t*t, P, K)   the products, M[xi] contiguous, m_xi_stride floats apart
 *
 * One matrix product per tile position xi, (P, C) @ (C, K), ROWS tiles by 64 (AVX-512) or 16
 * output channels at a time in registers (products.h: the register block, its vector widths and
 * its bits), DEPTH channels per pass. GCC contracts a*b + s into one fused multiply-add in this
 * file (and gemm.c) only; the rest of the core is built without. The baseline clone (no FMA)
 * rounds each product first.
 * K must be a multiple of 16 (winograd.c checks).
 */
#include <stdint.h>
#include <string.h>

#pragma GCC optimize("fp-contract=fast")

#include "products.h"

#define VALUE(r, c) v_tiles[(r) * C + (c)] /* V[xi][p0 + r][c] */

/* Every xi, channels in blocks of DEPTH, output channels k_first .. k_end in blocks of vecs
 * vectors, ROWS tiles at a time. */
#define ALL_PRODUCTS(Vec, vecs, k_first, k_end)                                                                 \
    do {                                                                                                        \
        for (int64_t xi = 0; xi < positions; xi++) {                                                            \
            const float *u_xi = u + xi * C * K;                                                                 \
            for (int64_t c_first = 0; c_first < C; c_first += DEPTH) {                                          \
                const int64_t c_end = C - c_first < DEPTH ? C : c_first + DEPTH;                                \
                for (int64_t k0 = (k_first); k0 < (k_end); k0 += (vecs) * (int64_t)(sizeof(Vec) / 4)) {       \
                    const int64_t panel = k0 / PANEL * PANEL;                                                   \
                    const int64_t panel_width = K - panel < PANEL ? K - panel : PANEL;                          \
                    const float *weights = u_xi + panel * C + c_first * panel_width + (k0 - panel);             \
                    const int64_t target_stride = K;                                                            \
                    for (int64_t p0 = 0; p0 < tiles; p0 += ROWS) {                                              \
                        const float *v_tiles = v + xi * v_xi_stride + p0 * C;                                   \
                        float *target = m + xi * m_xi_stride + p0 * K + k0;                                     \
                        const int64_t tail = tiles - p0 < ROWS ? tiles - p0 : ROWS;                             \
                        REGISTER_BLOCK_ROWS(Vec, tail, vecs);                                                   \
                    }                                                                                           \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* Blocks of 64 output channels, then the rest in one block (K = 80: 64, then 16). */
FOR_AVX512
static void products_wide(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                          int64_t positions, int64_t tiles, int64_t C, int64_t K) {
    WIDE_BLOCKS(ALL_PRODUCTS, 0, K);
}

/* Blocks of 16 output channels (two vectors of 8). */
FOR_AVX2_AND_BASELINE
static void products_half(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                          int64_t positions, int64_t tiles, int64_t C, int64_t K) {
    ALL_PRODUCTS(Half, 2, 0, K);
}

/* M = V @ U for every xi (see the top of the file). wide != 0: the AVX-512 loop where the CPU has
 * it (the same bits as the other; the tests compare them). */
void convlens_winograd_products(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                                int64_t positions, int64_t tiles, int64_t C, int64_t K, int wide) {
    if (wide && cpu_has_avx512()) {
        products_wide(v, v_xi_stride, u, m, m_xi_stride, positions, tiles, C, K);
    } else {
        products_half(v, v_xi_stride, u, m, m_xi_stride, positions, tiles, C, K);
    }
}
