"""speed.py - issues 3 and 12's benchmark: one training step (M_loss_grad:
forward, loss, gradient) of the two-spirals Hamiltonian model
(bench/model.sh: DESIGN section 3 at width w, 20 Verlet layers), batch 256,
one thread, in spdl-generated C (--precision double and float, compiled as
`spdlc build` compiles it: the host's -march) and in PyTorch (float64 and
float32), in the same run; OpenBLAS dgemm and sgemm (n = 1024) in the same
run for the machine's rate; the generated code's peak memory (double).
OpenBLAS (the gemm program's and PyTorch's) picks its kernels for this CPU
(OPENBLAS_CORETYPE unset): AVX-512 ones where the CPU has AVX-512.

Environment: ROUNDS (3), REPEATS (9), SEC (0.3 s per repeat at least),
WIDTHS (4,16,64,256), LAYERS (20), BATCH (256), PRECISIONS (double,float).
Writes build/bench/speed.md and build/bench/speed.json. See bench/README.md
for what is counted."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPEATS = int(os.environ.get("REPEATS", "9"))
SEC = float(os.environ.get("SEC", "0.3"))
WIDTHS = [int(v) for v in os.environ.get("WIDTHS", "4,16,64,256").split(",")]
LAYERS = int(os.environ.get("LAYERS", "20"))
BATCH = int(os.environ.get("BATCH", "256"))
PRECISIONS = os.environ.get("PRECISIONS", "double,float").split(",")
TARGET_RATIO = {4: 8.0, 16: 3.0, 64: 2.0, 256: 1.3}    # issue 12, both precisions
TARGET_GEMM = 0.7                                        # of the same-run gemm rate, w >= 64
TORCH_DTYPE = {"double": "float64", "float": "float32"}
GEMM = {"double": "dgemm", "float": "sgemm"}
# spdl in float against PyTorch in float64 at the same parameters: float rounding
TOL = {"double": 1e-10, "float": 1e-3}


def flops(w, n, b):
    """Floating-point operations of the matrix products of one M_loss_grad
    call with --memory=store (multiply and add counted apart: an m x k by
    k x n product is 2 m k n). Per layer the Verlet step has 3 products of
    the w x w matrix K (or K') with a w x b block of states in the forward
    pass and 2 per product in the adjoint (K' G for the state's adjoint,
    G X' for K's gradient; store keeps the layer's values, so nothing is
    recomputed): 9 products of 2 b w^2. The read-out W * y (2 x w) adds one
    product forward and two backward. Element-wise work (bias, tanh,
    scaling, softmax, the smooth regulariser) is not counted."""
    return 9 * n * 2 * b * w * w + 3 * 2 * b * 2 * w


def main():
    lines, out, mach = common.start_report()
    env = common.bench_env()
    env.pop("OPENBLAS_CORETYPE", None)
    keys = [(w, p) for p in PRECISIONS for w in WIDTHS]
    exes = {(w, p): common.build_model(w, LAYERS, precision=p) for w, p in keys}
    dgemm = common.build_dgemm()
    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_spirals.py")]
    out("spdl's code compiled with %s" % " ".join(common.MODEL_CFLAGS))

    # the same model: PyTorch's loss and gradient (float64) at the C's parameters and data
    check = {}
    for w, p in keys:
        prefix = os.path.join(common.BUILD, "check_w%d_%s" % (w, p))
        c = common.run_kv([exes[(w, p)], "dump", str(BATCH), prefix], env)
        t = common.run_kv(torch_py + ["check", str(w), str(LAYERS), str(BATCH), prefix], env)
        lc, lt = float(c["loss"]), float(t["loss"])
        check["%d/%s" % (w, p)] = v = {"loss_c": lc, "loss_torch": lt, "grad_rel_err": float(t["grad_rel_err"])}
        if abs(lc - lt) > TOL[p] * max(1.0, abs(lt)) or v["grad_rel_err"] > TOL[p]:
            sys.exit("speed: PyTorch and spdl (%s) disagree at width %d: %s" % (p, w, v))
    for p in PRECISIONS:
        out("same model, %s: PyTorch float64's loss and gradient at the C's parameters and data agree to %.1e "
            "(worst, relative)" % (p, max(v["grad_rel_err"] for k, v in check.items() if k.endswith("/" + p))))

    rounds = []
    for r in range(ROUNDS):
        rd = {"gemm": {p: common.run_kv([dgemm, "1024", str(REPEATS), p], env) for p in PRECISIONS},
              "spdl": {}, "torch": {}}
        for w, p in keys:
            k = "%d/%s" % (w, p)
            rd["spdl"][k] = common.run_kv([exes[(w, p)], "time", str(BATCH), str(REPEATS), str(SEC)], env)
            rd["torch"][k] = common.run_kv(torch_py + ["time", str(w), str(LAYERS), str(BATCH), str(REPEATS),
                                                       str(SEC), TORCH_DTYPE[p]], env)
            out("round %d, w=%d %s: spdl %s ms (cpu %s), torch %s ms (cpu %s)" % (
                r + 1, w, p, rd["spdl"][k]["median_ms"], rd["spdl"][k]["median_cpu_ms"],
                rd["torch"][k]["median_ms"], rd["torch"][k]["median_cpu_ms"]))
        out("round %d: %s; load average %s" % (r + 1, ", ".join(
            "%s %s GFLOP/s (cpu %s)" % (GEMM[p], rd["gemm"][p]["median_gflops"], rd["gemm"][p]["median_cpu_gflops"])
            for p in PRECISIONS), common.loadavg()))
        rounds.append(rd)

    med = common.median
    torch_version = next(iter(rounds[0]["torch"].values())).get("torch", "?")
    gemm = {p: {"gflops": med([float(rd["gemm"][p]["median_gflops"]) for rd in rounds]),
                "cpu_gflops": med([float(rd["gemm"][p]["median_cpu_gflops"]) for rd in rounds]),
                "corename": rounds[0]["gemm"][p]["corename"]} for p in PRECISIONS}
    res = {}
    for w, p in keys:
        k = "%d/%s" % (w, p)
        s = [float(rd["spdl"][k]["median_ms"]) for rd in rounds]
        t = [float(rd["torch"][k]["median_ms"]) for rd in rounds]
        sc = [float(rd["spdl"][k]["median_cpu_ms"]) for rd in rounds]
        tc = [float(rd["torch"][k]["median_cpu_ms"]) for rd in rounds]
        ratios = [b / a for a, b in zip(s, t)]
        ratios_cpu = [b / a for a, b in zip(sc, tc)]
        f = flops(w, LAYERS, BATCH)
        res[k] = {"spdl_ms": med(s), "torch_ms": med(t), "ratio": med(ratios), "ratio_min": min(ratios),
                  "ratio_max": max(ratios), "spdl_cpu_ms": med(sc), "torch_cpu_ms": med(tc),
                  "ratio_cpu": med(ratios_cpu), "flops": f, "gflops": f / (med(s) * 1e-3) * 1e-9,
                  "gflops_cpu": f / (med(sc) * 1e-3) * 1e-9}

    out()
    out("## Speed: one training step (M_loss_grad), batch %d, %d layers, one thread" % (BATCH, LAYERS))
    out()
    out("PyTorch %s in float64 against double, float32 against float; medians over %d rounds of the median of %d "
        "repeats (each >= %g s); ratio = PyTorch time / spdl time, the median of the rounds' ratios (range in "
        "brackets)." % (torch_version, ROUNDS, REPEATS, SEC))
    out()
    out("| width | precision | spdl ms | PyTorch ms | ratio | target | met | spdl CPU ms | PyTorch CPU ms "
        "| ratio (CPU time) |")
    out("|---|---|---|---|---|---|---|---|---|---|")
    for w, p in keys:
        v = res["%d/%s" % (w, p)]
        tgt = TARGET_RATIO.get(w)
        met = "-" if tgt is None else ("yes" if v["ratio"] >= tgt else "**no**")
        out("| %d | %s | %.3g | %.3g | %.2fx (%.2f-%.2f) | %s | %s | %.3g | %.3g | %.2fx |" % (
            w, p, v["spdl_ms"], v["torch_ms"], v["ratio"], v["ratio_min"], v["ratio_max"],
            "-" if tgt is None else ">= %gx" % tgt, met, v["spdl_cpu_ms"], v["torch_cpu_ms"], v["ratio_cpu"]))
    out()
    out("## Achieved GFLOP/s against OpenBLAS dgemm/sgemm (n = 1024, one thread, same run)")
    out()
    for p in PRECISIONS:
        out("%s: %.1f GFLOP/s (wall), %.1f (CPU time); kernels: %s." % (
            GEMM[p], gemm[p]["gflops"], gemm[p]["cpu_gflops"], gemm[p]["corename"]))
    out()
    out("| width | precision | MFLOP per step | spdl GFLOP/s | of %s | target (w >= 64) | met | GFLOP/s by CPU time "
        "| of gemm (CPU) |" % "/".join(GEMM[p] for p in PRECISIONS))
    out("|---|---|---|---|---|---|---|---|---|")
    for w, p in keys:
        v = res["%d/%s" % (w, p)]
        frac, frac_cpu = v["gflops"] / gemm[p]["gflops"], v["gflops_cpu"] / gemm[p]["cpu_gflops"]
        tgt = w >= 64
        out("| %d | %s | %.1f | %.2f | %.0f%% | %s | %s | %.2f | %.0f%% |" % (
            w, p, v["flops"] * 1e-6, v["gflops"], 100 * frac, ">= %.0f%%" % (100 * TARGET_GEMM) if tgt else "-",
            ("yes" if frac >= TARGET_GEMM else "**no**") if tgt else "-", v["gflops_cpu"], 100 * frac_cpu))

    # memory of one step (double), each in a fresh process
    mem = {}
    if "double" in PRECISIONS:
        out()
        out("## Peak memory of one training step (fresh process each)")
        out()
        out("stored states = the tape of --memory=store: the state (y, z) before every layer and after the last, "
            "(N+1) x 2w x %d lanes (one tile of samples at a time), and every layer's values that are not fused "
            "away (the products' results, the tanh values, the half-step y: 7 w x %d per layer); parameter-sized "
            "= the work buffer's gradient accumulator, P doubles (theta is read in place, K' through strides); the "
            "rest is per-tile scratch, the same for every depth and batch." % (common.BT, common.BT))
        out()
        out("| width | work buffer KiB | = stored states KiB | + parameter-sized KiB | + rest KiB | RSS before step KiB "
            "| peak RSS KiB | peak - before KiB | peak - before - work KiB |")
        out("|---|---|---|---|---|---|---|---|---|")
        for w in WIDTHS:
            m = common.run_kv([exes[(w, "double")], "mem", str(BATCH)], env)
            ws = int(m["work_size"])
            P = int(m["nparam"])
            states = ((LAYERS + 1) * 2 * w + LAYERS * 7 * w) * common.BT * 8
            params = P * 8
            rest = ws - states - params
            before, peak = int(m["rss_before_kib"]), int(m["hwm_kib"])
            mem[w] = {"work_size": ws, "stored_states": states, "param_sized": params, "rest": rest,
                      "rss_before_kib": before, "hwm_kib": peak, "maxrss_kib": int(m["maxrss_kib"])}
            out("| %d | %.0f | %.0f | %.0f | %.0f | %d | %d | %d | %d |" % (
                w, ws / 1024, states / 1024, params / 1024, rest / 1024, before, peak, peak - before,
                peak - before - ws / 1024))
        out()
    out("load average at end: %s" % common.loadavg())

    with open(os.path.join(common.BUILD, "speed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(common.BUILD, "speed.json"), "w") as f:
        json.dump({"machine": mach, "check": check, "rounds": rounds, "results": res, "gemm": gemm,
                   "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
