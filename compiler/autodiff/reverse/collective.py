"""Reverse-mode rules of the collectives (written with collectives, like the forward
rules, and bound by ``vmap``).

Every example's result of ``psum`` depends on every example's operand with weight 1,
so an example's cotangent is the sum of all examples' result cotangents: the transpose
of ``psum`` is ``psum`` (as in JAX). ``pmax``/``pmin``: that sum, weighted by the
forward rule's tie-splitting weight. ``all_gather``: example i's operand is slot i of
every example's result, so its cotangent is slot i (``axis_index``) of the sum of the
result cotangents: a slice per example.
"""

from __future__ import annotations

import numpy as np

from ..helpers import ew
from ..forward.collective import extreme_weight


def psum_rule(b, primals, outs, cts, axis_name):
    return [b.emit("psum", cts[0], axis_name=axis_name)]


def pextreme_rule(b, primals, outs, cts, axis_name):
    (x,), (out,), (ct,) = primals, outs, cts
    return [ew(b, "multiply", b.emit("psum", ct, axis_name=axis_name), extreme_weight(b, x, out, axis_name))]


def all_gather_rule(b, primals, outs, cts, axis_name, axis_size, axis):
    (x,), (ct,) = primals, cts
    total = b.emit("psum", ct, axis_name=axis_name)
    i = b.emit("axis_index", axis_name=axis_name)
    zero = b.constant(np.asarray(0, np.int32))
    starts = [i if d == axis else zero for d in range(total.rank)]
    sizes = tuple(1 if d == axis else n for d, n in enumerate(total.shape))
    mine = b.emit("dynamic_slice", total, *starts, sizes=sizes)
    return [b.reshape(mine, x.shape)]


RULES = {"psum": psum_rule, "pmax": pextreme_rule, "pmin": pextreme_rule, "all_gather": all_gather_rule}
