"""common.py - what bench/speed.py and bench/memory.py share: the machine
description, the compiler flags, building a model's harness, running a
`key=value` program and medians. Standard library only."""
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, "build", "bench")
SPDLC = os.path.join(ROOT, "build", "spdlc")
TORCH_PY = "/usr/bin/python3"      # Debian's python: the one that sees python3-torch
CC = os.environ.get("CC") or "cc"
BT = 64                            # lanes per tile of the generated code (SPDL_BT)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def march():
    """The -march `spdlc build` uses on this machine (tools/host_march.sh):
    x86-64-v4 with AVX-512, x86-64-v3 with AVX2 and FMA, none otherwise."""
    flag = subprocess.run(["sh", os.path.join(ROOT, "tools", "host_march.sh")], stdout=subprocess.PIPE,
                          text=True, check=True).stdout.strip()
    return [flag] if flag else []


# the generated model: the flags `spdlc build` compiles it with
MODEL_CFLAGS = ["-std=c11", "-O2"] + march()
# our own C: the same optimisation, warnings as errors
OWN_CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"] + march()


def bench_env():
    """One thread everywhere: OpenBLAS's own pool, OpenMP. OPENBLAS_CORETYPE
    stays as the environment sets it (Haswell on these machines); when unset
    it is set to Haswell so runs on any machine of this kind use the same
    AVX2 kernels."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env.setdefault("OPENBLAS_CORETYPE", "Haswell")
    return env


def run(cmd, env=None, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or bench_env())
    if check and p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit("bench: failed: %s" % " ".join(cmd))
    return p


def run_kv(cmd, env=None):
    out = {}
    for line in run(cmd, env).stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def floats(s):
    return [float(v) for v in s.split(",") if v]


def median(xs):
    return statistics.median(xs)


def build_model(width, layers, memory="store", shared=False, precision="double"):
    """Emit the spirals model at WIDTH x LAYERS (with one K and b for all
    layers if SHARED) with --memory=MEMORY and --precision PRECISION and link
    bench/harness.c against it; returns the harness's path."""
    name = "w%d_n%d_%s%s%s" % (width, layers, memory, "_shared" if shared else "",
                               "" if precision == "double" else "_" + precision)
    d = os.path.join(BUILD, "models", name)
    os.makedirs(d, exist_ok=True)
    spn = os.path.join(d, "spirals.spn")
    with open(spn, "w") as f:
        f.write(run(["sh", os.path.join(ROOT, "bench", "model.sh"), str(width), str(layers)] +
                    (["shared"] if shared else [])).stdout)
    run([SPDLC, "emit", spn, "-o", d, "--memory=" + memory, "--precision", precision])
    inc = ["-I" + os.path.join(ROOT, "runtime"), "-I" + d]
    obj = os.path.join(d, "spirals.o")
    run([CC] + MODEL_CFLAGS + inc + ["-c", os.path.join(d, "spirals.c"), "-o", obj])
    exe = os.path.join(d, "harness")
    run([CC] + OWN_CFLAGS + inc + ["-DMODEL_FN=spirals_model", os.path.join(ROOT, "bench", "harness.c"), obj,
                                   os.path.join(ROOT, "build", "libspdl.a"), "-o", exe, "-lz", "-lm", "-pthread"])
    return exe


def build_program(width, layers, name="spirals", flags=()):
    """`spdlc build` of the spirals model at WIDTH x LAYERS (bench/model.sh)
    with FLAGS (e.g. --mpi) into build/bench/models/exe_wW_nN/NAME; returns
    the program's path."""
    d = os.path.join(BUILD, "models", "exe_w%d_n%d" % (width, layers))
    os.makedirs(d, exist_ok=True)
    spn = os.path.join(d, "spirals.spn")
    with open(spn, "w") as f:
        f.write(run(["sh", os.path.join(ROOT, "bench", "model.sh"), str(width), str(layers)]).stdout)
    exe = os.path.join(d, name)
    run([SPDLC, "build", spn, "-o", exe] + list(flags))
    return exe


def build_dgemm():
    exe = os.path.join(BUILD, "dgemm")
    run([CC] + OWN_CFLAGS + [os.path.join(ROOT, "bench", "dgemm.c"), "-o", exe, "-lopenblas"])
    return exe


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    info = {}
    try:
        for line in run(["lscpu"], check=False).stdout.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except OSError:
        pass
    cc = run([CC, "--version"], check=False).stdout.splitlines()
    env = bench_env()
    return {
        "cpu": info.get("Model name", "?"),
        "family": info.get("CPU family", "?"),
        "cpus": info.get("CPU(s)", "?"),
        "threads_per_core": info.get("Thread(s) per core", "?"),
        "avx512": "yes" if any(f.startswith("avx512") for f in cpu_flags()) else "no",
        "cc": cc[0] if cc else CC,
        "model_cflags": " ".join(MODEL_CFLAGS),
        "own_cflags": " ".join(OWN_CFLAGS),
        "openblas_coretype": env["OPENBLAS_CORETYPE"] + ("" if "OPENBLAS_CORETYPE" in os.environ else " (set by the bench)"),
        "kernel": platform.release(),
    }


def print_machine(m, out):
    out("machine: %s (family %s), %s CPUs, %s thread(s) per core, AVX-512: %s; kernel %s"
        % (m["cpu"], m["family"], m["cpus"], m["threads_per_core"], m["avx512"], m["kernel"]))
    out("compiler: %s; generated model: %s; bench C: %s" % (m["cc"], m["model_cflags"], m["own_cflags"]))
    out("OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, torch.set_num_threads(1), OPENBLAS_CORETYPE=%s"
        % m["openblas_coretype"])


def start_report():
    """What speed.py and memory.py write: (lines, out, machine), where out(s)
    prints s and keeps it for the .md file; the report opens with the
    machine and the load average."""
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    os.makedirs(BUILD, exist_ok=True)
    mach = machine()
    print_machine(mach, out)
    out("load average at start: %s" % loadavg())
    return lines, out, mach
