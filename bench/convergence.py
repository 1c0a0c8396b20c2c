#!/usr/bin/env python3
"""convergence.py SPDLC OUTDIR [options]: convergence in depth (issue 14,
item 2; DESIGN section 11). Thorpe & van Gennip (2018): with an H1-in-time
regulariser, minimisers of the N-layer problems converge as N grows. This
trains the DESIGN spirals model (examples/spirals.spn: Verlet Hamiltonian
network, width 8, T = 5) with the penalty COEF * smooth(K, b) at N = 4, 8,
..., 256 layers, two ways:

  (a) independent: `EXE_N train` from the same seed at every N;
  (b) nested iteration: `spdlc build --levels k` at N = 4 * 2^(k-1) and
      `EXE train --multilevel --level-epochs E,...,E --prolong linear`, so
      theta^N starts from P theta^(N/2). One program per N (k = 2..7): the
      first k-1 levels of the k-level run repeat, bit for bit, the (k-1)-level
      run (checked here on the logs), and the last level is theta^N. At N = 4
      (one level) (b) is (a): level 1 of a multilevel run is the plain run.

Each N gets the same EPOCHS (per run in (a), per level in (b)), Adam at LR,
cosine schedule, batch 64, seed 1, --threads 1, the 1000 training samples of
builtin:spirals?seed=1 (no validation split). Reported per N: J_N (the
training loss, `eval` on the training set at the final weights), its data
part (`eval` by a twin program with the penalty removed) and penalty part
(J_N minus data; checked against COEF * smooth computed here from the
weights), test loss and accuracy on builtin:spirals?seed=2 (a fresh draw),
and |theta^N - P theta^(N/2)| / |theta^N| over the per-layer parameters (K,
b) read from the safetensors files, for P = copies (layer k to 2k and 2k+1)
and P = linear in time (the runtime's --prolong linear), and for (a) also the
smallest distance over the model's exact symmetries (signed permutations of
state coordinates 3..8, which pad(x, 8) leaves zero: K -> Q K Q', b -> Q b,
W -> W Q'; 6! * 2^6 = 46080 of them), since independent runs may land on
equivalent minimisers. For (b) also J_N(P theta^(N/2)), the loss the level
starts from, and the aligned distance between the (a) and (b) minimisers.

Stability: Verlet with norm(K) <= 4 has h rho = 20 / N, >= 2 at N = 4 and 8,
so `require stable` fails there (and a --levels build fails on those
levels). The model here says `require invertible;` only, at every N, so the
same text is trained at every N; `stable` changes nothing but the source hash
in the generated C (checked here at N = 32 with `spdlc emit`). The norm bound
and interval are kept: they are the model under study.

Outputs in OUTDIR: convergence.md (tables, also printed), convergence.csv,
convergence.gp and convergence.png (gnuplot, pngcairo or png terminal), and
the programs, weights and logs under OUTDIR/runs.

Usage (what `make bench-convergence` runs):
    /usr/bin/python3 bench/convergence.py build/spdlc build/bench/convergence
Options: --epochs E (600), --lr X (0.03), --coef C (1e-3), --jobs J (2: runs
at once; results do not depend on it), --max-layers N (256). Needs numpy and
gnuplot. 4 to 7 minutes (245 s, 406 s) on 2 cores shared with another job;
deterministic: every figure but the runtime is the same on every run.

Choices (tried at N = 32 and 128 before fixing them): COEF 1e-3 makes the
penalty 40-90 % of J; at 3e-3 and 1e-2 (lr 0.01, 200 epochs) independent
training at N = 32 stayed on a plateau, J 0.43 and 0.62 (accuracy 0.83 and
0.65), and at N = 128 even 1e-3 did. LR 0.03, since at 0.01 (300 epochs)
the independent runs ended at J 0.43 (accuracy 0.77) at N = 64 and on the
plateau J 0.62 (0.65) at N = 128 and 256; 600 epochs, since at 300 the independent N = 256 run ends at J =
0.13 (at 600: 0.021)."""
import argparse
import concurrent.futures
import csv
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
from spdl import safetensors  # noqa: E402
T = 5.0
TRAIN = "builtin:spirals?seed=1"
TEST = "builtin:spirals?seed=2"
PER_LAYER = ("K", "b")


# ---------------------------------------------------------------- safetensors
def st_read(path):
    """(metadata, {name: float64 array}) of a safetensors file (the repository's reader)."""
    tensors, meta = safetensors.read(path)
    return dict(meta), dict(tensors)


def st_write(path, meta, tensors):
    """Weights only (no optimiser state), in the given order."""
    safetensors.write(path, tensors, list(meta.items()))


# ---------------------------------------------------------------- the maths
def prolong(a, kind):
    """N/2 layers -> N along axis 0, as runtime/levels.c does it."""
    if kind == "constant":
        return np.repeat(a, 2, axis=0)
    before = np.concatenate([a[:1], a[:-1]])
    after = np.concatenate([a[1:], a[-1:]])
    out = np.empty((2 * a.shape[0],) + a.shape[1:])
    out[0::2] = 0.75 * a + 0.25 * before
    out[1::2] = 0.75 * a + 0.25 * after
    out[0], out[-1] = a[0], a[-1]          # the end layers keep their own copy
    return out


def smooth(w, n):
    """smooth(K, b) of DESIGN section 3: sum_k |P_{k+1} - P_k|^2 / h, h = T/N."""
    return sum(float(((w[p][1:] - w[p][:-1]) ** 2).sum()) for p in PER_LAYER) / (T / n)


def norm(w):
    return math.sqrt(sum(float((w[p] ** 2).sum()) for p in PER_LAYER))


def distance(w, v):
    """|w - v| / |w| over the per-layer parameters."""
    return math.sqrt(sum(float(((w[p] - v[p]) ** 2).sum()) for p in PER_LAYER)) / norm(w)


SIGNS = np.array([[1, 1] + list(s) for s in itertools.product((1.0, -1.0), repeat=6)])
I8 = np.arange(8)
PERMS = [[0, 1] + [2 + i for i in p] for p in itertools.permutations(range(6))]


def aligned_distance(w, v):
    """min over signed permutations Q of the coordinates 3..8 of
    |w - Q v| / |w|, (Q v)_K = Q K Q', (Q v)_b = Q b, layer by layer:
    |w - Qv|^2 = |w|^2 + |v|^2 - 2 <w, Qv>, and <w, Qv> = s' M s + m . s
    with M_ij = sum_k K_kij V_k pi(i) pi(j), m_i = sum_k b_ki c_k pi(i), for
    w = (K, b), v = (V, c)."""
    A, a, B, b = w["K"], w["b"], v["K"], v["b"]
    C = np.einsum("kij,kpq->ijpq", A, B)
    c = a.T @ b
    best, arg = -np.inf, None
    for pi in PERMS:
        q = np.array(pi)
        M = C[I8[:, None], I8[None, :], q[:, None], q[None, :]]      # M[i, j] = C[i, j, pi(i), pi(j)]
        m = c[I8, q]
        cross = np.einsum("si,ij,sj->s", SIGNS, M, SIGNS) + SIGNS @ m
        if cross.max() > best:
            best, arg = float(cross.max()), (q, SIGNS[int(cross.argmax())])
    q, sg = arg       # the best Q, applied: (Q v)_K[k, i, j] = s_i s_j V[k, pi(i), pi(j)]
    qv = {"K": B[:, q][:, :, q] * np.outer(sg, sg), "b": b[:, q] * sg}
    return distance(w, qv)


def constant_share(w, v):
    """|the layers' mean of w - v| * sqrt(N) / |w - v|: the part of the
    difference that is the same in every layer (1: a shift constant in time)"""
    n = w["K"].shape[0]
    d = {p: w[p] - v[p] for p in PER_LAYER}
    return math.sqrt(sum(n * float((d[p].mean(axis=0) ** 2).sum()) for p in PER_LAYER)) / \
        math.sqrt(sum(float((d[p] ** 2).sum()) for p in PER_LAYER))


def slope(ns, ys):
    """least-squares slope of log y against log N"""
    x, y = np.log(np.array(ns, float)), np.log(np.array(ys, float))
    return float(np.polyfit(x, y, 1)[0])


# ---------------------------------------------------------------- the runs
def model_text(n, coef):
    with open(os.path.join(ROOT, "examples", "spirals.spn")) as f:
        src = f.read()
    subs = [("in 32 layers", "in %d layers" % n), ("1e-4 * smooth(K, b)", "%s * smooth(K, b)" % coef),
            ("require stable, invertible;", "require invertible;")]
    if coef is None:
        subs[1] = (" + 1e-4 * smooth(K, b)", "")
    for old, new in subs:
        if src.count(old) != 1:
            raise SystemExit("convergence.py: examples/spirals.spn no longer contains %r once" % old)
        src = src.replace(old, new)
    return src


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)
    if p.returncode:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit("convergence.py: failed (%d): %s" % (p.returncode, " ".join(cmd)))
    return p.stdout


def eval_(exe, weights, data):
    out = run([exe, "eval", "--data", data, "--weights", weights, "--threads", "1"])
    loss = float(re.search(r"^loss\s+(\S+)", out, re.M).group(1))
    acc = float(re.search(r"^accuracy\s+(\S+)", out, re.M).group(1))
    return loss, acc


def log_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def check_stable_is_hash_only(spdlc, work, coef):
    """`require stable` changes nothing in the generated C but the hash."""
    texts = []
    for tag, req in (("with", "require stable, invertible;"), ("without", "require invertible;")):
        d = os.path.join(work, "emit_" + tag)
        path = os.path.join(work, "emit_%s.spn" % tag)
        with open(path, "w") as f:
            f.write(model_text(32, coef).replace("require invertible;", req))
        run([spdlc, "emit", path, "-o", d])
        with open(os.path.join(d, "spirals.c")) as f:
            texts.append(re.sub(r"[0-9a-f]{16}", "HASH", re.sub(r"from \S+\.spn", "from F", f.read())))
    return texts[0] == texts[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spdlc")
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--lr", default="0.03")
    ap.add_argument("--coef", default="1e-3")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-layers", type=int, default=256)
    o = ap.parse_args()
    t_start = time.time()
    spdlc, out = os.path.abspath(o.spdlc), os.path.abspath(o.outdir)
    work = os.path.join(out, "runs")
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    ns = [n for n in (4, 8, 16, 32, 64, 128, 256) if n <= o.max_layers]
    levels = {n: k + 1 for k, n in enumerate(ns)}
    coef = float(o.coef)
    E = o.epochs
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, o.jobs))

    stable_ok = check_stable_is_hash_only(spdlc, work, o.coef)

    # programs: plain EXE_N, the penalty-free twin, the k-level program
    def spn(name, text):
        path = os.path.join(work, name + ".spn")
        with open(path, "w") as f:
            f.write(text)
        return path

    builds = []
    for n in ns:
        p = spn("sp%d" % n, model_text(n, o.coef))
        builds.append([spdlc, "build", p, "-o", os.path.join(work, "sp%d" % n)])
        builds.append([spdlc, "build", spn("data%d" % n, model_text(n, None)), "-o", os.path.join(work, "data%d" % n)])
        if levels[n] > 1:
            builds.append([spdlc, "build", p, "--levels", str(levels[n]), "-o", os.path.join(work, "ml%d" % n)])
    builds.sort(key=lambda c: -len(c))  # the multilevel builds first: they take longest
    list(pool.map(run, builds))
    t_built = time.time()

    common = ["--data", TRAIN, "--lr", o.lr, "--schedule", "cosine", "--seed", "1", "--threads", "1",
              "--val", "0", "-q"]
    jobs = []
    for n in ns:
        jobs.append((n * E, [os.path.join(work, "sp%d" % n), "train", *common, "--epochs", str(E),
                             "--out", os.path.join(work, "ind%d.safetensors" % n)]))
        if levels[n] > 1:
            jobs.append((2 * n * E, [os.path.join(work, "ml%d" % n), "train", *common, "--multilevel",
                                     "--level-epochs", ",".join([str(E)] * levels[n]), "--prolong", "linear",
                                     "--out", os.path.join(work, "nest%d.safetensors" % n)]))
    jobs.sort(key=lambda j: -j[0])  # longest first
    list(pool.map(lambda j: run(j[1]), jobs))
    t_trained = time.time()

    # nested runs: level j of the k-level run is the (j)-level run's, bit for bit
    nested_consistent = True
    for n in ns[2:]:
        a = [r["loss"] for r in log_rows(os.path.join(work, "nest%d.log.csv" % n))]
        b = [r["loss"] for r in log_rows(os.path.join(work, "nest%d.log.csv" % (n // 2)))]
        nested_consistent &= a[:len(b)] == b
    if len(ns) > 1:
        a = [r["loss"] for r in log_rows(os.path.join(work, "nest%d.log.csv" % ns[1]))][:E]
        nested_consistent &= a == [r["loss"] for r in log_rows(os.path.join(work, "ind%d.log.csv" % ns[0]))]

    W, meta = {}, {}
    for n in ns:
        meta[n], W["a", n] = st_read(os.path.join(work, "ind%d.safetensors" % n))
        W["b", n] = st_read(os.path.join(work, "nest%d.safetensors" % n))[1] if levels[n] > 1 else W["a", n]

    # evaluations: J_N, data part (twin), test; J_N of the prolonged coarse weights
    def weights_only(path, w, n):
        m = {k: meta[n][k] for k in ("format", "model", "source_hash")}
        st_write(path, m, [(p, w[p]) for p in ("K", "b", "W", "w")])
        return path

    evals = {}
    tasks = []
    for way in "ab":
        for n in ns:
            f = weights_only(os.path.join(work, "eval_%s%d.safetensors" % (way, n)), W[way, n], n)
            tasks.append(((way, n, "J"), os.path.join(work, "sp%d" % n), f, TRAIN))
            tasks.append(((way, n, "test"), os.path.join(work, "sp%d" % n), f, TEST))
            tasks.append(((way, n, "data"), os.path.join(work, "data%d" % n), f, TRAIN))  # warns: other source
            if n > ns[0]:
                c = W[way, n // 2]
                pw = {p: (prolong(c[p], "linear") if p in PER_LAYER else c[p]) for p in c}
                f = weights_only(os.path.join(work, "prol_%s%d.safetensors" % (way, n)), pw, n)
                tasks.append(((way, n, "start"), os.path.join(work, "sp%d" % n), f, TRAIN))
    for key, res in zip([t[0] for t in tasks], pool.map(lambda t: eval_(*t[1:]), tasks)):
        evals[key] = res

    rows = []
    worst_penalty = 0.0
    for way in "ab":
        for n in ns:
            w = W[way, n]
            J, train_acc = evals[way, n, "J"]
            data = evals[way, n, "data"][0]
            s = smooth(w, n)
            worst_penalty = max(worst_penalty, abs((J - data) - coef * s) / max(coef * s, 1e-300))
            test_loss, test_acc = evals[way, n, "test"]
            r = {"way": way, "N": n, "h": T / n, "J": J, "data": data, "penalty": J - data, "smooth": s,
                 "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
                 "log_loss": float(log_rows(os.path.join(work, ("ind%d" if way == "a" or levels[n] == 1 else
                                                               "nest%d") % n + ".log.csv"))[-1]["loss"]),
                 "norm": norm(w)}
            if n > ns[0]:
                c = W[way, n // 2]
                r["d_const"] = distance(w, {p: prolong(c[p], "constant") for p in PER_LAYER})
                r["d_lin"] = distance(w, {p: prolong(c[p], "linear") for p in PER_LAYER})
                r["d_lin_aligned"] = aligned_distance(w, {p: prolong(c[p], "linear") for p in PER_LAYER})
                r["const_share"] = constant_share(w, {p: prolong(c[p], "linear") for p in PER_LAYER})
                r["J_start"] = evals[way, n, "start"][0]
                r["gap"] = r["J_start"] - evals[way, n // 2, "J"][0]      # J_N(P theta^(N/2)) - J_(N/2)(theta^(N/2))
                r["dJ"] = J - evals[way, n // 2, "J"][0]
            if way == "b":
                r["d_ab_aligned"] = aligned_distance(w, W["a", n])
            rows.append(r)
    t_end = time.time()

    # ---------------------------------------------------------------- report
    fields = ["way", "N", "h", "J", "data", "penalty", "smooth", "log_loss", "train_acc", "test_loss", "test_acc",
              "norm", "d_const", "d_lin", "d_lin_aligned", "J_start", "d_ab_aligned", "gap", "dJ", "const_share"]
    csv_path = os.path.join(out, "convergence.csv")
    with open(csv_path, "w") as f:
        wr = csv.writer(f)
        wr.writerow(fields)
        for r in rows:
            wr.writerow([r.get(k, "") if isinstance(r.get(k, ""), str) else "%.10g" % r[k] for k in fields])
    anchor = (next((r["d_const"] for r in rows if r["way"] == "b" and r["N"] >= 32), 0.3) * 0.5,
              next((abs(r["gap"]) for r in rows if r["way"] == "b" and r["N"] >= 64), 1e-3) * 0.3)

    def g(r, k, fmt="%.4g"):
        return fmt % r[k] if k in r else "-"

    A = [r for r in rows if r["way"] == "a"]
    B = [r for r in rows if r["way"] == "b"]
    tail = [n for n in ns if n >= 32]
    rate = {}
    for way, rs in (("a", A), ("b", B)):
        for k in ("d_const", "d_lin", "d_lin_aligned", "gap", "dJ"):
            pts = [(r["N"], abs(r[k])) for r in rs if k in r and r["N"] in tail]
            rate[way, k] = slope(*zip(*pts)) if len(pts) >= 2 else float("nan")
    L = []
    L.append("Spirals model (width 8, Verlet, T = 5, norm(K) <= 4, `require invertible` only), loss "
             "cross_entropy + %s * smooth(K, b); Adam, lr %s, cosine, batch 64, seed 1, %d epochs per run (a) "
             "or per level (b), --threads 1; train: `%s` (1000), test: `%s` (1000)." % (o.coef, o.lr, E, TRAIN, TEST))
    L.append("")
    L.append("J = training loss (eval on the training set); data = its cross-entropy (penalty-free twin program); "
             "penalty = J - data; d = |theta^N - P theta^(N/2)| / |theta^N| over K and b; P = copies (const) or "
             "linear in time (lin); aligned = the least d over the 46080 exact symmetries.")
    L.append("")
    L.append("(a) independent training at each N")
    L.append("")
    L.append("| N | h | J | data | penalty | test loss | test acc | d const | d lin | d lin aligned |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in A:
        L.append("| %d | %.4g | %.4g | %.4g | %.4g | %.4g | %.3f | %s | %s | %s |" % (
            r["N"], r["h"], r["J"], r["data"], r["penalty"], r["test_loss"], r["test_acc"], g(r, "d_const"),
            g(r, "d_lin"), g(r, "d_lin_aligned")))
    L.append("")
    L.append("(b) nested iteration (`--levels k`, `--multilevel --prolong linear`; N = 4 is (a)'s run)")
    L.append("")
    L.append("| N | h | J | data | penalty | test loss | test acc | J_N(P theta^(N/2)) | minus J_(N/2) | d const | "
             "d lin | constant in time | d to (a), aligned |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in B:
        L.append("| %d | %.4g | %.4g | %.4g | %.4g | %.4g | %.3f | %s | %s | %s | %s | %s | %s |" % (
            r["N"], r["h"], r["J"], r["data"], r["penalty"], r["test_loss"], r["test_acc"], g(r, "J_start"),
            g(r, "gap", "%.2g"), g(r, "d_const"), g(r, "d_lin"), g(r, "const_share", "%.2f"), g(r, "d_ab_aligned")))
    L.append("")
    L.append("In (b), P = linear is the level's starting point, so d lin is how far the level's training moved "
             "theta^N; J_N(P theta^(N/2)) is the loss it started from, and 'minus J_(N/2)' is its difference from "
             "the coarse level's final loss (the consistency of the discretisation, with no training in between). "
             "'constant in time' is |mean over layers of (theta^N - P theta^(N/2))| sqrt(N) / |theta^N - P theta^(N/2)| "
             "(P linear): 1 when the difference is the same shift in every layer, as a discretisation error "
             "is not.")
    L.append("")
    L.append("Observed rates (least-squares slope of log |.| against log N, N = %s; O(h) is -1, O(h^2) is -2): "
             "d: (a) const %.2f, lin %.2f, lin aligned %.2f; (b) const %.2f, lin %.2f. "
             "|J_N - J_(N/2)|: (a) %.2f, (b) %.2f. |J_N(P theta^(N/2)) - J_(N/2)|: (a) %.2f, (b) %.2f." % (
                 ", ".join(map(str, tail)), rate["a", "d_const"], rate["a", "d_lin"], rate["a", "d_lin_aligned"],
                 rate["b", "d_const"], rate["b", "d_lin"], rate["a", "dJ"], rate["b", "dJ"], rate["a", "gap"],
                 rate["b", "gap"]))
    L.append("")
    L.append("Checks: penalty = J - data agrees with %s * smooth(K, b) computed from the weights to %.1e "
             "(relative, worst N); `require stable` changes only the source hash of the generated C: %s; level "
             "j of every k-level run repeats the j-level run's log bit for bit (and level 1 the plain N = %d "
             "run): %s." % (o.coef, worst_penalty, "yes" if stable_ok else "NO", ns[0],
                            "yes" if nested_consistent else "NO"))
    L.append("")
    L.append("Runtime: %.0f s (builds %.0f s, training %.0f s, evaluation %.0f s), %d job(s) at once." % (
        t_end - t_start, t_built - t_start, t_trained - t_built, t_end - t_trained, o.jobs))
    text = "\n".join(L)
    print(text)
    with open(os.path.join(out, "convergence.md"), "w") as f:
        f.write(text + "\n")
    plot(out, csv_path, ns, o, anchor)


def plot(out, csv_path, ns, o, anchor):
    if not shutil.which("gnuplot"):
        raise SystemExit("convergence.py: gnuplot not found (apt-get install -y gnuplot-nox)")
    hi = max(ns)
    with open(csv_path) as f:
        table = list(csv.DictReader(f))

    def span(keys):
        v = [abs(float(r[k])) for r in table for k in keys if r[k] not in ("", "nan") and float(r[k]) != 0]
        return "[%g:%g]" % (min(v) / 10, max(v) * 3) if v else "[*:*]"
    terms = run(["gnuplot", "-e", "set print '-'; print GPVAL_TERMINALS"])
    term = "pngcairo size 1400,1000 font 'sans,10'" if "pngcairo" in terms.split() else "png size 1400,1000"
    # columns of convergence.csv: 1 way, 2 N, 4 J, 5 data, 6 penalty, 11 test_acc,
    # 13 d_const, 14 d_lin, 15 d_lin_aligned, 18 gap, 19 dJ
    gp = """# convergence.gp: made by bench/convergence.py; plots convergence.csv
set terminal %(term)s
set output '%(png)s'
set datafile separator ','
set multiplot layout 2,2 title 'spirals, Verlet, T = 5, cross-entropy + %(coef)s smooth(K,b); %(E)d epochs per run (a) or per level (b), Adam lr %(lr)s cosine; (a) independent, (b) nested (--multilevel --prolong linear)'
a(w) = strcol(1) eq w
set logscale x 2
set xrange [3:%(xhi)d]
set xlabel 'layers N'
set grid
set key top right font ',9'
set logscale y
set format y '%%g'
set yrange %(yr1)s
set key bottom left opaque box
set title 'relative distance |theta^N - P theta^{N/2}| / |theta^N| of the per-layer K, b'
f1(x) = %(anchor)g * 32 / x
f2(x) = %(anchor)g * (32 / x)**2
g2(x) = %(anchor2)g * (64 / x)**2
g3(x) = %(anchor2)g * (64 / x)**3
plot '%(csv)s' every ::1 using 2:(a('a') && strcol(13) ne '' ? $13 : 1/0) with linespoints lw 2 pt 7 lc 1 title '(a) P = copies', \\
     '' every ::1 using 2:(a('a') && strcol(14) ne '' ? $14 : 1/0) with linespoints lw 1 pt 5 lc 1 dt 2 title '(a) P = linear', \\
     '' every ::1 using 2:(a('a') && strcol(15) ne '' ? $15 : 1/0) with linespoints lw 1 pt 9 lc 4 title '(a) P = linear, least over the symmetries', \\
     '' every ::1 using 2:(a('b') && strcol(13) ne '' ? $13 : 1/0) with linespoints lw 2 pt 6 lc 2 title '(b) P = copies', \\
     '' every ::1 using 2:(a('b') && strcol(14) ne '' ? $14 : 1/0) with linespoints lw 1 pt 4 lc 2 dt 2 title '(b) P = linear (the start of the level)', \\
     f1(x) with lines dt 3 lw 1 lc rgb 'gray30' title 'slope -1: O(h)', f2(x) with lines dt 4 lw 1 lc rgb 'gray60' title 'slope -2: O(h^2)'
set yrange [*:*]
set key top right noopaque nobox
set title 'training loss J_N = data + penalty (at the final weights)'
plot '%(csv)s' every ::1 using 2:(a('a') ? $4 : 1/0) with linespoints lw 2 pt 7 lc 1 title '(a) J_N', \\
     '' every ::1 using 2:(a('a') ? $5 : 1/0) with linespoints lw 1 pt 7 dt 2 lc 1 title '(a) data (cross-entropy)', \\
     '' every ::1 using 2:(a('a') ? $6 : 1/0) with linespoints lw 1 pt 7 dt 3 lc 1 title '(a) penalty %(coef)s smooth', \\
     '' every ::1 using 2:(a('b') ? $4 : 1/0) with linespoints lw 2 pt 6 lc 2 title '(b) J_N', \\
     '' every ::1 using 2:(a('b') ? $5 : 1/0) with linespoints lw 1 pt 6 dt 2 lc 2 title '(b) data (cross-entropy)', \\
     '' every ::1 using 2:(a('b') ? $6 : 1/0) with linespoints lw 1 pt 6 dt 3 lc 2 title '(b) penalty %(coef)s smooth'
set yrange %(yr3)s
set title 'differences of the loss between levels'
plot '%(csv)s' every ::1 using 2:(a('a') && strcol(19) ne '' ? abs($19) : 1/0) with linespoints lw 2 pt 7 lc 1 title '(a) |J_N - J_{N/2}|', \\
     '' every ::1 using 2:(a('b') && strcol(19) ne '' ? abs($19) : 1/0) with linespoints lw 2 pt 6 lc 2 title '(b) |J_N - J_{N/2}|', \\
     '' every ::1 using 2:(a('b') && strcol(18) ne '' ? abs($18) : 1/0) with linespoints lw 2 pt 4 lc 3 title '(b) |J_N(P theta^{N/2}) - J_{N/2}(theta^{N/2})|, P linear', \\
     g2(x) with lines dt 4 lw 1 lc rgb 'gray60' title 'slope -2', g3(x) with lines dt 5 lw 1 lc rgb 'gray40' title 'slope -3'
unset logscale y
set title 'test accuracy (builtin:spirals?seed=2, 1000 samples)'
set yrange [*:1]
set key bottom right
plot '%(csv)s' every ::1 using 2:(a('a') ? $11 : 1/0) with linespoints lw 2 pt 7 lc 1 title '(a) independent', \\
     '' every ::1 using 2:(a('b') ? $11 : 1/0) with linespoints lw 2 pt 6 lc 2 title '(b) nested'
unset multiplot
""" % {"term": term, "png": os.path.join(out, "convergence.png"), "csv": csv_path, "coef": o.coef,
       "E": o.epochs, "lr": o.lr, "xhi": 2 * hi, "anchor": anchor[0],
       "anchor2": anchor[1],
       "yr1": span(["d_const", "d_lin", "d_lin_aligned"]), "yr3": span(["gap", "dJ"])}
    gp_path = os.path.join(out, "convergence.gp")
    with open(gp_path, "w") as f:
        f.write(gp)
    run(["gnuplot", gp_path])


if __name__ == "__main__":
    main()
