"""Train the certified robust digits block (examples/robust_digits.spn) in an
ordinary PyTorch training loop, then certify it from Python and with the
built program, and check that both give the same certified accuracy.

    examples/python/run.sh            (builds what this needs, then runs it)

or by hand, with DIR holding robust_digits.py + librobust_digits.so (spdlc
build --python) and EXE the program (spdlc build):

    PYTHONPATH=python:DIR /usr/bin/python3 examples/python/robust_digits_torch.py --exe EXE --out OUTDIR
"""
import argparse
import gzip
import os
import re
import subprocess
import time

import numpy as np
import torch

import robust_digits
import spdl
import spdl.torch

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--exe", required=True, help="the program spdlc build made from robust_digits.spn")
ap.add_argument("--out", default=".", help="where the weights and the test CSV go")
ap.add_argument("--epochs", type=int, default=100)
ap.add_argument("--lr", type=float, default=0.01)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--data", default="data/digits.csv.gz")
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)

# The UCI digits: 1797 rows of 64 pixels (0..16) and a label; pixels scaled to [0, 1]
# as builtin:digits does; a fixed 80/20 split.
with gzip.open(args.data, "rt") as f:
    raw = np.loadtxt(f, delimiter=",")
x_all, c_all = raw[:, :64] / 16.0, raw[:, 64].astype(np.int64)
perm = np.random.default_rng(0).permutation(len(raw))
test, train = perm[:360], perm[360:]
xtr, ctr = np.ascontiguousarray(x_all[train]), c_all[train]
xte, cte = np.ascontiguousarray(x_all[test]), c_all[test]
os.makedirs(args.out, exist_ok=True)
test_csv = os.path.join(args.out, "digits_test.csv")
np.savetxt(test_csv, np.column_stack([xte, cte]), delimiter=",", fmt="%.17g")

# The spdl block is an nn.Module; its parameters K, b, W, w are nn.Parameters.
model = robust_digits.Module(seed=0)
print(model)
bounds = {i.name: i.norm_bound for i in model.info}
for name, p in model.named_parameters():
    print("  %-2s %-14s %s" % (name, tuple(p.shape), "" if bounds[name] is None else "norm <= %g" % bounds[name]))
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
spdl.torch.project_after_step(opt, model)   # every step ends inside |K| <= 1, |W| <= 1
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ctr)),
                                     batch_size=args.batch, shuffle=True)
t0 = time.perf_counter()
for epoch in range(args.epochs):
    total, n = 0.0, 0
    for xb, cb in loader:
        opt.zero_grad()
        loss = model.loss(xb, cb)       # the .spn's cross_entropy; gradient from the generated adjoint
        loss.backward()
        opt.step()
        total, n = total + loss.item() * len(cb), n + len(cb)
    sched.step()
    if epoch % 20 == 0 or epoch == args.epochs - 1:
        with torch.no_grad():
            acc = (model(torch.from_numpy(xte)).argmax(1).numpy() == cte).mean()
        print("epoch %3d  loss %.4f  test accuracy %.4f" % (epoch + 1, total / n, acc))
train_s = time.perf_counter() - t0
with torch.no_grad():
    print("largest spectral norms after training: K %.6f (bound 1), W %.6f (bound 1)"
          % (torch.linalg.matrix_norm(model.K, ord=2).max().item(), torch.linalg.matrix_norm(model.W, ord=2).item()))
weights = os.path.join(args.out, "robust_digits_torch.safetensors")
model.save(weights)
print("training: %d epochs in %.1f s; weights in %s" % (args.epochs, train_s, weights))

# Certified accuracy from Python: the certificate's Lipschitz bound and the logit margins.
m = robust_digits.Model.load(weights)
eps = [0.1, 0.3]
py = spdl.certified_accuracy(m, xte, cte, eps)
print("\nfrom Python (L = %g from the certificate):" % m.lipschitz)
print("  clean accuracy                %.4f" % py["clean"])
for e in eps:
    print("  certified accuracy at eps %-4g %.4f" % (e, py[e]))

# ... and from the program spdlc build made.
out = subprocess.run([args.exe, "certify", "--data", test_csv, "--weights", weights, "--eps", ",".join(map(str, eps))],
                     stdout=subprocess.PIPE, text=True, check=True).stdout
print("\nfrom `%s certify`:\n%s" % (os.path.basename(args.exe), "".join("  " + l + "\n" for l in out.splitlines())))
exe = {"clean": float(re.search(r"clean accuracy\s+([0-9.]+)", out).group(1))}
for e in eps:
    exe[e] = float(re.search(r"certified accuracy at eps %g\s+([0-9.]+)" % e, out).group(1))
same = all(round(py[k], 4) == exe[k] for k in exe)
print("Python and the program agree: %s" % ("yes" if same else "NO"))
raise SystemExit(0 if same else 1)
