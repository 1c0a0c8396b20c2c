"""hotspots.py - where one training step of the generated spirals model spends
its time: `perf record` (cpu-clock samples of our process only) on the
harness of a model built with -g, samples attributed to source lines of the
generated M.c and grouped by
  - the runtime kernel the line belongs to (spdl_gemm, spdl_tanh's
    spdl_expm1 polynomial, spdl_transpose_tile, ...; inlined kernels keep
    their own lines), or
  - the IR operation of the generated function around it ("layer1: add",
    "layer1_adj: adjoint of act", ...), taken from the `/* line N: OP`
    comment that opens each block;
  - libc's memcpy/memset (the loops gcc turned into calls, the buffer
    clears) as they are.
Usage: hotspots.py WIDTH [LAYERS] [VARIANT_DIR]. Prints a table (share of
samples); needs perf (linux-perf)."""
import collections
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def line_categories(src_path):
    cats = {}
    fn = None
    kernel = False
    op = None
    with open(src_path) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"SPDL_KERNEL\s+[\w\s\*]+?\b(\w+)\(", line)
            e = re.match(r"SPDL_ELEMENTARY_\((double|float),", line)
            d = re.match(r"SPDL_\w+_\((spdl_\w+),", line)  # a kernel a macro defines, e.g. SPDL_GEMM_NT512_(spdl_sgemm_nt512_, ...)
            if m:
                fn, kernel, op = m.group(1), True, None
            elif e:  # the macro's functions are debugged at the line that expands it
                fn, kernel, op = "spdl_elementary" + ("f" if e.group(1) == "float" else ""), True, None
            elif d:
                fn, kernel, op = d.group(1), True, None
            else:
                m = re.match(r"(?:static\s+)?[\w\s\*]+?\b(\w+)\((?!.*;\s*$)", line)
                if m and not line.startswith(" ") and not line.startswith("#") and "=" not in line:
                    fn, kernel, op = m.group(1), False, None
            m = re.search(r"/\* line \d+: ((?:adjoint of )?[\w ]+?)[:\*]", line)
            if m and not kernel:
                op = m.group(1).strip()
            if kernel:
                cats[n] = "kernel " + fn
            elif fn:
                short = re.sub(r"^spirals_", "", fn)
                cats[n] = short + (": " + op if op else "")
    return cats


def profile(width, layers=20, variant_dir=None, seconds=2.0):
    """returns [(category, share)] sorted by share, or None without perf"""
    if not shutil.which("perf"):
        return None
    if variant_dir is None:
        exe = common.build_model(width, layers)
        d = os.path.dirname(exe)
        flags = common.MODEL_CFLAGS
    else:
        d = variant_dir
        flags = common.MODEL_CFLAGS + ["-ffp-contract=fast"] if "contr" in d or "fused" in d else common.MODEL_CFLAGS
    src = os.path.join(d, "spirals.c")
    pd = os.path.join(d, "prof")
    os.makedirs(pd, exist_ok=True)
    inc = ["-I" + os.path.join(common.ROOT, "runtime"), "-I" + os.path.join(common.ROOT, "bench"), "-I" + d]
    obj = os.path.join(pd, "spirals.o")
    common.run([common.CC] + flags + ["-g"] + inc + ["-c", src, "-o", obj])
    exe = os.path.join(pd, "harness")
    common.run([common.CC] + common.OWN_CFLAGS + ["-g"] + inc + [
        "-DMODEL_FN=spirals_model", os.path.join(common.ROOT, "bench", "harness.c"), obj,
        os.path.join(common.ROOT, "build", "libspdl.a"), "-o", exe, "-lopenblas", "-lz", "-lm", "-pthread"])
    data = os.path.join(pd, "perf.data")
    p = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", data, exe, "time", "256", "5",
                        str(seconds / 5)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=common.bench_env())
    if p.returncode != 0:
        return None
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "srcline", "--stdio"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    cats = line_categories(src)
    agg = collections.Counter()
    for line in rep.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
        if not m:
            continue
        share, where = float(m.group(1)), m.group(2)
        m2 = re.match(r"spirals\.c:(\d+)", where)
        if m2:
            agg[cats.get(int(m2.group(1)), "spirals.c other")] += share
        elif where.startswith("memmove") or where.startswith("memcpy"):
            agg["libc memcpy"] += share
        elif where.startswith("memset"):
            agg["libc memset"] += share
        else:
            agg["other (" + where.split(":")[0].split("+")[0][:30] + ")"] += share
    return sorted(agg.items(), key=lambda kv: -kv[1])


# kernel names by group, in both precisions (the float versions end in f:
# spdl_tanhf, spdl_sgemm_6x16_, ...)
PRODUCT_KERNEL = re.compile(r"kernel spdl_s?gemm")
ACTIVATION_KERNEL = re.compile(r"kernel spdl_(elementary|tanh|expm1|expm1_reduced|exp|exp_reduce|sigmoid|softplus|log1p01|"
                               r"log1p_reduced|log|select|clamp|clamp_abs|min|fma|bits|from_bits|sign_mask|if_neg)f?$")
CONV_KERNEL = re.compile(r"kernel spdl_(corr2|zconv|gbank|g_tap|g_compose)")
SETUP_KERNEL = re.compile(r"kernel spdl_(dot|norm2_block|norm2_upper|norm2_cheap|frobenius|rng_next|rng_normal|"
                          r"rng_uniform|gram|gconv_norm_upper|gnorm_symbol|gconv_project)$")


def group(rows):
    """coarse groups: the products, the activation, element-wise loops, copies"""
    g = collections.Counter()
    for cat, share in rows:
        if PRODUCT_KERNEL.match(cat) or cat.endswith("matmul") or any(
                h in cat for h in ("fmaintrin.h", "avxintrin.h", "avx512fintrin.h", "libopenblas", "dgemm")):
            g["matrix products (the gemm kernels and their call sites)"] += share
        elif ACTIVATION_KERNEL.match(cat):
            g["activations (spdl_tanh, spdl_expm1, ..., double and float)"] += share
        elif CONV_KERNEL.match(cat):
            g["group convolutions (spdl_corr2*, spdl_zconv*, filter banks)"] += share
        elif cat == "kernel spdl_transpose_tile":
            g["tile transposes for dK"] += share
        elif SETUP_KERNEL.match(cat) or cat.startswith("init") or cat.startswith("project"):
            g["set-up: M_init (once, outside the timed calls)"] += share
        elif cat.startswith("libc"):
            g["memcpy/memset"] += share
        elif cat.startswith("kernel"):
            g["other kernels"] += share
        elif cat.startswith("prepare") or cat.startswith("loss_grad"):
            g["per call: parameter copy, K' transpose, gradient fold and copy-out"] += share
        elif cat.startswith("layer1"):
            g["element-wise loops of the layer and its adjoint"] += share
        else:
            g["other"] += share
    return sorted(g.items(), key=lambda kv: -kv[1])


def main():
    w = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    vd = sys.argv[3] if len(sys.argv) > 3 else None
    rows = profile(w, n, vd)
    if rows is None:
        sys.exit("hotspots: perf is not available")
    print("| where | share of samples |\n|---|---|")
    for cat, share in group(rows):
        print("| %s | %.1f%% |" % (cat, share))
    print()
    print("| source (generated M.c) | share of samples |\n|---|---|")
    for cat, share in rows[:25]:
        print("| %s | %.1f%% |" % (cat, share))


if __name__ == "__main__":
    main()
