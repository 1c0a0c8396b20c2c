"""torch_c4.py - bench/conv.py's p4 models in PyTorch (Debian's 1.13, run
with /usr/bin/python3), the same computation as the spdl-generated C of
tests/design/digits_c4.spn and bench/c4_28.spn, written the way GrouPy and
escnn run a group convolution: the filter bank is expanded once per step
(from DESIGN section 8's formulas; our own code), then each layer is one
plain F.conv2d, and gconv' (the transpose) is either one
F.conv_transpose2d with the same bank (VARIANT `transpose`) or one F.conv2d
with the transposed bank, taps flipped (VARIANT `flip`: W'[j, i] =
flip(W[i, j]); the correlation's adjoint is the correlation with the
flipped filter). The two are the same map; which is faster depends on the
dtype and size (float32 conv2d runs oneDNN, conv_transpose2d does not in
1.13), so bench/conv.py times both:

    lift bank   W0[(o, e), i]      = rot90(K0[o, i], e)
    gconv bank  W[(o, e), (i, f)]  = rot90(K[o, i, (f - e) mod 4], e)
                (torch.roll of the group axis by e, then torch.rot90 by e:
                 (R w)[u, v] = w[v, k-1-u], numpy.rot90's counter-clockwise
                 rotation, as DESIGN section 8 fixes it)
    h = relu(conv2d(x, W0, pad 1) + b0)           # (B, C*4, n, n) = R[C, 4, n, n]
    layer l (dt = T / L, T = 1):
        a = relu(conv2d(h, W_l, pad 1) + b_l)
        h = h - dt * conv_transpose2d(a, W_l, pad 1)                  # transpose
        h = h - dt * conv2d(a, flip(W_l^T), pad 1)                     # flip
    p = softmax(W mean_{group, grid}(h) + w);  loss = mean_batch(-log p[c])

Channel order (o, e) of the expanded bank is the memory order of spdl's
regular field R[C, 4, n, n], so no reshuffle is needed. The channel biases
go into conv2d's bias (repeat_interleave over the group axis); every
layer's kernel and bias is its own leaf tensor (a ParameterList); the
scaled update is one torch.sub with alpha.

Subcommands (each prints `key=value` lines):
  time C N L BATCH REPEATS SEC DTYPE VARIANT
                                       forward + loss + backward (DTYPE float64
                                       or float32; VARIANT transpose or flip):
                                       REPEATS repeats of as many steps as fill
                                       SEC seconds (at least one); ms per step,
                                       wall clock and CPU time
  check C N L BATCH PREFIX             loss and gradient at the C harness's
                                       dumped parameters and data (harness
                                       dump), in float64, against the C's
                                       gradient, for both variants; also
                                       PyTorch's own float32 error there
  profile C N L BATCH DTYPE VARIANT    torch.autograd.profiler's self CPU time
                                       of a few steps, by operator
  blas                                 the BLAS library this process has loaded

The caller must set OPENBLAS_NUM_THREADS=1 before this process starts (the
OpenBLAS pool ignores torch.set_num_threads); this script checks it and pins
torch.set_num_threads(1)."""
import os
import sys
import time

if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
    sys.exit("torch_c4.py: run with OPENBLAS_NUM_THREADS=1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
T_END = 1.0
G = 4
KS = 3
NCLASS = 10


def layout(C, L):
    """the parameters in declaration order: (name, layers, shape of one copy)"""
    return [("k0", 1, (C, 1, KS, KS)), ("b0", 1, (C,)), ("k", L, (C, C, G, KS, KS)), ("b", L, (C,)),
            ("W", 1, (NCLASS, C)), ("w", 1, (NCLASS,))]


def lift_bank(K0):
    """(C, cin, k, k) -> (C*4, cin, k, k): W0[(o, e), i] = R^e K0[o, i]"""
    co, ci, k, _ = K0.shape
    return torch.stack([torch.rot90(K0, e, dims=(2, 3)) for e in range(G)], dim=1).reshape(co * G, ci, k, k)


def gconv_bank(K):
    """(C, cin, 4, k, k) -> (C*4, cin*4, k, k): W[(o, e), (i, f)] = R^e K[o, i, (f - e) mod 4]"""
    co, ci, g, k, _ = K.shape
    return torch.stack([torch.rot90(torch.roll(K, e, dims=2), e, dims=(3, 4)) for e in range(g)],
                       dim=1).reshape(co * g, ci * g, k, k)


class P4:
    def __init__(self, C, n, L, dtype, theta=None, seed=1, variant="transpose"):
        if variant not in ("transpose", "flip"):
            raise ValueError("variant must be transpose or flip")
        self.C, self.n, self.L, self.dt, self.variant = C, n, L, T_END / L, variant
        sizes = [(name, layers, shape, int(np.prod(shape))) for name, layers, shape in layout(C, L)]
        total = sum(layers * size for _, layers, _, size in sizes)
        if theta is None:
            g = torch.Generator().manual_seed(seed)
            theta = torch.randn(total, generator=g, dtype=torch.float64) * 0.2
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.numel() != total:
            raise ValueError("theta has %d numbers, the model %d" % (theta.numel(), total))
        o = 0
        self.p = {}
        for name, layers, shape, size in sizes:
            copies = []
            for _ in range(layers):
                copies.append(theta[o:o + size].reshape(shape).to(dtype).clone().requires_grad_())
                o += size
            self.p[name] = copies
        self.params = [t for name, _, _, _ in sizes for t in self.p[name]]

    def loss(self, x, c):
        p = self.p
        h = F.relu(F.conv2d(x, lift_bank(p["k0"][0]), p["b0"][0].repeat_interleave(G), padding=KS // 2))
        for K, b in zip(p["k"], p["b"]):
            W = gconv_bank(K)
            a = F.relu(F.conv2d(h, W, b.repeat_interleave(G), padding=KS // 2))
            if self.variant == "transpose":
                t = F.conv_transpose2d(a, W, padding=KS // 2)
            else:
                t = F.conv2d(a, W.transpose(0, 1).flip(2, 3), padding=KS // 2)
            h = torch.sub(h, t, alpha=self.dt)
        feat = h.reshape(h.shape[0], self.C, -1).mean(dim=2)       # gpool, then mean_space
        logits = torch.addmm(p["w"][0], feat, p["W"][0].t())
        return F.cross_entropy(logits, c)

    def step(self, x, c):
        for t in self.params:
            t.grad = None
        L = self.loss(x, c)
        L.backward()
        return L

    def grad_vector(self):
        return torch.cat([t.grad.reshape(-1).to(torch.float64) for t in self.params])


def data(B, n, dtype):
    g = torch.Generator().manual_seed(42)
    x = torch.rand(B, 1, n, n, generator=g, dtype=torch.float64).to(dtype)
    c = torch.arange(B) % NCLASS
    return x, c


def cmd_time(C, n, L, B, repeats, sec, dtype, variant):
    m = P4(C, n, L, dtype, variant=variant)
    x, c = data(B, n, dtype)
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < 0.25 * sec:
        m.step(x, c)
        calls += 1
    per = (time.perf_counter() - t0) / calls
    k = max(1, int(sec / per + 0.999))
    ms, cpu = [], []
    for _ in range(repeats):
        a, b = time.perf_counter(), time.process_time()
        for _ in range(k):
            m.step(x, c)
        ms.append(1e3 * (time.perf_counter() - a) / k)
        cpu.append(1e3 * (time.process_time() - b) / k)
    print("torch=%s" % torch.__version__)
    print("threads=%d" % torch.get_num_threads())
    print("dtype=%s" % dtype)
    print("variant=%s" % variant)
    print("calls_per_repeat=%d" % k)
    print("repeats_ms=" + ",".join("%.6g" % v for v in ms))
    print("repeats_cpu_ms=" + ",".join("%.6g" % v for v in cpu))
    ms.sort()
    cpu.sort()
    print("median_ms=%.6g\nmin_ms=%.6g\nmax_ms=%.6g" % (ms[len(ms) // 2], ms[0], ms[-1]))
    print("median_cpu_ms=%.6g" % cpu[len(cpu) // 2])


def read_params(path):
    rows = []
    with open(path) as f:
        for line in f:
            v = line.split()
            rank = int(v[4])
            rows.append((v[0], int(v[1]), int(v[2]), int(v[3]), tuple(int(s) for s in v[5:5 + rank])))
    return rows


def cmd_check(C, n, L, B, prefix):
    """the C's parameter table must be the layout this model reads; then the
    loss and gradient in float64 (and float32) at the C's theta and data"""
    table = read_params(prefix + ".params")
    o = 0
    want = []
    for name, layers, shape in layout(C, L):
        size = int(np.prod(shape))
        want.append((name, o, layers * size, layers, shape))
        o += layers * size
    if table != want:
        sys.exit("torch_c4.py: the C's parameter table %s is not the layout %s" % (table, want))
    theta = np.fromfile(prefix + ".theta", dtype=np.float64)
    x = torch.from_numpy(np.fromfile(prefix + ".x", dtype=np.float64).reshape(B, 1, n, n))
    c = torch.from_numpy(np.fromfile(prefix + ".target", dtype=np.float64).astype(np.int64))
    gc = np.fromfile(prefix + ".grad", dtype=np.float64)
    m = P4(C, n, L, torch.float64, theta=theta)
    Lt = m.step(x, c)
    gt = m.grad_vector().numpy()
    scale = np.max(np.abs(gt))
    print("loss=%.17g" % Lt.item())
    print("grad_max_abs=%.6g" % scale)
    print("grad_rel_err=%.3g" % (np.max(np.abs(gt - gc)) / scale))
    # the worst parameter, each measured against its own largest entry
    worst, wname = 0.0, "-"
    for name, off, size, _, _ in table:
        s = np.max(np.abs(gt[off:off + size]))
        e = np.max(np.abs(gt[off:off + size] - gc[off:off + size])) / (s if s > 0 else 1.0)
        if e >= worst:
            worst, wname = e, name
    print("grad_param_rel_err=%.3g" % worst)
    print("grad_param_worst=%s" % wname)
    # the other variant in float64 (against the C too), and float32's own error
    mf = P4(C, n, L, torch.float64, theta=theta, variant="flip")
    Lf = mf.step(x, c)
    gf = mf.grad_vector().numpy()
    print("loss_flip=%.17g" % Lf.item())
    print("grad_flip_rel_err=%.3g" % (np.max(np.abs(gf - gc)) / scale))
    m32 = P4(C, n, L, torch.float32, theta=theta)
    L32 = m32.step(x.to(torch.float32), c)
    g32 = m32.grad_vector().numpy()
    print("loss32=%.9g" % L32.item())
    print("grad32_rel_err=%.3g" % (np.max(np.abs(gt - g32)) / scale))


def cmd_profile(C, n, L, B, dtype, variant, steps=3):
    m = P4(C, n, L, dtype, variant=variant)
    x, c = data(B, n, dtype)
    m.step(x, c)
    with torch.autograd.profiler.profile() as prof:
        for _ in range(steps):
            m.step(x, c)
    tot = 0.0
    rows = []
    for ev in prof.key_averages():
        rows.append((ev.self_cpu_time_total, ev.key))
        tot += ev.self_cpu_time_total
    rows.sort(reverse=True)
    for t, key in rows[:12]:
        print("op %s=%.4f" % (key, t / tot if tot else 0.0))
    print("ms_per_step=%.6g" % (tot / steps * 1e-3))


def cmd_blas():
    """the BLAS shared object this process maps once a product has run (and
    one float32 conv2d, so that oneDNN, when ONEDNN_VERBOSE=1, says which
    instruction set its kernels use)"""
    a = torch.ones(64, 64, dtype=torch.float64)
    (a @ a).sum().item()
    F.conv2d(torch.ones(16, 8, 8, 8), torch.ones(8, 8, 3, 3), padding=1).sum().item()
    sys.stdout.flush()
    seen = []
    with open("/proc/self/maps") as f:
        for line in f:
            v = line.split()
            if len(v) >= 6 and ("blas" in v[5].lower()) and v[5] not in seen:
                seen.append(v[5])
    for i, path in enumerate(seen):
        print("blas%d=%s" % (i, path))
        print("blas%d_real=%s" % (i, os.path.realpath(path)))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    dt = {"float64": torch.float64, "float32": torch.float32}
    if cmd == "time":
        cmd_time(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), float(a[5]), dt[a[6]], a[7])
    elif cmd == "check":
        cmd_check(int(a[0]), int(a[1]), int(a[2]), int(a[3]), a[4])
    elif cmd == "profile":
        cmd_profile(int(a[0]), int(a[1]), int(a[2]), int(a[3]), dt[a[4]], a[5])
    elif cmd == "blas":
        cmd_blas()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
