#!/usr/bin/env python3
"""run_demo.py - refused configurations really do violate the property.

    python3 tests/attack/run_demo.py SPDLC [--out DIR] [--cc CC] [--jobs J]

For each golden refusal in tests/golden/ that claims more than "no proof",
the model (its `require` lines removed, so it can be emitted) is checked
again: the certificate must still refuse the guarantee. Then demo.c,
compiled against the emitted C, sets admissible parameters (every declared
norm bound respected, M_project leaves them unchanged) and measures:
  growth   the growth of a perturbation of x = 0 after every layer (from
           M_trajectory), which must increase with depth, exceed 1, and
           match the linearised theory printed beside it;
  scale    the ratio of the logits at 0 as a parameter without a norm bound
           is scaled up: it grows without limit (the last figure at least
           100 times the first, or 100, and still 5 times the one before);
  xscale   the local ratio at x = (t, 0) as t grows, for exp and for a product
           of two sample values: it grows without limit (as for scale).
Then, for rk4 on gradient flows (refused for SSP coefficient 0: "no proof",
not "false"), attack.c searches one-step flows with h |K|^2 <= 2 for an
expanding step and reports what it finds, without failing the build.
Exits 1 if a demonstration does not show what it claims.
"""
import argparse
import cmath
import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, "tests", "golden")
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]


def rk_R(z, scheme):
    """The stability polynomial of the stdlib schemes at z."""
    terms = {"euler": 1, "heun": 2, "rk4": 4}[scheme]
    s, t = 0, 1
    for k in range(terms + 1):
        s += t
        t *= z / (k + 1)
    return s


def verlet_growth(w, h, layers):
    """|M^k (1, 0)| for verlet on y' = w z, z' = -w y, k = 0..layers."""
    y, z, out = 1.0, 0.0, [1.0]
    for _ in range(layers):
        y += h / 2 * w * z
        z -= h * w * y
        y += h / 2 * w * z
        out.append((y * y + z * z) ** 0.5)
    return out


def powers(f, layers):
    return [abs(f) ** k for k in range(layers + 1)]


# name, guarantee refused, mode, matrix recipe, argument, theory (list or None), claim
DEMOS = [
    ("stable_euler_undamped_skew", "stable", "growth", "skew", None,
     powers(rk_R(0.25 * 2j, "euler"), 16), "Euler on a skew field: |1 + i h w| = sqrt(1.25) per layer"),
    ("stable_heun_undamped_skew", "stable", "growth", "skew", None,
     powers(rk_R(0.25 * 2j, "heun"), 16), "Heun on a skew field: |R(i h w)| = sqrt(1 + (h w)^4 / 4) per layer"),
    ("stable_rk4_step_too_large", "stable", "growth", "skew", None,
     powers(rk_R(4j, "rk4"), 8), "rk4 beyond its step: |R(4i)| per layer"),
    ("stable_verlet_h_rho_too_large", "stable", "growth", "ident", None,
     verlet_growth(3, 1, 8), "verlet with h rho = 3 >= 2: real eigenvalue -6.85 of the step"),
    ("stable_free_matrix", "stable", "growth", "ident", None,
     powers(rk_R(0.25, "rk4"), 16), "free matrix A = I: eigenvalue +1, R(h) per layer"),
    ("nonexpansive_step_too_large", "nonexpansive", "growth", "orth", None,
     powers(3, 4), "gradient-flow Euler step, h |K|^2 = 4 > 2: |1 - h |K|^2| = 3 per layer"),
    ("nonexpansive_c4_step_too_large", "nonexpansive", "growth", "orth", None,
     powers(3, 2), "C4 gradient-flow Euler step, gconv(k, .) = 2 I, h |gconv(k, .)|^2 = 4 > 2: -3 I per layer"),
    ("nonexpansive_not_gradient_flow", "nonexpansive", "growth", "orth", None,
     powers(1.25, 4), "gradient ascent +K' tanh(K u): 1 + h |K|^2 = 1.25 per layer"),
    ("lipschitz_bound_exceeds_required", "lipschitz>2", "growth", "ident", None,
     powers(1.5, 4), "A = 2 I attains the bound (1 + h |A|)^4 = 5.0625 > 2"),
    ("lipschitz_missing_norm_bound", "lipschitz", "scale", "ident", "A:1,10,100,1000",
     [(1 + 0.25 * s) ** 4 for s in (1, 10, 100, 1000)], "A = s I: (1 + s / 4)^4"),
    ("nonexpansive_missing_norm_bound", "nonexpansive", "scale", "orth", "K:1,3,10,30",
     [abs(1 - 0.25 * s * s) ** 4 for s in (1, 3, 10, 30)], "K = s Q: |1 - s^2 / 4|^4"),
    ("stable_missing_norm_bound", "stable", "scale", "skew", "A:1,4,8,16",
     [abs(rk_R(0.25 * 2 * s * 1j, "rk4")) ** 4 for s in (1, 4, 8, 16)], "A = s J under rk4: |R(i s / 2)|^4"),
    ("lipschitz_exp", "lipschitz", "xscale", "ident", "1,5,10,15,20", None,
     "exp: local ratio at x = (t, 0)"),
    ("lipschitz_product_of_sample_values", "lipschitz", "xscale", "skew", "1,10,100,1000", None,
     "tanh(A u) * u with A = J: local ratio at x = (t, 0)"),
]

# rk4 on one-layer gradient flows -K' act(K u + b), |K| <= 1, h = h |K|^2 (c = d = 1)
SEARCH = [(2, "relu", 2.0), (2, "tanh", 2.0), (4, "relu", 2.0), (4, "tanh", 1.5), (3, "relu", 1.0), (6, "softplus", 2.0)]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def strip_requires(src):
    return "\n".join(l for l in src.splitlines() if not l.strip().startswith("require")) + "\n"


def build(args, name, spn_text, guarantee, exe_src, model_fn):
    """Writes, checks (the guarantee must be refused), emits and compiles; returns (exe, cert, error)."""
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    spn = os.path.join(d, "m.spn")
    with open(spn, "w") as f:
        f.write(spn_text)
    p = run([args.spdlc, "check", spn, "--json"])
    try:
        cert = json.loads(p.stdout)["guarantees"]
    except (ValueError, KeyError):
        return None, None, "check failed: " + p.stderr.strip()
    if ">" in guarantee:  # "lipschitz>C": the refusal was a bound above C
        g, c = guarantee.split(">")
        v = cert.get(g, {})
        if not (v.get("bound") or 0) > float(c):
            return None, cert, "the certified bound is no longer above %s: %s" % (c, v)
    else:
        v = cert.get(guarantee, {})
        if v.get("holds") is not False or v.get("level") != "refused":
            return None, cert, "the certificate no longer refuses %s: %s" % (guarantee, v)
    p = run([args.spdlc, "emit", spn, "-o", d])
    if p.returncode != 0:
        return None, cert, "emit failed: " + p.stderr.strip()
    exe = os.path.join(d, os.path.basename(exe_src)[:-2])
    p = run([args.cc] + WARN + ["-O1", "-I" + os.path.join(ROOT, "runtime"), args.objects[exe_src],
                                os.path.join(d, model_fn + ".c"), "-o", exe, "-lm"])
    if p.returncode != 0:
        return None, cert, "compile failed: " + p.stderr.strip()[:2000]
    return exe, cert, None


def demo(args, spec):
    name, guarantee, mode, mat, arg, theory, claim = spec
    res = {"name": name, "claim": claim, "ok": False, "rows": [], "msg": ""}
    with open(os.path.join(GOLDEN, name + ".spn")) as f:
        text = strip_requires(f.read())
    exe, cert, err = build(args, name, text, guarantee, os.path.join(HERE, "demo.c"), "m")
    if err:
        res["msg"] = err
        return res
    res["reason"] = cert[guarantee.split(">")[0]]["reason"]
    p = run([exe, mode, mat] + ([arg] if arg else []))
    rows = [(float(a), float(b)) for a, b in re.findall(r"^ROW (\S+) (\S+)$", p.stdout, re.M)]
    res["rows"] = rows
    if p.returncode != 0 or not rows:
        res["msg"] = (p.stdout + p.stderr).strip()
        return res
    vals = [v for _, v in rows]
    if theory is not None:
        if len(theory) != len(vals):
            res["msg"] = "%d figures, the theory has %d" % (len(vals), len(theory))
            return res
        worst = max(abs(v - t) / max(abs(t), 1e-300) for v, t in zip(vals, theory))
        res["theory_err"] = worst
        if worst > 1e-9:
            res["msg"] = "measured %s, theory %s (relative difference %.2g)" % (vals, theory, worst)
            return res
    if ">" in guarantee and not vals[-1] > float(guarantee.split(">")[1]):
        res["msg"] = "the measured ratio %.6g does not exceed the required bound" % vals[-1]
        return res
    if mode == "growth":
        if not all(b > a for a, b in zip(vals, vals[1:])) or vals[-1] <= 1:
            res["msg"] = "the perturbation does not grow with depth: %s" % vals
            return res
    elif vals[-1] < 100 * max(vals[0], 1) or vals[-1] < 5 * vals[-2]:
        res["msg"] = "the ratio does not grow without limit: %s" % vals
        return res
    res["ok"] = True
    return res


def search(args, spec):
    n, act, hl = spec
    name = "rk4_search_n%d_%s_h%g" % (n, act, hl)
    text = """// rk4 step of a gradient flow, h |K|^2 = %g (written by tests/attack/run_demo.py)
model m {
    input  x : R[%d];
    target t : R[%d];
    state  u : R[%d] = x;
    param  K : R[%d, %d] where norm(K) <= 1;
    param  b : R[%d];
    flow over [0, %g] in 1 layers by rk4 {
        du/dt = -K' * %s(K * u + b);
    }
    param  W : R[%d, %d] where norm(W) <= 1;
    output p = W * u;
    loss   mse(p, t);
}
""" % (hl, n, n, n, n, n, n, hl, act, n, n)
    return search_model(args, name, text, "n = %d, %s, h |K|^2 = %g, 1 layer" % (n, act, hl))


def search_model(args, name, text, what):
    res = {"name": name, "what": what, "ok": False, "ratio": float("nan"), "msg": ""}
    exe, cert, err = build(args, name, text, "nonexpansive", os.path.join(HERE, "attack.c"), "m")
    if err:
        res["msg"] = err
        return res
    res["reason"] = cert["nonexpansive"]["reason"]
    L = cert["lipschitz"]["bound"]
    p = run([exe, repr(L), "2", str(args.effort)])
    m = re.search(r"^RESULT (\S+) (\S+)", p.stdout, re.M)
    if not m or p.returncode != 0:
        res["msg"] = (p.stdout + p.stderr).strip()[-2000:]
        return res
    res["ratio"] = float(m.group(2))
    res["ok"] = True
    return res


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spdlc")
    ap.add_argument("--out", default=os.path.join("build", "attack", "demo"))
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--effort", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated files after a passing run")
    args = ap.parse_args(argv)
    args.spdlc = os.path.abspath(args.spdlc)
    # a fresh directory per run: several `make check`s may share the tree;
    # removed when everything passed, kept (and named) when something failed
    os.makedirs(args.out, exist_ok=True)
    args.out = tempfile.mkdtemp(prefix="run-", dir=args.out)
    rc = run_all(args)
    if rc == 0 and not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    else:
        print("demo: models, C and logs kept in %s" % args.out)
    return rc


def run_all(args):
    # every model here is `model m`: the harnesses are compiled once
    args.objects = {}
    for src in ("demo.c", "attack.c"):
        obj = os.path.join(args.out, src[:-2] + ".o")
        p = run([args.cc] + WARN + ["-O2", "-I" + os.path.join(ROOT, "runtime"), "-DMODEL_FN=m_model", "-c",
                                    os.path.join(HERE, src), "-o", obj])
        if p.returncode != 0:
            print(p.stderr)
            print("FAIL: tests/attack/%s does not compile with %s" % (src, args.cc))
            return 1
        args.objects[os.path.join(HERE, src)] = obj
    with open(os.path.join(GOLDEN, "nonexpansive_rk4_ssp_zero.spn")) as f:
        golden_rk4 = strip_requires(f.read())
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        demos = list(ex.map(lambda s: demo(args, s), DEMOS))
        searches = list(ex.map(lambda s: search(args, s), SEARCH))
        searches.append(search_model(args, "nonexpansive_rk4_ssp_zero", golden_rk4,
                                     "tests/golden/nonexpansive_rk4_ssp_zero.spn (4 layers, h |K|^2 = 0.5)"))
    bad = 0
    # the harnesses once more under AddressSanitizer and UndefinedBehaviorSanitizer
    san = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=99")
    for src, model, argv_ in (("demo.c", DEMOS[0][0], ["growth", "skew"]),
                              ("demo.c", "lipschitz_missing_norm_bound", ["scale", "ident", "A:1,10"]),
                              ("attack.c", "nonexpansive_rk4_ssp_zero", None)):
        d = os.path.join(args.out, model)
        exe = os.path.join(d, src[:-2] + "_san")
        p = run([args.cc] + WARN + san + ["-I" + os.path.join(ROOT, "runtime"), "-DMODEL_FN=m_model",
                                          os.path.join(HERE, src), os.path.join(d, "m.c"), "-o", exe, "-lm"])
        if p.returncode == 0:
            if argv_ is None:  # the search, with little effort
                L = json.loads(run([args.spdlc, "check", os.path.join(d, "m.spn"), "--json"]).stdout)
                argv_ = [repr(L["guarantees"]["lipschitz"]["bound"]), "2", "0.1"]
            p = run([exe] + argv_, env=env)
        if p.returncode != 0:
            print("FAIL: %s on %s under sanitizers:\n%s" % (src, model, (p.stderr or p.stdout)[-3000:]))
            bad += 1
        else:
            print("demo: %s on %s clean under ASan and UBSan" % (src, model))
    print("demo: refused configurations, measured (linearised growth or local ratio) against theory")
    for r in demos:
        status = "ok" if r["ok"] else "FAIL"
        figs = ", ".join("%.6g" % v for _, v in r["rows"])
        if r["rows"] and r["name"].startswith(("lipschitz_missing", "nonexpansive_missing", "stable_missing",
                                               "lipschitz_exp", "lipschitz_product")):
            figs = ", ".join("%g: %.6g" % (a, v) for a, v in r["rows"])
        print("  %-4s %-36s %s" % (status, r["name"], r["claim"]))
        print("       %s" % figs)
        if not r["ok"]:
            print("       %s" % r["msg"])
            bad += 1
    print("demo: rk4 on gradient flows within Euler's step (SSP coefficient 0: refused for want of a proof)")
    found = 0
    for r in searches:
        if not r["ok"]:
            print("  FAIL %-34s %s" % (r["name"], r["msg"]))
            bad += 1
            continue
        found += r["ratio"] > 1 + 1e-9
        print("  %-40s best flow ratio %.12f%s" % (r["what"], r["ratio"],
                                                   "  (expands)" if r["ratio"] > 1 + 1e-9 else ""))
    print("demo: %d of %d demonstrations hold; the rk4 search found %s" % (
        sum(r["ok"] for r in demos), len(demos),
        "an expanding step in %d of %d configurations" % (found, len(searches)) if found else
        "no expanding step (no counterexample: the refusal stands as 'no proof')"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
