/* parallel.c: convlens_parallel (see parallel.h), on POSIX threads. */
#include "parallel.h"

#include <pthread.h>

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

int convlens_parallel(ShareWork work, const void *context, int64_t count, int64_t threads) {
    if (threads > count) threads = count;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads <= 1) {
        if (count > 0) work(context, 0, count);
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
