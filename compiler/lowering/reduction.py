"""Lowering of reductions: ``reduce_*`` as one ``linalg.generic`` with reduction
iterators, ``argmax``/``argmin`` as two single-result reductions."""

from __future__ import annotations

import math


from .. import dtypes as dt
from ..ir import Eqn, Var

from iree.compiler import ir
from iree.compiler.dialects import arith

from .base import _and, _is_f, _max_int, _min_int, _or, add, cmp, convert, loop_index, maximum, minimum, mul, select


# --- rules: reductions ---------------------------------------------------------------------------

_REDUCERS = {
    # op: (identity for dtype, combine(acc, x, dtype))
    "reduce_sum": (lambda d: 0, add),
    "reduce_prod": (lambda d: 1, mul),
    "reduce_max": (lambda d: -math.inf if _is_f(d) else _min_int(d), maximum),
    "reduce_min": (lambda d: math.inf if _is_f(d) else _max_int(d), minimum),
    "reduce_any": (lambda d: 0, lambda a, b, dtype: arith.ori(a, b)),
    "reduce_all": (lambda d: 1, lambda a, b, dtype: arith.andi(a, b)),
}


def _reduce_rule(name):
    identity, combine = _REDUCERS[name]

    def rule(lctx, eqn, xs):
        (x,), t, out = xs, eqn.inputs[0].type, eqn.outputs[0].type
        axes = eqn.attrs["axes"]
        dtype = t.dtype
        # float16 sums and products accumulate in float32 and round once at the end
        acc = dt.FLOAT32 if dtype == dt.FLOAT16 and name in ("reduce_sum", "reduce_prod") else dtype
        init = lctx.full(out.shape, acc, identity(acc))
        kept = [i for i in range(t.rank) if i not in axes]

        def body(args):
            v = convert(args[0], dtype, acc)
            return [combine(args[1], v, dtype=acc)]
        r = lctx.generic([x], [list(range(t.rank))], [init], [kept], t.rank, body, reduction_dims=axes)[0]
        if acc != dtype:
            r = lctx.map_scalars([r], [out.with_dtype(acc)], out, lambda v: convert(v, acc, dtype))
        return [r]
    return rule


def _argreduce_rule(name):
    """argmax/argmin as two single-result reductions: the extreme value (NaN-propagating,
    as reduce_max/min), then the first index holding it. (One two-result reduction is
    smaller, but IREE 3.13 miscompiles it when it fuses a consumer into it and drops
    the unused value result.)"""
    extreme = _reduce_rule("reduce_max" if name == "argmax" else "reduce_min")

    def rule(lctx, eqn, xs):
        (x,), t, out = xs, eqn.inputs[0].type, eqn.outputs[0].type
        axis, dtype = eqn.attrs["axis"], t.dtype
        kept = [i for i in range(t.rank) if i != axis]
        value_eqn = Eqn(name, eqn.inputs, [Var(out.with_dtype(dtype))], {"axes": (axis,)}, eqn.loc)
        (best,) = extreme(lctx, value_eqn, xs)
        init = lctx.full(out.shape, dt.INT64, _max_int(dt.INT64))

        def body(args):
            v, m, best_i = args
            i = arith.index_cast(ir.IntegerType.get_signless(64), loop_index(axis))
            hit = cmp("eq", v, m, dtype)
            if _is_f(dtype):   # the extreme is NaN when any element is: find the first NaN
                hit = _or(hit, _and(arith.cmpf(arith.CmpFPredicate.UNO, v, v),
                                    arith.cmpf(arith.CmpFPredicate.UNO, m, m)))
            return [select(_and(hit, cmp("lt", i, best_i, dt.INT64)), i, best_i)]
        return lctx.generic([x, best], [list(range(t.rank)), kept], [init], [kept], t.rank, body,
                            reduction_dims=(axis,))
    return rule


RULES = {name: _reduce_rule(name) for name in _REDUCERS}
RULES.update({"argmax": _argreduce_rule("argmax"), "argmin": _argreduce_rule("argmin")})
