#!/usr/bin/python3
"""test_gconv_norm.py CC OUTDIR - spdl_gconv_norm_upper against the exact
operator norm, by numpy's SVD of the dense matrix of the map.

DESIGN §8 written in numpy, independently of the C code: numpy.rot90 and
numpy.flip act on the filters, the group's composition is found by applying
elements to a test array, the zero-padded correlation is built tap by tap.
For every group (C4, D4), kind (lift, gconv), kernel size k in 1, 3, 5 and
grid n in 1..9, with random channel counts in 1..3 (two random kernels and
one structured one each: every tap 1, deltas, a checkerboard, group-invariant
filters, entries from 1e-8 to 1e8, rank one across channels), the
bound must be at least the largest singular value; it must be within 1e-6 of
the torus bound computed here with numpy's FFT and batched SVD (the cropped
bank's symbols on the (n + k' - 1)-torus, k' = min(k, 2n - 1)); and the
ratios bound / norm are printed by (group, kind, k): what the torus
compression costs. Exit status 1 on any failure."""
import ctypes
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
typedef double real;
#define SPDL_BT 4
#include "spdl_kernels.h"
double gnorm(int G, int gconv, int cout, int cin, int k, int n, const double *K, double stop, double rtol)
{
    double *S = malloc(sizeof(double) * SPDL_GNORM_SCRATCH(G, gconv, cout, cin, k, n));
    double b = S ? spdl_gconv_norm_upper(G, gconv, cout, cin, k, n, K, stop, rtol, S) : NAN;
    free(S);
    return b;
}
"""


def load(cc, out, flags):
    os.makedirs(out, exist_ok=True)
    src = os.path.join(out, "gnorm_shim.c")
    lib = os.path.join(out, "gnorm_shim%s.so" % ("_v3" if flags else ""))
    with open(src, "w") as f:
        f.write(SHIM)
    subprocess.check_call([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"] + flags +
                          ["-I" + os.path.join(HERE, "..", "..", "runtime"), src, "-o", lib, "-lm"])
    so = ctypes.CDLL(lib)
    so.gnorm.restype = ctypes.c_double
    so.gnorm.argtypes = [ctypes.c_int] * 6 + [ctypes.POINTER(ctypes.c_double), ctypes.c_double, ctypes.c_double]
    return so


def act(e, a):
    """g_e = R^k M^s, e = k + 4 s: mirror first (numpy.flip), then k rotations (numpy.rot90)"""
    if e >= 4:
        a = np.flip(a, -1)
    return np.rot90(a, e % 4, axes=(-2, -1))


def quotients(G):
    """h[e, f] = idx(g_e^-1 g_f): the element with g_e g_h = g_f, found on a test array"""
    t = np.arange(9.0).reshape(3, 3) ** 2 + 1
    h = np.zeros((G, G), int)
    for e in range(G):
        for f in range(G):
            h[e, f] = [x for x in range(G) if np.array_equal(act(e, act(x, t)), act(f, t))][0]
    return h


def bank(G, gconv, K):
    cout, cin, k = K.shape[0], K.shape[1], K.shape[-1]
    h = quotients(G)
    if gconv:
        W = np.zeros((cout * G, cin * G, k, k))
        for o in range(cout):
            for e in range(G):
                for i in range(cin):
                    for f in range(G):
                        W[o * G + e, i * G + f] = act(e, K[o, i, h[e, f]])
    else:
        W = np.zeros((cout * G, cin, k, k))
        for o in range(cout):
            for e in range(G):
                for i in range(cin):
                    W[o * G + e, i] = act(e, K[o, i])
    return W


def dense(W, n):
    """the matrix of v -> [sum_j corr(v[j], W[o, j])]_o on n x n grids, zero outside"""
    co, ci, k = W.shape[0], W.shape[1], W.shape[-1]
    r = (k - 1) // 2
    M = np.zeros((co, n, n, ci, n, n))
    for u in range(k):
        for v in range(k):
            for p in range(n):
                for q in range(n):
                    pp, qq = p + u - r, q + v - r
                    if 0 <= pp < n and 0 <= qq < n:
                        M[:, p, q, :, pp, qq] += W[:, :, u, v]
    return M.reshape(co * n * n, ci * n * n)


def torus(W, n):
    """the largest norm of the cropped bank's symbols on the (n + k' - 1)-torus"""
    k = W.shape[-1]
    kc = min(k, 2 * n - 1)
    c = (k - kc) // 2
    Wc = W[:, :, c:c + kc, c:c + kc]
    N = n + kc - 1
    P = np.zeros(W.shape[:2] + (N, N))
    rc = (kc - 1) // 2
    # tap (u, v) at offset (u - rc, v - rc): S(a, b) = sum w e^{+2 pi i (a du + b dv) / N} = N^2 ifft2 of the
    # filter placed at (du mod N, dv mod N)
    for u in range(kc):
        for v in range(kc):
            P[:, :, (u - rc) % N, (v - rc) % N] += Wc[:, :, u, v]
    S = np.fft.ifft2(P, axes=(2, 3)) * N * N
    S = np.moveaxis(S, (2, 3), (0, 1)).reshape(N * N, W.shape[0], W.shape[1])
    return np.linalg.svd(S, compute_uv=False).max()


def structured(rng, shape, which):
    """kernels that stress the symbol's structure: repeated top singular values, decoupled blocks, the
    largest norm at one frequency, wide dynamic range"""
    k = shape[-1]
    K = np.zeros(shape)
    if which == 0:    # every tap 1: the norm at frequency 0, huge multiplicity of zeros elsewhere
        K[...] = 1
    elif which == 1:  # a centre delta: channel mixing only
        K[..., k // 2, k // 2] = rng.standard_normal(shape[:-2])
    elif which == 2:  # a corner delta: a shift, the same norm at every frequency
        K[..., 0, 0] = 1
    elif which == 3:  # a checkerboard: the norm near frequency (pi, pi)
        K[...] = (-1.0) ** np.add.outer(np.arange(k), np.arange(k))
    elif which == 4:  # filters invariant under the group, equal across channels
        f = rng.standard_normal((k, k))
        f = sum(act(e, f) for e in range(8))
        K[...] = f
    elif which == 5:  # entries from 1e-8 to 1e8
        K = rng.standard_normal(shape) * 10.0 ** rng.uniform(-8, 8, size=shape)
    else:             # rank one across channels
        a = rng.standard_normal(shape[0])
        b = rng.standard_normal(shape[1:])
        K = np.multiply.outer(a, b)
    return K


def main():
    cc, out = sys.argv[1], sys.argv[2]
    libs = [("", load(cc, out, []))]
    if "avx2" in open("/proc/cpuinfo").read() and " fma" in open("/proc/cpuinfo").read():
        libs.append(("-march=x86-64-v3", load(cc, out, ["-march=x86-64-v3"])))
    rng = np.random.default_rng(20260311)
    fail = 0
    ratios = {}
    cases = 0
    for G in (4, 8):
        for gconv in (0, 1):
            for k in (1, 3, 5):
                for n in range(1, 10):
                    for draw in range(3):
                        cout, cin = rng.integers(1, 4, size=2)
                        if G == 8 and gconv and n >= 8 and cout * cin > 4:
                            cout, cin = 2, 2  # keep the SVDs under a second
                        shape = (cout, cin, G, k, k) if gconv else (cout, cin, k, k)
                        if draw < 2:
                            K = rng.standard_normal(shape) * (10.0 ** rng.integers(-3, 4))
                        else:
                            K = structured(rng, shape, cases % 7)
                        W = bank(G, gconv, K)
                        norm = np.linalg.svd(dense(W, n), compute_uv=False)[0]
                        tb = torus(W, n)
                        Kc = np.ascontiguousarray(K, dtype=np.float64)
                        ptr = Kc.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
                        for name, so in libs:
                            b = so.gnorm(G, gconv, int(cout), int(cin), k, n, ptr, 0.0, 1e-9)
                            what = "%s %s %dx%d k=%d n=%d %s" % ("C4" if G == 4 else "D4", "gconv" if gconv else "lift",
                                                                 cout, cin, k, n, name)
                            if not b >= norm:
                                print("FAIL %s: bound %.17g below the norm %.17g" % (what, b, norm))
                                fail += 1
                            if not (tb * (1 - 1e-12) <= b <= tb * (1 + 1e-6)):
                                print("FAIL %s: bound %.17g, torus bound %.17g" % (what, b, tb))
                                fail += 1
                            if not tb >= norm * (1 - 1e-12):
                                print("FAIL %s: torus bound %.17g below the norm %.17g" % (what, tb, norm))
                                fail += 1
                        if draw < 2:
                            ratios.setdefault(("C4" if G == 4 else "D4", "gconv" if gconv else "lift", k), []).append(
                                (n, b / norm))
                        cases += 1
    print("bound / exact norm (numpy SVD) of the random kernels; %d kernels, %d builds each:" % (cases, len(libs)))
    print("  group kind  k   n = 1..3          n = 4..6          n = 7..9")
    for key in sorted(ratios):
        row = []
        for lo, hi in ((1, 3), (4, 6), (7, 9)):
            rs = [r for n, r in ratios[key] if lo <= n <= hi]
            row.append("%.4f - %.4f" % (min(rs), max(rs)))
        print("  %-5s %-5s %d   %s" % (key[0], key[1], key[2], "   ".join(row)))
    print("gconv norm: %d failures" % fail)
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
