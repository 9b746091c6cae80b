"""Reductions: ``sum``, ``prod``, ``max``/``min``, ``any``/``all``, ``mean``, ``var``,
``std``, ``ptp``, ``argmax``/``argmin``, and ``logsumexp``/``softmax``/``log_softmax``."""

from __future__ import annotations

import builtins

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, UnsupportedError
from ..tracing import user_loc

from ._core import _axes, _axis, _b, _c, _e, _implements, _is_int, _is_tracer, _reject, _var, _wrap
from .ufuncs import add, astype, conjugate, divide, exp, isfinite, log, multiply, real, subtract, where
from .shape import squeeze
from .writes import with_out

def _reduce(op, x, axes, keepdims):
    b = _b()
    out = b.emit(op, x, axes=tuple(sorted(axes)))
    if keepdims:
        out = b.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def _sum_dtype(d):
    if d == dt.BOOL or (dt.is_int(d) and d.itemsize < 8):
        return dt.UINT64 if dt.is_unsigned(d) else dt.INT64
    return d


def _accumulate(op, a, axes, keepdims, dtype):
    """reduce_sum or reduce_prod in NumPy's dtype: dtype if given, else (u)int64 for small
    integers and bools. A float16 sum accumulates in float32 (NumPy's pairwise sum does); a
    bool sum is a logical or, a bool product a logical and."""
    d = dt.canonical(dtype) if dtype is not None else _sum_dtype(a.dtype)
    bld = _b()
    x = bld.convert(_var(a), d)
    if d == dt.BOOL:
        return _reduce({"reduce_sum": "reduce_any", "reduce_prod": "reduce_all"}[op], x, axes, keepdims)
    if d == dt.FLOAT16 and op == "reduce_sum":
        return bld.convert(_reduce(op, bld.convert(x, dt.FLOAT32), axes, keepdims), d)
    return _reduce(op, x, axes, keepdims)


def _with_initial(r, initial, combine):
    """The reduction r combined with NumPy's ``initial=`` (a scalar in r's dtype)."""
    if initial is _np._NoValue:
        return r
    v = _var(initial, r.dtype)
    if v.rank:
        raise ShapeError("initial must be a scalar", user_loc())
    op = {"add": "logical_or", "multiply": "logical_and"}.get(combine, combine) if r.dtype == dt.BOOL else combine
    return _e(op, r, _b().reshape(v, (1,) * r.rank))


@_implements(_np.sum)
@with_out("numpy.sum", "unsafe")
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Sum over axes, plus ``initial``. Small integers and bools accumulate in (u)int64 as in
    NumPy; float16 accumulates in float32."""
    _reject("numpy.sum", out=out, where=where)
    if not _is_tracer(a):
        return _np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial)
    axes = _axes(axis, a.ndim, "numpy.sum", scalar_ok=True)
    return _wrap(_with_initial(_accumulate("reduce_sum", a, axes, keepdims, dtype), initial, "add"))


@_implements(_np.prod)
@with_out("numpy.prod", "unsafe")
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_np._NoValue, where=True):
    """Product over axes, times ``initial`` (dtype rules as for sum)."""
    _reject("numpy.prod", out=out, where=where)
    if not _is_tracer(a):
        return _np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial)
    axes = _axes(axis, a.ndim, "numpy.prod", scalar_ok=True)
    return _wrap(_with_initial(_accumulate("reduce_prod", a, axes, keepdims, dtype), initial, "multiply"))


def _minmax(op, bool_op, fname, np_f, a, axis, out, keepdims, initial, where):
    _reject(fname, out=out, where=where)
    if not _is_tracer(a):
        return np_f(a, axis=axis, keepdims=keepdims, initial=initial)
    axes = _axes(axis, a.ndim, fname, scalar_ok=True)
    combine = "maximum" if op == "reduce_max" else "minimum"
    if _any_empty(a.shape, axes):
        if initial is _np._NoValue:
            raise ShapeError(f"zero-size array to reduction operation {fname.split('.')[-1]} which has "
                             "no identity", user_loc())
        shape = tuple(1 if i in axes else d for i, d in enumerate(a.shape)) if keepdims else \
            tuple(d for i, d in enumerate(a.shape) if i not in axes)
        return _wrap(_b().broadcast_in_dim(_var(initial, a.dtype), shape, ()))
    r = _reduce(bool_op if a.dtype == dt.BOOL else op, _var(a), axes, keepdims)
    return _wrap(_with_initial(r, initial, combine))


def _any_empty(shape, axes):
    return builtins.any(shape[ax] == 0 for ax in axes)


@_implements(_np.max, getattr(_np, "amax", None))
@with_out("numpy.max", "unsafe")
def max(a, axis=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Maximum over axes; NaN propagates."""
    return _minmax("reduce_max", "reduce_any", "numpy.max", _np.max, a, axis, out, keepdims, initial, where)


@_implements(_np.min, getattr(_np, "amin", None))
@with_out("numpy.min", "unsafe")
def min(a, axis=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Minimum over axes; NaN propagates."""
    return _minmax("reduce_min", "reduce_all", "numpy.min", _np.min, a, axis, out, keepdims, initial, where)


amax, amin = max, min


@_implements(_np.any)
@with_out("numpy.any", "unsafe")
def any(a, axis=None, out=None, keepdims=False, *, where=True):  # noqa: A001
    _reject("numpy.any", out=out, where=where)
    if not _is_tracer(a):
        return _np.any(a, axis=axis, keepdims=keepdims)
    return _wrap(_reduce("reduce_any", _b().convert(_var(a), dt.BOOL), _axes(axis, a.ndim, "numpy.any", scalar_ok=True), keepdims))


@_implements(_np.all)
@with_out("numpy.all", "unsafe")
def all(a, axis=None, out=None, keepdims=False, *, where=True):  # noqa: A001
    _reject("numpy.all", out=out, where=where)
    if not _is_tracer(a):
        return _np.all(a, axis=axis, keepdims=keepdims)
    return _wrap(_reduce("reduce_all", _b().convert(_var(a), dt.BOOL), _axes(axis, a.ndim, "numpy.all", scalar_ok=True), keepdims))


def _count(shape, axes):
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def _mean_dtype(d, dtype):
    """The dtype NumPy sums in for a mean or variance: dtype if given, else float64 for
    integers and bools and float32 for float16."""
    if dtype is not None:
        return dt.canonical(dtype)
    if dt.is_float(d) or dt.is_complex(d):
        return dt.FLOAT32 if d == dt.FLOAT16 else d
    return dt.FLOAT64


def _divide_count(s, n, res):
    """NumPy's ``true_divide(s, n, casting='unsafe')`` into dtype res: a float sum is divided
    in its dtype, anything else in float64 (0/0 is NaN, as in NumPy)."""
    bld = _b()
    if not dt.is_float(s.dtype) and not dt.is_complex(s.dtype):
        s = bld.convert(s, dt.FLOAT64)
    return bld.convert(_e("divide", s, _c(s, n)), res)


@_implements(_np.mean)
@with_out("numpy.mean", "unsafe")
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    """Arithmetic mean; integers give float64, float16 accumulates in float32."""
    _reject("numpy.mean", out=out, where=where)
    if not _is_tracer(a):
        return _np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    acc = _mean_dtype(a.dtype, dtype)
    res = a.dtype if dtype is None and a.dtype == dt.FLOAT16 else acc
    axes = _axes(axis, a.ndim, "numpy.mean")
    s = _accumulate("reduce_sum", a, axes, keepdims, acc)
    return _wrap(_divide_count(s, _count(a.shape, axes), res))


@_implements(_np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None, correction=None):
    """Variance as NumPy computes it: sum(|a - mean(a)|**2) / max(n - ddof, 0)."""
    _reject("numpy.var", out=out, where=where)
    if mean is not None:
        raise UnsupportedError("numpy.var: argument `mean` is not supported by vmapc", user_loc())
    if correction is not None:
        ddof = correction
    if not _is_tracer(a):
        return _np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    # NumPy's _var: sums in dtype (float64 for integers and bools), dividing into it
    acc = dt.canonical(dtype) if dtype is not None else _mean_dtype(a.dtype, None) if a.dtype != dt.FLOAT16 \
        else a.dtype
    axes = _axes(axis, a.ndim, "numpy.var")
    n = _count(a.shape, axes)
    m = _wrap(_divide_count(_accumulate("reduce_sum", a, axes, True, acc), n, acc))
    d = subtract(a, m)  # noqa: F821  (NumPy's promotion of a and its mean)
    if dt.is_complex(d.dtype):   # |d|**2, real, as NumPy's _var
        d2, acc = real(multiply(d, conjugate(d))), dt.component(acc)
    else:
        d2 = multiply(d, d)
    ss = _accumulate("reduce_sum", d2, axes, keepdims, acc)
    return _wrap(_divide_count(ss, builtins.max(n - ddof, 0), acc))


@_implements(_np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None, correction=None):
    """Standard deviation: sqrt(var)."""
    if not _is_tracer(a):
        return _np.std(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    v = var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where, mean=mean,
            correction=correction)
    return _wrap(_b().emit("sqrt", v.ir_var))


@_implements(_np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    """max - min over axes."""
    if not _is_tracer(a):
        return _np.ptp(a, axis=axis, keepdims=keepdims)
    return subtract(max(a, axis, out, keepdims), min(a, axis, out, keepdims))


def _argreduce(op, fname, np_f, a, axis, out, keepdims):
    _reject(fname, out=out)
    if not _is_tracer(a):
        return np_f(a, axis=axis, keepdims=keepdims)
    x = _var(a)
    b = _b()
    if a.ndim == 0 and _is_int(axis) and int(axis) in (0, -1):
        axis = None  # NumPy accepts axis 0 or -1 on a 0-d array
    if axis is None:
        if a.size == 0:
            raise ShapeError(f"attempt to get {fname.split('.')[-1]} of an empty sequence", user_loc())
        r = b.emit(op, b.reshape(x, (a.size,)), axis=0)
        if keepdims:
            r = b.reshape(r, (1,) * a.ndim)
        return _wrap(r)
    ax = _axis(axis, a.ndim, fname)
    if a.shape[ax] == 0:
        raise ShapeError(f"attempt to get {fname.split('.')[-1]} of an empty sequence", user_loc())
    r = b.emit(op, x, axis=ax)
    if keepdims:
        r = b.reshape(r, tuple(1 if i == ax else d for i, d in enumerate(a.shape)))
    return _wrap(r)


@_implements(_np.argmax)
def argmax(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the first maximum; NaN counts as the maximum, as in NumPy."""
    return _argreduce("argmax", "numpy.argmax", _np.argmax, a, axis, out, keepdims)


@_implements(_np.argmin)
def argmin(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the first minimum; NaN counts as the minimum, as in NumPy."""
    return _argreduce("argmin", "numpy.argmin", _np.argmin, a, axis, out, keepdims)


def _as_float(x):
    """x as a floating array or tracer; integers and bools become float64 (as in SciPy)."""
    if not _is_tracer(x):
        x = _np.asarray(x)
    if dt.is_complex(x.dtype):
        raise DTypeError(f"complex input ({x.dtype}) is not supported here (it has no maximum to "
                         "subtract); take the real part or the magnitude first", user_loc())
    return x if dt.is_float(x.dtype) else astype(x, dt.FLOAT64)


# The extensions below are written with this module's functions, so they work on tracers
# and, through NumPy, on concrete arrays alike.

def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) computed stably (scipy.special.logsumexp without weights)."""
    x = _as_float(a)
    m = max(x, axis=axis, keepdims=True)
    m = where(isfinite(m), m, 0)
    r = add(log(sum(exp(subtract(x, m)), axis=axis, keepdims=True)), m)
    return r if keepdims else squeeze(r, axis=_axes(axis, x.ndim, "logsumexp"))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, computed stably (scipy.special.softmax)."""
    x = _as_float(x)
    z = exp(subtract(x, max(x, axis=axis, keepdims=True)))
    return divide(z, sum(z, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis (scipy.special.log_softmax)."""
    x = _as_float(x)
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))
