"""Batching shape ops: rewrite the attributes so the batch axis rides along.

* ``transpose``, ``slice``, ``rev``, ``pad``: the batch axis stays where it is and
  the attribute gains an entry for it (identity permutation entry, full slice,
  no reversal, no padding).
* ``reshape`` and ``broadcast_in_dim`` describe the whole shape, so the batch axis
  moves to the front and the attribute gains a leading entry.
* ``concatenate`` needs every operand batched: unbatched operands are broadcast.
* ``pad`` with a batched padding value pads with zeros and then selects the
  per-example value where the padding is, using a mask built once, unbatched.
"""

from __future__ import annotations

import numpy as np

from vmapc import dtypes as dt

from .helpers import axis_size_of, insert_unit_dim, move_bdim, move_bdim_to_front, shift_axes, \
    to_front_or_materialize


def reshape_rule(b, args, bdims, shape):
    (x,), (d,) = args, bdims
    x = move_bdim_to_front(b, x, d)
    return [b.reshape(x, (x.shape[0],) + tuple(shape))], [0]


def transpose_rule(b, args, bdims, perm):
    (x,), (d,) = args, bdims
    logical = [i for i in range(x.rank) if i != d]   # physical position of each logical axis
    phys = [logical[p] for p in perm]
    phys.insert(d, d)
    return [b.transpose(x, phys)], [d]


def broadcast_in_dim_rule(b, args, bdims, shape, dims):
    (x,), (d,) = args, bdims
    x = move_bdim_to_front(b, x, d)
    return [b.broadcast_in_dim(x, (x.shape[0],) + tuple(shape), (0,) + tuple(i + 1 for i in dims))], [0]


def concatenate_rule(b, args, bdims, axis):
    size = axis_size_of(args, bdims)
    xs = [to_front_or_materialize(b, x, d, size) for x, d in zip(args, bdims)]
    return [b.emit("concatenate", *xs, axis=axis + 1)], [0]


def slice_rule(b, args, bdims, start, limit, step):
    (x,), (d,) = args, bdims
    ins = lambda t, v: tuple(t[:d]) + (v,) + tuple(t[d:])  # noqa: E731
    return [b.emit("slice", x, start=ins(start, 0), limit=ins(limit, x.shape[d]), step=ins(step, 1))], [d]


def rev_rule(b, args, bdims, axes):
    (x,), (d,) = args, bdims
    return [b.emit("rev", x, axes=shift_axes(axes, d))], [d]


def pad_rule(b, args, bdims, lo, hi):
    (x, v), (d, vd) = args, bdims
    if vd is None:
        ins = lambda t: tuple(t[:d]) + (0,) + tuple(t[d:])  # noqa: E731
        return [b.emit("pad", x, v, lo=ins(lo), hi=ins(hi))], [d]
    # a per-example padding value: pad with zeros, then choose v where the padding is
    size = v.shape[vd]
    x = to_front_or_materialize(b, x, d, size)
    zero = b.constant(np.zeros((), x.dtype))
    padded = b.emit("pad", x, zero, lo=(0,) + tuple(lo), hi=(0,) + tuple(hi))
    inside = b.full(x.shape[1:], True, dt.BOOL)
    mask = b.emit("pad", inside, b.constant(np.zeros((), np.bool_)), lo=tuple(lo), hi=tuple(hi))
    mask = insert_unit_dim(b, mask, 0)
    vv = b.reshape(move_bdim(b, v, vd, 0), (size,) + (1,) * (padded.rank - 1))
    return [b.emit("select", mask, padded, vv)], [0]


RULES = {
    "reshape": reshape_rule, "transpose": transpose_rule, "broadcast_in_dim": broadcast_in_dim_rule,
    "concatenate": concatenate_rule, "slice": slice_rule, "rev": rev_rule, "pad": pad_rule,
}
