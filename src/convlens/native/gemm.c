/* gemm.c: the tap-wise GEMM (src/convlens/algos/gemm.py) in one pass per band of output rows:
 * float32, NCHW, one group, C_out a multiple of 16.
 *
 *   out[n, k, y, x] = bias[k] + sum over taps (ky, kx), then input channels c, of
 *                     weight[k, c, ky, kx] * x_pad[n, c, y*s_h + ky*d_h, x*s_w + kx*d_w]
 *
 * gemm.py sums k_h*k_w matrix products (C_out, C_in) @ (C_in, P), one per tap over a shifted view
 * of the padded input. Here the same sums go band by band of one image's output rows, the band's
 * buffers in the cache (L2) and no view materialised:
 *
 *   band    the padded input rows the band reads, zeros written in    (rows_in, W_pad, C_in)   one copy
 *   M       M[p][k] = sum over r = (ky, kx, c) of band[c][y*s_h + ky*d_h][x*s_w + kx*d_w] * w_rows[r][k]
 *                                                                     (P, C_out), P = rows * W_out
 *   out     M transposed into the band's NCHW rows (transpose.h), the bias added
 *
 * w_rows (k_h*k_w*C_in, C_out): the weight with its taps and channels as rows, in panels of 64
 * output channels (products.h), laid out once per weight (gemm.py). The products are products.h's
 * register block: 6 positions x 64 output channels (AVX-512; 6 x 16 otherwise), each position's
 * input value broadcast straight from the band (a tap's shifted view is an offset into it), r in
 * blocks of DEPTH rows, each block summed from zero and added to M, as a BLAS product adds its
 * blocks. The same bits at either vector width, whatever the bands and the threads.
 *
 * ResNet-50's 128->128 3x3 stride-2 layer at 56x56: bands of 4 output rows, band (9, 58, 128),
 * M (112, 128), w_rows (1152, 128).
 *
 * Threads (parallel.h): a share of the bands each, with its own band and M.
 *
 * w_rows is made by convlens_gemm_weight_rows below (gemm.py's ``weight_rows``; the torch ops,
 * a permuting copy and ``native.panels``, stay the reference): again whenever the weight changes,
 * every step of training, where the torch ops took 6.2 ms for ResNet-50's 512x512 3x3 weight
 * against 0.57 ms (``python benchmarks/gemm_pieces.py --weight-rows``, benchmarks/RESULTS.md, twentieth
 * session).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC optimize("fp-contract=fast")

#include "parallel.h"
#include "products.h"
#include "sizes.h"
#include "transpose.h"

typedef struct {
    const float *x, *w_rows, *bias;
    float *out;
    const Sizes *z;
    const int64_t *offsets; /* offsets[r], r = (ky*k_w + kx)*C_in + c: where tap (ky, kx) of channel c is in an image's band */
    int64_t band_rows, bands, images, groups; /* bands per image; images per unit when a band is a whole image */
    int64_t panels;                           /* panels of output channels per unit's share: 1 (split) or all */
    int64_t rows_in, band_w, image_size;      /* the band buffer: per image (rows_in, band_w, C_in) floats */
    int wide;
    int *no_memory;
} GemmJob;

#define VALUE(r, c) bases[r][offsets[c]] /* position p0 + r, tap and channel c */

typedef struct {
    const float *band, *w_rows;
    const int64_t *offsets;
    float *m;
    int64_t positions, plane, W_out, s_h, s_w, band_w, image_size, R, K, k_first, k_end, channels;
} Products;

/* M (positions, K) of the unit `q` (in scope) for output channels k_first .. k_end in blocks of vecs
 * vectors, positions p = (image, y, x) of the unit, ROWS at a time (its fields copied to locals
 * first, so that the loops keep them in registers). */
#define BAND_PRODUCTS(Vec, vecs, k_first, k_end)                                                                \
    do {                                                                                                        \
        const float *band = q->band, *w_rows = q->w_rows;                                                   \
        const int64_t *offsets = q->offsets;                                                                  \
        float *m = q->m;                                                                                      \
        const int64_t positions = q->positions, plane = q->plane, W_out = q->W_out;                       \
        const int64_t s_h = q->s_h, s_w = q->s_w, band_w = q->band_w, image_size = q->image_size;       \
        const int64_t R = q->R, K = q->K, C = q->channels;                                                \
        for (int64_t c_first = 0; c_first < R; c_first += DEPTH) {                                              \
            const int64_t c_end = R - c_first < DEPTH ? R : c_first + DEPTH;                                    \
            for (int64_t k0 = (k_first); k0 < (k_end); k0 += (vecs) * (int64_t)(sizeof(Vec) / 4)) {           \
                const int64_t panel = k0 / PANEL * PANEL;                                                       \
                const int64_t panel_width = K - panel < PANEL ? K - panel : PANEL;                              \
                const float *weights = w_rows + panel * R + c_first * panel_width + (k0 - panel);               \
                const int64_t target_stride = K;                                                                \
                for (int64_t p0 = 0; p0 < positions; p0 += ROWS) {                                              \
                    const int64_t tail = positions - p0 < ROWS ? positions - p0 : ROWS;                         \
                    const float *bases[ROWS];                                                                   \
                    for (int64_t i = 0; i < tail; i++) {                                                        \
                        const int64_t image = (p0 + i) / plane, y = (p0 + i) % plane / W_out;                   \
                        bases[i] = band + image * image_size + (y * s_h * band_w + (p0 + i) % W_out * s_w) * C; \
                    }                                                                                           \
                    float *target = m + p0 * K + k0;                                                            \
                    REGISTER_BLOCK_ROWS(Vec, tail, vecs);                                                       \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* M[:, k_first .. k_end] of one unit, from its band buffer (plane: positions per image). */
FOR_AVX512
static void band_products_wide(const Products *q) {
    WIDE_BLOCKS(BAND_PRODUCTS, q->k_first, q->k_end);
}

FOR_AVX2_AND_BASELINE
static void band_products_half(const Products *q) {
    BAND_PRODUCTS(Half, 2, q->k_first, q->k_end);
}

/* The input rows a band of output rows y0 .. y0 + rows of image n reads, every channel, channels
 * innermost, with the padding's zeros: band[i][j][c] = x[n, c, y0*s_h - p_t + i, j - p_l], zero
 * outside x. Channels innermost: a block of the products' terms (taps, then channels) reads
 * contiguous floats (channel planes a row apart fell in the same few L1 cache sets and evicted
 * each other: 0.5x the speed). 16 channels at a time through transpose.h. */
static inline __attribute__((always_inline)) void copy_band(const GemmJob *job, int64_t n, int64_t y0, int64_t rows,
                                                            float *band) {
    const Sizes *z = job->z;
    const int64_t C = z->in_channels, H = z->height, W = z->width, left = z->pad_left, band_w = job->band_w;
    const int64_t rows_in = (rows - 1) * z->stride_h + (z->kernel_h - 1) * z->dilation_h + 1;
    const float *image = job->x + n * C * H * W;
    for (int64_t i = 0; i < rows_in; i++) {
        float *to = band + i * band_w * C;
        const int64_t row = y0 * z->stride_h - z->pad_top + i;
        if (row < 0 || row >= H) {
            memset(to, 0, sizeof(float) * (size_t)(band_w * C));
            continue;
        }
        memset(to, 0, sizeof(float) * (size_t)(left * C));
        memset(to + (left + W) * C, 0, sizeof(float) * (size_t)((band_w - left - W) * C));
        int64_t c = 0;
        for (; c + BLOCK_ROWS <= C; c += BLOCK_ROWS)
            interleave_rows(image + c * H * W + row * W, H * W, W, to + left * C + c, C);
        for (; c < C; c++)
            for (int64_t j = 0; j < W; j++) to[(left + j) * C + c] = image[c * H * W + row * W + j];
    }
}

/* Units: (group of images or band of one image's rows) x (one panel of output channels, or all). */
FOR_EVERY_CPU
static void gemm_units(const void *context, int64_t first, int64_t end) {
    const GemmJob *job = (const GemmJob *)context;
    const Sizes *z = job->z;
    const int64_t K = z->out_channels, H_out = z->out_h, W_out = z->out_w, plane = H_out * W_out;
    const int64_t all_panels = (K + PANEL - 1) / PANEL, shares = all_panels / job->panels;
    float *band = malloc(sizeof(float) * (size_t)(job->images * job->image_size));
    float *m = malloc(sizeof(float) * (size_t)(job->images * job->band_rows * W_out * K));
    float *zeros = calloc((size_t)K, sizeof(float));
    if (band == NULL || m == NULL || zeros == NULL) {
        *job->no_memory = 1;
        free(band), free(m), free(zeros);
        return;
    }
    const int wide = job->wide && cpu_has_avx512();
    for (int64_t unit = first; unit < end; unit++) {
        const int64_t place = unit / shares, share = unit % shares; /* place = group * bands + band */
        const int64_t n0 = place / job->bands * job->images, y0 = place % job->bands * job->band_rows;
        const int64_t images = z->batch - n0 < job->images ? z->batch - n0 : job->images;
        const int64_t rows = H_out - y0 < job->band_rows ? H_out - y0 : job->band_rows;
        for (int64_t i = 0; i < images; i++) copy_band(job, n0 + i, y0, rows, band + i * job->image_size);
        const int64_t k_first = share * job->panels * PANEL;
        const int64_t k_end = k_first + job->panels * PANEL < K ? k_first + job->panels * PANEL : K;
        const Products q = {band, job->w_rows, job->offsets, m, images * rows * W_out, rows * W_out, W_out,
                            z->stride_h, z->stride_w, job->band_w, job->image_size, z->kernel_h * z->kernel_w * z->in_channels,
                            K, k_first, k_end, z->in_channels};
        if (wide) {
            band_products_wide(&q);
        } else {
            band_products_half(&q);
        }
        for (int64_t i = 0; i < images; i++) { /* M (P, K) -> out[n0 + i, k, y0 .. y0 + rows, :] */
            for (int64_t k0 = k_first; k0 < k_end; k0 += BLOCK_ROWS) {
                float *to = job->out + (((n0 + i) * K + k0) * H_out + y0) * W_out;
                const float *add = job->bias != NULL ? job->bias + k0 : zeros + k0;
                deinterleave_rows(m + i * rows * W_out * K + k0, K, rows * W_out, add, to, plane);
            }
        }
    }
    free(band), free(m), free(zeros);
}

/* The whole layer (see the top of the file): x (N, C_in, H, W) and out (N, C_out, H_out, W_out)
 * contiguous, w_rows in panels, bias (C_out) or NULL; band_rows output rows per band, and where a
 * band is a whole image (band_rows = H_out), `images` images per unit. The output channels'
 * panels are split between units when there are fewer than two units per thread otherwise. wide:
 * the AVX-512 products where the CPU has them. Returns 0, 1 when a thread could not start (the
 * result is complete all the same), 2 when a share could not allocate its buffers, 3 for a layer it
 * does not take (groups other than 1, C_out not a multiple of 16, band_rows or images < 1, images >
 * 1 with bands of part of an image). */
int convlens_gemm_forward(const float *x, const Sizes *z, const float *w_rows, const float *bias, float *out,
                          int64_t band_rows, int64_t images, int64_t wide, int64_t threads) {
    if (z->groups != 1 || z->out_channels % BLOCK_ROWS != 0 || band_rows < 1 || images < 1 ||
        (images > 1 && band_rows < z->out_h))
        return 3;
    const int64_t C = z->in_channels, kh = z->kernel_h, kw = z->kernel_w;
    if (band_rows > z->out_h) band_rows = z->out_h;
    const int64_t rows_in = (band_rows - 1) * z->stride_h + (kh - 1) * z->dilation_h + 1;
    const int64_t reach = (z->out_w - 1) * z->stride_w + (kw - 1) * z->dilation_w + 1; /* padded columns read */
    const int64_t band_w = reach > z->pad_left + z->width ? reach : z->pad_left + z->width;
    int64_t *offsets = malloc(sizeof(int64_t) * (size_t)(kh * kw * C));
    if (offsets == NULL) return 2;
    for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++)
            for (int64_t c = 0; c < C; c++)
                offsets[(ky * kw + kx) * C + c] = (ky * z->dilation_h * band_w + kx * z->dilation_w) * C + c;
    const int64_t bands = (z->out_h + band_rows - 1) / band_rows, groups = (z->batch + images - 1) / images;
    const int64_t all_panels = (z->out_channels + PANEL - 1) / PANEL;
    const int64_t work = z->batch * z->out_h * z->out_w * z->out_channels * kh * kw * C;
    const int64_t used = convlens_threads_for(work, threads);
    const int64_t panels = groups * bands < 2 * used ? 1 : all_panels; /* per unit */
    int no_memory = 0;
    const GemmJob job = {x, w_rows, bias, out, z, offsets, band_rows, bands, images, groups, panels, rows_in, band_w,
                         C * rows_in * band_w, wide != 0, &no_memory};
    const int failed = convlens_parallel(gemm_units, &job, groups * bands * (all_panels / panels), used);
    free(offsets);
    return no_memory ? 2 : failed;
}

/* w_rows[panel * R + r * width + k % PANEL] = weight[k, c, tap] for r = tap * C + c (R = taps * C
 * rows; panel = k / PANEL * PANEL, width = PANEL but for the last panel's K % PANEL): the weight
 * (K, C, taps) read 16 filters at a time, for a chunk of ROW_CHUNK channels, through transpose.h
 * into `block` (block[(c * taps + tap) * 16 + l]), then each (tap, channel) row's 16 floats copied
 * into place. Units: (panel, chunk of channels). */
enum { ROW_CHUNK = 32 };

typedef struct {
    const float *weight;
    float *rows;
    int64_t filters, channels, taps, chunks;
    int *no_memory;
} RowsJob;

FOR_EVERY_CPU
static void weight_rows_units(const void *context, int64_t first, int64_t end) {
    const RowsJob *job = (const RowsJob *)context;
    const int64_t K = job->filters, C = job->channels, taps = job->taps, R = taps * C;
    float *block = malloc(sizeof(float) * (size_t)(ROW_CHUNK * taps * BLOCK_ROWS));
    if (block == NULL) {
        *job->no_memory = 1;
        return;
    }
    for (int64_t unit = first; unit < end; unit++) {
        const int64_t panel = unit / job->chunks * PANEL, c0 = unit % job->chunks * ROW_CHUNK;
        const int64_t width = K - panel < PANEL ? K - panel : PANEL, channels = C - c0 < ROW_CHUNK ? C - c0 : ROW_CHUNK;
        float *to = job->rows + panel * R; /* the panel: R rows of width floats */
        for (int64_t k0 = 0; k0 < width; k0 += BLOCK_ROWS) {
            const float *from = job->weight + ((panel + k0) * C + c0) * taps; /* filter panel + k0, channel c0 */
            if (width - k0 >= BLOCK_ROWS) {
                interleave_rows(from, C * taps, channels * taps, block, BLOCK_ROWS);
                for (int64_t c = 0; c < channels; c++)
                    for (int64_t tap = 0; tap < taps; tap++)
                        memcpy(to + (tap * C + c0 + c) * width + k0, block + (c * taps + tap) * BLOCK_ROWS,
                               sizeof(float) * BLOCK_ROWS);
            } else { /* the panel's last filters, fewer than 16 */
                for (int64_t k = 0; k < width - k0; k++)
                    for (int64_t c = 0; c < channels; c++)
                        for (int64_t tap = 0; tap < taps; tap++)
                            to[(tap * C + c0 + c) * width + k0 + k] = from[k * C * taps + c * taps + tap];
            }
        }
    }
    free(block);
}

/* rows (taps*C*K floats) from weight (K, C, taps) contiguous: see above. Returns 0, 1 when a thread
 * could not start (the result is complete all the same), 2 when a share could not allocate its block. */
int convlens_gemm_weight_rows(const float *weight, int64_t filters, int64_t channels, int64_t taps, float *rows,
                              int64_t threads) {
    int no_memory = 0;
    const int64_t chunks = (channels + ROW_CHUNK - 1) / ROW_CHUNK, panels = (filters + PANEL - 1) / PANEL;
    const RowsJob job = {weight, rows, filters, channels, taps, chunks, &no_memory};
    const int failed = convlens_parallel(weight_rows_units, &job, panels * chunks,
                                         convlens_threads_for(filters * channels * taps, threads));
    return no_memory ? 2 : failed;
}

/* The weight rows of the input gradient's phase convolutions (src/convlens/autograd/by_phases.py):
 * for a stride-s layer, each stride phase of the input takes a stride-1 convolution of grad_output
 * with a sub-kernel of the weight, turned (its taps in reverse) and with its channels swapped. Every
 * tap of the weight (K, C, taps) belongs to one phase, so one pass over the weight lays out all of
 * them, each phase's rows as gemm.c reads a weight of C output channels and K input channels:
 *
 *   rows[first[tap] + c0 * R + (slot[tap] * K + k) * width + c - c0] = weight[k, c, tap]
 *
 * R = count[tap] * K (the phase's rows: its taps, then grad_output's channels), c0 = c / PANEL *
 * PANEL, width = PANEL but for the last panel's C % PANEL; first[tap] < 0: a tap no phase reads.
 * Units: (panel of channels, 16 filters); each filter's taps of the panel's channels are one
 * contiguous run of the weight (width * taps floats), read once and written out tap by tap. */
typedef struct {
    const float *weight;
    const int64_t *first, *slot, *count;
    float *rows;
    int64_t filters, channels, taps, chunks;
} PhaseRowsJob;

FOR_EVERY_CPU
static void phase_rows_units(const void *context, int64_t first_unit, int64_t end) {
    const PhaseRowsJob *job = (const PhaseRowsJob *)context;
    const int64_t K = job->filters, C = job->channels, taps = job->taps;
    for (int64_t unit = first_unit; unit < end; unit++) {
        const int64_t c0 = unit / job->chunks * PANEL, k0 = unit % job->chunks * BLOCK_ROWS;
        const int64_t width = C - c0 < PANEL ? C - c0 : PANEL, k_end = K - k0 < BLOCK_ROWS ? K : k0 + BLOCK_ROWS;
        for (int64_t k = k0; k < k_end; k++) {
            const float *run = job->weight + (k * C + c0) * taps; /* weight[k, c0 .. c0 + width, :] */
            for (int64_t tap = 0; tap < taps; tap++) {
                if (job->first[tap] < 0) continue;
                float *to = job->rows + job->first[tap] + c0 * job->count[tap] * K + (job->slot[tap] * K + k) * width;
                for (int64_t c = 0; c < width; c++) to[c] = run[c * taps + tap];
            }
        }
    }
}

/* rows from weight (K, C, taps) contiguous, placed as above. Returns 0, or 1 when a thread could
 * not start (the result is complete all the same). */
int convlens_gemm_phase_rows(const float *weight, int64_t filters, int64_t channels, int64_t taps, const int64_t *first,
                             const int64_t *slot, const int64_t *count, float *rows, int64_t threads) {
    const int64_t chunks = (filters + BLOCK_ROWS - 1) / BLOCK_ROWS, panels = (channels + PANEL - 1) / PANEL;
    const PhaseRowsJob job = {weight, first, slot, count, rows, filters, channels, taps, chunks};
    return convlens_parallel(phase_rows_units, &job, panels * chunks,
                             convlens_threads_for(filters * channels * taps, threads));
}
