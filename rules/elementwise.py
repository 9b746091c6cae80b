"""The elementwise family rule: one rule for every unary, binary and ternary op (and for
``threefry2x32``, elementwise with two results).

Elementwise ops in the IR take operands of equal rank, and a size-1 dim broadcasts.
So batching never needs to copy an unbatched operand: it gets a size-1 axis where
the batch axis is, and the op broadcasts it (functorch's "pad ranks" step, and
JAX's ``broadcast_batcher``).

Where the batch axis ends up:
* if every batched operand has it at the same position, it stays there (a unary
  op keeps its input's bdim, so chains of elementwise ops never transpose);
* otherwise every batched operand moves it to the front, and the result has
  bdim 0.
"""

from __future__ import annotations

from functools import partial

from vmapc.ops import OPS

from .helpers import insert_unit_dim, move_bdim


def elementwise_rule(b, args, bdims, op, **attrs):
    batched = {d for d in bdims if d is not None}
    target = batched.pop() if len(batched) == 1 else 0
    operands = []
    for x, d in zip(args, bdims):
        if d is None:
            operands.append(insert_unit_dim(b, x, target))
        else:
            operands.append(move_bdim(b, x, d, target))
    outs = b.emit_multi(op, operands, attrs)
    return outs, [target] * len(outs)


RULES = {name: partial(elementwise_rule, op=name) for name, o in OPS.items() if o.family == "elementwise"}
