/* im2col.c: im2col's columns (src/convlens/algos/im2col.py, the seed's unfold) gathered in one pass
 * from the unpadded NCHW input, float32, the zero padding written where a window reads outside it.
 *
 * For output rows y0 .. y1 - 1 of images n0 .. n0 + images - 1 (a piece of im2col's forward), row
 * r = (c*k_h + ky)*k_w + kx of the columns holds tap (ky, kx) of input channel c at every output
 * position p = (y - y0)*W_out + x:
 *
 *   cols[n, r, p] = x[n0 + n, c, y*s_h - p_t + ky*d_h, x*s_w - p_l + kx*d_w]     (0 outside the input)
 *
 * Shapes: x (N, C_in, H, W) contiguous; cols (images, C_in*k_h*k_w, rows*W_out), or with
 * batch_last (C_in*k_h*k_w, images*rows*W_out), rows = y1 - y0. For the seed's layer, nn.Conv2d(3,
 * 1, 5) on one 32x32 image: cols (1, 75, 784).
 *
 * Why in C: the Python path pads the input (one copy) and copies a six-dimensional strided view of
 * it into the columns (a second), whose innermost run is one output row, strided for a strided layer;
 * here each run of a column row that reads inside the input is one memcpy (stride 1) or one
 * vectorised strided loop, and the padding is written as zeros, in one pass (benchmarks/RESULTS.md,
 * fourteenth session). Threads: each share takes whole (image, input channel) pairs: its k_h*k_w
 * rows of the columns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "sizes.h"

enum { LONG_RUN = 64 }; /* values from which a stride-1 run is copied by memcpy */

typedef struct {
    const float *x;
    float *cols;
    const Sizes *z;
    int64_t n0, y0, y1, images, batch_last;
    const int64_t *columns; /* [2*kx], [2*kx + 1]: the output columns [x_first, x_end) tap column kx reads inside */
} Gather;

/* One run of a column row: W_out values, zeros outside [x_first, x_end), in[x*sw] inside. Plain
 * loops, not memset/memcpy calls (GCC is told not to turn them back into calls): a strided layer's
 * runs are a few values long (7 for ResNet-50's 512-channel stride-2 layer), where two library
 * calls per run cost more than the run: that layer's gather at batch 8 went from 1.44 ms to 1.26 ms,
 * the 256-channel one's from 1.57 ms to 1.11 ms (``python benchmarks/im2col_gather.py``,
 * benchmarks/RESULTS.md, seventeenth session). Stride 1 copies with memcpy where the run is long. */
static inline __attribute__((always_inline)) void copy_run(float *row, const float *in, int64_t W_out, int64_t x_first,
                                                           int64_t x_end, int64_t sw) {
    for (int64_t x = 0; x < x_first; x++) row[x] = 0.0f;
    if (sw == 1 && x_end - x_first >= LONG_RUN) {
        memcpy(row + x_first, in + x_first, sizeof(float) * (size_t)(x_end - x_first));
    } else if (sw == 1) {
        for (int64_t x = x_first; x < x_end; x++) row[x] = in[x];
    } else {
        for (int64_t x = x_first; x < x_end; x++) row[x] = in[x * sw];
    }
    for (int64_t x = x_end; x < W_out; x++) row[x] = 0.0f;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("no-tree-loop-distribute-patterns")))
#endif
static void gather_planes(const void *context, int64_t first, int64_t end) {
    const Gather *g = (const Gather *)context; /* units n * C_in + c in [first, end) */
    const Sizes *z = g->z;
    const int64_t C = z->in_channels, H = z->height, W = z->width, kh = z->kernel_h, kw = z->kernel_w;
    const int64_t W_out = z->out_w, sw = z->stride_w, rows = g->y1 - g->y0, positions = rows * W_out;
    for (int64_t unit = first; unit < end; unit++) {
        const int64_t n = unit / C, c = unit % C;
        const float *plane = g->x + ((g->n0 + n) * C + c) * H * W;
        for (int64_t ky = 0; ky < kh; ky++) {
            for (int64_t kx = 0; kx < kw; kx++) {
                const int64_t r = (c * kh + ky) * kw + kx;
                float *row = g->batch_last ? g->cols + (r * g->images + n) * positions
                                           : g->cols + (n * C * kh * kw + r) * positions;
                const int64_t x_first = g->columns[2 * kx], x_end = g->columns[2 * kx + 1];
                const int64_t shift = kx * z->dilation_w - z->pad_left; /* input column of output column 0 */
                for (int64_t y = g->y0; y < g->y1; y++, row += W_out) {
                    const int64_t iy = y * z->stride_h - z->pad_top + ky * z->dilation_h;
                    if (iy < 0 || iy >= H || x_first >= x_end) { /* the whole run reads the padding */
                        copy_run(row, plane, W_out, W_out, W_out, sw);
                        continue;
                    }
                    copy_run(row, plane + iy * W + shift, W_out, x_first, x_end, sw);
                }
            }
        }
    }
}

/* Returns 0, 1 when a thread could not be started (its share ran on the calling thread), 2 when
 * there was no memory for the column ranges (nothing written). */
int convlens_im2col(const float *x, const Sizes *sizes, int64_t n0, int64_t images, int64_t y0, int64_t y1,
                    int64_t batch_last, float *cols, int64_t threads) {
    const Sizes z = *sizes;
    int64_t *columns = malloc(sizeof(int64_t) * 2 * (size_t)z.kernel_w);
    if (columns == NULL) return 2;
    for (int64_t kx = 0; kx < z.kernel_w; kx++) { /* x*s_w + shift in [0, W) for x in [x_first, x_end) */
        const int64_t shift = kx * z.dilation_w - z.pad_left;
        int64_t first = shift >= 0 ? 0 : (-shift + z.stride_w - 1) / z.stride_w;
        int64_t end = z.width - 1 - shift < 0 ? 0 : (z.width - 1 - shift) / z.stride_w + 1;
        if (first > z.out_w) first = z.out_w;
        if (end > z.out_w) end = z.out_w;
        columns[2 * kx] = first, columns[2 * kx + 1] = end < first ? first : end;
    }
    const Gather gather = {x, cols, &z, n0, y0, y1, images, batch_last, columns};
    const int64_t values = images * z.in_channels * z.kernel_h * z.kernel_w * (y1 - y0) * z.out_w;
    const int failed = convlens_parallel(gather_planes, &gather, images * z.in_channels, convlens_threads_for(values, threads));
    free(columns);
    return failed;
}
