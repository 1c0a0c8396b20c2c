/* vec.h - what attack.c and demo.c both need: a seeded 64-bit LCG with
 * Box-Muller normals (the same bits on every machine), and the 2-norm. */
#ifndef ATTACK_VEC_H
#define ATTACK_VEC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state = 20261127;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng_state >> 11) + 0.5) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand()); }

static double norm(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

#endif
