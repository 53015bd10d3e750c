/* compare.c: whether two buffers hold the same bytes, in shares on torch's threads.
 *
 * The weight caches (src/convlens/algos/cache.py) compare a weight with their saved copy of it on
 * every call, so that no in-place change, however made, serves a stale transform. torch.equal
 * compares on one thread at about 8.5 GB/s on the Xeon of benchmarks/RESULTS.md: 1.1 ms for a
 * 512x512x3x3 weight, a fifth of that layer's convolution (fifteenth session). Here: memcmp
 * (the C library's vectorised compare) over contiguous shares of the bytes, one per thread.
 */
#include <stdint.h>
#include <string.h>

#include "parallel.h"

typedef struct {
    const unsigned char *a, *b;
    int64_t size, share;
    int *differ;
} Compare;

static void compare_shares(const void *context, int64_t first, int64_t end) {
    const Compare *job = (const Compare *)context; /* shares of job->share bytes */
    for (int64_t i = first; i < end; i++) {
        const int64_t begin = i * job->share, stop = begin + job->share < job->size ? begin + job->share : job->size;
        if (__atomic_load_n(job->differ, __ATOMIC_RELAXED)) return; /* another share found a difference */
        if (memcmp(job->a + begin, job->b + begin, (size_t)(stop - begin)) != 0)
            __atomic_store_n(job->differ, 1, __ATOMIC_RELAXED);
    }
}

enum { SHARE_BYTES = 1 << 18 }; /* bytes per share: 256 KiB */

/* 1 when a[0 .. size) and b[0 .. size) hold the same bytes, else 0. */
int convlens_same_bytes(const void *a, const void *b, int64_t size, int64_t threads) {
    int differ = 0;
    const int64_t shares = (size + SHARE_BYTES - 1) / SHARE_BYTES;
    const Compare job = {a, b, size, SHARE_BYTES, &differ};
    convlens_parallel(compare_shares, &job, shares, shares < threads ? shares : threads);
    return !differ;
}
