"""Forward-mode rules of the sorting family.

A sort permutes its operands, and given the keys the permutation is fixed, so the
result is linear in the operands: the tangents are permuted the same way. The rule
sorts them together with the operands, as extra non-key operands of the same ``sort``
(the sort is stable and they are never keys, so they follow the operands exactly);
it rewrites the op whole, returning ``(outs, tangents)``. ``top_k``'s values are the
operand read at its indices, so their tangent is the tangent read there
(``take_along_axis``); the indices, integers, have none.
"""

from __future__ import annotations

from ..helpers import is_differentiable


def sort_rule(b, primals, tangents, axis, descending, num_keys):
    n = len(primals)
    have = [i for i, (x, t) in enumerate(zip(primals, tangents)) if t is not None and is_differentiable(x)]
    res = b.emit_multi("sort", list(primals) + [tangents[i] for i in have],
                       {"axis": axis, "descending": descending, "num_keys": num_keys})
    ts = [None] * n
    for k, i in enumerate(have):
        ts[i] = res[n + k]
    return res[:n], ts


def top_k_rule(b, primals, tangents, outs, k):
    (t,), (_, idx) = tangents, outs
    return [b.emit("take_along_axis", t, idx, axis=t.rank - 1), None]


RULES = {"sort": sort_rule, "top_k": top_k_rule}
# rules that rewrite their op whole (see forward.WHOLE_OPS)
WHOLE = {"sort"}
