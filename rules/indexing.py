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

The writes follow JAX's scatter rule. ``scatter[axis, batch_dims]`` is ``take``'s
transpose and batches the same way: with unbatched indices the batch axis becomes one
more dim of the operand and of the updates, just after the shared leading dims; with
batched indices it becomes one more shared leading dim of all three. An operand that is
not batched while its updates or indices are must be broadcast first: every example
writes into its own copy (the copy is the result, so it cannot be avoided).
``update_slice`` with unbatched starts is an ``update_slice`` with one more full-size
dim; with per-example starts it becomes a chain of window ``take`` s and ``scatter`` s,
one per sliced dim, over the same windows ``dynamic_slice`` gathers.
"""

from __future__ import annotations

import numpy as np

from vmapc import dtypes as dt

from .helpers import (axis_size_of, insert_unit_dim, logical_to_physical, materialize, move_bdim,
                      move_bdim_to_front, to_front_or_materialize)


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


def scatter_rule(b, args, bdims, axis, batch_dims, mode):
    (x, idx, upd), (xd, id_, ud) = args, bdims
    size = axis_size_of(args, bdims)
    if id_ is None:   # the batch is one more dim of x and of the updates, after the shared ones
        x = move_bdim(b, x, xd, batch_dims) if xd is not None else materialize(b, x, size, batch_dims)
        upd = move_bdim(b, upd, ud, batch_dims) if ud is not None else materialize(b, upd, size, batch_dims)
        return [b.emit("scatter", x, idx, upd, axis=axis + 1, batch_dims=batch_dims, mode=mode)], [batch_dims]
    x = to_front_or_materialize(b, x, xd, size)
    upd = to_front_or_materialize(b, upd, ud, size)
    idx = move_bdim(b, idx, id_, 0)
    return [b.emit("scatter", x, idx, upd, axis=axis + 1, batch_dims=batch_dims + 1, mode=mode)], [0]


def _window(b, s, sd, n, m):
    """The indices ``clamp(start, 0, n - m) + iota(m)`` of a window of m along a dim of n:
    shape (m,) for an unbatched start, (B, m) for per-example starts (sd not None)."""
    s = b.convert(move_bdim_to_front(b, s, sd), dt.INT64)
    lo = b.constant(np.zeros((), np.int64))
    hi = b.constant(np.asarray(n - m, np.int64))
    if s.rank:
        lo, hi = b.reshape(lo, (1,)), b.reshape(hi, (1,))
    s = _e(b, "minimum", _e(b, "maximum", s, lo), hi)
    window = b.emit("iota", shape=(m,), dimension=0, dtype=dt.INT64)
    if s.rank:
        return _e(b, "add", b.reshape(s, (s.shape[0], 1)), b.reshape(window, (1, m)))
    return _e(b, "add", b.reshape(s, (1,)), window)


def update_slice_rule(b, args, bdims):
    x, upd, starts = args[0], args[1], list(args[2:])
    xd, ud, sds = bdims[0], bdims[1], bdims[2:]
    size = axis_size_of(args, bdims)
    if all(d is None for d in sds):
        if xd is None:        # only the update is batched: each example writes its own copy of x
            x, xd = materialize(b, x, size, ud), ud
        elif ud is None:
            upd = materialize(b, upd, size, xd)
        else:
            upd = move_bdim(b, upd, ud, xd)
        zero = b.constant(np.zeros((), np.int64))
        return [b.emit("update_slice", x, upd, *starts[:xd], zero, *starts[xd:])], [xd]
    # per-example starts: take the nested windows of the sliced dims, then scatter the update
    # back into each level (window indices are distinct, so `set` is exact)
    x = to_front_or_materialize(b, x, xd, size)
    upd = to_front_or_materialize(b, upd, ud, size)
    sliced = [(d, _window(b, s, sd, x.shape[d + 1], upd.shape[d + 1]))
              for d, (s, sd) in enumerate(zip(starts, sds)) if upd.shape[d + 1] != x.shape[d + 1]]
    if not sliced:
        return [upd], [0]
    levels = [x]
    for d, idx in sliced[:-1]:
        levels.append(b.emit("take", levels[-1], idx, axis=d + 1, batch_dims=idx.rank - 1))
    new = upd
    for (d, idx), parent in reversed(list(zip(sliced, levels))):
        new = b.emit("scatter", parent, idx, new, axis=d + 1, batch_dims=idx.rank - 1, mode="set")
    return [new], [0]


RULES = {"take": take_rule, "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule,
         "scatter": scatter_rule, "update_slice": update_slice_rule}
