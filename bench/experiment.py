"""experiment.py - what would make the generated code faster: the same
spirals model (bench/model.sh, 20 layers, batch 256, --memory=store) at each
width, emitted by spdlc and then changed by hand in a scratch copy under
build/bench/experiments/ (compiler/ and runtime/ are untouched), each variant
timed by bench/harness.c in the same run, interleaved, by process CPU time
(median over ROUNDS of the median of REPEATS). Variants:

  base        the emitted code, compiled as `spdlc build` does
  contract    -ffp-contract=fast: gcc's ISO C mode (-std=c11) turns
              contraction off, so no a*b+c in the kernels becomes an FMA
  hoist       the bias add's B[i] read once per row before the lane loop, so
              the loop vectorises (see hoist() below)
  fast        every spdl_gemm call replaced by bench/fastgemm.h's AVX2/FMA
              6x8 register-blocked kernel (same signature)
  blas        every spdl_gemm call replaced by cblas_dgemm (OpenBLAS, one
              thread), the strides mapped to Trans/NoTrans
  fused       contract, and each layer's element-wise chains fused by hand
              into one pass per update (bias, tanh, scale, add; and the
              adjoint's scale, tanh', bias-sum), see fuse() below
  keep        the intermediates the adjoint reads kept per layer instead of
              recomputing the layer in the backward sweep (norecompute()
              below): 9 products per layer instead of 12
  nogemm      spdl_gemm does nothing: the time of everything else (wrong
              results; a floor for any product kernel)
and combinations (fast+fused+keep ...).

Also the kernels alone (bench/kernels.c): spdl_gemm, fast_gemm and
cblas_dgemm on one tile, and tanh per element. Writes
build/bench/experiment.md. Environment: WIDTHS (4,16,64,256), ROUNDS (3),
REPEATS (7), SEC (0.3). Also times PyTorch (bench/torch_spirals.py) and
OpenBLAS dgemm in each round, for the ratios the changes would reach."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

WIDTHS = [int(v) for v in os.environ.get("WIDTHS", "4,16,64,256").split(",")]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPEATS = int(os.environ.get("REPEATS", "7"))
SEC = float(os.environ.get("SEC", "0.3"))
LAYERS, BATCH = 20, 256
HOOK = "typedef void (*spirals_hook)"   # first line after the pasted kernels

BLAS_WRAPPER = r"""
#include <cblas.h>
/* experiment: spdl_gemm's meaning through cblas_dgemm */
static void blas_gemm(int M, int N, int K, const double *A, size_t ars, size_t aks, const double *B, size_t ldb,
                      double *C, size_t ldc, int acc)
{
    if (aks == 1)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0, A, (int)ars, B, (int)ldb, acc ? 1.0 : 0.0,
                    C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0, A, (int)aks, B, (int)ldb, acc ? 1.0 : 0.0,
                    C, (int)ldc);
}
#define spdl_gemm blas_gemm
"""

NOGEMM = r"""
static void no_gemm(int M, int N, int K, const double *A, size_t ars, size_t aks, const double *B, size_t ldb,
                    double *C, size_t ldc, int acc)
{
    (void)M, (void)N, (void)K, (void)A, (void)ars, (void)aks, (void)B, (void)ldb, (void)C, (void)ldc, (void)acc;
}
#define spdl_gemm no_gemm
"""

FAST = '\n#include "fastgemm.h"\n#define spdl_gemm fast_gemm\n'


def blocks(body):
    """split a function body into its top-level { ... } blocks (the generated
    code opens one block per IR assignment)"""
    out, depth, start = [], 0, None
    for i, ch in enumerate(body):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                out.append((start, i + 1))
    return out


def fuse(src):
    """Fuse the element-wise chains of spirals_layer1 (forward: add bias ->
    tanh -> scale [-> neg -> scale] -> add into the state) into one loop per
    update, reading the product's output once and writing the state once,
    keeping the tanh tiles the adjoint reads. In spirals_layer1_adj, fuse
    each chain copy -> scale [-> neg] -> tanh' -> copy into one loop that
    also forms the bias gradient's lane sums. Works on the text the current
    spdlc emits for this model; returns None when the text does not match."""
    def rewrite(fn, pattern_fn):
        m = re.search(r"static void %s\(.*?\n\{\n" % fn, src, re.S)
        if not m:
            return None
        start = m.end()
        end = src.index("\n}\n", start)
        body = src[start:end]
        new = pattern_fn(body)
        return None if new is None else src[:start] + new + src[end:]

    def fwd(body):
        bl = [body[a:b] for a, b in blocks(body)]
        # blocks: [gemm, add, act, mul, add] [gemm, add, act, neg, mul, add] [gemm, add, act, mul, add]
        kinds = [re.search(r"/\* line \d+: (\w+)", b).group(1) for b in bl]
        if kinds != ["matmul", "add", "act", "mul", "add", "matmul", "add", "act", "neg", "mul", "add",
                     "matmul", "add", "act", "mul", "add"]:
            return None

        def ptr(b, name):
            return re.search(r"\b%s = \(?([^;]*?)\)?;" % name, b).group(1)

        def ew(group, neg):
            gemm, add, act = group[0], group[1], group[2]
            mul, store = group[-2], group[-1]
            prod = ptr(gemm, "Y")
            bias = ptr(add, "B")
            tanh_out = ptr(act, "Y")
            scale = re.search(r"\* \(real\)([0-9.e+-]+)", mul).group(1)
            state_in = ptr(store, "A")
            state_out = ptr(store, "Y")
            sign = "-" if neg else ""
            return gemm + """
    {
        /* fused: bias, tanh, scale, add into the state */
        const real *restrict P_ = (%s);
        const real *restrict b_ = (%s);
        real *restrict T_ = (%s);
        const real *restrict S_ = (%s);
        real *restrict O_ = (%s);
        for (size_t i = 0; i < %d; i++) {
            const real bi_ = b_[i]; /* hoisted: gcc ignores restrict on locals */
            for (int l = 0; l < SPDL_BT; l++) {
                const real t_ = (real)spdl_tanh(P_[i * SPDL_BT + l] + bi_);
                T_[i * SPDL_BT + l] = t_;
                O_[i * SPDL_BT + l] = S_[i * SPDL_BT + l] %s (real)%s * t_;
            }
        }
    }""" % (prod, bias, tanh_out, state_in, state_out, WIDTH_NOW, "-" if sign else "+", scale)

        g1, g2, g3 = bl[0:5], bl[5:11], bl[11:16]
        return "    (void)k;\n" + ew(g1, False) + ew(g2, True) + ew(g3, False) + "\n"

    def adj(body):
        bl = blocks(body)
        texts = [body[a:b] for a, b in bl]
        kinds = [re.search(r"/\* line \d+: adjoint of (\w+)", t).group(1) if "adjoint of" in t else "?" for t in texts]
        # per update: add(state) [neg?] mul act add(bias) matmul
        want = ["add", "mul", "act", "add", "matmul", "add", "mul", "neg", "act", "add", "matmul",
                "add", "mul", "act", "add", "matmul"]
        if kinds != want:
            return None
        pre = body[:bl[0][0]]
        post = body[bl[-1][1]:]
        groups = [texts[0:5], texts[5:11], texts[11:16]]
        out = []
        for g in groups:
            add_state, mm = g[0], g[-1]
            act = [t for t in g if "adjoint of act" in t][0]
            mul = [t for t in g if "adjoint of mul" in t][0]
            badd = [t for t in g if "adjoint of add: +" in t][0]
            neg = any("adjoint of neg" in t for t in g)
            # the state adjoint's pass-through copy (first sub-block of add_state) stays
            sub = blocks(add_state[add_state.index("{", 1):])
            inner = add_state[add_state.index("{", 1):]
            keep = inner[sub[0][0]:sub[0][1]]
            gy_src = re.search(r"const real \*restrict GY = \(?([^;]*?)\)?;", add_state).group(1)
            yf = re.search(r"const real \*restrict Yf = \(?([^;]*?)\)?;", act).group(1)
            scale = re.search(r"G_ \* \(real\)([0-9.e+-]+)", mul).group(1)
            go_bias_in = re.search(r"real \*restrict GO = \(?([^;]*?)\)?;", badd).group(1)
            gb = re.findall(r"real \*restrict GO = \(?([^;]*?)\)?;", badd)[1]
            out.append("""    {
        %s
        /* fused: scale%s, tanh', bias gradient */
        const real *restrict GY_ = (%s);
        const real *restrict Yf_ = (%s);
        real *restrict GO_ = (%s);
        real *restrict GB_ = (%s);
        for (size_t i = 0; i < %d; i++) {
            real t_[SPDL_BT];
            for (int l = 0; l < SPDL_BT; l++) {
                const real y_ = Yf_[i * SPDL_BT + l];
                const real g_ = %s(real)%s * GY_[i * SPDL_BT + l] * (1 - y_ * y_);
                GO_[i * SPDL_BT + l] = g_;
                t_[l] = g_;
            }
            GB_[i] += spdl_lane_sum(t_);
        }
    }
%s
""" % (keep, ", neg" if neg else "", gy_src, yf, go_bias_in, gb, WIDTH_NOW, "-" if neg else "", scale, mm))
        return pre + "".join(out) + post

    s2 = rewrite("spirals_layer1", fwd)
    if s2 is None:
        return None
    src = s2
    return rewrite("spirals_layer1_adj", adj)


def norecompute(src):
    """--memory=store keeps only each layer's input state, and the adjoint of
    layer k first runs layer k again (3 products, 3 tanh tiles) to rebuild
    the intermediates it reads. This keeps them instead: the tanh tiles and
    other layer-scratch tiles the adjoint reads are copied after each
    forward layer into a per-layer area appended to the work buffer, and
    copied back instead of the recomputation (a real implementation would
    write them there directly; the copies are included in the time).
    Returns None when the text does not match."""
    m = re.search(r"static void spirals_layer1_adj\(.*?\n\{\n(.*?)\n\}\n", src, re.S)
    if not m or "    spirals_layer1(w, k, tin, tout);\n" not in m.group(1):
        return None
    body = m.group(1)
    tiles = []
    for off in re.findall(r"const real \*restrict (?:Yf_?|B) = \(w \+ (\d+)\);", body):
        if off not in tiles:
            tiles.append(off)
    ws = re.search(r"return sizeof\(real\) \* (\d+) \+ 64;", src)
    fwd = re.search(r"(\n( +)spirals_layer1\(w, k, work \+ a \* \d+, work \+ b \* \d+\);\n)", src)
    tile = re.search(r"for \(size_t i = 0; i < (\d+); i\+\+\)", body)
    layers = re.search(r"for \(size_t k = 0; k < (\d+); k\+\+\) \{\n +const size_t a = keep", src)
    if not tiles or not ws or not fwd or not tile or not layers:
        return None
    base, n, per = int(ws.group(1)), int(layers.group(1)), int(tile.group(1)) * 64
    area = "(w + %d + k * %d)" % (base, per * len(tiles))
    save = "".join("%s    memcpy(%s + %d, w + %s, sizeof(real) * %d);\n" % (fwd.group(2), area, j * per, off, per)
                   for j, off in enumerate(tiles))
    load = "".join("    memcpy(w + %s, %s + %d, sizeof(real) * %d);\n" % (off, area, j * per, per)
                   for j, off in enumerate(tiles))
    src = src.replace(fwd.group(1), fwd.group(1) + fwd.group(2) + "if (keep) {\n" + save + fwd.group(2) + "}\n", 1)
    src = src.replace(m.group(0), m.group(0).replace("    spirals_layer1(w, k, tin, tout);\n",
                                                     "    (void)tin, (void)tout;\n" + load, 1), 1)
    src = src.replace(ws.group(0), "return sizeof(real) * %d + 64;" % (base + n * per * len(tiles)), 1)
    return src


BIAS_LOOP = re.compile(r"( +)for \(size_t i = 0; i < (\d+); i\+\+\)\n( +)for \(int l = 0; l < SPDL_BT; l\+\+\) \{\n"
                       r"( +)Y\[i \* SPDL_BT \+ l\] = A\[i \* SPDL_BT \+ l\] \+ B\[i\];\n( +)\}")


def hoist(src):
    """the bias add Y = A + b (b broadcast over the lanes) reads B[i] inside
    the lane loop; gcc honours restrict only on parameters, so it cannot
    prove the stores to Y leave B[i] alone, and leaves the loop scalar.
    Reading B[i] once before the lane loop lets it vectorise."""
    def rep(m):
        ind, n, ind2, ind3, ind4 = m.groups()
        return ("%sfor (size_t i = 0; i < %s; i++) {\n%sconst real Bi_ = B[i];\n%sfor (int l = 0; l < SPDL_BT; l++) {\n"
                "%sY[i * SPDL_BT + l] = A[i * SPDL_BT + l] + Bi_;\n%s}\n%s}" % (ind, n, ind2, ind2, ind3, ind4, ind))
    out, n = BIAS_LOOP.subn(rep, src)
    return out if n else None


WIDTH_NOW = 0


def variant_source(src, name):
    """the emitted code changed as the variant's name says, or None"""
    parts = name.split("+")
    if "fused" in parts:
        src = fuse(src)
    if src is not None and "keep" in parts:
        src = norecompute(src)
    if src is not None and "hoist" in parts:
        src = hoist(src)
    if src is None:
        return None
    i = src.index(HOOK)
    if "fast" in parts:
        return src[:i] + FAST + src[i:]
    if "blas" in parts:
        return src[:i] + BLAS_WRAPPER + src[i:]
    if "nogemm" in parts:
        return src[:i] + NOGEMM + src[i:]
    return src


def contracted(name):
    parts = name.split("+")
    return "contract" in parts or "fused" in parts


# the parts of a name: contract (-ffp-contract=fast), hoist, fast (fast_gemm),
# blas (cblas_dgemm), fused (implies contract), keep, nogemm
VARIANTS = ["base", "contract", "hoist", "contract+hoist", "fast", "blas", "fused", "fused+keep", "fast+fused",
            "fast+fused+keep", "nogemm"]


def performed_flops(w, name):
    """matrix-product flops the variant performs (bench/speed.py's count;
    without the recomputation when the intermediates are kept)"""
    per_layer = 9 if "keep" in name.split("+") else 12
    return per_layer * LAYERS * 2 * BATCH * w * w + 3 * 2 * BATCH * 2 * w


def build_variant(w, name, src, d):
    global WIDTH_NOW
    WIDTH_NOW = w
    text = src if name == "base" else variant_source(src, name)
    if text is None:
        return None
    vd = os.path.join(d, name.replace("+", "_"))
    os.makedirs(vd, exist_ok=True)
    with open(os.path.join(vd, "spirals.c"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "spirals.h")) as f:
        hdr = f.read()
    with open(os.path.join(vd, "spirals.h"), "w") as f:
        f.write(hdr)
    flags = list(common.MODEL_CFLAGS)
    if contracted(name):
        flags.append("-ffp-contract=fast")
    inc = ["-I" + os.path.join(common.ROOT, "runtime"), "-I" + os.path.join(common.ROOT, "bench"), "-I" + vd]
    obj = os.path.join(vd, "spirals.o")
    common.run([common.CC] + flags + inc + ["-c", os.path.join(vd, "spirals.c"), "-o", obj])
    exe = os.path.join(vd, "harness")
    common.run([common.CC] + common.OWN_CFLAGS + inc + ["-DMODEL_FN=spirals_model",
                                                          os.path.join(common.ROOT, "bench", "harness.c"), obj, "-o",
                                                          exe, "-lopenblas", "-lm"])
    return exe


def main():
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    mach = common.machine()
    common.print_machine(mach, out)
    out("load average at start: %s" % common.loadavg())
    exes, ref = {}, {}
    for w in WIDTHS:
        base = common.build_model(w, LAYERS)
        d = os.path.dirname(base)
        with open(os.path.join(d, "spirals.c")) as f:
            src = f.read()
        ed = os.path.join(common.BUILD, "experiments", "w%d" % w)
        os.makedirs(ed, exist_ok=True)
        with open(os.path.join(ed, "spirals.h"), "w") as f:
            with open(os.path.join(d, "spirals.h")) as g:
                f.write(g.read())
        for v in VARIANTS:
            exe = build_variant(w, v, src, ed)
            if exe is None:
                out("w=%d: variant %s does not apply to this emitted code; skipped" % (w, v))
                continue
            exes[(w, v)] = exe
        # every variant but nogemm computes the same loss and gradient
        pre = os.path.join(ed, "ref")
        common.run_kv([exes[(w, "base")], "dump", str(BATCH), pre])
        with open(pre + ".grad", "rb") as f:
            ref[w] = f.read()
        for v in VARIANTS:
            if (w, v) not in exes or v in ("base", "nogemm"):
                continue
            p2 = os.path.join(ed, "var")
            common.run_kv([exes[(w, v)], "dump", str(BATCH), p2])
            import array
            a, b = array.array("d"), array.array("d")
            a.frombytes(ref[w])
            with open(p2 + ".grad", "rb") as f:
                b.frombytes(f.read())
            scale = max(abs(x) for x in a)
            err = max(abs(x - y) for x, y in zip(a, b)) / scale
            if err > 1e-9:
                sys.exit("experiment: variant %s at w=%d changes the gradient by %.3g" % (v, w, err))

    torch_py = [common.TORCH_PY, os.path.join(common.ROOT, "bench", "torch_spirals.py")]
    dgemm = common.build_dgemm()
    times, torch_ms, dg = {}, {}, []
    for r in range(ROUNDS):
        dg.append(float(common.run_kv([dgemm, "1024", str(REPEATS)])["median_cpu_gflops"]))
        for w in WIDTHS:
            t = common.run_kv(torch_py + ["time", str(w), str(LAYERS), str(BATCH), str(REPEATS), str(SEC)])
            torch_ms.setdefault(w, []).append(float(t["median_cpu_ms"]))
            for v in VARIANTS:
                if (w, v) in exes:
                    t = common.run_kv([exes[(w, v)], "time", str(BATCH), str(REPEATS), str(SEC)])
                    times.setdefault((w, v), []).append(float(t["median_cpu_ms"]))
            out("round %d, w=%d: PyTorch %.3g; %s; load average %s" % (r + 1, w, torch_ms[w][-1], ", ".join(
                "%s %.3g" % (v, times[(w, v)][-1]) for v in VARIANTS if (w, v) in times), common.loadavg()))

    med = common.median
    dgm = med(dg)
    out()
    out("## Hand-changed generated code: ms per training step (process CPU time), batch %d, %d layers" % (BATCH, LAYERS))
    out()
    out("Medians over %d rounds of the median of %d repeats; 'x base' is the speed-up over the emitted code; "
        "'PyTorch ratio' is PyTorch's time (same rounds) over the variant's; GFLOP/s counts the products the variant "
        "performs (12 per layer, 9 with keep) against OpenBLAS dgemm's %.1f GFLOP/s (CPU time, same run)." % (
            ROUNDS, REPEATS, dgm))
    for w in WIDTHS:
        base = med(times[(w, "base")])
        tm = med(torch_ms[w])
        out()
        out("w=%d (PyTorch %.3g ms):" % (w, tm))
        out()
        out("| variant | ms | x base | PyTorch ratio | GFLOP/s | of dgemm |")
        out("|---|---|---|---|---|---|")
        for v in VARIANTS:
            if (w, v) not in times:
                out("| %s | - | - | - | - | - |" % v)
                continue
            m = med(times[(w, v)])
            ratio = med([t / x for t, x in zip(torch_ms[w], times[(w, v)])])
            gf = performed_flops(w, v) / (m * 1e-3) * 1e-9
            if v == "nogemm":
                out("| %s | %.3g | %.2fx | (%.2fx) | - | - |" % (v, m, base / m, ratio))
            else:
                out("| %s | %.3g | %.2fx | %.2fx | %.1f | %.0f%% |" % (v, m, base / m, ratio, gf, 100 * gf / dgm))

    out()
    out("## The kernels alone, one tile of 64 samples (bench/kernels.c, process CPU time)")
    out()
    out("| width | flags | product | spdl_gemm GFLOP/s | fast_gemm GFLOP/s | cblas_dgemm GFLOP/s |")
    out("|---|---|---|---|---|---|")
    tanh_rows = []
    for flags in ([], ["-ffp-contract=fast"]):
        exe = os.path.join(common.BUILD, "kernels" + ("_contract" if flags else ""))
        common.run([common.CC] + common.OWN_CFLAGS + flags + ["-I" + os.path.join(common.ROOT, "runtime"),
                                                                os.path.join(common.ROOT, "bench", "kernels.c"), "-o",
                                                                exe, "-lopenblas", "-lm"])
        for w in WIDTHS:
            k = common.run_kv([exe, str(w), str(REPEATS)])
            for op, label in (("fwd", "K X"), ("adjT", "K' G"), ("dK", "G X'")):
                out("| %d | %s | %s | %s | %s | %s |" % (w, " ".join(flags) or "as built", label, k[op + "_spdl_gflops"],
                                                       k[op + "_fast_gflops"], k[op + "_blas_gflops"]))
            tanh_rows.append((w, " ".join(flags) or "as built", k["tanh_spdl_ns_per_elem"],
                              k["tanh_glibc_ns_per_elem"]))
    out()
    out("| width | flags | spdl_tanh ns/element | glibc tanh ns/element |")
    out("|---|---|---|---|")
    for row in tanh_rows:
        out("| %d | %s | %s | %s |" % row)
    # where the time goes: perf samples by source line of the generated code
    import hotspots as prof
    for w in WIDTHS:
        for v in ("base", "fast+fused+keep"):
            if (w, v) not in exes:
                continue
            rows = prof.profile(w, LAYERS, os.path.dirname(exes[(w, v)]))
            if rows is None:
                out()
                out("(perf not available: no profile)")
                break
            out()
            out("## Where the time goes: w=%d, %s (perf cpu-clock samples of the harness)" % (w, v))
            out()
            out("| where | share |")
            out("|---|---|")
            for cat, share in prof.group(rows):
                out("| %s | %.1f%% |" % (cat, share))
            out()
            out("| source line group (generated M.c) | share |")
            out("|---|---|")
            for cat, share in rows[:12]:
                out("| %s | %.1f%% |" % (cat, share))
    out()
    out("load average at end: %s" % common.loadavg())
    with open(os.path.join(common.BUILD, "experiment.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
