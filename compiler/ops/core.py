"""The op registry (:data:`OPS`, :func:`define`), type inference for an equation
(:func:`infer_types`), the 2**63-byte size limit, and the checks every family's type
inference shares."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, IRError, ShapeError


class Op:
    def __init__(self, name: str, family: str, attrs: tuple, infer, doc: str = ""):
        self.name = name
        self.family = family
        self.attrs = attrs
        self.infer = infer
        self.doc = doc

    def __repr__(self):
        return f"Op({self.name}, {self.family})"


OPS: dict[str, Op] = {}


def define(name, family, attrs, infer, doc=""):
    OPS[name] = Op(name, family, tuple(attrs), infer, doc)


def infer_types(op: str, in_types, attrs: dict):
    """Result types of `op` applied to operands of `in_types`; checks the attrs."""
    try:
        d = OPS[op]
    except KeyError:
        raise IRError(f"unknown op {op!r}") from None
    if set(attrs) != set(d.attrs):
        raise IRError(f"op {op} takes attributes {sorted(d.attrs)}, got {sorted(attrs)}")
    types = d.infer(list(in_types), **attrs)
    for t in types:
        check_size(t.shape, t.dtype, f"{op}: the result")
    return types


# Compiled code (MLIR, IREE) indexes memory with 64-bit integers: an array must have
# fewer than 2**63 bytes. Bigger shapes are refused where they appear, not left to overflow.
MAX_BYTES = 2 ** 63 - 1


def check_size(shape, dtype, what: str = "an array"):
    """Raise ShapeError if an array of `shape` and `dtype` would not fit in 2**63 bytes
    (a symbolic dim counts as its coefficient: its size when the symbol is 1)."""
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) else d.coef
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ShapeError(f"{what} would have shape {_fmt_shape(shape)} of {np.dtype(dtype)}: {n} elements, "
                         f"{nbytes} bytes, more than the 2**63 - 1 bytes compiled code can address")


# --- helpers -----------------------------------------------------------------------------------

def _T(shape, dtype):
    from ..ir import TensorType
    return TensorType(shape, dtype)


def _check_kind(op, t, kind, which="operand"):
    if t.dtype not in dt.KINDS[kind]:
        allowed = {"float": "floating-point", "complex": "complex", "part": "float32 or float64", "int": "integer",
                   "integer_or_bool": "integer or bool", "numeric": "integer or floating-point",
                   "inexact": "floating-point or complex", "number": "integer, floating-point or complex",
                   "any": "real (not complex)", "all": "any"}[kind]
        extra = ("" if not dt.is_complex(t.dtype) else " (complex numbers have no order)"
                 if kind in ("any", "numeric") else " (not complex)")
        raise DTypeError(f"{op}: {which} has dtype {t.dtype}, expected a {allowed} dtype{extra}")


def _check_arity(op, ts, n):
    if len(ts) != n:
        raise IRError(f"{op} takes {n} operand(s), got {len(ts)}")


def _broadcast_equal_rank(op, ts):
    ranks = {t.rank for t in ts}
    if len(ranks) != 1:
        raise ShapeError(f"{op}: operands have ranks {[t.rank for t in ts]}; the IR needs equal ranks")
    out = []
    for i in range(ts[0].rank):
        size = 1
        for t in ts:
            d = t.shape[i]
            if d == 1:
                continue
            if size == 1:
                size = d
            elif d != size:
                raise ShapeError(f"{op}: operands could not be broadcast together with shapes "
                                 + " ".join(_fmt_shape(t.shape) for t in ts))
        out.append(size)
    return tuple(out)


def _fmt_shape(shape):
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _check_axes(op, axes, rank, name="axes"):
    if not isinstance(axes, tuple) or any(not isinstance(a, int) or isinstance(a, bool) for a in axes):
        raise IRError(f"{op}: {name} must be a tuple of ints, got {axes!r}")
    if any(not 0 <= a < rank for a in axes):
        raise ShapeError(f"{op}: {name} {axes} out of range for rank {rank}")
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{op}: repeated axis in {name} {axes}")
