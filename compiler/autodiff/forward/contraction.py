"""Forward-mode rule of ``dot_general``: bilinear, so the tangent is
``dot(t_lhs, rhs) + dot(lhs, t_rhs)`` with the same dimension numbers."""

from __future__ import annotations

from ..helpers import add


def dot_general_rule(b, primals, tangents, outs, contract, batch):
    (lhs, rhs), (tl, tr) = primals, tangents
    a = None if tl is None else b.emit("dot_general", tl, rhs, contract=contract, batch=batch)
    c = None if tr is None else b.emit("dot_general", lhs, tr, contract=contract, batch=batch)
    return [add(b, a, c)]


RULES = {"dot_general": dot_general_rule}
