"""``dot_general``: every contraction (as in XLA)."""

from __future__ import annotations


from ..errors import DTypeError, IRError, ShapeError
from .core import _T, _check_arity, _check_axes, _check_kind, define

# --- contraction -------------------------------------------------------------------------------

def _dot_general_infer(ts, contract, batch):
    _check_arity("dot_general", ts, 2)
    lhs, rhs = ts
    if lhs.dtype != rhs.dtype:
        raise DTypeError(f"dot_general: operand dtypes differ ({lhs.dtype} and {rhs.dtype})")
    _check_kind("dot_general", lhs, "number")
    (lc, rc), (lb, rb) = contract, batch
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise IRError("dot_general: contract and batch dims must pair up")
    _check_axes("dot_general", tuple(lc) + tuple(lb), lhs.rank, "lhs dims")
    _check_axes("dot_general", tuple(rc) + tuple(rb), rhs.rank, "rhs dims")
    for a, b in zip(lc, rc):
        if lhs.shape[a] != rhs.shape[b]:
            raise ShapeError(f"dot_general: contracting dims differ in size: lhs dim {a} is "
                             f"{lhs.shape[a]}, rhs dim {b} is {rhs.shape[b]}")
    for a, b in zip(lb, rb):
        if lhs.shape[a] != rhs.shape[b]:
            raise ShapeError(f"dot_general: batch dims differ in size: lhs dim {a} is "
                             f"{lhs.shape[a]}, rhs dim {b} is {rhs.shape[b]}")
    lfree = [d for i, d in enumerate(lhs.shape) if i not in lc and i not in lb]
    rfree = [d for i, d in enumerate(rhs.shape) if i not in rc and i not in rb]
    return [_T([lhs.shape[a] for a in lb] + lfree + rfree, lhs.dtype)]


define("dot_general", "contraction", ("contract", "batch"), _dot_general_infer,
       "dot_general[contract=((lhs..),(rhs..)), batch=((lhs..),(rhs..))](lhs, rhs): sum of products "
       "over the contract dims; result dims are batch, lhs free, rhs free.")
