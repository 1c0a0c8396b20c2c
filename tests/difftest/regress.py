#!/usr/bin/python3
"""regress.py - the fixed regression programs of tests/difftest/regress/.

    /usr/bin/python3 tests/difftest/regress.py SPDLC OUTDIR [--enable NAME,...|all] [--cc CC]

Each program found by difftest.py (FAILURES.md) is kept here, minimised, with
the expected numbers in its header, computed with numpy from DESIGN's
semantics: `// expect y:` (forward, 2 samples), `// expect loss:`, optionally `// expect grad:` (theta =
linspace(-0.5, 0.7, P), x = linspace(-1, 1, 2 nin), every target 0.25), or
`// expect: refused` (spdlc check must fail). `// construct: NAME` names the
generator switch of the bug: while NAME is known broken (not enabled), a
failure is reported as known and a pass as "fixed: enable NAME".
"""
import ctypes
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import spngen  # noqa: E402

PD = ctypes.POINTER(ctypes.c_double)


def one(spdlc, cc, path, out):
    text = open(path).read()
    name = re.search(r"^model (\w+)", text, re.M).group(1)
    if re.search(r"^// expect: refused", text, re.M):
        r = subprocess.run([spdlc, "check", path], capture_output=True, text=True)
        return (r.returncode != 0, "spdlc check exits %d (must refuse)" % r.returncode)
    y_want = np.array([float(v) for v in re.search(r"^// expect y: (.*)$", text, re.M).group(1).split()])
    l_want = float(re.search(r"^// expect loss: (.*)$", text, re.M).group(1))
    d = os.path.join(out, name)
    r = subprocess.run([spdlc, "emit", path, "-o", d], capture_output=True, text=True)
    if r.returncode:
        return False, "emit: " + r.stderr.strip().splitlines()[0]
    so = os.path.join(d, name + ".so")
    r = subprocess.run([cc, "-std=c11", "-O1", "-fPIC", "-shared", "-I" + os.path.join(ROOT, "runtime"),
                        os.path.join(d, name + ".c"), "-o", so, "-lm"], capture_output=True, text=True)
    if r.returncode:
        return False, "cc: " + r.stderr.strip().splitlines()[0]
    lib = ctypes.CDLL(so)
    f = lambda n: getattr(lib, "%s_%s" % (name, n))  # noqa: E731
    f("work_size").restype = ctypes.c_size_t
    f("loss_grad").restype = ctypes.c_double
    hdr = open(os.path.join(d, name + ".h")).read()
    P = int(re.search(r"_NPARAM = (\d+)", hdr).group(1))
    nin = int(re.search(r"_NIN = (\d+)", hdr).group(1))
    nout = int(re.search(r"_NOUT = (\d+)", hdr).group(1))
    nt = int(re.search(r"_NTARGET = (\d+)", hdr).group(1))
    th = np.linspace(-0.5, 0.7, P)
    x = np.linspace(-1, 1, 2 * nin).reshape(2, nin)
    t = np.full((2, max(nt, 1)), 0.25)
    y = np.zeros((2, nout))
    g = np.zeros(P)
    w = np.zeros(f("work_size")(ctypes.c_size_t(2)) + 256, dtype=np.uint8)
    rc = f("forward")(th.ctypes.data_as(PD), ctypes.c_size_t(2), x.ctypes.data_as(PD), y.ctypes.data_as(PD),
                      ctypes.c_void_p(w.ctypes.data))
    L = f("loss_grad")(th.ctypes.data_as(PD), ctypes.c_size_t(2), x.ctypes.data_as(PD), t.ctypes.data_as(PD),
                       g.ctypes.data_as(PD), ctypes.c_void_p(w.ctypes.data))
    eg = 0.0
    gm = re.search(r"^// expect grad: (.*)$", text, re.M)
    if gm:
        g_want = np.array([float(v) for v in gm.group(1).split()])
        eg = float(np.max(np.abs(g - g_want)) / max(np.max(np.abs(g_want)), 1e-6))
    ey = float(np.max(np.abs(y.ravel() - y_want)) / max(np.max(np.abs(y_want)), 1e-6))
    el = abs(L - l_want) / max(abs(l_want), 1e-6)
    ok = rc == 0 and ey <= 1e-12 and el <= 1e-12 and eg <= 1e-9
    return ok, "forward rc %d, y %s (want %s, relative %.3g), loss %.17g (want %.17g), gradient relative %.3g" % (
        rc, np.array2string(y.ravel(), precision=6), np.array2string(y_want, precision=6), ey, L, l_want, eg)


def main(argv):
    spdlc, out = os.path.abspath(argv[0]), argv[1]
    en, cc = "", os.environ.get("CC", "cc")
    i = 2
    while i < len(argv):
        if argv[i] == "--enable":
            en = argv[i + 1]
            i += 2
        elif argv[i] == "--cc":
            cc = argv[i + 1]
            i += 2
        else:
            raise SystemExit("regress.py: unknown option " + argv[i])
    en = spngen.enabled(en)
    os.makedirs(out, exist_ok=True)
    bad = 0
    rdir = os.path.join(HERE, "regress")
    for fn in sorted(os.listdir(rdir)):
        if not fn.endswith(".spn"):
            continue
        path = os.path.join(rdir, fn)
        tag = re.search(r"^// construct: (\w+)", open(path).read(), re.M)
        tag = tag.group(1) if tag else None
        known = tag in spngen.SWITCHES and tag not in en
        try:
            ok, msg = one(spdlc, cc, path, out)
        except Exception as ex:  # noqa: BLE001 - a harness error is a failure
            ok, msg = False, "harness: %r" % ex
        if ok and known:
            print("regress: %s passes: its construct '%s' looks fixed, enable it (spngen.KNOWN_BROKEN)" % (fn, tag))
        elif ok:
            print("regress: %s ok" % fn)
        elif known:
            print("regress: %s still broken (known, '%s'): %s" % (fn, tag, msg))
        else:
            print("FAIL regress %s: %s" % (fn, msg))
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
