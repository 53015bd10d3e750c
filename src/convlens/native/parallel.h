/* parallel.h: the one way the kernels use threads.
 *
 * convlens_parallel(work, context, count, threads) splits the items 0 .. count-1 into `threads`
 * contiguous shares, calls work(context, begin, end) for each, the first share on the calling
 * thread, and returns when all are done. The caller passes torch.get_num_threads().
 *
 * Whose threads: torch's own. PyTorch's CPU builds run their intra-op work on an OpenMP team, and
 * convlens_use_openmp(1) finds the OpenMP runtime the process has already loaded (torch's: it loads
 * none of its own) so that the shares run on that same team, whose threads wait spinning between
 * torch's calls and take a share within microseconds. Without it (convlens_use_openmp(0), or no
 * runtime loaded) each call starts threads of its own (POSIX), which costs tens of microseconds
 * per call on a virtual machine whose idle CPU sleeps, and competes with torch's spinning team:
 * a depthwise layer of 90 us ran slower on 2 threads than on 1 (benchmarks/RESULTS.md, fourteenth
 * session). Returns 0, or 1 when a thread could not be started (that share then runs on the
 * calling thread: the result is complete either way).
 */
#ifndef CONVLENS_PARALLEL_H
#define CONVLENS_PARALLEL_H

#include <stdint.h>

typedef void (*ShareWork)(const void *context, int64_t begin, int64_t end);

int convlens_parallel(ShareWork work, const void *context, int64_t count, int64_t threads);

/* join != 0: run the shares on the team of the OpenMP runtime this process has loaded (libgomp,
 * Intel's libiomp5 or LLVM's libomp, looked up by name, never loaded here); returns 1, 2 or 3 for
 * the one found, 0 for none (threads of our own then). join == 0: threads of our own; returns 0. */
int convlens_use_openmp(int join);

/* How many of `threads` to use for `work` multiply-adds: one per MIN_TEAM_WORK of them at most on
 * torch's OpenMP team (handing a share to a waiting member costs a few microseconds: a depthwise layer
 * of 73,728 multiply-adds, 11 us on one thread, ran 1.25x faster on two), one per MIN_THREAD_WORK on
 * threads started per call (tens of microseconds each). Measured on the Xeon of benchmarks/RESULTS.md,
 * fourteenth session; tests/test_native.py checks that the bits do not depend on the count. */
enum { MIN_TEAM_WORK = 1 << 15, MIN_THREAD_WORK = 1 << 18 };
int64_t convlens_threads_for(int64_t work, int64_t threads);

#endif
