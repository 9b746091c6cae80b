"""Reference rules of the collectives: a program that still holds one has a batch
axis name no vmap binds (the vmap that binds it replaces the collective with
ordinary ops), so there is nothing to compute; each rule says so."""

from __future__ import annotations

from ..collective import unbound


def _unbound(op):
    def rule(*operands, axis_name, **attrs):
        raise unbound(f"{op}[axis_name={axis_name!r}]", axis_name)
    return rule


RULES = {op: _unbound(op) for op in ("psum", "pmax", "pmin", "all_gather", "axis_index")}
