"""Scans and differences: ``cumsum``, ``cumprod``, ``cumulative_sum``, ``cumulative_prod``,
``diff``, and the ``accumulate`` method of the ufuncs that have a scan (``np.add``,
``np.multiply``, ``np.maximum``, ``np.minimum``, ``np.logical_and``, ``np.logical_or``).

A scan combines the elements in NumPy's order (one after the other along the axis), so a
float cumsum rounds as NumPy's does. Dtypes follow NumPy: sums and products of bools and
small integers accumulate in (u)int64, as ``np.sum`` does; ``np.maximum.accumulate``
keeps the dtype."""

from __future__ import annotations

import operator

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, TracingError, UnsupportedError
from ..tracing import user_loc

from ._core import _axis, _b, _has_tracer, _implements, _is_tracer, _loops, _reject, _var, _wrap
from .reductions import _sum_dtype
from .shape import broadcast_to, concatenate, ravel, reshape
from .ufuncs import not_equal, subtract

# ufunc name -> the cumulative op's combine
_ACCUMULATE = {"add": "add", "multiply": "multiply", "maximum": "maximum", "minimum": "minimum",
               "logical_and": "multiply", "logical_or": "add"}


def _scan(x, combine, axis, reverse=False):
    return _b().emit("cumulative", x, combine=combine, axis=axis, reverse=reverse)


def _cumulative(fname, combine, a, axis, dtype):
    """cumsum/cumprod: axis None flattens; small ints and bools accumulate in (u)int64."""
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, fname)
    d = dt.canonical(dtype, f"{fname} dtype") if dtype is not None else _sum_dtype(a.dtype)
    x = _b().convert(_var(a), d)
    if d == dt.BOOL:   # NumPy's bool add is or, multiply is and
        combine = {"add": "maximum", "multiply": "minimum"}[combine]
    return _wrap(_scan(x, combine, ax))


@_implements(_np.cumsum)
def cumsum(a, axis=None, dtype=None, out=None):
    """Running sum along axis (None: flattened)."""
    _reject("numpy.cumsum", out=out)
    if not _is_tracer(a):
        return _np.cumsum(a, axis=axis, dtype=dtype)
    return _cumulative("numpy.cumsum", "add", a, axis, dtype)


@_implements(_np.cumprod)
def cumprod(a, axis=None, dtype=None, out=None):
    """Running product along axis (None: flattened)."""
    _reject("numpy.cumprod", out=out)
    if not _is_tracer(a):
        return _np.cumprod(a, axis=axis, dtype=dtype)
    return _cumulative("numpy.cumprod", "multiply", a, axis, dtype)


def _cumulative_api(fname, np_f, combine, identity, x, axis, dtype, out, include_initial):
    """NumPy 2's array-API cumulative_sum/cumulative_prod: axis may be omitted only for
    one dim; include_initial puts the identity first."""
    _reject(fname, out=out)
    if not _is_tracer(x):
        return np_f(x, axis=axis, dtype=dtype, include_initial=include_initial)
    if x.ndim == 0:
        x = reshape(x, (1,))
    if axis is None:
        if x.ndim > 1:
            raise ShapeError(f"{fname}: For arrays which have more than one dimension ``axis`` argument "
                             "is required.", user_loc())
        axis = 0
    r = _cumulative(fname, combine, x, axis, dtype)
    if include_initial:
        ax = _axis(axis, x.ndim, fname)
        shape = tuple(1 if i == ax else n for i, n in enumerate(r.shape))
        r = concatenate([broadcast_to(_np.asarray(identity, r.dtype), shape), r], axis=ax)
    return r


@_implements(getattr(_np, "cumulative_sum", None))
def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """NumPy 2's cumulative_sum (with ``include_initial``)."""
    return _cumulative_api("numpy.cumulative_sum", _np.cumulative_sum, "add", 0, x, axis, dtype, out,
                           include_initial)


@_implements(getattr(_np, "cumulative_prod", None))
def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """NumPy 2's cumulative_prod (with ``include_initial``)."""
    return _cumulative_api("numpy.cumulative_prod", _np.cumulative_prod, "multiply", 1, x, axis, dtype, out,
                           include_initial)


def _accumulate_ufunc(ufunc, array, axis=0, dtype=None, out=None):
    """``ufunc.accumulate`` for the ufuncs with a scan: NumPy's loop dtypes (``np.add`` of
    int8 gives int64, ``np.maximum`` keeps int8, ``np.logical_and`` gives bool)."""
    name = ufunc.__name__
    fname = f"numpy.{name}.accumulate"
    _reject(fname, out=out)
    if name not in _ACCUMULATE:
        raise UnsupportedError(f"{fname} is not supported by vmapc (only add, multiply, maximum, minimum, "
                               "logical_and and logical_or have a scan)", user_loc())
    if not _has_tracer((array,)):
        return ufunc.accumulate(array, axis=axis, dtype=dtype)
    if array.ndim == 0:
        raise DTypeError(f"{fname}: cannot accumulate on a scalar", user_loc())
    if axis is None:
        raise ShapeError(f"{fname}: accumulate does not allow multiple axes", user_loc())
    ax = _axis(axis, array.ndim, fname)
    if name in ("add", "multiply"):
        d = dt.canonical(dtype, f"{fname} dtype") if dtype is not None else _sum_dtype(array.dtype)
    else:
        _, d = _loops(ufunc, (array, array), dtype)
    combine = _ACCUMULATE[name]
    if d == dt.BOOL:
        combine = {"add": "maximum", "multiply": "minimum"}.get(combine, combine)
    return _wrap(_scan(_b().convert(_var(array), d), combine, ax))


@_implements(_np.diff)
def diff(a, n=1, axis=-1, prepend=_np._NoValue, append=_np._NoValue):
    """n-th differences along axis (``not_equal`` for bools, as in NumPy), with optional
    values put before and after."""
    if not _has_tracer((a, prepend, append)):
        return _np.diff(a, n=n, axis=axis, prepend=prepend, append=append)
    if _has_tracer((n,)):
        raise TracingError("numpy.diff: n must be a static Python int", user_loc())
    n = operator.index(n)
    if n < 0:
        raise ShapeError(f"numpy.diff: order must be non-negative but got {n}", user_loc())
    if not _is_tracer(a):
        a = _wrap(_var(a))
    if a.ndim == 0:
        raise ShapeError("numpy.diff: diff requires input that is at least one dimensional", user_loc())
    ax = _axis(axis, a.ndim, "numpy.diff")
    if n == 0:
        return a
    parts = []
    for extra in (prepend, a, append):
        if extra is a:
            parts.append(a)
        elif extra is not _np._NoValue:
            e = extra if _is_tracer(extra) else _np.asanyarray(extra)
            if e.ndim == 0:
                shape = tuple(1 if i == ax else d for i, d in enumerate(a.shape))
                e = broadcast_to(e, shape) if _is_tracer(e) else _np.broadcast_to(e, shape)
            parts.append(e)
    if len(parts) > 1:
        a = concatenate(parts, axis=ax)
    op = not_equal if a.dtype == dt.BOOL else subtract
    for _ in range(n):
        m = a.shape[ax]
        if m == 0:
            break
        hi = [slice(None)] * a.ndim
        lo = [slice(None)] * a.ndim
        hi[ax], lo[ax] = slice(1, None), slice(None, -1)
        a = op(a[tuple(hi)], a[tuple(lo)])
    return a
