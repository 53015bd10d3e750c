/* winograd.c: Winograd F(2x2, 3x3) and F(4x4, 3x3), the two passes over memory around the products.
 *
 * The math of its Python sibling (src/convlens/algos/winograd/). An m x m output tile is
 *
 *   Y = A^T [ (G g G^T) * (B^T d B) ] A        d: the t x t input tile, t = m + 2
 *
 * At stride 2 (F(2x2, 3x3) only, in the fused pass and winograd_input: BT_2S2 and AT_2S2 below) t = 5 and the
 * input tiles are step = 4 pixels apart: where the input rows and columns below say i*m and j*m,
 * read i*step and j*step (Tiling: m, t, step).
 *
 * and over a piece of P tiles (k images, tile rows i0 .. i0 + rows, tiles_w tiles per row) the
 * Python side runs the products on the BLAS matmul between this file's two passes:
 *
 *   winograd_input:   x (N, C_in, H, W), any strides     -> V (t*t, P, C_in)    V = B^T d B per tile
 *                     (the zero padding, the tile gather and the transform in one pass)
 *   (Python)          M = V @ U, one product per xi       -> M (t*t, P, C_out)   U = G g G^T, cached
 *   winograd_output:  M                                   -> out (N, C_out, H_out, W_out), any strides
 *                     (Y = A^T M A, the bias, the crop to the output and its layout in one pass)
 *
 * Tile p = (n, i, j) of the piece reads input rows (i0 + i)*m - pad_top + a and columns
 * j*m - pad_left + b (a, b < t), zeros outside the input, and writes output rows (i0 + i)*m + a,
 * columns j*m + b (a, b < m) that fall inside the output.
 *
 * Both passes go through a piece one unit at a time: LANES channels of one tile row of one image.
 * The input pass first copies the t input rows the tile row reads into a small buffer, channels
 * innermost, with the padding's zeros (gather_band: one read of x whatever its layout); each tile
 * is then transformed row by row as it is read (d[a] B) and column by column into V (B^T .). The
 * output pass transforms each tile's M into a buffer of m output rows and writes them, plus the
 * bias, into the output in its layout (NCHW rows through 8 x 8 transposes). Every value of a
 * transform is a sum of LANES-float vectors (one AVX-512 register) held in registers, each sum
 * begun with its first term. B^T and A^T are the tables below (equal to transforms.py's; the tests
 * check), constants once inlined, so their zero entries cost nothing and their +-1 entries no
 * multiply. CPU dispatch as in direct.c; built with -ffp-contract=off
 * (no fused multiply-adds): the same bits on every CPU. Threads (parallel.h): a share of the units each.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "sizes.h"
#include "transpose.h"

enum { LANES = 16, MAX_T = 6 }; /* channels per step: one AVX-512 register, two AVX2 ones */
_Static_assert((int)LANES == (int)BLOCK_ROWS, "the bands' channel blocks are transpose.h's blocks");
enum { MAX_BAND_W = 512 };      /* widest tiled row (tiles_w * m) in one band; wider goes to Python */

/* B^T (t x t) and A^T (m x t), row-major: transforms.py's MATRICES for m = 2 and m = 4. */
static const float BT_2[4 * 4] = {
    -1, 0,  1, 0,
    0,  1,  1, 0,
    0,  -1, 1, 0,
    0,  -1, 0, 1,
};
static const float AT_2[2 * 4] = {
    1, 1, 1,  0,
    0, 1, -1, 1,
};
static const float BT_4[6 * 6] = {
    0.25f, 0,      -1.25f, 0,      1, 0,
    0,     -0.25f, -0.25f, 1,      1, 0,
    0,     0.25f,  -0.25f, -1,     1, 0,
    0,     -0.5f,  -1,     0.5f,   1, 0,
    0,     0.5f,   -1,     -0.5f,  1, 0,
    0,     0.25f,  0,      -1.25f, 0, 1,
};
static const float AT_4[4 * 6] = {
    1, 1, 1,  1,      1,       0,
    0, 1, -1, 0.5f,   -0.5f,   0,
    0, 1, 1,  0.25f,  0.25f,   0,
    0, 1, -1, 0.125f, -0.125f, 1,
};

/* F(2x2, 3x3) at stride 2 (transforms.py's STRIDED): t = 5 input values every 4 for 2 outputs. The
 * even taps over the even inputs are F(2, 2) (rows 0, 2, 4), the odd tap over the odd inputs two
 * products (rows 1, 3): 5 products for 6. */
static const float BT_2S2[5 * 5] = {
    1, 0, -1, 0, 0,
    0, 1, 0,  0, 0,
    0, 0, 1,  0, 0,
    0, 0, 0,  1, 0,
    0, 0, -1, 0, 1,
};
static const float AT_2S2[2 * 5] = {
    1, 1, 1, 0, 0,
    0, 0, 1, 1, 1,
};

/* A tiling: m x m output tiles from t x t input tiles, one every `step` input rows and columns
 * (step = stride * m, t = stride * (m - 1) + 3; constants once inlined). */
typedef struct {
    int m, t, step;
} Tiling;

/* Where a piece's tiles are: images first_image .., tile rows first_row .. first_row + rows. */
typedef struct {
    int64_t first_image, images, first_row, rows, tiles_w, tiles; /* tiles = images * rows * tiles_w */
} Piece;

/* Element strides of an (N, C, H, W) tensor, whatever its memory layout. */
typedef struct {
    int64_t n, c, h, w;
} Strides;

typedef struct {
    const float *x;
    Strides x_strides;
    int64_t channels, height, width, pad_top, pad_left;
    Piece piece;
    float *v; /* (t*t, tiles, C_in): V[xi][p][c] at xi * xi_stride + p * tile_stride + c */
    int64_t xi_stride, tile_stride;
} InputJob;

typedef struct {
    const float *products; /* (t*t, tiles, C_out): M[xi][p][c] at xi * xi_stride + p * tile_stride + c */
    int64_t xi_stride, tile_stride;
    const float *bias;     /* (C_out) or NULL */
    float *out;
    Strides out_strides;
    int64_t channels, out_h, out_w;
    Piece piece;
    int *nonfinite; /* set to 1 where an output value is NaN or infinite (NULL: not looked for) */
} OutputJob;

/* One unit of work: LANES channels from c0, of one image n, one tile row i (absolute). */
typedef struct {
    int64_t c0, lanes, n, i, p0; /* p0: the piece's index of the row's first tile */
} Unit;

static Unit unit_of(const Piece *piece, int64_t channels, int64_t unit) {
    const int64_t block = unit / (piece->images * piece->rows), rest = unit % (piece->images * piece->rows);
    const int64_t c0 = block * LANES, lanes = channels - c0 < LANES ? channels - c0 : LANES;
    const Unit u = {c0, lanes, piece->first_image + rest / piece->rows, piece->first_row + rest % piece->rows,
                    rest * piece->tiles_w};
    return u;
}

/* The input rows one tile row reads, channels innermost, in an L1-sized buffer:
 * band[a][col][l] = x[n, c0 + l, i*step - pad_top + a, col - pad_left], zero outside the input and past C.
 * (t rows, band_w = tiles_w*step + t - step columns.) One read of the rows whatever x's layout. */
static inline __attribute__((always_inline)) void gather_band(const InputJob *job, Tiling tiling, const Unit *u,
                                                              float *band, int64_t band_w) {
    const int t = tiling.t;
    const Strides xs = job->x_strides;
    const int64_t H = job->height, W = job->width, left = job->pad_left;
    const int64_t col_first = left < 0 ? 0 : left, col_end = left + W < band_w ? left + W : band_w;
    for (int a = 0; a < t; a++) {
        float *band_row = band + a * band_w * LANES;
        const int64_t row = u->i * tiling.step - job->pad_top + a;
        if (row < 0 || row >= H || u->lanes < LANES) memset(band_row, 0, sizeof(float) * (size_t)(band_w * LANES));
        if (row < 0 || row >= H) continue;
        if (u->lanes == LANES) { /* the padding columns only */
            memset(band_row, 0, sizeof(float) * (size_t)(col_first * LANES));
            memset(band_row + col_end * LANES, 0, sizeof(float) * (size_t)((band_w - col_end) * LANES));
        }
        const float *x_row = job->x + u->n * xs.n + u->c0 * xs.c + row * xs.h;
        if (xs.c == 1 && u->lanes == LANES) { /* channels-last: LANES contiguous channels per column */
            for (int64_t col = col_first; col < col_end; col++)
                memcpy(band_row + col * LANES, x_row + (col - left) * xs.w, sizeof(float) * LANES);
        } else if (xs.w == 1 && u->lanes == LANES) { /* NCHW: LANES rows transposed, 8 columns at a time */
            interleave_rows(x_row + col_first - left, xs.c, col_end - col_first, band_row + col_first * LANES, LANES);
        } else { /* one channel's row at a time */
            for (int64_t l = 0; l < u->lanes; l++) {
                const float *plane_row = x_row + l * xs.c;
                for (int64_t col = col_first; col < col_end; col++) band_row[col * LANES + l] = plane_row[(col - left) * xs.w];
            }
        }
    }
}

/* LANES floats as one value (one AVX-512 register, two AVX2 ones): a tile value of LANES channels. */
typedef float Lanes __attribute__((vector_size(LANES * sizeof(float))));
static inline __attribute__((always_inline)) Lanes load_lanes(const float *from) {
    Lanes lanes;
    memcpy(&lanes, from, sizeof lanes);
    return lanes;
}

/* The first `lanes` floats of a vector to memory: one store for all LANES (a memcpy of a size known
 * only at run time is a call to the C library's, which took a tenth of the fused pass). */
static inline __attribute__((always_inline)) void store_lanes(float *to, Lanes value, int64_t lanes) {
    if (lanes == LANES) {
        memcpy(to, &value, sizeof value);
    } else {
        for (int64_t l = 0; l < lanes; l++) to[l] = value[l];
    }
}

/* `lanes` floats from memory, zeros after them. */
static inline __attribute__((always_inline)) Lanes load_some(const float *from, int64_t lanes) {
    if (lanes == LANES) return load_lanes(from);
    Lanes value = (Lanes){0};
    for (int64_t l = 0; l < lanes; l++) value[l] = from[l];
    return value;
}

/* sum over s < n of coefficients[s] * terms[s * step]: the zero coefficients skipped and the first
 * term starting the sum (the coefficients are constants once inlined: no test, no multiply by 1). */
static inline __attribute__((always_inline)) Lanes combination(const float *coefficients, int n, const Lanes *terms,
                                                               int step) {
    Lanes sum = (Lanes){0};
    int started = 0;
#pragma GCC unroll 8
    for (int s = 0; s < n; s++) {
        if (coefficients[s] == 0.0f) continue;
        const Lanes term = coefficients[s] * terms[s * step];
        sum = started ? sum + term : term;
        started = 1;
    }
    return sum;
}

/* The input pass for a tiling (B^T = bt), units [first, end). For each tile j of the unit's row:
 * rows[a][jj] = sum_b d[a][b] B^T[jj][b] (d B, each input row as it is read), then
 * V[i][jj] = sum_a B^T[i][a] rows[a][jj], written straight into V. */
static inline __attribute__((always_inline)) void input_units(const InputJob *job, Tiling tiling, const float *bt,
                                                              int64_t first, int64_t end) {
    const int t = tiling.t;
    const int64_t C = job->channels, tiles_w = job->piece.tiles_w, band_w = tiles_w * tiling.step + t - tiling.step;
    float band[MAX_T * (MAX_BAND_W + 2) * LANES];
    for (int64_t unit = first; unit < end; unit++) {
        const Unit u = unit_of(&job->piece, C, unit);
        gather_band(job, tiling, &u, band, band_w);
        for (int64_t j = 0; j < tiles_w; j++) {
            Lanes rows[MAX_T * MAX_T]; /* rows[a * t + jj] */
#pragma GCC unroll 8
            for (int a = 0; a < t; a++) {
                Lanes d[MAX_T];
#pragma GCC unroll 8
                for (int b = 0; b < t; b++) d[b] = load_lanes(band + (a * band_w + j * tiling.step + b) * LANES);
#pragma GCC unroll 8
                for (int jj = 0; jj < t; jj++) rows[a * t + jj] = combination(bt + jj * t, t, d, 1);
            }
            float *target = job->v + (u.p0 + j) * job->tile_stride + u.c0; /* V[xi] of this tile, xi = i*t + jj */
#pragma GCC unroll 8
            for (int i = 0; i < t; i++) {
#pragma GCC unroll 8
                for (int jj = 0; jj < t; jj++) {
                    const Lanes sum = combination(bt + i * t, t, rows + jj, t);
                    store_lanes(target + (int64_t)(i * t + jj) * job->xi_stride, sum, u.lanes);
                }
            }
        }
    }
}

/* The output pass for a tiling (A^T = at), units [first, end): for each tile j of the unit's row,
 * Y = (A^T M) A into a band of m output rows, channels innermost; then the band, plus the bias,
 * into the output rows that exist, in the output's layout. On the way it sums (y + bias) - (y +
 * bias) over the unit's tiles: zero while every value is finite, NaN from the first NaN or
 * infinity (x - x is NaN for both: the build keeps IEEE arithmetic). That is auto's NaN/Inf check
 * (algos/auto.py: finite_guarded) without a pass of its own over the output. It also sees the
 * values of the last tiles' rows and columns cropped away, which read the same input tile: at
 * worst a needless exact recomputation, never a missed NaN. */
static inline __attribute__((always_inline)) void output_units(const OutputJob *job, Tiling tiling, const float *at,
                                                               int64_t first, int64_t end) {
    const int m = tiling.m, t = tiling.t;
    const Strides os = job->out_strides;
    const int64_t C = job->channels, tiles_w = job->piece.tiles_w, band_w = tiles_w * m;
    float band[MAX_T * MAX_BAND_W * LANES];
    float bias[LANES];
    Lanes seen = (Lanes){0}; /* sum of (y + bias) - (y + bias): see above */
    for (int64_t unit = first; unit < end; unit++) {
        const Unit u = unit_of(&job->piece, C, unit);
        for (int l = 0; l < LANES; l++) bias[l] = job->bias != NULL && l < u.lanes ? job->bias[u.c0 + l] : 0.0f;
        const Lanes bias_lanes = load_lanes(bias);
        for (int64_t j = 0; j < tiles_w; j++) {
            const float *source = job->products + (u.p0 + j) * job->tile_stride + u.c0; /* M[xi] of this tile */
            Lanes products[MAX_T * MAX_T], left[MAX_T * MAX_T]; /* [xi = s * t + jj], [a * t + jj] */
#pragma GCC unroll 36
            for (int xi = 0; xi < t * t; xi++) products[xi] = load_some(source + (int64_t)xi * job->xi_stride, u.lanes);
#pragma GCC unroll 8
            for (int a = 0; a < m; a++) { /* (A^T M)[a][jj] = sum_s A^T[a][s] M[s][jj] */
#pragma GCC unroll 8
                for (int jj = 0; jj < t; jj++) left[a * t + jj] = combination(at + a * t, t, products + jj, t);
            }
#pragma GCC unroll 8
            for (int a = 0; a < m; a++) { /* y[a][b] = sum_jj (A^T M)[a][jj] A^T[b][jj] */
#pragma GCC unroll 8
                for (int b = 0; b < m; b++) {
                    const Lanes y = combination(at + b * t, t, left + a * t, 1);
                    memcpy(band + (a * band_w + j * m + b) * LANES, &y, sizeof y);
                    const Lanes value = y + bias_lanes;
                    seen += value - value;
                }
            }
        }
        for (int a = 0; a < m; a++) {
            const int64_t row = u.i * m + a;
            if (row >= job->out_h) break;
            const float *band_row = band + a * band_w * LANES;
            float *out_row = job->out + u.n * os.n + u.c0 * os.c + row * os.h;
            if (os.c == 1 && u.lanes == LANES) { /* channels-last */
                for (int64_t col = 0; col < job->out_w; col++)
                    for (int l = 0; l < LANES; l++) out_row[col * os.w + l] = band_row[col * LANES + l] + bias[l];
            } else if (os.w == 1 && u.lanes == LANES) { /* NCHW: transposed back, 8 columns at a time */
                deinterleave_rows(band_row, LANES, job->out_w, bias, out_row, os.c);
            } else {
                for (int64_t l = 0; l < u.lanes; l++) {
                    float *plane_row = out_row + l * os.c;
                    for (int64_t col = 0; col < job->out_w; col++)
                        plane_row[col * os.w] = band_row[col * LANES + l] + bias[l];
                }
            }
        }
    }
    if (job->nonfinite != NULL) {
        for (int l = 0; l < LANES; l++)
            if (seen[l] != 0.0f) __atomic_store_n(job->nonfinite, 1, __ATOMIC_RELAXED); /* NaN != 0 too */
    }
}


#define F2 ((Tiling){2, 4, 2})
#define F4 ((Tiling){4, 6, 4})
#define F2_STRIDE_2 ((Tiling){2, 5, 4})
FOR_EVERY_CPU static void input_f2(const void *job, int64_t first, int64_t end) { input_units(job, F2, BT_2, first, end); }
FOR_EVERY_CPU static void input_f4(const void *job, int64_t first, int64_t end) { input_units(job, F4, BT_4, first, end); }
FOR_EVERY_CPU static void input_f2_stride_2(const void *job, int64_t first, int64_t end) {
    input_units(job, F2_STRIDE_2, BT_2S2, first, end);
}
FOR_EVERY_CPU static void output_f2(const void *job, int64_t first, int64_t end) { output_units(job, F2, AT_2, first, end); }
FOR_EVERY_CPU static void output_f4(const void *job, int64_t first, int64_t end) { output_units(job, F4, AT_4, first, end); }

/* Units of work of a piece: channel blocks x images x tile rows. */
static int64_t units_of(int64_t channels, const Piece *piece) {
    return (channels + LANES - 1) / LANES * piece->images * piece->rows;
}

/* V = B^T d B for every tile of a piece (see the top of the file), at the layer's stride (1, or 2
 * for m = 2: t = 5, tiles 4 pixels apart). Returns 0, 1 when a thread could not start (the result
 * is complete all the same), 2 for a tile size other than 2 or 4 (2 at stride 2) or a row wider
 * than MAX_BAND_W. */
int convlens_winograd_input(const float *x, int64_t stride_n, int64_t stride_c, int64_t stride_h, int64_t stride_w,
                            int64_t channels, int64_t height, int64_t width, int64_t pad_top, int64_t pad_left,
                            int64_t m, int64_t stride, int64_t first_image, int64_t images, int64_t first_row,
                            int64_t rows, int64_t tiles_w, float *v, int64_t xi_stride, int64_t tile_stride,
                            int64_t threads) {
    if ((m != 2 && m != 4) || (stride != 1 && !(stride == 2 && m == 2)) || tiles_w * m * stride > MAX_BAND_W)
        return 2;
    const InputJob job = {x, {stride_n, stride_c, stride_h, stride_w}, channels, height, width, pad_top, pad_left,
                          {first_image, images, first_row, rows, tiles_w, images * rows * tiles_w}, v, xi_stride, tile_stride};
    const int64_t t = stride * (m - 1) + 3;
    const int64_t work = job.piece.tiles * channels * t * t * 4; /* about 4 per value of V */
    ShareWork input = stride == 2 ? input_f2_stride_2 : m == 2 ? input_f2 : input_f4;
    return convlens_parallel(input, &job, units_of(channels, &job.piece), convlens_threads_for(work, threads));
}

/* out = A^T M A + bias for every tile of a piece, cropped to the output. Returns as above. */
int convlens_winograd_output(const float *products, int64_t xi_stride, int64_t tile_stride, const float *bias, float *out, int64_t stride_n,
                             int64_t stride_c, int64_t stride_h, int64_t stride_w, int64_t channels, int64_t out_h,
                             int64_t out_w, int64_t m, int64_t first_image, int64_t images, int64_t first_row,
                             int64_t rows, int64_t tiles_w, int64_t threads) {
    if ((m != 2 && m != 4) || tiles_w * m > MAX_BAND_W) return 2;
    const OutputJob job = {products, xi_stride, tile_stride, bias, out, {stride_n, stride_c, stride_h, stride_w}, channels, out_h, out_w,
                           {first_image, images, first_row, rows, tiles_w, images * rows * tiles_w}, NULL};
    const int64_t work = job.piece.tiles * channels * (m + 2) * (m + 2) * 2; /* about 2 per value of M */
    return convlens_parallel(m == 2 ? output_f2 : output_f4, &job, units_of(channels, &job.piece),
                             convlens_threads_for(work, threads));
}

/* The fused pass: both passes and the products, one band of tile rows of one image at a time,
 * V and M in buffers of the band's size that stay in the cache (L2) between them:
 *
 *   for each band (image n, tile rows i0 .. i0 + rows; a share of the bands per thread)
 *       V = B^T d B            input_units, as above                 -> V (t*t, P, C_in)   P = rows * tiles_w
 *       M = V @ U              winograd_products.c, sums in registers -> M (t*t, P, C_out)
 *       out = A^T M A + bias   output_units, as above
 *
 * The passes between them make no trip to memory: with the products on the BLAS matmul (the
 * passes above) V and M of a piece are written whole and read back, 2 x 25.7 MB for ResNet-50's
 * 64@56 at batch 8, which took longer than the products (benchmarks/RESULTS.md, fifteenth session).
 * U (t*t, C_in, C_out) is read once per piece: where it is larger than an image's V and M the
 * pieces are whole images (plan.fused_pieces), `images` of them, rather than bands. */
void convlens_winograd_products(const float *v, int64_t v_xi_stride, const float *u, float *m, int64_t m_xi_stride,
                                int64_t positions, int64_t tiles, int64_t C, int64_t K, int wide);

typedef struct {
    InputJob input;   /* x, its layout, sizes and padding; the piece and V set per band */
    OutputJob output; /* the bias, out, its layout and size; the piece and M set per band */
    const float *u;
    int64_t tiles_h, band_rows, bands; /* bands per image */
    int64_t images;                    /* images per piece where a band is a whole image, else 1 */
    int wide;
    int *no_memory; /* set to 1 by a share that could not allocate its V and M */
} FusedJob;

static inline __attribute__((always_inline)) void fused_bands(const FusedJob *job, Tiling tiling, const float *bt,
                                                              const float *at, int64_t first, int64_t end) {
    const int t = tiling.t;
    const int64_t C = job->input.channels, K = job->output.channels, tiles_w = job->input.piece.tiles_w;
    const int64_t most = job->images * job->band_rows * tiles_w;              /* tiles in a piece */
    const int64_t v_xi_stride = most * C + 16, m_xi_stride = most * K + 16; /* a cache line more: see padded_rows */
    float *v = malloc(sizeof(float) * (size_t)(t * t * v_xi_stride));
    float *products = malloc(sizeof(float) * (size_t)(t * t * m_xi_stride));
    if (v == NULL || products == NULL) {
        *job->no_memory = 1;
        free(v), free(products);
        return;
    }
    for (int64_t band = first; band < end; band++) { /* band = n * bands + b */
        const int64_t i0 = band % job->bands * job->band_rows, n0 = band / job->bands * job->images;
        const int64_t rows = job->tiles_h - i0 < job->band_rows ? job->tiles_h - i0 : job->band_rows;
        const int64_t images = job->input.piece.images - n0 < job->images ? job->input.piece.images - n0 : job->images;
        const Piece piece = {n0, images, i0, rows, tiles_w, images * rows * tiles_w};
        InputJob input = job->input;
        input.piece = piece, input.v = v, input.xi_stride = v_xi_stride, input.tile_stride = C;
        input_units(&input, tiling, bt, 0, units_of(C, &piece));
        convlens_winograd_products(v, v_xi_stride, job->u, products, m_xi_stride, t * t, piece.tiles, C, K, job->wide);
        OutputJob output = job->output;
        output.piece = piece, output.products = products, output.xi_stride = m_xi_stride, output.tile_stride = K;
        output_units(&output, tiling, at, 0, units_of(K, &piece));
    }
    free(v), free(products);
}

FOR_EVERY_CPU static void fused_f2(const void *job, int64_t first, int64_t end) { fused_bands(job, F2, BT_2, AT_2, first, end); }
FOR_EVERY_CPU static void fused_f4(const void *job, int64_t first, int64_t end) { fused_bands(job, F4, BT_4, AT_4, first, end); }
FOR_EVERY_CPU static void fused_f2_stride_2(const void *job, int64_t first, int64_t end) {
    fused_bands(job, F2_STRIDE_2, BT_2S2, AT_2S2, first, end);
}

/* The whole layer, fused (see above): x (N, C_in, H, W) and out (N, C_out, H_out, W_out) in any
 * layout (element strides), u (t*t, C_in, C_out) in panels (winograd_products.c), bias (C_out) or NULL; sizes: the
 * layer's (groups 1, 3x3, stride and dilation 1), band_rows tile rows per band. wide: the AVX-512
 * products where the CPU has them. Returns 0, 1 when a thread could not start (the result is
 * complete all the same), 2 for a tile size other than 2 or 4 or a row wider than MAX_BAND_W, 3
 * when a share could not allocate its buffers, 4 for C_out not a multiple of 16. *nonfinite (unless
 * NULL) is set to 1 where an output value is NaN or infinite, else left as it is (output_units). */
int convlens_winograd_fused(const float *x, const Sizes *z, int64_t stride_n, int64_t stride_c, int64_t stride_h,
                            int64_t stride_w, const float *u, const float *bias, float *out, int64_t out_stride_n,
                            int64_t out_stride_c, int64_t out_stride_h, int64_t out_stride_w, int64_t m,
                            int64_t band_rows, int64_t images, int64_t wide, int64_t threads, int *nonfinite) {
    /* the tiles' stride: the layer's (an axis with one output may say 1 for 2: its output is the same) */
    const int64_t stride = z->stride_h > z->stride_w ? z->stride_h : z->stride_w;
    const int64_t tiles_h = (z->out_h + m - 1) / m, tiles_w = (z->out_w + m - 1) / m;
    if ((m != 2 && m != 4) || (z->stride_h != stride && z->out_h != 1) || (z->stride_w != stride && z->out_w != 1) ||
        (stride != 1 && !(stride == 2 && m == 2)) || tiles_w * m * stride > MAX_BAND_W || band_rows < 1 ||
        images < 1 || (images > 1 && band_rows < tiles_h))
        return 2;
    if (z->out_channels % 16 != 0) return 4;
    int no_memory = 0;
    const Piece whole = {0, z->batch, 0, tiles_h, tiles_w, z->batch * tiles_h * tiles_w}; /* each band sets its own */
    const FusedJob job = {
        {x, {stride_n, stride_c, stride_h, stride_w}, z->in_channels, z->height, z->width, z->pad_top, z->pad_left,
         whole, NULL, 0, 0},
        {NULL, 0, 0, bias, out, {out_stride_n, out_stride_c, out_stride_h, out_stride_w}, z->out_channels, z->out_h,
         z->out_w, whole, nonfinite},
        u, tiles_h, band_rows, (tiles_h + band_rows - 1) / band_rows, images, wide != 0, &no_memory};
    const int64_t t = stride * (m - 1) + 3, work = whole.tiles * t * t * z->in_channels * z->out_channels; /* the products' */
    const ShareWork fused = stride == 2 ? fused_f2_stride_2 : m == 2 ? fused_f2 : fused_f4;
    const int failed = convlens_parallel(fused, &job, (z->batch + images - 1) / images * job.bands,
                                         convlens_threads_for(work, threads));
    return no_memory ? 3 : failed;
}

/* Copies this file's B^T (t*t floats) and A^T (m*t floats) for tile size m at a stride, for the tests
 * to compare with transforms.py's. Returns 0, or 2 for a tiling other than m = 2 or 4 at stride 1, or
 * m = 2 at stride 2. */
int convlens_winograd_tables(int64_t m, int64_t stride, float *bt, float *at) {
    if ((m != 2 && m != 4) || (stride != 1 && !(stride == 2 && m == 2))) return 2;
    const int64_t t = stride * (m - 1) + 3;
    memcpy(bt, stride == 2 ? BT_2S2 : m == 2 ? BT_2 : BT_4, sizeof(float) * (size_t)(t * t));
    memcpy(at, stride == 2 ? AT_2S2 : m == 2 ? AT_2 : AT_4, sizeof(float) * (size_t)(m * t));
    return 0;
}
