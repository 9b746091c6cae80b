"""Indexing: NumPy's basic and integer-array indexing (``x[...]``), ``take``,
``take_along_axis`` and ``dynamic_slice``."""

from __future__ import annotations

import builtins

import numpy as _np

from .. import dtypes as dt
from ..errors import OutOfBoundsError, ShapeError, TracingError, UnsupportedError
from ..shapes import broadcast_shapes
from ..tracing import Tracer, user_loc

from ._core import _axis, _b, _c, _e, _has_tracer, _implements, _is_tracer, _reject, _static_ints, _var, _wrap
from .shape import ravel

# --- indexing ------------------------------------------------------------------------------------

def _index_var(i, n=None, axis=None):
    """An integer index (tracer or array-like) as a var. A static index is checked against
    the axis size n, when given, as NumPy checks it; a traced one is clamped later."""
    if isinstance(i, Tracer):
        if i.dtype == dt.BOOL:
            raise UnsupportedError("indexing with a boolean mask gives a shape that depends on the "
                                   "data, which cannot be compiled ahead of time; use "
                                   "vmapc.numpy.where(mask, x, 0) instead", user_loc())
        if not dt.is_int(i.dtype):
            raise TracingError(f"arrays used as indices must be of integer type, got {i.dtype}", user_loc())
        return _var(i)
    a = _np.asarray(i)
    if a.dtype == bool:
        raise UnsupportedError("indexing a traced array with a boolean mask gives a shape that depends "
                               "on the data; use vmapc.numpy.where(mask, x, 0) instead", user_loc())
    if a.size == 0:
        a = a.astype(_np.int64)
    if not _np.issubdtype(a.dtype, _np.integer):
        raise TracingError(f"arrays used as indices must be of integer type, got {a.dtype}", user_loc())
    if n is not None:
        bad = a[(a < -n) | (a >= n)]
        if bad.size:
            raise OutOfBoundsError(f"index {bad.flat[0]} is out of bounds for axis {axis} with size {n}",
                                   user_loc())
    return _b().constant(a.astype(_np.int64))


def _wrap_and_clamp(i, n):
    """Indices counted from the end when negative, then clamped into [0, n) (int64)."""
    i = _b().convert(i, dt.INT64)
    i = _e("select", _e("less", i, _c(i, 0)), _e("add", i, _c(i, n)), i)
    return _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))


def _getitem(x, key):
    """NumPy indexing: basic (ints, slices with steps, None, ...) and integer arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    bld = _b()
    v = _var(x)
    # expand Ellipsis
    n_ell = builtins.sum(1 for k in key if k is Ellipsis)
    if n_ell > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')", user_loc())
    consumed = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > v.rank:
        raise ShapeError(f"too many indices for array: array is {v.rank}-dimensional, but {consumed} "
                         "were indexed", user_loc())
    full = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (v.rank - consumed))
        else:
            full.append(k)
    if n_ell == 0:
        full.extend([slice(None)] * (v.rank - consumed))

    def is_adv(k):
        return isinstance(k, (Tracer, list, _np.ndarray)) and not (isinstance(k, _np.ndarray) and k.ndim == 0
                                                                  and k.dtype != bool)

    has_array = builtins.any(is_adv(k) for k in full)
    # pass 1: slices, static ints (as width-1 slices), newaxis -> one slice, rev, reshape
    start, limit, step, rev_axes = [], [], [], []
    out_shape = []           # shape after this pass, before advanced indices
    adv = []                 # (position in out_shape, index object)
    adv_key_pos = []         # position in the index tuple, for NumPy's adjacency rule
    dim = 0
    for pos, k in enumerate(full):
        if k is None:
            out_shape.append(1)
            continue
        n = v.shape[dim]
        if isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if isinstance(part, Tracer):
                    raise TracingError(
                        "slice bounds must be static Python ints; for a window at a traced offset use "
                        "vmapc.numpy.dynamic_slice(x, start_indices, slice_sizes)", user_loc())
            if k.step == 0:
                raise ShapeError("slice step cannot be zero", user_loc())
            s0, s1, st = k.indices(n)
            count = len(range(s0, s1, st))
            if st > 0:
                lo, hi, stp = s0, s0 + builtins.max(count - 1, 0) * st + (1 if count else 0), st
            else:
                rev_axes.append(dim)
                r0 = n - 1 - s0
                lo, hi, stp = r0, r0 + builtins.max(count - 1, 0) * (-st) + (1 if count else 0), -st
            start.append(lo), limit.append(hi), step.append(stp)
            out_shape.append(count)
        elif is_adv(k) or (has_array and isinstance(k, (int, _np.integer)) and not isinstance(k, bool)) \
                or isinstance(k, Tracer):
            start.append(0), limit.append(n), step.append(1)
            adv.append((len(out_shape), k))
            adv_key_pos.append(pos)
            out_shape.append(n)
        elif isinstance(k, (int, _np.integer)) and not isinstance(k, bool):
            i = int(k)
            if not -n <= i < n:
                raise OutOfBoundsError(f"index {i} is out of bounds for axis {dim} with size {n}", user_loc())
            i %= n
            start.append(i), limit.append(i + 1), step.append(1)
            out_shape.append(None)   # dropped below
        elif isinstance(k, _np.ndarray):  # 0-d integer array: a static int
            return _getitem(x, tuple(int(k) if kk is k else kk for kk in full))
        else:
            raise TracingError(f"invalid index {k!r} of type {type(k).__name__}", user_loc())
        dim += 1
    if rev_axes:
        v = bld.emit("rev", v, axes=tuple(rev_axes))
    v = bld.emit("slice", v, start=tuple(start), limit=tuple(limit), step=tuple(step)) \
        if (tuple(start), tuple(limit), tuple(step)) != ((0,) * v.rank, v.shape, (1,) * v.rank) else v
    # drop static-int dims, insert newaxis dims
    kept = [d for d in out_shape if d is not None]
    positions = []
    p = 0
    for d in out_shape:
        positions.append(None if d is None else p)
        if d is not None:
            p += 1
    v = bld.reshape(v, tuple(kept))
    if not adv:
        return _wrap(v)
    adv = [(positions[pos], k) for pos, k in adv]
    return _wrap(_advanced_index(v, adv, adv_key_pos))


def _advanced_index(v, adv, key_pos):
    """Integer-array indices at dims adv[i][0]: broadcast them, merge the indexed dims into
    one and take along it (NumPy's placement rule for non-adjacent indices included)."""
    bld = _b()
    dims = [d for d, _ in adv]
    idx = [_index_var(k, v.shape[d], d) for d, k in adv]
    if len(idx) == 1:
        return bld.emit("take", v, idx[0], axis=dims[0], batch_dims=0)
    try:
        ishape = broadcast_shapes(*[i.shape for i in idx])
    except ValueError as err:
        raise ShapeError(f"shape mismatch: indexing arrays could not be broadcast together: {err}",
                         user_loc()) from None
    # NumPy puts the index dims where the indices are if they are adjacent, else first
    adjacent = key_pos == list(range(key_pos[0], key_pos[0] + len(key_pos)))
    # linearize the (normalized, broadcast) indices into the merged indexed dims
    lin = None
    for i, d in zip(idx, dims):
        n = v.shape[d]
        i = _wrap_and_clamp(i, n)
        i = bld.broadcast_in_dim(bld.reshape(i, (1,) * (len(ishape) - i.rank) + i.shape), ishape,
                                 tuple(range(len(ishape))))
        lin = i if lin is None else _e("add", _e("multiply", lin, _c(lin, n)), i)
    others = [k for k in range(v.rank) if k not in dims]
    where_ = dims[0] if adjacent else 0
    v = bld.transpose(v, others[:where_] + dims + others[where_:])
    merged = int(_np.prod([v.shape[where_ + j] for j in range(len(dims))], dtype=_np.int64))
    v = bld.reshape(v, v.shape[:where_] + (merged,) + v.shape[where_ + len(dims):])
    return bld.emit("take", v, lin, axis=where_, batch_dims=0)


@_implements(_np.take)
def take(a, indices, axis=None, out=None, mode=None):
    """Take elements along an axis. Under ``mode`` None/'raise' static indices out of range
    raise as in NumPy, and traced ones are clamped (compiled code cannot raise); 'clip'
    clamps (negative indices to 0), 'wrap' wraps."""
    _reject("numpy.take", out=out)
    if not _has_tracer((a, indices)):
        return _np.take(a, indices, axis=axis, mode=mode or "raise")
    if mode not in (None, "raise", "clip", "wrap"):
        raise UnsupportedError(f"numpy.take: mode={mode!r} is not supported", user_loc())
    if not _is_tracer(a):
        a = _wrap(_var(a))
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "numpy.take")
    n = a.shape[ax]
    i = _index_var(indices, n if mode in (None, "raise") else None, ax)
    if mode == "clip":
        i = _b().convert(i, dt.INT64)
        i = _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))
    elif mode == "wrap":
        i = _b().convert(i, dt.INT64)
        i = _e("remainder", i, _c(i, builtins.max(n, 1)))
    return _wrap(_b().emit("take", _var(a), i, axis=ax, batch_dims=0))


@_implements(_np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """NumPy's take_along_axis; static indices out of range raise, traced ones are clamped."""
    if not _has_tracer((arr, indices)):
        return _np.take_along_axis(arr, indices, axis)
    if not _is_tracer(arr):
        arr = _wrap(_var(arr))
    if axis is None:
        arr, axis = ravel(arr), 0
    ax = _axis(axis, arr.ndim, "numpy.take_along_axis")
    i = _index_var(indices, arr.shape[ax], ax)
    if i.rank != arr.ndim:
        raise ShapeError("`indices` and `arr` must have the same number of dimensions", user_loc())
    return _wrap(_b().emit("take_along_axis", _var(arr), i, axis=ax))


def dynamic_slice(operand, start_indices, slice_sizes):
    """A window of static size ``slice_sizes`` at (possibly traced) ``start_indices``, like
    ``lax.dynamic_slice``: starts are clamped so that the window stays inside the array."""
    if not _has_tracer((operand, *start_indices)):
        a = _np.asarray(operand)
        starts = [builtins.min(builtins.max(int(s), 0), d - n) for s, n, d in zip(start_indices, slice_sizes, a.shape)]
        return a[tuple(slice(s, s + n) for s, n in zip(starts, slice_sizes))]
    if not _is_tracer(operand):
        operand = _wrap(_var(operand))
    if len(start_indices) != operand.ndim or len(slice_sizes) != operand.ndim:
        raise ShapeError(f"dynamic_slice: need {operand.ndim} start indices and slice sizes, got "
                         f"{len(start_indices)} and {len(slice_sizes)}", user_loc())
    starts = []
    for s in start_indices:
        sv = _var(s) if _is_tracer(s) else _b().constant(_np.int64(int(s)))
        if sv.rank != 0:
            raise ShapeError("dynamic_slice: each start index must be a scalar", user_loc())
        if not dt.is_int(sv.dtype):
            raise TracingError(f"dynamic_slice: start indices must be integers, got {sv.dtype}", user_loc())
        starts.append(sv)
    return _wrap(_b().emit("dynamic_slice", _var(operand), *starts,
                           sizes=_static_ints(slice_sizes, "slice_sizes")))


@_implements(_np.lib.stride_tricks.sliding_window_view)
def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """Every window of ``window_shape`` along ``axis`` (default: every axis), the window dims
    last, as NumPy's view; here a gather (``take``) with static positions per windowed
    axis. Traced arrays are never writeable."""
    if not _is_tracer(x):
        return _np.lib.stride_tricks.sliding_window_view(x, window_shape, axis, subok=subok, writeable=writeable)
    if writeable:
        raise UnsupportedError("sliding_window_view: writeable=True is not supported (traced arrays are "
                               "immutable)", user_loc())
    window = tuple(window_shape) if _np.iterable(window_shape) else (window_shape,)
    window = _static_ints(window, "sliding_window_view window_shape")
    if builtins.any(w < 0 for w in window):
        raise ShapeError("sliding_window_view: `window_shape` cannot contain negative values", user_loc())
    if axis is None:
        if len(window) != x.ndim:
            raise ShapeError(f"sliding_window_view: Since axis is `None`, must provide window_shape for all "
                             f"dimensions of `x`; got {len(window)} window_shape elements and `x.ndim` is "
                             f"{x.ndim}.", user_loc())
        axes = tuple(range(x.ndim))
    else:
        axes = tuple(axis) if _np.iterable(axis) else (axis,)
        if len(window) != len(axes):
            raise ShapeError(f"sliding_window_view: Must provide matching length window_shape and axis; got "
                             f"{len(window)} window_shape elements and {len(axes)} axes elements.", user_loc())
        axes = tuple(_axis(a, x.ndim, "sliding_window_view") for a in axes)
    v = _var(x)
    bld = _b()
    for ax, w in zip(axes, window):
        n = v.shape[ax]
        if w > n:
            raise ShapeError("sliding_window_view: window shape cannot be larger than input array shape",
                             user_loc())
        starts = n - w + 1
        idx = (_np.arange(starts)[:, None] + _np.arange(w)[None, :]).astype(_np.int64)
        v = bld.emit("take", v, bld.constant(idx), axis=ax, batch_dims=0)   # ..., starts, w, ...
        v = bld.transpose(v, [d for d in range(v.rank) if d != ax + 1] + [ax + 1])
    return _wrap(v)
