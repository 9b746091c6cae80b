"""Array creation. Outside a trace these are NumPy's own functions. While a trace runs,
the allocation functions (``zeros``, ``ones``, ``empty``, ``full``, the ``*_like`` functions,
``eye``, ``identity``) give *traced* arrays, so that a kernel can allocate its output and
fill it with traced values (``out = np.zeros(n); out[i] = x[i] * 2``); NumPy's own ``np.zeros``
and friends, called from the user's code, come here too while a trace runs (see
:class:`vmapc.functionalize.allocations`). ``empty`` gives zeros."""

from __future__ import annotations


import numpy as _np

from .. import dtypes as dt
from ..functionalize import numpy_original
from ..tracing import Tracer, current

from ._core import _b, _implements, _is_tracer, _var, _wrap
from .ufuncs import astype
from .shape import broadcast_to

# --- creation ------------------------------------------------------------------------------------

arange, linspace = _np.arange, _np.linspace


def _traced(array):
    """A traced array holding a NumPy value (a broadcast scalar when all elements are equal)."""
    return _wrap(current().constant(array))


def _shape(shape):
    return (int(shape),) if isinstance(shape, (int, _np.integer)) else tuple(int(d) for d in shape)


def _dtype(dtype):
    return dt.canonical(float if dtype is None else dtype, "the allocation's dtype")


def full(shape, fill_value, dtype=None, order="C", *, like=None, device=None):
    """NumPy's full; traced while tracing (a traced fill value gives a broadcast of it)."""
    if isinstance(fill_value, Tracer):
        d = dtype if dtype is not None else fill_value.dtype
        return _wrap(_var(broadcast_to(astype(fill_value, d), _shape(shape))))
    a = numpy_original("full")(shape, fill_value, dtype=dtype, order=order)
    if current() is None:
        return a
    dt.canonical(a.dtype, "the allocation's dtype")
    return _wrap(_b().full(a.shape, a.reshape(-1)[0] if a.size else 0, a.dtype)) if a.size else _traced(a)


def zeros(shape, dtype=float, order="C", *, like=None, device=None):
    if current() is None:
        return numpy_original("zeros")(shape, dtype=dtype, order=order)
    return _wrap(_b().full(_shape(shape), 0, _dtype(dtype)))


def ones(shape, dtype=None, order="C", *, like=None, device=None):
    if current() is None:
        return numpy_original("ones")(shape, dtype=dtype, order=order)
    return _wrap(_b().full(_shape(shape), 1, _dtype(dtype)))


empty = zeros


def eye(N, M=None, k=0, dtype=float, order="C", *, like=None, device=None):
    a = numpy_original("eye")(N, M, k, dtype=dtype, order=order)
    return _traced(a) if current() is not None else a


def identity(n, dtype=None, *, like=None):
    return eye(n, dtype=dtype)


def _like(fill, a, dtype, shape, name):
    if current() is None:
        return getattr(_np, name)(a, dtype=dtype, shape=shape) if fill is None else \
            numpy_original("full_like")(a, fill, dtype=dtype, shape=shape)
    d = dtype if dtype is not None else (a.dtype if hasattr(a, "dtype") else _np.asarray(a).dtype)
    return full(_np.shape(a) if shape is None and not _is_tracer(a) else a.shape if shape is None else shape,
                fill, dtype=d)


@_implements(_np.zeros_like, _np.empty_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(0, a, dtype, shape, "zeros_like")


@_implements(_np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(1, a, dtype, shape, "ones_like")


@_implements(_np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(fill_value, a, dtype, shape, "full_like")


empty_like = zeros_like
