"""Reverse-mode rules of the gathers.

A gather's transpose is a scatter-add: each element of the cotangent is added to
the position of the operand it was read from, and positions read twice get the sum.
The rules express it with ops that exist for every target:

* ``take`` and ``take_along_axis``: a *one-hot* contraction. The (clamped) indices
  become a 0/1 matrix over the operand's axis, and the cotangent is contracted
  with it (``take``: one ``dot_general``, sharing the gather's batch dims) or
  multiplied and summed (``take_along_axis``). Its cost is the cotangent's size
  times the axis length, fine for the axes models gather from in one example;
* ``dynamic_slice``: the cotangent padded by ``d - n`` zeros on both sides of each
  dim, then a window of the operand's size read at ``(d - n) - start``: the
  cotangent lands at ``start`` (clamped as the forward op clamps it), zeros
  elsewhere.

The writes are linear in (operand, updates):

* ``update_slice``: the operand gets the cotangent with the written window zeroed
  (``update_slice`` of zeros), the update gets the window (``dynamic_slice``, which
  clamps its starts as ``update_slice`` does);
* ``scatter[mode=add]``: the operand gets the cotangent, the updates the cotangent
  gathered at their indices (``take``);
* ``scatter[mode=set]``: the operand gets the cotangent zeroed where it was
  overwritten; each update gets the cotangent at its index if it is the update that
  was written there (with duplicate indices, the last one: found by scattering each
  update's position and reading it back), else 0.

Indices are integers and get no cotangent.
"""

from __future__ import annotations

import numpy as np

from ... import dtypes as dt
from ..forward.indexing import refuse_scatter_mode
from ..helpers import ew, unbroadcast, zeros, zeros_like


def clamped_indices(b, idx, n):
    """Indices as the gathers read them: int64, negative ones counted from the end
    once, then clamped into [0, n - 1]."""
    i = b.convert(idx, dt.INT64)

    def c(v):
        return b.reshape(b.constant(np.asarray(v, np.int64)), (1,) * i.rank)
    i = ew(b, "select", ew(b, "less", i, c(0)), ew(b, "add", i, c(n)), i)
    return ew(b, "minimum", ew(b, "maximum", i, c(0)), c(max(n - 1, 0)))


def one_hot(b, idx, n, at, dtype):
    """1 where ``k == idx`` along a new axis of size n inserted at position `at`."""
    i = b.reshape(idx, idx.shape[:at] + (1,) + idx.shape[at:])
    k = b.emit("iota", shape=(1,) * at + (n,) + (1,) * (idx.rank - at), dimension=at, dtype=dt.INT64)
    return b.convert(ew(b, "equal", i, k), dtype)


def take_rule(b, primals, outs, cts, axis, batch_dims):
    (x, idx), (ct,) = primals, cts
    n, bd = x.shape[axis], batch_dims
    if n == 0:
        return [zeros(b, x.shape, x.dtype), None]
    ni = idx.rank - bd
    hot = one_hot(b, clamped_indices(b, idx, n), n, idx.rank, x.dtype)   # idx.shape + (n,)
    r = b.emit("dot_general", hot, ct,
               contract=(tuple(range(bd, bd + ni)), tuple(range(axis, axis + ni))),
               batch=(tuple(range(bd)), tuple(range(bd))))
    # r: batch dims, n, then x's other dims (before axis, after axis); put n back at axis
    perm = [i if i < bd else bd if i == axis else i + 1 if i < axis else i for i in range(x.rank)]
    return [b.transpose(r, perm), None]


def take_along_axis_rule(b, primals, outs, cts, axis):
    (x, idx), (out,), (ct,) = primals, outs, cts
    n = x.shape[axis]
    if n == 0:
        return [zeros(b, x.shape, x.dtype), None]
    i = b.broadcast_in_dim(clamped_indices(b, idx, n), out.shape, tuple(range(out.rank)))
    hot = one_hot(b, i, n, axis + 1, x.dtype)           # out.shape with n inserted after axis
    spread = ew(b, "multiply", b.reshape(ct, ct.shape[:axis + 1] + (1,) + ct.shape[axis + 1:]), hot)
    ct_x = b.emit("reduce_sum", spread, axes=(axis,))   # out.shape with axis of size n
    return [unbroadcast(b, ct_x, x.shape), None]


def dynamic_slice_rule(b, primals, outs, cts, sizes):
    x, starts, (ct,) = primals[0], primals[1:], cts
    margins = tuple(d - n for d, n in zip(x.shape, sizes))
    if not any(margins):
        return [ct] + [None] * len(starts)
    padded = b.emit("pad", ct, zeros(b, (), ct.dtype), lo=margins, hi=margins)
    offsets = []
    for s, m in zip(starts, margins):
        s = b.convert(s, dt.INT64)
        lo, hi = b.constant(np.asarray(0, np.int64)), b.constant(np.asarray(m, np.int64))
        s = ew(b, "minimum", ew(b, "maximum", s, lo), hi)
        offsets.append(ew(b, "subtract", hi, s))
    return [b.emit("dynamic_slice", padded, *offsets, sizes=tuple(x.shape))] + [None] * len(starts)


def update_slice_rule(b, primals, outs, cts):
    upd, starts, (ct,) = primals[1], primals[2:], cts
    ct_x = b.emit("update_slice", ct, zeros_like(b, upd), *starts)
    ct_upd = b.emit("dynamic_slice", ct, *starts, sizes=tuple(upd.shape))
    return [ct_x, ct_upd] + [None] * len(starts)


def _winners(b, x, idx, upd, axis, batch_dims):
    """True where an update is the one a ``set`` scatter wrote (the last of duplicates)."""
    ishape = tuple(idx.shape[batch_dims:])
    ni = len(ishape)
    if ni == 0:
        return None                        # one update per element: every update is written
    m = int(np.prod(ishape))
    ids = b.reshape(b.emit("iota", shape=(m,), dimension=0, dtype=dt.INT64), ishape)
    ids = b.broadcast_in_dim(ids, tuple(upd.shape), tuple(range(axis, axis + ni)))
    attrs = dict(axis=axis, batch_dims=batch_dims)
    written = b.emit("scatter", b.full(tuple(x.shape), -1, np.int64), idx, ids, mode="set", **attrs)
    return ew(b, "equal", b.emit("take", written, idx, **attrs), ids)


def scatter_rule(b, primals, outs, cts, axis, batch_dims, mode):
    refuse_scatter_mode(mode)
    (x, idx, upd), (ct,) = primals, cts
    attrs = dict(axis=axis, batch_dims=batch_dims)
    ct_upd = b.emit("take", ct, idx, **attrs)
    if mode == "add":
        return [ct, None, ct_upd]
    ct_x = b.emit("scatter", ct, idx, zeros_like(b, upd), mode="set", **attrs)
    win = _winners(b, x, idx, upd, axis, batch_dims)
    if win is not None:
        ct_upd = ew(b, "select", win, ct_upd, zeros_like(b, upd))
    return [ct_x, None, ct_upd]


RULES = {"update_slice": update_slice_rule, "scatter": scatter_rule, "take": take_rule,
         "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule}
