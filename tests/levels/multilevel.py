#!/usr/bin/env python3
"""multilevel.py SPDLC OUTDIR: `spdlc build --levels` and `EXE train
--multilevel` end to end (DESIGN §11), checked against this file's own
reading of levels.h's rules in NumPy:

- the runtime's prolongation (constant and linear) equals NumPy's, layer by
  layer, on parameters that SGD at a learning rate of 1e-300 leaves alone;
- after a piecewise-constant prolongation the data term of the loss changes
  by O(h): the change from level k to k+1 at least halves, level after
  level (Euler); the H1 penalty doubles, as the jumps stay and h halves;
- learned steps stay on their simplex across the levels (sum T, 0 <= dt <= hmax);
- a run killed mid-level and resumed gives the bits of the run in one go;
- the log counts epochs over the levels and names each row's level;
- eval reads a coarse level's checkpoint with that level's model;
- bad --levels, --multilevel, --level-epochs, --prolong and --resume uses
  get clear errors."""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, safetensors, tensors  # noqa: E402

MODEL = """// an Euler flow with learned steps, per-layer K and b, smooth in time
model ml {
    input  x : R[2];
    label  c : class[2];
    state  u : R[4] = pad(x, 4);
    param  K : R[4, 4] per layer where norm(K) <= 2;
    param  b : R[4] per layer;
    flow over [0, 1] in 16 layers by euler {
        steps learned <= 0.6;
        du/dt = tanh(K * u + b);
    }
    param  W : R[2, 4];
    param  w : R[2];
    output p = softmax(W * u + w);
    loss   cross_entropy(p, c) + 1e-3 * smooth(K, b);
}
"""
PER_LAYER = ("K", "b", "dt")
H = Harness("multilevel")
check, run = H.check, H.run


def prolong(theta, linear, steps_scale=0.5):
    """levels.h's rule, written again: layer k to 2k and 2k+1."""
    out = {}
    for n, a in theta.items():
        if n not in PER_LAYER:
            out[n] = a.copy()
            continue
        before = np.concatenate([a[:1], a[:-1]])
        after = np.concatenate([a[1:], a[-1:]])
        if linear:
            lo, hi = 0.75 * a + 0.25 * before, 0.75 * a + 0.25 * after
            lo[0], hi[-1] = a[0], a[-1]
        else:
            lo, hi = a, a
        f = np.empty((2 * a.shape[0],) + a.shape[1:])
        f[0::2], f[1::2] = lo, hi
        out[n] = f * (steps_scale if n == "dt" else 1)
    return out


def main(spdlc, out):
    os.makedirs(out, exist_ok=True)
    spn = os.path.join(out, "ml.spn")
    with open(spn, "w") as f:
        f.write(MODEL)
    exe = os.path.join(out, "ml")
    run(spdlc, "build", spn, "--levels", "4", "-o", exe)
    data = "builtin:spirals?n=400"

    # the runtime's prolongation, on parameters SGD at 1e-300 does not move (b starts at 0, where
    # 1e-300 * g survives: compared to 1e-250)
    for mode in ("constant", "linear"):
        w = os.path.join(out, "still-%s.safetensors" % mode)
        run(exe, "train", "--data", data, "--multilevel", "--level-epochs", "1,1,1,1", "--opt", "sgd",
            "--lr", "1e-300", "--prolong", mode, "--out", w, "-q")
    const, meta = tensors(os.path.join(out, "still-constant.safetensors"))
    lin, _ = tensors(os.path.join(out, "still-linear.safetensors"))
    level1 = {n: (a[0::8] * (8 if n == "dt" else 1) if n in PER_LAYER else a) for n, a in const.items()
              if not n.startswith("optimizer.")}
    check(all(np.allclose(const[n][k::8] * (8 if n == "dt" else 1), level1[n], rtol=1e-15, atol=1e-250)
              for n in PER_LAYER for k in range(8)),
          "constant prolongation over 3 levels: each coarse layer's copy in its 8 fine layers, steps / 8")
    want = level1
    for _ in range(3):
        want = prolong(want, True)
    err = max(np.max(np.abs(lin[n] - want[n]) / (np.abs(want[n]) + 1e-250)) for n in want)
    check(err < 1e-13, "linear prolongation over 3 levels equals NumPy's (relative %.2g)" % err)
    for name, th in (("constant", const), ("linear", lin)):
        dt = th["dt"]
        check(abs(dt.sum() - 1) < 1e-12 and dt.min() >= 0 and dt.max() <= 0.6,
              "%s: learned steps on the simplex at the finest level (sum %.17g, in [%.3g, %.3g])"
              % (name, dt.sum(), dt.min(), dt.max()))

    # O(h): the loss of P^k(theta_1) at level k+1, from eval of files NumPy wrote. The H1 penalty
    # 1e-3 smooth(K, b) = 1e-3 sum_k |theta_k+1 - theta_k|^2 / h (h = T/N, DESIGN §3) is not O(h) under
    # copies: the jumps stay and h halves, so it doubles; the data term is what converges.
    losses, penalties, th = [], [], level1
    for k in range(4):
        path = os.path.join(out, "p%d.safetensors" % k)
        keep = [("format", meta["format"]), ("model", meta["model"]), ("source_hash", meta["source_hash"]),
                ("level", str(k + 1)), ("levels", "4")]
        safetensors.write(path, [(n, th[n]) for n in ("K", "b", "dt", "W", "w")], keep)
        r = run(exe, "eval", "--data", data, "--weights", path)
        n = th["K"].shape[0]
        penalty = 1e-3 * sum(np.sum(np.diff(th[q], axis=0) ** 2) for q in ("K", "b")) / (1.0 / n)
        penalties.append(penalty)
        losses.append(float(re.search(r"loss\s+(\S+)", r.stdout).group(1)) - penalty)
        if k < 3:
            check("holds level %d of 4" % (k + 1) in r.stderr, "eval reads level %d with that level's model" % (k + 1))
        th = prolong(th, False)
    check(all(abs(penalties[k + 1] - 2 * penalties[k]) <= 1e-12 * penalties[k + 1] for k in range(3)),
          "copies double the H1 penalty level by level (%s)" % ", ".join("%.4g" % x for x in penalties))
    d = [abs(losses[k + 1] - losses[k]) for k in range(3)]
    ratios = [d[k + 1] / d[k] for k in range(2)]
    check(all(r < 0.7 for r in ratios) and d[0] > 0,
          "piecewise-constant prolongation changes the data loss by O(h): changes %s, ratios %s"
          % (", ".join("%.3g" % x for x in d), ", ".join("%.3f" % r for r in ratios)))

    # training: the log, the simplex after real steps, and bits of a killed and resumed run
    big = "builtin:spirals?n=60000"
    once = os.path.join(out, "once.safetensors")
    args = ["train", "--data", big, "--multilevel", "--level-epochs", "2,2,3,3", "--schedule", "cosine",
            "--lr", "0.01", "--batch", "256", "--threads", "2", "-q"]
    run(exe, *args, "--out", once)
    with open(os.path.join(out, "once.log.csv")) as f:
        rows = f.read().splitlines()
    check(rows[0].endswith(",level") and [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 11)]
          and [r.split(",")[-1] for r in rows[1:]] == list("1122333444"),
          "the log: epochs 1..10 over the levels, each row's level")
    fin, fmeta = tensors(once)
    dt = fin["dt"]
    check(dt.shape == (16,) and abs(dt.sum() - 1) < 1e-3 and dt.min() >= -1e-3 * 0.6 and dt.max() <= 0.6 * 1.001,
          "trained steps on the simplex (sum %.12g, in [%.3g, %.3g])" % (dt.sum(), dt.min(), dt.max()))
    check(fmeta.get("level") == "4" and fmeta.get("levels") == "4", "the final checkpoint records level 4 of 4")
    H.kill_and_resume(exe, args, once, os.path.join(out, "killed.safetensors"), 3)

    # errors
    plain = os.path.join(out, "plain")
    run(spdlc, "build", spn, "-o", plain)
    bad = [
        ((spdlc, "build", spn, "--levels", "0", "-o", exe), 2, "--levels takes a whole number from 2 to 16"),
        ((spdlc, "build", spn, "--levels", "1", "-o", exe), 2, "--levels takes a whole number from 2 to 16, not '1'"),
        ((spdlc, "build", spn, "--levels", "6", "-o", exe), 1, "a flow of 16 layers has no level with 32 times fewer"),
        ((spdlc, "check", spn, "--levels", "2"), 2, "--levels is an option of emit and of build"),
        ((plain, "train", "--data", data, "--multilevel"), 2, "this one has one level"),
        ((exe, "train", "--data", data, "--level-epochs", "1,1,1,1"), 2, "is an option of train --multilevel"),
        ((exe, "train", "--data", data, "--multilevel", "--level-epochs", "1,2"), 2, "gives 2 numbers, but the program has 4 levels"),
        ((exe, "train", "--data", data, "--multilevel", "--level-epochs", "1,0,1,1"), 2, "bad value for --level-epochs"),
        ((exe, "train", "--data", data, "--multilevel", "--level-epochs", "1,1,1,1", "--epochs", "3"), 2, "not both"),
        ((exe, "train", "--data", data, "--resume", once), 1, "resume it with --multilevel"),
        ((exe, "train", "--data", big, "--multilevel", "--level-epochs", "2,2,3,3", "--resume", once), 1,
         "has already trained all 4 levels"),
        ((plain, "eval", "--data", data, "--weights", os.path.join(out, "p0.safetensors")), 1,
         "it holds level 1 of the 4 of a train --multilevel run"),
    ]
    plain_w = os.path.join(out, "plainw.safetensors")
    run(plain, "train", "--data", data, "--epochs", "1", "--out", plain_w, "-q")
    bad.append(((exe, "train", "--data", data, "--multilevel", "--resume", plain_w), 1,
                "is not a checkpoint of train --multilevel"))
    for argv, code, text in bad:
        r = run(*argv, expect=None)
        check(r.returncode == code and text in r.stderr,
              "%s: exit %d and '%s'" % (" ".join(os.path.basename(str(a)) for a in argv[1:4]), code, text))
    return H.done()


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1]), sys.argv[2]))
