"""Reference rules of the elementwise family: NumPy's ufuncs, with the departures
compiled code makes (integer division by zero gives 0, an integer to a negative power
truncates, sigmoid in the numerically careful form)."""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt


def _erf(x):
    f = np.vectorize(math.erf, otypes=[np.float64])
    return f(x.astype(np.float64)).astype(x.dtype)


def _sigmoid(x):
    # e/(1+e) for x < 0, not 1 - 1/(1+e), which cancels (1e-3 relative error at x = -9.7);
    # float16 in float32, rounded once, as the compiled code does
    y = x.astype(np.float32) if x.dtype == np.float16 else x
    e = np.exp(-np.abs(y))
    return np.where(y >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _int_power(a, b):
    if not dt.is_int(a.dtype):
        return np.power(a, b)
    neg = b < 0
    r = np.power(a, np.where(neg, 0, b).astype(b.dtype))
    if dt.is_unsigned(a.dtype):
        return r
    odd = (b % 2) != 0
    r_neg = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(a.dtype)
    return np.where(neg, r_neg, r).astype(a.dtype)


def _int_div_guard(fn):
    """Integer floor_divide/remainder as NumPy computes them, without its run-time
    warnings: a zero divisor gives 0; MIN // -1 wraps to MIN (remainder 0)."""
    def rule(a, b):
        if not dt.is_int(a.dtype):
            return fn(a, b)
        zero = b == 0
        safe_b = np.where(zero, 1, b).astype(b.dtype)
        if not dt.is_unsigned(a.dtype):
            minv = np.iinfo(a.dtype).min
            ovf = (a == minv) & (safe_b == -1)
            safe_b = np.where(ovf, 1, safe_b).astype(b.dtype)
            r = fn(a, safe_b)
            if fn is np.remainder:
                r = np.where(ovf, 0, r)
        else:
            r = fn(a, safe_b)
        return np.where(zero, 0, r).astype(a.dtype)
    return rule


def _complex(re, im):
    """re + im*j exactly (im * 1j would turn an infinite im into a NaN real part)."""
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), dt.complex_of(re.dtype))
    out.real, out.imag = re, im
    return out


_UNARY = {
    "negative": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square,
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt,
    "rsqrt": lambda x: (1 / np.sqrt(x)).astype(x.dtype), "reciprocal": np.reciprocal,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "arcsin": np.arcsin,
    "arccos": np.arccos, "arctan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "sigmoid": _sigmoid, "erf": _erf, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "logical_not": np.logical_not, "bitwise_not": np.invert,
    "isnan": np.isnan, "isfinite": np.isfinite, "isinf": np.isinf,
    "stop_gradient": lambda x: x,
    "real": np.real, "imag": np.imag, "conj": np.conjugate,
}

_BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
    "floor_divide": _int_div_guard(np.floor_divide), "remainder": _int_div_guard(np.remainder),
    "power": _int_power, "maximum": np.maximum, "minimum": np.minimum, "arctan2": np.arctan2,
    "copysign": np.copysign,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor, "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor,
    "left_shift": np.left_shift, "right_shift": np.right_shift,
    "complex": lambda re, im: _complex(re, im),
}




def float_to_int(x: np.ndarray, dtype) -> np.ndarray:
    """Float to integer with one defined result for every input (NumPy leaves NaN and
    out-of-range values to the platform): truncate toward zero through int64 and wrap
    to the target's width (NumPy's answer on x86 in int32's range); NaN, infinities and values outside
    int64's range give int64's minimum, then wrap; to uint64, values in [2**63, 2**64)
    convert exactly. ``vmapc.lowering.base.convert`` emits the same rule."""
    dtype = np.dtype(dtype)
    t = np.trunc(x.astype(np.float64))          # exact for float16/32
    in_range = (t >= -2.0 ** 63) & (t < 2.0 ** 63)
    r = np.where(in_range, t, 0.0).astype(np.int64)
    r[~in_range] = np.iinfo(np.int64).min
    if dtype == np.uint64:
        high = (t >= 2.0 ** 63) & (t < 2.0 ** 64)
        r = r.view(np.uint64)
        r[high] = np.where(high, t - 2.0 ** 63, 0.0).astype(np.uint64)[high] + np.uint64(2 ** 63)
        return r
    return r.astype(dtype)     # int64 to a narrower int wraps (two's complement)


def _convert(x, dtype):
    dtype = np.dtype(dtype)
    if dt.is_complex(x.dtype) and not dt.is_complex(dtype) and dtype != np.bool_:
        x = np.real(x)           # NumPy's astype keeps the real part (with a ComplexWarning)
    if dt.is_float(x.dtype) and (dt.is_int(dtype) or dt.is_unsigned(dtype)):
        return float_to_int(x, dtype)
    return x.astype(dtype)


RULES = {name: (lambda f: lambda x: f(x))(f) for name, f in _UNARY.items()}
RULES.update({name: (lambda f: lambda a, b: f(a, b))(f) for name, f in _BINARY.items()})
RULES.update({
    "select": lambda c, a, b: np.where(c, a, b),
    "convert": _convert,
    "bitcast": lambda x, dtype: np.asarray(x).view(dtype),
})
