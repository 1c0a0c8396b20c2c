/* pool.c - see pool.h. A run bumps a generation counter under the mutex and
 * wakes the workers; each runs fn, and the last to finish wakes the caller.
 * The workers block every signal, so SIGINT and friends reach the main
 * thread as in a program without threads. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "spdl.h"

typedef struct member {
    spdl_pool *pool;
    int id;
    pthread_t thread;
} member;

struct spdl_pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long generation; /* bumped by every run */
    int n, started;           /* members; worker threads running */
    int pending;              /* workers still inside the current run */
    int quit;
    spdl_pool_fn fn;
    void *ctx;
    member *members;          /* [1..n-1]: the workers */
};

static void *worker(void *arg)
{
    member *me = arg;
    spdl_pool *p = me->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        spdl_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, me->id);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int spdl_pool_new(int n, spdl_pool **out)
{
    *out = NULL;
    if (n < 1)
        return SPDL_EINVAL;
    spdl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return SPDL_ENOMEM;
    p->members = calloc((size_t)n, sizeof *p->members);
    if (!p->members) {
        free(p);
        return SPDL_ENOMEM;
    }
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the workers inherit it */
    int rc = SPDL_OK;
    for (int k = 1; k < n; k++) {
        p->members[k].pool = p;
        p->members[k].id = k;
        int err = pthread_create(&p->members[k].thread, NULL, worker, &p->members[k]);
        if (err) {
            errno = err;
            rc = err == ENOMEM ? SPDL_ENOMEM : SPDL_EINVAL;
            break;
        }
        p->started = k;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        int err = errno;
        spdl_pool_free(p);
        errno = err;
        return rc;
    }
    *out = p;
    return SPDL_OK;
}

void spdl_pool_free(spdl_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int k = 1; k <= p->started; k++)
        pthread_join(p->members[k].thread, NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->members);
    free(p);
}

int spdl_pool_size(const spdl_pool *p) { return p ? p->n : 1; }

void spdl_pool_run(spdl_pool *p, spdl_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int spdl_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (n > 1 << 20 ? 1 << 20 : (int)n) : 1;
}
