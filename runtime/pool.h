/* pool.h - a fixed team of threads for libspdl's data parallelism.
 *
 * spdl_pool_new starts n - 1 worker threads once; spdl_pool_run(p, fn, ctx)
 * calls fn(ctx, k) on every member, k = 0 on the calling thread and 1..n-1
 * on the workers, and returns when all have returned: one fork and one join,
 * nothing allocated. Between runs the workers sleep on a condition variable.
 * The pool decides nothing about the work: callers hand out their units
 * (tiles) themselves, and make the result independent of which member ran
 * which unit (runtime/tiles.c). Programs that link libspdl.a themselves
 * link with -pthread. */
#ifndef SPDL_POOL_H
#define SPDL_POOL_H

typedef struct spdl_pool spdl_pool;
typedef void (*spdl_pool_fn)(void *ctx, int member);

/* A pool of n >= 1 members (n - 1 threads). Returns SPDL_OK, SPDL_ENOMEM, or
 * SPDL_EINVAL when a thread cannot be started (errno says why). */
int spdl_pool_new(int n, spdl_pool **out);
void spdl_pool_free(spdl_pool *p);
int spdl_pool_size(const spdl_pool *p);
void spdl_pool_run(spdl_pool *p, spdl_pool_fn fn, void *ctx);

/* The CPUs this process may run on (sched_getaffinity; else the online
 * CPUs; at least 1). */
int spdl_cpu_count(void);

#endif
