"""mpi.py - DESIGN §9's MPI data parallelism: `mpirun -np RANKS EXE train`
(a program of `spdlc build --mpi`) against one process, on the spirals model
of bench/model.sh at width WIDTH (LAYERS Verlet layers), batch BATCH,
double, one thread a rank (--threads 1) and one thread for the one process.

Measured: training throughput (samples per second of the optimiser loop,
train's own clock, which rank 0 prints), the run's wall time, and the time a
step spends in MPI calls (train's `MPI:` line: rank 0's and the mean over
the ranks, waiting for the other ranks included: rank 1 waits for rank 0's
sum of its tiles, rank 0 for the last rank's broadcast of the whole sum).
The weights of both runs are compared byte for byte (they must be equal).
Rounds interleave the two; medians and ranges over the rounds.

On a machine whose cores other work shares, wall-clock throughput says
little (each process gets what the scheduler leaves it), so the CPU time
of each run (all its processes, mpirun's included) is measured too, and
the speed-up it implies on P dedicated cores, P x (one process's CPU
seconds) / (the ranks' CPU seconds): Open MPI's shared-memory transport
busy-polls, so a rank's waits are CPU time, and this is a lower bound.

Environment: ROUNDS (3), WIDTH (64), LAYERS (20), BATCH (1024), RANKS (2),
TRAIN_N (16384 samples), EPOCHS (3). Writes build/bench/mpi.md and .json."""
import filecmp
import json
import os
import re
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WIDTH = int(os.environ.get("WIDTH", "64"))
LAYERS = int(os.environ.get("LAYERS", "20"))
BATCH = int(os.environ.get("BATCH", "1024"))
RANKS = int(os.environ.get("RANKS", "2"))
TRAIN_N = int(os.environ.get("TRAIN_N", "16384"))
EPOCHS = int(os.environ.get("EPOCHS", "3"))


def mpi_env():
    env = common.bench_env()
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def train(cmd, out, env=None):
    cmd = cmd + ["train", "--data", "builtin:spirals?n=%d" % TRAIN_N, "--batch", str(BATCH), "--epochs", str(EPOCHS),
                 "--val", "0", "--checkpoint-every", str(EPOCHS), "--threads", "1", "--out", out]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = common.run(cmd, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    m = re.search(r"\(([0-9.]+) s in the optimiser loop: ([0-9]+) samples/s\)", p.stdout)
    if not m:
        sys.exit("mpi: no throughput in train's output:\n" + p.stdout + p.stderr)
    r = {"loop_s": float(m.group(1)), "samples_per_s": float(m.group(2)), "wall_s": wall, "cpu_s": cpu}
    m = re.search(r"MPI: (\d+) ranks, ([0-9.]+) ms a step in MPI calls on rank 0 \(([0-9.]+) ms mean over the ranks\), "
                  r"(\d+) steps", p.stdout)
    if m:
        r.update({"ranks": int(m.group(1)), "mpi_ms_rank0": float(m.group(2)), "mpi_ms_mean": float(m.group(3)),
                  "steps": int(m.group(4))})
    return r


def main():
    lines, out, mach = common.start_report()
    one_exe = common.build_program(WIDTH, LAYERS)
    mpi_exe = common.build_program(WIDTH, LAYERS, "spirals_mpi", ["--mpi"])
    mpirun = ["mpirun", "-np", str(RANKS)] + (["--oversubscribe"] if RANKS > common_cpus() else [])
    w1, wp = os.path.join(common.BUILD, "mpi_one.safetensors"), os.path.join(common.BUILD, "mpi_ranks.safetensors")
    rounds = []
    for r in range(ROUNDS):
        a = train([one_exe], w1)
        b = train(mpirun + [mpi_exe], wp, env=mpi_env())
        same = filecmp.cmp(w1, wp, shallow=False)
        rounds.append({"one": a, "ranks": b, "same_weights": same})
        out("round %d: 1 process %.0f samples/s (loop %.2f s, wall %.2f s, CPU %.2f s); %d ranks %.0f samples/s "
            "(loop %.2f s, wall %.2f s, CPU %.2f s), MPI %.3f ms a step on rank 0, %.3f mean; speed-up %.2fx (by CPU "
            "time %.2fx); weights %s; load %s" % (
                r + 1, a["samples_per_s"], a["loop_s"], a["wall_s"], a["cpu_s"], RANKS, b["samples_per_s"],
                b["loop_s"], b["wall_s"], b["cpu_s"], b["mpi_ms_rank0"], b["mpi_ms_mean"],
                b["samples_per_s"] / a["samples_per_s"], RANKS * a["cpu_s"] / b["cpu_s"],
                "identical" if same else "DIFFER", common.loadavg()))
    med = common.median
    sp = [rd["ranks"]["samples_per_s"] / rd["one"]["samples_per_s"] for rd in rounds]
    one = [rd["one"]["samples_per_s"] for rd in rounds]
    many = [rd["ranks"]["samples_per_s"] for rd in rounds]
    m0 = [rd["ranks"]["mpi_ms_rank0"] for rd in rounds]
    mm = [rd["ranks"]["mpi_ms_mean"] for rd in rounds]
    step_ms = [1e3 * rd["ranks"]["loop_s"] / max(1, rd["ranks"]["steps"]) for rd in rounds]
    spc = [RANKS * rd["one"]["cpu_s"] / rd["ranks"]["cpu_s"] for rd in rounds]
    res = {"speedup": med(sp), "one_samples_per_s": med(one), "ranks_samples_per_s": med(many),
           "mpi_ms_rank0": med(m0), "mpi_ms_mean": med(mm), "step_ms_ranks": med(step_ms),
           "same_weights": all(rd["same_weights"] for rd in rounds), "ranks": RANKS, "speedup_cpu": med(spc)}
    out()
    out("## `mpirun -np %d EXE train --threads 1` against one process, --threads 1" % RANKS)
    out()
    out("Spirals, width %d, %d layers, batch %d, %d samples, %d epochs, double; %d rounds, medians (range)." % (
        WIDTH, LAYERS, BATCH, TRAIN_N, EPOCHS, ROUNDS))
    out()
    c1 = med([rd["one"]["cpu_s"] for rd in rounds])
    cp = med([rd["ranks"]["cpu_s"] for rd in rounds])
    out("| | samples/s (optimiser loop) | step ms | run CPU s | MPI ms a step, rank 0 | MPI ms a step, mean of ranks |")
    out("|---|---|---|---|---|---|")
    out("| 1 process | %.0f (%.0f-%.0f) | %.2f | %.2f | - | - |" % (med(one), min(one), max(one), 1e3 * BATCH / med(one),
                                                               c1))
    out("| %d ranks | %.0f (%.0f-%.0f) | %.2f | %.2f | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) |" % (
        RANKS, med(many), min(many), max(many), med(step_ms), cp, med(m0), min(m0), max(m0), med(mm), min(mm),
        max(mm)))
    out()
    out("speed-up (wall clock): %.2fx (rounds %.2f-%.2f); by CPU time, on %d dedicated cores: %.2fx (%.2f-%.2f); "
        "weights identical to one process's in every round: %s" % (
            med(sp), min(sp), max(sp), RANKS, med(spc), min(spc), max(spc), "yes" if res["same_weights"] else "NO"))
    out("load average at end: %s" % common.loadavg())
    with open(os.path.join(common.BUILD, "mpi.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(common.BUILD, "mpi.json"), "w") as f:
        json.dump({"machine": mach, "rounds": rounds, "results": res}, f, indent=1, default=str)
    if not res["same_weights"]:
        sys.exit("mpi: the weights of the MPI run differ from one process's")


def common_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
