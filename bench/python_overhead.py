"""python_overhead.py - what the Python binding costs (DESIGN §10, issue 13).

1. Per-call overhead: M_forward called from C (bench/python_call.c, dlopen
   of the same libM.so) against Model.forward(x), Model.forward(x, out=y)
   and the nn.Module under torch.no_grad(), at batch 1 and 256, for the
   robust digits block and a 75-parameter model (tests/gen/euler_tanh.spn)
   whose C call is short enough for the binding's cost to show.
2. Training: one epoch of the robust digits block over the 1437 training
   digits (batch 64, Adam, the norm projection after every step), with the
   spdl Module (module.loss: M_loss_grad; and module(x) + a PyTorch loss:
   forward, then M_vjp) against the same model written in pure PyTorch
   (projection by torch.linalg.matrix_norm(ord=2)), interleaved rounds.

One thread: OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1 and
torch.set_num_threads(1). Not part of make check. Usage:
    /usr/bin/python3 bench/python_overhead.py [--rounds N]
Writes build/bench/python_overhead.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

if os.environ.get("OPENBLAS_NUM_THREADS") != "1":   # before numpy and torch load their pools
    os.execve(sys.executable, [sys.executable] + sys.argv, common.bench_env())

import argparse  # noqa: E402
import gzip  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=5)
args = ap.parse_args()

ROOT = common.ROOT
OUT = os.path.join(common.BUILD, "python")
os.makedirs(OUT, exist_ok=True)
for spn in ("examples/robust_digits.spn", "tests/gen/euler_tanh.spn"):
    common.run([common.SPDLC, "build", os.path.join(ROOT, spn), "--python", "-o", OUT])
CALL = os.path.join(OUT, "python_call")
common.run([common.CC] + common.OWN_CFLAGS + ["-I" + os.path.join(ROOT, "runtime"),
                                               os.path.join(ROOT, "bench", "python_call.c"), "-o", CALL, "-ldl"])
sys.path[:0] = [os.path.join(ROOT, "python"), OUT]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import euler_tanh  # noqa: E402
import robust_digits  # noqa: E402
import spdl.torch  # noqa: E402

torch.set_num_threads(1)
lines, out, mach = common.start_report()


def blas_libs():
    """The BLAS and LAPACK libraries this process has mapped (torch's)."""
    torch.randn(64, 64, dtype=torch.float64) @ torch.randn(64, 64, dtype=torch.float64)
    torch.linalg.matrix_norm(torch.randn(8, 8, dtype=torch.float64), ord=2)
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if any(k in p for k in ("blas", "lapack", "mkl")):
                libs.add(os.path.realpath(p))
    return sorted(libs)


out("PyTorch %s, NumPy %s, Python %s; BLAS/LAPACK mapped: %s"
    % (torch.__version__, np.__version__, sys.version.split()[0], ", ".join(blas_libs()) or "none"))


def per_call(f, calls):
    """Median over 7 repetitions of the time per call, ns."""
    f()
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        ts.append((time.perf_counter() - t0) / calls * 1e9)
    return statistics.median(ts)


# ---- 1. per-call overhead -------------------------------------------------------------------------
out()
out("## Per-call cost of forward (median of 7 x N calls; ns per call)")
out()
out("| model | batch | C (dlopen, direct) | Model.forward(x) | forward(x, out=y) | Module(x), no_grad | "
    "binding overhead (forward(x) - C) |")
out("|---|---|---|---|---|---|---|")
for mod, name in ((euler_tanh, "euler_tanh"), (robust_digits, "robust_digits")):
    m, module = mod.Model(), mod.Module()
    nin = m.params and m._b.nin
    for batch in (1, 256):
        rng = np.random.default_rng(0)
        x = rng.random((batch, nin))
        y = np.empty((batch, m._b.nout))
        xt = torch.from_numpy(x)
        c_ns = per_call_c = None
        calls = max(20, int(2e5 / (1 + (batch * 300 if name == "euler_tanh" else batch * 8000))))
        c_ns = float(common.run([CALL, os.path.join(OUT, "lib%s.so" % name), name, str(batch), str(calls)])
                     .stdout.split("=")[1])
        f_ns = per_call(lambda: m.forward(x), calls)
        o_ns = per_call(lambda: m.forward(x, out=y), calls)
        with torch.no_grad():
            t_ns = per_call(lambda: module(xt), calls)
        out("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.1f us (%.0f%%) |"
            % (name, batch, c_ns, f_ns, o_ns, t_ns, (f_ns - c_ns) / 1e3, 100 * (f_ns - c_ns) / c_ns))

# ---- 2. a training loop: the spdl Module against pure PyTorch ---------------------------------------------
with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
    raw = np.loadtxt(f, delimiter=",")
perm = np.random.default_rng(0).permutation(len(raw))[360:]
X = torch.from_numpy(np.ascontiguousarray(raw[perm, :64] / 16.0))
C = torch.from_numpy(raw[perm, 64].astype(np.int64))
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, C), batch_size=64, shuffle=True,
                                     generator=torch.Generator().manual_seed(0))


class TorchRobust(torch.nn.Module):
    """examples/robust_digits.spn in PyTorch: 8 Euler steps of du/dt = -K' relu(K u + b), h = 0.5,
    logits 8 (W u + w), cross-entropy; |K_k| <= 1 and |W| <= 1 by rescaling after each step."""

    def __init__(self, src):
        super().__init__()
        for n, p in src.named_parameters():
            self.register_parameter(n, torch.nn.Parameter(p.detach().clone()))

    def logits(self, x):
        u = x
        for k in range(8):
            u = u - 0.5 * torch.relu(u @ self.K[k].T + self.b[k]) @ self.K[k]
        return 8 * (u @ self.W.T + self.w)

    def loss(self, x, c):
        return torch.nn.functional.cross_entropy(self.logits(x), c)

    def project(self):
        with torch.no_grad():
            for P in (self.K, self.W):
                n = torch.linalg.matrix_norm(P, ord=2)
                P.mul_(torch.where(n > 1, 1 / n, torch.ones_like(n)).unsqueeze(-1).unsqueeze(-1))


spdl_mod = robust_digits.Module(seed=0)
pt_mod = TorchRobust(spdl_mod)
xb, cb = X[:64], C[:64]
l_spdl, l_pt = spdl_mod.loss(xb, cb), pt_mod.loss(xb, cb)
l_spdl.backward()
l_pt.backward()
gd = max((getattr(spdl_mod, n).grad - getattr(pt_mod, n).grad).abs().max().item() for n in ("K", "b", "W", "w"))
out()
out("## One training epoch of robust_digits (1437 digits, batch 64, Adam lr 0.01, projection after every step)")
out()
out("same weights, first batch: loss spdl %.15f, PyTorch %.15f (difference %.1e); largest gradient difference %.1e"
    % (l_spdl.item(), l_pt.item(), abs(l_spdl.item() - l_pt.item()), gd))


def epoch(mod, how):
    opt = torch.optim.Adam(mod.parameters(), lr=0.01)
    t0 = time.perf_counter()
    for xb, cb in loader:
        opt.zero_grad()
        if how == "vjp":
            loss = torch.nn.functional.nll_loss(torch.log(mod(xb)), cb)
        else:
            loss = mod.loss(xb, cb)
        loss.backward()
        opt.step()
        mod.project()
    return time.perf_counter() - t0


times = {"spdl loss": [], "spdl vjp": [], "torch": []}
for r in range(args.rounds):   # interleaved
    times["spdl loss"].append(epoch(spdl_mod, "loss"))
    times["spdl vjp"].append(epoch(spdl_mod, "vjp"))
    times["torch"].append(epoch(pt_mod, "loss"))
med = {k: statistics.median(v) for k, v in times.items()}
out()
out("| variant | s per epoch, median of %d (range) | PyTorch / variant |" % args.rounds)
out("|---|---|---|")
labels = {"spdl loss": "spdl Module, module.loss(x, c) (M_loss_grad)",
          "spdl vjp": "spdl Module, nll_loss(log(module(x)), c) (M_forward + M_vjp)",
          "torch": "pure PyTorch (autograd; torch.linalg.matrix_norm projection)"}
for k in ("spdl loss", "spdl vjp", "torch"):
    out("| %s | %.3f (%.3f-%.3f) | %.2fx |" % (labels[k], med[k], min(times[k]), max(times[k]),
                                                med["torch"] / med[k]))
out()
out("load average at end: %s" % common.loadavg())
with open(os.path.join(common.BUILD, "python_overhead.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
