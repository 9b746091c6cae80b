"""Batching rules of the collectives (``psum``, ``pmax``, ``pmin``, ``all_gather``,
``axis_index``; see :mod:`vmapc.collective`).

A collective names a batch axis. When the vmap pass in progress batches that axis
(:func:`vmapc.collective.current_axis`), the rule *is* the collective: the
operand's batch axis is reduced (``reduce_sum``, ``reduce_max``, ``reduce_min``)
or moved into place (``all_gather``), giving a result that is the same for every
example, i.e. unbatched; ``axis_index`` becomes an ``iota`` batched at 0. The pass
calls these rules even when the operand is not batched (it checks the op's
``axis_name``): a sum over the batch of a value shared by every example is that
value times the batch size.

Under a vmap over another axis (or an unnamed one), the collective stays in
place for the vmap that binds its name: ``psum``/``pmax``/``pmin`` act on each
element, so the batched operand goes through with its batch dim where it is;
``all_gather`` moves it to the front and gathers one axis further in.
"""

from __future__ import annotations

from vmapc import dtypes as dt
from vmapc.collective import current_axis

from .helpers import materialize, move_bdim, move_bdim_to_front

_REDUCE = {"psum": "reduce_sum", "pmax": "reduce_max", "pmin": "reduce_min"}


def reduce_rule(b, args, bdims, op, axis_name):
    (x,), (d,) = args, bdims
    name, size = current_axis()
    if axis_name != name:
        return [b.emit(op, x, axis_name=axis_name)], [d]
    if d is None:
        if op != "psum":
            return [x], [None]           # the max (min) of equal values
        x, d = materialize(b, x, size, 0), 0
    return [b.emit(_REDUCE[op], x, axes=(d,))], [None]


def all_gather_rule(b, args, bdims, axis_name, axis_size, axis):
    (x,), (d,) = args, bdims
    name, size = current_axis()
    if axis_name != name:
        if d is None:
            return [b.emit("all_gather", x, axis_name=axis_name, axis_size=axis_size, axis=axis)], [None]
        x = move_bdim_to_front(b, x, d)
        return [b.emit("all_gather", x, axis_name=axis_name, axis_size=axis_size, axis=axis + 1)], [0]
    if d is None:
        return [materialize(b, x, size, axis)], [None]
    return [move_bdim(b, x, d, axis)], [None]


def axis_index_rule(b, args, bdims, axis_name):
    name, size = current_axis()
    if axis_name != name:
        return [b.emit("axis_index", axis_name=axis_name)], [None]
    return [b.emit("iota", shape=(size,), dimension=0, dtype=dt.INT32)], [0]


RULES = {"psum": lambda b, args, bdims, axis_name: reduce_rule(b, args, bdims, "psum", axis_name),
         "pmax": lambda b, args, bdims, axis_name: reduce_rule(b, args, bdims, "pmax", axis_name),
         "pmin": lambda b, args, bdims, axis_name: reduce_rule(b, args, bdims, "pmin", axis_name),
         "all_gather": all_gather_rule, "axis_index": axis_index_rule}
