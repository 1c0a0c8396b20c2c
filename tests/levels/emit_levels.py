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
keeping state from one resolve of the syntax tree to the next.

The same for `--grid-levels` (DESIGN §11's spatial counterpart): a
generated C4 or D4 program P is rewritten with every grid twice (4 times)
as fine, the input and every state (and target) R[..., m, m] of rank 3 or
4; level 1 of
that program's `emit --grid-levels 2` (levels 1 and 2 of --grid-levels 3)
must be P's C (the doubled program's), the same kernels on coarser grids.
An image target is refused."""
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


GRID_DECL = re.compile(r"^(\s*(?:input|state|target)\s+\w+\s*:\s*R\[)([^\]]*)(\])", re.M)


def finer(text, f):
    """text with every grid f times as fine: the last two axes of the input, and of the states and the target
    of rank 3 or 4 whose last two axes are equal."""
    def grid(m):
        dims = [int(x) for x in m.group(2).split(",")]
        if len(dims) >= 3 and dims[-1] == dims[-2]:
            dims[-2:] = [f * dims[-1]] * 2
        return m.group(1) + ", ".join(map(str, dims)) + m.group(3)
    return GRID_DECL.sub(grid, text)


def grid_levels(spdlc, tmp, args):
    """Returns (compared, refused, fails) over the C4 and D4 programs of args.grid_count generated ones."""
    en = spngen.enabled("", "")
    fails, compared, refused = [], 0, 0
    for i in range(args.grid_count):
        seed = args.seed + 500000 + i
        name = "g%d" % i
        text = spngen.generate(seed, name, en, 0.1).text()
        if not re.search(r"group\s+(C4|D4)\s+acts", text):
            continue
        d = os.path.join(tmp, name)
        os.makedirs(d)
        paths = {}
        for f in (1, 2, 4):
            paths[f] = os.path.join(d, "x%d.spn" % f)
            with open(paths[f], "w") as fh:
                fh.write(finer(text, f))
        rc_p, _ = emit(spdlc, paths[1], os.path.join(d, "p1"))
        if rc_p:
            continue  # a generated negative
        image_target = re.search(r"target\s+\w+\s*:\s*R\[[^\]]*,[^\]]*,", text)
        for L, f in ((2, 2), (3, 4)):
            rc, err = emit(spdlc, paths[f], os.path.join(d, "l%d" % L), "--grid-levels", str(L))
            if image_target:
                refused += 1
                if rc == 0 or "not the target" not in err:
                    fails.append("%s (seed %d): an image target, --grid-levels %d: exit %d\n%s" % (name, seed, L, rc, err))
                continue
            rc_f, _ = emit(spdlc, paths[f], os.path.join(d, "f%d" % f))
            if rc or rc_f:
                fails.append("%s (seed %d): --grid-levels %d exit %d, the program's own emit %d\n%s" %
                             (name, seed, L, rc, rc_f, err))
                continue
            if code(os.path.join(d, "l%d" % L, name + ".c")) != code(os.path.join(d, "f%d" % f, name + ".c")):
                fails.append("%s (seed %d): the finest of --grid-levels %d differs from plain emit" % (name, seed, L))
            for lv in range(1, L):
                want = os.path.join(d, "p%d" % (f >> (L - lv)), name + ".c")
                if not os.path.exists(want):
                    emit(spdlc, paths[f >> (L - lv)], os.path.dirname(want))
                got = code(os.path.join(d, "l%d" % L, "%s_level%d.c" % (name, lv)), ("%s_level%d" % (name, lv), name))
                if got != code(want):
                    fails.append("%s (seed %d): level %d of --grid-levels %d differs from the program on grids "
                                 "%d times coarser" % (name, seed, lv, L, 1 << (L - lv)))
            compared += 1
    return compared, refused, fails


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("spdlc")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=4242000)
    ap.add_argument("--grid-count", type=int, default=0, help="generated programs for --grid-levels")
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
        grid = grid_levels(args.spdlc, tmp, args)
    fails += grid[2]
    for f in fails:
        print("emit_levels: FAIL " + f)
    print("emit_levels: %d programs with flows compared level by level, %d refused at level 1 as their halved "
          "text is, %d failed" % (compared, refused, len(fails)))
    if args.grid_count:
        print("emit_levels: %d C4/D4 programs compared at --grid-levels 2 and 3, %d image targets refused"
              % grid[:2])
    # a generator change must not empty the test
    return 1 if fails or compared < args.count // 8 or (args.grid_count and grid[0] < args.grid_count // 60) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
