"""Batching rules: how each op runs over a batch (``vmapc.rules``).

One rule table for the whole op set, assembled from one module per op family:

==============  ==============================================  ========
module          ops                                             kind
==============  ==============================================  ========
elementwise     every unary/binary op, ``select``, ``convert``    family
reduction       ``reduce_*``, ``argmax``, ``argmin``,             family
                ``cumulative``
contraction     ``dot_general``                                 native
shape           reshape, transpose, broadcast, concat, slice,   native
                rev, pad
indexing        ``take``, ``take_along_axis``, ``dynamic_slice``  native
creation        ``iota``, ``constant`` (never batched)           native
control         ``cond``, ``while_loop``, ``scan``                 native
sorting         ``sort``, ``top_k``                               native
random          ``threefry2x32`` (elementwise), ``key_use``      family,
                                                                native
collective      ``psum``, ``pmax``, ``pmin``, ``all_gather``,     native
                ``axis_index`` (named batch axes)
custom          ``custom`` (a user-defined op: its rule, or     native
                its body batched)
==============  ==============================================  ========

``random`` also holds :data:`UNBATCHED_RULES`: what the vmap pass does with an equation
none of whose operands is batched when copying it unchanged would be wrong (a random draw
from a key every example shares; see :mod:`vmapc.rules.random`).

A *family* rule is one function serving a whole family; a *native* rule is
written for its op. An op with neither would use the loop-and-stack
:mod:`~vmapc.rules.fallback`; none in the library does (``tests/test_rules.py``
fails if one ever would). ``README.md`` in this folder is the guide to writing a
rule.
"""

from __future__ import annotations

from vmapc.ops import OPS

from . import collective, contraction, control, creation, custom, elementwise, indexing, random, reduction, shape, sorting
from .fallback import MODES, fallback_mode, fallback_rule, get_mode, set_mode  # noqa: F401
from .random import UNBATCHED_RULES  # noqa: F401

BATCH_RULES: dict = {}
RULE_KINDS: dict = {}
for _module, _kind in ((elementwise, "family"), (reduction, "family"), (contraction, "native"),
                       (shape, "native"), (indexing, "native"), (creation, "native"), (control, "native"),
                       (sorting, "native"), (collective, "native"), (custom, "native")):
    for _name, _rule in _module.RULES.items():
        BATCH_RULES[_name] = _rule
        RULE_KINDS[_name] = _kind
BATCH_RULES.update(random.RULES)
RULE_KINDS.update(random.KINDS)


def rule_kind(op: str) -> str:
    """"native", "family" or "fallback"."""
    return RULE_KINDS.get(op, "fallback")


def report() -> list:
    """One row per op: ``{"op", "family", "rule"}`` with rule "native", "family" or
    "fallback" (shown by ``vmapc rules``)."""
    return [{"op": name, "family": op.family, "rule": rule_kind(name)} for name, op in sorted(OPS.items())]
