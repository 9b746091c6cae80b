"""Forward-mode rules of the elementwise family, and the partial derivatives that the
reverse-mode rules share.

An elementwise op's derivative is diagonal: each result element depends on the
operand elements at the same position only. So one formula per operand, its
*partial derivative*, serves both modes: forward mode multiplies it into the
operand's tangent, reverse mode into the result's cotangent (then sums over the
dims the operand was broadcast along). :data:`PARTIALS` holds those formulas, as
``partial(b, x, out) -> d`` for unary ops and ``partial(b, x, y, out) -> (dx, dy)``
for binary ones; a partial is an IR value, or the Python number 1, -1 or 0.

Where a function has a kink or a singularity the formula picks a value, the one JAX
and PyTorch pick (``docs/autodiff.md`` lists them):

* ``abs`` at 0: 0 (``sign(0)``); ``sqrt``, ``log``, ``rsqrt``, ``reciprocal`` at 0:
  infinite;
* ``maximum``/``minimum`` at a tie: half to each operand; where an operand is NaN,
  0 to both;
* ``power(x, y)``: the partial in x is 0 where ``y == 0`` (also at ``x == 0``);
  the partial in y is 0 where ``x == 0``;
* ``floor``, ``ceil``, ``round``, ``sign``, ``floor_divide`` and ``stop_gradient``:
  0 everywhere (their derivative, where it exists);
* ``remainder(x, y) = x - y * floor(x / y)``: 1 in x, ``-floor(x / y)`` in y;
* ``copysign(x, y) = |x|`` with y's sign: ``sign(x) * sign(out)`` in x (0 at
  ``x == 0``, the kink of ``abs``), 0 in y (a jump where y changes sign).
"""

from __future__ import annotations

import math

from ..helpers import add, broadcast_to, ew, is_differentiable, mul, scalar


def _recip(b, x):
    return ew(b, "reciprocal", x)


def _one_minus_sq(b, v):
    return ew(b, "subtract", scalar(b, 1, v), ew(b, "square", v))


UNARY_PARTIALS = {
    "negative": lambda b, x, out: -1,
    "abs": lambda b, x, out: ew(b, "sign", x),
    "sign": lambda b, x, out: 0,
    "square": lambda b, x, out: ew(b, "multiply", x, scalar(b, 2, x)),
    "exp": lambda b, x, out: out,
    "expm1": lambda b, x, out: ew(b, "add", out, scalar(b, 1, out)),
    "log": lambda b, x, out: _recip(b, x),
    "log1p": lambda b, x, out: _recip(b, ew(b, "add", x, scalar(b, 1, x))),
    "sqrt": lambda b, x, out: ew(b, "divide", scalar(b, 0.5, out), out),
    "rsqrt": lambda b, x, out: ew(b, "multiply", scalar(b, -0.5, out), ew(b, "divide", out, x)),
    "reciprocal": lambda b, x, out: ew(b, "negative", ew(b, "square", out)),
    "sin": lambda b, x, out: ew(b, "cos", x),
    "cos": lambda b, x, out: ew(b, "negative", ew(b, "sin", x)),
    "tan": lambda b, x, out: ew(b, "add", scalar(b, 1, out), ew(b, "square", out)),
    "tanh": lambda b, x, out: _one_minus_sq(b, out),
    "arcsin": lambda b, x, out: ew(b, "rsqrt", _one_minus_sq(b, x)),
    "arccos": lambda b, x, out: ew(b, "negative", ew(b, "rsqrt", _one_minus_sq(b, x))),
    "arctan": lambda b, x, out: _recip(b, ew(b, "add", scalar(b, 1, x), ew(b, "square", x))),
    "sinh": lambda b, x, out: ew(b, "cosh", x),
    "cosh": lambda b, x, out: ew(b, "sinh", x),
    "sigmoid": lambda b, x, out: ew(b, "multiply", out, ew(b, "subtract", scalar(b, 1, out), out)),
    "erf": lambda b, x, out: ew(b, "multiply", scalar(b, 2 / math.sqrt(math.pi), x),
                                ew(b, "exp", ew(b, "negative", ew(b, "square", x)))),
    "floor": lambda b, x, out: 0,
    "ceil": lambda b, x, out: 0,
    "round": lambda b, x, out: 0,
    "stop_gradient": lambda b, x, out: 0,
}


def _select(b, c, x, y):
    """select with scalar constants broadcast (c has the shape of the result)."""
    return ew(b, "select", c, x, y)


def _max_partials(b, x, y, out, cmp):
    """The partials of maximum (cmp="greater") or minimum (cmp="less"): 1 to the
    operand that wins, a half to each at a tie, 0 to both where one is NaN."""
    tie = ew(b, "equal", x, y)
    half, one, zero = scalar(b, 0.5, out), scalar(b, 1, out), scalar(b, 0, out)
    dx = _select(b, ew(b, cmp, x, y), one, _select(b, tie, half, zero))
    dy = _select(b, ew(b, cmp, y, x), one, _select(b, tie, half, zero))
    return dx, dy


def _power_partials(b, x, y, out):
    zero, one = scalar(b, 0, out), scalar(b, 1, out)
    ym1 = ew(b, "subtract", y, scalar(b, 1, y))
    dx = _select(b, ew(b, "equal", y, scalar(b, 0, y)), zero,
                 ew(b, "multiply", y, ew(b, "power", x, ym1)))
    safe_x = _select(b, ew(b, "equal", x, scalar(b, 0, x)), one, x)
    dy = ew(b, "multiply", out, ew(b, "log", safe_x))
    return dx, dy


def _atan2_partials(b, x, y, out):
    den = ew(b, "add", ew(b, "square", x), ew(b, "square", y))
    return ew(b, "divide", y, den), ew(b, "negative", ew(b, "divide", x, den))


BINARY_PARTIALS = {
    "add": lambda b, x, y, out: (1, 1),
    "subtract": lambda b, x, y, out: (1, -1),
    "multiply": lambda b, x, y, out: (y, x),
    "divide": lambda b, x, y, out: (_recip(b, y), ew(b, "negative", ew(b, "divide", out, y))),
    "floor_divide": lambda b, x, y, out: (0, 0),
    "remainder": lambda b, x, y, out: (1, ew(b, "negative", ew(b, "floor_divide", x, y))),
    "power": _power_partials,
    "maximum": lambda b, x, y, out: _max_partials(b, x, y, out, "greater"),
    "minimum": lambda b, x, y, out: _max_partials(b, x, y, out, "less"),
    "arctan2": _atan2_partials,
    "copysign": lambda b, x, y, out: (ew(b, "multiply", ew(b, "sign", x), ew(b, "sign", out)), 0),
}


# --- the rules: rule(b, primals, tangents, outs, **attrs) -> tangents of outs ---------------------

def _unary_rule(name):
    partial = UNARY_PARTIALS[name]

    def rule(b, primals, tangents, outs):
        (x,), (t,), (out,) = primals, tangents, outs
        return [mul(b, t, partial(b, x, out))]
    return rule


def _binary_rule(name):
    partial = BINARY_PARTIALS[name]

    def rule(b, primals, tangents, outs):
        (x, y), (tx, ty), (out,) = primals, tangents, outs
        dx, dy = partial(b, x, y, out)
        t = add(b, mul(b, tx, dx), mul(b, ty, dy))
        return [None if t is None else broadcast_to(b, t, out.shape)]
    return rule


def select_rule(b, primals, tangents, outs):
    (c, x, y), (_, tx, ty), (out,) = primals, tangents, outs
    if tx is None and ty is None:
        return [None]
    zero = scalar(b, 0, out)
    return [broadcast_to(b, ew(b, "select", c, zero if tx is None else tx, zero if ty is None else ty),
                         out.shape)]


def convert_rule(b, primals, tangents, outs, dtype):
    (t,), (out,) = tangents, outs
    if t is None or not is_differentiable(out):
        return [None]
    return [b.convert(t, dtype)]


RULES = {name: _unary_rule(name) for name in UNARY_PARTIALS}
RULES.update({name: _binary_rule(name) for name in BINARY_PARTIALS})
RULES.update({"select": select_rule, "convert": convert_rule})
