"""Forward-mode rules of the collectives.

A collective's derivative involves every example of the named axis, so the rules are
written with collectives too, and get their meaning when ``vmap`` binds the axis (as
the op's own does). ``psum`` and ``all_gather`` are linear: the tangents are summed or
gathered the same way. ``pmax``/``pmin`` pass on the tangent of the example that holds
the extreme; where several tie, their average (the rule of ``reduce_max``):
``psum(t * w)`` with ``w = [x == out] / psum([x == out])``. ``axis_index`` is an
integer: a constant to differentiation.
"""

from __future__ import annotations

from ..helpers import ew, scalar


def extreme_weight(b, x, out, axis_name):
    """1 / (number of examples holding the extreme) where this example holds it, else 0."""
    hit = b.convert(ew(b, "equal", x, out), x.dtype)
    count = b.emit("psum", hit, axis_name=axis_name)
    return ew(b, "divide", hit, ew(b, "maximum", count, scalar(b, 1, count)))


def psum_rule(b, primals, tangents, outs, axis_name):
    return [b.emit("psum", tangents[0], axis_name=axis_name)]


def pextreme_rule(b, primals, tangents, outs, axis_name):
    (x,), (t,), (out,) = primals, tangents, outs
    return [b.emit("psum", ew(b, "multiply", t, extreme_weight(b, x, out, axis_name)), axis_name=axis_name)]


def all_gather_rule(b, primals, tangents, outs, **attrs):
    return [b.emit("all_gather", tangents[0], **attrs)]


RULES = {"psum": psum_rule, "pmax": pextreme_rule, "pmin": pextreme_rule, "all_gather": all_gather_rule}
