"""The reduction family rule: sums, products, extrema, any/all, argmax/argmin, and the
scans (``cumulative``).

A reduction over logical axes is the same reduction over the matching physical
axes; the batch axis is simply not among them. Nothing moves: the rule shifts the
axis numbers past the batch dim, and the result's batch dim shifts left by the
number of reduced axes that came before it. A scan keeps its axis, so only the axis
number shifts and the batch dim stays where it was.
"""

from __future__ import annotations

from functools import partial

from vmapc.ops import OPS

from .helpers import shift_axes


def reduce_rule(b, args, bdims, op, axes):
    (x,), (d,) = args, bdims
    phys = shift_axes(axes, d)
    out_bdim = d - sum(1 for a in phys if a < d)
    return [b.emit(op, x, axes=phys)], [out_bdim]


def argreduce_rule(b, args, bdims, op, axis):
    (x,), (d,) = args, bdims
    (phys,) = shift_axes((axis,), d)
    return [b.emit(op, x, axis=phys)], [d - 1 if phys < d else d]


def cumulative_rule(b, args, bdims, combine, axis, reverse):
    (x,), (d,) = args, bdims
    (phys,) = shift_axes((axis,), d)
    return [b.emit("cumulative", x, combine=combine, axis=phys, reverse=reverse)], [d]


RULES = {"cumulative": cumulative_rule}
for _name, _op in OPS.items():
    if _op.family == "reduction" and _name != "cumulative":
        RULES[_name] = partial(argreduce_rule if _name in ("argmax", "argmin") else reduce_rule, op=_name)
