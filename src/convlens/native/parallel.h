/* parallel.h: the one way the kernels use threads.
 *
 * convlens_parallel(work, context, count, threads) splits the items 0 .. count-1 into `threads`
 * contiguous shares, calls work(context, begin, end) for each, the first share on the calling
 * thread and the others on threads started for this call, and returns when all are done. The
 * caller passes torch.get_num_threads(), so the kernels use as many threads as torch's own
 * pool and no OpenMP runtime competes with it. Returns 0, or 1 when a thread could not be
 * started (that share then runs on the calling thread: the result is complete either way).
 */
#ifndef CONVLENS_PARALLEL_H
#define CONVLENS_PARALLEL_H

#include <stdint.h>

typedef void (*ShareWork)(const void *context, int64_t begin, int64_t end);

int convlens_parallel(ShareWork work, const void *context, int64_t count, int64_t threads);

/* How many of `threads` to start for `work` multiply-adds: one per MIN_THREAD_WORK of them at most,
 * so that a thread's share of the work (tens of microseconds or more) outweighs starting and
 * joining it. The threshold is a judgement, not tuned by a script; tests/test_native.py checks that
 * the bits do not depend on it. */
enum { MIN_THREAD_WORK = 1 << 18 };
static inline int64_t convlens_threads_for(int64_t work, int64_t threads) {
    const int64_t useful = work / MIN_THREAD_WORK;
    return useful < 1 ? 1 : useful < threads ? useful : threads;
}

#endif
