"""Indexing: the gathers ``take``, ``take_along_axis`` and ``dynamic_slice``, and the writes
``update_slice`` (the inverse of ``dynamic_slice``) and ``scatter`` (the inverse of ``take``)."""

from __future__ import annotations


from ..errors import DTypeError, IRError, ShapeError
from ..shapes import Sym, prod
from .core import _T, _check_arity, _check_kind, _fmt_shape, define

# --- indexing ----------------------------------------------------------------------------------

def _take_infer(ts, axis, batch_dims):
    _check_arity("take", ts, 2)
    x, idx = ts
    _check_kind("take", idx, "int", "index")
    if not 0 <= batch_dims <= axis < x.rank or batch_dims > idx.rank:
        raise ShapeError(f"take: axis {axis} / batch_dims {batch_dims} do not fit operands "
                         f"{x} and {idx}")
    if x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise ShapeError(f"take: leading batch dims differ: {x} and {idx}")
    if x.shape[axis] == 0 and prod(idx.shape) != 0:
        raise ShapeError("cannot take from an empty axis")
    return [_T(x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis + 1:], x.dtype)]


def _take_along_axis_infer(ts, axis):
    _check_arity("take_along_axis", ts, 2)
    x, idx = ts
    _check_kind("take_along_axis", idx, "int", "index")
    if x.rank != idx.rank or not 0 <= axis < x.rank:
        raise ShapeError(f"take_along_axis: `indices` and `arr` must have the same number of "
                         f"dimensions, got {x} and {idx} (axis {axis})")
    out = []
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if i == axis:
            out.append(b)
        elif a == b or b == 1:
            out.append(a)
        elif a == 1:
            out.append(b)
        else:
            raise ShapeError(f"take_along_axis: shapes {_fmt_shape(x.shape)} and "
                             f"{_fmt_shape(idx.shape)} do not broadcast outside axis {axis}")
    if x.shape[axis] == 0 and prod(idx.shape) != 0:
        raise ShapeError("cannot take from an empty axis")
    return [_T(out, x.dtype)]


def _dynamic_slice_infer(ts, sizes):
    if not ts:
        raise IRError("dynamic_slice needs an operand")
    x, starts = ts[0], ts[1:]
    if len(starts) != x.rank or len(sizes) != x.rank:
        raise ShapeError(f"dynamic_slice: need {x.rank} start indices and sizes, got {len(starts)} and {len(sizes)}")
    for s in starts:
        if s.rank != 0:
            raise ShapeError(f"dynamic_slice: start indices must be 0-d, got {s}")
        _check_kind("dynamic_slice", s, "int", "start index")
    for d, n in zip(x.shape, sizes):
        if isinstance(d, Sym):
            if n != d:
                raise ShapeError("dynamic_slice: a dynamic dim can only be taken whole")
        elif not 0 <= n <= d:
            raise ShapeError(f"dynamic_slice: slice size {n} does not fit a dim of size {d}")
    return [_T(sizes, x.dtype)]


def _update_slice_infer(ts):
    if len(ts) < 2:
        raise IRError("update_slice needs an operand and an update")
    x, upd, starts = ts[0], ts[1], ts[2:]
    if upd.dtype != x.dtype:
        raise DTypeError(f"update_slice: the update has dtype {upd.dtype}, the operand {x.dtype}")
    if upd.rank != x.rank or len(starts) != x.rank:
        raise ShapeError(f"update_slice: need an update of rank {x.rank} and {x.rank} start indices, got "
                         f"{upd} and {len(starts)}")
    for s in starts:
        if s.rank != 0:
            raise ShapeError(f"update_slice: start indices must be 0-d, got {s}")
        _check_kind("update_slice", s, "int", "start index")
    for d, n in zip(x.shape, upd.shape):
        if isinstance(d, Sym) or isinstance(n, Sym):
            if n != d:
                raise ShapeError("update_slice: a dynamic dim can only be written whole")
        elif not 0 <= n <= d:
            raise ShapeError(f"update_slice: an update of shape {_fmt_shape(upd.shape)} does not fit "
                             f"in an operand of shape {_fmt_shape(x.shape)}")
    return [x]


SCATTER_MODES = ("set", "add", "multiply", "min", "max")


def _scatter_infer(ts, axis, batch_dims, mode):
    _check_arity("scatter", ts, 3)
    x, idx, upd = ts
    _check_kind("scatter", idx, "int", "index")
    if mode not in SCATTER_MODES:
        raise IRError(f"scatter: mode must be one of {', '.join(SCATTER_MODES)}, got {mode!r}")
    if not isinstance(axis, int) or not isinstance(batch_dims, int) or not 0 <= batch_dims <= axis < x.rank \
            or batch_dims > idx.rank:
        raise ShapeError(f"scatter: axis {axis} / batch_dims {batch_dims} do not fit operands {x} and {idx}")
    if x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise ShapeError(f"scatter: leading batch dims differ: {x} and {idx}")
    if upd.dtype != x.dtype:
        raise DTypeError(f"scatter: the updates have dtype {upd.dtype}, the operand {x.dtype}")
    if mode in ("min", "max"):
        _check_kind(f"scatter[{mode}]", x, "any")
    want = x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis + 1:]
    if upd.shape != tuple(want):
        raise ShapeError(f"scatter: updates of shape {_fmt_shape(upd.shape)} do not fit: operand "
                         f"{x} and indices {idx} at axis {axis} need {_fmt_shape(want)}")
    if x.shape[axis] == 0 and prod(idx.shape) != 0:
        raise ShapeError("cannot scatter into an empty axis")
    return [x]


define("take", "indexing", ("axis", "batch_dims"), _take_infer,
       "take[axis, batch_dims](x, idx): x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis+1:]; "
       "the first batch_dims dims of x and idx are shared. Negative indices count from the end; "
       "out-of-range indices are clamped.")
define("take_along_axis", "indexing", ("axis",), _take_along_axis_infer,
       "take_along_axis[axis](x, idx): np.take_along_axis; other dims broadcast; indices clamp.")
define("dynamic_slice", "indexing", ("sizes",), _dynamic_slice_infer,
       "dynamic_slice[sizes](x, *starts): a window of static size at traced offsets, clamped so "
       "the window stays inside x (as in lax.dynamic_slice).")
define("update_slice", "indexing", (), _update_slice_infer,
       "update_slice(x, upd, *starts): x with the window at `starts` replaced by upd (as "
       "lax.dynamic_update_slice): starts are clamped so the window stays inside x.")
define("scatter", "indexing", ("axis", "batch_dims", "mode"), _scatter_infer,
       "scatter[axis, batch_dims, mode](x, idx, upd): the inverse of take. upd has take's result "
       "shape x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis+1:]; each of its elements is "
       "combined into x at the clamped index along `axis` (negative counts from the end). mode says "
       "how an update combines with x and with other updates to the same element: set (the last "
       "update, in the row-major order of the indices, wins), add, multiply, min, max (NaN "
       "propagates); on bool, add and max are `or`, multiply and min `and`.")
