"""Reverse-mode rules of the gathers and the writes.

A gather's transpose is a scatter-add: each element of the cotangent is added to
the position of the operand it was read from, and positions read twice get the sum.

* ``take`` and ``take_along_axis``: a ``scatter`` with mode ``add`` of the cotangent
  into zeros, with the gather's own indices (which the scatter clamps the way the
  gather did). Its cost is the cotangent's size, whatever the length of the gathered
  axis (an embedding table's rows). ``take_along_axis`` broadcasts its operand against
  the indices, so the scattered cotangent is then summed over the broadcast dims;
* ``dynamic_slice``: the cotangent padded by ``d - n`` zeros on both sides of each
  dim, then a window of the operand's size read at ``(d - n) - start``: the
  cotangent lands at ``start`` (clamped as the forward op clamps it), zeros
  elsewhere.

The writes ``update_slice`` and ``scatter[mode=set|add]`` are linear in (operand,
updates):

* ``update_slice``: the operand gets the cotangent with the written window zeroed
  (``update_slice`` of zeros), the update gets the window (``dynamic_slice``, which
  clamps its starts as ``update_slice`` does);
* ``scatter[mode=add]``: the operand gets the cotangent, the updates the cotangent
  gathered at their indices (``take``);
* ``scatter[mode=set]``: the operand gets the cotangent zeroed where it was
  overwritten; each update gets the cotangent at its index if it is the update that
  was written there (with duplicate indices, the last one: found by scattering each
  update's position and reading it back), else 0.

``scatter[mode=multiply|min|max]`` are linear in the tangents once their coefficients
are known (``forward/indexing.py`` computes them from the primal values), so their
reverse rules are the transposes of those forward rules: for ``multiply`` the operand
gets ``ct`` times the product of the updates (``scatter`` multiply of ``ct``) and update
k gets ``(ct * x)`` gathered at its index times the product of the other updates; for
``min``/``max`` the operand gets ``ct * w_x`` and update k ``ct`` gathered at its index
times its share ``w_u`` (ties split evenly).

Indices are integers and get no cotangent.
"""

from __future__ import annotations

import numpy as np

from ... import dtypes as dt
from ..forward.indexing import scatter_extreme_weights, scatter_mul_others
from ..helpers import ew, unbroadcast, zeros, zeros_like
from .reduction import scatter_add_along


def take_rule(b, primals, outs, cts, axis, batch_dims):
    (x, idx), (ct,) = primals, cts
    if x.shape[axis] == 0:
        return [zeros(b, x.shape, x.dtype), None]
    return [b.emit("scatter", zeros(b, x.shape, x.dtype), idx, ct, axis=axis, batch_dims=batch_dims,
                   mode="add"), None]


def take_along_axis_rule(b, primals, outs, cts, axis):
    (x, idx), (out,), (ct,) = primals, outs, cts
    n = x.shape[axis]
    if n == 0:
        return [zeros(b, x.shape, x.dtype), None]
    i = b.broadcast_in_dim(idx, out.shape, tuple(range(out.rank)))
    wide = tuple(n if d == axis else s for d, s in enumerate(out.shape))   # x broadcast to out
    return [unbroadcast(b, scatter_add_along(b, ct, i, axis, wide), x.shape), None]


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
    (x, idx, upd), (out,), (ct,) = primals, outs, cts
    attrs = dict(axis=axis, batch_dims=batch_dims)
    if mode == "multiply":
        ct_x = b.emit("scatter", ct, idx, upd, mode="multiply", **attrs)
        ct_upd = ew(b, "multiply", b.emit("take", ew(b, "multiply", ct, x), idx, **attrs),
                    scatter_mul_others(b, x, idx, upd, **attrs))
        return [ct_x, None, ct_upd]
    if mode in ("min", "max"):
        w_x, w_u = scatter_extreme_weights(b, x, idx, upd, out, **attrs)
        return [ew(b, "multiply", ct, w_x), None, ew(b, "multiply", b.emit("take", ct, idx, **attrs), w_u)]
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
