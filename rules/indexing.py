"""Batching indexing ops: batched indices become a gather over the batch.

``take[axis, batch_dims]`` is a gather whose first ``batch_dims`` dims are shared
by the array and the indices (TensorFlow's ``gather(batch_dims=)``). That makes it
closed under batching:

* array batched, indices not: the batch axis is just another array dim;
* indices batched, array not: the batch axis is just another index dim, and
  lands where the index dims go (at ``axis`` in the result);
* both batched: the batch axis becomes one more shared leading dim.

``take_along_axis`` broadcasts its non-axis dims, so an unbatched operand only
needs a size-1 axis. ``dynamic_slice`` with an unbatched start is a
``dynamic_slice`` with one more full-size dim; with per-example starts it becomes
one ``take`` per sliced dim, gathering the window ``clamp(start) + iota(size)``.
"""

from __future__ import annotations

import numpy as np

from vmapc import dtypes as dt

from .helpers import insert_unit_dim, logical_to_physical, move_bdim, move_bdim_to_front


def take_rule(b, args, bdims, axis, batch_dims):
    (x, idx), (xd, id_) = args, bdims
    if xd is not None and id_ is not None:
        x, idx = move_bdim(b, x, xd, 0), move_bdim(b, idx, id_, 0)
        return [b.emit("take", x, idx, axis=axis + 1, batch_dims=batch_dims + 1)], [0]
    if xd is not None:
        if batch_dims:
            x, xd = move_bdim(b, x, xd, batch_dims), batch_dims
        ax = logical_to_physical(axis, xd)
        out_bdim = xd if xd < ax else xd - 1 + (idx.rank - batch_dims)
        return [b.emit("take", x, idx, axis=ax, batch_dims=batch_dims)], [out_bdim]
    idx = move_bdim(b, idx, id_, batch_dims)
    return [b.emit("take", x, idx, axis=axis, batch_dims=batch_dims)], [axis]


def take_along_axis_rule(b, args, bdims, axis):
    ops = [move_bdim(b, v, d, 0) if d is not None else insert_unit_dim(b, v, 0) for v, d in zip(args, bdims)]
    return [b.emit("take_along_axis", *ops, axis=axis + 1)], [0]


def _e(b, op, *xs):
    return b.emit(op, *xs)


def dynamic_slice_rule(b, args, bdims, sizes):
    x, starts = args[0], args[1:]
    xd, sds = bdims[0], bdims[1:]
    if all(d is None for d in sds):
        zero = b.constant(np.zeros((), starts[0].dtype if starts else np.int64))
        sizes = tuple(sizes[:xd]) + (x.shape[xd],) + tuple(sizes[xd:])
        starts = list(starts[:xd]) + [zero] + list(starts[xd:])
        return [b.emit("dynamic_slice", x, *starts, sizes=sizes)], [xd]
    # per-example starts: gather the window along each sliced dim
    y = move_bdim_to_front(b, x, xd)
    y_batched = xd is not None
    for i, (s, sd, n) in enumerate(zip(starts, sds, sizes)):
        dim = y.shape[i + 1] if y_batched else y.shape[i]
        if n == dim:
            continue  # the whole dim: the start is clamped to 0
        s = move_bdim_to_front(b, s, sd)
        if dt.is_unsigned(s.dtype):   # clip in the unsigned dtype: 2**63 and above would wrap negative in int64
            top = b.constant(np.asarray(dim - n, s.dtype))
            s = _e(b, "minimum", s, b.reshape(top, (1,) * s.rank))
        s = b.convert(s, dt.INT64)
        lo = b.constant(np.zeros((), np.int64))
        hi = b.constant(np.asarray(dim - n, np.int64))
        if s.rank:
            lo, hi = b.reshape(lo, (1,)), b.reshape(hi, (1,))
        s = _e(b, "minimum", _e(b, "maximum", s, lo), hi)
        window = b.emit("iota", shape=(n,), dimension=0, dtype=dt.INT64)
        if s.rank:   # (B,) starts -> (B, n) indices
            idx = _e(b, "add", b.reshape(s, (s.shape[0], 1)), b.reshape(window, (1, n)))
        else:
            idx = _e(b, "add", b.reshape(s, (1,)), window)
        if y_batched:
            y = b.emit("take", y, idx, axis=i + 1, batch_dims=1 if idx.rank == 2 else 0)
        else:
            y = b.emit("take", y, idx, axis=i, batch_dims=0)
            if idx.rank == 2:
                y, y_batched = move_bdim(b, y, i, 0), True
    if not y_batched:  # only full-size dims had batched starts: nothing depends on the batch
        return [y], [None]
    return [y], [0]


RULES = {"take": take_rule, "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule}
