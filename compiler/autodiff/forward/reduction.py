"""Forward-mode rules of the reductions.

``reduce_sum`` is linear. ``reduce_max``/``reduce_min`` pass on the tangent of the
element that is the extreme; where several elements tie for it, the tangent is their
average, so the derivative is split evenly among them (as ``jax.numpy.max`` and
``torch.amax`` do). Where the extreme is NaN no element compares equal to it and the
derivative is 0. ``reduce_prod``'s partial in element i is the product of the
others, computed without dividing by zero (:func:`prod_partials`).

The scans (``cumulative``): with ``add`` the scan is linear, so the tangent is scanned
the same way. With ``maximum``/``minimum`` each result is one of the elements so far,
the *running extreme*; its tangent is that element's tangent (at a tie, the first
element to reach the extreme: :func:`running_extreme_index`). With ``multiply`` the
product is taken as a Hillis-Steele prefix scan, ``log2 n`` steps of
``y = y * shift(y, d)`` for ``d = 1, 2, 4, ...``, and the tangent follows the product
rule through the steps (:func:`prefix_products`): no division, so zeros are handled
exactly.
"""

from __future__ import annotations

import numpy as np

from ... import dtypes as dt
from ..helpers import add, ew, scalar


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


# --- cumulative --------------------------------------------------------------------------------------

def _window(x, axis, start, stop):
    return (tuple(start if i == axis else 0 for i in range(x.rank)),
            tuple(stop if i == axis else d for i, d in enumerate(x.shape)), (1,) * x.rank)


def shift(b, y, axis, d, fill):
    """y moved d places up `axis` (towards higher indices), the first d filled with `fill`."""
    n = y.shape[axis]
    start, limit, step = _window(y, axis, 0, n - d)
    s = b.emit("slice", y, start=start, limit=limit, step=step)
    lo = tuple(d if i == axis else 0 for i in range(y.rank))
    return b.emit("pad", s, b.constant(np.asarray(fill, dtype=y.dtype)), lo=lo, hi=(0,) * y.rank)


def unshift(b, c, axis, d):
    """The transpose of ``shift(., d, 0)``: c moved d places down `axis`, zeros at the end."""
    n = c.shape[axis]
    start, limit, step = _window(c, axis, d, n)
    s = b.emit("slice", c, start=start, limit=limit, step=step)
    hi = tuple(d if i == axis else 0 for i in range(c.rank))
    return b.emit("pad", s, b.constant(np.asarray(0, dtype=c.dtype)), lo=(0,) * c.rank, hi=hi)


def prefix_products(b, x, axis):
    """The steps ``[(y, d)]`` of the Hillis-Steele scan of x along `axis`: each step
    computes ``y * shift(y, d, 1)`` from its y (the last step's result is the scan)."""
    steps, y, d = [], x, 1
    while d < x.shape[axis]:
        steps.append((y, d))
        y = ew(b, "multiply", y, shift(b, y, axis, d, 1))
        d *= 2
    return steps


def running_extreme_index(b, x, out, axis, reverse, combine):
    """For each result of ``cumulative[combine](x)`` (maximum or minimum), the int64
    position along `axis` of the element it came from: the last position so far where a
    new extreme was reached (the first of tied elements; position 0 always counts)."""
    n = x.shape[axis]
    if reverse:
        x, out = b.emit("rev", x, axes=(axis,)), b.emit("rev", out, axes=(axis,))
    fill = -np.inf if combine == "maximum" else np.inf
    prev = shift(b, out, axis, 1, fill)
    record = ew(b, "greater" if combine == "maximum" else "less", x, prev)
    pos = b.emit("iota", shape=tuple(x.shape), dimension=axis, dtype=dt.INT64)
    first = ew(b, "equal", pos, b.reshape(b.constant(np.asarray(0, np.int64)), (1,) * x.rank))
    r = ew(b, "select", ew(b, "logical_or", record, first), pos,
           b.reshape(b.constant(np.asarray(0, np.int64)), (1,) * x.rank))
    idx = b.emit("cumulative", r, combine="maximum", axis=axis, reverse=False)
    if reverse:
        last = b.reshape(b.constant(np.asarray(n - 1, np.int64)), (1,) * x.rank)
        idx = ew(b, "subtract", last, b.emit("rev", idx, axes=(axis,)))
    return idx


def cumulative_rule(b, primals, tangents, outs, combine, axis, reverse):
    (x,), (t,), (out,) = primals, tangents, outs
    if combine == "add" or x.shape[axis] <= 1:
        return [b.emit("cumulative", t, combine="add", axis=axis, reverse=reverse)
                if combine == "add" else t]
    if combine in ("maximum", "minimum"):
        idx = running_extreme_index(b, x, out, axis, reverse, combine)
        return [b.emit("take_along_axis", t, idx, axis=axis)]
    # multiply: the product rule through the prefix-scan steps
    if reverse:
        x, t = b.emit("rev", x, axes=(axis,)), b.emit("rev", t, axes=(axis,))
    for y, d in prefix_products(b, x, axis):
        t = add(b, ew(b, "multiply", t, shift(b, y, axis, d, 1)), ew(b, "multiply", y, shift(b, t, axis, d, 0)))
    return [b.emit("rev", t, axes=(axis,)) if reverse else t]


RULES = {"reduce_sum": reduce_sum_rule, "reduce_max": reduce_extreme_rule,
         "reduce_min": reduce_extreme_rule, "reduce_prod": reduce_prod_rule,
         "cumulative": cumulative_rule}
