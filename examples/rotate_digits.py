#!/usr/bin/env python3
"""rotate_digits.py OUT_DIR - the 1797 UCI digits (data/digits.csv.gz) as CSV
files with pixels / 16, once as they are and once per element of D4 (k
quarter turns counter-clockwise, numpy.rot90, after a left-right mirror for
mirror=1): the transforms runtime/DATA.md defines for rotate= and mirror=,
written out for models whose input is a vector R[64], which those options
do not act on. Rows keep their order, so `FILE?split=0.2&part=test` is the
same 359 digits as `builtin:digits?split=0.2&part=test`."""
import gzip
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rows = np.loadtxt(gzip.open(os.path.join(here, "..", "data", "digits.csv.gz"), "rt"), delimiter=",")
img, lab = rows[:, :64].reshape(-1, 8, 8) / 16, rows[:, 64].astype(int)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for s in (0, 1):
    for k in range(4):
        a = np.flip(img, -1) if s else img
        a = np.rot90(a, k, axes=(1, 2)).reshape(-1, 64)
        name = os.path.join(out, "digits_r%d%s.csv" % (90 * k, "_m" if s else ""))
        with open(name, "w") as f:
            for x, c in zip(a, lab):
                f.write(",".join(repr(float(v)) for v in x) + ",%d\n" % c)
