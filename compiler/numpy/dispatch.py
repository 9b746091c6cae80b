"""NumPy's dispatch protocols: ``__array_function__`` and ``__array_ufunc__`` calls on
tracers come here and go to the implementation registered for the NumPy function."""

from __future__ import annotations

import inspect

import numpy as _np

from ..errors import UnsupportedError
from ..tracing import user_loc

from ._core import _is_tracer, _reject
from . import ufuncs
from .ufuncs import _SUPPORTED_UFUNCS
from .reductions import all, any, max, min, prod, sum
from .contractions import matmul
from .cumulative import _accumulate_ufunc
from .shape import reshape
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
    if mod.startswith(("numpy.lib.stride_tricks", "numpy.lib._stride_tricks")):
        mod = "numpy.lib.stride_tricks"
    elif mod.startswith("numpy._core") or mod.startswith("numpy.core") or mod.startswith("numpy.lib"):
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


def _ufunc_reduce(ufunc, a, axis=0, dtype=None, out=None, keepdims=False, initial=_np._NoValue, where=True):
    name = ufunc.__name__
    _reject(f"numpy.{name}.reduce", where=where)
    if name not in _REDUCE_METHODS:
        raise UnsupportedError(f"numpy.{name}.reduce is not supported by vmapc (add, multiply, maximum, minimum, "
                               "logical_and and logical_or are)", user_loc())
    kw = {"keepdims": keepdims}
    if name in ("add", "multiply"):
        kw["dtype"] = dtype
    elif dtype is not None:
        a = ufuncs.astype(a, dtype)
    if initial is not _np._NoValue:
        if name in ("logical_and", "logical_or"):
            raise UnsupportedError(f"numpy.{name}.reduce: argument `initial` is not supported by vmapc", user_loc())
        kw["initial"] = initial
    r = _REDUCE_METHODS[name](a, axis=axis, **kw)
    if out is not None:
        from .writes import write_out
        return write_out(r, out, f"numpy.{name}.reduce", "unsafe", exact_shape=True)
    return r


def _ufunc_at(ufunc, *args, **kwargs):
    from .writes import ufunc_at
    return ufunc_at(ufunc, *args, **kwargs)


def _ufunc_outer(ufunc, a, b, **kwargs):
    """ufunc.outer: the ufunc of every element of a with every element of b."""
    name = ufunc.__name__
    f = getattr(ufuncs, name, None) if name in _SUPPORTED_UFUNCS and ufunc.nin == 2 else None
    if f is None or name == "matmul":
        raise UnsupportedError(f"numpy.{name}.outer is not supported by vmapc", user_loc())
    a = a if _is_tracer(a) else _np.asarray(a)
    b = b if _is_tracer(b) else _np.asarray(b)
    a = reshape(a, tuple(a.shape) + (1,) * b.ndim) if _is_tracer(a) else a.reshape(a.shape + (1,) * b.ndim)
    return f(a, b, **kwargs)


_UFUNC_METHODS = {"reduce": _ufunc_reduce, "accumulate": _accumulate_ufunc, "outer": _ufunc_outer,
                  "at": _ufunc_at}


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
    impl = _UFUNC_METHODS.get(method)
    if impl is None:
        raise UnsupportedError(f"numpy.{name}.{method} is not supported by vmapc", user_loc())
    try:
        inspect.signature(impl).bind(ufunc, *inputs, **kwargs)
    except TypeError as err:
        raise UnsupportedError(f"numpy.{name}.{method}: {err}", user_loc()) from None
    return impl(ufunc, *inputs, **kwargs)


def supported_functions() -> list:
    """Names of the NumPy functions and ufuncs that trace (for docs/numpy.md)."""
    names = {_qualname(f) for f in _HANDLED}
    names |= {f"numpy.{n}" for n in _SUPPORTED_UFUNCS if hasattr(_np, n)}
    return sorted(names)
