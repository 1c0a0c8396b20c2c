#!/usr/bin/env python3
"""gen_models.py - random models whose certificates the attack tries to break.

    python3 tests/attack/gen_models.py OUTDIR [--count N] [--seed S]

writes OUTDIR/NAME.spn and OUTDIR/models.json (one record per model: name,
family, scheme, width, layers, and what the generator expects the checker
to prove). Standard library only; the same seed gives the same files.

Every model's output is the logits themselves, `output p = W * s + w` with
`where norm(W) <= c` and an mse loss, so the map the attack measures is
exactly the one `lipschitz` bounds. Families:

  gradflow_ne    du/dt = -K' (c act(K u + b)) under an SSP scheme (euler,
                 heun, and two SSP tableaus declared here) with
                 h <= 2 r / (c d |K|^2): nonexpansive must be proved;
                 some at the boundary, some with learned steps, some with
                 two blocks
  gradflow       the same field where nonexpansive is not proved: rk4 or
                 kutta3 (SSP coefficient 0), or a step beyond 2 r / (c d |K|^2)
  generic        du/dt = c act(A u + b), A free or orth[n], sometimes plus a
                 second term c2 act2((S - 0.1 I) u) with S : skew[n], under
                 Runge-Kutta schemes
  antisym        du/dt = act((A - A' - g I) u + b) or act((S - g I) u + b)
                 with S : skew[n]
  hamiltonian    dy/dt = act(K z + b), dz/dt = -act(K' y + b2) under verlet
                 or symplectic_euler
  shear          repeat blocks u = u + c1 act(A v + a); v = v -+ c2 act(B u + e)
  mixed          a free or damped antisymmetric block, then a non-expansive
                 gradient flow: the bound composes across blocks
  gconv_ne       C4 or D4: h = lift(k0, x) with a norm bound, then the
                 gradient flow dh/dt = -gconv'(k, c act(gconv(k, h) + b))
                 with h <= 2 r / (c d |gconv(k, .)|^2) (some at the
                 boundary): nonexpansive must be proved; the output is the
                 regular field h itself (a loss without a target: a target
                 must be a vector), so lipschitz bounds |lift(k0, .)|, which
                 M_project enforces, like |gconv(k, .)|, as an operator on
                 the grid (DESIGN §8)

The generator also states, for every model, whether the checker must
prove `nonexpansive` (only gradflow_ne): the driver fails if the checker
disagrees in either direction.
"""
import json
import math
import os
import random
import sys

# sigma' in [dmin, d]; leaky_relu's slope is drawn per model
ACTS = ["tanh", "relu", "sigmoid", "softplus", "leaky_relu"]
DMAX = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25, "softplus": 1.0, "leaky_relu": 1.0, "identity": 1.0}

# SSP coefficients (Gottlieb, Ketcheson & Shu 2011): euler 1, heun = SSPRK(2,2) 1,
# SSPRK(3,3) (Shu-Osher) 1, SSPRK(3,2) 2; rk4 and kutta3 0.
SSP = {"euler": 1.0, "heun": 1.0, "ssp33": 1.0, "ssp32": 2.0, "rk4": 0.0, "kutta3": 0.0}
SCHEME_DECL = {
    "ssp33": """scheme ssp33 {           // SSPRK(3,3), Shu & Osher 1988: SSP coefficient 1
    c = [0, 1, 1/2];
    a = [[0, 0, 0], [1, 0, 0], [1/4, 1/4, 0]];
    b = [1/6, 1/6, 2/3];
}
""",
    "ssp32": """scheme ssp32 {           // SSPRK(3,2): SSP coefficient 2
    c = [0, 1/2, 1];
    a = [[0, 0, 0], [1/2, 0, 0], [1/2, 1/2, 0]];
    b = [1/3, 1/3, 1/3];
}
""",
}
RK = ["euler", "heun", "kutta3", "rk4", "ssp33", "ssp32"]


def num(x):
    """A constant as spdlc reads it: 6 significant digits."""
    return "%.6g" % x


def down(x, digits=6):
    """x rounded down to `digits` significant digits (a bound that must not exceed x)."""
    if x <= 0:
        return x
    e = math.floor(math.log10(x)) - digits + 1
    return math.floor(x / 10.0 ** e) * 10.0 ** e


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.nham = 0  # Hamiltonian models so far: the schemes alternate

    def act(self):
        a = self.r.choice(ACTS)
        if a == "leaky_relu":
            slope = self.r.choice([0.01, 0.1, 0.3, 0.7])
            return a, lambda s: "leaky_relu(%s, %s)" % (s, num(slope))
        return a, lambda s: "%s(%s)" % (a, s)

    def width(self, lo=2, hi=16):
        return self.r.randint(lo, hi)

    def interval(self, layers, h):
        return "[0, %s] in %d layers" % (num(h * layers), layers)

    def readout(self, states_expr, n, name_w="W", square=False):
        k = n if square else self.r.randint(1, 6)
        cw = self.r.choice([0.5, 1, 1.5, 3])
        return k, [
            "    param  %s : R[%d, %d] where norm(%s) <= %s;" % (name_w, k, n, name_w, num(cw)),
            "    param  w : R[%d];" % k,
            "    output p = %s * %s + w;" % (name_w, states_expr),
            "    loss   mse(p, t);",
        ]

    def head(self, name, nin, k):
        return ["model %s {" % name, "    input  x : R[%d];" % nin, "    target t : R[%d];" % k]

    # ---- families ----------------------------------------------------------

    def gradflow_block(self, idx, n, ne, scheme=None, learned=None, boundary=False):
        """One gradient-flow block on u : R[n]; returns (lines, scheme, layers, facts)."""
        r = self.r
        m = self.width()
        layers = r.randint(1, 12)
        actname, act = self.act()
        d = DMAX[actname]
        c = r.choice([1.0, 1.0, 0.5, 2.0])
        if scheme is None:
            scheme = r.choice(["euler", "heun", "ssp33", "ssp32"] if ne else ["rk4", "kutta3", "euler", "heun"])
        rr = SSP[scheme]
        h = r.choice([0.05, 0.1, 0.25, 0.5, 1.0])
        if learned is None:
            learned = r.random() < 0.2
        hmax = h * r.choice([1.0, 1.5, 2.0]) if learned else h
        if layers == 1:
            hmax = h  # one learned step is T itself
        if ne:
            kmax = math.sqrt(2 * rr / (c * d * hmax))
            kb = down(kmax * (1 - 1e-6)) if boundary else down(kmax * r.uniform(0.4, 0.97))
        elif rr > 0:  # a step beyond the bound
            kmax = math.sqrt(2 * rr / (c * d * hmax))
            kb = down(kmax * r.uniform(1.15, 1.8))
        else:  # rk4 / kutta3: any bound; keep the field's constant moderate
            kb = down(r.uniform(0.4, 2.0) / math.sqrt(max(c * d * h, 1e-9)) * 0.7)
        K, b = "K%d" % idx, "b%d" % idx
        per = " per layer" if r.random() < 0.8 or layers == 1 else ""
        lines = [
            "    param  %s : R[%d, %d]%s where norm(%s) <= %s;" % (K, m, n, per, K, num(kb)),
            "    param  %s : R[%d]%s;" % (b, m, per),
            "    flow over %s by %s {" % (self.interval(layers, h), scheme),
        ]
        if learned:
            lines.append("        steps learned <= %s;" % num(hmax))
        inner = act("%s * u + %s" % (K, b))
        if c == 1.0:
            field = "-%s' * %s" % (K, inner)
        else:
            field = "-%s' * (%s * %s)" % (K, num(c), inner)
        lines += ["        du/dt = %s;" % field, "    }"]
        facts = "%s |K|<=%s c=%s h=%s%s" % (actname, num(kb), num(c), num(hmax), " learned" if learned else "")
        return lines, scheme, layers, facts

    def gradflow(self, name, ne, boundary=False, blocks=1, learned=None):
        n = self.width()
        body, schemes, layers, facts = [], [], 0, []
        for bi in range(blocks):
            lines, sc, nl, f = self.gradflow_block(bi, n, ne, learned=learned, boundary=boundary)
            body += lines
            schemes.append(sc)
            layers += nl
            facts.append(f)
        # a read-out as wide as the state half of the time: the flow's own
        # vjp then takes one call (attack.c), otherwise one per output row
        k, ro = self.readout("u", n, square=self.r.random() < 0.5)
        src = self.head(name, n, k) + ["    state  u : R[%d] = x;" % n] + body + ro
        return src, schemes, n, layers, "; ".join(facts)

    def generic(self, name):
        r = self.r
        n = self.width()
        layers = r.randint(1, 12)
        scheme = r.choice(RK)
        actname, act = self.act()
        if r.random() < 0.15:
            actname, act = "identity", (lambda s: s)
        d = DMAX[actname]
        c = r.choice([1.0, 0.5, 0.25])
        T = r.uniform(0.5, 3.0)
        h = T / layers
        ka = down(r.uniform(0.3, 2.5) / (c * d * T) * 1.0 + 0.05)
        learned = r.random() < 0.2 and layers > 1
        nin = r.choice([n, n, max(1, n - r.randint(1, 3)), n + r.randint(1, 3)])
        init = "x" if nin == n else ("pad(x, %d)" % n if nin < n else "x[0:%d]" % n)
        per = " per layer" if r.random() < 0.7 else ""
        k, ro = self.readout("u", n)
        inner = act("A * u + b")
        field = inner if c == 1.0 else "%s * %s" % (num(c), inner)
        extra = []
        if r.random() < 0.3:  # an orthogonal (Cayley) matrix: norm 1 without a bound
            decl = "    param  A : orth[%d]%s;" % (n, per)
            ka = 1.0
        else:
            decl = "    param  A : R[%d, %d]%s where norm(A) <= %s;" % (n, n, per, num(ka))
        if r.random() < 0.3:  # a second term: the field is generic, only Lipschitz bounds apply
            a2, f2 = self.act()
            extra = ["    param  S : skew[%d]%s where norm(S) <= %s;" % (n, per, num(down(r.uniform(0.2, 1.0))))]
            field += " + %s * %s" % (num(r.choice([0.5, 1.0])), f2("(S - 0.1 * I) * u"))
        src = self.head(name, nin, k) + [
            "    state  u : R[%d] = %s;" % (n, init),
            decl,
            "    param  b : R[%d]%s;" % (n, per),
        ] + extra + [
            "    flow over [0, %s] in %d layers by %s {" % (num(T), layers, scheme),
        ] + (["        steps learned <= %s;" % num(h * 1.5)] if learned else []) + [
            "        du/dt = %s;" % field,
            "    }",
        ] + ro
        return src, [scheme], n, layers, "%s %s|A|<=%s c=%s h=%s%s" % (
            actname, "orth " if "orth" in decl else "", num(ka), num(c), num(h), " + skew term" if extra else "")

    def antisym(self, name):
        r = self.r
        n = self.width()
        layers = r.randint(1, 12)
        scheme = r.choice(RK)
        actname, act = self.act()
        d = DMAX[actname]
        T = r.uniform(0.5, 3.0)
        h = T / layers
        g = r.choice([0, 0.05, 0.1, 0.5])
        ka = down(r.uniform(0.3, 2.0) / (d * T) + 0.05)
        per = " per layer" if r.random() < 0.7 else ""
        skew = r.random() < 0.35
        if skew:
            decl = "    param  S : skew[%d]%s where norm(S) <= %s;" % (n, per, num(ka))
            mat = "S"
        else:
            decl = "    param  A : R[%d, %d]%s where norm(A) <= %s;" % (n, n, per, num(ka))
            mat = "A - A'"
        if g:
            mat += " - %s * I" % num(g)
        k, ro = self.readout("u", n)
        src = self.head(name, n, k) + [
            "    state  u : R[%d] = x;" % n,
            decl,
            "    param  b : R[%d]%s;" % (n, per),
            "    flow over [0, %s] in %d layers by %s {" % (num(T), layers, scheme),
            "        du/dt = %s;" % act("(%s) * u + b" % mat),
            "    }",
        ] + ro
        return src, [scheme], n, layers, "%s %s|.|<=%s g=%s h=%s" % (actname, "skew " if skew else "", num(ka), num(g), num(h))

    def mixed(self, name):
        """A free or damped antisymmetric block, then a non-expansive gradient flow."""
        r = self.r
        n = self.width()
        layers = r.randint(1, 6)
        scheme = r.choice(RK)
        actname, act = self.act()
        d = DMAX[actname]
        T = r.uniform(0.5, 2.0)
        ka = down(r.uniform(0.3, 1.5) / (d * T) + 0.05)
        mat = r.choice(["A", "A - A' - 0.1 * I"])
        lines, sc2, nl2, f2 = self.gradflow_block(1, n, True)
        k, ro = self.readout("u", n)
        src = self.head(name, n, k) + [
            "    state  u : R[%d] = x;" % n,
            "    param  A : R[%d, %d] per layer where norm(A) <= %s;" % (n, n, num(ka)),
            "    param  b : R[%d] per layer;" % n,
            "    flow over [0, %s] in %d layers by %s {" % (num(T), layers, scheme),
            "        du/dt = %s;" % act("(%s) * u + b" % mat),
            "    }",
        ] + lines + ro
        return src, [scheme, sc2], n, layers + nl2, "%s %s |A|<=%s h=%s; %s" % (actname, mat, num(ka), num(T / layers), f2)

    def hamiltonian(self, name):
        r = self.r
        n1, n2 = self.width(), self.width()
        layers = r.randint(1, 12)
        self.nham += 1
        scheme = ["verlet", "symplectic_euler"][self.nham % 2]
        a1, f1 = self.act()
        a2, f2 = self.act()
        T = r.uniform(0.5, 3.0)
        h = T / layers
        kb = down(r.uniform(0.3, 1.5) / T + 0.05)
        per = " per layer" if r.random() < 0.7 else ""
        mode = r.choice(["x0", "split", "pad"])
        if mode == "x0":
            nin, y0, z0 = n1, "x", "0"
        elif mode == "split":
            nin, y0, z0 = n1 + n2, "x[0:%d]" % n1, "x[%d:%d]" % (n1, n1 + n2)
        else:
            nin = r.randint(1, n1)
            y0, z0 = "pad(x, %d)" % n1, "0"
        both = r.random() < 0.5
        k, ro = self.readout("join(y, z)" if both else "y", n1 + n2 if both else n1)
        src = self.head(name, nin, k) + [
            "    state  y : R[%d] = %s;" % (n1, y0),
            "    state  z : R[%d] = %s;" % (n2, z0),
            "    param  K : R[%d, %d]%s where norm(K) <= %s;" % (n1, n2, per, num(kb)),
            "    param  b : R[%d]%s;" % (n1, per),
            "    param  e : R[%d]%s;" % (n2, per),
            "    flow over [0, %s] in %d layers by %s {" % (num(T), layers, scheme),
        ]
        # the order written decides which variable moves first (and, under
        # verlet, which one takes the half steps)
        eqs = ["        dy/dt = %s;" % f1("K * z + b"), "        dz/dt = -%s;" % f2("K' * y + e")]
        zfirst = r.random() < 0.4
        src += (eqs[::-1] if zfirst else eqs) + ["    }"] + ro
        return src, [scheme], n1 + n2, layers, "%s/%s |K|<=%s h=%s%s" % (a1, a2, num(kb), num(h), " z first" if zfirst else "")

    def shear(self, name):
        r = self.r
        n1, n2 = self.width(2, 8), self.width(2, 8)
        layers = r.randint(1, 12)
        a1, f1 = self.act()
        a2, f2 = self.act()
        # per-layer growth about exp(2 / layers .. 6 / layers) in all
        ca, cb = down(r.uniform(0.3, 1.5)), down(r.uniform(0.3, 1.5))
        c1 = num(r.uniform(0.5, 2.5) / layers / ca)
        c2 = num(r.uniform(0.5, 2.5) / layers / cb)
        per = " per layer" if r.random() < 0.7 else ""
        sign = r.choice(["-", "+"])
        k, ro = self.readout("join(u, v)", n1 + n2)
        src = self.head(name, n1 + n2, k) + [
            "    state  u : R[%d] = x[0:%d];" % (n1, n1),
            "    state  v : R[%d] = x[%d:%d];" % (n2, n1, n1 + n2),
            "    param  A : R[%d, %d]%s where norm(A) <= %s;" % (n1, n2, per, num(ca)),
            "    param  B : R[%d, %d]%s where norm(B) <= %s;" % (n2, n1, per, num(cb)),
            "    param  a : R[%d]%s;" % (n1, per),
            "    param  e : R[%d]%s;" % (n2, per),
            "    repeat %d layers {" % layers,
            "        u = u + %s * %s;" % (c1, f1("A * v + a")),
            "        v = v %s %s * %s;" % (sign, c2, f2("B * u + e")),
            "    }",
        ] + ro
        return src, ["repeat"], n1 + n2, layers, "%s/%s |A|<=%s |B|<=%s v%s=" % (a1, a2, num(ca), num(cb), sign)

    def gconv_ne(self, name):
        r = self.r
        group = r.choice(["C4", "D4"])
        order = 4 if group == "C4" else 8
        cin, ch = r.randint(1, 2), r.randint(1, 2)
        n = r.randint(2, 5)
        while ch * order * n * n > 256 or cin * n * n > 256:
            n -= 1
        k, k0 = r.choice([1, 3, 3, 5]), r.choice([1, 3])
        layers = r.randint(1, 6)
        actname, act = self.act()
        d = DMAX[actname]
        c = r.choice([1.0, 1.0, 0.5, 2.0])
        scheme = r.choice(["euler", "heun", "ssp33", "ssp32"])
        h = r.choice([0.1, 0.25, 0.5, 1.0])
        kmax = math.sqrt(2 * SSP[scheme] / (c * d * h))
        boundary = r.random() < 0.3
        kb = down(kmax * (1 - 1e-6)) if boundary else down(kmax * r.uniform(0.4, 0.97))
        lb = down(r.uniform(0.5, 2.0))
        per = " per layer" if r.random() < 0.8 or layers == 1 else ""
        inner = act("gconv(k, h) + b")
        field = "-gconv'(k, %s)" % (inner if c == 1.0 else "%s * %s" % (num(c), inner))
        src = [
            "model %s {" % name,
            "    input  x : R[%d, %d, %d];" % (cin, n, n),
            "    group  %s acts on x;" % group,
            "    param  k0 : lift[%s, %d -> %d, %d] where norm(k0) <= %s;" % (group, cin, ch, k0, num(lb)),
            "    state  h : R[%d, %d, %d, %d] = lift(k0, x);" % (ch, order, n, n),
            "    param  k : gconv[%s, %d -> %d, %d]%s where norm(k) <= %s;" % (group, ch, ch, k, per, num(kb)),
            "    param  b : R[%d]%s;" % (ch, per),
            "    flow over %s by %s {" % (self.interval(layers, h), scheme),
            "        dh/dt = %s;" % field,
            "    }",
            "    output p = h;",
            "    loss   sum(p .* p);",
        ]
        return src, [scheme], ch * order * n * n, layers, "%s %s %dx%d grid, k %d, |lift|<=%s |gconv|<=%s c=%s h=%s%s" % (
            group, actname, n, n, k, num(lb), num(kb), num(c), num(h), " boundary" if boundary else "")


# (family, kind): the plan repeats until `count` models are written
PLAN = [
    ("gradflow_ne", "one"), ("generic", None), ("antisym", None), ("hamiltonian", None), ("shear", None),
    ("gradflow", None), ("gconv_ne", None), ("gradflow_ne", "boundary"), ("generic", None), ("antisym", None),
    ("gradflow_ne", "two"), ("hamiltonian", None), ("gconv_ne", None), ("shear", None), ("gradflow_ne", "learned"),
    ("gradflow", None), ("gradflow_ne", "boundary"), ("mixed", None),
]


def generate(outdir, count, seed):
    g = Gen(seed)
    os.makedirs(outdir, exist_ok=True)
    records = []
    for i in range(count):
        family, kind = PLAN[i % len(PLAN)]
        name = "a%02d_%s" % (i, family)
        ne = family in ("gradflow_ne", "gconv_ne")
        if family.startswith("gradflow"):
            src, schemes, n, layers, facts = g.gradflow(name, ne, boundary=kind == "boundary",
                                                         blocks=2 if kind == "two" else 1,
                                                         learned=True if kind == "learned" else None)
        else:
            src, schemes, n, layers, facts = getattr(g, family)(name)
        decls = "".join(SCHEME_DECL[s] for s in sorted(set(schemes)) if s in SCHEME_DECL)
        text = "// generated by tests/attack/gen_models.py (seed %d): %s\n" % (seed, family)
        text += decls + "\n".join(src) + "\n"
        text += "    require %s;\n}\n" % ("nonexpansive, lipschitz <= LIPSCHITZ_CAP" if ne else "lipschitz <= LIPSCHITZ_CAP")
        with open(os.path.join(outdir, name + ".spn"), "w") as f:
            f.write(text)
        records.append({"name": name, "family": family, "schemes": "+".join(schemes), "state": n,
                        "layers": layers, "nonexpansive": ne, "facts": facts})
    with open(os.path.join(outdir, "models.json"), "w") as f:
        json.dump(records, f, indent=1)
    return records


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--seed", type=int, default=20261127)
    a = ap.parse_args(argv)
    for rec in generate(a.outdir, a.count, a.seed):
        print(rec["name"], rec["schemes"], rec["facts"])


if __name__ == "__main__":
    main(sys.argv[1:])
