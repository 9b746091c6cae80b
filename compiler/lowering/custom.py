"""Lowering of ``custom``: the user's lowering when the op registered one
(``op.def_lowering``), else the body's kernels, lowered in place like the equations
around them (so IREE fuses them with their neighbours as it would the inlined code)."""

from __future__ import annotations

from ..errors import CustomOpError


def _custom_rule(lctx, eqn, xs):
    from ..custom import lookup
    name, body = eqn.attrs["name"], eqn.attrs["body"]
    op = lookup(name)
    if op is not None and op.lowering is not None:
        res = op.lowering(lctx, eqn, list(xs))
        res = [res] if not isinstance(res, (list, tuple)) else list(res)
        if len(res) != len(eqn.outputs):
            raise CustomOpError(f"custom op {name}: its lowering returned {len(res)} values for "
                                f"{len(eqn.outputs)} results", eqn.loc)
        return res
    k = next(i for i, e in enumerate(lctx.fn.eqns) if e is eqn)
    return lctx.lower_sub(body, list(xs), f"{k}:custom.body")


RULES = {"custom": _custom_rule}
