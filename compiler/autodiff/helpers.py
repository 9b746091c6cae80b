"""Helpers that differentiation rules share.

Rules see IR values (:class:`~vmapc.ir.Var`) and emit ordinary ops through a
:class:`~vmapc.ir.Builder`, like batching rules do. A tangent or cotangent that is
known to be zero is ``None`` (a *symbolic zero*): rules skip the work for it, and
the passes only materialize zeros where a program's output needs a value.

Elementwise ops broadcast size-1 dims of equal-rank operands, so an operand's
cotangent must be summed over the dims its operand was stretched along before it
has the operand's shape: :func:`unbroadcast`. This is where reverse-mode rules of
array languages most often go wrong, so every rule that meets broadcasting goes
through it.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..ir import Builder, Var


def is_differentiable(v: Var) -> bool:
    """Only floating-point values carry tangents; integers and bools are constants to AD."""
    return dt.is_float(v.dtype)


def scalar(b: Builder, value, like: Var) -> Var:
    """A constant of `like`'s dtype with `like`'s rank and every dim 1 (it broadcasts
    against `like` in elementwise ops)."""
    c = b.constant(np.asarray(value, dtype=like.dtype))
    return b.reshape(c, (1,) * like.rank)


def zeros(b: Builder, shape, dtype) -> Var:
    return b.full(tuple(shape), 0, dtype)


def zeros_like(b: Builder, v: Var) -> Var:
    return zeros(b, v.shape, v.dtype)


def ew(b: Builder, op: str, *xs: Var) -> Var:
    """An elementwise op on equal-rank operands."""
    return b.emit(op, *xs)


def mul(b: Builder, x: Var | None, d) -> Var | None:
    """x times a partial derivative `d`, which is a Var, or the Python number 1, -1 or 0
    (the constant partials of add and subtract); None (zero) in, None out."""
    if x is None or (isinstance(d, (int, float)) and d == 0):
        return None
    if isinstance(d, (int, float)):
        return x if d == 1 else ew(b, "negative", x) if d == -1 else ew(b, "multiply", x, scalar(b, d, x))
    return ew(b, "multiply", x, d)


def add(b: Builder, x: Var | None, y: Var | None) -> Var | None:
    """x + y where either may be a symbolic zero (None)."""
    if x is None:
        return y
    if y is None:
        return x
    return ew(b, "add", x, y)


def broadcast_to(b: Builder, x: Var, shape) -> Var:
    """An equal-rank x with size-1 dims stretched to `shape` (nothing when it has it)."""
    return b.broadcast_in_dim(x, tuple(shape), tuple(range(x.rank)))


def unbroadcast(b: Builder, ct: Var | None, shape) -> Var | None:
    """The cotangent of an operand of `shape` that was broadcast to ``ct.shape``: summed
    over every dim where the operand had size 1 and the result did not."""
    if ct is None:
        return None
    shape = tuple(shape)
    if ct.shape == shape:
        return ct
    axes = tuple(i for i, (a, c) in enumerate(zip(shape, ct.shape)) if a == 1 and c != 1)
    if axes:
        ct = b.emit("reduce_sum", ct, axes=axes)
    return b.reshape(ct, shape)


def sum_to_scalar(b: Builder, x: Var) -> Var:
    return b.emit("reduce_sum", x, axes=tuple(range(x.rank))) if x.rank else x


# Ops whose results are constants to differentiation: they produce integers or bools
# (comparisons, logical, bitwise and shift ops, predicates, arg-reductions), random
# bits and keys (``threefry2x32``, ``key_use``: the identity on a uint32 key), the bits
# of a value read as another dtype (``bitcast``: no derivative, as in JAX), an
# example's index (``axis_index``), or take no operands. Every other op has a forward and a reverse rule
# (``tests/test_op_tables.py`` checks both tables against this list).
NON_DIFFERENTIABLE = frozenset({
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "isnan", "isfinite", "isinf",
    "argmax", "argmin", "reduce_any", "reduce_all",
    "iota", "constant",
    "left_shift", "right_shift", "bitcast", "threefry2x32", "key_use", "axis_index",
    # complex values are refused before differentiation (vmapc.autodiff._refuse_complex)
    "real", "imag", "conj", "complex",
})
