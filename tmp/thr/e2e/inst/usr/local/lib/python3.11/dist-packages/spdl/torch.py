"""spdl.torch - built spdl models as PyTorch modules.

For a model NAME (made on first use of NAME.Module / NAME.Function):

  NAME.Function.apply(x, theta)   torch.autograd.Function: forward is M_forward,
                                  backward M_vjp (gradients for x and theta)
  NAME.LossFunction.apply(x, t, theta)   the model's own mean loss (M_loss_grad:
                                  forward, loss and gradient in one call)
  NAME.Module(weights=None, seed=0)   nn.Module; its nn.Parameters are the declared
                                  parameters, named as in the .spn file, in their
                                  declared shapes; module(x), module.loss(x, t),
                                  module.project(), module.save(path)

project_after_step(optimizer, *modules) makes every optimizer.step() call
project() on the spdl modules (found inside the given modules too), so trained
weights stay inside the norm bounds the certificate assumed.

Tensors are float64 on the CPU; any batch size; the GIL is released while
the generated code runs.
"""
import functools
import threading
import types

import numpy as np
import torch
from torch.autograd.function import once_differentiable

__all__ = ["make_classes", "project_after_step"]


def _np(b, fn, what, t):
    """The tensor's data as a NumPy view (no copy), after checking it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s.%s: %s must be a torch.Tensor, not %s" % (b.name, fn, what, type(t).__name__))
    if t.dtype != torch.float64:
        raise TypeError("%s.%s: %s must be torch.float64, not %s (convert with .double())" % (b.name, fn, what,
                                                                                           t.dtype))
    if t.device.type != "cpu":
        raise TypeError("%s.%s: %s is on %s; the generated code runs on the CPU (.cpu())" % (b.name, fn, what,
                                                                                          t.device))
    if not t.is_contiguous():
        raise ValueError("%s.%s: %s is not contiguous (strides %s); pass %s.contiguous()"
                         % (b.name, fn, what, tuple(t.stride()), what))
    return t.detach().numpy()


def make_classes(b):
    """Function, LossFunction and Module for the Binding b."""

    class Function(torch.autograd.Function):
        __doc__ = "%s as a torch.autograd.Function: apply(x, theta) -> y; backward is %s_vjp." % (b.name, b.name)

        @staticmethod
        def forward(ctx, x, theta):
            th = _np(b, "Function", "theta", theta)
            b.check_theta("Function", th)
            y = b.forward(_cache(), th, _np(b, "Function", "x", x), fn="Function")
            ctx.save_for_backward(x, theta)
            return torch.from_numpy(y)

        @staticmethod
        @once_differentiable
        def backward(ctx, dy):
            x, theta = ctx.saved_tensors
            need_dx, need_dth = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            if not (need_dx or need_dth):
                return None, None
            dy = dy.to(torch.float64).contiguous()
            dx, dth = b.vjp(_cache(), theta.detach().numpy(), x.detach().numpy(), dy.numpy(), need_dx, need_dth,
                            fn="Function.backward")
            return (torch.from_numpy(dx) if need_dx else None), (torch.from_numpy(dth) if need_dth else None)

    class LossFunction(torch.autograd.Function):
        __doc__ = ("%s's mean loss as a torch.autograd.Function: apply(x, t, theta) -> loss, the gradient for "
                   "theta from %s_loss_grad (one call: forward, loss, adjoint)." % (b.name, b.name))

        @staticmethod
        def forward(ctx, x, t, theta):
            if isinstance(x, torch.Tensor) and x.requires_grad:
                raise ValueError("%s.loss: the model's loss gives gradients for the parameters only; for a "
                                 "gradient with respect to x, apply a PyTorch loss to module(x)" % b.name)
            th = _np(b, "loss", "theta", theta)
            b.check_theta("loss", th)
            tn = None
            if t is not None:
                if not isinstance(t, torch.Tensor):
                    raise TypeError("%s.loss: t must be a torch.Tensor, not %s" % (b.name, type(t).__name__))
                tn = t.detach().contiguous().numpy()
            loss, grad = b.loss_grad(_cache(), th, _np(b, "loss", "x", x), tn, fn="loss")
            ctx.save_for_backward(torch.from_numpy(grad))
            return torch.tensor(loss, dtype=torch.float64)

        @staticmethod
        @once_differentiable
        def backward(ctx, dl):
            (grad,) = ctx.saved_tensors
            return None, None, grad * dl

    offsets = [(p.offset, p.size, p.tensor_shape) for p in b.params]

    def flat(params, cache=None):
        """theta from the parameters' data (one copy, no autograd node). cache
        (a Module's) keeps a NumPy view of each parameter while the parameter
        keeps its storage and shape, since torch calls cost microseconds."""
        if len(params) != len(offsets):
            raise TypeError("%s: %d parameter tensors, expected %d" % (b.name, len(params), len(offsets)))
        th = np.empty(b.nparam)
        for i, ((off, size, shape), p) in enumerate(zip(offsets, params)):
            c = cache.get(i) if cache is not None else None
            if c is not None and c[0] is p and c[1] == p.data_ptr() and p.shape == shape:
                v = c[2]
            else:
                if p.dtype != torch.float64 or tuple(p.shape) != shape:
                    raise TypeError("%s: parameter of dtype %s and shape %s; expected float64 %s (do not convert "
                                    "the module with .float() or .to())" % (b.name, p.dtype, tuple(p.shape), shape))
                v = p.detach().numpy().reshape(-1)
                if cache is not None and p.is_contiguous() and p.device.type == "cpu":
                    cache[i] = (p, p.data_ptr(), v)
            th[off:off + size] = v
        return th

    def split(dth, needs):
        """dtheta as one gradient per parameter (views), None where none is needed."""
        return tuple(torch.from_numpy(dth[off:off + size].reshape(shape)) if need else None
                     for (off, size, shape), need in zip(offsets, needs))

    class ModuleFunction(torch.autograd.Function):
        """Module.forward: apply(x, *params), theta assembled without an autograd node."""

        @staticmethod
        def forward(ctx, x, views, *params):
            th = flat(params, views)
            y = b.forward(_cache(), th, _np(b, "Module", "x", x), fn="Module")
            ctx.save_for_backward(x)
            ctx.theta = th
            return torch.from_numpy(y)

        @staticmethod
        @once_differentiable
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            needs = ctx.needs_input_grad[2:]
            need_dx, need_dth = ctx.needs_input_grad[0], any(needs)
            if not (need_dx or need_dth):
                return (None,) * (2 + len(needs))
            dy = dy.to(torch.float64).contiguous()
            dx, dth = b.vjp(_cache(), ctx.theta, x.detach().numpy(), dy.numpy(), need_dx, need_dth,
                            fn="Module.backward")
            return ((torch.from_numpy(dx) if need_dx else None), None) + (split(dth, needs) if need_dth else
                                                                            (None,) * len(needs))

    class ModuleLoss(torch.autograd.Function):
        """Module.loss: apply(x, t, *params) -> mean loss, gradients from M_loss_grad."""

        @staticmethod
        def forward(ctx, x, t, views, *params):
            if isinstance(x, torch.Tensor) and x.requires_grad:
                raise ValueError("%s.loss: the model's loss gives gradients for the parameters only; for a "
                                 "gradient with respect to x, apply a PyTorch loss to module(x)" % b.name)
            tn = None
            if t is not None:
                if not isinstance(t, torch.Tensor):
                    raise TypeError("%s.loss: t must be a torch.Tensor, not %s" % (b.name, type(t).__name__))
                tn = t.detach().contiguous().numpy()
            loss, grad = b.loss_grad(_cache(), flat(params, views), _np(b, "loss", "x", x), tn, fn="loss")
            ctx.grad = grad
            return torch.tensor(loss, dtype=torch.float64)

        @staticmethod
        @once_differentiable
        def backward(ctx, dl):
            g = split(ctx.grad, ctx.needs_input_grad[3:])
            if dl.item() != 1.0:
                g = tuple(None if t is None else t * dl for t in g)
            return (None, None, None) + g

    class Module(torch.nn.Module):
        __doc__ = ("%s as a torch.nn.Module. Module(weights=None | path, seed=0); its parameters %s are the "
                   "declared ones (float64, declared shapes, [layers, ...] for `per layer`)."
                   % (b.name, ", ".join(b.param_names) or "(none)"))
        _spdl_binding = b
        certificate = b.certificate
        info = tuple(b.params)   # the declared parameters (spdl.ParamInfo)

        def __init__(self, weights=None, seed=0):
            super().__init__()
            m = b.Model(weights, seed)
            self._np_views = {}
            self.metadata, self.extra = m.metadata, m.extra
            for p, v in zip(b.params, m.params.values()):
                if p.name in dir(torch.nn.Module) or p.name in self.__dict__:
                    raise ValueError("%s.Module: parameter '%s' has the name of an nn.Module attribute; rename it "
                                     "in the .spn file" % (b.name, p.name))
                self.register_parameter(p.name, torch.nn.Parameter(torch.from_numpy(v.copy())))

        def theta(self):
            """All parameters, flat in declaration order (differentiable)."""
            ps = [getattr(self, n) for n in b.param_names]
            if not ps:
                return torch.zeros(0, dtype=torch.float64)
            return torch.cat([p.reshape(-1) for p in ps])

        def forward(self, x):
            params = [self._parameters[n] for n in b.param_names]
            if not torch.is_grad_enabled():   # no graph to record: call the C code directly
                th = flat(params, self._np_views)
                return torch.from_numpy(b.forward(_cache(), th, _np(b, "Module", "x", x), fn="Module"))
            return ModuleFunction.apply(x, self._np_views, *params)

        def loss(self, x, t=None):
            """The model's mean loss (as declared in the .spn), differentiable in the parameters."""
            return ModuleLoss.apply(x, t, self._np_views, *[self._parameters[n] for n in b.param_names])

        def project(self):
            """Enforces the declared norm bounds (and other structure) on the parameters, in place."""
            with torch.no_grad():
                th = flat([self._parameters[n] for n in b.param_names], self._np_views)
                b._project(th.ctypes.data)
                for p in b.params:
                    getattr(self, p.name).copy_(torch.from_numpy(th[p.offset:p.offset + p.size]
                                                                 .reshape(p.tensor_shape)))

        def to_model(self):
            """A NumPy Model holding the module's current parameters."""
            m = b.Model()
            m.theta = np.ascontiguousarray(self.theta().detach().numpy())
            m.metadata, m.extra = self.metadata, self.extra
            return m

        def save(self, path, keep_optimizer=True):
            """The parameters as a safetensors file the built program reads (see Model.save)."""
            self.to_model().save(path, keep_optimizer)

        @classmethod
        def load(cls, path):
            return cls(weights=path)

        def extra_repr(self):
            return "%s: %s -> %d, %d parameters, %s" % (b.name, tuple(b.in_shape), b.nout, b.nparam, b.precision)

    for c in (Function, LossFunction, Module, ModuleFunction, ModuleLoss):
        c.__module__ = b.name
        c.__qualname__ = c.__name__
    return {"Function": Function, "LossFunction": LossFunction, "Module": Module}


_tls = threading.local()


def _cache():
    """A per-thread holder for work buffers (one per thread, shared by models)."""
    return _tls


def project_after_step(optimizer, *modules):
    """Makes optimizer.step() call project() on every spdl module in modules
    (and inside them) after each step. Returns the optimizer."""
    targets = []
    for m in modules:
        for sub in m.modules():
            if hasattr(type(sub), "_spdl_binding") and sub not in targets:
                targets.append(sub)
    if not targets:
        raise ValueError("project_after_step: no spdl module among the given modules")
    def project_all():
        for t in targets:
            t.project()
    if hasattr(optimizer, "register_step_post_hook"):   # PyTorch 2
        optimizer.register_step_post_hook(lambda opt, a, k: project_all())
        return optimizer
    step = optimizer.step

    @functools.wraps(step)
    def step_and_project(self, *args, **kwargs):
        r = step(*args, **kwargs)
        project_all()
        return r
    # a bound method, as learning-rate schedulers expect optimizer.step to be
    optimizer.step = types.MethodType(step_and_project, optimizer)
    return optimizer
