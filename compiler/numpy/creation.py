"""Array creation: with static arguments these are NumPy's own functions (their results
become constants when they meet a tracer); the ``*_like`` functions of a tracer."""

from __future__ import annotations


import numpy as _np

from ..tracing import Tracer

from ._core import _implements, _is_tracer
from .ufuncs import astype
from .shape import broadcast_to

# --- creation ------------------------------------------------------------------------------------
# With static arguments these return NumPy arrays: they become constants (a broadcast
# scalar when all elements are equal) when they meet a tracer.

zeros, ones, empty, full = _np.zeros, _np.ones, _np.zeros, _np.full
arange, eye, identity, linspace = _np.arange, _np.eye, _np.identity, _np.linspace


def _like(fill, a, dtype, shape):
    d = dtype if dtype is not None else a.dtype
    return _np.full(a.shape if shape is None else shape, fill, dtype=d)


@_implements(_np.zeros_like, _np.empty_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(0, a, dtype, shape) if _is_tracer(a) else _np.zeros_like(a, dtype=dtype, shape=shape)


@_implements(_np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(1, a, dtype, shape) if _is_tracer(a) else _np.ones_like(a, dtype=dtype, shape=shape)


@_implements(_np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if isinstance(fill_value, Tracer):
        d = dtype if dtype is not None else (a.dtype if hasattr(a, "dtype") else None)
        return broadcast_to(astype(fill_value, d) if d is not None else fill_value,
                            a.shape if shape is None else shape)
    if not _is_tracer(a):
        return _np.full_like(a, fill_value, dtype=dtype, shape=shape)
    return _like(fill_value, a, dtype, shape)


empty_like = zeros_like
