"""Lowering of the collectives: there is none. The vmap that binds a collective's
axis name replaces it with ordinary ops; a program that still holds one names an
axis no vmap binds, and lowering it is refused with the same error the reference
evaluator gives."""

from __future__ import annotations

from ..collective import unbound
from ..errors import LoweringError


def _unbound(op):
    def rule(lctx, eqn, xs):
        err = unbound(f"{op}[axis_name={eqn.attrs['axis_name']!r}]", eqn.attrs["axis_name"])
        raise LoweringError(err.message, eqn.loc)
    return rule


RULES = {op: _unbound(op) for op in ("psum", "pmax", "pmin", "all_gather", "axis_index")}
