"""The elementwise family: every unary and binary op (``UNARY``, ``BINARY``: the dtype
kinds each accepts and the result dtype), ``select``, ``convert`` and ``bitcast``.
Operands have one dtype and equal rank; a size-1 dim broadcasts.

A result is ``"same"`` (the operand dtype), ``"bool"``, ``"part"`` (the component
dtype: ``abs``, ``real`` and ``imag`` of a complex64 are float32) or ``"complex"``
(``complex(re, im)`` of two float32s is complex64)."""

from __future__ import annotations


from .. import dtypes as dt
from ..errors import DTypeError
from .core import _T, _broadcast_equal_rank, _check_arity, _check_kind, define

# --- elementwise -------------------------------------------------------------------------------

UNARY = {
    # name: (accepted dtype kind, result: "same" or "bool")
    "negative": ("number", "same"), "abs": ("number", "part"), "sign": ("numeric", "same"),
    "square": ("number", "same"),
    "exp": ("inexact", "same"), "expm1": ("float", "same"), "log": ("inexact", "same"),
    "log1p": ("float", "same"), "sqrt": ("inexact", "same"), "rsqrt": ("float", "same"),
    "reciprocal": ("inexact", "same"),
    "sin": ("inexact", "same"), "cos": ("inexact", "same"), "tan": ("float", "same"),
    "tanh": ("float", "same"), "arcsin": ("float", "same"), "arccos": ("float", "same"),
    "arctan": ("float", "same"), "sinh": ("float", "same"), "cosh": ("float", "same"),
    "sigmoid": ("float", "same"), "erf": ("float", "same"),
    "floor": ("float", "same"), "ceil": ("float", "same"), "round": ("float", "same"),
    "logical_not": ("all", "bool"), "bitwise_not": ("integer_or_bool", "same"),
    "isnan": ("float", "bool"), "isfinite": ("float", "bool"), "isinf": ("float", "bool"),
    # the identity, whose derivative automatic differentiation takes to be zero
    "stop_gradient": ("all", "same"),
    # complex numbers: the parts and the conjugate (vmapc.numpy gives real inputs NumPy's answers)
    "real": ("complex", "part"), "imag": ("complex", "part"), "conj": ("complex", "same"),
}

BINARY = {
    "add": ("all", "same"), "subtract": ("number", "same"), "multiply": ("all", "same"),
    "divide": ("inexact", "same"), "floor_divide": ("numeric", "same"),
    "remainder": ("numeric", "same"), "power": ("number", "same"),
    "maximum": ("any", "same"), "minimum": ("any", "same"), "arctan2": ("float", "same"),
    "copysign": ("float", "same"),
    "equal": ("all", "bool"), "not_equal": ("all", "bool"), "less": ("any", "bool"),
    "less_equal": ("any", "bool"), "greater": ("any", "bool"), "greater_equal": ("any", "bool"),
    "logical_and": ("all", "bool"), "logical_or": ("all", "bool"), "logical_xor": ("all", "bool"),
    "bitwise_and": ("integer_or_bool", "same"), "bitwise_or": ("integer_or_bool", "same"),
    "bitwise_xor": ("integer_or_bool", "same"),
    # NumPy's shifts: right_shift is arithmetic for signed and logical for unsigned dtypes; a
    # shift by at least the bit width (or by a negative amount) gives 0, or -1 for a negative
    # signed operand shifted right (NumPy's npy_lshift/npy_rshift)
    "left_shift": ("int", "same"), "right_shift": ("int", "same"),
    # complex(re, im) of two float32 or float64 operands: complex64 or complex128
    "complex": ("part", "complex"),
}


def _result(name, result, d):
    if result == "bool":
        return dt.BOOL
    if result == "part":
        return dt.component(d)
    if result == "complex":
        return dt.complex_of(d)
    return d


def _unary_infer(name, kind, result):
    def infer(ts):
        _check_arity(name, ts, 1)
        _check_kind(name, ts[0], kind)
        return [_T(ts[0].shape, _result(name, result, ts[0].dtype))]
    return infer


def _binary_infer(name, kind, result):
    def infer(ts):
        _check_arity(name, ts, 2)
        if ts[0].dtype != ts[1].dtype:
            raise DTypeError(f"{name}: operand dtypes differ ({ts[0].dtype} and {ts[1].dtype}); "
                             "the IR needs explicit conversions")
        _check_kind(name, ts[0], kind)
        return [_T(_broadcast_equal_rank(name, ts), _result(name, result, ts[0].dtype))]
    return infer


for _n, (_k, _r) in UNARY.items():
    define(_n, "elementwise", (), _unary_infer(_n, _k, _r))
for _n, (_k, _r) in BINARY.items():
    define(_n, "elementwise", (), _binary_infer(_n, _k, _r))


def _select_infer(ts):
    _check_arity("select", ts, 3)
    if ts[0].dtype != dt.BOOL:
        raise DTypeError(f"select: the condition has dtype {ts[0].dtype}, expected bool")
    if ts[1].dtype != ts[2].dtype:
        raise DTypeError(f"select: branch dtypes differ ({ts[1].dtype} and {ts[2].dtype})")
    return [_T(_broadcast_equal_rank("select", ts), ts[1].dtype)]


define("select", "elementwise", (), _select_infer,
       "select(c, x, y): x where c is true, else y (NumPy's where with three arguments).")


def _convert_infer(ts, dtype):
    _check_arity("convert", ts, 1)
    return [_T(ts[0].shape, dt.canonical(dtype))]


define("convert", "elementwise", ("dtype",), _convert_infer,
       "convert[dtype](x): NumPy's astype (floats to ints truncate toward zero; to bool is x != 0; "
       "complex to real keeps the real part).")


def _bitcast_infer(ts, dtype):
    _check_arity("bitcast", ts, 1)
    src, dst = ts[0].dtype, dt.canonical(dtype)
    if dt.BOOL in (src, dst) or src.itemsize != dst.itemsize or dt.is_complex(src) or dt.is_complex(dst):
        raise DTypeError(f"bitcast: cannot reinterpret {src} as {dst}; the dtypes must be real numbers "
                         "(not bool, not complex) of one size")
    return [_T(ts[0].shape, dst)]


define("bitcast", "elementwise", ("dtype",), _bitcast_infer,
       "bitcast[dtype](x): the bits of each element reinterpreted as dtype, of the same size "
       "(NumPy's x.view(dtype)).")
