"""spdl._errors - the exceptions the spdl package raises."""


class Error(RuntimeError):
    """A generated function returned an SPDL_E* code (runtime/spdl.h); .code holds it."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class ModelMismatchError(ValueError):
    """A weights file made for another model, or with other parameter shapes."""


class NotInvertibleError(AttributeError):
    """flow, inverse or logdet of a model spdlc did not prove invertible."""
