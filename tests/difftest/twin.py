"""twin.py - the PyTorch float64 twin of a spngen program (DESIGN section 3).

Written from the program tree alone, following DESIGN's semantics contract:
theta holds the parameters in declaration order, a `per layer` one
layer-major; skew/orth/lu stored layouts; layer k uses copy k and
h = T/N or dt_k; explicit Runge-Kutta stages; symplectic Euler and Verlet in
the order written (Verlet's first variable gets the half steps); a `let`
inside a block is evaluated at every stage from that stage's values; the
loss is the batch mean of the sample terms plus the parameter-only terms
once; smooth(P) sums |P_{k+1} - P_k|^2 / h over the stored numbers with the
nominal h (1 in a repeat block).

Sample values are tensors (B, n); parameter values have no batch axis.
"""
import math

import torch

D = torch.float64


def layout(prog):
    """Offsets in theta, in declaration order."""
    off = 0
    lay = {}
    for P in prog.params:
        lay[P.name] = (off, P)
        off += P.size
    return lay, off


def param_value(P, th, k):
    """Copy k (0 if shared) of parameter P, as the matrix/vector it means."""
    off = P._off + (k if P.per_layer else 0) * P.nstore
    raw = th[off:off + P.nstore]
    if P.kind in ("R", "lift", "gconv"):     # kernels in their stored shapes (DESIGN §8)
        return raw.reshape(P.shape)
    if P.kind == "dt":
        return raw[0]
    n = P.shape[0]
    if P.kind in ("skew", "orth"):
        iu = torch.triu_indices(n, n, 1)
        S = torch.zeros(n, n, dtype=D)
        S = S.index_put((iu[0], iu[1]), raw)
        S = S - S.T
        if P.kind == "skew":
            return S
        I = torch.eye(n, dtype=D)
        return torch.linalg.solve(I - S, I + S)
    if P.kind == "lu":
        X = raw.reshape(n, n)
        L = torch.tril(X, -1) + torch.eye(n, dtype=D)
        U = torch.triu(X, 1) + torch.diag(torch.exp(torch.diagonal(X)))
        return L @ U
    raise ValueError(P.kind)


class Twin:
    def __init__(self, prog):
        self.p = prog
        self.lay, self.nparam = layout(prog)
        for name, (off, P) in self.lay.items():
            P._off = off
        self.defs = {name: (args, body) for name, args, body in prog.defs}
        self.glets = {name: v for name, v, t in prog.glets}

    # -- expressions
    def ev(self, e, env):
        op = e[0]
        if op == "num":
            return torch.tensor(e[1], dtype=D)
        if op == "var":
            v = env.get(e[1])
            if v is None:
                if e[1] in self.glets:
                    return torch.tensor(self.glets[e[1]], dtype=D)
                v = env["$params"](e[1])
            return v
        if op == "I":
            return torch.eye(e[1], dtype=D)
        if op == "add":
            return self.ev(e[1], env) + self.ev(e[2], env)
        if op == "sub":
            return self.ev(e[1], env) - self.ev(e[2], env)
        if op in ("smul", "muls", "emul"):
            return self.ev(e[1], env) * self.ev(e[2], env)
        if op == "div":
            return self.ev(e[1], env) / self.ev(e[2], env)
        if op == "mv":
            M, v = self.ev(e[1], env), self.ev(e[2], env)
            return v @ M.T
        if op == "mm":
            return self.ev(e[1], env) @ self.ev(e[2], env)
        if op == "neg":
            return -self.ev(e[1], env)
        if op == "pow":
            return self.ev(e[1], env) ** e[2]
        if op == "T":
            return self.ev(e[1], env).T
        if op == "act":
            a = self.ev(e[2], env)
            fn = e[1]
            if fn == "tanh":
                return torch.tanh(a)
            if fn == "relu":
                return torch.where(a > 0, a, torch.zeros_like(a))
            if fn == "sigmoid":
                return torch.sigmoid(a)
            if fn == "softplus":
                return torch.nn.functional.softplus(a)
            if fn == "identity":
                return a
            if fn == "exp":
                return torch.exp(a)
            if fn == "leaky_relu":
                return torch.where(a > 0, a, e[3] * a)
            raise ValueError(fn)
        if op in ("sum", "mean"):
            a = self.ev(e[1], env)
            if a.dim() == 2 and env.get("$B") and a.shape[0] == env["$B"] and self.sample(e[1], env):
                return a.sum(-1, keepdim=True) if op == "sum" else a.mean(-1, keepdim=True)
            return a.sum() if op == "sum" else a.mean()
        if op == "slice":
            return self.ev(e[1], env)[..., e[2]:e[3]]
        if op == "pad":
            a = self.ev(e[1], env)
            z = torch.zeros(a.shape[:-1] + (e[2] - a.shape[-1],), dtype=D)
            return torch.cat([a, z], -1)
        if op == "join":
            parts = [self.ev(a, env) for a in e[1:]]
            B = max((q.shape[0] for q in parts if q.dim() == 2), default=None)
            if B is not None:
                parts = [q if q.dim() == 2 else q.expand(B, q.shape[0]) for q in parts]
            return torch.cat(parts, -1)
        if op == "softmax":
            return torch.softmax(self.ev(e[1], env), -1)
        if op == "call":
            args, body = self.defs[e[1]]
            sub = {"$params": env["$params"], "$B": env.get("$B"), "$sample": env.get("$sample", set())}
            for a, x in zip(args, e[2:]):
                sub[a] = self.ev(x, env)
                if self.sample(x, env):
                    sub["$sample"] = sub["$sample"] | {a}
            return self.ev(body, sub)
        raise ValueError(op)

    def sample(self, e, env):
        """Does e depend on the sample (has a batch axis)?"""
        op = e[0]
        if op == "var":
            return e[1] in env.get("$sample", ())
        if op in ("num", "I"):
            return False
        return any(self.sample(a, env) for a in e[1:] if isinstance(a, tuple))

    # -- the model
    def run(self, th, x):
        """Forward pass on x (B, nin): the output, the logits of a softmax
        output, the final state vector and the initial one (each state's
        value where it is declared), and the environment."""
        p = self.p
        B = x.shape[0]
        cache = {}

        def params_at(k):
            def get(name):
                key = (name, k)
                if key not in cache:
                    P = self.lay[name][1]
                    cache[key] = param_value(P, th, k if P.per_layer else 0)
                return cache[key]
            return get

        env = {"x": x, "$params": params_at(0), "$B": B, "$sample": {"x"}}
        init = {}
        for it in p.items:
            if it[0] == "param":
                continue
            if it[0] == "state":
                v = self.ev(it[3], env)
                v = v.expand(B, it[2]) if v.dim() < 2 else v
                v = v.clone() if v.dim() == 2 else v
                env[it[1]] = v
                env["$sample"] = env["$sample"] | {it[1]}
                init[it[1]] = v
            elif it[0] == "let":
                env[it[1]] = self.ev(it[2], env)
                if self.sample(it[2], env):
                    env["$sample"] = env["$sample"] | {it[1]}
            else:
                b = it[1]
                for k in range(b.layers):
                    self.layer(b, k, env, th, params_at(k))
        env["$params"] = params_at(0)
        name, oe, kind = p.output
        out = self.ev(oe, env)
        if out.dim() < 2:
            out = out.expand(B, out.shape[-1])
        logits = None
        if kind == "softmax":
            logits = self.ev(oe[1], env)
        states = torch.cat([env[s] for s, n in p.states], -1)
        s0 = torch.cat([init[s] for s, n in p.states], -1)
        return {"out": out, "logits": logits, "states": states, "init": s0, "env": env}

    def step_h(self, b, k, th):
        sc = getattr(b, "_hscale", 1.0)   # the stable attack's planted violation scales h
        if b.learned:
            return sc * param_value(b.learned[0], th, k)
        return torch.tensor(sc * b.h, dtype=D)

    def field(self, b, env):
        """The block's right-hand sides at env (lets evaluated first)."""
        sub = dict(env)
        for it in b.items:
            if it[0] == "let":
                sub[it[1]] = self.ev(it[2], sub)
                sub["$sample"] = sub["$sample"] | {it[1]}
        return {it[1]: self.ev(it[2], sub) for it in b.items if it[0] == "eq"}

    def field_of(self, b, env, var):
        sub = dict(env)
        for it in b.items:
            if it[0] == "let":
                sub[it[1]] = self.ev(it[2], sub)
                sub["$sample"] = sub["$sample"] | {it[1]}
        for it in b.items:
            if it[0] == "eq" and it[1] == var:
                return self.ev(it[2], sub)

    def layer(self, b, k, env, th, params, fieldfn=None):
        """Layer k of block b, updating env's states in place (rebinding)."""
        env["$params"] = params
        if b.kind == "repeat":
            sub = dict(env)
            for it in b.items:
                v = self.ev(it[2], sub)
                if v.dim() < 2:
                    v = v.expand(env["$B"], v.shape[-1])
                sub[it[1]] = v
                sub["$sample"] = sub["$sample"] | {it[1]}
            for v in b.vars:
                env[v] = sub[v]
            return
        h = self.step_h(b, k, th)
        F = fieldfn or (lambda e: self.field(b, e))
        Fv = (lambda e, var: fieldfn(e)[var]) if fieldfn else (lambda e, var: self.field_of(b, e, var))
        if b.scheme in ("verlet", "symplectic_euler"):
            eqs = [it[1] for it in b.items if it[0] == "eq"]
            if b.scheme == "verlet":
                y, z = eqs
                env[y] = env[y] + h / 2 * Fv(env, y)
                env[z] = env[z] + h * Fv(env, z)
                env[y] = env[y] + h / 2 * Fv(env, y)
            else:
                for v in eqs:
                    env[v] = env[v] + h * Fv(env, v)
            return
        c, a, bb = b.tableau
        s = len(bb)
        K = []
        s0 = {v: env[v] for v in b.vars}
        for i in range(s):
            st = dict(env)
            for v in b.vars:
                acc = s0[v]
                for j in range(i):
                    if a[i][j] != 0:
                        acc = acc + h * a[i][j] * K[j][v]
                st[v] = acc
            K.append(F(st))
        for v in b.vars:
            acc = s0[v]
            for i in range(s):
                if bb[i] != 0:
                    acc = acc + h * bb[i] * K[i][v]
            env[v] = acc

    def loss(self, th, x, tgt):
        """Mean loss of the batch."""
        p = self.p
        B = x.shape[0]
        if p.density:
            x = x.clone().requires_grad_(True)
        r = self.run(th, x)
        out = r["out"]
        sample = torch.zeros(B, dtype=D)
        param = torch.zeros((), dtype=D)
        for t in p.loss:
            k = t[0]
            if k == "ce":
                c = tgt[:, 0].long()
                # -log softmax(z)[c] in log space: the same number where p[c]
                # is representable, finite where it underflows (as the C is)
                logp = (torch.log_softmax(r["logits"], -1) if r["logits"] is not None
                        else torch.log(out))
                sample = sample - logp[torch.arange(B), c]
            elif k == "mse_c":
                c = tgt[:, 0].long()
                oh = torch.nn.functional.one_hot(c, out.shape[1]).to(D)
                sample = sample + ((out - oh) ** 2).sum(-1)
            elif k == "mse_t":
                sample = sample + ((out - tgt) ** 2).sum(-1)
            elif k == "nll":
                n = out.shape[1]
                rows = []
                for i in range(n):
                    g, = torch.autograd.grad(out[:, i].sum(), x, create_graph=True)
                    rows.append(g)
                J = torch.stack(rows, 1)
                ld = torch.linalg.slogdet(J)[1]
                sample = sample + 0.5 * (out ** 2).sum(-1) + 0.5 * n * math.log(2 * math.pi) - ld
            elif k == "smooth":
                sc, Ps, h = t[1], t[2], t[3]
                tot = torch.zeros((), dtype=D)
                for P in Ps:
                    o, ns = P._off, P.nstore
                    for kk in range(P.layers - 1):
                        d = th[o + (kk + 1) * ns:o + (kk + 2) * ns] - th[o + kk * ns:o + (kk + 1) * ns]
                        tot = tot + (d * d).sum() / h
                param = param + sc * tot
            elif k == "const":
                param = param + t[1]
            elif k == "psum":
                P = t[2]
                v = th[P._off:P._off + P.nstore]
                param = param + t[1] * (v * v).sum()
            elif k == "smean":
                sample = sample + t[1] * out.mean(-1)
            elif k == "psq":          # c * mean(p .* p): the mean over every entry of a field output
                sample = sample + t[1] * (out * out).mean(-1)
        return sample.mean() + param, r


def logdet_blocks(tw, th, x):
    """Sum over blocks of log|det| of the block map on its variables (exact, autograd);
    the product of the layers' inverse-Jacobian norms; and the rounding amplification
    of the inverse (sum over the layers, and the updates of repeat layers, of the
    largest entry of the state the inverse starts each from times the norm of the
    inverse map from there back to the initial states)."""
    p = tw.p
    B = x.shape[0]
    env = {"x": x, "$B": B, "$sample": {"x"}}
    cache = {}

    def params_at(k):
        def get(name):
            key = (name, k)
            if key not in cache:
                P = tw.lay[name][1]
                cache[key] = param_value(P, th, k if P.per_layer else 0)
            return cache[key]
        return get
    env["$params"] = params_at(0)
    total = torch.zeros(B, dtype=D)
    invnorm = torch.ones(B, dtype=D)
    amp = torch.zeros(B, dtype=D)
    for it in p.items:
        if it[0] == "param":
            continue
        if it[0] == "state":
            v = tw.ev(it[3], env)
            env[it[1]] = v.expand(B, it[2]) if v.dim() < 2 else v
            env["$sample"] = env["$sample"] | {it[1]}
        elif it[0] == "let":
            env[it[1]] = tw.ev(it[2], env)
            if tw.sample(it[2], env):
                env["$sample"] = env["$sample"] | {it[1]}
        else:
            b = it[1]
            sizes = [env[v].shape[1] for v in b.vars]
            for k in range(b.layers):
                z0 = torch.cat([env[v] for v in b.vars], -1).detach().requires_grad_(True)
                sub = dict(env)
                o = 0
                for v, n in zip(b.vars, sizes):
                    sub[v] = z0[:, o:o + n]
                    o += n
                tw.layer(b, k, sub, th, params_at(k))
                z1 = torch.cat([sub[v] for v in b.vars], -1)
                J = jacobian(z1, z0)
                total = total + torch.linalg.slogdet(J)[1]
                if b.kind == "repeat":
                    amp = amp + update_amplification(tw, b, env, sizes, invnorm, params_at(k))
                # rounding in layer k's output is amplified by every inverse layer after it
                invnorm = invnorm * torch.linalg.matrix_norm(torch.linalg.inv(J), 2)
                if b.kind != "repeat":
                    amp = amp + invnorm * z1.detach().abs().amax(1)
                for v in b.vars:
                    env[v] = sub[v].detach()
    return total, invnorm, amp


def jacobian(z1, z0):
    rows = []
    for i in range(z1.shape[1]):
        g, = torch.autograd.grad(z1[:, i].sum(), z0, retain_graph=True)
        rows.append(g)
    return torch.stack(rows, 1)


def update_amplification(tw, b, env, sizes, invnorm, params):
    """The inverse of a repeat layer undoes its updates last first; undoing update
    j rounds at the scale of the state it starts from, |z_j|, amplified by that
    update's inverse and those of the updates before it: sum over updates j of
    |z_j| prod_(i<=j) |J_i^-1|, the products starting at invnorm (the inverses
    of the layers before)."""
    sub = dict(env)
    sub["$params"] = params
    amp = torch.zeros(env["$B"], dtype=D)
    prod = invnorm
    for it in b.items:
        update = it[1] in b.vars   # else a let
        if update:
            z0 = torch.cat([sub[v] for v in b.vars], -1).detach().requires_grad_(True)
            o = 0
            for v, n in zip(b.vars, sizes):
                sub[v] = z0[:, o:o + n]
                o += n
        val = tw.ev(it[2], sub)
        sub[it[1]] = val.expand(env["$B"], val.shape[-1]) if val.dim() < 2 else val
        sub["$sample"] = sub["$sample"] | {it[1]}
        if not update:
            continue
        z1 = torch.cat([sub[v] for v in b.vars], -1)
        prod = prod * torch.linalg.matrix_norm(torch.linalg.inv(jacobian(z1, z0)), 2)
        amp = amp + prod * z1.detach().abs().amax(1)
        for v in b.vars:
            sub[v] = sub[v].detach()
    return amp


# ---- group programs (DESIGN §8) ---------------------------------------------------------
#
# Written from DESIGN §8's formulas, not from spdlc's step program or its C:
#   rotation (R a)[i, j] = a[j, n-1-i] (numpy.rot90(a, 1)), mirror (M a)[i, j] = a[i, n-1-j];
#   D4 element e = k + 4 s is R^k M^s (mirror first), (R^k M^s)(R^l M^t) = R^(k + (-1)^s l) M^(s+t);
#   corr(a, w)[p, q] = sum_{u,v<k} w[u, v] a[p+u-r, q+v-r], zero outside (F.conv2d, padding r);
#   lift(K, x)[o, e] = sum_i corr(x[i], g_e K[o, i]), K stored R[cout, cin, k, k];
#   gconv(K, v)[o, e] = sum_{i,f} corr(v[i, f], g_e K[o, i, idx(g_e^-1 g_f)]), K R[cout, cin, |G|, k, k];
#   Z(n): gconv(K, v)[o, i] = sum_{c,u} K[o, c, u] v[c, (i + u - r) mod n], r = floor((k-1)/2);
#   gconv' the adjoint of v -> gconv(K, v); gpool the mean over the group axis; mean_space over
#   the grid; mean_set over the set axis; pool2 the mean over aligned 2 x 2 blocks; a channel
#   bias R[c] added along the leading axis; K * v (K : R[m, c]) mixes channels.
# Sample values carry a leading batch axis; states and lets are kept flattened in env (so
# the RK stages, lets and attacks of Twin work unchanged) and reshaped when read.

import torch.nn.functional as F  # noqa: E402


def g_mul(G, a, b):
    """Index of g_a g_b in C4 (G = 4) or D4 (G = 8)."""
    k, s = a % 4, a // 4
    l, t = b % 4, b // 4
    return (k + (-1) ** s * l) % 4 + 4 * ((s + t) % 2)


def g_inv(G, a):
    return next(f for f in range(G) if g_mul(G, a, f) == 0)


def g_act(G, e, a):
    """g_e applied to the last two (grid) axes of a: mirror first (s = 1), then rotate k times."""
    k, s = e % 4, e // 4
    if s:
        a = torch.flip(a, [-1])
    return torch.rot90(a, k, [-2, -1]) if k else a


def _self_check():
    """The actions of DESIGN §8 as written: rot90 is (R a)[i, j] = a[j, n-1-i], and the
    composition law holds for the arrays (g_a (g_b a) = g_{ab} a)."""
    a = torch.arange(12.0, dtype=D).reshape(1, 3, 4)[:, :, :3].reshape(3, 3)
    n = 3
    R = torch.tensor([[float(a[j, n - 1 - i]) for j in range(n)] for i in range(n)], dtype=D)
    M = torch.tensor([[float(a[i, n - 1 - j]) for j in range(n)] for i in range(n)], dtype=D)
    assert torch.equal(g_act(8, 1, a), R) and torch.equal(g_act(8, 4, a), M)
    x = torch.randn(5, 5, dtype=D, generator=torch.Generator().manual_seed(1))
    for G in (4, 8):
        for p in range(G):
            for q in range(G):
                assert torch.equal(g_act(G, p, g_act(G, q, x)), g_act(G, g_mul(G, p, q), x))


_self_check()


def lift_bank(K, G):
    """(cout G, cin, k, k): row o G + e is g_e K[o, :]."""
    return torch.stack([g_act(G, e, K) for e in range(G)], 1).reshape(K.shape[0] * G, K.shape[1], K.shape[2], K.shape[3])


def gconv_bank(K, G):
    """(cout G, cin G, k, k): [o G + e, i G + f] = g_e K[o, i, idx(g_e^-1 g_f)]."""
    co, ci, _, k, _ = K.shape
    rows = []
    for e in range(G):
        ie = g_inv(G, e)
        perm = [g_mul(G, ie, f) for f in range(G)]
        rows.append(g_act(G, e, K[:, :, perm]))     # (cout, cin, G[f], k, k)
    return torch.stack(rows, 1).reshape(co * G, ci * G, k, k)


def zconv_index(n, k):
    r = (k - 1) // 2
    return (torch.arange(n)[:, None] + torch.arange(k)[None, :] - r) % n   # (n, k)


class GroupTwin(Twin):
    def __init__(self, prog):
        Twin.__init__(self, prog)
        self.G = prog.group[1] if prog.group[0] in ("C4", "D4") else None
        self.kinds = prog.group[0]

    def shape(self, name):
        return self.p.shapes.get(name)

    def ev(self, e, env):
        v = self.g(e, env)
        if self.sample(e, env) and v.dim() > 2:
            return v.reshape(v.shape[0], -1)
        return v

    def g(self, e, env):
        op = e[0]
        smp = lambda a: self.sample(a, env)  # noqa: E731
        if op == "var":
            v = Twin.ev(self, e, env)
            sh = self.shape(e[1])
            if sh is not None and e[1] in env.get("$sample", ()) and v.dim() == 2 and len(sh) > 1:
                v = v.reshape((v.shape[0],) + tuple(sh))
            return v
        if op in ("num", "I"):
            return Twin.ev(self, e, env)
        if op in ("add", "sub"):
            a, b = self.g(e[1], env), self.g(e[2], env)
            return a + b if op == "add" else a - b
        if op in ("smul", "muls"):
            s, t = (e[1], e[2]) if op == "smul" else (e[2], e[1])
            a, b = self.g(s, env), self.g(t, env)
            if smp(s) and a.dim() == 1:            # a sample scalar (B,) times a sample tensor
                a = a.reshape((a.shape[0],) + (1,) * (b.dim() - 1))
            return a * b
        if op == "emul":
            return self.g(e[1], env) * self.g(e[2], env)
        if op == "div":
            return self.g(e[1], env) / self.g(e[2], env)
        if op == "neg":
            return -self.g(e[1], env)
        if op == "T":
            return self.g(e[1], env).T
        if op == "act":
            return self._act(e, self.g(e[2], env))
        if op in ("sum", "mean"):
            a = self.g(e[1], env)
            if smp(e[1]):
                a = a.reshape(a.shape[0], -1)
                return a.sum(-1) if op == "sum" else a.mean(-1)
            return a.sum() if op == "sum" else a.mean()
        if op == "mv":
            M, v = self.g(e[1], env), self.g(e[2], env)
            return v @ M.T
        if op == "join":
            parts = [self.g(a, env) for a in e[1:]]
            return torch.cat(parts, 1)              # the channel axis (after the batch axis)
        if op == "softmax":
            return torch.softmax(self.g(e[1], env), -1)
        if op == "cbias":
            t, b = self.g(e[1], env), self.g(e[2], env)
            return t + b.reshape((b.shape[0],) + (1,) * (t.dim() - 2))
        if op == "cmix":
            K, v = self.g(e[1], env), self.g(e[2], env)
            return torch.einsum("mc,bc...->bm...", K, v)
        if op == "gslice":                          # along the channel axis
            return self.g(e[1], env)[:, e[2]:e[3]]
        if op == "gpad":                            # zero channels after
            v = self.g(e[1], env)
            z = torch.zeros((v.shape[0], e[2] - v.shape[1]) + tuple(v.shape[2:]), dtype=D)
            return torch.cat([v, z], 1)
        if op in ("lift", "gconv", "gconvT"):
            K = env["$params"](e[1])
            v = self.g(e[2], env)
            B = v.shape[0]
            if self.G is None:                      # Z(n): circular, any k
                n, k = v.shape[-1], K.shape[-1]
                idx = zconv_index(n, k)
                if op == "gconv":
                    return torch.einsum("ocu,bciu->boi", K, v[:, :, idx])
                t = torch.einsum("ocu,boi->bciu", K, v)         # the adjoint: scatter back
                out = torch.zeros(B, K.shape[1], n, dtype=D)
                return out.index_add(2, idx.reshape(-1), t.reshape(B, K.shape[1], n * k))
            G, n = self.G, v.shape[-1]
            r = (K.shape[-1] - 1) // 2
            if op == "lift":
                out = F.conv2d(v, lift_bank(K, G), padding=r)
                return out.reshape(B, K.shape[0], G, n, n)
            W = gconv_bank(K, G)
            if op == "gconv":
                out = F.conv2d(v.reshape(B, K.shape[1] * G, n, n), W, padding=r)
                return out.reshape(B, K.shape[0], G, n, n)
            out = F.conv_transpose2d(v.reshape(B, K.shape[0] * G, n, n), W, padding=r)
            return out.reshape(B, K.shape[1], G, n, n)
        if op == "gpool":
            v = self.g(e[1], env)
            return v.mean(2) if v.dim() in (3, 5) and self.G is not None else v.mean(-1)
        if op == "mean_space":
            return self.g(e[1], env).mean((-2, -1))
        if op == "mean_set":
            return self.g(e[1], env).mean(-1)
        if op == "pool2":
            v = self.g(e[1], env)
            n = v.shape[-1]
            v = v.reshape(v.shape[:-2] + (n // 2, 2, n // 2, 2))
            return v.mean((-3, -1))
        raise ValueError(op)

    def _act(self, e, a):
        fn = e[1]
        if fn == "tanh":
            return torch.tanh(a)
        if fn == "relu":
            return torch.where(a > 0, a, torch.zeros_like(a))
        if fn == "sigmoid":
            return torch.sigmoid(a)
        if fn == "softplus":
            return F.softplus(a)
        if fn == "identity":
            return a
        if fn == "exp":
            return torch.exp(a)
        if fn == "leaky_relu":
            return torch.where(a > 0, a, e[3] * a)
        raise ValueError(fn)


def twin_of(prog):
    return GroupTwin(prog) if prog.group else Twin(prog)


# ---- the group actions on the compiled model's inputs and outputs (numpy, batch first) ----

def act_on(prog, field, g, a):
    """Element g applied to a (B, *shape) array of the given field type. C4/D4: g an index;
    Z(n): g the shift T^g; S(n): g a permutation (member j of the result is member g[j])."""
    import numpy as np
    kind = prog.group[0]
    if field == "trivial":
        return a
    if kind in ("C4", "D4"):
        G = prog.group[1]
        t = torch.tensor(a, dtype=D)
        if field == "spatial":
            return g_act(G, g, t).numpy()
        ig = g_inv(G, g)
        perm = [g_mul(G, ig, e) for e in range(G)]   # (g.v)[c, e] = g(v[c, idx(g^-1 g_e)])
        t = t[:, :, perm]
        return (g_act(G, g, t) if field == "regular" else t).numpy()
    if kind == "Z":
        return np.roll(a, g, axis=-1)                # (T a)[i] = a[(i - 1) mod n]
    return a[..., list(g)]


def kernel_matrix(P, K):
    """The dense matrix of v -> lift(K, v) or gconv(K, v) on P's grid (DESIGN §8's norm)."""
    n = P.grid
    if P.group.startswith("Z"):
        idx = zconv_index(n, K.shape[-1])
        E = torch.eye(P.cin * n, dtype=D).reshape(-1, P.cin, n)
        Y = torch.einsum("ocu,bciu->boi", K, E[:, :, idx])
    elif P.kind == "lift":
        E = torch.eye(P.cin * n * n, dtype=D).reshape(-1, P.cin, n, n)
        Y = F.conv2d(E, lift_bank(K, P.order), padding=(K.shape[-1] - 1) // 2)
    else:
        G = P.order
        E = torch.eye(P.cin * G * n * n, dtype=D).reshape(-1, P.cin * G, n, n)
        Y = F.conv2d(E, gconv_bank(K, G), padding=(K.shape[-1] - 1) // 2)
    return Y.reshape(Y.shape[0], -1).T
