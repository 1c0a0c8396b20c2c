#!/usr/bin/env python3
"""learned_steps.py [SPDLC [OUTDIR]]: learned steps against uniform steps
(issue 14, item 4). examples/learned_steps.spn and its twin without the
`steps learned` line (uniform h = T/N) are built, checked and trained alike
(builtin:spirals, 300 epochs, Adam at lr 0.02 with a cosine schedule, one
thread, seeds 1, 2, 3), then evaluated on a fresh draw (seed=2). For each
trained learned-steps model the script reads dt from the weights file and
verifies the simplex DESIGN §3 promises (sum dt_k = T to rounding, 0 <= dt_k
<= hmax; exit 1 if not), prints the stability certificate that covers every
such dt (it uses hmax), and plots dt_k over the layer's start time with
gnuplot: OUTDIR/learned_steps.png (its .gp and .csv beside it), and the
table in OUTDIR/learned_steps.md. About a minute on one core."""
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from spdl import safetensors  # noqa: E402

SEEDS = (1, 2, 3)
TRAIN = ["--data", "builtin:spirals", "--epochs", "300", "--lr", "0.02", "--schedule", "cosine", "--threads", "1",
         "--val", "0", "-q"]
TEST = "builtin:spirals?seed=2"


def sh(*argv):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True).stdout


def main(spdlc, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(HERE, "learned_steps.spn")) as f:
        text = f.read()
    t0, t1, n = (float(x) for x in re.search(r"flow over \[([^,]+), ([^\]]+)\] in (\d+) layers", text).groups())
    T, N = t1 - t0, int(n)
    hmax = float(re.search(r"steps learned <= ([0-9.]+)", text).group(1))
    uniform = os.path.join(out, "uniform_steps.spn")
    with open(uniform, "w") as f:
        f.write(re.sub(r"\n\s*steps learned[^\n]*", "", text).replace("model learned_steps", "model uniform_steps"))
    exes = {}
    for name, spn in (("learned", os.path.join(HERE, "learned_steps.spn")), ("uniform", uniform)):
        cert = sh(spdlc, "check", spn)
        print("%s: %s" % (name, re.search(r"stable\s+holds\s+(.*)", cert).group(1).strip()))
        exes[name] = os.path.join(out, name)
        sh(spdlc, "build", spn, "-o", exes[name])
    rows, steps, bad = [], [], 0
    for seed in SEEDS:
        row = [seed]
        for name in ("uniform", "learned"):
            w = os.path.join(out, "%s%d.safetensors" % (name, seed))
            sh(exes[name], "train", *TRAIN, "--seed", seed, "--out", w)
            with open(w[:-len(".safetensors")] + ".log.csv") as f:
                loss = float(f.read().splitlines()[-1].split(",")[1])
            acc = float(re.search(r"accuracy\s+(\S+)", sh(exes[name], "eval", "--data", TEST, "--weights", w)).group(1))
            row += [loss, acc]
            if name == "learned":
                dt = dict(safetensors.read(w)[0])["dt"]
                ok = abs(dt.sum() - T) <= 1e-12 * T and dt.min() >= 0 and dt.max() <= hmax
                bad += not ok
                print("seed %d: dt = %s; sum %.17g (T = %g), in [%.4g, %.4g] (hmax %g): %s"
                      % (seed, " ".join("%.4f" % d for d in dt), dt.sum(), T, dt.min(), dt.max(), hmax,
                         "on the simplex" if ok else "OFF THE SIMPLEX"))
                steps.append(dt)
        rows.append(row)
    lines = ["| seed | uniform steps (h = %g): training loss | test accuracy | learned steps (<= %g): training loss "
             "| test accuracy |" % (T / N, hmax), "|---|---|---|---|---|"]
    lines += ["| %d | %.4f | %.3f | %.4f | %.3f |" % tuple(r) for r in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    with open(os.path.join(out, "learned_steps.md"), "w") as f:
        f.write(table)
    plot(out, steps, t0, T, N, hmax)
    return 1 if bad else 0


def plot(out, steps, t0, T, N, hmax):
    """dt_k as a step function of the layer's start time t_k = t0 + sum_{j<k} dt_j, one line per seed."""
    csv = os.path.join(out, "learned_steps.csv")
    with open(csv, "w") as f:
        for s, dt in zip(SEEDS, steps):
            t = t0 + np.concatenate([[0], np.cumsum(dt)])
            for k in range(N):
                f.write("%d %.17g %.17g\n" % (s, t[k], dt[k]))
            f.write("%d %.17g %.17g\n\n\n" % (s, t[N], dt[N - 1]))
    gp = os.path.join(out, "learned_steps.gp")
    with open(gp, "w") as f:
        f.write("set terminal pngcairo size 900,500\n" if "pngcairo" in sh("gnuplot", "-e", "set terminal")
                else "set terminal png size 900,500\n")
        f.write("set output '%s'\n" % os.path.join(out, "learned_steps.png"))
        f.write("set title 'learned steps: dt_k from the start t_k of layer k (a point per layer)'\n")
        f.write("set xlabel 't'\nset ylabel 'dt_k'\nset grid\nset key outside right\n")
        f.write("set xrange [%g:%g]\nset yrange [0:%g]\n" % (t0 - 0.02 * T, t0 + 1.02 * T, 1.15 * hmax))
        f.write("plot " + ", ".join("'%s' index %d using 2:3 with steps lw 2 lc %d title 'seed %d', "
                                    "'' index %d every ::0::%d using 2:3 with points pt 7 lc %d notitle"
                                    % (csv, i, i + 1, s, i, N - 1, i + 1) for i, s in enumerate(SEEDS)))
        f.write(", %g with lines dt 2 lc 'black' title 'uniform T/N', %g with lines dt 3 lw 1 lc 'grey' "
                "title 'hmax'\n" % (T / N, hmax))
    subprocess.run(["gnuplot", gp], check=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(os.path.abspath(args[0]) if args else os.path.join(HERE, "..", "build", "spdlc"),
                  args[1] if len(args) > 1 else os.path.join(HERE, "..", "build", "learned_steps")))
