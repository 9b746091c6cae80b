"""Reverse-mode rules of the reductions: the cotangent of the result is broadcast back
over the reduced axes, then weighted by the forward rules' partials (1 for
``reduce_sum``; the tie-splitting indicator of ``reduce_max``/``reduce_min``; the
product of the other elements for ``reduce_prod``).

``cumulative``: with ``add``, the cotangent scanned in the other direction; with
``maximum``/``minimum``, each result's cotangent added to the element it came from (a
scatter-add along the axis: :func:`scatter_add_along`); with ``multiply``, the
prefix-scan steps of the forward rule walked backwards."""

from __future__ import annotations

from ... import dtypes as dt
from ..helpers import add, ew, zeros
from ..forward.reduction import (expand, extreme_weights, prefix_products, prod_partials,
                                 running_extreme_index, shift, unshift)


def reduce_sum_rule(b, primals, outs, cts, axes):
    return [expand(b, cts[0], primals[0].shape, axes)]


def reduce_extreme_rule(b, primals, outs, cts, axes):
    (x,), (out,), (ct,) = primals, outs, cts
    return [ew(b, "multiply", expand(b, ct, x.shape, axes), extreme_weights(b, x, out, axes))]


def reduce_prod_rule(b, primals, outs, cts, axes):
    (x,), (out,), (ct,) = primals, outs, cts
    return [ew(b, "multiply", expand(b, ct, x.shape, axes), prod_partials(b, x, out, axes))]


def scatter_add_along(b, ct, idx, axis, shape):
    """The transpose of ``take_along_axis(x, idx, axis)`` for an x of `shape` (idx of
    x's rank, equal to it outside `axis`): ct added into zeros at idx along `axis`. The
    axis is moved last, so the scatter's leading dims are all batch dims."""
    r = len(shape)
    perm = [i for i in range(r) if i != axis] + [axis]
    inv = [perm.index(i) for i in range(r)]
    z = zeros(b, tuple(shape[i] for i in perm), ct.dtype)
    s = b.emit("scatter", z, b.convert(b.transpose(idx, perm), dt.INT64), b.transpose(ct, perm),
               axis=r - 1, batch_dims=r - 1, mode="add")
    return b.transpose(s, inv)


def cumulative_rule(b, primals, outs, cts, combine, axis, reverse):
    (x,), (out,), (ct,) = primals, outs, cts
    if combine == "add":
        return [b.emit("cumulative", ct, combine="add", axis=axis, reverse=not reverse)]
    if x.shape[axis] <= 1:
        return [ct]
    if combine in ("maximum", "minimum"):
        idx = running_extreme_index(b, x, out, axis, reverse, combine)
        return [scatter_add_along(b, ct, idx, axis, x.shape)]
    if reverse:
        x, ct = b.emit("rev", x, axes=(axis,)), b.emit("rev", ct, axes=(axis,))
    for y, d in reversed(prefix_products(b, x, axis)):
        ct = add(b, ew(b, "multiply", ct, shift(b, y, axis, d, 1)), unshift(b, ew(b, "multiply", ct, y), axis, d))
    return [b.emit("rev", ct, axes=(axis,)) if reverse else ct]


RULES = {"reduce_sum": reduce_sum_rule, "reduce_max": reduce_extreme_rule,
         "reduce_min": reduce_extreme_rule, "reduce_prod": reduce_prod_rule,
         "cumulative": cumulative_rule}
