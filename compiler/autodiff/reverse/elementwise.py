"""Reverse-mode rules of the elementwise family.

The partial derivatives are the forward rules' (``UNARY_PARTIALS`` and ``BINARY_PARTIALS`` in
:mod:`vmapc.autodiff.forward.elementwise`):
an operand's cotangent is the result's cotangent times the operand's partial,
summed over the dims along which the operand was broadcast (:func:`unbroadcast`).
``select`` routes the cotangent to the branch each element came from; the
condition, a bool, gets none. ``convert`` converts the cotangent back, and only
between floating-point dtypes: a conversion to or from an integer is a constant.
"""

from __future__ import annotations

from ..helpers import is_differentiable, mul, scalar, unbroadcast
from ..forward.elementwise import BINARY_PARTIALS, UNARY_PARTIALS


def _unary_rule(name):
    partial = UNARY_PARTIALS[name]

    def rule(b, primals, outs, cts):
        (x,), (out,), (ct,) = primals, outs, cts
        return [mul(b, ct, partial(b, x, out))]
    return rule


def _binary_rule(name):
    partial = BINARY_PARTIALS[name]

    def rule(b, primals, outs, cts):
        (x, y), (out,), (ct,) = primals, outs, cts
        dx, dy = partial(b, x, y, out)
        return [unbroadcast(b, mul(b, ct, dx), x.shape), unbroadcast(b, mul(b, ct, dy), y.shape)]
    return rule


def select_rule(b, primals, outs, cts):
    (c, x, y), (ct,) = primals, cts
    zero = scalar(b, 0, ct)
    return [None,
            unbroadcast(b, b.emit("select", c, ct, zero), x.shape),
            unbroadcast(b, b.emit("select", c, zero, ct), y.shape)]


def convert_rule(b, primals, outs, cts, dtype):
    (x,), (ct,) = primals, cts
    if not is_differentiable(x):
        return [None]
    return [b.convert(ct, x.dtype)]


RULES = {name: _unary_rule(name) for name in UNARY_PARTIALS}
RULES.update({name: _binary_rule(name) for name in BINARY_PARTIALS})
RULES.update({"select": select_rule, "convert": convert_rule})
