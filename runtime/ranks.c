/* ranks.c - see ranks.h. Compiled without SPDL_MPI into libspdl.a (one
 * process: the functions below the #else are trivial) and by mpicc with
 * -DSPDL_MPI into libspdl_mpi.a.
 *
 * The MPI error handler has no context argument of ours, so the program's
 * name, the rank and the rank's own stderr are file statics here: there is
 * one MPI per process, started once by spdl_ranks_start. Every MPI call is
 * made on the thread that called spdl_ranks_start (MPI_THREAD_FUNNELED). */
#include "ranks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t spdl_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

void spdl_ranks_share(const spdl_ranks *r, int k, size_t n, size_t *lo, size_t *hi)
{
    size_t P = (size_t)spdl_ranks_size(r), K = (size_t)k;
    /* n * k / P without overflow for any n that fits in memory */
    *lo = n / P * K + n % P * K / P;
    *hi = n / P * (K + 1) + n % P * (K + 1) / P;
}

/* The launcher's count of processes, from its environment (Open MPI,
 * MPICH/PMI); 0 when none says. */
static long launched_size(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return strtol(v, NULL, 10);
    }
    return 0;
}

#ifndef SPDL_MPI

int spdl_ranks_start(int *argc, char ***argv, const char *prog, spdl_ranks **out)
{
    (void)argc;
    (void)argv;
    *out = NULL;
    if (launched_size() > 1) {
        /* every copy would train alone and write the same files */
        const char *rank = getenv("OMPI_COMM_WORLD_RANK");
        if (!rank)
            rank = getenv("PMI_RANK");
        if (!rank || !strcmp(rank, "0"))
            fprintf(stderr, "%s: error: started by mpirun as %ld processes, but this program was built without MPI: "
                            "build it with spdlc build --mpi\n", prog, launched_size());
        return 1;
    }
    return 0;
}

int spdl_ranks_end(spdl_ranks *r, int status) { (void)r; return status; }
int spdl_ranks_available(void) { return 0; }
int spdl_ranks_rank(const spdl_ranks *r) { (void)r; return 0; }
int spdl_ranks_size(const spdl_ranks *r) { (void)r; return 1; }
int spdl_ranks_hold(spdl_ranks *r, const char *msg) { (void)r; (void)msg; return 0; }
int spdl_ranks_agree(spdl_ranks *r, int status) { (void)r; return status != 0; }

int spdl_ranks_same(spdl_ranks *r, uint64_t v, int *which)
{
    (void)r;
    (void)v;
    if (which)
        *which = 0;
    return 1;
}

void spdl_ranks_bcast(spdl_ranks *r, void *buf, size_t bytes) { (void)r; (void)buf; (void)bytes; }
void spdl_ranks_bcast_last(spdl_ranks *r, double *buf, size_t n) { (void)r; (void)buf; (void)n; }
void spdl_ranks_recv_prev(spdl_ranks *r, double *buf, size_t n) { (void)r; (void)buf; (void)n; }
void spdl_ranks_send_next(spdl_ranks *r, const double *buf, size_t n) { (void)r; (void)buf; (void)n; }

void spdl_ranks_allgather(spdl_ranks *r, double *buf, const size_t *count, const size_t *offset)
{
    (void)r;
    (void)buf;
    (void)count;
    (void)offset;
}

void spdl_ranks_gather_all(spdl_ranks *r, const void *mine, size_t bytes, void *all)
{
    (void)r;
    memmove(all, mine, bytes);
}

double spdl_ranks_sum(spdl_ranks *r, double v) { (void)r; return v; }
double spdl_ranks_seconds(const spdl_ranks *r) { (void)r; return 0; }

#else /* SPDL_MPI */

#include <mpi.h>

enum { HELD_MAX = 1200, WAIT_END_MS = 5000 };
static const int CHUNK = 1 << 26; /* doubles per MPI call (counts are ints) */

struct spdl_ranks {
    int rank, size;
    MPI_Comm world; /* a copy of MPI_COMM_WORLD for the run's collectives */
    MPI_Comm end;   /* another, for spdl_ranks_end alone: it never meets a step's collective */
    char held[HELD_MAX];
    int pending;    /* held and not yet printed or superseded */
    double seconds;
};

static const char *mpi_prog = "spdl";
static int mpi_rank, mpi_errfd = 2;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void say(const char *line)
{
    dprintf(mpi_errfd, "%s\n", line);
}

static void on_mpi_error(MPI_Comm *comm, int *code, ...)
{
    char text[MPI_MAX_ERROR_STRING], line[MPI_MAX_ERROR_STRING + 200];
    int len = 0;
    if (MPI_Error_string(*code, text, &len) != MPI_SUCCESS)
        len = snprintf(text, sizeof text, "error %d", *code);
    snprintf(line, sizeof line, "%s: error: MPI failed on rank %d: %.*s", mpi_prog, mpi_rank, len, text);
    say(line);
    MPI_Abort(*comm, 1);
}

int spdl_ranks_available(void) { return 1; }

int spdl_ranks_start(int *argc, char ***argv, const char *prog, spdl_ranks **out)
{
    *out = NULL;
    mpi_prog = prog;
    if (!launched_size() && !getenv("PMIX_RANK"))
        return 0; /* not under mpirun: one process, without MPI */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: error: MPI_Init failed\n", prog);
        return 1;
    }
    MPI_Errhandler eh;
    MPI_Comm_create_errhandler(on_mpi_error, &eh);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh);
    MPI_Errhandler_free(&eh);
    spdl_ranks *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &r->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r->size);
    MPI_Comm_dup(MPI_COMM_WORLD, &r->world);
    MPI_Comm_dup(MPI_COMM_WORLD, &r->end);
    mpi_rank = r->rank;
    if (r->rank > 0) { /* rank 0 prints; this rank's errors go to its own stderr, held until agreed */
        fflush(stdout);
        fflush(stderr);
        int keep = fcntl(2, F_DUPFD_CLOEXEC, 3), null = open("/dev/null", O_WRONLY);
        if (keep >= 0 && null >= 0) {
            mpi_errfd = keep;
            dup2(null, 1);
            dup2(null, 2);
        }
        if (null >= 0)
            close(null);
    }
    *out = r;
    return 0;
}

static void print_held(spdl_ranks *r)
{
    if (r->rank == 0)
        return; /* printed when it happened */
    if (r->pending)
        say(r->held);
    else {
        char line[300];
        snprintf(line, sizeof line, "%s: error: rank %d of %d failed", mpi_prog, r->rank, r->size);
        say(line);
    }
    r->pending = 0;
}

int spdl_ranks_end(spdl_ranks *r, int status)
{
    if (!r)
        return status;
    fflush(stdout);
    fflush(stderr);
    int mine = status ? r->rank : r->size, low = r->size;
    MPI_Request q;
    MPI_Iallreduce(&mine, &low, 1, MPI_INT, MPI_MIN, r->end, &q);
    if (!status) {
        MPI_Wait(&q, MPI_STATUS_IGNORE);
    } else {
        /* a rank that failed where the others went on: they may be waiting
           for it in a collective it will never join */
        int done = 0;
        for (int ms = 0; !done && ms < WAIT_END_MS; ms++) {
            MPI_Test(&q, &done, MPI_STATUS_IGNORE);
            if (!done) {
                struct timespec d = {0, 1000000};
                nanosleep(&d, NULL);
            }
        }
        if (!done) {
            print_held(r);
            MPI_Abort(MPI_COMM_WORLD, status);
        }
    }
    if (low < r->size && low == r->rank)
        print_held(r);
    int job = low < r->size ? (status ? status : 1) : 0;
    MPI_Comm_free(&r->world);
    MPI_Comm_free(&r->end);
    free(r);
    MPI_Finalize();
    return job;
}

int spdl_ranks_rank(const spdl_ranks *r) { return r ? r->rank : 0; }
int spdl_ranks_size(const spdl_ranks *r) { return r ? r->size : 1; }

int spdl_ranks_hold(spdl_ranks *r, const char *msg)
{
    if (!r || r->rank == 0)
        return 0;
    if (!r->pending) {
        snprintf(r->held, sizeof r->held, "%s: error: rank %d of %d: %s", mpi_prog, r->rank, r->size, msg);
        r->pending = 1;
    }
    return 1;
}

int spdl_ranks_agree(spdl_ranks *r, int status)
{
    if (!r)
        return status != 0;
    double t0 = now();
    int mine = status ? r->rank : r->size, low = r->size;
    MPI_Allreduce(&mine, &low, 1, MPI_INT, MPI_MIN, r->world);
    r->seconds += now() - t0;
    if (low == r->size)
        return 0;
    if (low == r->rank)
        print_held(r);
    r->pending = 0; /* one error a job: the lowest failing rank's */
    return 1;
}

int spdl_ranks_same(spdl_ranks *r, uint64_t v, int *which)
{
    if (which)
        *which = 0;
    if (!r)
        return 1;
    uint64_t *all = malloc(sizeof *all * (size_t)r->size);
    if (!all) {
        say("out of memory");
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 0;
    }
    spdl_ranks_gather_all(r, &v, sizeof v, all);
    int k = 1;
    while (k < r->size && all[k] == all[0])
        k++;
    free(all);
    if (which)
        *which = k < r->size ? k : 0;
    return k == r->size;
}

static void bcast_from(spdl_ranks *r, void *buf, size_t n, MPI_Datatype type, size_t elem, int root)
{
    double t0 = now();
    for (size_t i = 0; i < n; i += (size_t)CHUNK) {
        int c = n - i < (size_t)CHUNK ? (int)(n - i) : CHUNK;
        MPI_Bcast((char *)buf + i * elem, c, type, root, r->world);
    }
    r->seconds += now() - t0;
}

void spdl_ranks_bcast(spdl_ranks *r, void *buf, size_t bytes)
{
    if (r && r->size > 1)
        bcast_from(r, buf, bytes, MPI_BYTE, 1, 0);
}

void spdl_ranks_bcast_last(spdl_ranks *r, double *buf, size_t n)
{
    if (r && r->size > 1)
        bcast_from(r, buf, n, MPI_DOUBLE, sizeof(double), r->size - 1);
}

void spdl_ranks_recv_prev(spdl_ranks *r, double *buf, size_t n)
{
    if (!r || r->rank == 0)
        return;
    double t0 = now();
    for (size_t i = 0; i < n; i += (size_t)CHUNK) {
        int c = n - i < (size_t)CHUNK ? (int)(n - i) : CHUNK;
        MPI_Recv(buf + i, c, MPI_DOUBLE, r->rank - 1, 1, r->world, MPI_STATUS_IGNORE);
    }
    r->seconds += now() - t0;
}

void spdl_ranks_send_next(spdl_ranks *r, const double *buf, size_t n)
{
    if (!r || r->rank == r->size - 1)
        return;
    double t0 = now();
    for (size_t i = 0; i < n; i += (size_t)CHUNK) {
        int c = n - i < (size_t)CHUNK ? (int)(n - i) : CHUNK;
        MPI_Send(buf + i, c, MPI_DOUBLE, r->rank + 1, 1, r->world);
    }
    r->seconds += now() - t0;
}

void spdl_ranks_allgather(spdl_ranks *r, double *buf, const size_t *count, const size_t *offset)
{
    if (!r || r->size == 1)
        return;
    /* one broadcast a rank: no int counts or displacements to overflow */
    for (int k = 0; k < r->size; k++)
        if (count[k])
            bcast_from(r, buf + offset[k], count[k], MPI_DOUBLE, sizeof(double), k);
}

void spdl_ranks_gather_all(spdl_ranks *r, const void *mine, size_t bytes, void *all)
{
    if (!r) {
        memmove(all, mine, bytes);
        return;
    }
    double t0 = now();
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, r->world);
    r->seconds += now() - t0;
}

double spdl_ranks_sum(spdl_ranks *r, double v)
{
    if (!r)
        return v;
    double t0 = now(), sum = 0;
    MPI_Allreduce(&v, &sum, 1, MPI_DOUBLE, MPI_SUM, r->world);
    r->seconds += now() - t0;
    return sum;
}

double spdl_ranks_seconds(const spdl_ranks *r) { return r ? r->seconds : 0; }

#endif /* SPDL_MPI */
