/* direct.c: the direct 2-D convolution in one pass over the output, float32, NCHW.
 *
 * The math of its Python siblings (src/convlens/algos/direct.py, and depthwise.py: the case of one
 * input channel per group). Output channel o of group g = o / (C_out/G) sums the taps of its
 * group's C_in/G input channels:
 *
 *   out[n, o, y, x] = bias[o] + sum over c < C_in/G, taps (ky, kx) of
 *                     weight[o, c, ky, kx] * x[n, g*C_in/G + c, y*s_h - p_t + ky*d_h, x*s_w - p_l + kx*d_w]
 *                                                    (reads outside the input are zeros)
 *
 * Shapes, all contiguous: x (N, C_in, H, W), weight (C_out, C_in/G, k_h, k_w), bias (C_out) or NULL,
 * out (N, C_out, H_out, W_out). The bottom and right padding are implied by H_out and W_out.
 *
 * One output plane (n, o) at a time, one output row at a time: the row starts at zero, then each
 * tap of each input channel adds weight * the input row it reads. The output columns x for which a
 * tap reads inside the input are worked out once per (row, tap), so the inner loop has no bounds
 * checks and, at stride 1, is a plain a += w * b over contiguous floats that the compiler
 * vectorises. The bias is added last, as the Python siblings add it.
 *
 * No blocking for cache or registers: this is the reference in C and the kernel for the calls
 * where a single call's fixed cost, not its arithmetic, is the time (small layers), and for
 * depthwise layers, where each output reads only k_h*k_w inputs.
 *
 * CPU dispatch: target_clones compiles the plane loop for x86-64-v4 (AVX-512), x86-64-v3 (AVX2,
 * FMA) and plain x86-64; the dynamic loader picks the widest the CPU has. Built with
 * -ffp-contract=off, so no clone fuses a multiply and an add: every machine gives the same bits.
 * Threads: as many as the caller says (torch.get_num_threads()), each a share of the planes
 * (parallel.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* The sizes of one convolution, as the caller fills them once per spec (native/__init__.py's
 * DirectSizes mirrors this struct field for field). */
typedef struct {
    int64_t batch, in_channels, out_channels, groups, height, width, kernel_h, kernel_w;
    int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, out_h, out_w;
    int64_t channels_last; /* 1: x and out are channels-last (depthwise, multiplier 1, only) */
} Sizes;

typedef struct {
    const float *x, *weight, *bias;
    float *out;
    int64_t in_channels, in_per_group, out_channels, out_per_group;
    int64_t height, width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    int64_t dilation_h, dilation_w, out_h, out_w;
    const int64_t *columns;   /* [2*kx], [2*kx + 1]: the output columns [x_first, x_end) tap column kx reads inside the input */
    const int64_t *tap_rows;  /* [2*y], [2*y + 1]: the kernel rows [ky_first, ky_end) output row y reads inside the input */
    const int64_t *tap_cols;  /* [2*x], [2*x + 1]: the kernel columns [kx_first, kx_end) output column x reads inside */
    int channels_last;        /* x and out laid out (N, H, W, C): only with one input channel per group */
} Job;

enum { LANES = 16, MAX_SMALL_PLANE = 1024 }; /* run_channel_blocks: channels at a time; largest plane, kernel */
enum { SMALL_PLANE_WIDTH = 32 };             /* outputs at most this wide go through run_channel_blocks */

/* Half of LANES floats as one value of GCC's vector extension: each + and * is one elementwise IEEE
 * operation (one AVX2 instruction, two SSE ones), so every clone rounds exactly as scalar code would.
 * (A whole LANES-float vector left GCC spilling it through the stack on AVX2.) Loads and stores
 * through memcpy, at any alignment. */
typedef float Half __attribute__((vector_size(LANES / 2 * sizeof(float))));
static inline __attribute__((always_inline)) Half load_half(const float *from) {
    Half half;
    memcpy(&half, from, sizeof half);
    return half;
}
static inline __attribute__((always_inline)) void store_half(float *to, Half half) { memcpy(to, &half, sizeof half); }

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void run_planes(const void *context, int64_t first_plane, int64_t end_plane) {
    const Job *job = (const Job *)context; /* planes n*C_out + o in [first_plane, end_plane) */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w;
    const int64_t C_in = job->in_channels, per_group = job->in_per_group;
    const int64_t *columns = job->columns;
    for (int64_t plane = first_plane; plane < end_plane; plane++) {
        const int64_t n = plane / job->out_channels, o = plane % job->out_channels;
        const int64_t first_channel = o / job->out_per_group * per_group; /* the group's first input channel */
        const float *image = job->x + (n * C_in + first_channel) * H * W;
        const float *filter = job->weight + o * per_group * kh * kw; /* (C_in/G, k_h, k_w) */
        float *output = job->out + plane * H_out * W_out;
        for (int64_t y = 0; y < H_out; y++) {
            float *out_row = output + y * W_out;
            for (int64_t x = 0; x < W_out; x++) out_row[x] = 0.0f;
            for (int64_t c = 0; c < per_group; c++) {
                const float *input = image + c * H * W;
                const float *taps = filter + c * kh * kw;
                for (int64_t ky = 0; ky < kh; ky++) {
                    const int64_t row = y * sh - job->pad_top + ky * dh;
                    if (row < 0 || row >= H) continue; /* a row of the zero padding */
                    const float *in_row = input + row * W;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        const float tap = taps[ky * kw + kx];
                        const int64_t shift = kx * dw - job->pad_left; /* output x reads column x*sw + shift */
                        const int64_t x_first = columns[2 * kx], x_end = columns[2 * kx + 1];
                        if (sw == 1) {
                            const float *source = in_row + shift;
                            for (int64_t x = x_first; x < x_end; x++) out_row[x] += tap * source[x];
                        } else {
                            for (int64_t x = x_first; x < x_end; x++) out_row[x] += tap * in_row[x * sw + shift];
                        }
                    }
                }
            }
            if (job->bias != NULL) {
                const float b = job->bias[o];
                for (int64_t x = 0; x < W_out; x++) out_row[x] += b;
            }
        }
    }
}

/* One input channel per group (depthwise), LANES output channels at a time, channels innermost:
 * input[row][col][l], and every tap one multiply-add of LANES contiguous floats. A channels-last
 * input and output are read and written where they are; a small NCHW plane (on which run_planes's
 * loops run a few iterations each and cost more than the sums) is copied channels innermost
 * first, and its outputs copied back. Each output sums the taps that read inside the input in the
 * order run_planes sums them (ky, then kx), and the bias last: the same bits as run_planes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void run_channel_blocks(const void *context, int64_t first_block, int64_t end_block) {
    const Job *job = (const Job *)context; /* blocks n * blocks_per_image + b in [first_block, end_block) */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w, C_out = job->out_channels, C_in = job->in_channels;
    const int64_t blocks_per_image = (C_out + LANES - 1) / LANES;
    const int channels_last = job->channels_last;
    /* the copies of a small NCHW plane, and the taps: MAX_SMALL_PLANE positions of LANES floats each */
    float input[MAX_SMALL_PLANE * LANES], output[MAX_SMALL_PLANE * LANES], taps[MAX_SMALL_PLANE * LANES];
    float bias[LANES], value[LANES];
    for (int64_t block = first_block; block < end_block; block++) {
        const int64_t n = block / blocks_per_image, o0 = block % blocks_per_image * LANES;
        const int64_t lanes = C_out - o0 < LANES ? C_out - o0 : LANES;
        for (int64_t l = 0; l < LANES; l++) { /* lanes past C_out repeat channel o0: computed, never stored */
            const int64_t o = l < lanes ? o0 + l : o0;
            if (!channels_last) {
                const float *plane = job->x + (n * C_in + o / job->out_per_group) * H * W;
                for (int64_t p = 0; p < H * W; p++) input[p * LANES + l] = plane[p];
            }
            for (int64_t t = 0; t < kh * kw; t++) taps[t * LANES + l] = job->weight[o * kh * kw + t];
            bias[l] = job->bias != NULL ? job->bias[o] : 0.0f;
        }
        const Half bias_low = load_half(bias), bias_high = load_half(bias + LANES / 2);
        /* where lane 0 of input position (row, col) is, and how far apart positions are */
        const float *source = channels_last ? job->x + n * H * W * C_in + o0 : input;
        const int64_t step = channels_last ? C_in : LANES;
        const int whole = lanes == LANES || !channels_last; /* all LANES lanes readable at every position */
        for (int64_t y = 0; y < H_out; y++) {
            const int64_t ky_first = job->tap_rows[2 * y], ky_end = job->tap_rows[2 * y + 1];
            for (int64_t x = 0; x < W_out; x++) {
                const int64_t kx_first = job->tap_cols[2 * x], kx_end = job->tap_cols[2 * x + 1];
                Half low = {0}, high = {0}; /* lanes 0 .. LANES/2 - 1 and LANES/2 .. LANES - 1 */
                for (int64_t ky = ky_first; ky < ky_end; ky++) {
                    const int64_t row = y * sh - job->pad_top + ky * dh;
                    for (int64_t kx = kx_first; kx < kx_end; kx++) {
                        const float *at = source + (row * W + x * sw - job->pad_left + kx * dw) * step;
                        if (!whole) { /* the last block of a channels-last input: read only its channels */
                            for (int l = 0; l < LANES; l++) value[l] = l < lanes ? at[l] : 0.0f;
                            at = value;
                        }
                        const float *tap = taps + (ky * kw + kx) * LANES;
                        low += load_half(tap) * load_half(at);
                        high += load_half(tap + LANES / 2) * load_half(at + LANES / 2);
                    }
                }
                if (job->bias != NULL) {
                    low += bias_low;
                    high += bias_high;
                }
                float *target = channels_last ? job->out + ((n * H_out + y) * W_out + x) * C_out + o0
                                              : output + (y * W_out + x) * LANES;
                if (whole) {
                    store_half(target, low);
                    store_half(target + LANES / 2, high);
                } else {
                    for (int l = 0; l < LANES / 2; l++) value[l] = low[l], value[LANES / 2 + l] = high[l];
                    for (int64_t l = 0; l < lanes; l++) target[l] = value[l];
                }
            }
        }
        if (!channels_last) {
            for (int64_t l = 0; l < lanes; l++) {
                float *plane = job->out + (n * C_out + o0 + l) * H_out * W_out;
                for (int64_t p = 0; p < H_out * W_out; p++) plane[p] = output[p * LANES + l];
            }
        }
    }
}

/* The kernel rows (or columns) [first, end) that output row (column) i reads inside an input of `size`:
 * i*stride - pad + k*dilation in [0, size). Written to ranges[2*i], ranges[2*i + 1] for i < count. */
static void tap_ranges(int64_t *ranges, int64_t count, int64_t size, int64_t kernel, int64_t stride, int64_t pad,
                       int64_t dilation) {
    for (int64_t i = 0; i < count; i++) {
        const int64_t start = i * stride - pad; /* where tap 0 reads */
        const int64_t first = start >= 0 ? 0 : ceil_div(-start, dilation);
        const int64_t end = floor_div(size - 1 - start, dilation) + 1;
        ranges[2 * i] = first < kernel ? first : kernel;
        ranges[2 * i + 1] = end < first ? first : end < kernel ? end : kernel;
    }
}

/* Returns 0, 1 when a thread could not be started (its share then ran on the calling thread), 2 when
 * there was no memory for the column ranges, 3 for a channels-last layer it does not take (nothing
 * computed in either case). */
int convlens_direct_forward(const float *x, const float *weight, const float *bias, float *out, const Sizes *sizes,
                            int64_t threads) {
    const Sizes z = *sizes;
    /* For each kernel column kx, the output columns [x_first, x_end) whose tap reads inside the input:
     * the same for every row, so worked out once here (two divisions each), not per row and tap. And
     * for run_channel_blocks, the taps each output row and column reads inside the input. */
    int64_t *ranges = malloc(sizeof(int64_t) * 2 * (size_t)(z.kernel_w + z.out_h + z.out_w));
    if (ranges == NULL) return 2;
    int64_t *columns = ranges, *tap_rows = ranges + 2 * z.kernel_w, *tap_cols = tap_rows + 2 * z.out_h;
    for (int64_t kx = 0; kx < z.kernel_w; kx++) {
        const int64_t shift = kx * z.dilation_w - z.pad_left;
        const int64_t x_end = floor_div(z.width - 1 - shift, z.stride_w) + 1;
        columns[2 * kx] = shift >= 0 ? 0 : ceil_div(-shift, z.stride_w);
        columns[2 * kx + 1] = x_end < z.out_w ? x_end : z.out_w;
    }
    tap_ranges(tap_rows, z.out_h, z.height, z.kernel_h, z.stride_h, z.pad_top, z.dilation_h);
    tap_ranges(tap_cols, z.out_w, z.width, z.kernel_w, z.stride_w, z.pad_left, z.dilation_w);
    const Job job = {x, weight, bias, out, z.in_channels, z.in_channels / z.groups, z.out_channels,
                     z.out_channels / z.groups, z.height, z.width, z.kernel_h, z.kernel_w, z.stride_h, z.stride_w,
                     z.pad_top, z.pad_left, z.dilation_h, z.dilation_w, z.out_h, z.out_w, columns, tap_rows, tap_cols,
                     (int)z.channels_last};
    const int64_t taps = z.kernel_h * z.kernel_w;
    const int64_t work = z.batch * z.out_channels * z.out_h * z.out_w * (z.in_channels / z.groups) * taps;
    const int64_t threads_used = convlens_threads_for(work, threads);
    /* Small planes, one input channel per group: channel blocks (see run_channel_blocks). Why 32 columns:
     * benchmarks/depthwise_native.py (benchmarks/RESULTS.md). */
    const int small = z.in_channels == z.groups && z.height * z.width <= MAX_SMALL_PLANE && taps <= MAX_SMALL_PLANE &&
                      z.out_h * z.out_w <= MAX_SMALL_PLANE && z.out_w <= SMALL_PLANE_WIDTH;
    if (z.channels_last && !(z.in_channels == z.groups && z.out_channels == z.groups && taps <= MAX_SMALL_PLANE)) {
        free(ranges);
        return 3; /* channels-last takes depthwise with multiplier 1 and at most MAX_SMALL_PLANE taps only */
    }
    const int64_t blocks = z.batch * ((z.out_channels + LANES - 1) / LANES);
    const int failed = small || z.channels_last ? convlens_parallel(run_channel_blocks, &job, blocks, threads_used)
                                                : convlens_parallel(run_planes, &job, z.batch * z.out_channels, threads_used);
    free(ranges);
    return failed;
}
