"""Forward-mode rule of ``custom``, a user-defined op (:mod:`vmapc.custom`): the primal
results stay the op; their tangents come from the op's ``def_jvp`` rule when it has one,
else from the forward-mode program of its body."""

from __future__ import annotations

from ...errors import VmapcError
from ..helpers import is_differentiable


def custom_rule(b, primals, tangents, outs, name, body):
    from ...custom import apply_jvp, lookup
    op = lookup(name)
    if op is not None and op.jvp_rule is not None:
        try:
            return apply_jvp(op, b, primals, tangents, outs)
        except VmapcError as err:       # at the line that called the op
            raise err.with_loc(b.loc)
    from . import jvp_function
    active = [t is not None and is_differentiable(p) for p, t in zip(primals, tangents)]
    j = jvp_function(body, active, name=body.name)
    res = b.inline(j, list(primals) + [t for t, a in zip(tangents, active) if a])
    n = len(outs)
    return [t if nz else None for t, nz in zip(res[n:], j.nonzero_tangents)]


RULES = {"custom": custom_rule}
