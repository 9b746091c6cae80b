"""Forward-mode rules of the shape ops: every one is linear in its array operand, so
the tangent goes through the same op (a symbolic-zero operand of ``concatenate`` or
``pad`` becomes explicit zeros)."""

from __future__ import annotations

from ..helpers import zeros_like


def _same(op):
    def rule(b, primals, tangents, outs, **attrs):
        return [b.emit(op, tangents[0], **attrs)]
    return rule


def concatenate_rule(b, primals, tangents, outs, axis):
    ts = [zeros_like(b, x) if t is None else t for x, t in zip(primals, tangents)]
    return [b.emit("concatenate", *ts, axis=axis)]


def pad_rule(b, primals, tangents, outs, lo, hi):
    (x, v), (tx, tv) = primals, tangents
    tx = zeros_like(b, x) if tx is None else tx
    tv = zeros_like(b, v) if tv is None else tv
    return [b.emit("pad", tx, tv, lo=lo, hi=hi)]


RULES = {op: _same(op) for op in ("reshape", "transpose", "broadcast_in_dim", "slice", "rev")}
RULES.update({"concatenate": concatenate_rule, "pad": pad_rule})
