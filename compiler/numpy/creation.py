"""Array creation. Outside a trace these are NumPy's own functions. While a trace runs,
the allocation functions (``zeros``, ``ones``, ``empty``, ``full``, the ``*_like`` functions,
``eye``, ``identity``) give *traced* arrays, so that a kernel can allocate its output and
fill it with traced values (``out = np.zeros(n); out[i] = x[i] * 2``); NumPy's own ``np.zeros``
and friends, called from the user's code, come here too while a trace runs (see
:class:`vmapc.functionalize.allocations`). ``empty`` gives zeros. ``linspace`` works between
traced endpoints and ``meshgrid`` of traced vectors; with static arguments they, ``arange``,
``mgrid`` and ``ogrid`` are NumPy's own (their results become constants when they meet a tracer)."""

from __future__ import annotations


import numpy as _np

import operator

from .. import dtypes as dt
from ..errors import ShapeError, TracingError
from ..functionalize import numpy_original
from ..tracing import Tracer, current, user_loc

from ._core import _axis, _b, _has_tracer, _implements, _is_tracer, _result_type, _var, _wrap
from .reductions import any as _any
from .ufuncs import add, astype, divide, equal, floor, multiply, subtract, where
from .shape import broadcast_arrays, broadcast_to, concatenate, moveaxis, reshape

# --- creation ------------------------------------------------------------------------------------

arange = _np.arange
mgrid, ogrid = _np.mgrid, _np.ogrid   # static slices: NumPy builds the grids, they become constants


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


@_implements(_np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """``num`` evenly spaced values from start to stop, which may be traced (and arrays, which
    broadcast). NumPy's arithmetic: ``arange(num) * step + start`` with ``step = (stop -
    start) / div`` (``arange(num) / div * delta`` where a step is 0), the last value set to
    ``stop`` exactly; integer dtypes take the floor."""
    if not _has_tracer((start, stop)):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    if _has_tracer((num,)):
        raise TracingError("numpy.linspace: num must be a static Python int (it sets the result's shape)",
                           user_loc())
    num = operator.index(num)
    if num < 0:
        raise ShapeError(f"numpy.linspace: Number of samples, {num}, must be non-negative.", user_loc())
    div = (num - 1) if endpoint else num
    d = _result_type(start, stop)
    d = d if dt.is_float(d) or dt.is_complex(d) else dt.FLOAT64
    start, stop = (_wrap(_var(x, d)) if not _is_tracer(x) or x.dtype != d else x for x in (start, stop))
    delta = subtract(stop, start)
    y = reshape(_np.arange(0, num, dtype=d), (-1,) + (1,) * delta.ndim)
    if div > 0:
        step = divide(delta, _np.asarray(div, d))
        zero_step = _any(equal(step, 0))   # NumPy's denormal guard, for the whole array as NumPy does
        y = where(zero_step, multiply(divide(y, _np.asarray(div, d)), delta), multiply(y, step))
    else:
        step = _np.nan
        y = multiply(y, delta)
    y = add(y, start)
    if endpoint and num > 1:
        y = concatenate([y[:-1], reshape(broadcast_to(stop, y.shape[1:]), (1,) + y.shape[1:])], axis=0)
    if axis != 0:
        y = moveaxis(y, 0, _axis(axis, y.ndim, "numpy.linspace"))
    if dtype is not None:
        if dt.is_int(dt.canonical(dtype)):
            y = floor(y)
        y = astype(y, dtype)
    return (y, step) if retstep else y


@_implements(_np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """Coordinate matrices from coordinate vectors (NumPy's 'xy' or 'ij' indexing; ``sparse``
    keeps the size-1 dims)."""
    if not _has_tracer(xi):
        return _np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    if indexing not in ("xy", "ij"):
        raise ShapeError("numpy.meshgrid: Valid values for `indexing` are 'xy' and 'ij'.", user_loc())
    n = len(xi)
    s0 = (1,) * n
    out = [reshape(x if _is_tracer(x) else _wrap(_var(_np.asarray(x))), s0[:i] + (-1,) + s0[i + 1:])
           for i, x in enumerate(xi)]
    if indexing == "xy" and n > 1:
        out[0] = reshape(out[0], (1, -1) + s0[2:])
        out[1] = reshape(out[1], (-1, 1) + s0[2:])
    if sparse:
        return tuple(out) if copy else out
    return tuple(broadcast_arrays(*out))
