"""Elementwise functions: NumPy's ufuncs (one IR op each where NumPy's loops map to one,
composites of ops otherwise), ``where``, ``clip``, ``round``, ``astype``, ``asarray`` and
vmapc's extensions (``sigmoid``, ``erf``, ``rsqrt``)."""

from __future__ import annotations

import math
import operator

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, UnsupportedError
from ..tracing import _python_arithmetic, user_loc

from ._core import _b, _bcast, _c, _e, _emit_elementwise, _has_tracer, _implements, _is_int, _is_tracer, _loops, _reject, _result_type, _var, _wrap
from .writes import with_out

# --- elementwise -------------------------------------------------------------------------------

# ufunc name -> IR op, for ufuncs whose NumPy loops map to one op
_UNARY_OPS = {
    "negative": "negative", "absolute": "abs", "fabs": "abs", "sign": "sign", "square": "square",
    "exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p", "sqrt": "sqrt",
    "reciprocal": "reciprocal", "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh",
    "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan", "sinh": "sinh", "cosh": "cosh",
    "floor": "floor", "ceil": "ceil", "rint": "round", "logical_not": "logical_not",
    "invert": "bitwise_not", "isnan": "isnan", "isfinite": "isfinite", "isinf": "isinf",
}
_BINARY_OPS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "floor_divide": "floor_divide", "remainder": "remainder", "power": "power",
    "maximum": "maximum", "minimum": "minimum", "arctan2": "arctan2", "copysign": "copysign",
    "equal": "equal", "not_equal": "not_equal", "less": "less", "less_equal": "less_equal",
    "greater": "greater", "greater_equal": "greater_equal", "logical_and": "logical_and",
    "logical_or": "logical_or", "logical_xor": "logical_xor", "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor",
    "left_shift": "left_shift", "right_shift": "right_shift",
}
# NumPy's bool loops, in terms of ops that take bool
_BOOL_BINARY = {"add": "logical_or", "multiply": "logical_and", "maximum": "logical_or",
                "minimum": "logical_and"}
_IDENTITY_ON_INT = {"floor", "ceil", "rint", "trunc"}
_CONST_ON_NONFLOAT = {"isnan": False, "isinf": False, "isfinite": True}


def _ufunc_call(ufunc, args, dtype=None):
    name = ufunc.__name__
    if not _has_tracer(args):
        return ufunc(*args) if dtype is None else ufunc(*args, dtype=dtype)
    in_dts, out_dt = _loops(ufunc, args, dtype)
    if name in _COMPARISONS:
        r = _special_comparison(name, args, in_dts)
        if r is not None:
            return _wrap(r)
    if name == "power" and not dt.is_float(in_dts[1]) and not _is_tracer(args[1]) \
            and (_np.asarray(args[1]) < 0).any():
        raise DTypeError("numpy.power: integers to negative integer powers are not allowed; "
                         "convert to a float dtype first", user_loc())
    vars_ = [_var(a, d) for a, d in zip(args, in_dts)]
    d = in_dts[0]
    if ufunc.nin == 1:
        (x,) = vars_
        if dt.is_complex(d) and name in _COMPLEX_UNARY:
            return _wrap(_COMPLEX_UNARY[name](x))
        if name in _IDENTITY_ON_INT and not dt.is_float(d):
            return _wrap(x)
        if name in _CONST_ON_NONFLOAT and not dt.is_float(d):
            return _wrap(_b().full(x.shape, _CONST_ON_NONFLOAT[name], dt.BOOL))
        if d == dt.BOOL and name in ("absolute", "square", "reciprocal"):
            return _wrap(x)
        if name == "reciprocal" and dt.is_int(d):
            return _wrap(_int_reciprocal(x))
        if name in _UNARY_OPS:
            return _wrap(_b().emit(_UNARY_OPS[name], x))
        return _wrap(_composite(_COMPOSITE_UNARY[name], vars_, out_dt))
    if name in ("fmax", "fmin") and not dt.is_float(d):
        name = {"fmax": "maximum", "fmin": "minimum"}[name]  # no NaN to skip
    op = _BOOL_BINARY[name] if d == dt.BOOL and name in _BOOL_BINARY else _BINARY_OPS.get(name)
    if op is not None:
        return _wrap(_emit_elementwise(op, vars_))
    return _wrap(_composite(_COMPOSITE_BINARY[name], _bcast(vars_)[0], out_dt))


_COMPARISONS = {"less": operator.lt, "less_equal": operator.le, "greater": operator.gt,
                "greater_equal": operator.ge, "equal": operator.eq, "not_equal": operator.ne}


def _special_comparison(name, args, in_dts):
    """The comparisons NumPy does without converting both operands to one dtype: against a
    Python int outside the other operand's range (the answer is then the same for every
    element), and int64 against uint64. None for the ordinary case."""
    cmp = _COMPARISONS[name]
    for i, x in enumerate(args):
        if type(x) is int and dt.is_int(in_dts[i]):
            info = _np.iinfo(in_dts[i])
            if not info.min <= x <= info.max:
                other = _var(args[1 - i], in_dts[1 - i])
                # 0 is in range, so it compares with x as every element does
                return _b().full(other.shape, cmp(0, x) if i == 1 else cmp(x, 0), dt.BOOL)
    if in_dts[0] == in_dts[1]:
        return None
    # int64 against uint64: a negative signed operand is below every unsigned value
    a, b = _var(args[0], in_dts[0]), _var(args[1], in_dts[1])
    signed = a if dt.is_unsigned(b.dtype) else b
    below = cmp(-1, 0) if signed is a else cmp(0, -1)
    same = _e(name, _b().convert(a, dt.UINT64), _b().convert(b, dt.UINT64))
    return _e("select", _e("less", signed, _c(signed, 0)), _c(same, below), same)


def _inplace(f, a, b):
    """NumPy's in-place operator ``a += b`` (and -=, *=...): a is written in place (every alias
    and view of it sees the new value; see vmapc.functionalize), keeping its shape and dtype;
    the result must broadcast to a's shape and cast to its dtype under 'same_kind'. A traced
    Python number or NumPy scalar is immutable: the name is rebound, as Python does."""
    if not _is_tracer(a) or a.weak is not None or a._immutable:
        return _python_arithmetic(f, a, b)
    from ..functionalize import assign, check_writable
    r = f(a, b)
    if r.shape != a.shape:
        shape = lambda s: "(" + ",".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
        raise ShapeError(f"non-broadcastable output operand with shape {shape(a.shape)} doesn't match the "
                         f"broadcast shape {shape(r.shape)}", user_loc())
    if not _np.can_cast(r.dtype, a.dtype, "same_kind"):
        raise DTypeError(f"Cannot cast ufunc '{f.__name__}' output from dtype('{r.dtype}') to "
                         f"dtype('{a.dtype}') with casting rule 'same_kind'", user_loc())
    check_writable(a, "in-place operation")
    assign(a, _b().convert(_var(r), a.dtype))
    return a


def _composite(rule, vars_, out_dt):
    """Apply a composite rule. float16 is computed in float32 and rounded once at the end,
    as NumPy's float16 loops do."""
    if vars_[0].dtype != dt.FLOAT16:
        return rule(*vars_)
    r = rule(*[_b().convert(v, dt.FLOAT32) for v in vars_])
    return _b().convert(r, out_dt)



def _int_reciprocal(x):
    """NumPy's integer reciprocal: 1 // x truncated toward zero, so 1 for 1, -1 for -1 and 0
    otherwise (0 for 0 too, as for integer division by zero)."""
    zero = _c(x, 0)
    r = _e("select", _e("equal", x, _c(x, 1)), _c(x, 1), zero)
    if not dt.is_unsigned(x.dtype):
        r = _e("select", _e("equal", x, _c(x, -1)), _c(x, -1), r)
    return r


def _keep_zero(x, r):
    """r, but x itself where x is 0, so that odd functions keep the sign of zero."""
    return _e("select", _e("equal", x, _c(x, 0)), x, r)


def _odd(x, r):
    """Extend r, computed from |x|, to negative x as an odd function."""
    return _keep_zero(x, _e("select", _e("less", x, _c(x, 0)), _e("negative", r), r))


def _arcsinh(x):
    # log1p(|x| + x^2 / (1 + sqrt(1 + x^2))) is accurate near 0; for large |x| (where x^2
    # would overflow) asinh(x) = log(2|x|) to within rounding.
    a = _e("abs", x)
    a2 = _e("multiply", a, a)
    small = _e("log1p", _e("add", a, _e("divide", a2, _e("add", _c(x, 1), _e("sqrt", _e("add", _c(x, 1), a2))))))
    large = _e("add", _e("log", a), _c(x, math.log(2)))
    big = _e("greater", a, _c(x, 1 / math.sqrt(_np.finfo(x.dtype).eps)))
    return _odd(x, _e("select", big, large, small))


def _arccosh(x):
    # Near 1: log1p(t + sqrt(2t + t^2)) with t = x - 1; beyond 2: log(x) + log1p(sqrt(1 - 1/x^2)),
    # which does not overflow. NaN below 1.
    t = _e("subtract", x, _c(x, 1))
    near = _e("log1p", _e("add", t, _e("sqrt", _e("add", _e("multiply", t, _c(x, 2)), _e("multiply", t, t)))))
    far = _e("add", _e("log", x), _e("log1p", _e("sqrt", _e("subtract", _c(x, 1), _e(
        "reciprocal", _e("multiply", x, x))))))
    r = _e("select", _e("greater", x, _c(x, 2)), far, near)
    return _e("select", _e("less", x, _c(x, 1)), _c(x, _np.nan), r)


def _hypot(a, b):
    # max * sqrt(1 + (min/max)^2) does not overflow; an infinite side wins over NaN (C99).
    a, b = _e("abs", a), _e("abs", b)
    hi, lo = _e("maximum", a, b), _e("minimum", a, b)
    r = _e("multiply", hi, _e("sqrt", _e("add", _c(a, 1), _e("square", _e("divide", lo, hi)))))
    r = _e("select", _e("equal", hi, _c(a, 0)), hi, r)
    return _e("select", _e("logical_or", _e("isinf", a), _e("isinf", b)), _c(a, _np.inf), r)


def _logaddexp(a, b):
    # NumPy's formula: equal arguments (infinities included) give x + log(2).
    r = _e("add", _e("maximum", a, b), _e("log1p", _e("exp", _e("negative", _e("abs", _e("subtract", a, b))))))
    return _e("select", _e("equal", a, b), _e("add", a, _c(a, math.log(2))), r)


_COMPOSITE_UNARY = {
    "positive": lambda x: x,
    "conjugate": lambda x: x,
    "exp2": lambda x: _e("power", _c(x, 2), x),
    "log2": lambda x: _e("divide", _e("log", x), _c(x, math.log(2))),
    "log10": lambda x: _e("divide", _e("log", x), _c(x, math.log(10))),
    "arcsinh": _arcsinh,
    "arccosh": _arccosh,
    "arctanh": lambda x: _e("multiply", _c(x, 0.5), _e("subtract", _e("log1p", x), _e("log1p", _e("negative", x)))),
    "trunc": lambda x: _e("select", _e("less", x, _c(x, 0)), _e("ceil", x), _e("floor", x)),
    "deg2rad": lambda x: _e("multiply", x, _c(x, math.pi / 180)),
    "radians": lambda x: _e("multiply", x, _c(x, math.pi / 180)),
    "rad2deg": lambda x: _e("multiply", x, _c(x, 180 / math.pi)),
    "degrees": lambda x: _e("multiply", x, _c(x, 180 / math.pi)),
    "cbrt": lambda x: _odd(x, _e("power", _e("abs", x), _c(x, 1 / 3))),
    # the sign bit, of -0.0 and of NaNs too: 1 with x's sign is -1
    "signbit": lambda x: _e("less", _e("copysign", _c(x, 1), x), _c(x, 0)),
}
def _parts_test(test, combine):
    """A test of a complex number made of the test of each part (isnan: either part is NaN)."""
    return lambda z: _e(combine, _e(test, _e("real", z)), _e(test, _e("imag", z)))


def _log_base(base):
    """log(z) / log(base), part by part (a complex division would turn log(0) = -inf + 0j
    into -inf + NaN j)."""
    def f(z):
        lz = _e("log", z)
        re, im = _e("real", lz), _e("imag", lz)
        return _e("complex", _e("divide", re, _c(re, math.log(base))), _e("divide", im, _c(im, math.log(base))))
    return f


# complex operands of ufuncs whose real form is another op or composite
_COMPLEX_UNARY = {
    "conjugate": lambda z: _e("conj", z),
    "rint": lambda z: _e("complex", _e("round", _e("real", z)), _e("round", _e("imag", z))),
    "log2": _log_base(2),
    "log10": _log_base(10),
    "isnan": _parts_test("isnan", "logical_or"),
    "isinf": _parts_test("isinf", "logical_or"),
    "isfinite": _parts_test("isfinite", "logical_and"),
}

_COMPOSITE_BINARY = {
    "fmax": lambda a, b: _e("select", _e("isnan", b), a, _e("select", _e("isnan", a), b, _e("maximum", a, b))),
    "fmin": lambda a, b: _e("select", _e("isnan", b), a, _e("select", _e("isnan", a), b, _e("minimum", a, b))),
    "hypot": _hypot,
    "logaddexp": _logaddexp,
    "float_power": lambda a, b: _e("power", a, b),
}


def _make_ufunc_wrapper(ufunc):
    def f(*args, out=None, where=True, dtype=None, **kwargs):
        if len(args) > ufunc.nin and out is None:     # out given positionally
            args, out = args[:ufunc.nin], args[ufunc.nin:]
        _reject(f"numpy.{ufunc.__name__}", kwargs)
        if out is None or (isinstance(out, tuple) and all(o is None for o in out)):
            if where is not True:
                raise UnsupportedError(f"numpy.{ufunc.__name__}: where= without out= leaves the other "
                                       "elements uninitialized; give out= too", user_loc())
            return _ufunc_call(ufunc, args, dtype=dtype)
        from .writes import ufunc_out
        return ufunc_out(ufunc, _ufunc_call(ufunc, args, dtype=dtype), out, where)
    f.__name__ = ufunc.__name__
    f.__doc__ = f"NumPy's ``{ufunc.__name__}`` on traced arrays."
    return f




_UFUNCS = [u for u in vars(_np).values() if isinstance(u, _np.ufunc)]
_SUPPORTED_UFUNCS = (set(_UNARY_OPS) | set(_BINARY_OPS) | set(_COMPOSITE_UNARY) | set(_COMPOSITE_BINARY)
                     | {"matmul", "true_divide", "mod", "modf"})

for _u in _UFUNCS:
    if _u.__name__ in _SUPPORTED_UFUNCS and _u.__name__ not in ("matmul", "modf"):
        globals()[_u.__name__] = _make_ufunc_wrapper(_u)

abs = absolute  # noqa: F821  (defined by the loop above)
true_divide = divide  # noqa: F821
mod = remainder  # noqa: F821


def invert(x):
    """``~x``: bitwise not (logical not for bool)."""
    return _ufunc_call(_np.invert, (x,))


bitwise_not = invert
bitwise_invert = invert


def modf(x, out=None, *, where=True, dtype=None, **kwargs):
    """NumPy's modf: the fractional and integral parts, both with x's sign (``modf(-0.5)`` is
    ``(-0.5, -0.0)``, ``modf(inf)`` is ``(0.0, inf)``); integers and bools give float16/64
    as NumPy's loops do."""
    _reject("numpy.modf", kwargs, out=out, where=where)
    if not _has_tracer((x,)):
        return _np.modf(x) if dtype is None else _np.modf(x, dtype=dtype)
    (d,), _ = _loops(_np.modf, (x,), dtype)
    v = _var(x, d)
    whole = _COMPOSITE_UNARY["trunc"](v)    # exact in every float dtype, as is the difference
    frac = _e("select", _e("isinf", v), _c(v, 0), _e("subtract", v, whole))
    return _wrap(_e("copysign", frac, v)), _wrap(whole)


# complex numbers: the parts, the argument, the tests of a dtype

@_implements(_np.real)
def real(val):
    """The real part (a real array is its own real part; a value, not a writable view)."""
    if not _has_tracer((val,)):
        return _np.real(val)
    v = _var(val)
    return _wrap(_e("real", v)) if dt.is_complex(v.dtype) else _wrap(v)


@_implements(_np.imag)
def imag(val):
    """The imaginary part (zeros of the same dtype for a real array)."""
    if not _has_tracer((val,)):
        return _np.imag(val)
    v = _var(val)
    return _wrap(_e("imag", v)) if dt.is_complex(v.dtype) else _wrap(_b().full(v.shape, 0, v.dtype))


@_implements(_np.angle)
def angle(z, deg=False):
    """The argument arctan2(imag, real) in radians (degrees if deg); float64 for integer
    and bool inputs, as in NumPy."""
    if not _has_tracer((z,)):
        return _np.angle(z, deg=deg)
    v = _var(z)
    if not dt.is_complex(v.dtype) and not dt.is_float(v.dtype):
        v = _b().convert(v, dt.FLOAT64)
    re, im = (_e("real", v), _e("imag", v)) if dt.is_complex(v.dtype) else (v, _c(v, 0))
    r = _e("arctan2", im, re)
    return _wrap(_e("multiply", r, _c(r, 180 / math.pi)) if deg else r)


def _conj_method(x):
    """``x.conj()``/``x.conjugate()``: the conjugate of a complex array, a copy of any other
    (bools stay bool, where the ufunc ``np.conjugate`` gives int8)."""
    v = _var(x)
    return _wrap(_e("conj", v)) if dt.is_complex(v.dtype) else _wrap(v)


@_implements(_np.iscomplexobj)
def iscomplexobj(x):
    """Whether x has a complex dtype (a Python bool, known when tracing)."""
    return dt.is_complex(_var(x).dtype) if _has_tracer((x,)) else _np.iscomplexobj(x)


@_implements(_np.isrealobj)
def isrealobj(x):
    return not iscomplexobj(x)


# vmapc extensions to NumPy

def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)) (scipy.special.expit)."""
    return _unary_float_ext("sigmoid", x, lambda a: 1 / (1 + _np.exp(-a)))


def erf(x):
    """Error function (scipy.special.erf)."""
    return _unary_float_ext("erf", x, _np.vectorize(math.erf))


def rsqrt(x):
    """1 / sqrt(x)."""
    return _unary_float_ext("rsqrt", x, lambda a: 1 / _np.sqrt(a))


def _unary_float_ext(op, x, concrete):
    """A unary float function: dtypes as for np.sqrt (float16 for int8, float64 for int64)."""
    (d,), _ = _loops(_np.sqrt, (x,))
    if not _is_tracer(x):
        with _np.errstate(over="ignore"):
            return _np.asarray(concrete(_np.asarray(x, dtype=_np.float64)), dtype=d)
    return _wrap(_b().emit(op, _var(x, d)))


@_implements(_np.round, getattr(_np, "around", None))
@with_out("numpy.round", "same_kind", exact_shape=False)
def round(a, decimals=0, out=None):  # noqa: A001
    """Round half to even (NumPy's rule). With ``decimals`` as NumPy computes it:
    rint(a * 10**d) / 10**d, or rint(a / 10**-d) * 10**-d for negative d (integers in
    float64, converted back)."""
    _reject("numpy.round", out=out)
    if not _is_tracer(a):
        return _np.round(a, decimals)
    if not _is_int(decimals):
        raise ShapeError(f"numpy.round: decimals must be an int, got {decimals!r}", user_loc())
    decimals = int(decimals)
    x = _var(a)
    if dt.is_complex(a.dtype):   # each part, as NumPy's
        re, im = (_var(round(part(a), decimals)) for part in (real, imag))
        return _wrap(_e("complex", re, im))
    if a.dtype == dt.BOOL:  # NumPy rounds bools with rint (to float16), and only to 0 decimals
        if decimals:
            raise DTypeError("numpy.round: bool arrays can only be rounded to 0 decimals", user_loc())
        return rint(a)  # noqa: F821
    if not dt.is_float(a.dtype):
        if decimals >= 0:
            return _wrap(x)     # a copy, as NumPy's
        return _wrap(_round_int(x, 10 ** -decimals))
    if decimals == 0:
        r = _b().emit("round", x)
    elif decimals > 0:
        f = _c(x, 10.0 ** decimals)
        r = _e("divide", _e("round", _e("multiply", x, f)), f)
    else:
        f = _c(x, 10.0 ** -decimals)
        r = _e("multiply", _e("round", _e("divide", x, f)), f)
    return _wrap(_b().convert(r, a.dtype))


around = round


def _round_int(x, f):
    """Integers rounded to a multiple of `f` (a power of ten), half to even, in integer
    arithmetic: NumPy's rint(x / f) * f converted back to x's dtype, computed exactly in
    int64 (uint64) without a float-to-int conversion. As that conversion does (see
    ``vmapc.reference.elementwise.float_to_int``), a result outside the 64-bit range
    gives int64's minimum, and a narrower dtype wraps. (NumPy goes through float64, so
    for 64-bit values beyond 2**53 it can differ by float rounding; vmapc's is exact.)"""
    b, d = _b(), x.dtype
    bits = dt.bits(d)
    if f > 2 << bits:                       # |x| < f / 2: everything rounds to 0
        return _e("multiply", x, _c(x, 0))
    signed = d in dt.SIGNED
    w = dt.INT64 if signed else dt.UINT64
    xw = b.convert(x, w)
    overflow = 2 ** 63                      # int64's minimum, as uint64 too
    if f > _np.iinfo(w).max:                # int64 and f = 10**19: 0, or out of range
        half = _c(xw, f // 2)
        out = _e("logical_or", _e("greater", xw, half), _e("less", xw, _e("negative", half)))
        return b.convert(_e("select", out, _c(xw, -overflow), _c(xw, 0)), d)
    fw = _c(xw, f)
    q = _e("floor_divide", xw, fw)
    rem = _e("subtract", xw, _e("multiply", q, fw))          # 0 <= rem < f
    rest = _e("subtract", fw, rem)
    odd = _e("not_equal", _e("remainder", q, _c(xw, 2)), _c(xw, 0))
    up = _e("logical_or", _e("greater", rem, rest), _e("logical_and", _e("equal", rem, rest), odd))
    q = _e("select", up, _e("add", q, _c(xw, 1)), q)
    r = _e("multiply", q, fw)
    if bits == 64:                          # q * f out of the 64-bit range
        lim = _c(xw, int(_np.iinfo(w).max) // f)
        out = _e("greater", q, lim)
        if signed:
            out = _e("logical_or", out, _e("less", q, _e("negative", lim)))
        r = _e("select", out, _c(xw, -overflow if signed else overflow), r)
    return b.convert(r, d)


@_implements(_np.where)
def where(condition, x=None, y=None):
    """``where(c, x, y)``: elementwise choice. The one-argument form has a data-dependent
    shape and cannot be compiled."""
    if x is None and y is None and _is_tracer(condition):
        raise UnsupportedError("numpy.where with one argument (like nonzero) returns a shape that "
                               "depends on the data, which ahead-of-time compilation cannot do; use "
                               "where(cond, x, y) with three arguments", user_loc())
    if not _has_tracer((condition, x, y)):
        return _np.where(condition) if x is None and y is None else _np.where(condition, x, y)
    if x is None or y is None:
        raise ShapeError("either both or neither of x and y should be given", user_loc())
    d = _result_type(x, y)
    # NumPy's where wraps a Python int that does not fit d (where(c, x_u8, -1) gives 255)
    x, y = (_np.asarray(v).astype(d) if type(v) is int else v for v in (x, y))
    out = _emit_elementwise("select", [_var(condition, dt.BOOL), _var(x, d), _var(y, d)])
    return _wrap(out)


@_implements(_np.clip)
@with_out("numpy.clip", "same_kind", exact_shape=False)
def clip(a, a_min=_np._NoValue, a_max=_np._NoValue, out=None, *, min=_np._NoValue, max=_np._NoValue, **kw):
    """NumPy's clip: ``minimum(maximum(a, a_min), a_max)``; either bound may be None."""
    _reject("numpy.clip", kw, out=out)
    lo = a_min if a_min is not _np._NoValue else (None if min is _np._NoValue else min)
    hi = a_max if a_max is not _np._NoValue else (None if max is _np._NoValue else max)
    if not _has_tracer((a, lo, hi)):
        return _np.clip(a, lo, hi)
    if _is_tracer(a) and dt.is_int(a.dtype):
        # NumPy 2 drops a Python int bound beyond the dtype's range on the open side
        info = _np.iinfo(a.dtype)
        lo = None if type(lo) is int and lo < info.min else lo
        hi = None if type(hi) is int and hi > info.max else hi
    r = a
    if lo is not None:
        r = maximum(r, lo)  # noqa: F821
    if hi is not None:
        r = minimum(r, hi)  # noqa: F821
    return r


@_implements(getattr(_np, "astype", None))
def astype(x, dtype, /, *, copy=True, device=None):
    """Convert to dtype (NumPy's ``x.astype(dtype)``; floats to ints truncate toward zero)."""
    d = dt.canonical(dtype, "astype dtype")
    if not _is_tracer(x):
        return _np.asarray(x).astype(d)
    return _wrap(_b().convert(_var(x), d))


def asarray(a, dtype=None, order=None, *, copy=None, like=None, **kw):
    """On a tracer: the tracer (converted to dtype). On a list holding tracers: stacked.
    (NumPy's own np.asarray cannot be intercepted: on a tracer it raises.)"""
    if isinstance(a, (list, tuple)) and _has_tracer(a):
        from .shape import stack   # shape builds on this module
        a = stack([asarray(x) for x in a])
    if not _is_tracer(a):
        return _np.asarray(a, dtype=dtype)
    return a if dtype is None else astype(a, dtype)


array = asarray


@_implements(_np.copy)
def copy(a, order="K", subok=False):
    """A copy (also ``x.copy(order=...)``): a new traced array holding a's value (writes
    to one do not reach the other). Traced arrays have no memory layout: any order gives the
    same value."""
    if not _is_tracer(a):
        return _np.copy(a, order=order, subok=subok)
    if order not in ("C", "F", "A", "K"):
        raise ShapeError(f"order must be one of 'C', 'F', 'A', or 'K' (got {order!r})", user_loc())
    return _wrap(_var(a))


def _view(x, dtype=None, type=None):
    """``x.view(dtype)`` for a dtype of the same size: the same bits read as dtype (bools
    view as uint8/int8 0 and 1). Other sizes change the shape in ways that depend on the
    memory layout and are not supported; neither is viewing bytes as bools."""
    if dtype is None or (isinstance(dtype, _builtin_type) and issubclass(dtype, _np.ndarray)):
        return x
    d = dt.canonical(dtype, "ndarray.view dtype")
    if d == x.dtype:
        return x
    if d.itemsize != x.dtype.itemsize:
        raise UnsupportedError(f"ndarray.view: viewing {x.dtype} as {d} (another item size) is not supported by "
                               "vmapc; only dtypes of the same size", user_loc())
    if x.dtype == dt.BOOL:
        return astype(x, d)
    if d == dt.BOOL:
        raise UnsupportedError(f"ndarray.view: viewing {x.dtype} as bool is not supported by vmapc (bytes other "
                               "than 0 and 1 are not bools); use x != 0", user_loc())
    return _wrap(_b().emit("bitcast", _var(x), dtype=d))


_builtin_type = type
