"""conv.py - issue 11's benchmark: one training step (M_loss_grad: forward,
loss, gradient) of the p4 group-convolution models, batch 256, one thread,
in double and in float, spdl-generated C against PyTorch in the same run:

  digits_c4  tests/design/digits_c4.spn (DESIGN section 3): C4 lift 1 -> 4,
             3 x 3, then 4 Euler layers of -gconv'(k, relu(gconv(k, h) + b))
             on 8 x 8; read-out softmax(W mean_space(gpool(h)) + w)
  c4_28      bench/c4_28.spn: the same program at 28 x 28 with 16 regular
             channels (lift 1 -> 16) and 2 layers, no pooling

PyTorch (bench/torch_c4.py) runs the same model as GrouPy and escnn do: the
filter banks expanded once per step, then one F.conv2d per gconv, in float64
and float32; gconv' runs both ways, as F.conv_transpose2d with the bank
(`transpose`) and as F.conv2d with the transposed, flipped bank (`flip`),
and the faster of the two in each round is PyTorch's time. Before timing, PyTorch's loss and gradient at the
C harness's parameters and data must agree with the double C's to 1e-11
(relative; float C: 1e-3), or the run stops. OpenBLAS dgemm and sgemm at
n = 1024 give the machine's rate in the same rounds; `perf` gives where
spdl's step spends its time, by runtime kernel, and torch.autograd.profiler
where PyTorch's does.

Environment: ROUNDS (3), REPEATS (9) and SEC (0.3 s per repeat at least)
for digits_c4, REPEATS_28 (3) and SEC_28 (0.01: one step per repeat) for
c4_28, MODELS (digits_c4,c4_28), PRECISIONS (double,float), BATCH (256),
HOTSPOTS (1; 0 skips the profiles). Writes build/bench/conv.md and
build/bench/conv.json. See bench/README.md for what is counted."""
import collections
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import hotspots  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
BATCH = int(os.environ.get("BATCH", "256"))
HOTSPOTS = os.environ.get("HOTSPOTS", "1") != "0"
PRECISIONS = os.environ.get("PRECISIONS", "double,float").split(",")
TARGET_RATIO = 2.0
TORCH_DTYPE = {"double": "float64", "float": "float32"}
TOL = {"double": 1e-11, "float": 1e-3}
VARIANTS = ["transpose", "flip"]

# C: regular channels, n: grid, L: layers of the flow; repeats and seconds per repeat
MODELS = {
    "digits_c4": {"spn": "tests/design/digits_c4.spn", "C": 4, "n": 8, "L": 4,
                  "repeats": int(os.environ.get("REPEATS", "9")), "sec": float(os.environ.get("SEC", "0.3"))},
    "c4_28": {"spn": "bench/c4_28.spn", "C": 16, "n": 28, "L": 2,
              "repeats": int(os.environ.get("REPEATS_28", "3")), "sec": float(os.environ.get("SEC_28", "0.01"))},
}
NAMES = [m for m in os.environ.get("MODELS", "digits_c4,c4_28").split(",") if m]
G, K = 4, 3


def conv_flops(co, ci, n, b):
    """one correlation of ci maps into co maps on an n x n grid with a 3 x 3
    filter, every output pixel counted with all 9 taps (the dense count; the
    taps that fall outside the zero-padded grid are included): 2 co ci 9 n^2
    per sample"""
    return 2 * b * co * ci * K * K * n * n


def flops(C, n, L, b):
    """Floating-point operations of the convolutions of one M_loss_grad call
    (multiply and add counted apart). The lift (1 -> 4C maps) runs forward
    and once more for its kernel's gradient (the input's gradient is not
    needed, and neither spdl nor PyTorch computes it). Each layer has two
    convolutions of 4C -> 4C maps (gconv and gconv'), each run forward and
    twice in the adjoint (the data's adjoint and the kernel's gradient): 6.
    The filter-bank expansions, biases, relu, the update, pooling and the
    read-out are not counted."""
    return 2 * conv_flops(G * C, 1, n, b) + 6 * L * conv_flops(G * C, G * C, n, b)


def model_name(spn):
    with open(spn) as f:
        m = re.search(r"^\s*model\s+(\w+)", f.read(), re.M)
    return m.group(1)


def build(name, prec, debug=False):
    """spdlc emit --precision PREC, compiled as `spdlc build` compiles it, linked
    with bench/harness.c; returns (harness, directory, model name)"""
    spn = os.path.join(common.ROOT, MODELS[name]["spn"])
    mn = model_name(spn)
    d = os.path.join(common.BUILD, "conv", "%s_%s" % (name, prec))
    os.makedirs(d, exist_ok=True)
    common.run([common.SPDLC, "emit", spn, "-o", d, "--precision", prec, "--memory=store"])
    g = ["-g"] if debug else []
    sfx = "_g" if debug else ""
    inc = ["-I" + os.path.join(common.ROOT, "runtime"), "-I" + d]
    obj = os.path.join(d, mn + sfx + ".o")
    common.run([common.CC] + common.MODEL_CFLAGS + g + inc + ["-c", os.path.join(d, mn + ".c"), "-o", obj])
    exe = os.path.join(d, "harness" + sfx)
    common.run([common.CC] + common.OWN_CFLAGS + g + inc + ["-DMODEL_FN=%s_model" % mn,
                                                           os.path.join(common.ROOT, "bench", "harness.c"), obj,
                                                           os.path.join(common.ROOT, "build", "libspdl.a"),
                                                           "-o", exe, "-lz", "-lm", "-pthread"])
    return exe, d, mn


def torch_args(name):
    m = MODELS[name]
    return [str(m["C"]), str(m["n"]), str(m["L"]), str(BATCH)]


def deb_package(path):
    """the Debian package that owns PATH (after symlinks), with its version"""
    real = os.path.realpath(path)
    p = common.run(["dpkg-query", "-S", real], check=False)
    if p.returncode != 0 or ":" not in p.stdout:
        return real, "?"
    pkg = p.stdout.split(":")[0].strip()
    v = common.run(["dpkg-query", "-W", "-f", "${Version}", pkg], check=False).stdout.strip()
    return real, "%s %s" % (pkg, v)


def blas_info(dgemm, torch_py):
    """which BLAS the dgemm program and PyTorch load, and its Debian package"""
    info = {}
    ldd = common.run(["ldd", dgemm], check=False).stdout
    m = re.search(r"(\S*openblas\S*)\s+=>\s+(\S+)", ldd)
    info["dgemm_lib"], info["dgemm_pkg"] = deb_package(m.group(2)) if m else ("?", "?")
    env = common.bench_env()
    env["ONEDNN_VERBOSE"] = "1"
    raw = common.run(torch_py + ["blas"], env=env).stdout
    t = {}
    for line in raw.splitlines():
        if line.startswith("blas") and "=" in line:
            k, v = line.split("=", 1)
            t[k] = v
    isa = re.search(r"onednn_verbose,info,cpu,isa:([^,\n]*)", raw)
    impl = re.search(r"onednn_verbose,exec,cpu,convolution,([^,\n]*)", raw)
    info["onednn_isa"] = isa.group(1) if isa else "?"
    info["onednn_conv_impl"] = impl.group(1) if impl else "? (float32 conv2d did not run on oneDNN)"
    libs = [v for k, v in sorted(t.items()) if k.endswith("_real")]
    blas = [p for p in libs if re.search(r"libblas|libopenblas", os.path.basename(p))]
    info["torch_libs"] = libs
    info["torch_lib"], info["torch_pkg"] = deb_package(blas[0]) if blas else ("none", "?")
    return info


# ---- where the time goes: perf on spdl's harness, the autograd profiler on PyTorch ----

# a name ending in * is a prefix
KERNEL_GROUPS = [
    ("matrix products (spdl_gemm, spdl_gemm_nt and their AVX2/AVX-512 kernels)",
     ("kernel spdl_gemm*", "kernel spdl_sgemm*")),
    ("Winograd input/output transforms (spdl_wino2_*, spdl_wino4_*, spdl_wino_in_/out_/grad_in_)",
     ("kernel spdl_wino2_*", "kernel spdl_wino4_*", "kernel spdl_wino_in_", "kernel spdl_wino_out_",
      "kernel spdl_wino_grad_in_")),
    ("Winograd filter transforms and their adjoint (spdl_wino_filter_, spdl_wino_filter_adj_)",
     ("kernel spdl_wino_filter_*",)),
    ("Winograd block loops (spdl_wino_gather_, spdl_wino_dw_)", ("kernel spdl_wino_gather_", "kernel spdl_wino_dw_")),
    ("tap-by-tap correlations (spdl_corr2*: the lift, and where Winograd does not pay)", ("kernel spdl_corr2*",)),
    ("spdl_gbank / spdl_gbank_adj (filter-bank expansion and its adjoint)",
     ("kernel spdl_gbank*", "kernel spdl_g_tap", "kernel spdl_g_compose", "kernel spdl_g_inverse")),
]


def in_group(cat, names):
    return any(cat.startswith(n[:-1]) if n.endswith("*") else cat == n for n in names)


def perf_profile(name, prec):
    """[(category, share)] of perf's cpu-clock samples of a -g build, or None"""
    if not shutil.which("perf"):
        return None
    exe, d, mn = build(name, prec, debug=True)
    data = os.path.join(d, "perf.data")
    m = MODELS[name]
    reps, sec = (5, 0.4) if m["sec"] >= 0.1 else (1, m["sec"])
    p = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", data, exe, "time", str(BATCH), str(reps),
                        str(sec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=common.bench_env())
    if p.returncode != 0:
        return None
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "srcline", "--stdio"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    cats = hotspots.line_categories(os.path.join(d, mn + ".c"))
    agg = collections.Counter()
    for line in rep.splitlines():
        mm = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
        if not mm:
            continue
        share, where = float(mm.group(1)), mm.group(2)
        m2 = re.match(re.escape(mn) + r"\.c:(\d+)", where)
        if m2:
            cat = cats.get(int(m2.group(1)), "M.c other")
            agg[re.sub("^" + re.escape(mn) + "_", "", cat)] += share
        elif where.startswith("memmove") or where.startswith("memcpy"):
            agg["libc memcpy"] += share
        elif where.startswith("memset"):
            agg["libc memset"] += share
        elif re.match(r"\w*intrin\.h:", where):  # the intrinsics only the matrix-product kernels call
            agg["kernel spdl_gemm (intrinsics)"] += share
        else:
            agg["other (" + where.split(":")[0].split("+")[0][:30] + ")"] += share
    return sorted(agg.items(), key=lambda kv: -kv[1])


def gemm_name(prec):
    return "dgemm" if prec == "double" else "sgemm"


def kernel_groups(rows):
    g = collections.Counter()
    others = collections.Counter()
    for cat, share in rows:
        for label, cs in KERNEL_GROUPS:
            if in_group(cat, cs):
                g[label] += share
                break
        else:
            if cat.startswith("libc"):
                g["memset/memcpy (buffer clears, copies)"] += share
            elif cat.startswith("kernel"):
                others[cat[7:]] += share
            elif cat.startswith("layer"):
                g["element-wise loops of the layers and their adjoints"] += share
            else:
                g["the rest of the generated code (lift, read-out, loss, load, set-up)"] += share
    if others:
        names = [k for k, v in others.most_common() if v >= 0.05]
        g["other runtime kernels (%s)" % (", ".join(names) or "-")] = sum(others.values())
    return sorted(g.items(), key=lambda kv: -kv[1])


def main():
    lines, out, mach = common.start_report()
    med = common.median
    for n in NAMES:
        if n not in MODELS:
            sys.exit("conv: unknown model %s (have %s)" % (n, ", ".join(MODELS)))
    exes = {(n, p): build(n, p)[0] for n in NAMES for p in PRECISIONS}
    dgemm = common.build_dgemm()
    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_c4.py")]
    blas = blas_info(dgemm, torch_py)
    out("BLAS: dgemm/sgemm program %s (%s); PyTorch loads %s (%s)" % (
        blas["dgemm_lib"], blas["dgemm_pkg"], blas["torch_lib"], blas["torch_pkg"]))
    out("PyTorch float32 conv2d: oneDNN %s on %s; spdl's code is compiled for %s; OpenBLAS kernels: %s" % (
        blas["onednn_conv_impl"], blas["onednn_isa"], " ".join(common.march()) or "the default target",
        common.bench_env()["OPENBLAS_CORETYPE"]))
    if "openblas" not in blas["torch_lib"]:
        out("WARNING: PyTorch does not run on OpenBLAS (install libopenblas0-pthread): its float64 "
            "convolutions are im2col + the reference BLAS")

    # the same model: PyTorch's loss and gradient at the C's parameters and data
    check = {}
    for n in NAMES:
        for p in PRECISIONS:
            prefix = os.path.join(common.BUILD, "conv", "check_%s_%s" % (n, p))
            c = common.run_kv([exes[(n, p)], "dump", str(BATCH), prefix])
            t = common.run_kv(torch_py + ["check"] + torch_args(n) + [prefix])
            lc, lt = float(c["loss"]), float(t["loss"])
            v = {"loss_c": lc, "loss_torch": lt, "loss_rel_err": abs(lc - lt) / max(1e-300, abs(lt)),
                 "grad_rel_err": float(t["grad_rel_err"]), "grad_param_rel_err": float(t["grad_param_rel_err"]),
                 "grad_param_worst": t["grad_param_worst"], "torch32_grad_rel_err": float(t["grad32_rel_err"]),
                 "loss_flip": float(t["loss_flip"]), "grad_flip_rel_err": float(t["grad_flip_rel_err"])}
            check[(n, p)] = v
            out("check %s, %s: loss C %.17g, PyTorch float64 %.17g (rel. %.2g); gradient rel. err. %.2g "
                "(worst parameter %s: %.2g; the flip variant's %.2g); PyTorch float32's own: %.2g" % (
                    n, p, lc, lt, v["loss_rel_err"], v["grad_rel_err"], v["grad_param_worst"],
                    v["grad_param_rel_err"], v["grad_flip_rel_err"], v["torch32_grad_rel_err"]))
            lf = abs(v["loss_flip"] - lc) / max(1e-300, abs(lc))
            if max(v["loss_rel_err"], v["grad_rel_err"], v["grad_param_rel_err"], lf, v["grad_flip_rel_err"]) > TOL[p]:
                sys.exit("conv: PyTorch and spdl (%s) disagree on %s: %s" % (p, n, v))

    rounds = []
    for r in range(ROUNDS):
        rd = {"gemm": {}, "gemm_auto": {}, "spdl": {}, "torch": {}}
        auto = common.bench_env()
        auto.pop("OPENBLAS_CORETYPE", None)
        for p in PRECISIONS:
            rd["gemm"][p] = common.run_kv([dgemm, "1024", "9", p])
            # the same with OpenBLAS choosing its kernels for this CPU (AVX-512 where it has it)
            rd["gemm_auto"][p] = common.run_kv([dgemm, "1024", "9", p], env=auto)
        for n in NAMES:
            m = MODELS[n]
            for p in PRECISIONS:
                key = "%s/%s" % (n, p)
                rd["spdl"][key] = common.run_kv([exes[(n, p)], "time", str(BATCH), str(m["repeats"]), str(m["sec"])])
                rd["torch"][key] = {vr: common.run_kv(torch_py + ["time"] + torch_args(n) + [
                    str(m["repeats"]), str(m["sec"]), TORCH_DTYPE[p], vr]) for vr in VARIANTS}
                out("round %d, %s: spdl %s ms (cpu %s), %s" % (
                    r + 1, key, rd["spdl"][key]["median_ms"], rd["spdl"][key]["median_cpu_ms"], ", ".join(
                        "torch %s %s ms (cpu %s)" % (vr, rd["torch"][key][vr]["median_ms"],
                                                     rd["torch"][key][vr]["median_cpu_ms"]) for vr in VARIANTS)))
        out("round %d: %s; load average %s" % (r + 1, ", ".join(
            "%s %s GFLOP/s (cpu %s; %s kernels: %s, cpu %s)" % (
                gemm_name(p), rd["gemm"][p]["median_gflops"], rd["gemm"][p]["median_cpu_gflops"],
                rd["gemm_auto"][p]["corename"], rd["gemm_auto"][p]["median_gflops"],
                rd["gemm_auto"][p]["median_cpu_gflops"])
            for p in PRECISIONS), common.loadavg()))
        rounds.append(rd)

    torch_version = next(iter(rounds[0]["torch"].values()))[VARIANTS[0]].get("torch", "?")
    gemm = {p: {"gflops": med([float(rd["gemm"][p]["median_gflops"]) for rd in rounds]),
                "cpu_gflops": med([float(rd["gemm"][p]["median_cpu_gflops"]) for rd in rounds]),
                "corename": rounds[0]["gemm"][p]["corename"], "config": rounds[0]["gemm"][p]["config"],
                "auto_gflops": med([float(rd["gemm_auto"][p]["median_gflops"]) for rd in rounds]),
                "auto_cpu_gflops": med([float(rd["gemm_auto"][p]["median_cpu_gflops"]) for rd in rounds]),
                "auto_corename": rounds[0]["gemm_auto"][p]["corename"]}
            for p in PRECISIONS}
    res = {}
    for n in NAMES:
        m = MODELS[n]
        f = flops(m["C"], m["n"], m["L"], BATCH)
        for p in PRECISIONS:
            key = "%s/%s" % (n, p)
            s = [float(rd["spdl"][key]["median_ms"]) for rd in rounds]
            # PyTorch's time in a round: the faster variant's (by wall and by CPU time apart)
            tv = {vr: [float(rd["torch"][key][vr]["median_ms"]) for rd in rounds] for vr in VARIANTS}
            tvc = {vr: [float(rd["torch"][key][vr]["median_cpu_ms"]) for rd in rounds] for vr in VARIANTS}
            t = [min(tv[vr][i] for vr in VARIANTS) for i in range(len(rounds))]
            sc = [float(rd["spdl"][key]["median_cpu_ms"]) for rd in rounds]
            tc = [min(tvc[vr][i] for vr in VARIANTS) for i in range(len(rounds))]
            faster = min(VARIANTS, key=lambda vr: med(tvc[vr]))
            ratios = [b / a for a, b in zip(s, t)]
            ratios_cpu = [b / a for a, b in zip(sc, tc)]
            res[key] = {"model": n, "precision": p, "spdl_ms": med(s), "torch_ms": med(t), "ratio": med(ratios),
                        "ratio_min": min(ratios), "ratio_max": max(ratios), "spdl_cpu_ms": med(sc),
                        "torch_cpu_ms": med(tc), "ratio_cpu": med(ratios_cpu), "ratio_cpu_min": min(ratios_cpu),
                        "ratio_cpu_max": max(ratios_cpu), "flops": f,
                        "spdl_gflops": f / (med(s) * 1e-3) * 1e-9, "spdl_cpu_gflops": f / (med(sc) * 1e-3) * 1e-9,
                        "torch_gflops": f / (med(t) * 1e-3) * 1e-9, "torch_cpu_gflops": f / (med(tc) * 1e-3) * 1e-9,
                        "torch_variant_ms": {vr: med(tv[vr]) for vr in VARIANTS},
                        "torch_variant_cpu_ms": {vr: med(tvc[vr]) for vr in VARIANTS}, "torch_faster": faster}

    out()
    out("## Speed: one training step (M_loss_grad) of the p4 models, batch %d, one thread" % BATCH)
    out()
    out("digits_c4: tests/design/digits_c4.spn (lift 1 -> 4, 4 layers, 8 x 8); c4_28: bench/c4_28.spn "
        "(lift 1 -> 16, 2 layers, 28 x 28). PyTorch %s in float64 for double, float32 for float. Medians over %d "
        "rounds of the median of the repeats (digits_c4: %d repeats of >= %g s; c4_28: %d repeats of >= %g s); "
        "PyTorch's time in a round is its faster gconv' variant's (conv_transpose2d or conv2d with the flipped "
        "bank; both below); ratio = PyTorch time / spdl time, the median of the rounds' ratios (range in "
        "brackets)." % (
            torch_version, ROUNDS, MODELS["digits_c4"]["repeats"], MODELS["digits_c4"]["sec"],
            MODELS["c4_28"]["repeats"], MODELS["c4_28"]["sec"]))
    out()
    out("| model | precision | spdl ms | PyTorch ms | ratio | target | met | spdl CPU ms | PyTorch CPU ms "
        "| ratio (CPU time) |")
    out("|---|---|---|---|---|---|---|---|---|---|")
    for key, v in res.items():
        out("| %s | %s | %.4g | %.4g | %.2fx (%.2f-%.2f) | >= %gx | %s | %.4g | %.4g | %.2fx (%.2f-%.2f) |" % (
            v["model"], v["precision"], v["spdl_ms"], v["torch_ms"], v["ratio"], v["ratio_min"], v["ratio_max"],
            TARGET_RATIO, "yes" if v["ratio"] >= TARGET_RATIO else "**no**", v["spdl_cpu_ms"], v["torch_cpu_ms"],
            v["ratio_cpu"], v["ratio_cpu_min"], v["ratio_cpu_max"]))
    out()
    out("PyTorch by gconv' variant (medians over the rounds):")
    out()
    out("| model | precision | transpose ms | transpose CPU ms | flip ms | flip CPU ms | faster (CPU time) |")
    out("|---|---|---|---|---|---|---|")
    for key, v in res.items():
        a, b = v["torch_variant_ms"], v["torch_variant_cpu_ms"]
        out("| %s | %s | %.4g | %.4g | %.4g | %.4g | %s |" % (
            v["model"], v["precision"], a["transpose"], b["transpose"], a["flip"], b["flip"], v["torch_faster"]))
    out()
    out("## Achieved GFLOP/s against OpenBLAS gemm (n = 1024, one thread, same rounds)")
    out()
    out("Convolution flops only: per layer 2 convolutions of 4C -> 4C maps, each forward plus 2 adjoint products, "
        "the lift forward plus its kernel gradient; 2 x 9 flops per output pixel and input map (the dense count).")
    out()
    for p in PRECISIONS:
        out("%s: %.1f GFLOP/s (wall), %.1f (CPU time); %s. With OPENBLAS_CORETYPE unset (%s kernels): "
            "%.1f (wall), %.1f (CPU time)." % (
                gemm_name(p), gemm[p]["gflops"], gemm[p]["cpu_gflops"], gemm[p]["config"], gemm[p]["auto_corename"],
                gemm[p]["auto_gflops"], gemm[p]["auto_cpu_gflops"]))
    out()
    out("The percentages are of the first figure (OpenBLAS on its AVX2 kernels, as speed.py measures it; "
        "spdl's code is AVX2 too). PyTorch's float32 conv2d runs oneDNN's own kernels (%s), which can pass it."
        % blas["onednn_conv_impl"])
    out()
    out("Each row's gemm is the same precision's: dgemm for double, sgemm for float.")
    out()
    out("| model | precision | GFLOP per step | spdl GFLOP/s | of gemm | PyTorch GFLOP/s | of gemm "
        "| spdl GFLOP/s (CPU time) | of gemm (CPU) | PyTorch GFLOP/s (CPU time) | of gemm (CPU) |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, v in res.items():
        g, gc = gemm[v["precision"]]["gflops"], gemm[v["precision"]]["cpu_gflops"]
        out("| %s | %s | %.3g | %.2f | %.0f%% | %.2f | %.0f%% | %.2f | %.0f%% | %.2f | %.0f%% |" % (
            v["model"], v["precision"], v["flops"] * 1e-9, v["spdl_gflops"], 100 * v["spdl_gflops"] / g,
            v["torch_gflops"], 100 * v["torch_gflops"] / g, v["spdl_cpu_gflops"], 100 * v["spdl_cpu_gflops"] / gc,
            v["torch_cpu_gflops"], 100 * v["torch_cpu_gflops"] / gc))

    prof = {}
    if HOTSPOTS:
        out()
        out("## Where the time goes")
        out()
        out("spdl: perf cpu-clock samples of the harness (our process only; the model built with -g, the same "
            "flags otherwise), attributed to source lines of the generated M.c and grouped by the runtime kernel "
            "they belong to. The samples include the harness's warm-up calls. PyTorch: "
            "torch.autograd.profiler's self CPU time by operator over 3 steps of the faster variant (the float64 "
            "convolutions are im2col + OpenBLAS gemm inside _slow_conv2d_* and slow_conv_transpose2d; float32 "
            "conv2d runs oneDNN inside mkldnn_convolution and convolution_backward, float32 conv_transpose2d "
            "is slow_conv_transpose2d).")
        for n in NAMES:
            for p in PRECISIONS:
                key = "%s/%s" % (n, p)
                rows = perf_profile(n, p)
                vr = res[key]["torch_faster"]
                tp = common.run_kv(torch_py + ["profile"] + torch_args(n) + [TORCH_DTYPE[p], vr])
                ops = sorted(((k[3:], float(v)) for k, v in tp.items() if k.startswith("op ")), key=lambda kv: -kv[1])
                prof[key] = {"spdl": rows, "spdl_kernels": kernel_groups(rows) if rows else None, "torch": ops,
                             "torch_variant": vr}
                out()
                out("### %s, %s" % (n, p))
                out()
                if rows is None:
                    out("(perf is not available)")
                else:
                    out("| spdl: where | share of samples |")
                    out("|---|---|")
                    for cat, share in prof[key]["spdl_kernels"]:
                        out("| %s | %.1f%% |" % (cat, share))
                out()
                out("| PyTorch (%s) operator (self CPU time) | share |" % vr)
                out("|---|---|")
                for op, share in ops[:8]:
                    out("| %s | %.1f%% |" % (op, 100 * share))
    out()
    out("load average at end: %s" % common.loadavg())

    with open(os.path.join(common.BUILD, "conv.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(common.BUILD, "conv.json"), "w") as f:
        json.dump({"machine": mach, "blas": blas, "torch": torch_version, "batch": BATCH,
                   "models": {n: MODELS[n] for n in NAMES},
                   "check": {"%s/%s" % k: v for k, v in check.items()}, "rounds": rounds, "results": res,
                   "gemm": gemm, "profiles": prof}, f, indent=1)


if __name__ == "__main__":
    main()
