"""speed.py - issue 3's benchmark: one training step (M_loss_grad: forward,
loss, gradient) of the two-spirals Hamiltonian model (bench/model.sh: DESIGN
section 3 at width w, 20 Verlet layers), batch 256, double, one thread, in
spdl-generated C and in PyTorch, in the same run; OpenBLAS dgemm (n = 1024)
in the same run for the machine's rate; the generated code's peak memory.

Environment: ROUNDS (3), REPEATS (9), SEC (0.3 s per repeat at least),
WIDTHS (4,16,64,256), LAYERS (20), BATCH (256). Writes build/bench/speed.md
and build/bench/speed.json. See bench/README.md for what is counted."""
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
TARGET_RATIO = {4: 8.0, 16: 3.0, 64: 1.5, 256: 1.0}


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
    exes = {w: common.build_model(w, LAYERS) for w in WIDTHS}
    dgemm = common.build_dgemm()
    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_spirals.py")]

    # the same model: PyTorch's gradient at the C's parameters and data
    check = {}
    for w in WIDTHS:
        prefix = os.path.join(common.BUILD, "check_w%d" % w)
        c = common.run_kv([exes[w], "dump", str(BATCH), prefix])
        t = common.run_kv(torch_py + ["check", str(w), str(LAYERS), str(BATCH), prefix])
        lc, lt = float(c["loss"]), float(t["loss"])
        check[w] = {"loss_c": lc, "loss_torch": lt, "grad_rel_err": float(t["grad_rel_err"])}
        if abs(lc - lt) > 1e-10 * max(1.0, abs(lt)) or check[w]["grad_rel_err"] > 1e-10:
            sys.exit("speed: PyTorch and spdl disagree at width %d: %s" % (w, check[w]))
    out("same model: PyTorch's loss and gradient at the C's parameters and data agree to %.1e (worst, relative)"
        % max(v["grad_rel_err"] for v in check.values()))

    rounds = []
    for r in range(ROUNDS):
        rd = {"dgemm": common.run_kv([dgemm, "1024", str(REPEATS)]), "spdl": {}, "torch": {}}
        for w in WIDTHS:
            rd["spdl"][w] = common.run_kv([exes[w], "time", str(BATCH), str(REPEATS), str(SEC)])
            rd["torch"][w] = common.run_kv(torch_py + ["time", str(w), str(LAYERS), str(BATCH), str(REPEATS), str(SEC)])
            out("round %d, w=%d: spdl %s ms (cpu %s), torch %s ms (cpu %s)" % (
                r + 1, w, rd["spdl"][w]["median_ms"], rd["spdl"][w]["median_cpu_ms"],
                rd["torch"][w]["median_ms"], rd["torch"][w]["median_cpu_ms"]))
        out("round %d: dgemm %s GFLOP/s (cpu %s), corename %s; load average %s" % (
            r + 1, rd["dgemm"]["median_gflops"], rd["dgemm"]["median_cpu_gflops"], rd["dgemm"]["corename"],
            common.loadavg()))
        rounds.append(rd)

    med = common.median
    torch_version = rounds[0]["torch"][WIDTHS[0]].get("torch", "?")
    dg = med([float(rd["dgemm"]["median_gflops"]) for rd in rounds])
    dg_cpu = med([float(rd["dgemm"]["median_cpu_gflops"]) for rd in rounds])
    res = {}
    for w in WIDTHS:
        s = [float(rd["spdl"][w]["median_ms"]) for rd in rounds]
        t = [float(rd["torch"][w]["median_ms"]) for rd in rounds]
        sc = [float(rd["spdl"][w]["median_cpu_ms"]) for rd in rounds]
        tc = [float(rd["torch"][w]["median_cpu_ms"]) for rd in rounds]
        ratios = [b / a for a, b in zip(s, t)]
        ratios_cpu = [b / a for a, b in zip(sc, tc)]
        f = flops(w, LAYERS, BATCH)
        res[w] = {"spdl_ms": med(s), "torch_ms": med(t), "ratio": med(ratios), "ratio_min": min(ratios),
                  "ratio_max": max(ratios), "spdl_cpu_ms": med(sc), "torch_cpu_ms": med(tc),
                  "ratio_cpu": med(ratios_cpu), "flops": f, "gflops": f / (med(s) * 1e-3) * 1e-9,
                  "gflops_cpu": f / (med(sc) * 1e-3) * 1e-9}

    out()
    out("## Speed: one training step (M_loss_grad), batch %d, %d layers, double, one thread" % (BATCH, LAYERS))
    out()
    out("PyTorch %s; medians over %d rounds of the median of %d repeats (each >= %g s); ratio = PyTorch time / "
        "spdl time, the median of the rounds' ratios (range in brackets)." % (torch_version, ROUNDS, REPEATS, SEC))
    out()
    out("| width | spdl ms | PyTorch ms | ratio | target | met | spdl CPU ms | PyTorch CPU ms | ratio (CPU time) |")
    out("|---|---|---|---|---|---|---|---|---|")
    for w in WIDTHS:
        v = res[w]
        tgt = TARGET_RATIO.get(w)
        met = "-" if tgt is None else ("yes" if v["ratio"] >= tgt else "**no**")
        out("| %d | %.3g | %.3g | %.2fx (%.2f-%.2f) | %s | %s | %.3g | %.3g | %.2fx |" % (
            w, v["spdl_ms"], v["torch_ms"], v["ratio"], v["ratio_min"], v["ratio_max"],
            "-" if tgt is None else ">= %gx" % tgt, met, v["spdl_cpu_ms"], v["torch_cpu_ms"], v["ratio_cpu"]))
    out()
    out("## Achieved GFLOP/s against OpenBLAS dgemm (n = 1024, one thread, same run)")
    out()
    out("dgemm: %.1f GFLOP/s (wall), %.1f (CPU time); kernels: %s." % (dg, dg_cpu, rounds[0]["dgemm"]["corename"]))
    out()
    out("| width | MFLOP per step | spdl GFLOP/s | of dgemm | target (w >= 64) | met | GFLOP/s by CPU time | of dgemm (CPU) |")
    out("|---|---|---|---|---|---|---|---|")
    for w in WIDTHS:
        v = res[w]
        frac, frac_cpu = v["gflops"] / dg, v["gflops_cpu"] / dg_cpu
        tgt = w >= 64
        out("| %d | %.1f | %.2f | %.0f%% | %s | %s | %.2f | %.0f%% |" % (
            w, v["flops"] * 1e-6, v["gflops"], 100 * frac, ">= 50%" if tgt else "-",
            ("yes" if frac >= 0.5 else "**no**") if tgt else "-", v["gflops_cpu"], 100 * frac_cpu))

    # memory of one step, each in a fresh process
    out()
    out("## Peak memory of one training step (fresh process each)")
    out()
    out("stored states = the tape of --memory=store: the state (y, z) before every layer and after the last, "
        "(N+1) x 2w x %d lanes (one tile of samples at a time), and every layer's values that are not fused "
        "away (the products' results, the tanh values, the half-step y: 7 w x %d per layer); parameter-sized "
        "= the work buffer's copy of theta and K' and their gradient accumulators, 2 P + 2 N w^2 doubles; the "
        "rest is per-tile scratch, the same for every depth and batch." % (common.BT, common.BT))
    out()
    out("| width | work buffer KiB | = stored states KiB | + parameter-sized KiB | + rest KiB | RSS before step KiB "
        "| peak RSS KiB | peak - before KiB | peak - before - work KiB |")
    out("|---|---|---|---|---|---|---|---|---|")
    mem = {}
    for w in WIDTHS:
        m = common.run_kv([exes[w], "mem", str(BATCH)])
        ws = int(m["work_size"])
        P = int(m["nparam"])
        states = ((LAYERS + 1) * 2 * w + LAYERS * 7 * w) * common.BT * 8
        params = (2 * P + 2 * LAYERS * w * w) * 8
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
        json.dump({"machine": mach, "check": check, "rounds": rounds, "results": res, "dgemm_gflops": dg,
                   "dgemm_cpu_gflops": dg_cpu, "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
