"""memory.py - issue 6's benchmark: peak resident memory of one training step
(M_loss_grad) of the Verlet spirals model (bench/model.sh) at width 64, batch
256, depths N = 10, 100, 1000, for --memory=store, invert and checkpoint,
each in a fresh process, with PyTorch's figure for the same model beside
them; and the time per step of each mode, so that invert / store can be
compared.

Environment: DEPTHS (10,100,1000), WIDTH (64), BATCH (256), MEM_REPEATS
(3 fresh processes per figure, median), ROUNDS (3), REPEATS (9), SEC (0.3),
TIME_DEPTHS (10,100,1000). Writes build/bench/memory.md and memory.json."""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DEPTHS = [int(v) for v in os.environ.get("DEPTHS", "10,100,1000").split(",")]
TIME_DEPTHS = [int(v) for v in os.environ.get("TIME_DEPTHS", "10,100,1000").split(",")]
WIDTH = int(os.environ.get("WIDTH", "64"))
BATCH = int(os.environ.get("BATCH", "256"))
MEM_REPEATS = int(os.environ.get("MEM_REPEATS", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPEATS = int(os.environ.get("REPEATS", "9"))
SEC = float(os.environ.get("SEC", "0.3"))
MODES = ["store", "invert", "checkpoint"]
MiB = 1024.0


def main():
    lines, out, mach = common.start_report()
    med = common.median
    exes = {(n, m): common.build_model(WIDTH, n, m) for n in sorted(set(DEPTHS + TIME_DEPTHS)) for m in MODES}
    shared = {(n, m): common.build_model(WIDTH, n, m, shared=True) for n in DEPTHS for m in MODES}
    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_spirals.py")]
    slot = 2 * WIDTH * common.BT * 8     # one stored state (y, z) of a tile, bytes

    mem = {}
    for n in DEPTHS:
        for m in MODES:
            runs = [common.run_kv([exes[(n, m)], "mem", str(BATCH)]) for _ in range(MEM_REPEATS)]
            P = int(runs[0]["nparam"])
            ws = int(runs[0]["work_size"])
            mem[(n, m)] = {"work_size": ws, "nparam": P,
                           "hwm_kib": med([int(r["hwm_kib"]) for r in runs]),
                           "maxrss_kib": med([int(r["maxrss_kib"]) for r in runs]),
                           "before_kib": med([int(r["rss_before_kib"]) for r in runs]),
                           "loss": float(runs[0]["loss"])}
        runs = [common.run_kv(torch_py + ["mem", str(WIDTH), str(n), str(BATCH)]) for _ in range(MEM_REPEATS)]
        mem[(n, "torch")] = {"hwm_kib": med([int(r["hwm_kib"]) for r in runs]),
                             "maxrss_kib": med([int(r["maxrss_kib"]) for r in runs]),
                             "before_kib": med([int(r["rss_before_kib"]) for r in runs])}
        out("N=%d: peak RSS (MiB) store %.1f, invert %.1f, checkpoint %.1f, PyTorch %.1f" % (
            n, mem[(n, "store")]["hwm_kib"] / MiB, mem[(n, "invert")]["hwm_kib"] / MiB,
            mem[(n, "checkpoint")]["hwm_kib"] / MiB, mem[(n, "torch")]["hwm_kib"] / MiB))
        losses = [mem[(n, m)]["loss"] for m in MODES]
        if max(losses) - min(losses) > 1e-12 * abs(losses[0]):
            sys.exit("memory: the three modes give different losses at N=%d: %s" % (n, losses))

    # the same model with one K and b for all layers: nothing grows with depth but what is stored
    smem = {}
    for n in DEPTHS:
        for m in MODES:
            runs = [common.run_kv([shared[(n, m)], "mem", str(BATCH)]) for _ in range(MEM_REPEATS)]
            smem[(n, m)] = {"hwm_kib": med([int(r["hwm_kib"]) for r in runs]), "work_size": int(runs[0]["work_size"]),
                            "nparam": int(runs[0]["nparam"])}
        out("N=%d, shared weights: peak RSS (MiB) store %.1f, invert %.1f, checkpoint %.1f" % (
            n, smem[(n, "store")]["hwm_kib"] / MiB, smem[(n, "invert")]["hwm_kib"] / MiB,
            smem[(n, "checkpoint")]["hwm_kib"] / MiB))

    times = {}
    for r in range(ROUNDS):
        for n in TIME_DEPTHS:
            for m in MODES:
                t = common.run_kv([exes[(n, m)], "time", str(BATCH), str(REPEATS), str(SEC)])
                times.setdefault((n, m), []).append(t)
            out("round %d, N=%d: ms per step store %s, invert %s, checkpoint %s; load average %s" % (
                r + 1, n, times[(n, "store")][-1]["median_ms"], times[(n, "invert")][-1]["median_ms"],
                times[(n, "checkpoint")][-1]["median_ms"], common.loadavg()))

    def param_sized(n):
        """bytes that grow with the parameters, not with what is stored: the
        caller's theta and gradient (2 P doubles) and the work buffer's
        gradient accumulator (P doubles; the generated code reads theta in
        place and K only, K' through strides)"""
        P = mem[(n, "store")]["nparam"]
        return 3 * P * 8

    out()
    out("## Peak memory of one training step: width %d, batch %d (fresh process each, median of %d)"
        % (WIDTH, BATCH, MEM_REPEATS))
    out()
    out("Peak RSS is the process's VmHWM after the step, MiB. For the generated code the step allocates nothing: "
        "its memory is the work buffer M_work_size, which holds what the mode stores, parameter-sized buffers and "
        "per-tile scratch. 'stored beyond invert' is the work buffer less invert's: store keeps every layer's input "
        "and every layer's values its adjoint reads (so its adjoint recomputes nothing), checkpoint keeps ceil(log2 N) + 1 layer "
        "inputs (slots of %d KiB: 2w x %d lanes, doubles). 'beyond parameters' is the peak minus the "
        "parameter-sized memory (theta and the gradient in the caller, and the work buffer's gradient "
        "accumulator: 3 P doubles). 'scratch' is invert's work buffer less its gradient accumulator (P): the "
        "constant. 'peak - before - work' is what the step touched beyond "
        "the work buffer." % (slot // 1024, common.BT))
    out()
    out("| N | mode | peak RSS MiB | work buffer MiB | stored beyond invert MiB | parameter-sized MiB "
        "| beyond parameters MiB | scratch KiB | peak - before - work KiB |")
    out("|---|---|---|---|---|---|---|---|---|")
    for n in DEPTHS:
        base = mem[(n, "invert")]["work_size"]
        P = mem[(n, "store")]["nparam"]
        for m in MODES:
            v = mem[(n, m)]
            v["stored"] = v["work_size"] - base
            v["param_sized"] = param_sized(n)
            v["beyond_kib"] = v["hwm_kib"] - param_sized(n) / 1024
            v["scratch"] = base - P * 8
            out("| %d | %s | %.1f | %.2f | %.2f | %.1f | %.2f | %.0f | %d |" % (
                n, m, v["hwm_kib"] / MiB, v["work_size"] / 2 ** 20, v["stored"] / 2 ** 20, param_sized(n) / 2 ** 20,
                v["beyond_kib"] / MiB, v["scratch"] / 1024, v["hwm_kib"] - v["before_kib"] - v["work_size"] // 1024))
        t = mem[(n, "torch")]
        t["growth_kib"] = t["hwm_kib"] - t["before_kib"]
        out("| %d | PyTorch | %.1f | - | - | - | step grew RSS by %.1f | - | - |" % (
            n, t["hwm_kib"] / MiB, t["growth_kib"] / MiB))
    out()
    out("checkpoint's snapshots: %s; stored slots by its work buffer: %s." % (
        ", ".join("N=%d: %d" % (n, math.ceil(math.log2(n)) + 1) for n in DEPTHS),
        ", ".join("N=%d: %.0f" % (n, mem[(n, "checkpoint")]["stored"] / slot) for n in DEPTHS)))
    # depth-independence of invert
    n0, n1 = min(DEPTHS), max(DEPTHS)
    a, b = mem[(n0, "invert")], mem[(n1, "invert")]
    growth_total = b["hwm_kib"] / a["hwm_kib"] - 1
    growth_beyond = b["beyond_kib"] / a["beyond_kib"] - 1
    out()
    out("invert, N=%d against N=%d: peak RSS %+.0f%% (target within 10%%: %s); beyond parameters %+.1f%% (%s)" % (
        n1, n0, 100 * growth_total, "met" if abs(growth_total) <= 0.10 else "**missed**", 100 * growth_beyond,
        "met" if abs(growth_beyond) <= 0.10 else "**missed**"))

    out()
    out("### The same model with shared weights (one K and b for every layer)")
    out()
    out("Only what a mode stores can grow with depth here: the parameters are the same at every N.")
    out()
    out("| N | store MiB | invert MiB | checkpoint MiB | work buffer store / invert / checkpoint MiB |")
    out("|---|---|---|---|---|")
    for n in DEPTHS:
        out("| %d | %.1f | %.1f | %.1f | %.2f / %.2f / %.2f |" % (
            n, smem[(n, "store")]["hwm_kib"] / MiB, smem[(n, "invert")]["hwm_kib"] / MiB,
            smem[(n, "checkpoint")]["hwm_kib"] / MiB, smem[(n, "store")]["work_size"] / 2 ** 20,
            smem[(n, "invert")]["work_size"] / 2 ** 20, smem[(n, "checkpoint")]["work_size"] / 2 ** 20))
    sg = smem[(n1, "invert")]["hwm_kib"] / smem[(n0, "invert")]["hwm_kib"] - 1
    out()
    out("invert with shared weights, N=%d against N=%d: peak RSS %+.1f%% (target within 10%%: %s)" % (
        n1, n0, 100 * sg, "met" if abs(sg) <= 0.10 else "**missed**"))

    out()
    out("## Time per step by memory mode (ms; median over %d rounds of the median of %d repeats, each >= %g s)"
        % (ROUNDS, REPEATS, SEC))
    out()
    out("| N | store | invert | checkpoint | invert / store | target | met | checkpoint / store | "
        "invert / store (CPU time) |")
    out("|---|---|---|---|---|---|---|---|---|")
    tres = {}
    for n in TIME_DEPTHS:
        ms = {m: [float(t["median_ms"]) for t in times[(n, m)]] for m in MODES}
        cpu = {m: [float(t["median_cpu_ms"]) for t in times[(n, m)]] for m in MODES}
        inv = med([i / s for i, s in zip(ms["invert"], ms["store"])])
        ck = med([c / s for c, s in zip(ms["checkpoint"], ms["store"])])
        inv_cpu = med([i / s for i, s in zip(cpu["invert"], cpu["store"])])
        tres[n] = {"ms": {m: med(ms[m]) for m in MODES}, "cpu_ms": {m: med(cpu[m]) for m in MODES},
                   "invert_over_store": inv, "checkpoint_over_store": ck, "invert_over_store_cpu": inv_cpu}
        out("| %d | %.3g | %.3g | %.3g | %.2f | <= 1.6 | %s | %.2f | %.2f |" % (
            n, med(ms["store"]), med(ms["invert"]), med(ms["checkpoint"]), inv,
            "yes" if inv <= 1.6 else "**no**", ck, inv_cpu))
    out()
    out("load average at end: %s" % common.loadavg())

    with open(os.path.join(common.BUILD, "memory.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(common.BUILD, "memory.json"), "w") as f:
        json.dump({"machine": mach, "memory": {"%d/%s" % k: v for k, v in mem.items()},
                   "shared": {"%d/%s" % k: v for k, v in smem.items()},
                   "times": {"%d/%s" % k: v for k, v in times.items()}, "time_results": tres}, f, indent=1)


if __name__ == "__main__":
    main()
