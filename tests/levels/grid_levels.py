#!/usr/bin/env python3
"""grid_levels.py SPDLC OUTDIR: `spdlc build --grid-levels` and `EXE train
--multilevel` on coarser images (DESIGN §11's spatial counterpart), checked
against this file's own reading of levels.h in NumPy:

- a coarser level is the model's kernels on images restricted by 2x2 means
  (pool2's blocks): EXE predict with a level's checkpoint on the full-size
  images gives the bits that a program built from the text with every grid
  halved (quartered) gives on images NumPy restricted;
- the levels share their parameters: SGD at a learning rate of 1e-300 ends
  where the plain model's initialisation starts, on every level;
- the levels stay invariant: a coarse level's predictions of quarter-turned
  and mirrored images are those of the images;
- the log names each row's level; a run killed mid-level and resumed gives
  the bits of the run in one go;
- misuse gets clear errors (no group, a grid that does not halve, pool2 of
  an odd grid, an image target, --prolong, both kinds of levels)."""
import gzip
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, safetensors, tensors  # noqa: E402

# D4 on 16x16 digits: lift, pool2 to 8x8, a Verlet flow with a zero momentum state, learned steps, a kernel
# norm bound (whose emitted bound depends on the grid)
MODEL = """// a D4-invariant classifier of 16x16 images, in three grid levels
model gl {
    input  x : R[1, 16, 16];
    label  c : class[10];
    group  D4 acts on x;
    param  k0 : lift[D4, 1 -> 2, 3];
    param  b0 : R[2];
    state  y : R[2, 8, 8, 8] = pool2(relu(lift(k0, x) + b0));
    state  z : R[2, 8, 8, 8] = 0;
    param  k : gconv[D4, 2 -> 2, 3] per layer where norm(k) <= 1;
    param  b : R[2] per layer;
    flow over [0, 1] in 4 layers by verlet {
        steps learned <= 0.5;
        dy/dt =  tanh(gconv(k, z) + b);
        dz/dt = -gconv'(k, tanh(gconv(k, y) + b));
    }
    param  W : R[10, 2];
    param  w : R[10];
    output p = softmax(W * mean_space(gpool(y)) + w);
    loss   cross_entropy(p, c);
    require invariant(D4);
}
"""
H = Harness("grid_levels")
check, run = H.check, H.run


def coarser(text, f):
    """The model's text with its images and the states on them f times coarser per side."""
    for a, b in (("R[1, 16, 16]", "R[1, %d, %d]"), ("R[2, 8, 8, 8]", "R[2, 8, %d, %d]")):
        n = int(a.split(",")[-1].rstrip("]"))
        text = text.replace(a, b % (n // f, n // f))
    return text


def restrict(x, times):
    """2x2 means, as pool2 and levels.h define them, in the runtime's order of the four terms."""
    for _ in range(times):
        x = 0.25 * (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2])
    return x


def npy(path, x, labels):
    np.save(path, np.hstack([x.reshape(len(x), -1), labels[:, None].astype(float)]))


def main(spdlc, out):
    os.makedirs(out, exist_ok=True)
    spn = os.path.join(out, "gl.spn")
    with open(spn, "w") as f:
        f.write(MODEL)
    exe = os.path.join(out, "gl")
    run(spdlc, "build", spn, "--grid-levels", "3", "-o", exe)
    plain = {}
    for f in (1, 2, 4):
        p = os.path.join(out, "gl%d.spn" % f)
        with open(p, "w") as fh:
            fh.write(coarser(MODEL, f))
        plain[f] = os.path.join(out, "plain%d" % f)
        run(spdlc, "build", p, "-o", plain[f])

    # the 8x8 digits as 16x16 images (each pixel a 2x2 block, plus a ramp so that no restriction is exact)
    rows = np.loadtxt(gzip.open(os.path.join(ROOT, "data", "digits.csv.gz")), delimiter=",")[:300]
    ramp = np.add.outer(np.arange(16), 2 * np.arange(16)) / 96.0
    x16 = np.kron(rows[:, :64].reshape(-1, 8, 8) / 16.0, np.ones((2, 2))) + ramp
    labels = rows[:, 64]
    data = os.path.join(out, "d16.npy")
    npy(data, x16, labels)

    # training: the log names the levels; the final checkpoint is level 3 of 3
    once = os.path.join(out, "once.safetensors")
    args = ["train", "--data", data, "--multilevel", "--level-epochs", "2,2,2", "--lr", "0.01", "--batch", "32",
            "--threads", "2", "--schedule", "cosine"]
    talk = run(exe, *args, "--out", once).stdout
    with open(os.path.join(out, "once.log.csv")) as f:
        log = f.read().splitlines()
    check(log[0].endswith(",level") and [r.split(",")[-1] for r in log[1:]] == list("112233"),
          "the log: 6 epochs over the levels, each row's level")
    theta, meta = tensors(once)
    check(meta.get("level") == "3" and meta.get("levels") == "3", "the final checkpoint records level 3 of 3")
    check("level 1/3: images 1/4 the size (4x4)" in talk and "level 3/3: images at full size (16x16)" in talk,
          "the progress names each level's images")

    # a level is the kernels on restricted images: predictions against the coarser programs on NumPy's
    weights = [(n, a) for n, a in theta.items() if not n.startswith("optimizer.")]
    for level, f in ((1, 4), (2, 2), (3, 1)):
        lw = os.path.join(out, "level%d.safetensors" % level)
        safetensors.write(lw, weights, [("format", meta["format"]), ("model", "gl"),
                                        ("source_hash", meta["source_hash"]), ("level", str(level)),
                                        ("levels", "3")])
        pw = os.path.join(out, "plain%d.safetensors" % level)
        safetensors.write(pw, weights, [("format", meta["format"]), ("model", "gl"),
                                        ("source_hash", meta["source_hash"])])
        small = os.path.join(out, "d%d.npy" % (16 // f))
        npy(small, restrict(x16, {4: 2, 2: 1, 1: 0}[f]), labels)
        got, want = os.path.join(out, "got%d.npy" % level), os.path.join(out, "want%d.npy" % level)
        r = run(exe, "predict", "--data", data, "--weights", lw, "-o", got)
        run(plain[f], "predict", "--data", small, "--weights", pw, "-o", want)
        if level < 3:
            check("holds level %d of 3 (images 1/%d the size (%dx%d))" % (level, f, 16 // f, 16 // f) in r.stderr,
                  "predict reads level %d with that level's model" % level)
        g, w = np.load(got), np.load(want)
        check(g.shape == w.shape and np.array_equal(g, w),
              "level %d (%dx%d): the predictions of the program on %dx%d images NumPy restricted, to the bit"
              % (level, 16 // f, 16 // f, 16 // f, 16 // f))
        if level == 1:
            worst = 0.0
            for opt in ("rotate=90", "rotate=180", "rotate=270", "mirror=1"):
                rot = os.path.join(out, "rot.npy")
                run(exe, "predict", "--data", data + "?" + opt, "--weights", lw, "-o", rot)
                worst = max(worst, float(np.max(np.abs(np.load(rot) - g))))
            check(worst < 1e-12, "level 1 is invariant: rotated and mirrored images predicted alike (%.2g)" % worst)

    # the same parameters on every level: SGD at 1e-300 leaves the initialisation, the plain model's
    still = os.path.join(out, "still.safetensors")
    run(exe, "train", "--data", data, "--multilevel", "--level-epochs", "1,1,1", "--opt", "sgd", "--lr", "1e-300",
        "--out", still, "-q")
    init = os.path.join(out, "init.safetensors")
    run(plain[1], "train", "--data", data, "--epochs", "1", "--opt", "sgd", "--lr", "1e-300", "--out", init, "-q")
    a, _ = tensors(still)
    b, _ = tensors(init)
    free = [n for n in b if not n.startswith("optimizer.") and n != "k"]
    check(all(np.allclose(a[n], b[n], rtol=1e-15, atol=1e-250) for n in free),
          "three levels of SGD at 1e-300 end at the plain model's initialisation (%s)" % ", ".join(free))
    # k's norm bound is on each level's own grid: the coarser levels' projections may shrink a layer's copy
    scale = [a["k"][l].ravel() / b["k"][l].ravel() for l in range(len(b["k"]))]
    check(all(np.ptp(s) < 1e-14 and 0.5 < s[0] <= 1 + 1e-15 for s in scale),
          "k: each layer's copy the plain model's, scaled by the levels' projections (%s)"
          % ", ".join("%.6f" % s[0] for s in scale))

    # killed at level 2 and resumed: the bits of the run in one go
    H.kill_and_resume(exe, args, once, os.path.join(out, "killed.safetensors"), 2)

    # errors
    def spn_file(name, text):
        path = os.path.join(out, name)
        with open(path, "w") as fh:
            fh.write(text)
        return path
    two_pools = spn_file("two.spn", MODEL.replace("state  y : R[2, 8, 8, 8] = pool2(", "state  y : R[2, 8, 4, 4] = "
                                                  "pool2(pool2(").replace("R[2, 8, 8, 8] = 0", "R[2, 8, 4, 4] = 0")
                         .replace("+ b0));", "+ b0)));"))
    pixel_bias = spn_file("pixel.spn", MODEL.replace("param  b0 : R[2];", "param  b0 : R[2, 8, 16, 16];")
                          .replace("require invariant(D4);", ""))
    target = spn_file("target.spn", """model tg {
    input  x : R[1, 8, 8];
    target t : R[1, 8, 8];
    group  C4 acts on x;
    param  k0 : lift[C4, 1 -> 1, 3];
    output y = gpool(relu(lift(k0, x)));
    loss   mse(y, t);
}
""")
    spirals = os.path.join(ROOT, "examples", "spirals.spn")
    bad = [
        ((spdlc, "build", spirals, "--grid-levels", "2", "-o", exe + "x"), 1,
         "--grid-levels coarsens images, but no C4 or D4 group acts on 'x'"),
        ((spdlc, "build", spn, "--grid-levels", "6", "-o", exe + "x"), 1,
         "the 16x16 grid of 'x' has no level with 32 times fewer points per side"),
        ((spdlc, "build", two_pools, "--grid-levels", "4", "-o", exe + "x"), 1, "pool2 halves the grid, but it is 1 x 1"),
        ((spdlc, "build", two_pools, "--grid-levels", "4", "-o", exe + "x"), 1,
         "level 1 of --grid-levels 4, images 1/8 the size, does not build"),
        ((spdlc, "build", pixel_bias, "--grid-levels", "2", "-o", exe + "x"), 1, "level 1 of --grid-levels 2"),
        ((spdlc, "build", target, "--grid-levels", "2", "-o", exe + "x"), 1,
         "--grid-levels restricts the input images, not the target 't'"),
        ((spdlc, "build", spn, "--grid-levels", "2", "--levels", "2", "-o", exe + "x"), 2,
         "give --levels (coarser in depth) or --grid-levels (coarser images), once"),
        ((spdlc, "check", spn, "--grid-levels", "2"), 2, "--grid-levels is an option of emit and of build"),
        ((spdlc, "build", spn, "--grid-levels", "x", "-o", exe + "x"), 2, "--grid-levels takes a whole number"),
        ((exe, "train", "--data", data, "--multilevel", "--prolong", "linear"), 2,
         "--prolong is for levels in depth"),
        ((exe, "train", "--data", os.path.join(out, "d8.npy"), "--multilevel"), 1, "features"),
    ]
    for argv, code, text in bad:
        r = run(*argv, expect=None)
        check(r.returncode == code and text in r.stderr,
              "%s: exit %d and '%s'" % (" ".join(os.path.basename(str(a)) for a in argv[1:4]), code, text))
        if r.returncode != code or text not in r.stderr:
            print(r.stderr)
    return H.done()


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1]), sys.argv[2]))
