"""Matrix-shaped helpers: ``diagonal``, ``trace``, ``diag``, ``diagflat``, ``triu``, ``tril`` and
``cross``.

They are compositions of existing ops: a diagonal is a gather (``take``) of the flattened
last two axes at static positions, ``diag`` of a vector and ``triu``/``tril`` select with
a constant mask, and ``cross`` is NumPy's formula on the components."""

from __future__ import annotations

import warnings

import numpy as _np

from ..errors import ShapeError
from ..tracing import user_loc

from ._core import _axis, _b, _has_tracer, _implements, _is_tracer, _static_ints, _strong_dtype, _var, _wrap
from .reductions import sum
from .shape import moveaxis, ravel, reshape, stack, transpose
from .ufuncs import astype, multiply, negative, subtract, where


def _diag_positions(n1, n2, offset):
    """Flat positions (row * n2 + col) of the offset diagonal of an n1 x n2 matrix."""
    if offset >= 0:
        length = max(0, min(n1, n2 - offset))
        return _np.arange(length) * n2 + _np.arange(length) + offset
    length = max(0, min(n1 + offset, n2))
    return (_np.arange(length) - offset) * n2 + _np.arange(length)


@_implements(_np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The offset diagonal of the (axis1, axis2) matrices, as the last axis."""
    if not _is_tracer(a):
        return _np.diagonal(a, offset, axis1, axis2)
    if a.ndim < 2:
        raise ShapeError("numpy.diagonal: diag requires an array of at least two dimensions", user_loc())
    (offset,) = _static_ints((offset,), "numpy.diagonal offset")
    i, j = _axis(axis1, a.ndim, "numpy.diagonal"), _axis(axis2, a.ndim, "numpy.diagonal")
    if i == j:
        raise ShapeError("numpy.diagonal: axis1 and axis2 cannot be the same", user_loc())
    rest = [k for k in range(a.ndim) if k not in (i, j)]
    m = transpose(a, rest + [i, j])
    n1, n2 = a.shape[i], a.shape[j]
    flat = reshape(m, m.shape[:-2] + (n1 * n2,))
    pos = _b().constant(_diag_positions(n1, n2, offset).astype(_np.int64))
    return _wrap(_b().emit("take", _var(flat), pos, axis=flat.ndim - 1, batch_dims=0))


@_implements(_np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum of the offset diagonal (dtype rules of ``np.sum``)."""
    if not _is_tracer(a):
        return _np.trace(a, offset, axis1, axis2, dtype, out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype, out=out)


@_implements(_np.diag)
def diag(v, k=0):
    """A vector's square matrix with it on the k-th diagonal, or a matrix's k-th diagonal."""
    if not _is_tracer(v):
        return _np.diag(v, k)
    (k,) = _static_ints((k,), "numpy.diag k")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError("numpy.diag: Input must be 1- or 2-d.", user_loc())
    n = v.shape[0]
    size = n + abs(k)
    rows, cols = _np.indices((size, size))
    on = cols - rows == k
    src = _np.clip(_np.where(k >= 0, rows, cols), 0, max(n - 1, 0))   # the vector element on the diagonal
    if n == 0:
        return _wrap(_b().full((size, size), 0, v.dtype))
    spread = _wrap(_b().emit("take", _var(v), _b().constant(src.astype(_np.int64)), axis=0, batch_dims=0))
    return where(on, spread, _np.zeros(1, v.dtype))


@_implements(_np.diagflat)
def diagflat(v, k=0):
    """diag of the flattened input."""
    if not _is_tracer(v):
        return _np.diagflat(v, k)
    return diag(ravel(v), k)


def _triangle(fname, np_f, m, k, lower):
    if not _is_tracer(m):
        return np_f(m, k)
    (k,) = _static_ints((k,), f"{fname} k")
    if m.ndim == 0:
        raise ShapeError(f"{fname}: input must be at least 1-d", user_loc())
    rows, cols = m.shape[-2:] if m.ndim >= 2 else (m.shape[-1], m.shape[-1])
    mask = _np.tri(rows, cols, k=k if lower else k - 1, dtype=bool)
    return where(mask if lower else ~mask, m, _np.zeros(1, m.dtype))


@_implements(_np.tril)
def tril(m, k=0):
    """The lower triangle of the last two axes (a vector counts as every row), zeros above."""
    return _triangle("numpy.tril", _np.tril, m, k, True)


@_implements(_np.triu)
def triu(m, k=0):
    """The upper triangle of the last two axes (a vector counts as every row), zeros below."""
    return _triangle("numpy.triu", _np.triu, m, k, False)


@_implements(_np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross products of 3-vectors (and NumPy's deprecated 2-vectors), NumPy's formulas."""
    if not _has_tracer((a, b)):
        return _np.cross(a, b, axisa, axisb, axisc, axis)
    a = a if _is_tracer(a) else _wrap(_var(_np.asarray(a)))
    b = b if _is_tracer(b) else _wrap(_var(_np.asarray(b)))
    if axis is not None:
        axisa = axisb = axisc = axis
    if a.ndim < 1 or b.ndim < 1:
        raise ShapeError("numpy.cross: At least one array has zero dimension", user_loc())
    a = moveaxis(a, _axis(axisa, a.ndim, "numpy.cross axisa"), -1)
    b = moveaxis(b, _axis(axisb, b.ndim, "numpy.cross axisb"), -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ShapeError("numpy.cross: incompatible dimensions for cross product (dimension must be 2 or 3)",
                         user_loc())
    if na == 2 or nb == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of 3-dimensional vectors "
                      "instead. (deprecated in NumPy 2.0)", DeprecationWarning, stacklevel=2)
    d = _strong_dtype(a, b)
    a, b = astype(a, d), astype(b, d)
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    if na == 2 and nb == 2:
        return subtract(multiply(a0, b1), multiply(a1, b0))
    cp2 = subtract(multiply(a0, b1), multiply(a1, b0))
    if na == 2:
        b2 = b[..., 2]
        cp0, cp1 = multiply(a1, b2), negative(multiply(a0, b2))
    elif nb == 2:
        a2 = a[..., 2]
        cp0, cp1 = negative(multiply(a2, b1)), multiply(a2, b0)
    else:
        a2, b2 = a[..., 2], b[..., 2]
        cp0 = subtract(multiply(a1, b2), multiply(a2, b1))
        cp1 = subtract(multiply(a2, b0), multiply(a0, b2))
    cp = stack([cp0, cp1, cp2], axis=-1)
    return moveaxis(cp, -1, _axis(axisc, cp.ndim, "numpy.cross axisc"))
