"""Reverse-mode rules of the sorting family.

A sort's transpose sends each result's cotangent back to the position its value came
from. The forward pass (``sort_forward``) sorts an iota of positions along with the
operands, so it keeps the permutation ``perm`` (result k came from ``perm[k]``); the
backward pass sorts the cotangents by ``perm``, which puts the cotangent of result k at
position ``perm[k]``: one more sort and no scatter. ``top_k``'s values were read at its
indices, so their cotangent is added at those indices (a scatter-add along the last
axis).
"""

from __future__ import annotations

from ... import dtypes as dt
from ..helpers import is_differentiable
from .reduction import scatter_add_along


def sort_forward(b, primals, active, axis, descending, num_keys):
    """The forward pass's sort, which also sorts the positions: returns (outs, perm)."""
    pos = b.emit("iota", shape=tuple(primals[0].shape), dimension=axis, dtype=dt.INT64)
    res = b.emit_multi("sort", list(primals) + [pos],
                       {"axis": axis, "descending": descending, "num_keys": num_keys})
    return res[:-1], res[-1]


def sort_rule(b, primals, outs, cts, axis, descending, num_keys, active, residuals):
    perm = residuals
    if perm is None:        # not kept by the forward pass: sort the positions again
        perm = sort_forward(b, primals, active, axis, descending, num_keys)[1]
    want = [i for i, (x, c) in enumerate(zip(primals, cts)) if c is not None and is_differentiable(x)]
    back = b.emit_multi("sort", [perm] + [cts[i] for i in want],
                        {"axis": axis, "descending": False, "num_keys": 1})
    out = [None] * len(primals)
    for k, i in enumerate(want):
        out[i] = back[1 + k]
    return out


def top_k_rule(b, primals, outs, cts, k):
    (x,), (_, idx), (ct, _) = primals, outs, cts
    if ct is None:
        return [None]
    return [scatter_add_along(b, ct, idx, x.rank - 1, x.shape)]


RULES = {"sort": sort_rule, "top_k": top_k_rule}
FORWARD = {"sort": sort_forward}
