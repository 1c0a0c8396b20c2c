/* ranks.h - data parallelism across processes (DESIGN §9): the MPI layer.
 *
 * Why a layer of its own: the default libspdl.a never needs MPI. ranks.c
 * compiles two ways: into libspdl.a without SPDL_MPI, where
 * spdl_ranks_start always gives NULL (one process) and every function below
 * is the one-process case; and, by mpicc with -DSPDL_MPI, into
 * libspdl_mpi.a (libspdl.a with this one object replaced), which `spdlc
 * build --mpi` links. The rest of the runtime calls these functions with
 * whatever spdl_ranks_start gave, and a NULL spdl_ranks * means one process.
 *
 * How a step stays bit-identical to one process (runtime/tiles.c): the
 * batch's tiles are split into P contiguous runs, rank r taking the r-th;
 * rank 0 sums its tiles' adjoints in tile order from +0, sends the sum to
 * rank 1, which adds its own tiles (kept, each in its own buffer, until
 * the sum arrives) to it in tile order, and so on down the chain; the last
 * rank broadcasts the whole sum. The additions are exactly those of one
 * process, in the same order. The tiles' loss sums ride along and are added
 * in tile order by every rank.
 *
 * Errors: with more than one rank, a rank other than 0 writes nothing to
 * stdout or stderr (they go to /dev/null: rank 0 prints the same lines); its
 * first error is held (spdl_ranks_hold) and printed by spdl_ranks_agree
 * when it is the lowest failing rank, so a job prints one error however
 * many ranks fail. Failures that only some ranks can meet (reading files,
 * writing checkpoints) are followed by spdl_ranks_agree; every other
 * collective carries its own status. A rank that fails where the others
 * do not wait for it ends the job with MPI_Abort after a few seconds
 * (spdl_ranks_end), and MPI errors print one line and abort: never a hang. */
#ifndef SPDL_RANKS_H
#define SPDL_RANKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct spdl_ranks spdl_ranks;

/* MPI_Init when this program has the MPI layer and was started by mpirun
 * (or another MPI launcher); *out stays NULL otherwise: one process. prog
 * names the program in messages. Returns 0, or 1 after printing why MPI
 * could not start (or, without the MPI layer, that mpirun started several
 * copies of a program built without --mpi). */
int spdl_ranks_start(int *argc, char ***argv, const char *prog, spdl_ranks **out);
/* The end of the job: status is this rank's exit status; returns the job's
 * (nonzero on every rank when any rank failed), after printing a held error
 * not yet printed, and finalises MPI. Frees r. */
int spdl_ranks_end(spdl_ranks *r, int status);
/* Whether this program has the MPI layer (libspdl_mpi.a). */
int spdl_ranks_available(void);

int spdl_ranks_rank(const spdl_ranks *r); /* 0 for NULL */
int spdl_ranks_size(const spdl_ranks *r); /* 1 for NULL */

/* Keeps "PROG: error: rank R of P: msg" as this rank's error to print
 * later (the first one only); returns 1 when held (a rank other than 0 of
 * several), 0 when the caller prints msg now. */
int spdl_ranks_hold(spdl_ranks *r, const char *msg);
/* Collective: nonzero on every rank when status is nonzero on any; the
 * lowest failing rank's held error is printed once (rank 0 has printed
 * its own). */
int spdl_ranks_agree(spdl_ranks *r, int status);
/* Collective: whether every rank passed the same v; when not, the lowest
 * rank whose v differs from rank 0's (in *which, may be NULL). */
int spdl_ranks_same(spdl_ranks *r, uint64_t v, int *which);

/* Collectives with one origin (bytes or doubles in place). */
void spdl_ranks_bcast(spdl_ranks *r, void *buf, size_t bytes);        /* from rank 0 */
void spdl_ranks_bcast_last(spdl_ranks *r, double *buf, size_t n);     /* from the last rank */
/* The chain: rank r receives n doubles from rank r - 1 (not on rank 0),
 * and sends n to rank r + 1 (not on the last rank). */
void spdl_ranks_recv_prev(spdl_ranks *r, double *buf, size_t n);
void spdl_ranks_send_next(spdl_ranks *r, const double *buf, size_t n);
/* Every rank's part of buf (rank k's: count[k] doubles at offset[k]) to
 * every rank, in place. */
void spdl_ranks_allgather(spdl_ranks *r, double *buf, const size_t *count, const size_t *offset);
/* Every rank's `bytes` bytes of mine into all (size x bytes), on every rank. */
void spdl_ranks_gather_all(spdl_ranks *r, const void *mine, size_t bytes, void *all);

/* The contiguous run [*lo, *hi) of n units that rank k of r takes. */
void spdl_ranks_share(const spdl_ranks *r, int k, size_t n, size_t *lo, size_t *hi);

/* Collective: the sum of v over the ranks (v for one process). */
double spdl_ranks_sum(spdl_ranks *r, double v);
/* Seconds this rank has spent in MPI calls (waiting for the others included). */
double spdl_ranks_seconds(const spdl_ranks *r);

/* FNV-1a over n bytes, continuing from h (start with SPDL_HASH_START). */
uint64_t spdl_hash_bytes(uint64_t h, const void *p, size_t n);
#define SPDL_HASH_START 14695981039346656037ull

#endif
