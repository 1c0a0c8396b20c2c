"""torch_spirals.py - the bench's spirals model in PyTorch (Debian's 1.13,
run with /usr/bin/python3), the same computation as the spdl-generated C:

    state y = pad(x, w), z = 0;  h = T / N, T = 5
    layer k (0-based; kick-drift-kick, DESIGN section 3):
        y += h/2 tanh(K_k z + b_k);  z -= h tanh(K_k' y + b_k);  y += h/2 tanh(K_k z + b_k)
    p = softmax(W y + w);  loss = mean_batch(-log p[c]) + 1e-4 smooth(K, b)
    smooth(K, b) = sum_k (|K_{k+1} - K_k|^2 + |b_{k+1} - b_k|^2) / h

Arrays are batch-major, so K z of every sample is z @ K^T. Every layer's
K_k and b_k is its own leaf tensor, as a PyTorch model would hold them in
a ParameterList (indexing one (N, w, w) tensor would make each backward
select allocate a full-size gradient). The code is written as a careful
PyTorch user would, to keep the per-operation overhead down: addmm for
product plus bias, add/sub with alpha for the scaled update (3 operations
per half step), F.cross_entropy (log-softmax + NLL, stable), and the
regulariser on stacked parameters (a handful of operations, not a loop).

Subcommands (each prints `key=value` lines):
  time W N BATCH REPEATS SEC [DTYPE]
                                  forward + loss + backward: REPEATS repeats of
                                  as many steps as fill SEC seconds; ms per
                                  step (wall clock and process CPU time);
                                  DTYPE float64 (default) or float32
  check W N BATCH PREFIX [DTYPE]  loss and gradient at the C harness's dumped
                                  parameters and data (harness dump), against
                                  the C's gradient: relative errors (in DTYPE;
                                  the dump is always doubles)
  mem W N BATCH                   one training step in this fresh process:
                                  resident set before it, and the peak after
                                  (VmHWM and ru_maxrss)

The caller must set OPENBLAS_NUM_THREADS=1 before this process starts (the
OpenBLAS pool ignores torch.set_num_threads); this script checks it and
pins torch.set_num_threads(1). With TORCH_THREADS=default (bench/threads.py)
it leaves PyTorch's and OpenBLAS's thread counts as they start (every core),
and with TORCH_THREADS=N it sets torch.set_num_threads(N)."""
import os
import resource
import sys
import time

THREADS = os.environ.get("TORCH_THREADS", "1")
if THREADS == "1" and os.environ.get("OPENBLAS_NUM_THREADS") != "1":
    sys.exit("torch_spirals.py: run with OPENBLAS_NUM_THREADS=1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

if THREADS != "default":
    torch.set_num_threads(int(THREADS))
T_END = 5.0


def status_kib(key):
    """VmRSS (resident now) or VmHWM (peak resident set of this process image)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class Spirals:
    def __init__(self, w, n, theta=None, seed=1, dtype=torch.float64):
        self.w, self.n, self.h, self.dtype = w, n, T_END / n, dtype
        if theta is None:
            g = torch.Generator().manual_seed(seed)
            theta = torch.randn(n * w * w + n * w + 2 * w + 2, generator=g, dtype=torch.float64) / w ** 0.5
        theta = torch.as_tensor(theta, dtype=torch.float64).to(dtype)
        o = 0
        self.K = []
        for _ in range(n):
            self.K.append(theta[o:o + w * w].reshape(w, w).clone().requires_grad_())
            o += w * w
        self.b = []
        for _ in range(n):
            self.b.append(theta[o:o + w].clone().requires_grad_())
            o += w
        self.W = theta[o:o + 2 * w].reshape(2, w).clone().requires_grad_()
        o += 2 * w
        self.wv = theta[o:o + 2].clone().requires_grad_()
        self.params = self.K + self.b + [self.W, self.wv]

    def loss(self, x, c):
        B, w, h = x.shape[0], self.w, self.h
        y = torch.nn.functional.pad(x, (0, w - 2))
        z = torch.zeros(B, w, dtype=self.dtype)
        for K, b in zip(self.K, self.b):
            y = torch.add(y, torch.tanh(torch.addmm(b, z, K.t())), alpha=h / 2)
            z = torch.sub(z, torch.tanh(torch.addmm(b, y, K)), alpha=h)
            y = torch.add(y, torch.tanh(torch.addmm(b, z, K.t())), alpha=h / 2)
        logits = torch.addmm(self.wv, y, self.W.t())
        ce = torch.nn.functional.cross_entropy(logits, c)
        Ks, bs = torch.stack(self.K), torch.stack(self.b)
        smooth = ((Ks[1:] - Ks[:-1]) ** 2).sum() + ((bs[1:] - bs[:-1]) ** 2).sum()
        return ce + (1e-4 / h) * smooth

    def step(self, x, c):
        for p in self.params:
            p.grad = None
        L = self.loss(x, c)
        L.backward()
        return L

    def grad_vector(self):
        return torch.cat([p.grad.reshape(-1) for p in self.params])


def data(B, dtype=torch.float64):
    g = torch.Generator().manual_seed(42)
    x = 2 * torch.rand(B, 2, generator=g, dtype=torch.float64) - 1
    c = torch.arange(B) % 2
    return x.to(dtype), c


def cmd_time(w, n, B, repeats, sec, dtype):
    m = Spirals(w, n, dtype=dtype)
    x, c = data(B, dtype)
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
    print("calls_per_repeat=%d" % k)
    print("repeats_ms=" + ",".join("%.6g" % v for v in ms))
    print("repeats_cpu_ms=" + ",".join("%.6g" % v for v in cpu))
    ms.sort()
    cpu.sort()
    print("median_ms=%.6g\nmin_ms=%.6g\nmax_ms=%.6g" % (ms[len(ms) // 2], ms[0], ms[-1]))
    print("median_cpu_ms=%.6g" % cpu[len(cpu) // 2])


def cmd_check(w, n, B, prefix, dtype):
    theta = np.fromfile(prefix + ".theta", dtype=np.float64)
    x = torch.from_numpy(np.fromfile(prefix + ".x", dtype=np.float64).reshape(B, 2)).to(dtype)
    c = torch.from_numpy(np.fromfile(prefix + ".target", dtype=np.float64).astype(np.int64))
    gc = np.fromfile(prefix + ".grad", dtype=np.float64)
    m = Spirals(w, n, theta=theta, dtype=dtype)
    L = m.step(x, c)
    gt = m.grad_vector().double().numpy()
    scale = np.max(np.abs(gt))
    rel = np.max(np.abs(gt - gc)) / scale
    print("loss=%.17g" % L.item())
    print("grad_max_abs=%.6g" % scale)
    print("grad_rel_err=%.3g" % rel)


def cmd_mem(w, n, B):
    m = Spirals(w, n)
    x, c = data(B)
    before = status_kib("VmRSS")
    L = m.step(x, c)
    print("loss=%.17g" % L.item())
    print("rss_before_kib=%d" % before)
    print("hwm_kib=%d" % status_kib("VmHWM"))
    print("maxrss_kib=%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def dtype_of(rest):
    return {"float64": torch.float64, "float32": torch.float32}[rest[0] if rest else "float64"]


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "time":
        cmd_time(int(args[0]), int(args[1]), int(args[2]), int(args[3]), float(args[4]), dtype_of(args[5:]))
    elif cmd == "check":
        cmd_check(int(args[0]), int(args[1]), int(args[2]), args[3], dtype_of(args[4:]))
    elif cmd == "mem":
        cmd_mem(int(args[0]), int(args[1]), int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
