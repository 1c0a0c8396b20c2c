#!/usr/bin/env python3
"""rotate_digits.py OUT_DIR [digits|mnist] - the 1797 UCI digits
(data/digits.csv.gz, pixels / 16) or the 10,000 MNIST digits
(data/mnist.u8.gz, pixels / 255) as CSV files, once as they are and once per
element of D4 (k quarter turns counter-clockwise, numpy.rot90, after a
left-right mirror for mirror=1): the transforms runtime/DATA.md defines for
rotate= and mirror=, written out for models whose input is a vector (R[64],
R[784]), which those options do not act on. Rows keep their order, so
`FILE?split=0.2&part=test` is the same digits as
`builtin:digits?split=0.2&part=test` (or builtin:mnist's)."""
import gzip
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
which = sys.argv[2] if len(sys.argv) > 2 else "digits"
if which == "digits":
    rows = np.loadtxt(gzip.open(os.path.join(here, "..", "data", "digits.csv.gz"), "rt"), delimiter=",")
    n, img, lab = 8, rows[:, :64] / 16, rows[:, 64].astype(int)
elif which == "mnist":
    rows = np.frombuffer(gzip.open(os.path.join(here, "..", "data", "mnist.u8.gz")).read(), dtype=np.uint8)
    rows = rows.reshape(-1, 785)
    n, img, lab = 28, rows[:, :784] / 255.0, rows[:, 784].astype(int)
else:
    sys.exit("rotate_digits.py: expected digits or mnist, not %r" % which)
img = img.reshape(-1, n, n)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for s in (0, 1):
    for k in range(4):
        a = np.flip(img, -1) if s else img
        a = np.rot90(a, k, axes=(1, 2)).reshape(-1, n * n)
        name = os.path.join(out, "%s_r%d%s.csv" % (which, 90 * k, "_m" if s else ""))
        with open(name, "w") as f:
            for x, c in zip(a, lab):
                f.write(",".join(repr(float(v)) if v else "0" for v in x) + ",%d\n" % c)
