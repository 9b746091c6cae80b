"""Reverse-mode rules of the reductions: the cotangent of the result is broadcast back
over the reduced axes, then weighted by the forward rules' partials (1 for
``reduce_sum``; the tie-splitting indicator of ``reduce_max``/``reduce_min``; the
product of the other elements for ``reduce_prod``)."""

from __future__ import annotations

from ..helpers import ew
from ..forward.reduction import expand, extreme_weights, prod_partials


def reduce_sum_rule(b, primals, outs, cts, axes):
    return [expand(b, cts[0], primals[0].shape, axes)]


def reduce_extreme_rule(b, primals, outs, cts, axes):
    (x,), (out,), (ct,) = primals, outs, cts
    return [ew(b, "multiply", expand(b, ct, x.shape, axes), extreme_weights(b, x, out, axes))]


def reduce_prod_rule(b, primals, outs, cts, axes):
    (x,), (out,), (ct,) = primals, outs, cts
    return [ew(b, "multiply", expand(b, ct, x.shape, axes), prod_partials(b, x, out, axes))]


RULES = {"reduce_sum": reduce_sum_rule, "reduce_max": reduce_extreme_rule,
         "reduce_min": reduce_extreme_rule, "reduce_prod": reduce_prod_rule}
