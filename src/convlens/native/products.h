/* products.h: the register block of the compiled matrix products (winograd_products.c, gemm.c).
 *
 *   M[p][k] (+)= sum over c in [c_first, c_end) of VALUE(p, c) * U[c][k]
 *
 * for `rows` rows p (tiles, or output positions) and `vecs` vectors of output channels k: for each
 * c, the vecs vectors of U's row c are loaded once and each row's VALUE(p, c) is broadcast against
 * them, rows * vecs multiply-adds into as many registers (the register block of every BLAS
 * kernel). With AVX-512: 6 rows x 4 vectors of 16 channels, 24 of its 32 registers; otherwise 6 x 2
 * vectors of 8 (12 of AVX2's 16). Each M value is one running sum over c ascending, one fused
 * multiply-add per term in the files that include this (they turn GCC's contraction on): the same
 * bits at either vector width, since lanes never meet, on every CPU with FMA (x86-64-v3 and up).
 *
 * U is read in panels of PANEL output channels (its rows contiguous, panel_width floats apart: rows
 * K floats apart fell in a few L1 cache sets), DEPTH rows of a panel per pass (32 KiB: they stay
 * in L1 while the rows go by); a pass's sums start from zero and are stored (c_first = 0) or
 * added to what M holds.
 */
#ifndef CONVLENS_PRODUCTS_H
#define CONVLENS_PRODUCTS_H

#include <stdint.h>
#include <string.h>

#include "vectors.h"

enum { ROWS = 6 };    /* rows per register block */
enum { PANEL = 64 };  /* output channels per panel of U */
enum { DEPTH = 128 }; /* rows of a panel per pass */

/* The block: `rows` and `vecs` constants where it is expanded; Vec: Wide or Half; VALUE(p, c) a
 * macro of the including file. Reads from its scope: `weights` (U's row c_first at column k0, in
 * its panel), `panel_width`, `c_first`, `c_end`, `target` (M's row p0 at column k0) and
 * `target_stride` (floats between M's rows). A macro, so that the two vector widths and the two
 * files share one text. */
#define REGISTER_BLOCK(Vec, rows, vecs)                                                                         \
    do {                                                                                                        \
        enum { L = sizeof(Vec) / sizeof(float) };                                                               \
        Vec sums[rows][vecs];                                                                                   \
        for (int r = 0; r < (rows); r++)                                                                        \
            for (int j = 0; j < (vecs); j++) sums[r][j] = (Vec){0};                                             \
        const float *u_row = weights;                                                                           \
        for (int64_t c = c_first; c < c_end; c++, u_row += panel_width) {                                       \
            Vec row_weights[vecs];                                                                              \
            for (int j = 0; j < (vecs); j++) memcpy(&row_weights[j], u_row + j * L, sizeof(Vec));               \
            for (int r = 0; r < (rows); r++) {                                                                  \
                const float value = VALUE(r, c); /* broadcast */                                                \
                for (int j = 0; j < (vecs); j++) sums[r][j] += value * row_weights[j];                          \
            }                                                                                                   \
        }                                                                                                       \
        for (int r = 0; r < (rows); r++) {                                                                      \
            for (int j = 0; j < (vecs); j++) {                                                                  \
                float *to = target + r * target_stride + j * L;                                                 \
                if (c_first > 0) {                                                                              \
                    Vec partial;                                                                                \
                    memcpy(&partial, to, sizeof(Vec));                                                          \
                    sums[r][j] = partial + sums[r][j];                                                          \
                }                                                                                               \
                memcpy(to, &sums[r][j], sizeof(Vec));                                                           \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* REGISTER_BLOCK for `tail` rows (at most ROWS): one expansion per count, each with its constants. */
#define REGISTER_BLOCK_ROWS(Vec, tail, vecs)                                                                    \
    do {                                                                                                        \
        if ((tail) == ROWS) REGISTER_BLOCK(Vec, ROWS, vecs);                                                    \
        else if ((tail) == 5) REGISTER_BLOCK(Vec, 5, vecs);                                                     \
        else if ((tail) == 4) REGISTER_BLOCK(Vec, 4, vecs);                                                     \
        else if ((tail) == 3) REGISTER_BLOCK(Vec, 3, vecs);                                                     \
        else if ((tail) == 2) REGISTER_BLOCK(Vec, 2, vecs);                                                     \
        else REGISTER_BLOCK(Vec, 1, vecs);                                                                      \
    } while (0)

/* LOOP(Vec, vecs, first, end), a file's loop over output channels first .. end in blocks of vecs
 * vectors, on AVX-512: whole panels 4 vectors at a time, then the last panel's 1 to 3 vectors
 * (C_out % 64 / 16) in one block. */
#define WIDE_BLOCKS(LOOP, k_first, k_end)                                                                       \
    do {                                                                                                        \
        const int64_t whole = (k_first) + ((k_end) - (k_first)) / PANEL * PANEL, rest = ((k_end) - whole) / 16; \
        LOOP(Wide, 4, (k_first), whole);                                                                        \
        if (rest == 3) LOOP(Wide, 3, whole, (k_end));                                                           \
        else if (rest == 2) LOOP(Wide, 2, whole, (k_end));                                                      \
        else if (rest == 1) LOOP(Wide, 1, whole, (k_end));                                                      \
    } while (0)

#endif
