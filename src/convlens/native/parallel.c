/* parallel.c: convlens_parallel (see parallel.h): on torch's own OpenMP team when convlens_use_openmp
 * found it, else on POSIX threads started for the call. */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include "parallel.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

enum { MAX_THREADS = 256 };

typedef struct {
    ShareWork work;
    const void *context;
    int64_t begin, end;
} Share;

static void *run_share(void *share) {
    const Share *job = (const Share *)share;
    job->work(job->context, job->begin, job->end);
    return NULL;
}

/* The OpenMP runtime's entry points, as GCC's `#pragma omp parallel` calls them (libgomp's ABI; Intel's
 * and LLVM's runtimes export the same): GOMP_parallel runs fn(data) on a team of num_threads (0: the
 * runtime's default), the calling thread one of them, and returns when all are done. */
typedef void (*GompParallel)(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
typedef int (*OmpInt)(void);
static GompParallel gomp_parallel;
static OmpInt omp_thread_num, omp_num_threads;

int convlens_use_openmp(int join) {
    gomp_parallel = NULL, omp_thread_num = NULL, omp_num_threads = NULL;
    if (!join) return 0;
    static const char *const runtimes[] = {"libgomp.so.1", "libiomp5.so", "libomp.so"};
    for (size_t i = 0; i < sizeof runtimes / sizeof runtimes[0]; i++) {
        void *runtime = dlopen(runtimes[i], RTLD_LAZY | RTLD_NOLOAD); /* only one the process has loaded */
        if (runtime == NULL) continue;
        GompParallel parallel = (GompParallel)dlsym(runtime, "GOMP_parallel");
        OmpInt thread_num = (OmpInt)dlsym(runtime, "omp_get_thread_num");
        OmpInt num_threads = (OmpInt)dlsym(runtime, "omp_get_num_threads");
        if (parallel != NULL && thread_num != NULL && num_threads != NULL) {
            gomp_parallel = parallel, omp_thread_num = thread_num, omp_num_threads = num_threads;
            return (int)i + 1;
        }
    }
    return 0;
}

/* One member of the OpenMP team: its share of the items, by its number in the team (the team may
 * be smaller than asked for). */
static void run_team_share(void *share) {
    const Share *all = (const Share *)share;
    const int64_t count = all->end, member = omp_thread_num(), members = omp_num_threads();
    all->work(all->context, count * member / members, count * (member + 1) / members);
}

int64_t convlens_threads_for(int64_t work, int64_t threads) {
    const int64_t useful = work / (gomp_parallel != NULL ? MIN_TEAM_WORK : MIN_THREAD_WORK);
    return useful < 1 ? 1 : useful < threads ? useful : threads;
}

int convlens_parallel(ShareWork work, const void *context, int64_t count, int64_t threads) {
    if (threads > count) threads = count;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads <= 1) {
        if (count > 0) work(context, 0, count);
        return 0;
    }
    if (gomp_parallel != NULL) {
        Share all = {work, context, 0, count};
        gomp_parallel(run_team_share, &all, (unsigned)threads, 0);
        return 0;
    }
    Share shares[MAX_THREADS];
    pthread_t workers[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    int failed = 0;
    for (int64_t t = 0; t < threads; t++) {
        Share share = {work, context, count * t / threads, count * (t + 1) / threads};
        shares[t] = share;
    }
    for (int64_t t = 1; t < threads; t++) started[t] = pthread_create(&workers[t], NULL, run_share, &shares[t]) == 0;
    run_share(&shares[0]);
    for (int64_t t = 1; t < threads; t++) {
        if (started[t]) {
            pthread_join(workers[t], NULL);
        } else { /* no thread for this share: it runs here */
            run_share(&shares[t]);
            failed = 1;
        }
    }
    return failed;
}
