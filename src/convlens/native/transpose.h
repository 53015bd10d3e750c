/* transpose.h: blocks of 16 rows (channels) turned into columns and back, 8 x 8 at a time, for the
 * kernels that compute with channels innermost on NCHW tensors (winograd.c, gemm.c).
 *
 * A float at a time, these copies store (or load) floats 16 or more apart: the copy into
 * winograd.c's bands so took a third of its fused pass at 64 channels (benchmarks/RESULTS.md,
 * fifteenth session). Exact copies: the values, and so the bits, are those of the loops they replace.
 */
#ifndef CONVLENS_TRANSPOSE_H
#define CONVLENS_TRANSPOSE_H

#include <stdint.h>

#include "vectors.h"

enum { BLOCK_ROWS = 16 }; /* rows per block: channels per AVX-512 register */

/* rows[i][j] -> rows[j][i] for an 8 x 8 block held as 8 vectors: three rounds of pairwise shuffles
 * (AVX's unpack, shuffle and 128-bit permute patterns, which GCC emits as one instruction each). */
static inline __attribute__((always_inline)) void transpose_8x8(Half rows[8]) {
    Half pairs[8], quads[8];
    for (int i = 0; i < 8; i += 2) { /* pairs[i] = rows i, i+1 interleaved by columns 0,1,4,5; pairs[i+1] 2,3,6,7 */
        pairs[i] = __builtin_shuffle(rows[i], rows[i + 1], (HalfIndex){0, 8, 1, 9, 4, 12, 5, 13});
        pairs[i + 1] = __builtin_shuffle(rows[i], rows[i + 1], (HalfIndex){2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int i = 0; i < 8; i += 4) { /* quads[i + c]: rows i .. i+3 of columns c and c + 4 */
        for (int k = 0; k < 2; k++) {
            quads[i + 2 * k] = __builtin_shuffle(pairs[i + k], pairs[i + k + 2], (HalfIndex){0, 1, 8, 9, 4, 5, 12, 13});
            quads[i + 2 * k + 1] = __builtin_shuffle(pairs[i + k], pairs[i + k + 2], (HalfIndex){2, 3, 10, 11, 6, 7, 14, 15});
        }
    }
    for (int c = 0; c < 4; c++) { /* column c: quads[c] rows 0..3 and quads[4 + c] rows 4..7, low halves; c + 4 the high */
        rows[c] = __builtin_shuffle(quads[c], quads[4 + c], (HalfIndex){0, 1, 2, 3, 8, 9, 10, 11});
        rows[c + 4] = __builtin_shuffle(quads[c], quads[4 + c], (HalfIndex){4, 5, 6, 7, 12, 13, 14, 15});
    }
}

/* to[j * to_stride + l] = from[l * from_stride + j], j < count, l < BLOCK_ROWS: BLOCK_ROWS rows
 * side by side (an NCHW row of 16 channels into a band with channels innermost). */
static inline __attribute__((always_inline)) void interleave_rows(const float *from, int64_t from_stride, int64_t count,
                                                                  float *to, int64_t to_stride) {
    int64_t j = 0;
    for (; j + 8 <= count; j += 8) {
        for (int half = 0; half < BLOCK_ROWS / 8; half++) {
            Half rows[8];
            for (int l = 0; l < 8; l++) rows[l] = load_half(from + (half * 8 + l) * from_stride + j);
            transpose_8x8(rows);
            for (int c = 0; c < 8; c++) store_half(to + (j + c) * to_stride + half * 8, rows[c]);
        }
    }
    for (; j < count; j++)
        for (int l = 0; l < BLOCK_ROWS; l++) to[j * to_stride + l] = from[l * from_stride + j];
}

/* The inverse, plus one value per row: to[l * to_stride + j] = from[j * from_stride + l] + add[l]
 * (16 channels innermost into 16 rows of an NCHW output, the bias added). */
static inline __attribute__((always_inline)) void deinterleave_rows(const float *from, int64_t from_stride, int64_t count,
                                                                    const float *add, float *to, int64_t to_stride) {
    int64_t j = 0;
    for (; j + 8 <= count; j += 8) {
        for (int half = 0; half < BLOCK_ROWS / 8; half++) {
            Half columns[8];
            for (int c = 0; c < 8; c++) columns[c] = load_half(from + (j + c) * from_stride + half * 8);
            transpose_8x8(columns);
            for (int l = 0; l < 8; l++) store_half(to + (half * 8 + l) * to_stride + j, columns[l] + add[half * 8 + l]);
        }
    }
    for (; j < count; j++)
        for (int l = 0; l < BLOCK_ROWS; l++) to[l * to_stride + j] = from[j * from_stride + l] + add[l];
}

#endif
