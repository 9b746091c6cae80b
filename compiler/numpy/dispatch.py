"""NumPy's dispatch protocols: ``__array_function__`` and ``__array_ufunc__`` calls on
tracers come here and go to the implementation registered for the NumPy function."""

from __future__ import annotations

import inspect

import numpy as _np

from ..errors import UnsupportedError
from ..tracing import user_loc

from ._core import _reject
from . import ufuncs
from .ufuncs import _SUPPORTED_UFUNCS
from .reductions import all, any, max, min, prod, sum
from .contractions import matmul
from .linalg import _HANDLED

# --- NumPy dispatch ----------------------------------------------------------------------------

_UNSUPPORTED_HINTS = {
    "nonzero": "its result shape depends on the data",
    "argwhere": "its result shape depends on the data",
    "flatnonzero": "its result shape depends on the data",
    "unique": "its result shape depends on the data",
    "extract": "its result shape depends on the data",
    "compress": "its result shape depends on the data",
}


def _qualname(func):
    mod = getattr(func, "__module__", "numpy") or "numpy"
    if mod.startswith("numpy._core") or mod.startswith("numpy.core") or mod.startswith("numpy.lib"):
        mod = "numpy"
    return f"{mod}.{func.__name__}"


def _dispatch_function(func, args, kwargs):
    impl = _HANDLED.get(func)
    if impl is None:
        hint = _UNSUPPORTED_HINTS.get(func.__name__)
        raise UnsupportedError(
            f"{_qualname(func)} is not supported by vmapc"
            + (f" ({hint})" if hint else "")
            + "; see docs/numpy.md for the supported functions", user_loc())
    try:
        inspect.signature(impl).bind(*args, **kwargs)
    except TypeError as err:
        raise UnsupportedError(f"{_qualname(func)}: {err}", user_loc()) from None
    return impl(*args, **kwargs)


_REDUCE_METHODS = {"add": sum, "multiply": prod, "maximum": max, "minimum": min,
                   "logical_and": all, "logical_or": any}


def _dispatch_ufunc(ufunc, method, inputs, kwargs):
    name = ufunc.__name__
    if method == "__call__":
        if name == "matmul":
            return matmul(*inputs, **kwargs)
        f = getattr(ufuncs, name, None) if name in _SUPPORTED_UFUNCS else None
        if f is None:
            raise UnsupportedError(f"numpy.{name} is not supported by vmapc; see docs/numpy.md",
                                   user_loc())
        try:
            inspect.signature(f).bind(*inputs, **kwargs)
        except TypeError as err:
            raise UnsupportedError(f"numpy.{name}: {err}", user_loc()) from None
        return f(*inputs, **kwargs)
    if method == "at":
        from .writes import ufunc_at
        return ufunc_at(ufunc, *inputs, **kwargs)
    if method == "outer" and ufunc.nin == 2 and name in _SUPPORTED_UFUNCS and name != "matmul" and not kwargs:
        # ufunc.outer(a, b)[i..., j...] = ufunc(a[i...], b[j...]): a gets b's rank in size-1 dims
        from .ufuncs import asarray
        from .shape import reshape
        a, b = (x if not isinstance(x, (list, tuple)) else asarray(x) for x in inputs)
        a_shape, b_ndim = _np.shape(a) if not hasattr(a, "shape") else a.shape, _np.ndim(b)
        return getattr(ufuncs, name)(reshape(a, tuple(a_shape) + (1,) * b_ndim), b)
    if method == "reduce" and name in _REDUCE_METHODS:
        (a,) = inputs
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        out = kwargs.pop("out", None)
        _reject(f"numpy.{name}.reduce", kwargs)
        r = _REDUCE_METHODS[name](a, axis=axis, keepdims=keepdims)
        if out is not None:
            from .writes import write_out
            return write_out(r, out, f"numpy.{name}.reduce", "unsafe", exact_shape=True)
        return r
    raise UnsupportedError(f"numpy.{name}.{method} is not supported by vmapc", user_loc())


def supported_functions() -> list:
    """Names of the NumPy functions and ufuncs that trace (for docs/numpy.md)."""
    names = {_qualname(f) for f in _HANDLED}
    names |= {f"numpy.{n}" for n in _SUPPORTED_UFUNCS if hasattr(_np, n)}
    return sorted(names)
