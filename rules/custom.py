"""Batching rule of ``custom``, a user-defined op (:mod:`vmapc.custom`).

If the op's registration has a batching rule (``op.def_vmap``), the rule runs, traced at
the batched operands' types, and what it emits replaces the equation; its results are
checked against the op (:func:`vmapc.custom.apply_vmap`), so a rule that returns a wrong
shape or batch dim raises :class:`~vmapc.errors.CustomOpError` naming the op.

Otherwise the body is batched, as if its equations stood in the program
(``torch.func``'s ``generate_vmap_rule``): the body's batched equations replace the
equation, the batch of each output lands where the body's rules put it, and random draws
in the body follow the enclosing vmap's ``randomness`` as inline code would.
"""

from __future__ import annotations

from vmapc.ir import Function

from .helpers import axis_size_of


def custom_rule(b, args, bdims, name, body):
    from vmapc.custom import apply_vmap, lookup
    size = axis_size_of(args, bdims)
    op = lookup(name)
    if op is not None and op.vmap_rule is not None:
        return apply_vmap(op, b, args, bdims, size, body.out_types)
    from vmapc.vmap import _CURRENT, _batch_eqns, _current_axis_name
    rng = _CURRENT.get()
    ib, ins, env, _ = _batch_eqns(body, bdims, size, rng, _current_axis_name())
    offset = [rng.offset_input] if rng is not None and rng.offset_input is not None else []
    batched = Function(ins + offset, ib.eqns, [env[v][0] for v in body.outputs], name=body.name)
    return b.inline(batched, list(args) + offset), [env[v][1] for v in body.outputs]


RULES = {"custom": custom_rule}
