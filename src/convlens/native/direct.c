/* direct.c: the direct 2-D convolution in one pass over the output, float32, NCHW (and channels-last
 * for depthwise layers with one filter per channel).
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
 * Four loops compute these sums, each adding an output's terms in the same order, so all four give
 * the same bits and a test holds them to it: for each input channel, its taps that read inside the
 * input (ky, then kx) summed from zero into a partial sum, each partial added to the output's sum in
 * channel order, the bias last. (Summing the k_h*k_w terms of a channel apart first keeps a long
 * sum's rounding error near that of PyTorch's blocked products: 128 channels of 3x3 in one running
 * sum erred 4.6x PyTorch's error against float64 on the Xeon, beyond verify's 2x.)
 *   - run_planes: one output plane (n, o) at a time, one row at a time: the row starts at zero; each
 *     input channel's taps add weight * the input row they read into a partial row (the row itself
 *     when there is one input channel), then added to the row. The output columns a tap
 *     reads inside the input are worked out once per kernel column, so the inner loop has no bounds
 *     checks and, at stride 1, is a plain a += w * b over contiguous floats that the compiler
 *     vectorises. Best on wide stride-1 rows.
 *   - run_output_blocks (several input channels per group): LANES output channels of a group at a
 *     time, in one vector; each (input channel, tap) is one multiply-add of LANES weights by one
 *     input value, for POSITIONS outputs of a row at once. Best on narrow or strided rows, and on the
 *     few-channel, large-kernel stems (ResNet's 7x7 stride 2).
 *   - run_channel_blocks (one input channel per group, depthwise, NCHW): LANES channels at a time,
 *     channels innermost, planes copied that way with zero margins and back (narrow or strided rows); and
 *     run_channel_rows, the same sums for channels-last layers, read in place a row at a time with
 *     the channel blocks innermost. (Both are the "blocks" loop.)
 *   - run_row_vectors (depthwise, NCHW, stride 1 along the row): 8 outputs of a row per vector, 4
 *     vectors at once, their sums in registers over every tap; the plane copied with zero margins.
 *     Best on stride-1 rows wider than NARROW_ROW, for kernels narrower than WIDE_KERNEL: each
 *     output vector loads k_h*k_w input vectors, where the blocks share each load between
 *     POSITIONS outputs (ConvNeXt-T's 7x7 layers at 28x28: the blocks 1.2-1.4x as fast with
 *     AVX-512 and with AVX2; 3x3 and 5x5 rows at 28 and 56: row vectors 1.1-1.5x; sixteenth
 *     session).
 * The copies with zero margins let an output sum every kernel column, the margin's terms adding
 * tap * 0 = +-0, which changes no sum begun at +0; a filter with an Inf or NaN tap (Inf * 0 = NaN)
 * sums only the taps inside, as run_planes does.
 * convlens_direct_pick picks one (output_blocks_pay, NARROW_ROW, WIDE_KERNEL, SMALL_PLANE_WIDTH: measured by
 * benchmarks/direct_loops.py); a caller may ask for one.
 *
 * No blocking for cache: this is the reference in C and the kernel for the calls where a single
 * call's fixed cost, not its arithmetic, is the time (small layers), for depthwise layers, where
 * each output reads only k_h*k_w inputs, and for stems with few input channels, where im2col's
 * columns are k_h*k_w copies of the image for a thin product.
 *
 * CPU dispatch: target_clones compiles each loop for x86-64-v4 (AVX-512), x86-64-v3 (AVX2,
 * FMA) and plain x86-64; the dynamic loader picks the widest the CPU has. Every term
 * weight * input + sum is one fused multiply-add (FMA: one rounding) in the v4 and v3 clones, which
 * run the same 8-float vectors in the same order, so every CPU with AVX2 and FMA gives the same
 * bits; the plain clone (CPUs from before 2013) rounds the product first. (The pragma below turns on
 * GCC's contraction for this file only; the rest of the core is built with -ffp-contract=off.) Why:
 * the unfused multiply and add are two instructions on the same two ports, and these loops are
 * bound by them: benchmarks/RESULTS.md, thirteenth session.
 * Two loops have a second entry point compiled for x86-64-v4 alone and picked by asking the CPU
 * (avx512): channels-last depthwise rows (wide_outputs: 8 outputs of 16 channels, each kernel row's
 * taps in registers, each input vector loaded once for every output it feeds) and the NCHW row
 * vectors (wide_row_outputs: 16 outputs per vector). Their 16-lane vectors fit AVX-512's registers
 * only (AVX2 would keep them on the stack), and lanes are independent: the same bits as the
 * 8-lane loops.
 * Threads: as many as the caller says (torch.get_num_threads()), each a share of the loop's units
 * (parallel.h): output planes, channel or output blocks, or output rows.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "sizes.h"
#include "vectors.h"

#pragma GCC optimize("fp-contract=fast")

typedef struct {
    const float *x, *weight, *bias;
    float *out;
    int64_t in_channels, in_per_group, out_channels, out_per_group;
    int64_t height, width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    int64_t dilation_h, dilation_w, out_h, out_w;
    const int64_t *columns;   /* [2*kx], [2*kx + 1]: the output columns [x_first, x_end) tap column kx reads inside the input */
    const int64_t *tap_rows;  /* [2*y], [2*y + 1]: the kernel rows [ky_first, ky_end) output row y reads inside the input */
    const int64_t *tap_cols;  /* [2*x], [2*x + 1]: the kernel columns [kx_first, kx_end) output column x reads inside */
    int *no_memory;           /* set to 1 by a share that could not allocate its buffers */
    const float *w_lanes;     /* run_channel_rows: the weights laid out (block, tap, lane), bias_lanes (block, lane) */
    const float *bias_lanes;
} Job;

enum { LANES = 16 };                         /* the blocked loops: channels at a time */
enum { MAX_BLOCK_PLANE = 16384 };            /* run_channel_blocks: the largest plane (and kernel) it copies */
enum { MAX_CHANNELS_LAST_TAPS = 1024 };      /* run_channel_rows: the most kernel taps (native/__init__.py's too) */
enum { SMALL_PLANE_WIDTH = 32 };             /* stride-1 outputs at most this wide may go through run_channel_blocks */
enum { NARROW_ROW = 16 };                    /* stride-1 depthwise rows wider than this go through run_row_vectors */
enum { WIDE_KERNEL = 7 };                    /* ... unless the kernel is this wide and the blocks take the plane */
enum { HALF_WIDE_KERNEL = 5 };               /* ... this wide where the blocks run 8 lanes at a time (no AVX-512) */
enum { POSITIONS = 4 };                      /* the blocked loops: outputs of a row that share weight loads */
enum { ROW_WEIGHT_BYTES = 16384 };           /* run_channel_rows: the weights of the channel blocks it takes at once */

/* Half of LANES floats (vectors.h's Half) is the loops' vector: each + and * is one elementwise
 * IEEE operation (one AVX2 instruction, two SSE ones), so every clone rounds exactly as scalar code
 * would. (A whole LANES-float vector has no register on AVX2: GCC keeps it on the stack, 8-15x the
 * spills of the v3 clones as built, and it ran only 0-15% faster on AVX-512: benchmarks/RESULTS.md,
 * thirteenth session.) */
_Static_assert(sizeof(Half) == LANES / 2 * sizeof(float), "Half is half of LANES");
/* `value` in every lane, for the lane masks: x - (+0) is x for every x, -0 included. Where a vector
 * meets a scalar in a product, GCC broadcasts the scalar itself, one instruction, and the loops let
 * it (this form compiled to lane-by-lane inserts there, and the +0 + tap the loops once wrote to an
 * add and a broadcast per tap). */
static inline __attribute__((always_inline)) Half splat_half(float value) {
    return value - (Half){0};
}

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

FOR_EVERY_CPU
static void run_planes(const void *context, int64_t first_plane, int64_t end_plane) {
    const Job *job = (const Job *)context; /* planes n*C_out + o in [first_plane, end_plane) */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w;
    const int64_t C_in = job->in_channels, per_group = job->in_per_group;
    const int64_t *columns = job->columns;
    float *partial = malloc(sizeof(float) * (size_t)W_out); /* one input channel's terms of the row */
    if (partial == NULL) {
        *job->no_memory = 1;
        return;
    }
    for (int64_t plane = first_plane; plane < end_plane; plane++) {
        const int64_t n = plane / job->out_channels, o = plane % job->out_channels;
        const int64_t first_channel = o / job->out_per_group * per_group; /* the group's first input channel */
        const float *image = job->x + (n * C_in + first_channel) * H * W;
        const float *filter = job->weight + o * per_group * kh * kw; /* (C_in/G, k_h, k_w) */
        float *output = job->out + plane * H_out * W_out;
        for (int64_t y = 0; y < H_out; y++) {
            float *out_row = output + y * W_out;
            for (int64_t x = 0; x < W_out; x++) out_row[x] = 0.0f;
            /* with one input channel its terms go straight into the row: 0 + partial is the partial */
            float *sum_row = per_group == 1 ? out_row : partial;
            for (int64_t c = 0; c < per_group; c++) {
                const float *input = image + c * H * W;
                const float *taps = filter + c * kh * kw;
                if (per_group > 1) {
                    for (int64_t x = 0; x < W_out; x++) partial[x] = 0.0f;
                }
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
                            for (int64_t x = x_first; x < x_end; x++) sum_row[x] += tap * source[x];
                        } else {
                            for (int64_t x = x_first; x < x_end; x++) sum_row[x] += tap * in_row[x * sw + shift];
                        }
                    }
                }
                if (per_group > 1) {
                    for (int64_t x = 0; x < W_out; x++) out_row[x] += partial[x];
                }
            }
            if (job->bias != NULL) {
                const float b = job->bias[o];
                for (int64_t x = 0; x < W_out; x++) out_row[x] += b;
            }
        }
    }
    free(partial);
}

/* `want` when output columns x .. x + want - 1 exist and read the same kernel columns inside the
 * input (tap_cols: see Job), so that one load of each tap's weights serves them all; else 1. */
static inline int64_t outputs_sharing(const int64_t *tap_cols, int64_t x, int64_t W_out, int64_t want) {
    if (x + want > W_out) return 1;
    for (int64_t p = 1; p < want; p++) {
        if (tap_cols[2 * (x + p)] != tap_cols[2 * x] || tap_cols[2 * (x + p) + 1] != tap_cols[2 * x + 1]) return 1;
    }
    return want;
}

static inline int64_t outputs_sharing_taps(const int64_t *tap_cols, int64_t x, int64_t W_out) {
    return outputs_sharing(tap_cols, x, W_out, POSITIONS);
}

/* Where the taps of an output read, for the blocked loops: the input element its tap (0, 0) would
 * read (padding included, so it may be outside), how far apart kernel rows, kernel columns and
 * neighbouring outputs of the row read, and the taps inside the input. Offsets in floats. */
typedef struct {
    int64_t first, row_step, column_step, output_step;
    int64_t ky_first, ky_end, kx_first, kx_end, kernel_w;
} Reads;

/* run_channel_blocks's outputs, `positions` of them at once (a constant where it is called, so that
 * their sums stay in registers): each lane sums tap * input over the taps of `reads` (taps[(ky * k_w
 * + kx) * LANES + l]; the inputs of lanes past `lanes` read as zeros: the last block of a
 * channels-last input), adds its bias (NULL: none), and goes to target + p * target_step. */
static inline __attribute__((always_inline)) void lane_outputs(int positions, const float *source, const float *taps,
                                                               const Reads *reads, int64_t lanes, const float *bias,
                                                               float *target, int64_t target_step) {
    Half sums[POSITIONS][2] = {{{0}}}; /* per output: lanes 0 .. LANES/2 - 1, LANES/2 .. LANES - 1 */
    float value[LANES];
    for (int64_t ky = reads->ky_first; ky < reads->ky_end; ky++) {
        for (int64_t kx = reads->kx_first; kx < reads->kx_end; kx++) {
            const float *tap = taps + (ky * reads->kernel_w + kx) * LANES;
            const Half tap_low = load_half(tap), tap_high = load_half(tap + LANES / 2);
            const float *at = source + (reads->first + ky * reads->row_step + kx * reads->column_step);
            for (int p = 0; p < positions; p++) {
                const float *input = at + p * reads->output_step;
                if (lanes < LANES) { /* read only the block's channels */
                    for (int l = 0; l < LANES; l++) value[l] = l < lanes ? input[l] : 0.0f;
                    input = value;
                }
                sums[p][0] += tap_low * load_half(input);
                sums[p][1] += tap_high * load_half(input + LANES / 2);
            }
        }
    }
    for (int p = 0; p < positions; p++) {
        if (bias != NULL) {
            sums[p][0] += load_half(bias);
            sums[p][1] += load_half(bias + LANES / 2);
        }
        if (lanes == LANES) {
            store_half(target + p * target_step, sums[p][0]);
            store_half(target + p * target_step + LANES / 2, sums[p][1]);
        } else { /* the last block of a channels-last output: write only its channels */
            store_half(value, sums[p][0]);
            store_half(value + LANES / 2, sums[p][1]);
            for (int64_t l = 0; l < lanes; l++) target[p * target_step + l] = value[l];
        }
    }
}

/* run_output_blocks's outputs, `positions` of them at once (a constant where it is called): each
 * lane sums weight * input over the group's input channels (image, planes plane_size apart) and
 * the taps of `reads`, the input value broadcast to every lane (w_lanes[((c * k_h + ky) * k_w + kx)
 * * LANES + l], taps = k_h * k_w), adds its bias (NULL: none) and goes to output plane l of
 * `planes` (plane_size apart), column p. */
static inline __attribute__((always_inline)) void group_outputs(int positions, const float *image, int64_t per_group,
                                                                int64_t plane_size, const float *w_lanes, int64_t taps,
                                                                const Reads *reads, int64_t lanes, const float *bias,
                                                                float *planes, int64_t out_plane_size) {
    Half sums[POSITIONS][2] = {{{0}}}; /* per output: lanes 0 .. LANES/2 - 1, LANES/2 .. LANES - 1 */
    for (int64_t c = 0; c < per_group; c++) {
        Half partial[POSITIONS][2] = {{{0}}}; /* input channel c's terms */
        for (int64_t ky = reads->ky_first; ky < reads->ky_end; ky++) {
            for (int64_t kx = reads->kx_first; kx < reads->kx_end; kx++) {
                const float *w = w_lanes + (c * taps + ky * reads->kernel_w + kx) * LANES;
                const Half low = load_half(w), high = load_half(w + LANES / 2);
                const float *at = image + (c * plane_size + reads->first + ky * reads->row_step + kx * reads->column_step);
                for (int p = 0; p < positions; p++) {
                    partial[p][0] += low * at[p * reads->output_step];
                    partial[p][1] += high * at[p * reads->output_step];
                }
            }
        }
        for (int p = 0; p < positions; p++) {
            sums[p][0] += partial[p][0];
            sums[p][1] += partial[p][1];
        }
    }
    for (int p = 0; p < positions; p++) {
        float value[LANES];
        store_half(value, sums[p][0]);
        store_half(value + LANES / 2, sums[p][1]);
        for (int64_t l = 0; l < lanes; l++) planes[l * out_plane_size + p] = bias != NULL ? value[l] + bias[l] : value[l];
    }
}

/* LANES floats as one value: one AVX-512 register. Used only in code compiled for AVX-512
 * (run_channel_rows_wide); elsewhere the loops take them as two Halves, which AVX2 keeps in its 16
 * registers. */
typedef float Wide __attribute__((vector_size(LANES * sizeof(float))));
static inline __attribute__((always_inline)) Wide load_wide(const float *from) {
    Wide wide;
    memcpy(&wide, from, sizeof wide);
    return wide;
}

enum { WIDE_POSITIONS = 8, WIDE_MAX_KW = 7 }; /* wide_outputs: outputs of a row at once; widest kernel row */
enum { SEVEN = 7 };                           /* and the outputs of a row 7 wide (the last stage of many models) */

/* run_channel_rows_wide's outputs x .. x + WIDE_POSITIONS - 1 of a row, LANES channels, stride and
 * dilation 1 along the row; kw a constant where it is called. Each kernel row's kw tap vectors are
 * loaded once, and each input vector of the row once for the (up to) kw outputs it feeds: input
 * column x - pad_left + j (at + j * C) feeds output p = j - kx through tap kx; columns j outside
 * [j_first, j_end) are the padding, whose terms are skipped, as run_planes skips them. The
 * AVX-512 register file holds the kw taps and the WIDE_POSITIONS sums; the loads, not the
 * multiply-adds, bound the loop that loads an input per multiply-add (benchmarks/RESULTS.md,
 * thirteenth session). Each output's terms come ky, then kx, ascending: lane_outputs's order. */
static inline __attribute__((always_inline)) void wide_outputs(int kw, int positions, int inside, const float *at,
                                                               int64_t C,
                                                               int64_t row_step,
                                                               const float *taps, int64_t ky_first, int64_t ky_end,
                                                               int64_t j_first, int64_t j_end, const float *bias,
                                                               float *target) {
    Wide sums[WIDE_POSITIONS];
    for (int p = 0; p < positions; p++) sums[p] = (Wide){0};
    for (int64_t ky = ky_first; ky < ky_end; ky++) {
        const float *row = at + ky * row_step; /* input column x's channels, kernel row ky */
        Wide tap[WIDE_MAX_KW];
        for (int kx = 0; kx < kw; kx++) tap[kx] = load_wide(taps + (ky * kw + kx) * LANES);
        /* unrolled whole (kw is a constant), so that taps and sums are registers, not an array */
        const float *column = row; /* input column j's channels: a pointer stepped, not j * C (registers) */
#pragma GCC unroll 16
        for (int j = 0; j < positions + kw - 1; j++, column += C) {
            if (!inside && (j < j_first || j >= j_end)) continue; /* a column of the padding: its terms are skipped */
            const Wide input = load_wide(column);
#pragma GCC unroll 8
            for (int kx = 0; kx < kw; kx++) {
                const int p = j - kx;
                if (p >= 0 && p < positions) sums[p] += tap[kx] * input;
            }
        }
    }
    for (int p = 0; p < positions; p++) {
        const Wide out = bias != NULL ? sums[p] + load_wide(bias) : sums[p];
        memcpy(target + p * C, &out, sizeof out);
    }
}

/* wide_outputs with kw, positions and inside as constants: 3x3, 5x5, 7x7; WIDE_POSITIONS or SEVEN
 * outputs; every column inside the input (no test per column) or not. */
static inline __attribute__((always_inline)) void wide_row(int64_t kw, int64_t positions, const float *at, int64_t C,
                                                           int64_t row_step, const float *taps, int64_t ky_first,
                                                           int64_t ky_end, int64_t j_first, int64_t j_end,
                                                           const float *bias, float *target) {
    const int inside = j_first == 0 && j_end == positions + kw - 1;
#define WIDE_CASE(KW, P, IN)                                                                                     \
    if (kw == KW && positions == P && inside == IN)                                                              \
    return wide_outputs(KW, P, IN, at, C, row_step, taps, ky_first, ky_end, j_first, j_end, bias, target)
#define WIDE_KERNELS(P, IN) WIDE_CASE(3, P, IN); WIDE_CASE(5, P, IN); WIDE_CASE(7, P, IN)
    WIDE_KERNELS(WIDE_POSITIONS, 1);
    WIDE_KERNELS(SEVEN, 1);
    WIDE_KERNELS(WIDE_POSITIONS, 0);
    WIDE_KERNELS(SEVEN, 0);
#undef WIDE_KERNELS
#undef WIDE_CASE
}

enum { HALF_POSITIONS = 6 }; /* half_outputs: outputs of a row at once (SEVEN where the row is 7 wide) */

/* wide_outputs for one half of a block's LANES channels, in 8-float vectors (one AVX2 register):
 * outputs x .. x + positions - 1 of a row, stride and dilation 1 along the row, columns j outside
 * [j_first, j_end) skipped (the padding, as wide_outputs skips them); kw, positions and inside
 * constants where it is called. AVX2's 16 registers hold a half's kw taps and the positions' sums
 * (7 + 7 + the input for a 7x7 kernel on a row 7 wide), where the sums of all LANES channels would
 * not fit; lane_outputs loads two inputs per two multiply-adds instead (ConvNeXt-T's 7x7 layers held
 * to AVX2 ran 0.95x-0.98x of PyTorch at batch 8 that way; benchmarks/RESULTS.md, seventeenth
 * session). The same terms in the same order: the same bits. `at`, `taps`, `bias` and `target`
 * point at the half's first channel, C floats between columns. */
static inline __attribute__((always_inline)) void half_outputs(int kw, int positions, int inside, const float *at,
                                                               int64_t C, int64_t row_step, const float *taps,
                                                               int64_t ky_first, int64_t ky_end, int64_t j_first,
                                                               int64_t j_end, const float *bias, float *target) {
    Half sums[SEVEN];
    for (int p = 0; p < positions; p++) sums[p] = (Half){0};
    for (int64_t ky = ky_first; ky < ky_end; ky++) {
        Half tap[WIDE_MAX_KW];
        for (int kx = 0; kx < kw; kx++) tap[kx] = load_half(taps + (ky * kw + kx) * LANES);
        const float *column = at + ky * row_step; /* input column j's channels */
#pragma GCC unroll 16
        for (int j = 0; j < positions + kw - 1; j++, column += C) {
            if (!inside && (j < j_first || j >= j_end)) continue; /* a column of the padding: its terms are skipped */
            const Half input = load_half(column);
#pragma GCC unroll 8
            for (int kx = 0; kx < kw; kx++) {
                const int p = j - kx;
                if (p >= 0 && p < positions) sums[p] += tap[kx] * input;
            }
        }
    }
    for (int p = 0; p < positions; p++) store_half(target + p * C, bias != NULL ? sums[p] + load_half(bias) : sums[p]);
}

/* half_outputs over both halves of a block of LANES channels, with kw, positions and inside as
 * constants: 3x3, 5x5, 7x7; HALF_POSITIONS or SEVEN outputs; every column inside or not. */
static inline __attribute__((always_inline)) void half_row(int64_t kw, int64_t positions, const float *at, int64_t C,
                                                           int64_t row_step, const float *taps, int64_t ky_first,
                                                           int64_t ky_end, int64_t j_first, int64_t j_end,
                                                           const float *bias, float *target) {
    const int inside = j_first == 0 && j_end == positions + kw - 1;
    for (int64_t half = 0; half < LANES; half += LANES / 2) {
        const float *half_bias = bias != NULL ? bias + half : NULL;
#define HALF_CASE(KW, P, IN)                                                                                    \
    if (kw == KW && positions == P && inside == IN)                                                             \
        half_outputs(KW, P, IN, at + half, C, row_step, taps + half, ky_first, ky_end, j_first, j_end, half_bias,  \
                     target + half)
#define HALF_KERNELS(P, IN) HALF_CASE(3, P, IN); else HALF_CASE(5, P, IN); else HALF_CASE(7, P, IN)
        HALF_KERNELS(HALF_POSITIONS, 1);
        else HALF_KERNELS(SEVEN, 1);
        else HALF_KERNELS(HALF_POSITIONS, 0);
        else HALF_KERNELS(SEVEN, 0);
#undef HALF_KERNELS
#undef HALF_CASE
    }
}

/* One input channel per group (depthwise), NCHW, planes of up to MAX_BLOCK_PLANE positions: narrow
 * rows, where run_planes's row loops would run a few iterations each and cost more than the sums,
 * and strided rows, which run_planes reads a stride apart: LANES output
 * channels at a time, their planes first copied channels innermost (input[row][col][l]) with zero
 * margins left and right, and every tap one multiply-add of LANES contiguous floats, for POSITIONS
 * outputs of a row at once (one load of the tap's weights serves them, and their sums are
 * independent chains for the CPU to overlap); the outputs are copied back. Where the block's taps
 * are all finite, every output sums every kernel column, the margin's zeros adding +-0 (which
 * changes no sum begun at +0, as in run_row_vectors), so that all outputs of a row go POSITIONS at
 * a time, the edges too; else only the taps inside the input, POSITIONS at a time where they share
 * them. Either way each output sums the terms run_planes sums (ky, then kx), and the bias last: the
 * same bits as run_planes. */
static inline __attribute__((always_inline)) void channel_blocks(const Job *job, int64_t first_block, int64_t end_block,
                                                                 int wide) {
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w, C_out = job->out_channels, C_in = job->in_channels;
    const int64_t blocks_per_image = (C_out + LANES - 1) / LANES;
    /* the copy's rows: input column j at left + j, zeros before and after as far as outputs read */
    const int64_t left = job->pad_left, right_reach = (W_out - 1) * sw - job->pad_left + (kw - 1) * dw - (W - 1);
    const int64_t row_length = left + W + (right_reach > 0 ? right_reach : 0);
    /* outputs of a row wide_outputs takes at a time, reading every column of the copy (0: none; the
     * AVX-512 entry point only, for stride and dilation 1 along the row and 3x3, 5x5, 7x7 kernels) */
    const int sliding = (kw == 3 || kw == 5 || kw == 7) && sw == 1 && dw == 1; /* rows wide_/half_outputs take */
    const int64_t group = !(sliding && wide) ? 0 : W_out >= WIDE_POSITIONS ? WIDE_POSITIONS : W_out == SEVEN ? SEVEN : 0;
    /* the same with 8-lane vectors, a half of the block at a time (the entry point without AVX-512) */
    const int64_t half_group = !sliding || wide ? 0 : W_out == SEVEN ? SEVEN : W_out >= HALF_POSITIONS ? HALF_POSITIONS : 0;
    float *input = calloc((size_t)(H * row_length * LANES), sizeof(float));
    float *output = malloc(sizeof(float) * (size_t)(H_out * W_out * LANES));
    float *taps = malloc(sizeof(float) * (size_t)(kh * kw * LANES));
    float bias[LANES];
    if (input == NULL || output == NULL || taps == NULL) {
        *job->no_memory = 1;
        free(input), free(output), free(taps);
        return;
    }
    for (int64_t block = first_block; block < end_block; block++) {
        const int64_t n = block / blocks_per_image, o0 = block % blocks_per_image * LANES;
        const int64_t lanes = C_out - o0 < LANES ? C_out - o0 : LANES;
        int finite = 1; /* every tap finite: the margins' terms are +-0 */
        const float *planes[LANES]; /* the input plane of each lane */
        for (int64_t l = 0; l < LANES; l++) { /* lanes past C_out repeat channel o0: computed, never stored */
            const int64_t o = l < lanes ? o0 + l : o0;
            planes[l] = job->x + (n * C_in + o / job->out_per_group) * H * W;
            for (int64_t t = 0; t < kh * kw; t++) {
                taps[t * LANES + l] = job->weight[o * kh * kw + t];
                finite &= __builtin_isfinite(taps[t * LANES + l]) != 0;
            }
            bias[l] = job->bias != NULL ? job->bias[o] : 0.0f;
        }
        /* the copy written in memory order, LANES planes read side by side (a plane at a time wrote
         * every 16th float, a pass over the whole copy per lane: 3x the time of the sums) */
        for (int64_t i = 0; i < H; i++) {
            for (int64_t j = 0; j < W; j++) {
                float *to = input + (i * row_length + left + j) * LANES;
                for (int64_t l = 0; l < LANES; l++) to[l] = planes[l][i * W + j];
            }
        }
        const float *bias_lanes = job->bias != NULL ? bias : NULL;
        for (int64_t y = 0; y < H_out; y++) {
            const int64_t ky_first = job->tap_rows[2 * y], ky_end = job->tap_rows[2 * y + 1];
            if (finite && group > 0) { /* AVX-512: the copy is a channels-last image of LANES channels */
                for (int64_t x = 0; x < W_out; x += group) {
                    const int64_t x0 = x + group <= W_out ? x : W_out - group; /* the last overlaps: the same values */
                    wide_row(kw, group, input + ((y * sh - job->pad_top) * row_length + x0) * LANES, LANES,
                             dh * row_length * LANES, taps, ky_first, ky_end, 0, group + kw - 1, bias_lanes,
                             output + (y * W_out + x0) * LANES);
                }
                continue;
            }
            if (finite && half_group > 0) { /* the same, 8 lanes at a time */
                for (int64_t x = 0; x < W_out; x += half_group) {
                    const int64_t x0 = x + half_group <= W_out ? x : W_out - half_group; /* the last overlaps */
                    half_row(kw, half_group, input + ((y * sh - job->pad_top) * row_length + x0) * LANES, LANES,
                             dh * row_length * LANES, taps, ky_first, ky_end, 0, half_group + kw - 1, bias_lanes,
                             output + (y * W_out + x0) * LANES);
                }
                continue;
            }
            for (int64_t x = 0; x < W_out;) {
                const int64_t kx_first = finite ? 0 : job->tap_cols[2 * x], kx_end = finite ? kw : job->tap_cols[2 * x + 1];
                const int64_t count = finite ? (x + POSITIONS <= W_out ? POSITIONS : 1)
                                             : outputs_sharing_taps(job->tap_cols, x, W_out);
                const Reads reads = {((y * sh - job->pad_top) * row_length + x * sw) * LANES, dh * row_length * LANES,
                                     dw * LANES, sw * LANES, ky_first, ky_end, kx_first, kx_end, kw};
                float *target = output + (y * W_out + x) * LANES;
                if (count == POSITIONS) {
                    lane_outputs(POSITIONS, input, taps, &reads, LANES, bias_lanes, target, LANES);
                } else {
                    lane_outputs(1, input, taps, &reads, LANES, bias_lanes, target, LANES);
                }
                x += count;
            }
        }
        float *out_planes = job->out + (n * C_out + o0) * H_out * W_out; /* the planes of channels o0 .. */
        for (int64_t p = 0; p < H_out * W_out; p++) { /* read in memory order, the block's planes written side by side */
            for (int64_t l = 0; l < lanes; l++) out_planes[l * H_out * W_out + p] = output[p * LANES + l];
        }
    }
    free(input), free(output), free(taps);
}

FOR_EVERY_CPU
static void run_channel_blocks(const void *context, int64_t first_block, int64_t end_block) {
    channel_blocks((const Job *)context, first_block, end_block, 0); /* blocks n * blocks_per_image + b */
}

#ifdef HAVE_AVX512_LOOPS
/* run_channel_blocks for CPUs with AVX-512: rows of stride 1 and 3x3, 5x5 or 7x7 kernels through
 * wide_outputs, which reads the copy as a channels-last image of LANES channels (its zero margins
 * add +-0 where a filter's taps are finite, as in the 8-lane loop). */
FOR_AVX512 static void run_channel_blocks_wide(const void *context, int64_t first_block,
                                                                               int64_t end_block) {
    channel_blocks((const Job *)context, first_block, end_block, 1);
}
#endif

/* Channels-last depthwise (one filter per channel): one output row (n, y) at a time, and along it,
 * for each POSITIONS outputs, every block of LANES channels in turn, so that the reads of one
 * position run along the channels in memory order (a block at a time over the whole image, as
 * run_channel_blocks goes, reads one cache line per position and moves C floats on: strided
 * reads and writes the prefetchers follow less well). Each block's sums as lane_outputs makes
 * them: the same bits as run_planes. The weights come laid out (block, tap, lane), once per call
 * (channel_lanes). `wide` (a constant where it is inlined): the AVX-512 entry point, whose
 * rows of stride and dilation 1 with a 3x3, 5x5 or 7x7 kernel go WIDE_POSITIONS outputs at a time
 * through wide_outputs (a row 7 wide: 7 at a time), the edges too. */
static inline __attribute__((always_inline)) void channel_rows(const Job *job, int64_t first_row, int64_t end_row,
                                                               int wide) {
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t H_out = job->out_h, W_out = job->out_w, C = job->out_channels;
    const int64_t blocks = (C + LANES - 1) / LANES, taps = kh * kw;
    const float *w_lanes = job->w_lanes, *bias = job->bias_lanes; /* [(b * taps + t) * LANES + l], [b * LANES + l] */
    /* blocks [b0, b0 + chunk) at a time along the row: their weights, chunk * taps * LANES floats, stay in L1 */
    const int64_t fit = ROW_WEIGHT_BYTES / (int64_t)(taps * LANES * sizeof(float)), chunk = fit > 1 ? fit : 1;
    /* outputs of a row wide_outputs (the AVX-512 entry point) or half_outputs (the others, 5x5 and
     * 7x7 only: held to AVX2, MobileNetV2's 3x3 layers ran 0.52x-0.92x of PyTorch at batch 8 through
     * half_outputs, 0.92x-1.05x through lane_outputs; benchmarks/RESULTS.md, seventeenth session)
     * takes at a time (0: none) */
    const int sliding = (kw == 3 || kw == 5 || kw == 7) && job->stride_w == 1 && job->dilation_w == 1;
    int64_t group = 0;
    if (sliding && wide) group = W_out >= WIDE_POSITIONS ? WIDE_POSITIONS : W_out == SEVEN ? SEVEN : 0;
    if (sliding && !wide && kw >= HALF_WIDE_KERNEL)
        group = W_out == SEVEN ? SEVEN : W_out >= HALF_POSITIONS ? HALF_POSITIONS : 0;
    for (int64_t row = first_row; row < end_row; row++) {
      for (int64_t b0 = 0; b0 < blocks; b0 += chunk) {
        const int64_t b_end = b0 + chunk < blocks ? b0 + chunk : blocks;
        const int64_t n = row / H_out, y = row % H_out;
        const int64_t ky_first = job->tap_rows[2 * y], ky_end = job->tap_rows[2 * y + 1];
        const float *image = job->x + n * H * W * C;
        for (int64_t x = 0; x < W_out;) {
            const int64_t kx_first = job->tap_cols[2 * x], kx_end = job->tap_cols[2 * x + 1];
            if (group > 0) {
                /* group outputs from x0; the row's last ones overlap the ones before (the same values again) */
                const int64_t x0 = x + group <= W_out ? x : W_out - group;
                const int64_t left = job->pad_left - x0, right = W + job->pad_left - x0; /* inside: j in [left, right) */
                const int64_t j_first = left > 0 ? left : 0, j_end = right < group + kw - 1 ? right : group + kw - 1;
                const float *at = image + ((y * job->stride_h - job->pad_top) * W + x0 - job->pad_left) * C;
                float *target = job->out + ((n * H_out + y) * W_out + x0) * C;
                const int64_t step = job->dilation_h * W * C;
                for (int64_t b = b0; b < b_end; b++) {
                    const float *block_bias = job->bias != NULL ? bias + b * LANES : NULL;
                    const float *block_taps = w_lanes + b * taps * LANES;
                    if (C - b * LANES < LANES) { /* the last, partial block: its lanes one output at a time */
                        for (int64_t p = 0; p < group; p++) {
                            const int64_t xp = x0 + p;
                            const Reads one = {(y * job->stride_h - job->pad_top) * W * C + (xp - job->pad_left) * C, step, C,
                                               C, ky_first, ky_end, job->tap_cols[2 * xp], job->tap_cols[2 * xp + 1], kw};
                            lane_outputs(1, image + b * LANES, block_taps, &one, C - b * LANES, block_bias,
                                         target + p * C + b * LANES, C);
                        }
                    } else if (wide) {
                        wide_row(kw, group, at + b * LANES, C, step, block_taps, ky_first, ky_end, j_first, j_end, block_bias,
                                 target + b * LANES);
                    } else {
                        half_row(kw, group, at + b * LANES, C, step, block_taps, ky_first, ky_end, j_first, j_end, block_bias,
                                 target + b * LANES);
                    }
                }
                x = x0 + group;
                continue;
            }
            const int64_t count = outputs_sharing_taps(job->tap_cols, x, W_out);
            const Reads reads = {(y * job->stride_h - job->pad_top) * W * C + (x * job->stride_w - job->pad_left) * C,
                                 job->dilation_h * W * C, job->dilation_w * C, job->stride_w * C,
                                 ky_first, ky_end, kx_first, kx_end, kw};
            float *target = job->out + ((n * H_out + y) * W_out + x) * C;
            for (int64_t b = b0; b < b_end; b++) {
                const int64_t lanes = C - b * LANES < LANES ? C - b * LANES : LANES;
                const float *block_bias = job->bias != NULL ? bias + b * LANES : NULL;
                const float *block_taps = w_lanes + b * taps * LANES;
                if (count == POSITIONS && lanes == LANES) { /* constant counts, so that the sums stay in registers */
                    lane_outputs(POSITIONS, image + b * LANES, block_taps, &reads, LANES, block_bias, target + b * LANES, C);
                } else {
                    for (int64_t p = 0; p < count; p++) {
                        const Reads one = {reads.first + p * reads.output_step, reads.row_step, reads.column_step,
                                           reads.output_step, ky_first, ky_end, kx_first, kx_end, kw};
                        lane_outputs(1, image + b * LANES, block_taps, &one, lanes, block_bias, target + p * C + b * LANES, C);
                    }
                }
            }
            x += count;
        }
      }
    }
}

FOR_EVERY_CPU
static void run_channel_rows(const void *context, int64_t first_row, int64_t end_row) {
    channel_rows((const Job *)context, first_row, end_row, 0); /* rows n * H_out + y in [first_row, end_row) */
}

#ifdef HAVE_AVX512_LOOPS
/* run_channel_rows for CPUs with AVX-512 (convlens_direct_forward asks the CPU). */
FOR_AVX512 static void run_channel_rows_wide(const void *context, int64_t first_row,
                                                                             int64_t end_row) {
    channel_rows((const Job *)context, first_row, end_row, 1);
}

#endif

/* Several input channels per group (dense or grouped): LANES output channels of one group at a time,
 * output channels innermost. Every (input channel, tap) is one multiply-add of LANES weights by one
 * input value, broadcast: no short loops over an output row, which is where run_planes spends a small
 * layer's time (an 8-wide row is one vector and a scalar tail per tap). Each output sums, per input
 * channel of its group, the taps that read inside the input (ky, then kx) into a partial, the
 * partials in channel order, then the bias: the order of run_planes, so the same bits. The block's
 * weights are first laid out (C_in/G, k_h, k_w, LANES) in a buffer of the share's own. */
FOR_EVERY_CPU
static void run_output_blocks(const void *context, int64_t first_block, int64_t end_block) {
    const Job *job = (const Job *)context; /* blocks (n, group, chunk of LANES outputs) in [first_block, end_block) */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w, C_out = job->out_channels, C_in = job->in_channels;
    const int64_t per_group = job->in_per_group, out_per_group = job->out_per_group;
    const int64_t chunks = (out_per_group + LANES - 1) / LANES, groups = C_out / out_per_group;
    const int64_t *tap_cols = job->tap_cols;
    /* [(c * k_h + ky) * k_w + kx][l]: weight[o0 + l, c, ky, kx] */
    float *w_lanes = malloc(sizeof(float) * (size_t)(per_group * kh * kw * LANES));
    if (w_lanes == NULL) {
        *job->no_memory = 1;
        return;
    }
    for (int64_t block = first_block; block < end_block; block++) {
        const int64_t n = block / (groups * chunks), g = block / chunks % groups;
        const int64_t o0 = g * out_per_group + block % chunks * LANES, o_end = (g + 1) * out_per_group;
        const int64_t lanes = o_end - o0 < LANES ? o_end - o0 : LANES;
        for (int64_t l = 0; l < LANES; l++) { /* lanes past the chunk repeat its first channel: computed, never stored */
            const float *filter = job->weight + (l < lanes ? o0 + l : o0) * per_group * kh * kw;
            for (int64_t t = 0; t < per_group * kh * kw; t++) w_lanes[t * LANES + l] = filter[t];
        }
        const float *image = job->x + (n * C_in + g * per_group) * H * W; /* the group's first input channel */
        float *planes = job->out + (n * C_out + o0) * H_out * W_out;     /* output channel o0's plane */
        for (int64_t y = 0; y < H_out; y++) {
            const int64_t ky_first = job->tap_rows[2 * y], ky_end = job->tap_rows[2 * y + 1];
            for (int64_t x = 0; x < W_out;) {
                const int64_t kx_first = tap_cols[2 * x], kx_end = tap_cols[2 * x + 1];
                const int64_t count = outputs_sharing_taps(tap_cols, x, W_out);
                const Reads reads = {(y * sh - job->pad_top) * W + x * sw - job->pad_left, dh * W, dw, sw,
                                     ky_first, ky_end, kx_first, kx_end, kw};
                const float *bias = job->bias != NULL ? job->bias + o0 : NULL;
                float *at = planes + y * W_out + x;
                if (count == POSITIONS) { /* a constant count, so that the sums stay in registers */
                    group_outputs(POSITIONS, image, per_group, H * W, w_lanes, kh * kw, &reads, lanes, bias, at, H_out * W_out);
                } else {
                    group_outputs(1, image, per_group, H * W, w_lanes, kh * kw, &reads, lanes, bias, at, H_out * W_out);
                }
                x += count;
            }
        }
    }
    free(w_lanes);
}

#ifdef HAVE_AVX512_LOOPS
enum { QUAD = 4 * LANES, QUAD_POSITIONS = 6 }; /* run_output_quads: output channels, outputs of a row at once */

/* run_output_quads's outputs x .. x + positions - 1 of a row, `vectors` x LANES output channels
 * (both constants where it is called): per input channel, each tap's vectors of weights (w[(c *
 * taps + ky * k_w + kx) * QUAD + l]) times the input value broadcast, summed from zero into a
 * partial over the taps of `reads`, the partials then added in channel order: group_outputs's
 * sums. With 4 vectors and 6 outputs the 24 partials, 4 weight vectors and the input fill
 * AVX-512's 32 registers: 10 loads per 24 multiply-adds, where group_outputs's 8-lane halves make
 * 6 loads per 8. */
static inline __attribute__((always_inline)) void quad_outputs(int vectors, int positions, const float *image,
                                                               int64_t per_group, int64_t plane_size, const float *w,
                                                               int64_t taps, const Reads *reads,
                                                               Wide sums[QUAD_POSITIONS][4]) {
    for (int p = 0; p < positions; p++) {
        for (int v = 0; v < vectors; v++) sums[p][v] = (Wide){0};
    }
    for (int64_t c = 0; c < per_group; c++) {
        Wide partial[QUAD_POSITIONS][4];
        for (int p = 0; p < positions; p++) {
            for (int v = 0; v < vectors; v++) partial[p][v] = (Wide){0};
        }
        for (int64_t ky = reads->ky_first; ky < reads->ky_end; ky++) {
            for (int64_t kx = reads->kx_first; kx < reads->kx_end; kx++) {
                const float *tap = w + (c * taps + ky * reads->kernel_w + kx) * QUAD;
                Wide weights[4];
                for (int v = 0; v < vectors; v++) weights[v] = load_wide(tap + v * LANES);
                const float *at = image + (c * plane_size + reads->first + ky * reads->row_step + kx * reads->column_step);
                for (int p = 0; p < positions; p++) {
                    const float input = at[p * reads->output_step]; /* broadcast by the vector * scalar product */
                    for (int v = 0; v < vectors; v++) partial[p][v] += weights[v] * input;
                }
            }
        }
        for (int p = 0; p < positions; p++) {
            for (int v = 0; v < vectors; v++) sums[p][v] += partial[p][v];
        }
    }
}

/* quad_outputs with its counts as constants: 1 to 4 vectors; QUAD_POSITIONS, 4, 2 or 1 outputs. */
static inline __attribute__((always_inline)) void quad_row(int64_t vectors, int64_t positions, const float *image,
                                                           int64_t per_group, int64_t plane_size, const float *w,
                                                           int64_t taps, const Reads *reads,
                                                           Wide sums[QUAD_POSITIONS][4]) {
#define QUAD_CASE(V, P)                                                                                     \
    if (vectors == V && positions == P) return quad_outputs(V, P, image, per_group, plane_size, w, taps, reads, sums)
#define QUAD_VECTORS(P) QUAD_CASE(4, P); QUAD_CASE(3, P); QUAD_CASE(2, P); QUAD_CASE(1, P)
    QUAD_VECTORS(QUAD_POSITIONS);
    QUAD_VECTORS(4);
    QUAD_VECTORS(2);
    QUAD_VECTORS(1);
#undef QUAD_VECTORS
#undef QUAD_CASE
}

/* run_output_blocks on AVX-512: up to QUAD output channels of a group (a quad) at a time, one output
 * row per unit (so that a batch of one still splits across threads), QUAD_POSITIONS outputs of the
 * row at once where they read the same kernel columns inside the input. The weights come laid out
 * once per call (quad_lanes). The same sums as group_outputs, the bias added last: the same bits. */
FOR_AVX512 static void run_output_quads(const void *context, int64_t first_unit,
                                                                        int64_t end_unit) {
    const Job *job = (const Job *)context; /* units ((n * groups + g) * quads + q) * H_out + y */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w, taps = kh * kw;
    const int64_t H_out = job->out_h, W_out = job->out_w, C_out = job->out_channels, C_in = job->in_channels;
    const int64_t per_group = job->in_per_group, out_per_group = job->out_per_group, groups = C_out / out_per_group;
    const int64_t quads = (out_per_group + QUAD - 1) / QUAD;
    for (int64_t unit = first_unit; unit < end_unit; unit++) {
        const int64_t y = unit % H_out, q = unit / H_out % quads, g = unit / H_out / quads % groups;
        const int64_t n = unit / H_out / quads / groups;
        const int64_t o0 = q * QUAD, outputs = out_per_group - o0 < QUAD ? out_per_group - o0 : QUAD;
        const int64_t vectors = (outputs + LANES - 1) / LANES;
        const float *w = job->w_lanes + (g * quads + q) * per_group * taps * QUAD;
        const float *image = job->x + (n * C_in + g * per_group) * H * W;          /* the group's first input channel */
        float *planes = job->out + (n * C_out + g * out_per_group + o0) * H_out * W_out; /* output channel o0's plane */
        const float *bias = job->bias != NULL ? job->bias + g * out_per_group + o0 : NULL;
        const int64_t ky_first = job->tap_rows[2 * y], ky_end = job->tap_rows[2 * y + 1];
        for (int64_t x = 0; x < W_out;) {
            /* the most of QUAD_POSITIONS, 4, 2 outputs from x that read the same kernel columns inside, else 1 */
            const int64_t shared = outputs_sharing(job->tap_cols, x, W_out, QUAD_POSITIONS);
            const int64_t count = shared > 1                                  ? shared
                                  : outputs_sharing(job->tap_cols, x, W_out, 4) > 1 ? 4
                                                                                    : outputs_sharing(job->tap_cols, x, W_out, 2);
            const Reads reads = {(y * job->stride_h - job->pad_top) * W + x * job->stride_w - job->pad_left,
                                 job->dilation_h * W, job->dilation_w, job->stride_w, ky_first, ky_end,
                                 job->tap_cols[2 * x], job->tap_cols[2 * x + 1], kw};
            Wide sums[QUAD_POSITIONS][4];
            float tile[QUAD_POSITIONS][QUAD]; /* the sums, then each output channel's count outputs to its plane */
            quad_row(vectors, count, image, per_group, H * W, w, taps, &reads, sums);
            for (int64_t p = 0; p < count; p++) memcpy(tile[p], sums[p], sizeof(Wide) * (size_t)vectors);
            for (int64_t o = 0; o < outputs; o++) {
                float *row = planes + o * H_out * W_out + y * W_out + x;
                for (int64_t p = 0; p < count; p++) row[p] = bias != NULL ? tile[p][o] + bias[o] : tile[p][o];
            }
            x += count;
        }
    }
}

/* run_output_quads's weights (C_out, C_in/G, k_h, k_w) laid out (group, quad, input channel, tap,
 * lane), the lanes of a quad's last vector past the group's last output channel repeating it
 * (computed, never stored); NULL when out of memory. The vectors past that one are left unwritten:
 * run_output_quads reads only the `vectors` a quad has (a layer of 4 output channels lays out 16
 * lanes per tap, not 64: on a small layer this copy took as long as the sums). */
static float *quad_lanes(const float *weight, const Sizes *z) {
    const int64_t per_group = z->in_channels / z->groups, out_per_group = z->out_channels / z->groups;
    const int64_t quads = (out_per_group + QUAD - 1) / QUAD, terms = per_group * z->kernel_h * z->kernel_w;
    float *lanes = malloc(sizeof(float) * (size_t)(z->groups * quads * terms * QUAD));
    if (lanes == NULL) return NULL;
    for (int64_t g = 0; g < z->groups; g++) { /* written in memory order (a weight's lanes once scattered 64 floats apart) */
        const float *filters[QUAD];          /* each lane's filter */
        for (int64_t q = 0; q < quads; q++) {
            const int64_t outputs = out_per_group - q * QUAD < QUAD ? out_per_group - q * QUAD : QUAD;
            const int64_t used = (outputs + LANES - 1) / LANES * LANES; /* the lanes of the quad's vectors */
            for (int64_t l = 0; l < used; l++) {
                const int64_t o = q * QUAD + l < out_per_group ? q * QUAD + l : out_per_group - 1;
                filters[l] = weight + (g * out_per_group + o) * terms;
            }
            float *to = lanes + (g * quads + q) * terms * QUAD;
            for (int64_t t = 0; t < terms; t++) {
                for (int64_t l = 0; l < used; l++) to[t * QUAD + l] = filters[l][t];
            }
        }
    }
    return lanes;
}
#endif

/* Lane masks of GCC's vector extension: all ones where a lane's term counts, zeros where it does not. */
typedef int32_t HalfMask __attribute__((vector_size(LANES / 2 * sizeof(int32_t))));

/* run_row_vectors's outputs: `chunks` vectors of LANES / 2 outputs of a row at once (a constant
 * where it is called, so that the sums stay in registers), vector v's first output reading rows + starts[v]
 * (rows: the input plane with zero margins at the first kernel row's row, row_length apart). Each tap
 * is one multiply-add of a vector of inputs by its weight, broadcast. Terms that read a margin add
 * tap * 0 = +-0, which leaves a sum as it was (a sum begun at +0 is never -0), so each output sums
 * the terms run_planes sums, in its order; unless the tap is Inf or NaN: then `masks` (per vector
 * v and kernel column kx: masks[v * k_w + kx], the lanes that read inside the input) zero the
 * weight where a lane reads the margin (0 * 0 adds +0). NULL: a filter of finite taps, no masks. */
static inline __attribute__((always_inline)) void row_vector_outputs(int chunks, const float *rows, const int64_t *starts,
                                                                     int64_t row_length, const float *filter,
                                                                     const Job *job, int64_t y, const HalfMask *masks,
                                                                     Half *sums) {
    const int64_t kw = job->kernel_w, dw = job->dilation_w;
    for (int v = 0; v < chunks; v++) sums[v] = (Half){0};
    for (int64_t ky = job->tap_rows[2 * y]; ky < job->tap_rows[2 * y + 1]; ky++) {
        const float *in_row = rows + ky * job->dilation_h * row_length;
        for (int64_t kx = 0; kx < kw; kx++) {
            const float tap = filter[ky * kw + kx]; /* broadcast by the vector * scalar product */
            for (int v = 0; v < chunks; v++) {
                const Half input = load_half(in_row + starts[v] + kx * dw);
                if (masks == NULL) {
                    sums[v] += input * tap;
                } else {
                    sums[v] += input * (Half)((HalfMask)splat_half(tap) & masks[v * kw + kx]);
                }
            }
        }
    }
}

/* row_vector_outputs on AVX-512 for a filter of finite taps: `wides` (a constant where it is called)
 * vectors of LANES outputs, vector v's first output reading rows + starts[v]: the same terms in the
 * same order, twice the outputs per instruction. */
static inline __attribute__((always_inline)) void wide_row_outputs(int wides, const float *rows, const int64_t *starts,
                                                                   int64_t row_length, const float *filter,
                                                                   const Job *job, int64_t y, Wide *sums) {
    const int64_t kw = job->kernel_w, dw = job->dilation_w;
    for (int v = 0; v < wides; v++) sums[v] = (Wide){0};
    for (int64_t ky = job->tap_rows[2 * y]; ky < job->tap_rows[2 * y + 1]; ky++) {
        const float *in_row = rows + ky * job->dilation_h * row_length;
        for (int64_t kx = 0; kx < kw; kx++) {
            const float tap = filter[ky * kw + kx]; /* broadcast by the vector * scalar product */
            for (int v = 0; v < wides; v++) sums[v] += tap * load_wide(in_row + starts[v] + kx * dw);
        }
    }
}

enum { STACK = 4 }; /* run_row_vectors_wide: output rows at once where every kernel row of theirs reads inside */

/* wide_row_outputs for STACK output rows at once (stride and dilation 1 down the plane, every kernel
 * row inside the input): input row r feeds output row j through kernel row r - j, so each input vector
 * is loaded once for the (up to) STACK rows it feeds, where one row at a time loads it once per
 * multiply-add (the loads, not the multiply-adds, bounded the 7x7 rows). Each output's terms come ky,
 * then kx, ascending: the same sums. */
static inline __attribute__((always_inline)) void wide_stack_outputs(int wides, const float *rows,
                                                                     const int64_t *starts, int64_t row_length,
                                                                     const float *filter, const Job *job,
                                                                     Wide sums[STACK][POSITIONS]) {
    const int64_t kh = job->kernel_h, kw = job->kernel_w, dw = job->dilation_w;
    for (int j = 0; j < STACK; j++) {
        for (int v = 0; v < wides; v++) sums[j][v] = (Wide){0};
    }
    for (int64_t r = 0; r < kh + STACK - 1; r++) {
        const float *in_row = rows + r * row_length;
        for (int64_t kx = 0; kx < kw; kx++) {
            Wide input[POSITIONS];
            for (int v = 0; v < wides; v++) input[v] = load_wide(in_row + starts[v] + kx * dw);
            for (int j = 0; j < STACK; j++) {
                const int64_t ky = r - j;
                if (ky < 0 || ky >= kh) continue;
                const float tap = filter[ky * kw + kx]; /* broadcast by the vector * scalar product */
                for (int v = 0; v < wides; v++) sums[j][v] += tap * input[v];
            }
        }
    }
}

/* One input channel per group (depthwise), NCHW, stride 1 along the row: one output plane at a time,
 * one row at a time, LANES / 2 outputs of the row per vector, up to POSITIONS vectors at once, their
 * sums in registers from the first tap to the bias (run_planes adds each tap into the output row in
 * memory). Each plane is first copied into a buffer with zero margins left and right, so that every
 * vector's reads are in memory (row_vector_outputs: why the margins' terms change nothing). The last
 * vector of a row overlaps the one before where the row does not divide (the same values again).
 * The same bits as run_planes. `wide` (a constant where it is inlined): the AVX-512 entry point, which
 * takes the rows of a filter of finite taps, at least 16 wide, 16 outputs per vector
 * (wide_row_outputs; the 8-lane code differs from it in the vector type only). */
static inline __attribute__((always_inline)) void row_vectors(const Job *job, int64_t first_plane, int64_t end_plane,
                                                              int wide) {
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w, width = LANES / 2;
    const int64_t *tap_cols = job->tap_cols;
    /* vector c covers outputs [starts[c], starts[c] + width): the last one ends at the row's end when
     * the row is at least one vector wide, else it runs past it (those lanes are not stored) */
    const int64_t vectors = (W_out + width - 1) / width, covered = W_out < width ? width : W_out;
    const int64_t left = job->pad_left; /* margins: input column j sits at left + j */
    const int64_t right_reach = covered - 1 - job->pad_left + (kw - 1) * dw - (W - 1);
    const int64_t row_length = left + W + (right_reach > 0 ? right_reach : 0);
    float *padded = calloc((size_t)(H * row_length), sizeof(float));
    HalfMask *masks = malloc(sizeof(HalfMask) * (size_t)(vectors * kw));
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)vectors);
    if (padded == NULL || masks == NULL || starts == NULL) {
        *job->no_memory = 1;
        free(padded), free(masks), free(starts);
        return;
    }
    for (int64_t c = 0; c < vectors; c++) {
        starts[c] = c * width + width <= covered ? c * width : covered - width;
        for (int64_t kx = 0; kx < kw; kx++) {
            for (int l = 0; l < width; l++) {
                const int64_t x = starts[c] + l;
                masks[c * kw + kx][l] = x < W_out && tap_cols[2 * x] <= kx && kx < tap_cols[2 * x + 1] ? -1 : 0;
            }
        }
    }
    for (int64_t plane = first_plane; plane < end_plane; plane++) {
        const int64_t n = plane / job->out_channels, o = plane % job->out_channels;
        const float *input = job->x + (n * job->in_channels + o / job->out_per_group) * H * W;
        const float *filter = job->weight + o * kh * kw;
        int finite = 1; /* every tap finite: the margins' terms are +-0, no masks needed */
        for (int64_t t = 0; t < kh * kw; t++) finite &= __builtin_isfinite(filter[t]) != 0;
        for (int64_t i = 0; i < H; i++) memcpy(padded + i * row_length + left, input + i * W, sizeof(float) * (size_t)W);
        for (int64_t y = 0; y < H_out; y++) {
            const float *rows = padded + (y * job->stride_h - job->pad_top) * row_length; /* kernel row 0's, maybe outside */
            float *out_row = job->out + (plane * H_out + y) * W_out;
            Half sums[POSITIONS];
            if (wide && finite && W_out >= LANES) { /* AVX-512, finite taps: 16-lane vectors over the whole row */
                const int64_t *tap_rows = job->tap_rows, last = y + STACK - 1; /* rows y .. last at once? */
                const int stacked = job->stride_h == 1 && job->dilation_h == 1 && last < H_out && tap_rows[2 * y] == 0 &&
                                    tap_rows[2 * last + 1] == kh;
                for (int64_t x = 0; x < W_out; x += POSITIONS * LANES) {
                    /* up to 4 vectors from x, none past the row's end (the last overlaps the one before: the
                     * same values again); fewer than 4 left: the last repeated, so that the count is a constant */
                    int64_t at[POSITIONS];
                    const int64_t left = (W_out - x + LANES - 1) / LANES, count = left < POSITIONS ? left : POSITIONS;
                    for (int64_t v = 0; v < POSITIONS; v++) {
                        const int64_t start = x + (v < count ? v : count - 1) * LANES;
                        at[v] = start + LANES <= W_out ? start : W_out - LANES;
                    }
                    Wide wide_sums[STACK][POSITIONS];
                    if (stacked && count <= 2) {
                        wide_stack_outputs(2, rows, at, row_length, filter, job, wide_sums);
                    } else if (stacked) {
                        wide_stack_outputs(POSITIONS, rows, at, row_length, filter, job, wide_sums);
                    } else if (count <= 2) {
                        wide_row_outputs(2, rows, at, row_length, filter, job, y, wide_sums[0]);
                    } else {
                        wide_row_outputs(POSITIONS, rows, at, row_length, filter, job, y, wide_sums[0]);
                    }
                    for (int64_t j = 0; j < (stacked ? STACK : 1); j++) {
                        for (int64_t v = 0; v < count; v++) {
                            const Wide out = job->bias != NULL ? wide_sums[j][v] + job->bias[o] : wide_sums[j][v];
                            memcpy(out_row + j * W_out + at[v], &out, sizeof out);
                        }
                    }
                }
                if (stacked) y = last; /* rows y .. last are done */
                continue;
            }
            for (int64_t c = 0; c < vectors;) {
                const int chunks = c + POSITIONS <= vectors ? POSITIONS : 1;
                /* constant chunks and masks where row_vector_outputs is inlined: four loops, no branches inside */
                if (chunks == POSITIONS && finite) {
                    row_vector_outputs(POSITIONS, rows, starts + c, row_length, filter, job, y, NULL, sums);
                } else if (chunks == POSITIONS) {
                    row_vector_outputs(POSITIONS, rows, starts + c, row_length, filter, job, y, masks + c * kw, sums);
                } else if (finite) {
                    row_vector_outputs(1, rows, starts + c, row_length, filter, job, y, NULL, sums);
                } else {
                    row_vector_outputs(1, rows, starts + c, row_length, filter, job, y, masks + c * kw, sums);
                }
                for (int v = 0; v < chunks; v++) {
                    const Half out = job->bias != NULL ? sums[v] + job->bias[o] : sums[v];
                    if (W_out >= width) {
                        store_half(out_row + starts[c + v], out);
                    } else {
                        for (int64_t x = 0; x < W_out; x++) out_row[x] = out[x];
                    }
                }
                c += chunks;
            }
        }
    }
    free(padded), free(masks), free(starts);
}

FOR_EVERY_CPU
static void run_row_vectors(const void *context, int64_t first_plane, int64_t end_plane) {
    row_vectors((const Job *)context, first_plane, end_plane, 0); /* planes n*C_out + o in [first_plane, end_plane) */
}

#ifdef HAVE_AVX512_LOOPS
/* run_row_vectors for CPUs with AVX-512 (convlens_direct_forward asks the CPU). */
FOR_AVX512 static void run_row_vectors_wide(const void *context, int64_t first_plane,
                                                                            int64_t end_plane) {
    row_vectors((const Job *)context, first_plane, end_plane, 1);
}
#endif

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

/* Whether run_output_blocks beats run_planes on a layer with several input channels per group. The
 * blocks waste the lanes past a group's last output channel, and store each output apart from its
 * row neighbours; run_planes pays a loop over an output row per (input channel, tap), which a wide
 * stride-1 row amortises. So the blocks need at least a quarter of their lanes used, and a row at most
 * 64 wide, a stride, or full blocks with at least 64 (input channel, tap) pairs per output. Why: on
 * dense and grouped layers from 8x8 to 224x224 the blocks lead where this says and the planes
 * elsewhere; evidence: python benchmarks/direct_loops.py (benchmarks/RESULTS.md). */
static int output_blocks_pay(const Sizes *z) {
    const int64_t per_group = z->in_channels / z->groups, out_per_group = z->out_channels / z->groups;
    const int64_t chunks = (out_per_group + LANES - 1) / LANES;
    const int64_t sums = per_group * z->kernel_h * z->kernel_w; /* (input channel, tap) pairs per output */
    return 4 * out_per_group >= LANES * chunks &&
           (z->out_w <= 64 || z->stride_w > 1 || (out_per_group >= LANES && sums >= 64));
}

/* Which loop computes a call: the kernel's choice, or one a test or benchmark asks for. */
enum { ANY_LOOP = 0, PLANE_LOOP = 1, BLOCK_LOOP = 2, ROW_VECTOR_LOOP = 3 };

/* Whether an NCHW layer's planes and kernel fit run_channel_blocks's copies (MAX_BLOCK_PLANE positions:
 * 1 MiB of copy per share at most). */
static int fits_channel_blocks(const Sizes *z) {
    return z->height * z->width <= MAX_BLOCK_PLANE && z->kernel_h * z->kernel_w <= MAX_BLOCK_PLANE &&
           z->out_h * z->out_w <= MAX_BLOCK_PLANE;
}

/* Whether run_channel_blocks_wide (AVX-512's 16-lane rows) runs the blocks here, not half_outputs. */
static int blocks_run_wide(void) {
#ifdef HAVE_AVX512_LOOPS
    return cpu_has_avx512();
#else
    return 0;
#endif
}

/* The kernel's choice for a layer it takes: BLOCK_LOOP (channel blocks for one input channel per
 * group, output blocks for several), ROW_VECTOR_LOOP (one input channel per group, NCHW, stride 1
 * along the row) or PLANE_LOOP. */

int convlens_direct_pick(const Sizes *z) {
    if (z->in_channels > z->groups) return output_blocks_pay(z) ? BLOCK_LOOP : PLANE_LOOP;
    if (z->channels_last) return BLOCK_LOOP;
    /* wide stride-1 rows; 7x7 and wider through the blocks, 5x5 too where they run 8 lanes at a
     * time (held to AVX2, direct_loops.py's 5x5 depthwise layers at 56x56 and 28x28 ran 1.05x-1.89x
     * of PyTorch in the blocks, 0.85x-1.57x in row vectors; benchmarks/RESULTS.md, seventeenth
     * session) */
    if (z->stride_w == 1 && z->out_w > NARROW_ROW) {
        const int64_t wide_kernel = blocks_run_wide() ? WIDE_KERNEL : HALF_WIDE_KERNEL;
        return z->kernel_w >= wide_kernel && fits_channel_blocks(z) ? BLOCK_LOOP : ROW_VECTOR_LOOP;
    }
    /* strided rows: the blocks whenever the planes fit (MobileNetV2's stride-2 layers, batch 1 and 8:
     * 1.3-2.1x the plane loop's speed on the Xeon of benchmarks/RESULTS.md, fourteenth session) */
    return fits_channel_blocks(z) && (z->out_w <= SMALL_PLANE_WIDTH || z->stride_w > 1) ? BLOCK_LOOP : PLANE_LOOP;
}

/* run_channel_rows's weights (C, 1, k_h, k_w) laid out (block, tap, lane) and its bias (block,
 * lane), lanes past C repeating channel C - 1 (computed, never stored); NULL when out of memory. */
static float *channel_lanes(const float *weight, const float *bias, int64_t C, int64_t taps, float **bias_lanes) {
    const int64_t blocks = (C + LANES - 1) / LANES;
    float *w_lanes = malloc(sizeof(float) * (size_t)(blocks * taps * LANES + blocks * LANES));
    if (w_lanes == NULL) return NULL;
    *bias_lanes = w_lanes + blocks * taps * LANES;
    for (int64_t o = 0; o < blocks * LANES; o++) {
        const int64_t channel = o < C ? o : C - 1;
        for (int64_t t = 0; t < taps; t++) w_lanes[(o / LANES * taps + t) * LANES + o % LANES] = weight[channel * taps + t];
        (*bias_lanes)[o] = bias != NULL ? bias[channel] : 0.0f;
    }
    return w_lanes;
}

/* Returns 0, 1 when a thread could not be started (its share then ran on the calling thread), 2 when
 * there was no memory for the column ranges or the weight blocks, 3 for a layer the kernel does not
 * take that way (a channels-last layer other than depthwise with one filter per channel and at most
 * MAX_CHANNELS_LAST_TAPS taps; a loop asked for that cannot run it): nothing is computed in cases 2 and 3. */
int convlens_direct_forward(const float *x, const float *weight, const float *bias, float *out, const Sizes *sizes,
                            int64_t loop, int64_t threads) {
    const Sizes z = *sizes;
    const int64_t taps = z.kernel_h * z.kernel_w, per_group = z.in_channels / z.groups;
    const int64_t out_per_group = z.out_channels / z.groups;
    if (z.channels_last && !(per_group == 1 && out_per_group == 1 && taps <= MAX_CHANNELS_LAST_TAPS)) return 3;
    if ((loop == PLANE_LOOP && z.channels_last) || (loop == BLOCK_LOOP && per_group == 1 && !fits_channel_blocks(&z)) ||
        (loop == ROW_VECTOR_LOOP && (per_group > 1 || z.channels_last || z.stride_w != 1)))
        return 3;
    /* For each kernel column kx, the output columns [x_first, x_end) whose tap reads inside the input:
     * the same for every row, so worked out once here (two divisions each), not per row and tap. And
     * for the blocked loops, the taps each output row and column reads inside the input. */
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
    int no_memory = 0, quads = 0; /* quads: run_output_quads (AVX-512) takes the blocks of several input channels */
    const int64_t chosen = loop == ANY_LOOP ? convlens_direct_pick(&z) : loop;
#ifdef HAVE_AVX512_LOOPS
    quads = chosen == BLOCK_LOOP && per_group > 1 && cpu_has_avx512();
#endif
    float *bias_lanes = NULL, *w_lanes = NULL;
    if (z.channels_last) {
        w_lanes = channel_lanes(weight, bias, z.out_channels, taps, &bias_lanes);
    } else if (quads) {
#ifdef HAVE_AVX512_LOOPS /* (quads is 0 without them) */
        w_lanes = quad_lanes(weight, &z);
#endif
    }
    if ((z.channels_last || quads) && w_lanes == NULL) {
        free(ranges);
        return 2;
    }
    const Job job = {x, weight, bias, out, z.in_channels, per_group, z.out_channels, out_per_group, z.height, z.width,
                     z.kernel_h, z.kernel_w, z.stride_h, z.stride_w, z.pad_top, z.pad_left, z.dilation_h, z.dilation_w,
                     z.out_h, z.out_w, columns, tap_rows, tap_cols, &no_memory, w_lanes, bias_lanes};
    const int64_t work = z.batch * z.out_channels * z.out_h * z.out_w * per_group * taps;
    const int64_t threads_used = convlens_threads_for(work, threads);
    int failed = 0;
    if (chosen == BLOCK_LOOP && z.channels_last) {
        void (*rows)(const void *, int64_t, int64_t) = run_channel_rows;
#ifdef HAVE_AVX512_LOOPS
        if (cpu_has_avx512()) rows = run_channel_rows_wide;
#endif
        failed = convlens_parallel(rows, &job, z.batch * z.out_h, threads_used);
    } else if (chosen == BLOCK_LOOP && per_group == 1) {
        void (*blocks)(const void *, int64_t, int64_t) = run_channel_blocks;
#ifdef HAVE_AVX512_LOOPS
        if (cpu_has_avx512()) blocks = run_channel_blocks_wide;
#endif
        failed = convlens_parallel(blocks, &job, z.batch * ((z.out_channels + LANES - 1) / LANES), threads_used);
    } else if (chosen == BLOCK_LOOP && quads) {
#ifdef HAVE_AVX512_LOOPS
        const int64_t quads = (out_per_group + QUAD - 1) / QUAD;
        failed = convlens_parallel(run_output_quads, &job, z.batch * z.groups * quads * z.out_h, threads_used);
#endif
    } else if (chosen == BLOCK_LOOP) {
        failed = convlens_parallel(run_output_blocks, &job, z.batch * z.groups * ((out_per_group + LANES - 1) / LANES),
                                   threads_used);
    } else if (chosen == ROW_VECTOR_LOOP) {
        void (*vectors)(const void *, int64_t, int64_t) = run_row_vectors;
#ifdef HAVE_AVX512_LOOPS
        if (cpu_has_avx512()) vectors = run_row_vectors_wide;
#endif
        failed = convlens_parallel(vectors, &job, z.batch * z.out_channels, threads_used);
    } else {
        failed = convlens_parallel(run_planes, &job, z.batch * z.out_channels, threads_used);
    }
    free(ranges), free(w_lanes);
    return no_memory ? 2 : failed;
}
