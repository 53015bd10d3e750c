/* winograd_weight.c: Winograd's weight transform U = G g G^T, written straight into the panels the
 * products read; for the forward's weight, or for the weight turned 180 degrees with its input and
 * output channels swapped (the convolution that gives the input gradient).
 *
 * The math of its Python sibling (transforms.py's ``transform_weight``, then ``native.panels``).
 * For each filter g (3x3) of output channel k and input channel c:
 *
 *   U[:, :, c, k] = G g G^T       G (t, 3): transforms.py's matrices(m, stride)[1]   (t, t)
 *                                 (Python: kron(G, G) @ g, the same sums in another order)
 *
 *   forward:  g(k, c)[ky][kx] = weight[k, c, ky, kx]          weight (K, C, 3, 3): K filters of C channels
 *   turned:   g(k, c)[ky][kx] = weight[c, k, 2 - ky, 2 - kx]  weight (C, K, 3, 3): the forward's, whose K
 *             input channels are the turned convolution's filters (by_convolution.py's ``turned_weight``)
 *
 * U (t*t, C, K) in panels of PANEL = 64 filters (products.h; the last K % 64 wide): panel
 * q = k / 64 of matrix xi holds U[xi, :, 64q .. 64q + width) as (C, width), contiguous, the panels
 * one after the other: u[xi * C * K + 64q * C + c * width + k % 64].
 *
 * A panel's filters and a chunk of CHUNK channels at a time: their taps gathered first, filters
 * innermost (taps[c][ky][kx][k], 16 filters at a time through transpose.h), then G g (t x 3) for
 * each, 8 filters per vector, then (G g) G^T one matrix xi = (a, b) at a time, so that each
 * matrix's rows of the chunk are written in order (they are contiguous in its panel; written xi
 * after xi for each filter, t*t stores a matrix apart, 128x128 F(4x4) took 0.30 ms against 0.21,
 * ad hoc). Every value a sum of three products in kx (then ky) order; every term computed, zeros
 * of G included (an Inf tap makes the NaN torch's product makes). Built with -ffp-contract=off:
 * each product rounded, then added, the same bits on every CPU. Threads (parallel.h): a share of
 * the (panel, chunk) units each.
 *
 * Why: in a training step the weight changes every step, so U is made again on every call; by
 * torch ops (a product per chunk of filters, a transposing copy, then the panels' copy) it took
 * 0.61 ms for a 128x128 F(4x4) weight and 1.21 ms for a 256x256 F(2x2) one, here 0.09 and 0.23
 * ms (``python benchmarks/winograd_transform.py``; the Xeon of benchmarks/RESULTS.md, twentieth
 * session).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "transpose.h"
#include "vectors.h"

enum { PANEL = 64, CHUNK = 8, TAPS = 9, MAX_T = 6, HALF = 8 };
_Static_assert(PANEL % BLOCK_ROWS == 0, "a panel is whole blocks of transpose.h's rows");

typedef struct {
    const float *weight, *g;
    float *u;
    int64_t filters, channels, t, chunks;
    int turned;
    int *no_memory;
} WeightJob;

/* taps[(c * TAPS + j) * PANEL + k] = tap j (3*ky + kx) of filter panel + k, channel c0 + c, in the
 * weight's own order (a turned weight's are reversed where they are read); k < width. */
static inline __attribute__((always_inline)) void gather_taps(const WeightJob *job, int64_t panel, int64_t width,
                                                              int64_t c0, int64_t channels, float *taps) {
    const int64_t K = job->filters, C = job->channels, whole = width / BLOCK_ROWS * BLOCK_ROWS;
    if (job->turned) { /* weight (C, K, 3, 3): a channel's filters one after the other */
        for (int64_t c = 0; c < channels; c++) {
            const float *filters = job->weight + ((c0 + c) * K + panel) * TAPS;
            float *to = taps + c * TAPS * PANEL;
            for (int64_t k = 0; k < whole; k += BLOCK_ROWS)
                interleave_rows(filters + k * TAPS, TAPS, TAPS, to + k, PANEL);
            for (int64_t k = whole; k < width; k++)
                for (int64_t j = 0; j < TAPS; j++) to[j * PANEL + k] = filters[k * TAPS + j];
        }
    } else { /* weight (K, C, 3, 3): a filter's channels one after the other */
        const float *filters = job->weight + (panel * C + c0) * TAPS;
        for (int64_t k = 0; k < whole; k += BLOCK_ROWS)
            interleave_rows(filters + k * C * TAPS, C * TAPS, channels * TAPS, taps + k, PANEL);
        for (int64_t k = whole; k < width; k++)
            for (int64_t p = 0; p < channels * TAPS; p++) taps[p * PANEL + k] = filters[k * C * TAPS + p];
    }
}

FOR_EVERY_CPU
static void transform_units(const void *context, int64_t first_unit, int64_t end_unit) {
    const WeightJob *job = (const WeightJob *)context; /* units (panel, chunk of channels) in [first_unit, end_unit) */
    const int64_t K = job->filters, C = job->channels, t = job->t;
    float *taps = calloc(CHUNK * TAPS * PANEL, sizeof(float));      /* zeros past a narrow panel's filters */
    float *rows = malloc(sizeof(float) * CHUNK * MAX_T * 3 * PANEL); /* G g: rows[((c * t + a) * 3 + kx) * PANEL + k] */
    if (taps == NULL || rows == NULL) {
        *job->no_memory = 1;
        free(taps), free(rows);
        return;
    }
    for (int64_t unit = first_unit; unit < end_unit; unit++) {
        const int64_t panel = unit / job->chunks * PANEL, c0 = unit % job->chunks * CHUNK;
        const int64_t width = K - panel < PANEL ? K - panel : PANEL, channels = C - c0 < CHUNK ? C - c0 : CHUNK;
        gather_taps(job, panel, width, c0, channels, taps);
        for (int64_t c = 0; c < channels; c++) {
            for (int64_t k = 0; k < width; k += HALF) {
                Half g[3][3]; /* g[ky][kx]: 8 filters' taps */
                for (int j = 0; j < TAPS; j++) {
                    const int at = job->turned ? TAPS - 1 - j : j; /* turned: the kernel read back to front */
                    g[j / 3][j % 3] = load_half(taps + (c * TAPS + at) * PANEL + k);
                }
                for (int64_t a = 0; a < t; a++) { /* (G g)[a][kx] = G[a][0] g[0][kx] + G[a][1] g[1][kx] + G[a][2] g[2][kx] */
                    const float *G = job->g + a * 3;
                    for (int kx = 0; kx < 3; kx++)
                        store_half(rows + ((c * t + a) * 3 + kx) * PANEL + k, G[0] * g[0][kx] + G[1] * g[1][kx] + G[2] * g[2][kx]);
                }
            }
        }
        for (int64_t a = 0; a < t; a++) {
            for (int64_t b = 0; b < t; b++) { /* U[a, b] = (G g)[a] . G[b], the chunk's rows of matrix a*t + b */
                const float *G = job->g + b * 3;
                float *to = job->u + (a * t + b) * C * K + panel * C + c0 * width; /* rows width floats apart */
                for (int64_t c = 0; c < channels; c++, to += width) {
                    const float *row = rows + (c * t + a) * 3 * PANEL;
                    for (int64_t k = 0; k < width; k += HALF) {
                        const Half value = load_half(row + k) * G[0] + load_half(row + PANEL + k) * G[1] +
                                           load_half(row + 2 * PANEL + k) * G[2];
                        if (k + HALF <= width) {
                            store_half(to + k, value);
                        } else { /* the panel's last, partial vector: only its filters */
                            float values[HALF];
                            store_half(values, value);
                            memcpy(to + k, values, sizeof(float) * (size_t)(width - k));
                        }
                    }
                }
            }
        }
    }
    free(taps), free(rows);
}

/* u (t*t, C*K) in panels (see the top of the file) from weight (K, C, 3, 3), or (C, K, 3, 3)
 * turned, both contiguous; g: G (t, 3) row-major. Returns 0, 1 when a thread could not start (the
 * result is complete all the same), 2 when a share could not allocate its buffer, 3 for sizes it
 * does not take (t outside 1 .. 6). */
int convlens_winograd_weight(const float *weight, int64_t filters, int64_t channels, int64_t turned, const float *g,
                             int64_t t, float *u, int64_t threads) {
    if (t < 1 || t > MAX_T) return 3;
    int no_memory = 0;
    const int64_t chunks = (channels + CHUNK - 1) / CHUNK, panels = (filters + PANEL - 1) / PANEL;
    const WeightJob job = {weight, g, u, filters, channels, t, chunks, turned != 0, &no_memory};
    const int failed = convlens_parallel(transform_units, &job, panels * chunks,
                                         convlens_threads_for(filters * channels * t * t * TAPS, threads));
    return no_memory ? 2 : failed;
}
