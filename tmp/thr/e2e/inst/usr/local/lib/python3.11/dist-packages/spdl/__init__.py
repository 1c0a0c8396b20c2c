"""spdl - built spdl models from Python (DESIGN §10).

`spdlc build model.spn --python -o DIR` writes DIR/libNAME.so (the generated
code, compiled) and DIR/NAME.py, a ctypes module that imports this package:

    import NAME
    m = NAME.Model()                      # generated initialisation (seed=0), or
    m = NAME.Model("w.safetensors")       # the weights a built program wrote
    y = m.forward(x)                      # x: float64 (batch, *input shape)
    loss, grad = m.loss_grad(x, t)        # mean loss, d loss / d theta
    dx, dtheta = m.vjp(x, dy)
    s = m.flow(x); s0 = m.inverse(s); ld = m.logdet(x)   # models proved invertible
    m.params["K"], m.theta, m.project(), m.save("w.safetensors")
    NAME.certificate                      # what `spdlc check --json` printed

With PyTorch: NAME.Module (an nn.Module whose parameters are the declared
ones), NAME.Function (autograd.Function(x, theta), backward = the generated
adjoint M_vjp) and spdl.torch.project_after_step(optimizer, module), which
keeps trained weights inside the bounds the certificate assumed.

Nothing is compiled at import time; NumPy is the only dependency.
"""
from ._binding import ABI_VERSION as __version__
from ._binding import ModelBase, ParamInfo, load_model
from ._errors import Error, ModelMismatchError, NotInvertibleError
from .certify import certified_accuracy, logit_margins
from .safetensors import FormatError

__all__ = ["load_model", "ModelBase", "ParamInfo", "Error", "ModelMismatchError", "NotInvertibleError",
           "FormatError", "certified_accuracy", "logit_margins"]
