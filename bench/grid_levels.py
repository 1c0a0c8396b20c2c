#!/usr/bin/env python3
"""grid_levels.py SPDLC OUTDIR [--repeats R]: coarser images first (issue 14,
item 5; DESIGN §11's spatial counterpart). bench/mnist_grid.spn, a C4
classifier of builtin:mnist, trained at 28x28 from scratch against `train
--multilevel` of its `spdlc build --grid-levels 2` program (14x14 images
restricted by 2x2 means, then 28x28 with the same kernels), same data,
seed, optimiser, learning rate and threads, interleaved in one run. For
each run: the training loss at 28x28 epoch by epoch with its time from the
start of training, the time to the loss the scratch run ends at, and the
test accuracy on the held-out 2,000 images. Prints a table; writes
OUTDIR/grid_levels.md."""
import argparse
import csv
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TRAIN = "builtin:mnist?split=0.2&part=train"
TEST = "builtin:mnist?split=0.2&part=test"


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def accuracy(exe, weights):
    r = subprocess.run([exe, "eval", "--data", TEST, "--weights", weights], capture_output=True, text=True,
                       check=True)
    return float(re.search(r"accuracy\s+(\S+)", r.stdout).group(1))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("spdlc")
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6, help="the scratch run's, at 28x28")
    ap.add_argument("--level-epochs", default="8,4")
    ap.add_argument("--lr", default="0.02")
    ap.add_argument("--threads", default="2")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    spn = os.path.join(ROOT, "bench", "mnist_grid.spn")
    plain, grid = os.path.join(a.out, "mnist_grid"), os.path.join(a.out, "mnist_grid2")
    subprocess.run([a.spdlc, "build", spn, "-o", plain], check=True)
    subprocess.run([a.spdlc, "build", spn, "--grid-levels", "2", "-o", grid], check=True)
    common = ["--data", TRAIN, "--lr", a.lr, "--schedule", "cosine", "--threads", a.threads, "--val", "0", "-q"]
    results = []
    for r in range(a.repeats):  # interleaved
        w0, w1 = os.path.join(a.out, "scratch%d.safetensors" % r), os.path.join(a.out, "grid%d.safetensors" % r)
        subprocess.run([plain, "train", *common, "--epochs", str(a.epochs), "--out", w0], check=True)
        subprocess.run([grid, "train", *common, "--multilevel", "--level-epochs", a.level_epochs, "--out", w1],
                       check=True)
        s, g = rows(w0[:-12] + ".log.csv"), rows(w1[:-12] + ".log.csv")
        target = float(s[-1]["loss"])
        fine = [x for x in g if x["level"] == "2"]
        hit = [float(x["seconds"]) for x in fine if float(x["loss"]) <= target]
        coarse_s = float([x for x in g if x["level"] == "1"][-1]["seconds"])
        results.append({"target": target, "t_scratch": float(s[-1]["seconds"]),
                        "t_grid": hit[0] if hit else None, "coarse_s": coarse_s,
                        "grid_final": float(g[-1]["loss"]), "grid_s": float(g[-1]["seconds"]),
                        "acc_scratch": accuracy(plain, w0), "acc_grid": accuracy(grid, w1),
                        "curve_s": [(float(x["seconds"]), float(x["loss"])) for x in s],
                        "curve_g": [(float(x["seconds"]), float(x["loss"])) for x in fine],
                        "coarse_final": float([x for x in g if x["level"] == "1"][-1]["loss"])})
    lines = ["| run | scratch: %d epochs at 28x28, loss / s / test acc | grid levels (%s epochs at 14x14, 28x28): "
             "14x14 loss / s, 28x28 loss / s / test acc | to the scratch loss |" % (a.epochs, a.level_epochs),
             "|---|---|---|---|"]
    for i, x in enumerate(results):
        lines.append("| %d | %.4f / %.1f / %.4f | %.4f / %.1f, %.4f / %.1f / %.4f | %s |" % (
            i + 1, x["target"], x["t_scratch"], x["acc_scratch"], x["coarse_final"], x["coarse_s"], x["grid_final"],
            x["grid_s"], x["acc_grid"], "%.1f s (%.2fx)" % (x["t_grid"], x["t_scratch"] / x["t_grid"])
            if x["t_grid"] else "not reached"))
    lines.append("")
    lines.append("28x28 training loss by epoch (seconds from the start of training):")
    for i, x in enumerate(results):
        lines.append("- run %d scratch: %s" % (i + 1, ", ".join("%.3f (%.0f s)" % (l, t) for t, l in x["curve_s"])))
        lines.append("- run %d grid:    %s" % (i + 1, ", ".join("%.3f (%.0f s)" % (l, t) for t, l in x["curve_g"])))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(a.out, "grid_levels.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
