"""Reverse-mode rule of ``custom``, a user-defined op (:mod:`vmapc.custom`): the
cotangents of its arguments come from the op's ``def_vjp`` rule when it has one, else from
the reverse-mode program of its body (which recomputes the body's forward values, as a
``cond`` branch's does)."""

from __future__ import annotations

from ...errors import VmapcError
from ..helpers import is_differentiable, zeros_like


def custom_rule(b, primals, outs, cts, name, body):
    from ...custom import apply_vjp, lookup
    op = lookup(name)
    if op is not None and op.vjp_rule is not None:
        try:
            return apply_vjp(op, b, primals, outs, cts)
        except VmapcError as err:       # at the line that called the op
            raise err.with_loc(b.loc)
    from . import vjp_function
    g = vjp_function(body, name=body.name)
    cs = [c if c is not None else zeros_like(b, o) for o, c in zip(outs, cts) if is_differentiable(o)]
    res = b.inline(g, list(primals) + cs)
    grads = res[len(outs):]
    return [g if is_differentiable(p) else None for p, g in zip(primals, grads)]


RULES = {"custom": custom_rule}
