/* depthwise.c: the depthwise 2-D convolution in one pass over the output, float32, NCHW.
 *
 * The math of its Python sibling (src/convlens/algos/depthwise.py). Every channel is its own
 * group with one filter:
 *
 *   out[n, c, y, x] = sum over taps (ky, kx) of weight[c, ky, kx] * x[n, c, y*s_h - p_t + ky*d_h,
 *                                                                   x*s_w - p_l + kx*d_w]
 *                     + bias[c]                      (reads outside the input are zeros)
 *
 * Shapes, all contiguous: x (N, C, H, W), weight (C, k_h, k_w), bias (C) or NULL,
 * out (N, C, H_out, W_out). The bottom and right padding are implied by H_out and W_out.
 *
 * One plane (n, c) at a time, one output row at a time: the row starts at zero, then each tap
 * adds weight * the input row it reads. The output columns x for which a tap reads inside the
 * input are worked out once per (row, tap), so the inner loop has no bounds checks and, at
 * stride 1, is a plain a += w * b over contiguous floats that the compiler vectorises. The bias
 * is added last, as the Python sibling adds it.
 *
 * CPU dispatch: target_clones compiles the plane loop for x86-64-v4 (AVX-512), x86-64-v3 (AVX2,
 * FMA) and plain x86-64; the dynamic loader picks the widest the CPU has. Built with
 * -ffp-contract=off, so no clone fuses a multiply and an add: every machine gives the same bits.
 * Threads: as many as the caller says (torch.get_num_threads()), each a share of the planes
 * (parallel.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "parallel.h"

typedef struct {
    const float *x, *weight, *bias;
    float *out;
    int64_t channels, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    int64_t dilation_h, dilation_w, out_h, out_w;
} Job;

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void run_planes(const void *context, int64_t first_plane, int64_t end_plane) {
    const Job *job = (const Job *)context; /* planes n*C + c in [first_plane, end_plane) */
    const int64_t H = job->height, W = job->width, kh = job->kernel_h, kw = job->kernel_w;
    const int64_t sh = job->stride_h, sw = job->stride_w, dh = job->dilation_h, dw = job->dilation_w;
    const int64_t H_out = job->out_h, W_out = job->out_w;
    for (int64_t plane = first_plane; plane < end_plane; plane++) {
        const int64_t c = plane % job->channels;
        const float *input = job->x + plane * H * W;
        const float *taps = job->weight + c * kh * kw;
        float *output = job->out + plane * H_out * W_out;
        for (int64_t y = 0; y < H_out; y++) {
            float *out_row = output + y * W_out;
            for (int64_t x = 0; x < W_out; x++) out_row[x] = 0.0f;
            for (int64_t ky = 0; ky < kh; ky++) {
                const int64_t row = y * sh - job->pad_top + ky * dh;
                if (row < 0 || row >= H) continue; /* a row of the zero padding */
                const float *in_row = input + row * W;
                for (int64_t kx = 0; kx < kw; kx++) {
                    const float tap = taps[ky * kw + kx];
                    const int64_t shift = kx * dw - job->pad_left; /* output x reads column x*sw + shift */
                    int64_t x_first = shift >= 0 ? 0 : ceil_div(-shift, sw);
                    int64_t x_end = floor_div(W - 1 - shift, sw) + 1;
                    if (x_end > W_out) x_end = W_out;
                    if (sw == 1) {
                        const float *source = in_row + shift;
                        for (int64_t x = x_first; x < x_end; x++) out_row[x] += tap * source[x];
                    } else {
                        for (int64_t x = x_first; x < x_end; x++) out_row[x] += tap * in_row[x * sw + shift];
                    }
                }
            }
            if (job->bias != NULL) {
                const float b = job->bias[c];
                for (int64_t x = 0; x < W_out; x++) out_row[x] += b;
            }
        }
    }
}

/* Returns 0, or 1 when a thread could not be started (its share then ran on the calling thread). */
int convlens_depthwise_forward(const float *x, const float *weight, const float *bias, float *out, int64_t batch,
                               int64_t channels, int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w,
                               int64_t stride_h, int64_t stride_w, int64_t pad_top, int64_t pad_left,
                               int64_t dilation_h, int64_t dilation_w, int64_t out_h, int64_t out_w, int64_t threads) {
    const Job job = {x, weight, bias, out, channels, height, width, kernel_h, kernel_w, stride_h, stride_w,
                     pad_top, pad_left, dilation_h, dilation_w, out_h, out_w};
    return convlens_parallel(run_planes, &job, batch * channels, threads);
}
