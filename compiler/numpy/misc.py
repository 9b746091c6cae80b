"""``isclose``, ``allclose`` and ``nan_to_num``."""

from __future__ import annotations


import numpy as _np

from .. import dtypes as dt

from ._core import _b, _has_tracer, _implements, _is_tracer, _var, _wrap
from .ufuncs import absolute, add, astype, equal, greater, isfinite, isinf, isnan, less, less_equal, logical_and, logical_or, multiply, subtract, where
from .reductions import all

# --- misc ----------------------------------------------------------------------------------------

@_implements(_np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """NumPy's formula: |a - b| <= atol + rtol * |b| where b is finite, or a == b (so equal
    infinities are close); b is first made floating (``result_type(b, 1.0)``)."""
    if not _has_tracer((a, b, rtol, atol)):
        return _np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    x, y = a, b
    if _is_tracer(y) and y.weak is None or isinstance(y, (_np.ndarray, _np.generic, list, tuple)):
        y = astype(y, _np.result_type(y.dtype if _is_tracer(y) else _np.asarray(y).dtype, 1.0))
    elif type(y) is int:
        y = float(y)
    close = less_equal(absolute(subtract(x, y)), add(atol, multiply(rtol, absolute(y))))
    r = logical_or(logical_and(close, isfinite(y)), equal(x, y))
    if equal_nan:
        r = logical_or(r, logical_and(isnan(x), isnan(y)))
    return r


@_implements(_np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    if not _has_tracer((a, b)):
        return _np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return all(isclose(a, b, rtol, atol, equal_nan))


@_implements(_np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    if not _is_tracer(x):
        return _np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    if dt.is_complex(x.dtype):    # each part as a float array
        from .ufuncs import imag, real
        parts = [nan_to_num(p, nan=nan, posinf=posinf, neginf=neginf) for p in (real(x), imag(x))]
        r = _wrap(_b().emit("complex", _var(parts[0]), _var(parts[1])))
        if not copy:
            x[...] = r
            return x
        return r
    if not dt.is_float(x.dtype):
        return _wrap(_var(x)) if copy else x
    fi = _np.finfo(x.dtype)
    r = where(isnan(x), nan, x)
    r = where(logical_and(isinf(r), greater(r, 0)), fi.max if posinf is None else posinf, r)
    r = where(logical_and(isinf(r), less(r, 0)), fi.min if neginf is None else neginf, r)
    if not copy:       # NumPy writes into x and returns it
        x[...] = r
        return x
    return r
