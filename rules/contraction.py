"""Batching ``dot_general``: the rule that decides how fast batched models run.

``dot_general`` names each operand dim as batch, contracting or free; the result
is (batch dims, lhs free dims, rhs free dims). Batching adds one dim, and the rule
chooses its role:

* **Both operands batched** (per-example weights, attention): the new dim is one
  more *batch* dim of the contraction, moved to the front of both operands. The
  lowering emits a ``linalg.batch_matmul``.
* **One operand batched** (shared weights, the common case): the new dim is one
  more *free* dim of that operand. It is never a broadcast of the other operand
  into a batch_matmul, which would copy the weights once per example and hide the
  matmul from the compiler (JAX learned this in PR 1331). With the batch axis
  next to the other free dims (bdim 0, as inputs usually arrive), the lowering
  collapses it into M: a batch of 16 inputs of shape [8, 4] against shared
  [4, 3] weights is ONE [128, 4] @ [4, 3] matmul.

No operand moves: ``dot_general`` takes its dims in any position, so the rule
only renumbers them, and the lowering turns unusual layouts into indexing maps.
"""

from __future__ import annotations


def _shift(dims, at):
    """Dim numbers after inserting a new dim at position `at`."""
    return tuple(d + 1 if d >= at else d for d in dims)


def _free_before(rank, contract, batch, at):
    """How many of an operand's free dims come before position `at`."""
    return sum(1 for i in range(rank) if i < at and i not in contract and i not in batch)


def dot_general_rule(b, args, bdims, contract, batch):
    (lhs, rhs), (ld, rd) = args, bdims
    (lc, rc), (lb, rb) = contract, batch
    if ld is not None and rd is not None:
        out = b.emit("dot_general", lhs, rhs, contract=(_shift(lc, ld), _shift(rc, rd)),
                     batch=((ld,) + _shift(lb, ld), (rd,) + _shift(rb, rd)))
        return [out], [0]
    if ld is not None:
        out = b.emit("dot_general", lhs, rhs, contract=(_shift(lc, ld), rc), batch=(_shift(lb, ld), rb))
        return [out], [len(lb) + _free_before(lhs.rank - 1, lc, lb, ld)]
    out = b.emit("dot_general", lhs, rhs, contract=(lc, _shift(rc, rd)), batch=(lb, _shift(rb, rd)))
    n_lhs_free = lhs.rank - len(lc) - len(lb)
    return [out], [len(lb) + n_lhs_free + _free_before(rhs.rank - 1, rc, rb, rd)]


RULES = {"dot_general": dot_general_rule}
