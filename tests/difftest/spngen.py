"""spngen.py - random well-typed .spn programs and their PyTorch twins.

One random program tree (Prog) gives two things:
  - prog.text(): the .spn source that spdlc compiles;
  - twin evaluation (twin.py): the same tree evaluated in PyTorch float64
    following DESIGN section 3's semantics contract.
Every expression node records the operation it means (matrix-vector
product, scalar times tensor, elementwise product, matrix plus identity...),
decided when the node is generated from the operand types. The printer writes
the surface syntax (`*` for all of them, `I`, `.*` when enabled), the twin
evaluates the recorded meaning: the two are written from the tree, never from
spdlc's step program.

Nodes are tuples (op, ...):
  ('num', v, text)          a number (text is how it is printed: 0.25, 1/4)
  ('var', name)             a state, let, input, parameter or def argument
  ('I', n)                  the n x n identity
  ('add'|'sub', a, b)       sum / difference (broadcasting scalars, biases)
  ('smul', s, t)            scalar * tensor, printed s * t
  ('muls', t, s)            tensor * scalar, printed t * s
  ('div', t, s)             tensor / scalar
  ('mv', M, v)              matrix * vector
  ('mm', A, B)              matrix * matrix (the matrix product)
  ('emul', a, b)            elementwise product of equal shapes (`*` of vectors, or `.*`)
  ('neg', a), ('pow', a, k), ('T', M)
  ('act', fn, a[, slope])   tanh relu sigmoid softplus identity exp leaky_relu
  ('sum'|'mean', a)         over all entries (a scalar)
  ('slice', a, lo, hi), ('pad', a, n), ('join', a, b, ...)
  ('softmax', a), ('call', defname, args...)
Group programs (GroupGen, DESIGN §8) add:
  ('lift'|'gconv'|'gconvT', kernel, a)   lift(k, a), gconv(k, a), gconv'(k, a)
  ('gpool'|'mean_space'|'mean_set'|'pool2', a)
  ('cbias', t, b)           t + b, b : R[c] added along t's leading (channel) axis
  ('cmix', K, v)            K * v, K : R[m, c] mixing v's channels (a matrix product for R[c, n])
  ('gslice', a, lo, hi), ('gpad', a, c)   along the channel axis
and `generate(seed, name, enable, group_share)` makes a group program for a
share of the seeds.
"""
import math
import random
from fractions import Fraction

ACTS = ["tanh", "relu", "sigmoid", "softplus", "identity", "exp", "leaky_relu"]
# Constructs with a switch (FAILURES.md): each is generated unless it is in
# KNOWN_BROKEN (open bugs; `--enable NAME` puts one back, `--disable NAME`
# takes a working one out). mm_equal is the negative test of F5.
SWITCHES = {
    "cI": "c * I, I * c (and A - A' - c * I) (F1, fixed on main 57f19b7)",
    "Idiv": "I / c (F2, fixed on main 57f19b7)",
    "blocklet": "a let inside a block (F3, fixed on main 57f19b7)",
    "mm_equal": "A * B of equal-shaped non-square matrices must be refused (F5, fixed on main 57f19b7)",
    "emul": "the .* operator (landed on main 57f19b7)",
    "constloss": "a constant term in the loss (F4)",
    "conststate": "a state left at its constant initial value, read per sample (F6)",
    "gccopt": "regression only: a gradient gcc 12.2 gets wrong at -O1/-O2 (F7; make check compiles at -O0)",
    "imgtarget": "target t : R[c, n, n] (any shape, DESIGN §3) and mse(p, t) for field outputs (spdlc: a target is a vector)",
    "imgmix": "K * v, K : R[m, c], on C4/D4 fields (DESIGN §8 typing rules; G4, the product along the channel axis)",
    "gbound": "where norm(k) <= c on C4/D4 lift and gconv kernels (DESIGN §8; G2, M_project enforces them since the normbound merge)",
}
# F1-F7 fixed on main (F7: SPDL_MODEL_FN, noipa on the model's functions under gcc);
# G2 (gbound) implemented by the normbound merge; G4 (imgmix) by the channel
# product of a matrix and a field (README, Operators)
KNOWN_BROKEN = set()


def enabled(enable="", disable=""):
    """The switches in force: the working ones, plus --enable, minus --disable."""
    on = set(SWITCHES) - KNOWN_BROKEN
    for x in enable.split(","):
        if x == "all":
            on |= set(SWITCHES)
        elif x:
            if x not in SWITCHES:
                raise SystemExit("unknown construct switch '%s' (%s)" % (x, ", ".join(SWITCHES)))
            on.add(x)
    for x in disable.split(","):
        if x:
            on.discard(x)
    return on


def fmt(v):
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r


class Param:
    def __init__(self, name, kind, shape, per_layer, layers, bound):
        self.name, self.kind, self.shape = name, kind, shape
        self.per_layer, self.layers, self.bound = per_layer, layers, bound

    @property
    def nstore(self):
        if self.kind in ("R", "lift", "gconv"):   # kernels: stored in their DESIGN §8 shapes
            n = 1
            for d in self.shape:
                n *= d
            return n
        if self.kind == "dt":
            return 1
        n = self.shape[0]
        if self.kind in ("skew", "orth"):
            return n * (n - 1) // 2
        if self.kind == "lu":
            return n * n
        if self.kind == "dt":
            return 1
        raise ValueError(self.kind)

    @property
    def size(self):
        return self.nstore * (self.layers if self.per_layer else 1)

    def decl(self):
        if self.kind == "R":
            t = "R[%s]" % ", ".join(str(d) for d in self.shape)
        elif self.kind in ("lift", "gconv"):
            t = "%s[%s, %d -> %d, %d]" % (self.kind, self.group, self.cin, self.cout, self.ksize)
        else:
            t = "%s[%d]" % (self.kind, self.shape[0])
        s = "param  %s : %s" % (self.name, t)
        if self.per_layer:
            s += " per layer"
        if self.bound is not None:
            s += " where norm(%s) <= %s" % (self.name, fmt(self.bound))
        return s + ";"


class Block:
    """A flow (scheme, T, N, equations) or a repeat block (N, assignments)."""

    def __init__(self, kind, layers):
        self.kind, self.layers = kind, layers
        self.scheme = None      # name; self.tableau = (c, a, b) for RK, None for partitioned
        self.tableau = None
        self.t0, self.t1 = 0.0, 1.0
        self.learned = None     # None, or (Param dt, hmax or None)
        self.items = []         # ('let', name, expr) | ('eq', var, expr) | ('set', var, expr)
        self.vars = []          # state names written, in the order written
        self.params = []

    @property
    def h(self):
        return (self.t1 - self.t0) / self.layers if self.kind == "flow" else 1.0


class Prog:
    def __init__(self, name):
        self.name = name
        self.schemes = []       # (name, c, a, b) as Fractions
        self.defs = []          # (name, [args], body)
        self.glets = []         # (name, value, text)
        self.nin = 0
        self.label = None       # class count
        self.target = None      # target size
        self.items = []         # ('param', P) ('state', name, n, init) ('let', name, expr) ('block', B)
        self.output = None      # (name, expr, kind): kind 'softmax' (logits expr), 'mix', 'linear', 'density'
        self.loss = []          # terms: ('ce'|'mse_c'|'mse_t'|'nll', scale) ('smooth', scale, [params], h)
                                # ('const', v) ('psum', scale, param) ('smean', scale)
        self.requires = ""
        self.params = []
        self.states = []        # (name, n) in declaration order
        self.facts = set()      # constructs used, for the coverage table
        self.family = ""
        self.density = False
        # group programs (GroupGen): the group, the input's shape, every sample value's shape
        self.group = None       # ("C4"|"D4"|"Z"|"S", order, printed name)
        self.inshape = None
        self.shapes = {}        # name -> shape of a state, let or the input (no batch axis)
        self.out_field = None   # the output's field type: trivial spatial regular regvec seq set
        self.nout = None
        self.tshape = None      # a target's shape when it is not a vector

    def text(self):
        out = ["// generated by tests/difftest/spngen.py (%s)" % self.family]
        for name, c, a, b in self.schemes:
            out.append("scheme %s {" % name)
            out.append("    c = [%s];" % ", ".join(str(x) for x in c))
            out.append("    a = [%s];" % ", ".join("[%s]" % ", ".join(str(x) for x in row) for row in a))
            out.append("    b = [%s];" % ", ".join(str(x) for x in b))
            out.append("}")
        for name, args, body in self.defs:
            out.append("def %s(%s) = %s;" % (name, ", ".join(args), show(body)))
        for name, v, t in self.glets:
            out.append("let %s = %s;" % (name, t))
        out.append("model %s {" % self.name)
        if self.inshape:
            out.append("    input  x : R[%s];" % ", ".join(str(d) for d in self.inshape))
        else:
            out.append("    input  x : R[%d];" % self.nin)
        if self.label:
            out.append("    label  c : class[%d];" % self.label)
        if self.target:
            out.append("    target t : R[%s];" % ", ".join(str(d) for d in (self.tshape or (self.target,))))
        if self.group:
            out.append("    group  %s acts on x;" % self.group[2])
        for it in self.items:
            if it[0] == "param":
                if it[1].kind != "dt":   # declared by the block's `steps learned`
                    out.append("    " + it[1].decl())
            elif it[0] == "state":
                sh = self.shapes.get(it[1], (it[2],))
                out.append("    state  %s : R[%s] = %s;" % (it[1], ", ".join(str(d) for d in sh), show(it[3])))
            elif it[0] == "let":
                out.append("    let    %s = %s;" % (it[1], show(it[2])))
            else:
                out.extend(block_text(it[1]))
        name, e, kind = self.output
        out.append("    output %s = %s;" % (name, show(e)))
        out.append("    loss   %s;" % loss_text(self))
        if self.requires:
            out.append("    require %s;" % self.requires)
        out.append("}")
        return "\n".join(out) + "\n"


def block_text(b):
    out = []
    if b.kind == "flow":
        out.append("    flow over [%s, %s] in %d layers by %s {" % (fmt(b.t0), fmt(b.t1), b.layers, b.scheme))
        if b.learned:
            out.append("        steps learned%s;" % ("" if b.learned[1] is None else " <= " + fmt(b.learned[1])))
    else:
        out.append("    repeat %d layers {" % b.layers)
    for it in b.items:
        if it[0] == "let":
            out.append("        let %s = %s;" % (it[1], show(it[2])))
        elif it[0] == "eq":
            out.append("        d%s/dt = %s;" % (it[1], show(it[2])))
        else:
            out.append("        %s = %s;" % (it[1], show(it[2])))
    out.append("    }")
    return out


def loss_text(p):
    parts = []
    for t in p.loss:
        k = t[0]
        if k == "ce":
            s = "cross_entropy(p, c)"
        elif k == "mse_c":
            s = "mse(p, c)"
        elif k == "mse_t":
            s = "mse(p, t)"
        elif k == "nll":
            s = "nll_gaussian(p)"
        elif k == "smooth":
            s = "%s * smooth(%s)" % (fmt(t[1]), ", ".join(q.name for q in t[2]))
        elif k == "const":
            s = fmt(t[1])
        elif k == "psum":
            s = "%s * sum(%s %s %s)" % (fmt(t[1]), t[2].name, ".*" if len(t[2].shape) > 1 else "*", t[2].name)
        elif k == "smean":
            s = "%s * mean(p)" % fmt(t[1])
        elif k == "psq":
            s = "%s * mean(p .* p)" % fmt(t[1])
        else:
            raise ValueError(k)
        parts.append(s)
    return " + ".join(parts)


def show(e):
    op = e[0]
    if op == "num":
        return e[2]
    if op == "var":
        return e[1]
    if op == "I":
        return "I"
    if op in ("add", "sub"):
        return "(%s %s %s)" % (show(e[1]), "+" if op == "add" else "-", show(e[2]))
    if op in ("smul", "muls", "mv", "mm"):
        return "(%s * %s)" % (show(e[1]), show(e[2]))
    if op == "emul":
        return "(%s %s %s)" % (show(e[1]), ".*" if e[3] else "*", show(e[2]))
    if op == "div":
        return "(%s / %s)" % (show(e[1]), show(e[2]))
    if op == "neg":
        return "(-%s)" % show(e[1])
    if op == "pow":
        return "(%s ^ %d)" % (show(e[1]), e[2])
    if op == "T":
        return "%s'" % show(e[1])
    if op == "act":
        if e[1] == "leaky_relu":
            return "leaky_relu(%s, %s)" % (show(e[2]), fmt(e[3]))
        return "%s(%s)" % (e[1], show(e[2]))
    if op in ("sum", "mean", "softmax"):
        return "%s(%s)" % (op, show(e[1]))
    if op == "slice":
        return "%s[%d:%d]" % (show(e[1]), e[2], e[3])
    if op == "pad":
        return "pad(%s, %d)" % (show(e[1]), e[2])
    if op == "join":
        return "join(%s)" % ", ".join(show(a) for a in e[1:])
    if op == "call":
        return "%s(%s)" % (e[1], ", ".join(show(a) for a in e[2:]))
    if op in ("lift", "gconv", "gconvT"):
        return "%s(%s, %s)" % ("gconv'" if op == "gconvT" else op, e[1], show(e[2]))
    if op in ("gpool", "mean_space", "mean_set", "pool2"):
        return "%s(%s)" % (op, show(e[1]))
    if op == "cbias":
        return "(%s + %s)" % (show(e[1]), show(e[2]))
    if op == "cmix":
        return "(%s * %s)" % (show(e[1]), show(e[2]))
    if op == "gslice":
        return "%s[%d:%d]" % (show(e[1]), e[2], e[3])
    if op == "gpad":
        return "pad(%s, %d)" % (show(e[1]), e[2])
    raise ValueError(op)


# ---- the generator ------------------------------------------------------------------

class Gen:
    def __init__(self, seed, name, enable=(), negative=None):
        self.r = random.Random(seed)
        self.p = Prog(name)
        self.en = set(enable)
        self.negative = negative
        self.nparam = 0
        self.nlet = 0
        self.block = None       # the block being generated
        self.env = {}           # sample vectors visible: name -> size
        self.glet_vals = []
        self.const_states = set()   # states initialised by a constant

    # -- small helpers
    def chance(self, x):
        return self.r.random() < x

    def num(self, lo=0.1, hi=1.0, frac=True):
        r = self.r
        if frac and self.chance(0.2):
            d = r.choice([2, 3, 4, 5, 8, 10])
            n = r.randint(1, d - 1)
            self.p.facts.add("fraction")
            return ("num", n / d, "(%d/%d)" % (n, d))
        v = round(r.uniform(lo, hi), 2) or lo
        return ("num", v, fmt(v))

    def scalar(self):
        """A scalar constant: a number, or a top-level let."""
        if self.p.glets and self.chance(0.3):
            name, v, t = self.r.choice(self.p.glets)
            self.p.facts.add("global let")
            return ("var", name)
        return self.num()

    def new_param(self, kind, shape, per_layer=None, bound=None, force_shared=False):
        self.nparam += 1
        names = "ABCDEFGHJKLMNOPQRSTUVXYZ" if len(shape) == 2 or kind != "R" else "abdefghjkmnoqrsvwyz"
        name = names[(self.nparam - 1) % len(names)] + str(self.nparam)
        blk = self.block
        if per_layer is None:
            per_layer = blk is not None and not force_shared and self.chance(0.6)
        P = Param(name, kind, shape, per_layer, blk.layers if (blk and per_layer) else 1, bound)
        self.p.items.append(("param", P))
        self.p.params.append(P)
        if blk is not None:
            blk.params.append(P)
        self.p.facts.add("param %s%s" % (kind, " per layer" if per_layer else " shared"))
        if bound is not None:
            self.p.facts.add("norm bound")
        return P

    # -- matrices (parameter-only expressions): n x m
    def mat(self, n, m, depth=1, bound=None):
        r = self.r
        opts = ["R"] * 4
        if n == m:
            opts += ["sq"] * 4
            if n >= 2:
                opts += ["skew", "orth"]
            opts += ["lu"]
        if depth > 0:
            opts += ["T", "prod", "prod", "prod", "scale", "sum"]
        if n == m:
            opts += ["ident"]
        k = r.choice(opts)
        if k == "ident":
            return self.ident(n)
        if k == "R":
            return ("var", self.new_param("R", (n, m), bound=bound).name)
        if k == "T":
            return ("T", self.mat(m, n, depth - 1, bound))
        if k in ("skew", "orth", "lu"):
            return ("var", self.new_param(k, (n,), bound=None).name)
        if k == "prod":
            kk = r.choice([n, m, r.randint(1, 6)])
            self.p.facts.add("matrix product" + (" (non-square)" if (n != kk or m != kk) else ""))
            return ("mm", self.mat(n, kk, depth - 1), self.mat(kk, m, depth - 1))
        if k == "scale":
            c = self.scalar()
            if self.chance(0.5):
                return ("smul", c, self.mat(n, m, depth - 1))
            return ("muls", self.mat(n, m, depth - 1), c)
        if k == "sum":
            return (r.choice(["add", "sub"]), self.mat(n, m, depth - 1), self.mat(n, m, depth - 1))
        # square with the identity
        return self.with_identity(n, depth)

    def ident(self, n):
        """I, or a multiple of it when those are enabled."""
        r = self.r
        forms = ["I"]
        if "cI" in self.en:
            forms += ["cI", "Ic"]
            if "Idiv" in self.en:
                forms.append("I/c")
        f = r.choice(forms)
        self.p.facts.add("I: " + f)
        if f == "I":
            return ("I", n)
        c = self.num()
        if f == "cI":
            return ("smul", c, ("I", n))
        if f == "Ic":
            return ("muls", ("I", n), c)
        c = ("num", 2.0, "2") if self.chance(0.5) else c
        return ("div", ("I", n), c)

    def with_identity(self, n, depth):
        r = self.r
        A = ("var", self.new_param("R", (n, n)).name)
        f = r.choice(["A-A'-gI", "2I-A", "A+I", "I*c", "I/2"])
        if f == "A-A'-gI":
            self.p.facts.add("A - A' - I" if "cI" not in self.en else "A - A' - c I")
            return ("sub", ("sub", A, ("T", A)), self.ident(n))
        if f == "2I-A":
            return ("sub", self.ident(n), A)
        if f == "A+I":
            return ("add", A, self.ident(n))
        return ("add", A, self.ident(n))

    # -- sample vectors of size n
    def leaf(self, n):
        cands = [v for v, k in self.env.items() if k == n]
        if cands:
            return ("var", self.r.choice(cands))
        # a slice or pad of something visible
        big = [v for v, k in self.env.items() if k > n]
        if big:
            v = self.r.choice(big)
            lo = self.r.randint(0, self.env[v] - n)
            self.p.facts.add("slice")
            return ("slice", ("var", v), lo, lo + n)
        small = [v for v, k in self.env.items() if k < n]
        v = self.r.choice(small)
        self.p.facts.add("pad")
        return ("pad", ("var", v), n)

    def act(self, e):
        fn = self.r.choice(ACTS)
        self.p.facts.add("act " + fn)
        if fn == "exp":
            return ("act", "exp", ("act", "tanh", e))
        if fn == "leaky_relu":
            return ("act", fn, e, self.r.choice([0.01, 0.1, 0.2, 0.5]))
        return ("act", fn, e)

    def vec(self, n, depth):
        r = self.r
        if depth <= 0:
            return self.leaf(n)
        k = r.choices(["leaf", "act", "mv", "add", "scale", "emul", "adds", "slice", "pad", "join", "def",
                       "sscale", "neg", "pow", "bias", "div"],
                      [2, 4, 5, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1])[0]
        if k == "leaf":
            return self.leaf(n)
        if k == "act":
            return self.act(self.vec(n, depth - 1))
        if k == "mv":
            m = r.choice([n, n, r.randint(1, 6)])
            self.p.facts.add("matrix * vector")
            return ("mv", self.mat(n, m, 1 if depth > 1 or self.chance(0.3) else 0), self.vec(m, depth - 1))
        if k == "add":
            return (r.choice(["add", "sub"]), self.vec(n, depth - 1), self.vec(n, depth - 1))
        if k == "scale":
            c = self.scalar()
            return ("smul", c, self.vec(n, depth - 1)) if self.chance(0.5) else ("muls", self.vec(n, depth - 1), c)
        if k == "div":
            return ("div", self.vec(n, depth - 1), self.num(1.0, 3.0))
        if k == "emul":
            dot = "emul" in self.en and self.chance(0.5)
            self.p.facts.add("elementwise " + (".*" if dot else "vector * vector"))
            return ("emul", ("act", "tanh", self.vec(n, depth - 1)), self.vec(n, depth - 1), dot)
        if k == "adds":
            self.p.facts.add("tensor + scalar")
            return (r.choice(["add", "sub"]), self.vec(n, depth - 1), self.num())
        if k == "slice":
            m = n + r.randint(1, 3)
            lo = r.randint(0, m - n)
            self.p.facts.add("slice")
            return ("slice", self.vec(m, depth - 1), lo, lo + n)
        if k == "pad" and n > 1:
            self.p.facts.add("pad")
            return ("pad", self.vec(r.randint(1, n - 1), depth - 1), n)
        if k == "join" and n > 1:
            a = r.randint(1, n - 1)
            self.p.facts.add("join")
            return ("join", self.vec(a, depth - 1), self.vec(n - a, depth - 1))
        if k == "def" and self.p.defs:
            name, args, body = r.choice(self.p.defs)
            self.p.facts.add("def")
            return ("call", name) + tuple(self.vec(n, depth - 1) for _ in args)
        if k == "sscale":
            # a sample scalar times a vector: mean/sum of a bounded vector
            m = r.randint(1, 6)
            f = r.choice(["sum", "mean"])
            self.p.facts.add("sum/mean")
            s = (f, ("act", "tanh", self.vec(m, depth - 1)))
            if f == "sum":
                s = ("div", s, ("num", float(m), str(m)))
            return ("smul", s, self.vec(n, depth - 1))
        if k == "neg":
            return ("neg", self.vec(n, depth - 1))
        if k == "pow":
            self.p.facts.add("power")
            return ("pow", ("act", "tanh", self.vec(n, depth - 1)), r.choice([2, 3]))
        if k == "bias":
            b = self.new_param("R", (n,))
            self.p.facts.add("bias")
            return ("add", self.vec(n, depth - 1), ("var", b.name))
        return self.leaf(n)

    def defs(self):
        r = self.r
        for i in range(r.randint(0, 2)):
            nargs = r.randint(1, 2)
            args = ["a", "b"][:nargs]
            a = ("var", "a")
            b = ("var", args[-1])
            fn = r.choice(["tanh", "sigmoid", "softplus"])
            body = r.choice([
                ("act", fn, ("add", a, ("emul", ("act", "tanh", b), a, False))),
                ("add", ("act", fn, a), ("smul", ("num", 0.5, "0.5"), ("act", "tanh", b))),
                ("sub", ("emul", ("act", "tanh", a), ("act", "sigmoid", b), False), ("num", 0.25, "0.25")),
            ])
            self.p.defs.append(("f%d" % i, args, body))

    def tableau(self):
        """A random explicit Runge-Kutta tableau with c_i = sum_j a_ij and sum b = 1."""
        r = self.r
        s = r.randint(1, 4)
        a = [[Fraction(0)] * s for _ in range(s)]
        for i in range(1, s):
            for j in range(i):
                a[i][j] = Fraction(r.randint(-2, 4), r.choice([2, 3, 4, 6]))
        c = [sum(row) for row in a]
        b = [Fraction(r.randint(0, 4), r.choice([1, 2, 3, 4])) for _ in range(s)]
        if sum(b) == 0:
            b[0] = Fraction(1)
        tot = sum(b)
        b = [x / tot for x in b]
        name = "tab%d" % (len(self.p.schemes) + 1)
        self.p.schemes.append((name, c, a, b))
        return name, ([float(x) for x in c], [[float(x) for x in row] for row in a], [float(x) for x in b])

    # -- blocks
    def block_field(self, fam, var, n, others):
        """The right-hand side for d var/dt (or the update for var) in a family."""
        r = self.r
        u = ("var", var)
        if fam == "gradflow":
            m = r.randint(1, 6)
            # |K| <= 1 with h <= 0.5 keeps h |K|^2 <= 2 (non-expansive) in most programs
            K = self.new_param("R", (m, n), bound=r.choice([0.5, 1.0, 1.0, 1.0, 2.0]))
            b = self.new_param("R", (m,))
            act = r.choice(["tanh", "relu", "sigmoid", "softplus", "leaky_relu"])
            self.p.facts.add("act " + act)
            inner = ("add", ("mv", ("var", K.name), u), ("var", b.name))
            a = ("act", act, inner, 0.1) if act == "leaky_relu" else ("act", act, inner)
            return ("neg", ("mv", ("T", ("var", K.name)), a))
        if fam == "antisym":
            bound = r.choice([1.0, 2.0])
            if n >= 2 and self.chance(0.3):
                S = ("var", self.new_param("skew", (n,), bound=bound).name)
                M = S
            else:
                A = ("var", self.new_param("R", (n, n), bound=bound).name)
                M = ("sub", A, ("T", A))
            g = self.num(0.05, 0.2, frac=False)
            if "cI" in self.en and self.chance(0.7):
                self.p.facts.add("A - A' - c I")
                lin = ("mv", ("sub", M, ("smul", g, ("I", n))), u)
            else:
                lin = ("sub", ("mv", M, u), ("smul", g, u))
            b = self.new_param("R", (n,))
            act = r.choice(["tanh", "identity", "leaky_relu"])
            self.p.facts.add("act " + act)
            inner = ("add", lin, ("var", b.name))
            return ("act", act, inner, 0.2) if act == "leaky_relu" else ("act", act, inner)
        if fam == "hamilton":
            # d var/dt = +-act(K * other + b), the pair shares K (K' for the second)
            o, K, b, sign, tr = others
            x = ("mv", ("T", ("var", K.name)) if tr else ("var", K.name), ("var", o))
            f = ("act", "tanh", ("add", x, ("var", b.name)))
            return ("neg", f) if sign < 0 else f
        if fam == "contractive":
            K = self.new_param("R", (n, n), bound=1.0)
            b = self.new_param("R", (n,))
            self.p.facts.add("act tanh")
            return ("smul", self.num(0.2, 0.9, frac=False), ("act", "tanh", ("add", ("mv", ("var", K.name), u), ("var", b.name))))
        # random
        e = self.vec(n, r.randint(1, 3))
        if self.chance(0.3):
            # a matrix product of parameter expressions, square or not
            kk = r.randint(1, 6)
            self.p.facts.add("matrix product" + (" (non-square)" if kk != n else ""))
            e = ("add", e, ("mv", ("mm", self.mat(n, kk, 0), self.mat(kk, n, 0)), u))
        if self.chance(0.5):
            e = ("act", "tanh", e)
        return e

    def make_block(self, fam, svars):
        """A block over the states svars (list of (name, n))."""
        r = self.r
        p = self.p
        if fam in ("coupling", "density"):
            b = Block("repeat", r.randint(1, 4))
        else:
            b = Block("flow", r.randint(1, 5))
        self.block = b
        p.facts.add(b.kind + " block")
        b.vars = [v for v, n in svars]
        if b.kind == "repeat":
            self.repeat_body(b, svars, fam)
        else:
            T = r.choice([0.5, 1.0, 1.0, 2.0])
            b.t0 = r.choice([0.0, 0.0, 0.5])
            b.t1 = b.t0 + T
            if fam == "hamilton":
                b.scheme = r.choice(["verlet", "symplectic_euler"]) if len(svars) == 2 else "symplectic_euler"
            elif fam == "gradflow" and self.chance(0.8):
                b.scheme = r.choice(["euler", "heun"])     # SSP (kutta3 is not): non-expansive for small steps
                b.layers = max(b.layers, int(math.ceil(T)) * 2)
            else:
                b.scheme = r.choice(["euler", "heun", "kutta3", "rk4", "user", "user"])
                if len(svars) >= 2 and fam == "random" and self.chance(0.3):
                    b.scheme = r.choice(["verlet", "symplectic_euler"]) if len(svars) == 2 else "symplectic_euler"
            if b.scheme == "user":
                b.scheme, b.tableau = self.tableau()
                p.facts.add("user tableau")
            elif b.scheme in ("verlet", "symplectic_euler"):
                b.tableau = None
            else:
                b.tableau = STD[b.scheme]
            p.facts.add("scheme " + (b.scheme if not b.scheme.startswith("tab") else "user"))
            if fam == "contractive":
                b.t1 = b.t0 + r.choice([0.2, 0.4, 0.6])
            if self.chance(0.25):
                hmax = None
                if self.chance(0.6):
                    hmax = round(b.h * r.choice([1.0, 1.5, 2.0]), 3)
                    if hmax * b.layers < (b.t1 - b.t0):
                        hmax = None
                k = sum(1 for it in p.items if it[0] == "block" and it[1].learned)
                P = Param("dt" if k == 0 else "dt%d" % (k + 1), "dt", (), True, b.layers, None)
                b.learned = (P, hmax)   # in theta where the block is: after the parameters declared above it
                p.facts.add("learned steps" + (" <= hmax" if hmax is not None else ""))
            lets = []
            if "blocklet" in self.en and self.chance(0.6) and fam == "random":
                # q = tanh(K * v) of a block variable, used by the first equation
                v, n = r.choice(svars)
                name = "q%d" % self.nlet
                self.nlet += 1
                e = ("act", "tanh", ("mv", ("var", self.new_param("R", (svars[0][1], n)).name), ("var", v)))
                b.items.append(("let", name, e))
                lets.append(name)
                p.facts.add("let in block")
            if fam == "hamilton":
                (y, ny), (z, nz) = svars[0], svars[1]
                K = self.new_param("R", (ny, nz), bound=r.choice([None, 1.0, 2.0]))
                bb = self.new_param("R", (ny,))
                cc = self.new_param("R", (nz,))
                b.items.append(("eq", y, self.block_field("hamilton", y, ny, (z, K, bb, 1, False))))
                b.items.append(("eq", z, self.block_field("hamilton", z, nz, (y, K, cc, -1, True))))
                for v, n in svars[2:]:
                    b.items.append(("eq", v, self.block_field("random", v, n, None)))
                p.facts.add("Hamiltonian pair")
            else:
                for v, n in svars:
                    b.items.append(("eq", v, self.block_field(fam, v, n, None)))
            for name in lets:
                i = next(j for j, it in enumerate(b.items) if it[0] == "eq")
                it = b.items[i]
                b.items[i] = ("eq", it[1], ("add", it[2], ("smul", ("num", 0.5, "0.5"), ("var", name))))
        if b.learned:
            p.items.append(("param", b.learned[0]))
            p.params.append(b.learned[0])
        p.items.append(("block", b))
        self.block = None
        return b

    def repeat_body(self, b, svars, fam):
        """Shears, affine couplings and lu/orth maps (invertible) or free updates."""
        r = self.r
        p = self.p
        names = [v for v, n in svars]
        sizes = dict(svars)
        for it in range(r.randint(1, 3)):
            for v in names:
                n = sizes[v]
                others = [o for o in names if o != v]
                kind = r.choice(["shear", "coupling", "linear"] if others else ["linear"])
                if fam == "coupling" and not others:
                    kind = "linear"
                if fam == "coupling" and "blocklet" in self.en and others and self.chance(0.3):
                    o = r.choice(others)
                    name = "q%d" % self.nlet
                    self.nlet += 1
                    b.items.append(("let", name, ("act", "tanh", ("mv", ("var", self.new_param("R", (sizes[o], sizes[o])).name), ("var", o)))))
                    self.env[name] = sizes[o]
                    sizes[name] = sizes[o]
                    others = others + [name]
                    p.facts.add("let in block")
                if kind == "shear":
                    o = r.choice(others)
                    if o.startswith("q"):   # the block's let: v = v + tanh(K * q)
                        K = self.new_param("R", (n, sizes[o]))
                        b.items.append(("set", v, ("add", ("var", v), ("act", "tanh", ("mv", ("var", K.name), ("var", o))))))
                        p.facts.add("repeat shear")
                        continue
                    f = self.cond_field(n, o, sizes[o])
                    sub = self.chance(0.3)
                    b.items.append(("set", v, ("sub" if sub else "add", ("var", v), f)))
                    p.facts.add("repeat shear")
                elif kind == "coupling":
                    o = r.choice(others)
                    s = ("act", "tanh", self.cond_field(n, o, sizes[o]))
                    t = self.cond_field(n, o, sizes[o])
                    b.items.append(("set", v, ("add", ("emul", ("var", v), ("act", "exp", s), False), t)))
                    p.facts.add("repeat coupling")
                else:
                    k = r.choice(["lu", "orth"] if n >= 2 else ["lu"])
                    L = self.new_param(k, (n,))
                    e = ("mv", ("var", L.name), ("var", v))
                    if self.chance(0.5):
                        e = ("add", e, ("var", self.new_param("R", (n,)).name))
                    b.items.append(("set", v, e))
                    p.facts.add("repeat %s map" % k)
        for k in list(self.env):
            if k.startswith("q"):
                del self.env[k]

    def cond_field(self, n, o, no):
        """f(o): a small function of the other variable."""
        r = self.r
        K = self.new_param("R", (n, no))
        e = ("mv", ("var", K.name), ("var", o))
        if self.chance(0.6):
            e = ("add", e, ("var", self.new_param("R", (n,)).name))
        if self.chance(0.7):
            e = self.act(e)
        return e

    # -- the whole program
    def program(self):
        r = self.r
        p = self.p
        fams = ["random", "random", "gradflow", "antisym", "hamilton", "coupling", "contractive", "density"]
        main = r.choice(fams)
        p.family = main
        self.defs()
        if self.chance(0.3):
            v = round(r.uniform(0.2, 1.0), 2)
            p.glets.append(("g0", v, fmt(v)))
            p.facts.add("global let")
        nin = r.randint(1, 6) if main != "density" else r.randint(2, 6)
        p.nin = nin
        self.env = {}
        if main == "density":
            p.density = True
            a = r.randint(1, nin - 1)
            svars = [("u", a), ("v", nin - a)]
            self.add_state("u", a, ("slice", ("var", "x"), 0, a))
            self.add_state("v", nin - a, ("slice", ("var", "x"), a, nin))
            self.make_block("density", svars)
            if self.chance(0.4):
                self.make_block("density", svars[::-1])
            p.output = ("p", ("join", ("var", "u"), ("var", "v")), "density")
            p.loss = [("nll", 1.0)]
            self.extra_loss()
            return p
        # states
        nst = r.randint(1, 3) if main != "hamilton" else r.randint(2, 3)
        if main == "coupling":
            nst = max(nst, 2)
        states = []
        for i in range(nst):
            n = r.randint(1, 6)
            nm = "usw"[i] if i < 3 else "s%d" % i
            self.add_state(nm, n, self.state_init(n))
            states.append((nm, n))
        nblocks = r.choice([1, 1, 2, 3])
        for bi in range(nblocks):
            fam = main if bi == 0 else r.choice(fams[:-1])
            if fam == "hamilton" and len(states) < 2:
                fam = "random"
            if fam == "coupling" and len(states) < 2:
                fam = "random"
            if main == "gradflow" and bi > 0 and self.chance(0.7):
                fam = "gradflow"
            if fam in ("hamilton",):
                sv = states[:]
            elif fam == "gradflow" and self.chance(0.8):
                sv = [r.choice(states)]   # one variable: -K' act(K u + b) is recognised per block
            elif fam == "coupling":
                sv = r.sample(states, r.randint(2, len(states)))
            else:
                sv = r.sample(states, r.randint(1, len(states)))
            if bi == 0 and "conststate" not in self.en:
                # F6: a state left at a constant initial value is read wrongly; the first block writes them all
                sv += [s for s in states if s[0] in self.const_states and s not in sv]
            self.make_block(fam, sv)
            if bi + 1 < nblocks and self.chance(0.3):
                # a model-level let and a state initialised between blocks
                n = r.randint(1, 6)
                nm = "m%d" % bi
                p.items.append(("let", nm, self.vec(n, 1)))
                self.env[nm] = n
                p.facts.add("model let")
                if self.chance(0.6):
                    sn = "w%d" % bi
                    self.add_state(sn, n, ("add", ("var", nm), self.leaf(n)) if self.chance(0.5) else ("var", nm))
                    states.append((sn, n))
                    p.facts.add("state between blocks")
                del self.env[nm]
        self.readout(states)
        return p

    def add_state(self, name, n, init):
        self.p.items.append(("state", name, n, init))
        self.p.states.append((name, n))
        self.env[name] = n

    def state_init(self, n):
        r = self.r
        nin = self.p.nin
        k = r.choice(["x", "pad", "slice", "zero", "const", "expr"])
        if k == "x" and n == nin:
            return ("var", "x")
        if k in ("x", "pad") and n > nin:
            self.p.facts.add("pad")
            return ("pad", ("var", "x"), n)
        if k == "slice" and n < nin:
            lo = r.randint(0, nin - n)
            self.p.facts.add("slice")
            return ("slice", ("var", "x"), lo, lo + n)
        if k in ("zero", "const"):
            self.const_states.add("usw"[len(self.p.states)] if len(self.p.states) < 3 else "s%d" % len(self.p.states))
            return ("num", 0.0, "0") if k == "zero" else self.num(-1.0, 1.0)
        save, self.env = self.env, {"x": nin}
        e = ("act", "tanh", self.vec(n, 1))
        self.env = save
        return e

    def readout(self, states):
        r = self.r
        p = self.p
        # the read-out feature: a state, a join, a sum, a pad
        st = r.sample(states, r.randint(1, len(states)))
        if len(st) > 1 and self.chance(0.5):
            feat = ("join",) + tuple(("var", s) for s, n in st)
            m = sum(n for s, n in st)
            p.facts.add("join")
        else:
            s, m = st[0]
            feat = ("var", s)
            if self.chance(0.2):
                feat = ("pad", feat, m + 1)
                m += 1
        bounded = p.family in ("gradflow", "antisym", "hamilton", "contractive") and self.chance(0.8)
        kind = r.choice(["ce", "mse_c", "mse_t", "mse_t"])
        if kind == "mse_t":
            q = r.randint(1, 4)
            p.target = q
            W = self.new_param("R", (q, m), bound=r.choice([1.0, 2.0]) if bounded else None)
            e = ("mv", ("var", W.name), feat)
            if self.chance(0.5):
                e = ("add", e, ("var", self.new_param("R", (q,)).name))
            p.output = ("p", e, "linear")
            p.loss = [("mse_t", 1.0)]
        else:
            q = r.randint(2, 4)
            p.label = q
            W = self.new_param("R", (q, m), bound=r.choice([1.0, 2.0]) if bounded else None)
            z = ("mv", ("var", W.name), feat)
            if self.chance(0.5):
                z = ("add", z, ("var", self.new_param("R", (q,)).name))
            if self.chance(0.1):
                p.output = ("p", ("add", ("smul", ("num", 0.5, "0.5"), ("softmax", z)),
                                  ("smul", ("num", 0.5, "0.5"), ("softmax", ("smul", ("num", 2.0, "2"), z)))), "mix")
                p.facts.add("mixture of softmaxes")
            else:
                p.output = ("p", ("softmax", z), "softmax")
            p.loss = [(kind, 1.0)]
        p.facts.add("loss " + kind)
        self.extra_loss()

    def extra_loss(self):
        r = self.r
        p = self.p
        if self.chance(0.4):
            blocks = [it[1] for it in p.items if it[0] == "block"]
            b = r.choice(blocks)
            pl = [q for q in b.params if q.per_layer and q.kind != "dt"]
            if pl:
                names = r.sample(pl, r.randint(1, min(3, len(pl))))
                p.loss.append(("smooth", r.choice([0.01, 0.1, 1e-3]), names, b.h))
                p.facts.add("smooth")
        if self.chance(0.2):
            vecs = [q for q in p.params if q.kind == "R" and not q.per_layer and
                    (len(q.shape) == 1 or "emul" in self.en)]
            if vecs:
                p.loss.append(("psum", 0.01, r.choice(vecs)))
                p.facts.add("parameter-only loss term")
        if self.chance(0.15) and not p.density:
            p.loss.append(("smean", 0.1))
            p.facts.add("second sample loss term")
        if "constloss" in self.en and self.chance(0.3):
            p.loss.append(("const", 0.1))
            p.facts.add("constant loss term")


STD = {
    "euler": ([0.0], [[0.0]], [1.0]),
    "heun": ([0.0, 1.0], [[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5]),
    "kutta3": ([0.0, 0.5, 1.0], [[0, 0, 0], [0.5, 0, 0], [-1.0, 2.0, 0]], [1 / 6, 2 / 3, 1 / 6]),
    "rk4": ([0, 0.5, 0.5, 1.0], [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]],
            [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
}


# ---- group programs (DESIGN §8) ---------------------------------------------------------
#
# C4/D4 images R[c, n, n] lifted to regular fields R[c, |G|, n, n], Z(n) sequences R[c, n]
# and S(n) sets R[c, n]. One equivariant linear map per group: lift/gconv/gconv' kernels
# for C4 and D4, gconv[Z(n), ...] (circular, any k) for Z(n), channel mixing K * v for S(n).
# Every node records its meaning (lift, gconv, gconvT, cbias: a channel bias added along
# the leading axis, cmix: K * v mixing channels, gpool, mean_space, mean_set, pool2).

class GroupGen(Gen):
    """Random well-typed programs with a group acting on the input."""

    def __init__(self, seed, name, enable=()):
        Gen.__init__(self, seed, name, enable)
        self.kind = None        # C4 D4 Z S
        self.order = 1
        self.n = 1              # grid side (C4/D4) or sequence / set length
        self.m = 1              # the current grid side of regular fields (pool2 halves it)
        self.shared = {}        # (cin, cout) -> shared gconv kernels, to be used again

    # -- shapes and the linear equivariant maps
    def rshape(self, c, m=None):
        """The shape of a field of c channels on which the blocks act."""
        if self.kind in ("C4", "D4"):
            m = self.m if m is None else m
            return (c, self.order, m, m)
        return (c, self.n)

    def new_param(self, kind, shape, per_layer=None, bound=None, force_shared=False):
        P = Gen.new_param(self, kind, shape, per_layer, bound, force_shared)
        if kind in ("lift", "gconv"):
            P.name = "k%d" % self.nparam
        elif P.name in ("C4", "D4"):   # the groups' names
            P.name = P.name[0].lower() + "x" + P.name[1:]
        return P

    def kernel(self, kind, cin, cout, bound=None, per_layer=None):
        r = self.r
        G = self.kind
        if G in ("C4", "D4"):
            ks = r.choice([1, 3, 3, 3, 5])
            shape = (cout, cin, ks, ks) if kind == "lift" else (cout, cin, self.order, ks, ks)
            gname = G
            if bound is not None and "gbound" not in self.en:
                bound = None
        else:
            ks = r.randint(1, self.n + 2)
            shape = (cout, cin, ks)
            gname = "Z(%d)" % self.n
            if ks > self.n:
                self.p.facts.add("Z(n) kernel longer than n")
            elif ks % 2 == 0:
                self.p.facts.add("Z(n) even kernel")
        P = self.new_param(kind, shape, per_layer=per_layer, bound=bound)
        P.group, P.cin, P.cout, P.ksize = gname, cin, cout, ks
        P.order, P.grid = self.order, (self.m if G in ("C4", "D4") else self.n)   # the grid it convolves
        self.p.facts.add("%s kernel k=%d" % (kind, ks) if G in ("C4", "D4") else "gconv[Z(n)] kernel")
        return P

    def lin(self, cin, cout, bound=None):
        """An equivariant linear map R[cin, ...] -> R[cout, ...]: (forward, adjoint)."""
        if self.kind == "S":
            K = self.new_param("R", (cout, cin), bound=bound)
            self.p.facts.add("S(n) K * v")
            return (lambda v: ("cmix", ("var", K.name), v)), (lambda w: ("cmix", ("T", ("var", K.name)), w))
        key = (cin, cout)
        old = [P for P in self.shared.get(key, []) if (P.bound is None) == (bound is None)]
        if old and self.chance(0.3):
            P = self.r.choice(old)          # a shared kernel used again (another block, or twice)
            self.p.facts.add("kernel used in two places")
        else:
            P = self.kernel("gconv", cin, cout, bound=bound)
            if not P.per_layer:
                self.shared.setdefault(key, []).append(P)
        self.p.facts.add("gconv")

        def adj(w):
            self.p.facts.add("gconv'")
            return ("gconvT", P.name, w)
        return (lambda v: ("gconv", P.name, v)), adj

    def bias(self, e, c):
        b = self.new_param("R", (c,))
        self.p.facts.add("channel bias")
        return ("cbias", e, ("var", b.name))

    def gact(self, e, acts=None):
        fn = self.r.choice(acts or ["tanh", "relu", "sigmoid", "softplus", "identity", "leaky_relu"])
        self.p.facts.add("act " + fn)
        if fn == "leaky_relu":
            return ("act", fn, e, self.r.choice([0.01, 0.1, 0.2]))
        return ("act", fn, e)

    # -- right-hand sides of one field variable v with c channels
    def term(self, v, c, depth=1):
        r = self.r
        k = r.choice(["grad", "free", "free", "adj", "mix", "damp", "point", "sscale", "sum"] if depth > 0 else
                     ["grad", "free", "adj", "damp", "point"])
        if k == "mix" and self.kind in ("C4", "D4") and "imgmix" not in self.en:
            k = "free"
        if k == "grad":
            m2 = r.randint(1, 3)
            f, a = self.lin(c, m2)
            return ("neg", a(self.gact(self.bias(f(v), m2), ["tanh", "relu", "sigmoid", "softplus"])))
        if k == "free":
            f, a = self.lin(c, c)
            e = f(v)
            if self.chance(0.7):
                e = self.bias(e, c)
            return self.gact(e)
        if k == "adj":
            f, a = self.lin(c, c)
            return a(self.gact(v, ["tanh", "sigmoid", "softplus"]))
        if k == "mix":
            K = self.new_param("R", (c, c))
            self.p.facts.add("channel mixing K * v")
            return ("cmix", ("var", K.name), v)
        if k == "damp":
            return ("neg", ("smul", self.num(0.1, 1.0), v))
        if k == "point":
            return self.gact(self.bias(v, c) if self.chance(0.5) else v, ["tanh", "sigmoid", "softplus"])
        if k == "sscale":
            self.p.facts.add("sum/mean")
            return ("smul", ("mean", ("act", "tanh", v)), v)
        return (r.choice(["add", "sub"]), self.term(v, c, depth - 1), ("smul", self.num(0.2, 1.0), self.term(v, c, depth - 1)))

    # -- blocks
    def scheme(self, b, fam):
        r = self.r
        if fam == "ham":
            b.scheme = r.choice(["verlet", "symplectic_euler"])
        elif fam == "grad":
            b.scheme = r.choice(["euler", "heun"])
            b.layers = max(b.layers, 2)
        else:
            b.scheme = r.choice(["euler", "heun", "kutta3", "rk4", "user"])
        if b.scheme == "user":
            b.scheme, b.tableau = self.tableau()
            self.p.facts.add("user tableau")
        elif b.scheme in ("verlet", "symplectic_euler"):
            b.tableau = None
        else:
            b.tableau = STD[b.scheme]
        self.p.facts.add("scheme " + (b.scheme if not b.scheme.startswith("tab") else "user"))

    def gblock(self, fam, svars):
        """A block over the field states svars [(name, channels)]."""
        r = self.r
        p = self.p
        b = Block("repeat" if fam == "repeat" else "flow", r.randint(1, 3))
        self.block = b
        b.vars = [v for v, c in svars]
        p.facts.add(b.kind + " block")
        if fam == "repeat":
            for v, c in svars:
                others = [(o, co) for o, co in svars if o != v]
                kind = r.choice(["residual", "shear", "coupling"] if others else ["residual"])
                if kind == "residual":
                    e = ("add", ("var", v), ("smul", self.num(0.1, 0.6), self.term(("var", v), c)))
                    p.facts.add("repeat residual")
                else:
                    o, co = r.choice(others)
                    f, a = self.lin(co, c)
                    t = self.gact(self.bias(f(("var", o)), c), ["tanh", "sigmoid", "softplus"])
                    if kind == "shear":
                        e = ("add", ("var", v), t)
                        p.facts.add("repeat shear")
                    else:
                        f2, a2 = self.lin(co, c)
                        s = ("act", "exp", ("act", "tanh", f2(("var", o))))
                        e = ("add", ("emul", ("var", v), s, True), t)
                        p.facts.add("repeat coupling (.*)")
                b.items.append(("set", v, e))
            self.block = None
            p.items.append(("block", b))
            return b
        b.t0 = r.choice([0.0, 0.0, 0.5])
        b.t1 = b.t0 + r.choice([0.5, 1.0, 1.0, 2.0])
        self.scheme(b, fam)
        if self.chance(0.2):
            hmax = round(b.h * r.choice([1.0, 1.5, 2.0]), 3) if self.chance(0.5) else None
            if hmax is not None and hmax * b.layers < b.t1 - b.t0:
                hmax = None
            k = sum(1 for it in p.items if it[0] == "block" and it[1].learned)
            P = Param("dt" if k == 0 else "dt%d" % (k + 1), "dt", (), True, b.layers, None)
            b.learned = (P, hmax)
            p.facts.add("learned steps" + (" <= hmax" if hmax is not None else ""))
        if fam == "ham":
            (y, cy), (z, cz) = svars
            bound = r.choice([None, 1.0, 2.0])
            f, a = self.lin(cz, cy, bound=bound)       # y' = act(K z + b), z' = -act(K' y + d)
            b.items.append(("eq", y, self.gact(self.bias(f(("var", z)), cy), ["tanh"])))
            b.items.append(("eq", z, ("neg", self.gact(self.bias(a(("var", y)), cz), ["tanh"]))))
            p.facts.add("Hamiltonian pair")
        elif fam == "grad":
            (v, c), = svars
            m2 = r.randint(1, 3)
            f, a = self.lin(c, m2, bound=r.choice([0.5, 1.0, 1.0, 2.0]))
            inner = self.bias(f(("var", v)), m2)
            act = self.gact(inner, ["tanh", "relu", "sigmoid", "softplus", "leaky_relu"])
            if "blocklet" in self.en and self.chance(0.3):
                q = "q%d" % self.nlet
                self.nlet += 1
                b.items.append(("let", q, act))
                p.shapes[q] = self.rshape(m2) if self.kind not in ("C4", "D4") else self.shape_of(v, m2)
                act = ("var", q)
                p.facts.add("let in block")
            b.items.append(("eq", v, ("neg", a(act))))
            p.facts.add("gradient flow")
        else:
            for v, c in svars:
                e = self.term(("var", v), c)
                if self.chance(0.3):
                    e = ("act", "tanh", e)
                b.items.append(("eq", v, e))
        if b.learned:
            p.items.append(("param", b.learned[0]))
            p.params.append(b.learned[0])
        p.items.append(("block", b))
        self.block = None
        return b

    def shape_of(self, v, c):
        sh = self.p.shapes[v]
        return (c,) + tuple(sh[1:])

    def add_gstate(self, name, shape, init):
        n = 1
        for d in shape:
            n *= d
        self.p.items.append(("state", name, n, init))
        self.p.states.append((name, n))
        self.p.shapes[name] = shape

    # -- the whole program
    def program(self):
        r = self.r
        p = self.p
        self.kind = r.choice(["C4", "D4", "C4", "D4", "Z", "Z", "S", "S"])
        G = self.kind
        p.family = "group " + G
        p.facts.add("group " + G)
        cin = r.randint(1, 3)
        if G in ("C4", "D4"):
            self.order = 4 if G == "C4" else 8
            self.n = self.m = r.randint(1, 8)
            p.group = (G, self.order, G)
            p.inshape = (cin, self.n, self.n)
        else:
            self.n = r.randint(2, 8) if G == "Z" else r.randint(1, 6)
            self.order = self.n
            p.group = (G, self.n, "%s(%d)" % (G, self.n))
            p.inshape = (cin, self.n)
        p.nin = 1
        for d in p.inshape:
            p.nin *= d
        p.shapes["x"] = p.inshape
        fam = r.choice(["free", "free", "grad", "grad", "ham", "repeat"])
        nst = 2 if fam == "ham" or (fam == "repeat" and self.chance(0.6)) else r.choice([1, 1, 2])
        # at most 3 channels, and about 512 numbers a field (the attacks' Jacobians are n x n)
        cmax = max(1, min(3, 512 // (self.order * self.n * self.n if G in ("C4", "D4") else self.n)))
        chans = [r.randint(1, cmax) for _ in range(nst)]
        src, csrc = ("var", "x"), cin
        if G in ("C4", "D4"):
            if self.chance(0.25):
                # a spatial stage before lifting: pool2 of the input (even n), or a residual block on it
                if self.n % 2 == 0 and self.chance(0.5):
                    self.add_gstate("s", (cin, self.n // 2, self.n // 2), ("pool2", ("var", "x")))
                    self.m = self.n // 2
                    p.facts.add("pool2 of the input")
                else:
                    self.add_gstate("s", (cin, self.n, self.n), ("var", "x"))
                    b = Block("repeat", r.randint(1, 2))
                    b.vars = ["s"]
                    self.block = b
                    e = self.bias(("var", "s"), cin) if self.chance(0.6) else ("var", "s")
                    b.items.append(("set", "s", ("add", ("var", "s"), ("smul", self.num(0.2, 0.8), ("act", "tanh", e)))))
                    self.block = None
                    p.items.append(("block", b))
                    p.facts.add("spatial block")
                src = ("var", "s")
        states = []
        for i, c in enumerate(chans):
            nm = "hz"[i]
            if G in ("C4", "D4"):
                k0 = self.kernel("lift", csrc, c, bound=r.choice([None, 1.0, 2.0]))
                e = ("lift", k0.name, src)
                p.facts.add("lift")
                shape = self.rshape(c)
            elif G == "Z":
                if c == csrc and self.chance(0.3):
                    e = src
                else:
                    k0 = self.kernel("gconv", csrc, c, bound=r.choice([None, 1.0, 2.0]))
                    e = ("gconv", k0.name, src)
                shape = (c, self.n)
            else:
                if c == csrc and self.chance(0.3):
                    e = src
                else:
                    A = self.new_param("R", (c, csrc), bound=r.choice([None, 1.0, 2.0]))
                    e = ("cmix", ("var", A.name), src)
                shape = (c, self.n)
            if e is not src and c >= 2 and self.chance(0.15):
                # join along the channel axis (DESIGN §8: preserves the type), of a slice or a pad
                a = r.randint(1, c - 1)
                if self.chance(0.5):
                    e = ("join", ("gslice", e, 0, a), ("gslice", e, a, c))
                    p.facts.add("channel slice and join")
                else:
                    e = ("gpad", ("gslice", e, 0, a), c)
                    p.facts.add("channel slice and pad")
            if e is not src:
                if self.chance(0.6):
                    e = self.bias(e, c)
                if self.chance(0.7):
                    e = self.gact(e, ["tanh", "relu", "softplus", "sigmoid"])
            self.add_gstate(nm, shape, e)
            states.append((nm, c))
        self.gblock(fam, states if fam in ("ham", "repeat") or len(states) == 1 else [r.choice(states)])
        if self.chance(0.3):
            f2 = r.choice(["free", "grad", "repeat"])
            sv = [r.choice(states)] if f2 == "grad" else r.sample(states, r.randint(1, len(states)))
            self.gblock(f2, sv)
        if G in ("C4", "D4") and self.m % 2 == 0 and self.m > 0 and self.chance(0.3):
            # pool2 of a regular field between blocks, then a block on the coarser grid
            v, c = r.choice(states)
            self.m //= 2
            self.add_gstate("q", self.rshape(c), ("pool2", ("var", v)))
            p.facts.add("pool2 of a regular field")
            states.append(("q", c))
            self.gblock(r.choice(["free", "grad", "repeat"]), [("q", c)])
        self.greadout(states)
        return p

    def feature(self, v, c):
        """An invariant vector R[c] of the field state v."""
        r = self.r
        G = self.kind
        if G == "Z":
            self.p.facts.add("gpool")
            return ("gpool", ("var", v))
        if G == "S":
            self.p.facts.add("mean_set")
            return ("mean_set", ("var", v))
        m = self.p.shapes[v][-1]
        k = r.choice(["ms_gp", "gp_ms"] + (["pool2"] if m % 2 == 0 else []))
        self.p.facts.add("gpool")
        self.p.facts.add("mean_space")
        if k == "ms_gp":
            return ("mean_space", ("gpool", ("var", v)))
        if k == "gp_ms":
            return ("gpool", ("mean_space", ("var", v)))
        self.p.facts.add("pool2 in the read-out")
        return ("mean_space", ("gpool", ("pool2", ("var", v))))

    def greadout(self, states):
        r = self.r
        p = self.p
        G = self.kind
        if self.chance(0.25):
            # an equivariant (not invariant) output: a field, with the loss mean(p .* p)
            v, c = r.choice(states)
            sh = p.shapes[v]
            if G in ("C4", "D4"):
                k = r.choice(["gpool", "mean_space", "field"] + (["pool2"] if sh[-1] % 2 == 0 else []))
                if k == "gpool":
                    e, f, osh = ("gpool", ("var", v)), "spatial", (c, sh[2], sh[3])
                elif k == "mean_space":
                    e, f, osh = ("mean_space", ("var", v)), "regvec", (c, self.order)
                elif k == "pool2":
                    e, f, osh = ("pool2", ("gpool", ("var", v))), "spatial", (c, sh[2] // 2, sh[3] // 2)
                else:
                    e, f, osh = ("var", v), "regular", sh
            else:
                f, osh = ("seq" if G == "Z" else "set"), sh
                e = ("var", v)
                if self.chance(0.5):
                    q = r.randint(1, 3)
                    K = self.new_param("R", (q, c))
                    e = ("cmix", ("var", K.name), e)
                    osh = (q, self.n)
                    if self.chance(0.5):
                        e = self.bias(e, q)
            p.output = ("p", e, "field")
            p.out_field = f
            p.outshape = osh
            p.nout = 1
            for d in osh:
                p.nout *= d
            if "imgtarget" in self.en and self.chance(0.5):
                p.target, p.tshape = p.nout, osh
                p.loss = [("mse_t", 1.0)]
                p.facts.add("target of a field's shape")
            else:
                p.loss = [("psq", r.choice([1.0, 0.5]))]
            p.facts.add("field output " + f)
            self.extra_loss()
            return
        st = r.sample(states, r.randint(1, min(2, len(states))))
        feats = [self.feature(v, c) for v, c in st]
        m = sum(c for v, c in st)
        feat = feats[0] if len(feats) == 1 else ("join",) + tuple(feats)
        if len(feats) > 1:
            p.facts.add("join")
        p.out_field = "trivial"
        bounded = self.chance(0.5)
        kind = r.choice(["ce", "mse_c", "mse_t"])
        if kind == "mse_t":
            q = r.randint(1, 4)
            p.target = q
            W = self.new_param("R", (q, m), bound=r.choice([1.0, 2.0]) if bounded else None)
            e = ("mv", ("var", W.name), feat)
            if self.chance(0.5):
                e = ("add", e, ("var", self.new_param("R", (q,)).name))
            p.output = ("p", e, "linear")
        else:
            q = r.randint(2, 4)
            p.label = q
            W = self.new_param("R", (q, m), bound=r.choice([1.0, 2.0]) if bounded else None)
            z = ("mv", ("var", W.name), feat)
            if self.chance(0.5):
                z = ("add", z, ("var", self.new_param("R", (q,)).name))
            p.output = ("p", ("softmax", z), "softmax")
        p.loss = [(kind, 1.0)]
        p.facts.add("loss " + kind)
        self.extra_loss()


def generate(seed, name, enable=(), group_share=0.0):
    """Program `seed`: a group program with probability group_share (decided by its own
    stream, so the other programs of a seed are the same whatever the share)."""
    if group_share > 0 and random.Random(seed * 7919 + 17).random() < group_share:
        return GroupGen(seed, name, enable).program()
    g = Gen(seed, name, enable)
    return g.program()


def negative(seed, name):
    """A program spdlc must refuse: the product of equal-shaped non-square matrices."""
    r = random.Random(seed)
    n = r.randint(2, 5)
    m = r.choice([k for k in range(1, 6) if k != n])
    return ("// generated by tests/difftest/spngen.py (negative: A * B, both R[%d, %d])\n"
            "model %s {\n    input  x : R[%d];\n    target t : R[%d];\n    state  u : R[%d] = x;\n"
            "    param  A : R[%d, %d];\n    param  B : R[%d, %d];\n    param  C : R[%d, %d];\n"
            "    repeat 1 layers {\n        u = u + tanh(C * ((A * B) * u));\n    }\n"
            "    output p = u;\n    loss   mse(p, t);\n}\n") % (n, m, name, m, m, m, n, m, n, m, m, n)
