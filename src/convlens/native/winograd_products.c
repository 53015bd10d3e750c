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
 * One matrix product per tile position xi, (P, C) @ (C, K), computed ROWS tiles by VECS vectors
 * of output channels at a time: for each c, VECS vectors of U's row c are loaded once and each of
 * the ROWS tiles' V[xi][p][c] is broadcast against them, ROWS * VECS multiply-adds into as many
 * registers (the register block of every BLAS kernel; V's rows and U's row stay in L1). With
 * AVX-512: 6 tiles x 4 vectors of 16 channels, 24 of its 32 registers; otherwise 6 x 2 vectors of 8
 * (12 of AVX2's 16). Each M value is one running sum over c ascending, one fused multiply-add per
 * term (GCC contracts a*b + s in this file only; the rest of the core is built without): the same
 * bits at either vector width, since lanes never meet, on every CPU with FMA (x86-64-v3 and up);
 * the baseline clone (no FMA) rounds each product first.
 * K must be a multiple of 16 (winograd.c checks).
 */
#include <stdint.h>
#include <string.h>

#pragma GCC optimize("fp-contract=fast")

enum { ROWS = 6 };    /* tiles per register block */
enum { PANEL = 64 };  /* output channels per panel of U */
enum { DEPTH = 128 }; /* channels per pass over a block of U: its rows for 64 output channels, 32 KiB, stay in L1 */

typedef float Wide __attribute__((vector_size(16 * sizeof(float)))); /* one AVX-512 register */
typedef float Half __attribute__((vector_size(8 * sizeof(float))));  /* one AVX2 register */

/* One register block: M[p0 .. p0+rows)[k0 .. k0 + vecs*lanes) of one xi, the terms of channels
 * c_first .. c_end summed from zero, then stored (c_first = 0) or added to what M holds; `rows` and
 * `vecs` constants where it is expanded. Vec: Wide or Half. A macro, so that the two vector widths
 * share one text. */
#define REGISTER_BLOCK(Vec, rows, vecs)                                                                         \
    do {                                                                                                        \
        enum { L = sizeof(Vec) / sizeof(float) };                                                               \
        Vec sums[rows][vecs];                                                                                   \
        for (int r = 0; r < (rows); r++)                                                                        \
            for (int j = 0; j < (vecs); j++) sums[r][j] = (Vec){0};                                             \
        const int64_t panel = k0 / PANEL * PANEL, panel_width = K - panel < PANEL ? K - panel : PANEL;         \
        const float *u_row = u_xi + panel * C + c_first * panel_width + (k0 - panel); /* U[xi][c][k0 ..] */    \
        for (int64_t c = c_first; c < c_end; c++, u_row += panel_width) {                                       \
            Vec weights[vecs];                                                                                  \
            for (int j = 0; j < (vecs); j++) memcpy(&weights[j], u_row + j * L, sizeof(Vec));                   \
            for (int r = 0; r < (rows); r++) {                                                                  \
                const float tile_value = v_tiles[r * C + c]; /* V[xi][p0 + r][c], broadcast */                  \
                for (int j = 0; j < (vecs); j++) sums[r][j] += tile_value * weights[j];                         \
            }                                                                                                   \
        }                                                                                                       \
        for (int r = 0; r < (rows); r++) {                                                                      \
            for (int j = 0; j < (vecs); j++) {                                                                  \
                float *target = m_tiles + r * K + k0 + j * L;                                                   \
                if (c_first > 0) {                                                                              \
                    Vec partial;                                                                                \
                    memcpy(&partial, target, sizeof(Vec));                                                      \
                    sums[r][j] = partial + sums[r][j];                                                          \
                }                                                                                               \
                memcpy(target, &sums[r][j], sizeof(Vec));                                                       \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* Every xi, channels in blocks of DEPTH, output channels k_first .. k_end in blocks of vecs
 * vectors, ROWS tiles at a time (the last block of tiles `tail` rows: one expansion per count, each
 * with its own constants). */
#define ALL_PRODUCTS(Vec, vecs, k_first, k_end)                                                                 \
    do {                                                                                                        \
        for (int64_t xi = 0; xi < positions; xi++) {                                                            \
            const float *u_xi = u + xi * C * K;                                                                 \
            for (int64_t c_first = 0; c_first < C; c_first += DEPTH) {                                          \
                const int64_t c_end = C - c_first < DEPTH ? C : c_first + DEPTH;                                \
                for (int64_t k0 = (k_first); k0 < (k_end); k0 += (vecs) * (int64_t)(sizeof(Vec) / 4)) {       \
                    for (int64_t p0 = 0; p0 < tiles; p0 += ROWS) {                                              \
                        const float *v_tiles = v + xi * v_xi_stride + p0 * C;                                   \
                        float *m_tiles = m + xi * m_xi_stride + p0 * K;                                         \
                        const int64_t tail = tiles - p0 < ROWS ? tiles - p0 : ROWS;                             \
                        if (tail == ROWS) REGISTER_BLOCK(Vec, ROWS, vecs);                                      \
                        else if (tail == 5) REGISTER_BLOCK(Vec, 5, vecs);                                       \
                        else if (tail == 4) REGISTER_BLOCK(Vec, 4, vecs);                                       \
                        else if (tail == 3) REGISTER_BLOCK(Vec, 3, vecs);                                       \
                        else if (tail == 2) REGISTER_BLOCK(Vec, 2, vecs);                                       \
                        else REGISTER_BLOCK(Vec, 1, vecs);                                                      \
                    }                                                                                           \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* Blocks of 64 output channels, then of 16 for the rest (K = 80: one of each). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("arch=x86-64-v4")))
#endif
static void products_wide(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                          int64_t positions, int64_t tiles, int64_t C, int64_t K) {
    const int64_t K64 = K / 64 * 64;
    ALL_PRODUCTS(Wide, 4, 0, K64);
    ALL_PRODUCTS(Wide, 1, K64, K);
}

/* Blocks of 16 output channels (two vectors of 8). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static void products_half(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                          int64_t positions, int64_t tiles, int64_t C, int64_t K) {
    ALL_PRODUCTS(Half, 2, 0, K);
}

/* Whether this CPU runs products_wide (AVX-512 F, VL and the rest of x86-64-v4). */
static int has_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
#else
    return 0;
#endif
}

/* M = V @ U for every xi (see the top of the file). wide != 0: the AVX-512 loop where the CPU has
 * it (the same bits as the other; the tests compare them). */
void convlens_winograd_products(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                                int64_t positions, int64_t tiles, int64_t C, int64_t K, int wide) {
    if (wide && has_avx512()) {
        products_wide(v, v_xi_stride, u, m, m_xi_stride, positions, tiles, C, K);
    } else {
        products_half(v, v_xi_stride, u, m, m_xi_stride, positions, tiles, C, K);
    }
}
