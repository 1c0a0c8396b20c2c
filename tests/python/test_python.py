"""test_python.py - the spdl package on modules `spdlc build --python` made
(tests/python.sh builds them into OUT/m and OUT/f, and the programs OUT/robust
and OUT/moons). Prints `ok NAME` or `FAIL NAME: why` per test; exit 1 on a
failure."""
import argparse
import gzip
import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import traceback
import warnings

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--spdlc", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()
OUT = args.out

import spdl  # noqa: E402
import robust_digits as R  # noqa: E402
import moons_flow as MF  # noqa: E402
import euler_tanh as ET  # noqa: E402
import arith as AR  # noqa: E402
import lu_nll as LU  # noqa: E402
import feature_maps as FM  # noqa: E402
import digits as DG  # noqa: E402

failures = []
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def raises(exc, pattern, f, *a, **k):
    """f(*a, **k) raises exc whose message contains pattern."""
    try:
        f(*a, **k)
    except exc as e:
        assert pattern in str(e), "message %r lacks %r" % (str(e), pattern)
        return str(e)
    except Exception as e:
        raise AssertionError("raised %s(%s), expected %s" % (type(e).__name__, e, exc.__name__))
    raise AssertionError("no %s raised (expected one mentioning %r)" % (exc.__name__, pattern))


def run(*cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr[-2000:])
    return r.stdout + r.stderr


def digits():
    with gzip.open("data/digits.csv.gz", "rt") as f:
        a = np.loadtxt(f, delimiter=",")
    return np.ascontiguousarray(a[:, :64] / 16.0), a[:, 64].astype(np.int64)


X, C = digits()
XT, CT = X[:300], C[:300]
np.savetxt(os.path.join(OUT, "test.csv"), np.column_stack([XT, CT]), delimiter=",", fmt="%.17g")
TEST_CSV = os.path.join(OUT, "test.csv")
CKPT = os.path.join(OUT, "ckpt.safetensors")


# ---- the module and its certificate --------------------------------------------------
@test
def certificate_is_spdlc_check_json():
    for mod, spn in ((R, "examples/robust_digits.spn"), (MF, "examples/moons_flow.spn"), (ET, "tests/gen/euler_tanh.spn")):
        want = json.loads(run(args.spdlc, "check", spn, "--json"))
        assert mod.certificate == want, mod.__name__
        assert mod.Model().certificate == want


@test
def description():
    m = R.Model()
    assert m.theta.shape == (33930,) and m.precision == "double" and m.lipschitz == 8
    p = m.params
    assert list(p) == ["K", "b", "W", "w"]
    assert p["K"].shape == (8, 64, 64) and p["b"].shape == (8, 64) and p["W"].shape == (10, 64) and p["w"].shape == (10,)
    p["w"][3] = 7.0                       # views: writing a parameter writes theta
    assert m.theta[33920 + 3] == 7.0
    assert [i.norm_bound for i in m.info] == [1.0, None, 1.0, None]
    assert FM.Model().params and FM.Model.__doc__


@test
def init_is_deterministic():
    a, b, c = R.Model(seed=3), R.Model(seed=3), R.Model(seed=4)
    assert np.array_equal(a.theta, b.theta) and not np.array_equal(a.theta, c.theta)


# ---- NumPy against the programs --------------------------------------------------------
@test
def forward_equals_predict_bit_for_bit():
    pred = os.path.join(OUT, "pred.npy")
    run(os.path.join(OUT, "robust"), "predict", "--data", TEST_CSV, "--weights", CKPT, "--out", pred)
    want = np.load(pred)
    got = R.Model.load(CKPT).forward(XT)
    assert want.shape == got.shape == (300, 10), (want.shape, got.shape)
    assert np.array_equal(want, got), "max difference %g" % np.max(np.abs(want - got))
    # one sample at a time and a batch of 1 give the same bits as the batch
    m = R.Model.load(CKPT)
    assert np.array_equal(m.forward(XT[7]), got[7]) and np.array_equal(m.forward(XT[7:8]), got[7:8])


@test
def certified_accuracy_equals_exe_certify():
    m = R.Model.load(CKPT)
    text = run(os.path.join(OUT, "robust"), "certify", "--data", TEST_CSV, "--weights", CKPT, "--eps", "0.02,0.1")
    exe = {}
    for line in text.splitlines():
        if line.startswith("clean accuracy"):
            exe["clean"] = float(line.split()[-1])
        elif line.startswith("certified accuracy at eps"):
            w = line.split()
            exe[float(w[4])] = float(w[5])
    got = spdl.certified_accuracy(m, XT, CT, [0.02, 0.1])
    assert set(exe) == {"clean", 0.02, 0.1}, text
    for k in exe:
        assert round(got[k], 4) == exe[k], (k, got[k], exe[k])


@test
def density_from_numpy():
    m = MF.Model(seed=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    s, ld = m.flow(x), m.logdet(x)
    logp = -0.5 * np.sum(s * s, axis=1) - math.log(2 * math.pi) + ld
    loss, _ = m.loss_grad(x)
    assert abs(loss + logp.mean()) < 1e-12 * max(1, abs(loss)), (loss, logp.mean())
    z = rng.normal(size=(20, 2))
    xs = m.inverse(z)
    assert np.max(np.abs(m.flow(xs) - z)) < 1e-10
    assert m.forward(xs).shape == (20, 2)


# ---- safetensors both ways ----------------------------------------------------------------
@test
def program_checkpoint_round_trip_is_byte_identical():
    m = R.Model.load(CKPT)
    md = dict(m.metadata)
    assert md["model"] == "robust_digits" and md["optimizer"] == "adam" and md["epoch"] == "2", md
    assert len(m.extra) == 8 and m.extra[0][0] == "optimizer.m.K"
    again = os.path.join(OUT, "again.safetensors")
    m.save(again)
    assert open(again, "rb").read() == open(CKPT, "rb").read(), "save(load(f)) differs from f"
    # the program resumes from the file Python wrote
    run(os.path.join(OUT, "robust"), "train", "--data", "builtin:digits?split=0.2&part=train", "--epochs", "3",
        "--batch", "64", "--lr", "0.01", "--resume", again, "--out", os.path.join(OUT, "resumed.safetensors"),
        "--quiet")


@test
def python_weights_load_in_the_program():
    m = R.Model(seed=11)
    m.params["b"][:] = 0.01 * np.arange(512).reshape(8, 64)
    w = os.path.join(OUT, "py.safetensors")
    m.save(w)
    pred = os.path.join(OUT, "pred_py.npy")
    run(os.path.join(OUT, "robust"), "predict", "--data", TEST_CSV, "--weights", w, "--out", pred)
    assert np.array_equal(np.load(pred), m.forward(XT))
    tensors, meta = spdl.safetensors.read(w)
    assert [n for n, _ in tensors] == ["K", "b", "W", "w"]
    assert dict(meta)["model"] == "robust_digits" and dict(meta)["source_hash"] == m.source_hash
    assert dict(meta)["optimizer"] == "none"
    m2 = R.Model.load(w)
    assert np.array_equal(m2.theta, m.theta)
    # the density program samples from weights Python wrote
    mf = MF.Model(seed=2)
    wf = os.path.join(OUT, "moons_py.safetensors")
    mf.save(wf)
    run(os.path.join(OUT, "moons"), "sample", "--weights", wf, "-n", "5")


@test
def save_refuses_non_finite():
    m = R.Model()
    m.theta[5] = np.nan
    w = os.path.join(OUT, "nan.safetensors")
    raises(ValueError, "tensor 'K' holds a NaN at element 5; nothing written", m.save, w)
    assert not os.path.exists(w)


# ---- bad input: an exception that names what was expected ---------------------------------------
@test
def bad_arrays():
    m = R.Model()
    x = np.zeros((4, 64))
    raises(ValueError, "x has shape (4, 63); expected (batch, 64) or (64,) for one sample", m.forward, np.zeros((4, 63)))
    raises(ValueError, "x has shape (2, 4, 64)", m.forward, np.zeros((2, 4, 64)))
    raises(TypeError, "x must be float64 (native byte order), not float32", m.forward, x.astype(np.float32))
    raises(TypeError, "x must be float64", m.forward, x.astype(np.int64))
    raises(TypeError, "x must be float64", m.forward, x.astype(">f8"))
    raises(TypeError, "x must be a numpy.ndarray of float64 with shape (batch, 64), not list", m.forward, [[0.0] * 64])
    raises(ValueError, "x is not C-contiguous", m.forward, np.zeros((64, 4)).T)
    raises(ValueError, "x is not C-contiguous", m.forward, np.zeros((4, 128))[:, ::2])
    raises(ValueError, "x holds no samples (batch 0)", m.forward, np.zeros((0, 64)))
    buf = np.zeros(4 * 64 * 8 + 1, dtype=np.uint8)[1:].view(np.float64).reshape(4, 64)
    raises(ValueError, "x is not aligned", m.forward, buf)
    ro = np.zeros((4, 10))
    ro.flags.writeable = False
    raises(ValueError, "out is read-only", m.forward, x, out=ro)
    raises(ValueError, "out has shape (3, 10); expected (4, 10)", m.forward, x, out=np.zeros((3, 10)))
    xr = x.copy()
    xr.flags.writeable = False          # a read-only input is fine: it is only read
    assert m.forward(xr).shape == (4, 10)
    raises(ValueError, "dy has shape (4, 9); expected (4, 10)", m.vjp, x, np.zeros((4, 9)))
    raises(ValueError, "dy has shape (3, 10); expected (4, 10)", m.vjp, x, np.zeros((3, 10)))
    raises(TypeError, "theta must be a float64 array of shape (33930,)", setattr, m, "theta", np.zeros(5))
    raises(ValueError, "theta: the new parameters hold a NaN", setattr, m, "theta", np.full(33930, np.inf))
    raises(TypeError, "seed must be an integer 0 to 2**64 - 1, not -1", R.Model, seed=-1)
    raises(TypeError, "seed must be an integer", R.Model, seed=1.5)


@test
def bad_targets():
    m = R.Model()
    x = np.zeros((4, 64))
    raises(ValueError, "t[2] = 10 is not a class label of robust_digits (an integer 0 to 9)", m.loss_grad, x,
           np.array([0, 1, 10, 2]))
    raises(ValueError, "t[0] = 0.5 is not a class label", m.loss_grad, x, np.array([0.5, 1, 1, 2]))
    raises(ValueError, "t has shape (3,); expected (4,): one class label per sample", m.loss_grad, x, np.zeros(3))
    raises(TypeError, "needs targets t (class labels)", m.loss_grad, x)
    raises(TypeError, "t must be a numpy array of class labels", m.loss_grad, x, [0, 1, 2, 3])
    raises(TypeError, "the model has no target (its loss is a density)", MF.Model().loss_grad, np.zeros((3, 2)),
           np.zeros(3))
    raises(ValueError, "t has shape (4, 3); expected (4, 2)", AR.Model().loss_grad, np.zeros((4, 3)), np.zeros((4, 3)))
    loss, g = m.loss_grad(x, np.array([0, 1, 9, 2], dtype=np.int32))
    assert np.isfinite(loss) and g.shape == (33930,)


@test
def bad_weights_files():
    mf = MF.Model()
    wf = os.path.join(OUT, "moons.safetensors")
    mf.save(wf)
    raises(spdl.ModelMismatchError, "holds weights for model 'moons_flow', not 'robust_digits'", R.Model, wf)
    raises(spdl.ModelMismatchError, "holds weights for model 'moons_flow', not 'robust_digits'", R.Model.load, wf)
    bad = os.path.join(OUT, "short.safetensors")
    open(bad, "wb").write(b"\x10\x00")
    raises(spdl.FormatError, "too short for a safetensors file", R.Model, bad)
    data = open(CKPT, "rb").read()
    open(bad, "wb").write(data[:len(data) - 8])
    raises(spdl.FormatError, "outside the data section", R.Model, bad)
    open(bad, "wb").write(b"\xff" * 8 + data[8:])
    raises(spdl.FormatError, "runs past the end of the file", R.Model, bad)
    n = int.from_bytes(data[:8], "little")
    open(bad, "wb").write(data[:8] + b"{" * n + data[8 + n:])
    raises(spdl.FormatError, "not valid JSON", R.Model, bad)
    # a tensor of the right name and another shape
    t, meta = spdl.safetensors.read(CKPT)
    t = [(k, v[:5] if k == "w" else v) for k, v in t]
    spdl.safetensors.write(bad, t, meta)
    raises(spdl.ModelMismatchError, "tensor 'w' has shape (5,), but model 'robust_digits' expects (10,)", R.Model, bad)
    spdl.safetensors.write(bad, [(k, v) for k, v in t if k != "W"], meta)
    raises(spdl.ModelMismatchError, "no tensor 'W' (model 'robust_digits' declares it)", R.Model, bad)
    spdl.safetensors.write(bad, t, [])
    raises(spdl.ModelMismatchError, "has no 'model' in its metadata", R.Model, bad)
    raises(FileNotFoundError, "no/such.safetensors", R.Model, "no/such.safetensors")
    # another source text for the same model: loads, with a warning
    spdl.safetensors.write(bad, spdl.safetensors.read(CKPT)[0], [("model", "robust_digits"), ("source_hash", "0")])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        R.Model(bad)
    assert w and "different source text" in str(w[0].message)


@test
def not_invertible():
    m = ET.Model()
    reason = ET.certificate["guarantees"]["invertible"]["reason"]
    msg = raises(AttributeError, reason, getattr, m, "flow")
    assert "spdlc did not prove it invertible" in msg and "model 'euler_tanh' has no flow" in msg
    raises(AttributeError, reason, getattr, m, "inverse")
    raises(AttributeError, reason, getattr, m, "logdet")
    raises(spdl.NotInvertibleError, reason, getattr, m, "logdet")
    assert not hasattr(m, "flow") and hasattr(R.Model(), "flow")
    raises(AttributeError, reason, getattr, ET, "flow")   # on the module too


# ---- precision and threads -----------------------------------------------------------------
@test
def float_build():
    spec = importlib.util.spec_from_file_location("robust_digits_f", os.path.join(OUT, "f", "robust_digits.py"))
    F = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(F)
    mf, md = F.Model.load(CKPT), R.Model.load(CKPT)
    assert mf.precision == "float" and mf.theta.dtype == np.float64
    yf, yd = mf.forward(XT), md.forward(XT)
    assert not np.array_equal(yf, yd) and np.max(np.abs(yf - yd)) < 1e-5, np.max(np.abs(yf - yd))
    lf, gf = mf.loss_grad(XT, CT)
    ld, gd = md.loss_grad(XT, CT)
    assert abs(lf - ld) < 1e-5 and np.max(np.abs(gf - gd)) < 1e-4 * max(1, np.max(np.abs(gd)))


@test
def threads():
    m = R.Model.load(CKPT)
    want = m.forward(X)
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = m.forward(X)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(np.array_equal(g, want) for g in got)


@test
def gil_released_during_c_calls():
    import time
    m = R.Model.load(CKPT)
    big = X
    while True:                                          # a call of at least 50 ms
        t0 = time.perf_counter()
        m.forward(big)
        dur = time.perf_counter() - t0
        if dur >= 0.05:
            break
        big = np.ascontiguousarray(np.tile(big, (2, 1)))
    go = threading.Event()          # the worker enters C only once this thread is in its loop

    def work():
        go.wait()
        m.forward(big)
    th = threading.Thread(target=work)
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        th.start()
        go.set()
        gap, last = 0.0, time.perf_counter()
        while th.is_alive():         # with the GIL held by the call, this loop would stall for the whole call
            # (checked: through ctypes.PyDLL, which keeps the GIL, the stall is the call's length)
            now = time.perf_counter()
            gap, last = max(gap, now - last), now
        th.join()
    finally:
        sys.setswitchinterval(old)
    assert gap < 0.5 * dur, "the main thread stalled %.3f s during a %.3f s call" % (gap, dur)


# ---- PyTorch ------------------------------------------------------------------------------
import torch  # noqa: E402

import spdl.torch  # noqa: E402

torch.set_num_threads(1)


@test
def gradcheck_three_models():
    g = torch.Generator().manual_seed(0)
    for mod, shape in ((ET, (3, 3)), (AR, (4, 3)), (LU, (3, 4))):
        m = mod.Model(seed=5)
        x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        th = torch.from_numpy(m.theta.copy()).requires_grad_()
        assert torch.autograd.gradcheck(mod.Function.apply, (x, th), eps=1e-6, atol=1e-6, rtol=1e-5), mod.__name__
    # the model's own loss, in its parameters
    m = ET.Model(seed=6)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1, 0])
    th = torch.from_numpy(m.theta.copy()).requires_grad_()
    assert torch.autograd.gradcheck(lambda th: ET.LossFunction.apply(x, t, th), (th,), eps=1e-6, atol=1e-6)
    # input of rank 2
    m = FM.Model(seed=1)
    x = torch.randn(2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    th = torch.from_numpy(m.theta.copy()).requires_grad_()
    assert torch.autograd.gradcheck(FM.Function.apply, (x, th), eps=1e-6, atol=1e-6, rtol=1e-5)


@test
def module_parameters_and_bad_tensors():
    mod = R.Module(CKPT)
    names = [n for n, _ in mod.named_parameters()]
    assert names == ["K", "b", "W", "w"], names
    assert mod.K.shape == (8, 64, 64) and mod.K.dtype == torch.float64
    y = mod(torch.from_numpy(XT))
    assert np.array_equal(y.detach().numpy(), R.Model.load(CKPT).forward(XT))
    raises(TypeError, "x must be torch.float64, not torch.float32 (convert with .double())", mod,
           torch.zeros(3, 64))
    raises(ValueError, "x is not contiguous", mod, torch.zeros(64, 3, dtype=torch.float64).t())
    raises(ValueError, "x has shape (3, 65)", mod, torch.zeros(3, 65, dtype=torch.float64))
    raises(ValueError, "is not a class label", mod.loss, torch.zeros(2, 64, dtype=torch.float64), torch.tensor([1, 11]))
    raises(ValueError, "gives gradients for the parameters only", mod.loss,
           torch.zeros(2, 64, dtype=torch.float64, requires_grad=True), torch.tensor([1, 1]))
    raises(spdl.ModelMismatchError, "holds weights for model 'moons_flow'", R.Module,
           os.path.join(OUT, "moons.safetensors"))
    # the module follows its parameters: in-place updates, and new storage
    xt = torch.from_numpy(XT[:5])
    with torch.no_grad():
        mod(xt)
        mod.w.add_(torch.arange(10, dtype=torch.float64))
        m2 = R.Model.load(CKPT)
        m2.params["w"][:] += np.arange(10)
        assert np.array_equal(mod(xt).numpy(), m2.forward(XT[:5]))
        mod.b.data = torch.zeros(8, 64, dtype=torch.float64)
        m2.params["b"][:] = 0
        assert np.array_equal(mod(xt).numpy(), m2.forward(XT[:5]))
        assert np.array_equal(mod.to_model().theta, m2.theta)
    # the module inside a larger PyTorch model, any batch size
    net = torch.nn.Sequential(torch.nn.Linear(64, 64).double(), R.Module())
    for n in (1, 3, 257):
        out = net(torch.randn(n, 64, dtype=torch.float64))
        out.sum().backward()
        assert out.shape == (n, 10)
    assert net[0].weight.grad is not None and net[1].K.grad is not None


@test
def module_trains_and_keeps_its_bounds():
    torch.manual_seed(0)
    mod = R.Module(seed=1)
    opt = spdl.torch.project_after_step(torch.optim.Adam(mod.parameters(), lr=0.02), mod)
    xs, cs = torch.from_numpy(X[300:]), torch.from_numpy(C[300:])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, cs), batch_size=64, shuffle=True)
    first = None
    for epoch in range(2):
        for xb, cb in loader:
            opt.zero_grad()
            loss = mod.loss(xb, cb)
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
            with torch.no_grad():
                assert torch.linalg.matrix_norm(mod.K, ord=2).max().item() <= 1 + 1e-12
                assert torch.linalg.matrix_norm(mod.W, ord=2).item() <= 1 + 1e-12
    with torch.no_grad():
        acc = (mod(torch.from_numpy(XT)).argmax(1).numpy() == CT).mean()
    assert loss.item() < 0.7 * first and acc > 0.8, (first, loss.item(), acc)
    # the same through module(x) and a PyTorch loss (backward = vjp)
    opt2 = spdl.torch.project_after_step(torch.optim.SGD(mod.parameters(), lr=0.05), torch.nn.Sequential(mod))
    for xb, cb in loader:
        opt2.zero_grad()
        torch.nn.functional.nll_loss(torch.log(mod(xb)), cb).backward()
        opt2.step()
    w = os.path.join(OUT, "torch.safetensors")
    mod.save(w)
    m = R.Model.load(w)
    spdl.certified_accuracy(m, XT, CT, 0.1)      # checks the norm bounds
    pred = os.path.join(OUT, "pred_torch.npy")
    run(os.path.join(OUT, "robust"), "predict", "--data", TEST_CSV, "--weights", w, "--out", pred)
    assert np.array_equal(np.load(pred), mod(torch.from_numpy(XT)).detach().numpy())


for t in TESTS:
    try:
        t()
        print("ok", t.__name__)
    except Exception:
        failures.append(t.__name__)
        print("FAIL %s:\n%s" % (t.__name__, "".join("    " + l for l in traceback.format_exc().splitlines(True))))
sys.stdout.flush()
sys.exit(1 if failures else 0)
