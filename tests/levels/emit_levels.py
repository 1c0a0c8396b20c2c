#!/usr/bin/env python3
"""emit_levels.py SPDLC [--count N] [--seed S]: `spdlc emit --levels 2` of
generated programs (tests/difftest/spngen.py, every construct) against the
program written with every flow in half its layers.

DESIGN §11: level 1 of 2 is the model with each flow's `in N layers` read as
N/2, the same time interval, repeat blocks unchanged. So the C of
DIR/M_level1.c, its prefix renamed, must be the C that plain `spdlc emit`
writes for that text, but for the comments quoting the source and the
source hash; the finest level must be the plain emission of the model
itself; and --levels 2 fails exactly when the halved text does not build
(a require the longer steps break, learned steps that cannot cover the
interval), or a flow has an odd count. This also catches the resolver
keeping state from one resolve of the syntax tree to the next."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "difftest"))
import spngen  # noqa: E402

FLOW = re.compile(r"(flow over \[[^\]]*\] in )(\d+)( layers)")


def emit(spdlc, spn, out, *extra):
    r = subprocess.run([spdlc, "emit", spn, "-o", out, *extra], capture_output=True, text=True)
    return r.returncode, r.stderr


def code(path, rename=None):
    """The C without the lines that quote the .spn source, name its file, or its hash."""
    with open(path) as f:
        text = f.read()
    if rename:
        text = text.replace(rename[0], rename[1])
    text = re.sub(r'"[0-9a-f]{16}"', '"HASH"', text)  # the descriptor's source hash
    keep = [ln for ln in text.splitlines()[1:] if not ln.lstrip().startswith("/* line ")]
    return "\n".join(keep)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("spdlc")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=4242000)
    args = ap.parse_args(argv)
    en = spngen.enabled("", "")
    fails, compared, refused = [], 0, 0
    with tempfile.TemporaryDirectory(prefix="levels-") as tmp:
        for i in range(args.count):
            seed = args.seed + i
            name = "v%d" % i
            prog = spngen.generate(seed, name, en, 0.1)
            text = prog.text()
            counts = [int(m.group(2)) for m in FLOW.finditer(text)]
            if not counts:
                continue
            d = os.path.join(tmp, name)
            os.makedirs(d)
            spn, half = os.path.join(d, name + ".spn"), os.path.join(d, "half.spn")
            with open(spn, "w") as f:
                f.write(text)
            odd = any(n % 2 for n in counts)
            with open(half, "w") as f:
                f.write(FLOW.sub(lambda m: m.group(1) + str(int(m.group(2)) // 2) + m.group(3), text))
            rc_l, err_l = emit(args.spdlc, spn, os.path.join(d, "levels"), "--levels", "2")
            rc_p, _ = emit(args.spdlc, spn, os.path.join(d, "plain"))
            rc_h, _ = (1, "") if odd else emit(args.spdlc, half, os.path.join(d, "half"))
            if rc_p != 0:
                continue  # a generated negative: not this test's business
            if rc_l != (rc_h != 0):
                fails.append("%s (seed %d): emit --levels 2 exit %d, the halved program's %d\n%s" %
                             (name, seed, rc_l, rc_h, err_l))
                continue
            if rc_l:
                refused += 1
                if odd and "has no level with 2 times fewer" not in err_l:
                    fails.append("%s (seed %d): an odd flow without its error:\n%s" % (name, seed, err_l))
                continue
            fine = code(os.path.join(d, "levels", name + ".c"))
            if fine != code(os.path.join(d, "plain", name + ".c")):
                fails.append("%s (seed %d): the finest level differs from plain emit" % (name, seed))
            coarse = code(os.path.join(d, "levels", name + "_level1.c"), (name + "_level1", name))
            if coarse != code(os.path.join(d, "half", name + ".c")):
                fails.append("%s (seed %d): level 1 differs from the halved program's C" % (name, seed))
            for h in ("_level1.h", ".h"):
                if not os.path.exists(os.path.join(d, "levels", name + h)):
                    fails.append("%s: no %s%s" % (name, name, h))
            compared += 1
    for f in fails:
        print("emit_levels: FAIL " + f)
    print("emit_levels: %d programs with flows compared level by level, %d refused at level 1 as their halved "
          "text is, %d failed" % (compared, refused, len(fails)))
    return 1 if fails or compared < args.count // 8 else 0  # a generator change must not empty the test


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
