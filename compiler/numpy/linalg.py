"""``vmapc.numpy.linalg``: vector and matrix norms."""

from __future__ import annotations


import numpy as _np

from .. import dtypes as dt
from ..errors import ShapeError, UnsupportedError
from ..tracing import user_loc

from ._core import _HANDLED, _axes, _is_tracer
from .ufuncs import absolute, astype, multiply, not_equal, power, sqrt
from .reductions import max, min, sum
from .shape import reshape

def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's norm: vector norms of any order, and the Frobenius, 1, -1, inf and -inf
    norms of matrices. Matrix 2-norms and nuclear norms need an SVD and are not
    supported."""
    if not _is_tracer(x):
        return _np.linalg.norm(x, ord, axis, keepdims)
    if not dt.is_float(x.dtype):
        x = astype(x, dt.FLOAT64)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and x.ndim == 2) or (ord == 2 and x.ndim == 1):
            r = sqrt(sum(multiply(x, x)))
            return reshape(r, (1,) * x.ndim) if keepdims else r
        if x.ndim not in (1, 2):
            raise ShapeError("Improper number of dimensions to norm.", user_loc())
        axis = tuple(range(x.ndim))
    axes = _axes(axis, x.ndim, "numpy.linalg.norm")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) != 2:
        raise ShapeError("Improper number of dimensions to norm.", user_loc())
    row, col = axes
    if ord in (None, "f", "fro"):
        return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))
    if ord in (1, -1, _np.inf, -_np.inf):
        inner, outer = (row, col) if ord in (1, -1) else (col, row)
        outer -= outer > inner  # the inner axis is gone
        extreme = max if ord in (1, _np.inf) else min
        r = extreme(sum(absolute(x), axis=inner), axis=outer)
        if keepdims:
            r = reshape(r, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
        return r
    if ord in (2, -2, "nuc"):
        raise UnsupportedError(f"numpy.linalg.norm: matrix ord={ord!r} is not supported (it needs "
                               "an SVD)", user_loc())
    raise ShapeError("Invalid norm order for matrices.", user_loc())

def _vector_norm(x, ord, axes, keepdims):
    if ord is None or ord == 2:
        return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))
    if isinstance(ord, str):
        raise ShapeError(f"Invalid norm order '{ord}' for vectors", user_loc())
    if ord == _np.inf:
        return max(absolute(x), axis=axes, keepdims=keepdims)
    if ord == -_np.inf:
        return min(absolute(x), axis=axes, keepdims=keepdims)
    if ord == 0:
        return sum(astype(not_equal(x, 0), x.dtype), axis=axes, keepdims=keepdims)
    if ord == 1:
        return sum(absolute(x), axis=axes, keepdims=keepdims)
    r = sum(power(absolute(x), ord), axis=axes, keepdims=keepdims)
    return power(r, astype(_np.reciprocal(float(ord)), r.dtype))


_HANDLED[_np.linalg.norm] = norm
