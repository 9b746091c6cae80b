"""Forward-mode rules of the gathers and the writes.

The gathers are linear in the array, so the tangent is gathered with the same indices
(which, being integers, have no tangent). The writes ``update_slice`` and
``scatter[mode=set|add]`` are linear in the operand and the updates together, so the
tangents are written the same way (a missing one is zeros); with ``set`` the tangent
of an element comes from the same writer as its value (the last update to it).

``scatter`` with ``multiply``, ``min`` or ``max`` is not linear; its derivative is still
a scatter-add of the updates' tangents, each scaled by a coefficient computed once from
the primal values (the reverse rules reuse the same coefficients):

* ``multiply``: ``out[j] = x[j] * prod(u[k] for k writing j)``. The operand's partial is
  the product of the updates (``scatter`` multiply of the tangent itself); update k's is
  ``x[j]`` times the product of the *other* updates to j (:func:`scatter_mul_others`),
  found without dividing by a zero: per element, the product of its nonzero updates and
  the number of its zero updates. JAX differentiates this only with unique indices;
* ``min``/``max`` (:func:`scatter_extreme_weights`): the tangent of the contender that
  won, the operand's element or an update; contenders that tie share it evenly (each
  gets ``1 / number of ties``), as in JAX's ``scatter_max`` and as ``np.max`` splits ties
  (docs/autodiff.md, "Numerics"). A NaN contender is the winner (NaN propagates).
"""

from __future__ import annotations

from ..helpers import ew, scalar, zeros_like



def take_rule(b, primals, tangents, outs, axis, batch_dims):
    return [b.emit("take", tangents[0], primals[1], axis=axis, batch_dims=batch_dims)]


def take_along_axis_rule(b, primals, tangents, outs, axis):
    return [b.emit("take_along_axis", tangents[0], primals[1], axis=axis)]


def dynamic_slice_rule(b, primals, tangents, outs, sizes):
    return [b.emit("dynamic_slice", tangents[0], *primals[1:], sizes=sizes)]


def update_slice_rule(b, primals, tangents, outs):
    (x, upd), (tx, tu) = primals[:2], tangents[:2]
    tx = zeros_like(b, x) if tx is None else tx
    tu = zeros_like(b, upd) if tu is None else tu
    return [b.emit("update_slice", tx, tu, *primals[2:])]


def _won(b, v, target):
    """v == target, or v is NaN (a NaN contender is the one whose value propagated)."""
    return ew(b, "logical_or", ew(b, "equal", v, target), b.emit("isnan", v))


def scatter_extreme_weights(b, x, idx, upd, out, axis, batch_dims):
    """(w_x, w_u): the share of the derivative of ``scatter[min|max](x, idx, upd)``
    that goes to each operand element and to each update: ``1 / ties`` where it
    equals the result at its element, 0 elsewhere (w_x is 1 where nothing wrote)."""
    attrs = dict(axis=axis, batch_dims=batch_dims)
    hit_x = b.convert(_won(b, x, out), x.dtype)
    hit_u = b.convert(_won(b, upd, b.emit("take", out, idx, **attrs)), x.dtype)
    ties = b.emit("scatter", hit_x, idx, hit_u, mode="add", **attrs)
    ties = ew(b, "maximum", ties, scalar(b, 1, ties))
    return (ew(b, "divide", hit_x, ties),
            ew(b, "divide", hit_u, b.emit("take", ties, idx, **attrs)))


def scatter_mul_others(b, x, idx, upd, axis, batch_dims):
    """For each update, the product of the other updates written to the same element:
    the product of the element's nonzero updates (divided by the update's own value
    when that is nonzero), or 0 when a zero other than itself is among them."""
    attrs = dict(axis=axis, batch_dims=batch_dims)
    zero, one = scalar(b, 0, upd), scalar(b, 1, upd)
    is_zero = ew(b, "equal", upd, zero)
    safe = ew(b, "select", is_zero, one, upd)
    prod = b.emit("take", b.emit("scatter", b.full(tuple(x.shape), 1, x.dtype), idx, safe,
                                 mode="multiply", **attrs), idx, **attrs)
    nzero = b.emit("take", b.emit("scatter", zeros_like(b, x), idx, b.convert(is_zero, x.dtype),
                                  mode="add", **attrs), idx, **attrs)
    own = ew(b, "select", is_zero, one, zero)          # the update's own zero, if any
    others_zero = ew(b, "subtract", nzero, own)
    no_other_zero = ew(b, "equal", others_zero, zero)
    others = ew(b, "select", is_zero, prod, ew(b, "divide", prod, safe))
    return ew(b, "select", no_other_zero, others, zeros_like(b, upd))


def scatter_rule(b, primals, tangents, outs, axis, batch_dims, mode):
    (x, idx, upd), (tx, _, tu), (out,) = primals, tangents, outs
    attrs = dict(axis=axis, batch_dims=batch_dims)
    tx = zeros_like(b, x) if tx is None else tx
    tu = zeros_like(b, upd) if tu is None else tu
    if mode in ("set", "add"):
        return [b.emit("scatter", tx, idx, tu, mode=mode, **attrs)]
    if mode == "multiply":
        tx = b.emit("scatter", tx, idx, upd, mode="multiply", **attrs)
        coef = ew(b, "multiply", b.emit("take", x, idx, **attrs), scatter_mul_others(b, x, idx, upd, **attrs))
        return [b.emit("scatter", tx, idx, ew(b, "multiply", tu, coef), mode="add", **attrs)]
    w_x, w_u = scatter_extreme_weights(b, x, idx, upd, out, **attrs)
    return [b.emit("scatter", ew(b, "multiply", tx, w_x), idx, ew(b, "multiply", tu, w_u),
                   mode="add", **attrs)]


RULES = {"update_slice": update_slice_rule, "scatter": scatter_rule, "take": take_rule,
         "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule}
