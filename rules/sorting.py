"""Batching the sorting ops: the batch axis is one more axis the sort runs alongside.

``sort`` needs every operand at one shape, so an unbatched operand (the positions an
``argsort`` carries along, say) is broadcast to the batch; the sorted axis is renumbered
past the batch axis. ``top_k`` works on the last axis, so a batch axis there moves to
the front first.
"""

from __future__ import annotations

from .helpers import axis_size_of, logical_to_physical, materialize, move_bdim


def sort_rule(b, args, bdims, axis, descending, num_keys):
    batched = {d for d in bdims if d is not None}
    target = batched.pop() if len(batched) == 1 else 0
    size = axis_size_of(args, bdims)
    ops = [materialize(b, x, size, target) if d is None else move_bdim(b, x, d, target)
           for x, d in zip(args, bdims)]
    outs = b.emit_multi("sort", ops, {"axis": logical_to_physical(axis, target), "descending": descending,
                                      "num_keys": num_keys})
    return outs, [target] * len(outs)


def top_k_rule(b, args, bdims, k):
    (x,), (d,) = args, bdims
    if d == x.rank - 1:
        x, d = move_bdim(b, x, d, 0), 0
    return b.emit_multi("top_k", [x], {"k": k}), [d, d]


RULES = {"sort": sort_rule, "top_k": top_k_rule}
