"""Sorting: ``sort``, ``argsort``, ``lexsort``, ``partition``, ``argpartition``, and vmapc's
``top_k``.

Every sort here is stable, whatever ``kind`` says (NumPy's results for ``kind='stable'``;
its other kinds may order equal elements differently, but their *values* agree): floats
ascend with NaNs last. ``partition`` and ``argpartition`` return the fully sorted array,
which is one of the arrangements NumPy's contract allows (the kth element in its sorted
place, nothing larger before it, nothing smaller after it); NumPy's own arrangement of
the two sides differs.
"""

from __future__ import annotations

import operator

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, OutOfBoundsError, ShapeError, TracingError, UnsupportedError
from ..reference.sorting import _order
from ..tracing import user_loc

from ._core import _axis, _b, _has_tracer, _implements, _is_int, _is_tracer, _var, _wrap
from .shape import moveaxis, ravel

_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _check_kind(fname, kind, order, stable=None):
    if order is not None:
        raise UnsupportedError(f"{fname}: argument `order` (fields of structured arrays) is not supported "
                               "by vmapc", user_loc())
    if kind not in _KINDS:
        raise ShapeError(f"{fname}: sort kind must be one of 'quick', 'heap', or 'stable' (got {kind!r})",
                         user_loc())
    if stable is not None and kind is not None:
        raise ShapeError(f"{fname}: `kind` and `stable` parameters can't both be specified.", user_loc())


def _sorted(xs, axis, descending=False, num_keys=1):
    return _b().emit_multi("sort", list(xs), {"axis": axis, "descending": descending, "num_keys": num_keys})


def _positions(x, axis):
    return _b().emit("iota", shape=x.shape, dimension=axis, dtype=dt.INT64)


def _flat_axis(a, axis, fname):
    """(tracer, axis) with axis None meaning the flattened array."""
    if axis is None:
        return ravel(a), 0
    return a, _axis(axis, a.ndim, fname)


@_implements(_np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """A sorted copy along axis (None: flattened); stable, NaNs last."""
    if not _is_tracer(a):
        return _np.sort(a, axis=axis, kind=kind, order=order, stable=stable)
    _check_kind("numpy.sort", kind, order, stable)
    a, ax = _flat_axis(a, axis, "numpy.sort")
    return _wrap(_sorted([_var(a)], ax)[0])


@_implements(_np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """The int64 positions that sort a along axis (None: flattened); stable, NaNs last."""
    if not _is_tracer(a):
        return _np.argsort(a, axis=axis, kind=kind, order=order, stable=stable)
    _check_kind("numpy.argsort", kind, order, stable)
    a, ax = _flat_axis(a, axis, "numpy.argsort")
    x = _var(a)
    return _wrap(_sorted([x, _positions(x, ax)], ax)[1])


@_implements(_np.lexsort)
def lexsort(keys, axis=-1):
    """The positions that sort by the last key, then the one before it, and so on (stable)."""
    if not _has_tracer(keys if isinstance(keys, (list, tuple)) else (keys,)):
        return _np.lexsort(keys, axis=axis)
    if _is_tracer(keys):
        if keys.ndim == 0:
            raise TracingError("numpy.lexsort: need sequence of keys with len > 0 in lexsort", user_loc())
        keys = [keys[i] for i in range(keys.shape[0])]
    keys = list(keys)
    if not keys:
        raise TracingError("numpy.lexsort: need sequence of keys with len > 0 in lexsort", user_loc())
    vs = [_var(k) for k in keys]
    if len({v.shape for v in vs}) != 1:
        raise ShapeError("numpy.lexsort: all keys need to be the same shape", user_loc())
    if vs[0].rank == 0:
        raise ShapeError("numpy.lexsort: cannot sort 0-d keys", user_loc())
    ax = _axis(axis, vs[0].rank, "numpy.lexsort")
    vs = vs[::-1]   # the last key is the primary one
    return _wrap(_sorted(vs + [_positions(vs[0], ax)], ax, num_keys=len(vs))[-1])


def _check_kth(fname, kth, n):
    if _has_tracer((kth,)):
        raise TracingError(f"{fname}: kth must be static Python ints", user_loc())
    ks = _np.atleast_1d(_np.asarray(kth))
    if ks.dtype.kind not in "iu":
        if ks.dtype.kind == "b":
            raise DTypeError(f"{fname}: Passing booleans as partition index is not allowed", user_loc())
        raise DTypeError(f"{fname}: Partition index must be integer", user_loc())
    if ks.ndim > 1:
        raise ShapeError(f"{fname}: object too deep for desired array", user_loc())
    for k in ks:
        if not -n <= int(k) < n:
            raise OutOfBoundsError(f"{fname}: kth(={int(k)}) out of bounds ({n})", user_loc())


def _partition(fname, np_f, sorter, a, kth, axis, kind, order):
    if not _is_tracer(a):
        return np_f(a, kth, axis=axis, kind=kind, order=order)
    if order is not None:
        raise UnsupportedError(f"{fname}: argument `order` is not supported by vmapc", user_loc())
    if kind != "introselect":
        raise ShapeError(f"{fname}: Unknown selectkind {kind!r}", user_loc())
    b, ax = _flat_axis(a, axis, fname)
    _check_kth(fname, kth, b.shape[ax])
    return sorter(b, ax)


@_implements(_np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """The array fully sorted along axis: a valid partition for every kth."""
    return _partition("numpy.partition", _np.partition, sort, a, kth, axis, kind, order)


@_implements(_np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """The positions that sort a along axis: a valid argpartition for every kth."""
    return _partition("numpy.argpartition", _np.argpartition, argsort, a, kth, axis, kind, order)


def top_k(a, k, axis=-1):
    """The ``k`` largest elements along ``axis`` (default the last) and their int64
    positions, largest first: ``(values, indices)``, like ``jax.lax.top_k`` (which works on
    the last axis). NaN counts as larger than every number; equal elements come in order
    of position. ``k`` must be a static int between 0 and the size of the axis."""
    if _has_tracer((k,)):
        raise TracingError("top_k: k must be a static Python int (it sets the result's shape)", user_loc())
    if isinstance(k, bool) or not _is_int(k):
        raise DTypeError(f"top_k: k must be an int, got {type(k).__name__}", user_loc())
    k = operator.index(k)
    if not _is_tracer(a):
        x = _np.asarray(a)
        ax = _np.lib.array_utils.normalize_axis_index(axis, x.ndim)
        if not 0 <= k <= x.shape[ax]:
            raise ShapeError(f"top_k: k={k} is not in [0, {x.shape[ax]}] (the size of axis {ax})")
        moved = _np.moveaxis(x, ax, -1)
        idx = _order([moved], descending=True)[..., :k]
        return _np.moveaxis(_np.take_along_axis(moved, idx, -1), -1, ax), _np.moveaxis(idx, -1, ax)
    if a.ndim == 0:
        raise ShapeError("top_k: the array must have at least one dim", user_loc())
    ax = _axis(axis, a.ndim, "top_k")
    if not 0 <= k <= a.shape[ax]:
        raise ShapeError(f"top_k: k={k} is not in [0, {a.shape[ax]}] (the size of axis {ax})", user_loc())
    x = _var(moveaxis(a, ax, -1) if ax != a.ndim - 1 else a)
    values, indices = _b().emit_multi("top_k", [x], {"k": k})
    if ax != a.ndim - 1:
        return moveaxis(_wrap(values), -1, ax), moveaxis(_wrap(indices), -1, ax)
    return _wrap(values), _wrap(indices)
