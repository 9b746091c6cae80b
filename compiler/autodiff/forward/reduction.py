"""Forward-mode rules of the reductions.

``reduce_sum`` is linear. ``reduce_max``/``reduce_min`` pass on the tangent of the
element that is the extreme; where several elements tie for it, the tangent is their
average, so the derivative is split evenly among them (as ``jax.numpy.max`` and
``torch.amax`` do). Where the extreme is NaN no element compares equal to it and the
derivative is 0. ``reduce_prod``'s partial in element i is the product of the
others, computed without dividing by zero (:func:`prod_partials`).
"""

from __future__ import annotations

from ..helpers import ew, scalar


def kept_dims(rank, axes):
    return tuple(i for i in range(rank) if i not in axes)


def expand(b, r, shape, axes):
    """A reduction's result broadcast back to its operand's shape."""
    return b.broadcast_in_dim(r, tuple(shape), kept_dims(len(shape), axes))


def extreme_weights(b, x, out, axes):
    """Where x holds the extreme `out`: 1/(number of ties) there, 0 elsewhere."""
    hit = b.convert(ew(b, "equal", x, expand(b, out, x.shape, axes)), x.dtype)
    count = b.emit("reduce_sum", hit, axes=axes)
    count = ew(b, "maximum", count, scalar(b, 1, count))
    return ew(b, "divide", hit, expand(b, count, x.shape, axes))


def prod_partials(b, x, out, axes):
    """d prod(x) / d x_i = the product of the other elements: prod / x_i where no
    element is 0; where exactly one is, the product of the rest at that element and 0
    elsewhere; with two zeros or more, 0."""
    zero, one = scalar(b, 0, x), scalar(b, 1, x)
    is_zero = ew(b, "equal", x, zero)
    safe = ew(b, "select", is_zero, one, x)
    p = expand(b, b.emit("reduce_prod", safe, axes=axes), x.shape, axes)
    nzero = expand(b, b.emit("reduce_sum", b.convert(is_zero, x.dtype), axes=axes), x.shape, axes)
    no_zero = ew(b, "equal", nzero, zero)
    one_zero = ew(b, "equal", nzero, one)
    at_the_zero = ew(b, "select", ew(b, "logical_and", one_zero, is_zero), p, zero)
    return ew(b, "select", no_zero, ew(b, "divide", p, safe), at_the_zero)


def reduce_sum_rule(b, primals, tangents, outs, axes):
    return [b.emit("reduce_sum", tangents[0], axes=axes)]


def reduce_extreme_rule(b, primals, tangents, outs, axes):
    (x,), (t,), (out,) = primals, tangents, outs
    w = extreme_weights(b, x, out, axes)
    return [b.emit("reduce_sum", ew(b, "multiply", t, w), axes=axes)]


def reduce_prod_rule(b, primals, tangents, outs, axes):
    (x,), (t,), (out,) = primals, tangents, outs
    return [b.emit("reduce_sum", ew(b, "multiply", t, prod_partials(b, x, out, axes)), axes=axes)]


RULES = {"reduce_sum": reduce_sum_rule, "reduce_max": reduce_extreme_rule,
         "reduce_min": reduce_extreme_rule, "reduce_prod": reduce_prod_rule}
