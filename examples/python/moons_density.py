"""The moons normalising flow (examples/moons_flow.spn) as a density from
NumPy: train it with the generated loss and gradient (Adam in a few lines of
NumPy), evaluate its log-density log p(x) = log N(f(x); 0, I) + log|det f'(x)|
from flow() and logdet(), draw samples through the proved inverse, and write
CSV files and a gnuplot picture. The built program evaluates the same weights
on the same test points: the mean NLLs must agree.

    PYTHONPATH=python:DIR /usr/bin/python3 examples/python/moons_density.py --exe EXE --out OUTDIR
"""
import argparse
import math
import os
import re
import shutil
import subprocess
import time

import numpy as np

import moons_flow

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--exe", help="the program spdlc build made from moons_flow.spn (to cross-check the NLL)")
ap.add_argument("--out", default=".")
ap.add_argument("--epochs", type=int, default=200)
ap.add_argument("--lr", type=float, default=0.02)
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(0)


def moons(n, noise=0.1):
    """Two interleaved half circles (the shape builtin:moons draws), centred."""
    a = math.pi * rng.random(n)
    c = rng.integers(0, 2, n)
    x = np.where(c[:, None] == 0, np.column_stack([np.cos(a), np.sin(a)]),
                 np.column_stack([1 - np.cos(a), 0.5 - np.sin(a)]))
    return np.ascontiguousarray(x - [0.5, 0.25] + noise * rng.normal(size=(n, 2)))


xtr, xte = moons(1800), moons(1000)
test_csv = os.path.join(args.out, "moons_test.csv")
np.savetxt(test_csv, xte, delimiter=",", fmt="%.17g", header="x0,x1", comments="")

# Adam on theta with the model's own mean loss (nll_gaussian) and its exact gradient
m = moons_flow.Model(seed=0)
mom, vel, step, batch = np.zeros_like(m.theta), np.zeros_like(m.theta), 0, 64
t0 = time.perf_counter()
for epoch in range(args.epochs):
    lr = 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))   # cosine schedule
    order = rng.permutation(len(xtr))
    for s in range(0, len(xtr), batch):
        loss, g = m.loss_grad(np.ascontiguousarray(xtr[order[s:s + batch]]))
        step += 1
        mom = 0.9 * mom + 0.1 * g
        vel = 0.999 * vel + 0.001 * g * g
        m.theta -= lr * (mom / (1 - 0.9 ** step)) / (np.sqrt(vel / (1 - 0.999 ** step)) + 1e-8)
        m.project()
train_s = time.perf_counter() - t0
weights = os.path.join(args.out, "moons_flow_numpy.safetensors")
m.save(weights)


def log_density(x):
    s = m.flow(x)
    return -0.5 * np.sum(s * s, axis=1) - math.log(2 * math.pi) + m.logdet(x)


nll = -log_density(xte).mean()
loss, _ = m.loss_grad(xte)
print("trained %d epochs (%d Adam steps) in %.2f s" % (args.epochs, step, train_s))
print("mean test NLL from flow() and logdet(): %.6f nats (the model's own loss: %.6f)" % (nll, loss))

# samples: latents z ~ N(0, I) through the inverse; and the round trip's error
z = rng.normal(size=(1000, 2))
xs = m.inverse(z)
print("samples through inverse(): round trip max |flow(inverse(z)) - z| = %.2g" % np.max(np.abs(m.flow(xs) - z)))
np.savetxt(os.path.join(args.out, "moons_samples.csv"), xs, delimiter=",", fmt="%.9g", header="x0,x1", comments="")

# the density on a grid, as CSV (x0, x1, p) and a picture
g0, g1 = np.meshgrid(np.linspace(-2, 2, 161), np.linspace(-1.5, 1.5, 121))
grid = np.ascontiguousarray(np.column_stack([g0.ravel(), g1.ravel()]))
p = np.exp(log_density(grid))
dens_csv = os.path.join(args.out, "moons_density.csv")
with open(dens_csv, "w") as f:
    f.write("x0,x1,p\n")
    for row in range(g0.shape[0]):   # gnuplot's blocks: a blank line between grid rows
        for k in range(row * g0.shape[1], (row + 1) * g0.shape[1]):
            f.write("%.6g,%.6g,%.6g\n" % (grid[k, 0], grid[k, 1], p[k]))
        f.write("\n")
cell = (4 / 160) * (3 / 120)
print("density on a %dx%d grid: integrates to %.4f over [-2, 2] x [-1.5, 1.5]" % (g0.shape[1], g0.shape[0],
                                                                                 p.sum() * cell))
png = os.path.join(args.out, "moons_density.png")
if shutil.which("gnuplot"):
    script = """set terminal pngcairo size 800,600
set output '%s'
set datafile separator ','
set view map
set palette defined (0 'white', 1 '#9ecae1', 2 '#3182bd', 3 '#08306b')
set title 'moons\\_flow: p(x) from NumPy (flow + logdet), 300 samples f^{-1}(z)'
set xrange [-2:2]; set yrange [-1.5:1.5]; set size ratio -1
splot '%s' every ::1 using 1:2:3 with pm3d notitle, \\
      '%s' every ::1::300 using 1:2:(0) with points pt 7 ps 0.4 lc rgb '#e6550d' notitle
""" % (png, dens_csv, os.path.join(args.out, "moons_samples.csv"))
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("picture: %s" % png)
print("CSV: %s, %s" % (dens_csv, os.path.join(args.out, "moons_samples.csv")))

if args.exe:   # the built program on the same weights and points
    out = subprocess.run([args.exe, "eval", "--data", test_csv, "--weights", weights], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=True).stdout
    print("`%s eval`: %s" % (os.path.basename(args.exe), out.strip().splitlines()[-1] if out.strip() else ""))
    got = re.search(r"loss\s*[=:]?\s*([-0-9.e+]+)", out)
    if got:
        print("program's mean NLL %s; NumPy's %.6f: %s" % (got.group(1), nll,
              "agree" if abs(float(got.group(1)) - nll) < 1e-4 * max(1, abs(nll)) else "DIFFER"))
