#!/usr/bin/env python3
"""run_attack.py - the empirical attack on certified bounds (make check-attack).

    python3 tests/attack/run_attack.py SPDLC [--out DIR] [--count N] [--seed S]
                                             [--cc CC] [--jobs J] [--effort E]
                                             [--san N]

For every model gen_models.py writes (seed fixed, so failures reproduce):
  1. `spdlc check --json` with a placeholder cap reads the certified bound L;
     the model then requires `lipschitz <= C` with C just above L (and
     `nonexpansive` for the gradflow_ne family), and a second check must pass
     and agree with the generator on nonexpansive, in both directions;
  2. `spdlc emit`, then attack.c compiled against the model with -Wall
     -Wextra -Werror, and run: random pairs and vjp-driven gradient ascent
     on |Phi(u) - Phi(v)| / |u - v| for several saturated parameter vectors;
     for non-expansive models the flow alone as well.
The first N models (--san, default 3) run again, with less effort, under
AddressSanitizer and UndefinedBehaviorSanitizer. Prints a table and exits 1
if any ratio exceeds its certified bound (1 + 1e-9) or a step fails.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import gen_models  # noqa: E402

WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
SAN = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def cap_above(L):
    """A round number just above L: the `require lipschitz <= C` the model states."""
    if L <= 0:
        return "1"
    e = math.floor(math.log10(L)) - 3
    c = math.ceil(L * (1 + 1e-9) / 10.0 ** e) * 10.0 ** e
    return "%.4g" % c if float("%.4g" % c) >= L else "%.6g" % (L * 1.0001)


def certify(spdlc, path, text, cap):
    with open(path, "w") as f:
        f.write(text.replace("LIPSCHITZ_CAP", cap))
    p = run([spdlc, "check", path, "--json"])
    try:
        cert = json.loads(p.stdout)["guarantees"]
    except (ValueError, KeyError):
        cert = None
    return p.returncode, cert, p.stderr


def one(args, rec):
    """Certify, emit, build and attack one model; returns a result dict."""
    name, out = rec["name"], args.out
    spn = os.path.join(out, name + ".spn")
    res = dict(rec, L=float("nan"), ratio=float("nan"), flow=float("nan"), ok=False, msg="")
    with open(spn) as f:
        text = f.read()
    rc, cert, err = certify(args.spdlc, spn, text, "1e300")
    if rc != 0 or not cert or not cert.get("lipschitz", {}).get("holds"):
        res["msg"] = "not certified: " + (err.strip().splitlines() or ["?"])[0]
        return res
    L = cert["lipschitz"]["bound"]
    res["L"] = L
    rc, cert, err = certify(args.spdlc, spn, text, cap_above(L))
    if rc != 0:
        res["msg"] = "the stated cap fails: " + err.strip()
        return res
    ne = cert.get("nonexpansive", {})
    if bool(ne.get("holds")) != rec["nonexpansive"]:
        res["msg"] = "nonexpansive: the checker says %s (%s), the generator expected %s" % (
            ne.get("holds"), ne.get("reason"), rec["nonexpansive"])
        return res
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    p = run([args.spdlc, "emit", spn, "-o", d])
    if p.returncode != 0:
        res["msg"] = "emit failed: " + p.stderr.strip()
        return res
    model = name
    shim = os.path.join(d, "shim.c")
    with open(shim, "w") as f:
        f.write('#include "spdl.h"\nconst spdl_model *%s_model(void);\n'
                'const spdl_model *attack_model(void) { return %s_model(); }\n' % (model, model))
    exe = os.path.join(d, "attack")
    inc = "-I" + os.path.join(ROOT, "runtime")
    # -O1: clang takes three times as long at -O2 for a 20% faster attack
    p = run([args.cc] + WARN + ["-O1", inc, os.path.join(d, model + ".c"), shim, args.attack_o, "-o", exe, "-lm"])
    if p.returncode != 0:
        res["msg"] = "compile failed: " + p.stderr.strip()[:2000]
        return res
    flow = "1" if rec["nonexpansive"] else "0"
    p = run([exe, repr(L), flow, str(args.effort)])
    with open(os.path.join(d, "attack.log"), "w") as f:
        f.write(p.stdout + p.stderr)
    m = re.search(r"^RESULT (\S+) (\S+)", p.stdout, re.M)
    if m:
        res["ratio"], res["flow"] = float(m.group(1)), float(m.group(2))
    if p.returncode != 0 or not m:
        res["msg"] = "\n".join(l for l in p.stdout.splitlines() if "FAIL" in l) or p.stderr.strip() or "attack failed"
        return res
    if rec.get("san"):
        san = os.path.join(d, "attack_san")
        p = run([args.cc] + WARN + SAN + [inc, "-DMODEL_FN=%s_model" % model,
                                          os.path.join(HERE, "attack.c"), os.path.join(d, model + ".c"), "-o", san, "-lm"])
        if p.returncode != 0:
            res["msg"] = "sanitizer build failed: " + p.stderr.strip()[:2000]
            return res
        p = run([san, repr(L), flow, "0.05"], env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=99",
                                                           UBSAN_OPTIONS="print_stacktrace=1"))
        if p.returncode != 0:
            res["msg"] = "under sanitizers: " + (p.stderr.strip() or p.stdout.strip())[-2000:]
            return res
        res["san_ok"] = True
    res["ok"] = True
    return res


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spdlc")
    ap.add_argument("--out", default=os.path.join("build", "attack"))
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--effort", type=float, default=1.0)
    ap.add_argument("--san", type=int, default=3)
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
        print("attack: models, C and logs kept in %s" % args.out)
    return rc


def run_all(args):
    recs = gen_models.generate(args.out, args.count, args.seed)
    args.attack_o = os.path.join(args.out, "attack.o")
    p = run([args.cc] + WARN + ["-O2", "-I" + os.path.join(ROOT, "runtime"), "-DMODEL_FN=attack_model", "-c",
                                os.path.join(HERE, "attack.c"), "-o", args.attack_o])
    if p.returncode != 0:
        print(p.stderr)
        print("FAIL: tests/attack/attack.c does not compile with %s" % args.cc)
        return 1
    for i, r in enumerate(recs):
        r["san"] = i < args.san
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(lambda r: one(args, r), recs))
    print("attack: %d models, seed %d (tests/attack/gen_models.py)" % (len(results), args.seed))
    print("%-18s %-12s %-18s %5s %3s  %-12s %-12s %-10s %-12s" % (
        "model", "family", "scheme", "width", "N", "certified L", "best ratio", "ratio/L", "flow ratio"))
    bad = 0
    for r in results:
        flow = "%.10f" % r["flow"] if r["nonexpansive"] and not math.isnan(r["flow"]) else "-"
        print("%-18s %-12s %-18s %5d %3d  %-12.6g %-12.6g %-10.4f %-12s %s" % (
            r["name"], r["family"], r["schemes"], r["state"], r["layers"], r["L"], r["ratio"],
            r["ratio"] / r["L"] if r["L"] == r["L"] and r["L"] > 0 else float("nan"), flow,
            "" if r["ok"] else "FAIL"))
        if not r["ok"]:
            bad += 1
    for r in results:
        if not r["ok"]:
            print("FAIL %s (%s): %s" % (r["name"], r["facts"], r["msg"]))
    # the attack must have teeth: a gradient flow whose step exceeds 2 r / (c d |K|^2)
    # (not certified non-expansive) attacked as if it were must be caught
    teeth = next((r for r in results if r["family"] == "gradflow" and r["ok"] and
                  gen_models.SSP.get(r["schemes"], 0) > 0), None)
    if teeth:
        exe = os.path.join(args.out, teeth["name"], "attack")
        p = run([exe, repr(teeth["L"]), "1", "0.3"])
        caught = p.returncode == 1 and "the flow expands" in p.stdout
        best = max([float(x) for x in re.findall(r"  flow ([0-9.eE+-]+)", p.stdout)] or [float("nan")])
        print("attack: planted violation (%s, step beyond 2 r / (c d |K|^2), attacked as non-expansive): %s, flow ratio %.6g" % (
            teeth["name"], "caught" if caught else "MISSED", best))
        if not caught:
            bad += 1
    else:
        print("attack: no gradflow model with an SSP scheme in this set: the planted violation is skipped")
    ne = [r for r in results if r["nonexpansive"] and r["ok"]]
    print("attack: %d of %d certificates held; worst ratio/L %.4f; worst flow ratio %s; %d models also under sanitizers" % (
        sum(r["ok"] for r in results), len(results),
        max((r["ratio"] / r["L"] for r in results if r["ok"]), default=float("nan")),
        "%.12f" % max(r["flow"] for r in ne) if ne else "-",
        sum(1 for r in results if r.get("san_ok"))))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
