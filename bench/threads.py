"""threads.py - issue 12 item 3's benchmark: libspdl's training step split
into tiles across threads (runtime/tiles.c), on the spirals model of
bench/model.sh (LAYERS Verlet layers), batch BATCH, double.

1. What the split costs on one thread, at each width of WIDTHS: one step as
   - `batch`: one M_loss_grad call for the whole batch (train's step before
     threads; the generated code's own loop over tiles),
   - `tiles`: libspdl's step on one thread (M_tile_prepare once, one
     M_tile_loss per tile, the tiles' parameter adjoints summed in tile order,
     M_tile_finish): what `EXE train --threads 1` runs,
   - `pertile`: one M_loss_grad call per tile, gradients added with weights
     nb / B (the design not taken: the parameter code and its adjoint run
     once per tile),
   interleaved in every round; CPU time (which excludes the time other
   processes held the cores) and wall clock.
2. The speed-up: the same `tiles` step on every CPU against one, and `EXE
   train --threads N` throughput at width TRAIN_WIDTH (samples per second of
   the optimiser loop, which adds Adam and M_project to the step), N = 1 and
   every CPU.
3. PyTorch (Debian's, /usr/bin/python3; bench/torch_spirals.py) on the same
   step at TRAIN_WIDTH, with one thread and with its default threads.

Environment: ROUNDS (3), REPEATS (5), SEC (0.4), WIDTHS (16,64), LAYERS
(20), BATCH (1024), TRAIN_WIDTH (64), TRAIN_N (16384 samples), TRAIN_EPOCHS
(3), TORCH (1: include PyTorch). Writes build/bench/threads.md and .json."""
import json
import os
import re
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPEATS = int(os.environ.get("REPEATS", "5"))
SEC = float(os.environ.get("SEC", "0.4"))
WIDTHS = [int(v) for v in os.environ.get("WIDTHS", "16,64").split(",")]
LAYERS = int(os.environ.get("LAYERS", "20"))
BATCH = int(os.environ.get("BATCH", "1024"))
TRAIN_WIDTH = int(os.environ.get("TRAIN_WIDTH", "64"))
TRAIN_N = int(os.environ.get("TRAIN_N", "16384"))
TRAIN_EPOCHS = int(os.environ.get("TRAIN_EPOCHS", "3"))
TORCH = os.environ.get("TORCH", "1") == "1"


def ncpu():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def train(exe, threads):
    """samples/s of the optimiser loop (train's own clock), wall seconds and
    CPU seconds of the whole run"""
    out = os.path.join(common.BUILD, "threads_train.safetensors")
    cmd = [exe, "train", "--data", "builtin:spirals?n=%d" % TRAIN_N, "--batch", str(BATCH), "--epochs",
           str(TRAIN_EPOCHS), "--val", "0", "--checkpoint-every", str(TRAIN_EPOCHS), "--threads", str(threads),
           "--out", out]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = common.run(cmd)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"\(([0-9.]+) s in the optimiser loop: ([0-9]+) samples/s\)", p.stdout)
    if not m:
        sys.exit("threads: no throughput in train's output:\n" + p.stdout)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"loop_s": float(m.group(1)), "samples_per_s": float(m.group(2)), "wall_s": wall, "cpu_s": cpu}


def torch_env(threads):
    env = common.bench_env()
    if threads == "default":
        env.pop("OPENBLAS_NUM_THREADS", None)
        env.pop("OMP_NUM_THREADS", None)
    elif threads != "1":
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
    env["TORCH_THREADS"] = threads
    return env


def torch_variants(n):
    """one thread, PyTorch's default (Debian's build picks 1 on some machines), and every CPU"""
    return ["1", "default"] + ([str(n)] if n > 1 else [])


def main():
    lines, out, mach = common.start_report()
    n = ncpu()
    out("threads: every CPU this process may use = %d" % n)
    harness = {w: common.build_model(w, LAYERS) for w in sorted(set(WIDTHS + [TRAIN_WIDTH]))}
    exe = common.build_program(TRAIN_WIDTH, LAYERS)
    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_spirals.py")]
    rounds = []
    for r in range(ROUNDS):
        rd = {"step": {}, "train": {}, "torch": {}}
        for w in WIDTHS:
            h, a = harness[w], [str(BATCH), str(REPEATS), str(SEC)]
            rd["step"][w] = {
                "batch": common.run_kv([h, "time"] + a),
                "tiles": common.run_kv([h, "tiles"] + a + ["1"]),
                "pertile": common.run_kv([h, "pertile"] + a),
            }
            if n > 1:
                rd["step"][w]["tiles_all"] = common.run_kv([h, "tiles"] + a + [str(n)])
            s = rd["step"][w]
            out("round %d, w=%d: batch %s ms (cpu %s), tiles %s (cpu %s), pertile %s (cpu %s)%s" % (
                r + 1, w, s["batch"]["median_ms"], s["batch"]["median_cpu_ms"], s["tiles"]["median_ms"],
                s["tiles"]["median_cpu_ms"], s["pertile"]["median_ms"], s["pertile"]["median_cpu_ms"],
                ", tiles on %d threads %s (cpu %s)" % (n, s["tiles_all"]["median_ms"], s["tiles_all"]["median_cpu_ms"])
                if n > 1 else ""))
        for k in sorted({1, n}):
            rd["train"][k] = train(exe, k)
            out("round %d: train --threads %d: %.0f samples/s (loop %.2f s; run %.2f s wall, %.2f s CPU)" % (
                r + 1, k, rd["train"][k]["samples_per_s"], rd["train"][k]["loop_s"], rd["train"][k]["wall_s"],
                rd["train"][k]["cpu_s"]))
        if TORCH:
            for k in torch_variants(n):
                rd["torch"][k] = common.run_kv(torch_py + ["time", str(TRAIN_WIDTH), str(LAYERS), str(BATCH),
                                                           str(REPEATS), str(SEC)], env=torch_env(k))
                out("round %d: PyTorch (%s threads: %s) %s ms (cpu %s)" % (
                    r + 1, k, rd["torch"][k].get("threads", "?"), rd["torch"][k]["median_ms"],
                    rd["torch"][k]["median_cpu_ms"]))
        out("round %d: load average %s" % (r + 1, common.loadavg()))
        rounds.append(rd)

    med = common.median

    def col(w, mode, key):
        return [float(rd["step"][w][mode][key]) for rd in rounds]

    res = {"steps": {}, "train": {}, "torch": {}, "cpus": n}
    out()
    out("## One thread: libspdl's tiled step against one M_loss_grad call per batch")
    out()
    out("Batch %d, %d layers, double; medians over %d rounds of the median of %d repeats (each >= %g s); "
        "ratio = time / `batch` time, the median of the rounds' ratios (range)." % (BATCH, LAYERS, ROUNDS, REPEATS, SEC))
    out()
    out("| width | batch ms (CPU) | tiles ms (CPU) | tiles / batch, CPU | wall | pertile ms (CPU) | pertile / batch, CPU |")
    out("|---|---|---|---|---|---|---|")
    for w in WIDTHS:
        b, t, p = col(w, "batch", "median_cpu_ms"), col(w, "tiles", "median_cpu_ms"), col(w, "pertile", "median_cpu_ms")
        bw, tw = col(w, "batch", "median_ms"), col(w, "tiles", "median_ms")
        rt = [y / x for x, y in zip(b, t)]
        rp = [y / x for x, y in zip(b, p)]
        rw = [y / x for x, y in zip(bw, tw)]
        res["steps"][w] = {"batch_cpu_ms": med(b), "tiles_cpu_ms": med(t), "pertile_cpu_ms": med(p),
                           "tiles_ratio_cpu": med(rt), "tiles_ratio_wall": med(rw), "pertile_ratio_cpu": med(rp)}
        out("| %d | %.3g | %.3g | %.3f (%.3f-%.3f) | %.3f | %.3g | %.3f |" % (
            w, med(b), med(t), med(rt), min(rt), max(rt), med(rw), med(p), med(rp)))
    if n > 1:
        out()
        out("## %d threads: the tiled step against one thread" % n)
        out()
        out("| width | 1 thread ms | %d threads ms | speed-up (wall) | CPU ms, %d threads | CPU / 1 thread's |" % (n, n))
        out("|---|---|---|---|---|---|")
        for w in WIDTHS:
            t1, tn = col(w, "tiles", "median_ms"), col(w, "tiles_all", "median_ms")
            c1, cn = col(w, "tiles", "median_cpu_ms"), col(w, "tiles_all", "median_cpu_ms")
            sp = [a / b for a, b in zip(t1, tn)]
            res["steps"][w].update({"speedup_wall": med(sp), "all_ms": med(tn), "all_cpu_ms": med(cn)})
            out("| %d | %.3g | %.3g | %.2fx (%.2f-%.2f) | %.3g | %.2f |" % (
                w, med(t1), med(tn), med(sp), min(sp), max(sp), med(cn), med(cn) / med(c1)))
    out()
    out("## `EXE train`, width %d, batch %d, %d samples, %d epochs" % (TRAIN_WIDTH, BATCH, TRAIN_N, TRAIN_EPOCHS))
    out()
    out("| threads | samples/s (optimiser loop) | run wall s | run CPU s |")
    out("|---|---|---|---|")
    for k in sorted({1, n}):
        sps = [rd["train"][k]["samples_per_s"] for rd in rounds]
        res["train"][k] = {"samples_per_s": med(sps), "wall_s": med([rd["train"][k]["wall_s"] for rd in rounds]),
                           "cpu_s": med([rd["train"][k]["cpu_s"] for rd in rounds])}
        out("| %d | %.0f (%.0f-%.0f) | %.2f | %.2f |" % (k, med(sps), min(sps), max(sps), res["train"][k]["wall_s"],
                                                       res["train"][k]["cpu_s"]))
    if n > 1:
        sp = [rd["train"][n]["samples_per_s"] / rd["train"][1]["samples_per_s"] for rd in rounds]
        res["train_speedup"] = med(sp)
        out()
        out("speed-up of training on %d threads: %.2fx (rounds %.2f-%.2f)" % (n, med(sp), min(sp), max(sp)))
    if TORCH:
        out()
        out("## PyTorch, the same step (forward, loss, backward; no optimiser), width %d, batch %d" % (TRAIN_WIDTH, BATCH))
        out()
        out("| | threads | ms | CPU ms | samples/s | PyTorch ms / spdl ms, same threads |")
        out("|---|---|---|---|---|---|")
        for k in torch_variants(n):
            ms = med([float(rd["torch"][k]["median_ms"]) for rd in rounds])
            cpu = med([float(rd["torch"][k]["median_cpu_ms"]) for rd in rounds])
            th = rounds[0]["torch"][k].get("threads", "?")
            mine = col(TRAIN_WIDTH, "tiles" if th == "1" or n == 1 else "tiles_all", "median_ms") \
                if TRAIN_WIDTH in WIDTHS and th in ("1", str(n)) else None
            res["torch"][k] = {"ms": ms, "cpu_ms": cpu, "threads": th}
            out("| PyTorch %s%s | %s | %.3g | %.3g | %.0f | %s |" % (
                rounds[0]["torch"][k].get("torch", "?"), " (default threads)" if k == "default" else "", th, ms, cpu,
                BATCH / (ms * 1e-3),
                "%.2fx" % (ms / med(mine)) if mine else "-"))
    out()
    out("load average at end: %s" % common.loadavg())
    with open(os.path.join(common.BUILD, "threads.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(common.BUILD, "threads.json"), "w") as f:
        json.dump({"machine": mach, "rounds": rounds, "results": res}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
