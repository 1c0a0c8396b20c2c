"""spdl.certify - certified accuracy from the certificate, as `EXE certify`
computes it (runtime/certify.c).

The certificate bounds the Lipschitz constant L of the map from the input to
the logits z for every parameter value inside the declared norm bounds. A
prediction is certified at radius eps when it is correct and its logit
margin z_c - max_{j != c} z_j exceeds sqrt(2) L eps: no perturbation of
Euclidean norm at most eps can move z_c - z_j by more than sqrt(2) L eps.
For a softmax output the margin is log p_c - log p_j.
"""
import math

import numpy as np

__all__ = ["logit_margins", "certified_accuracy"]


def logit_margins(model, x, labels):
    """(correct, margin) per sample: whether the prediction is the label, and
    the margin of the label's logit over the best other class."""
    y = model.forward(x)
    c = np.asarray(labels).astype(np.int64)
    n = y.shape[0]
    best = np.argmax(y, axis=1)       # the first maximum, like certify.c
    o = y.copy()
    o[np.arange(n), c] = -np.inf
    other = o.max(axis=1)
    yc = y[np.arange(n), c]
    if model._b.output_softmax:   # libm's log, element by element, as certify.c computes it
        lg = lambda v: math.log(v) if v > 0 else -math.inf  # noqa: E731
        margin = np.array([lg(a) - lg(o) for a, o in zip(yc, other)])
    else:
        margin = yc - other
    return best == c, margin


def certified_accuracy(model, x, labels, eps, check_bounds=True):
    """{"clean": accuracy, eps: certified accuracy, ...} for each radius in
    eps (a number or a sequence). With check_bounds, first checks that every
    parameter with a declared norm bound satisfies it (the certificate does
    not apply otherwise), by the spectral norm from an SVD."""
    b = model._b
    L = b.lipschitz
    if not math.isfinite(L):
        raise ValueError("model '%s' has no certified Lipschitz bound; `spdlc check` says which part is unbounded"
                         % b.name)
    if check_bounds:
        for p, view in zip(b.params, model.params.values()):
            if p.norm_bound is None:
                continue
            mats = view.reshape((p.layers,) + p.shape) if p.layers > 1 else view.reshape((1,) + p.shape)
            for k, M in enumerate(mats):
                if M.ndim == 1:   # skew[n]: the strict upper triangle
                    n = int(round((1 + math.sqrt(1 + 8 * M.size)) / 2))
                    S = np.zeros((n, n))
                    S[np.triu_indices(n, 1)] = M
                    M = S - S.T
                nrm = np.linalg.norm(M, 2)
                if nrm > p.norm_bound * (1 + 1e-9):
                    raise ValueError("parameter %s (layer %d) has spectral norm %.6g > its bound %g: the certificate "
                                     "does not apply to these weights (call project())" % (p.name, k, nrm,
                                                                                          p.norm_bound))
    correct, margin = logit_margins(model, x, labels)
    n = len(correct)
    out = {"clean": float(np.sum(correct)) / n}
    for e in np.atleast_1d(eps):
        out[float(e)] = float(np.sum(correct & (margin > math.sqrt(2.0) * L * float(e)))) / n
    return out
