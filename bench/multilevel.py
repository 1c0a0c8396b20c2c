#!/usr/bin/env python3
"""multilevel.py SPDLC OUTDIR: time to quality (issue 14, item 3). The
DESIGN spirals model at N = 64 Verlet layers, trained from scratch, against
`train --multilevel` of a `spdlc build --levels 3` program (16, 32, 64
layers), same data, seed, optimiser and learning rate, in the same run.
The target is the training loss the from-scratch run reaches at its last
epoch; each run's time to it is read off its log (`seconds`, counted from
the start of training; for the multilevel run, the first row at level 3
at or below the target). Prints a table; writes OUTDIR/multilevel.md."""
import csv
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def log_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main(spdlc, out, epochs=60, level_epochs="40,20,12", repeats=3):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(ROOT, "examples", "spirals.spn")) as f:
        spn = f.read().replace("in 32 layers", "in 64 layers")
    path = os.path.join(out, "spirals64.spn")
    with open(path, "w") as f:
        f.write(spn)
    plain, multi = os.path.join(out, "sp64"), os.path.join(out, "sp64ml")
    subprocess.run([spdlc, "build", path, "-o", plain], check=True)
    subprocess.run([spdlc, "build", path, "--levels", "3", "-o", multi], check=True)
    common = ["--data", "builtin:spirals", "--lr", "0.01", "--threads", "1", "--val", "0", "-q"]
    results = []
    for r in range(repeats):  # interleaved
        w0, w1 = os.path.join(out, "scratch%d.safetensors" % r), os.path.join(out, "multi%d.safetensors" % r)
        subprocess.run([plain, "train", *common, "--epochs", str(epochs), "--out", w0], check=True)
        subprocess.run([multi, "train", *common, "--multilevel", "--level-epochs", level_epochs, "--out", w1],
                       check=True)
        s = log_rows(w0[:-len(".safetensors")] + ".log.csv")
        m = log_rows(w1[:-len(".safetensors")] + ".log.csv")
        target = float(s[-1]["loss"])
        t_s = next(float(x["seconds"]) for x in s if float(x["loss"]) <= target)
        hit = [x for x in m if x["level"] == "3" and float(x["loss"]) <= target]
        t_m = float(hit[0]["seconds"]) if hit else float("inf")
        results.append((target, t_s, t_m, float(m[-1]["loss"]), float(m[-1]["seconds"])))
    lines = ["| run | target loss (scratch, epoch %d) | scratch: seconds to it | multilevel (%s): seconds to it "
             "| ratio | multilevel final loss |" % (epochs, level_epochs), "|---|---|---|---|---|---|"]
    for r, (target, t_s, t_m, final, _) in enumerate(results):
        lines.append("| %d | %.4g | %.3f | %s | %s | %.4g |" % (r + 1, target, t_s, "%.3f" % t_m if t_m < 1e30 else
                     "not reached", "%.2f" % (t_s / t_m) if t_m < 1e30 else "-", final))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "multilevel.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), sys.argv[2])
