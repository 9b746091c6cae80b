"""Indexing: the gathers ``take``, ``take_along_axis`` and ``dynamic_slice``."""

from __future__ import annotations


from ..errors import IRError, ShapeError
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


define("take", "indexing", ("axis", "batch_dims"), _take_infer,
       "take[axis, batch_dims](x, idx): x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis+1:]; "
       "the first batch_dims dims of x and idx are shared. Negative indices count from the end; "
       "out-of-range indices are clamped.")
define("take_along_axis", "indexing", ("axis",), _take_along_axis_infer,
       "take_along_axis[axis](x, idx): np.take_along_axis; other dims broadcast; indices clamp.")
define("dynamic_slice", "indexing", ("sizes",), _dynamic_slice_infer,
       "dynamic_slice[sizes](x, *starts): a window of static size at traced offsets, clamped so "
       "the window stays inside x (as in lax.dynamic_slice).")
