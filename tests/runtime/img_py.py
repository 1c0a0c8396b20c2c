#!/usr/bin/python3
"""img_py.py IN.npy C N CASES - checks libspdl's rotate= and mirror= against
other tools (test_images.c runs it).

IN.npy holds samples of C x N x N images (row-major) and a label column;
CASES lists lines "OUT.npy OPTIONS", OUT.npy the inputs spdl loaded with
IN.npy?OPTIONS. A quarter turn must equal numpy.rot90(numpy.flip(a, -1)
if mirror, k, axes=(-2, -1)) exactly (DESIGN §8); any other angle PyTorch's
grid_sample (bilinear, zeros outside, align_corners=True: -1 and 1 are the
centres of the edge pixels) of the mirrored image at the grid turned back
about the centre, to 1e-12. The grid's own convention is tied to numpy:
at 90 degrees it must reproduce numpy.rot90. Exit 77 when numpy is missing;
without torch the arbitrary angles are compared with nothing but the 90
degree tie (and a line says so).
"""
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(77)
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None


def turned(a, mirror, deg):
    """a: (S, C, N, N); grid_sample of (flipped) a at the source points of a turn by deg."""
    if mirror:
        a = np.flip(a, -1)
    n = a.shape[-1]
    t = np.deg2rad(deg)
    # output pixel (i, j), normalised to [-1, 1]: y = 2i/(n-1) - 1 (rows), x likewise (columns)
    lin = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    y, x = np.meshgrid(lin, lin, indexing="ij")
    sy = np.cos(t) * y + np.sin(t) * x       # the source row
    sx = -np.sin(t) * y + np.cos(t) * x      # the source column
    grid = np.stack([sx, sy], axis=-1)[None].repeat(a.shape[0], axis=0)
    out = F.grid_sample(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(grid), mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out.numpy()


def main():
    inp, c, n, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    raw = np.load(inp)
    imgs = raw[:, :c * n * n].reshape(-1, c, n, n)
    bad = 0
    if torch is not None:
        tie = turned(imgs, False, 90.0)
        if not np.allclose(tie, np.rot90(imgs, 1, axes=(-2, -1)), atol=1e-12, rtol=0):
            print("img_py.py: the grid_sample convention does not reproduce numpy.rot90 at 90 degrees")
            bad += 1
    else:
        print("img_py.py: no torch: arbitrary angles are not compared")
    for line in open(cases):
        out, opts = line.split()
        kv = dict(o.split("=") for o in opts.split("&"))
        mirror = kv.get("mirror") == "1"
        deg = float(kv.get("rotate", "0")) % 360.0
        got = np.load(out).reshape(-1, c, n, n)
        if deg % 90 == 0:
            want = np.rot90(np.flip(imgs, -1) if mirror else imgs, int(deg // 90), axes=(-2, -1))
            ok = np.array_equal(got, want)
        elif torch is not None:
            want = turned(imgs, mirror, deg)
            ok = np.allclose(got, want, atol=1e-12, rtol=0)
        else:
            continue
        if not ok:
            err = np.abs(got - want)
            print("img_py.py: %s differs from numpy/torch: largest difference %.3g at %s"
                  % (opts, err.max(), np.unravel_index(err.argmax(), err.shape)))
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
