"""``vmapc.numpy``: NumPy's API over traced arrays.

Each function here accepts tracers, NumPy arrays and Python numbers. With no
tracer among its arguments it simply calls NumPy, so ``vmapc.numpy`` also works
as plain NumPy on concrete data; with a tracer it emits IR. The same functions
serve NumPy's dispatch protocols, so ``np.sum(tracer, axis=1)`` and
``vmapc.numpy.sum(tracer, axis=1)`` record the same equations.

NumPy's semantics are the spec: broadcasting, dtype promotion (NumPy 2 / NEP 50,
decided by asking NumPy itself through ``ufunc.resolve_dtypes`` and
``np.result_type``), negative axes, ``keepdims``. Python numbers, and traced ones
(a weak tracer), take part weakly where NumPy lets them (ufuncs, ``where``, ``clip``)
and as float64/int64/bool arrays where NumPy converts them (``dot``, ``einsum``,
``stack``...); what these functions return is an array, strongly typed, as in NumPy.
Where the IR is stricter than NumPy (equal ranks, one dtype per op), this layer
inserts the reshapes and conversions. A few functions NumPy lacks are provided because models need them:
``sigmoid``, ``erf``, ``rsqrt``, ``logsumexp``, ``softmax``, ``log_softmax`` and
``dynamic_slice``.

Anything else raises :class:`~vmapc.errors.UnsupportedError` naming the function
or argument. Functions whose result shape depends on data (``nonzero``, boolean
masks, ``unique``) cannot be compiled ahead of time and say so.
"""

from __future__ import annotations

import builtins
import inspect
import math
import operator
import string

import numpy as _np

from . import dtypes as dt
from .errors import DTypeError, OutOfBoundsError, ShapeError, TracingError, UnsupportedError
from .shapes import broadcast_shapes
from .tracing import Tracer, _python_arithmetic, current, to_var, user_loc

# dtypes, so that `import vmapc.numpy as np` code can say np.float32
bool_ = _np.bool_
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint16, uint32, uint64 = _np.uint8, _np.uint16, _np.uint32, _np.uint64
float16, float32, float64 = _np.float16, _np.float32, _np.float64
pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, None
dtype = _np.dtype

_HANDLED: dict = {}     # NumPy function object -> implementation here


def _implements(*np_funcs):
    def deco(f):
        for g in np_funcs:
            if g is not None:
                _HANDLED[g] = f
        return f
    return deco


# --- plumbing ------------------------------------------------------------------------------------

def _is_tracer(x):
    return isinstance(x, Tracer)


def _has_tracer(xs):
    for x in xs:
        if isinstance(x, Tracer):
            return True
        if isinstance(x, (list, tuple)) and _has_tracer(x):
            return True
    return False


def _ctx():
    c = current()
    if c is None:
        raise TracingError("vmapc.numpy was given a tracer outside of any trace (a traced value "
                           "escaped its function)", user_loc())
    return c


def _b():
    return _ctx().builder


def _wrap(var):
    return Tracer(var, _ctx())


def _resolve_key(x):
    """What ufunc.resolve_dtypes needs for x: a dtype, or int/float for a weak scalar."""
    if isinstance(x, Tracer):
        if x.weak is not None:
            return dt.BOOL if x.weak is bool else x.weak
        return x.dtype
    if isinstance(x, bool):
        return dt.BOOL
    if isinstance(x, (int, float)) and not isinstance(x, _np.generic):
        return type(x)
    if isinstance(x, (_np.ndarray, _np.generic)):
        return dt.canonical(x.dtype, "array operand")
    if isinstance(x, complex):
        raise DTypeError("complex numbers are not supported by vmapc")
    if isinstance(x, (list, tuple)):
        return dt.canonical(_np.asarray(x).dtype, "list operand")
    raise TracingError(f"cannot use an object of type {type(x).__name__} as an array")


def _result_type(*xs):
    keys = []
    for x in xs:
        k = _resolve_key(x)
        keys.append({int: 0, float: 0.0}.get(k, k) if isinstance(k, type) else k)
    return dt.canonical(_np.result_type(*keys))


def _var(x, dtype=None):
    """The IR value of x (tracer, array or Python number), converted to dtype."""
    c = _ctx()
    if isinstance(x, Tracer):
        v = to_var(c, x, "operand")
    elif isinstance(x, (bool, int, float)) and not isinstance(x, _np.generic):
        d = dtype if dtype is not None else dt.canonical(_np.asarray(x).dtype)
        try:
            with _np.errstate(over="ignore"):  # 1e10 -> inf in float16, as in NumPy
                arr = _np.asarray(x, dtype=d)
        except OverflowError as err:
            raise DTypeError(str(err), user_loc()) from None
        return c.builder.constant(arr)
    else:
        a = _np.asarray(x)
        if a.dtype == object:
            raise TracingError("cannot use a NumPy object array in a traced function", user_loc())
        dt.canonical(a.dtype, "array operand")
        v = c.constant(a)
    if dtype is not None:
        v = c.builder.convert(v, dtype)
    return v


def _bcast(vars_):
    """Reshape vars to the common rank (leading 1s); returns them and the result shape."""
    shape = broadcast_shapes(*[v.shape for v in vars_])
    b = _b()
    out = []
    for v in vars_:
        if v.rank < len(shape):
            v = b.reshape(v, (1,) * (len(shape) - v.rank) + v.shape)
        out.append(v)
    return out, shape


def _emit_elementwise(op, vars_):
    try:
        vars_, _ = _bcast(vars_)
    except ValueError as err:
        raise ShapeError(f"{op}: {err}", user_loc()) from None
    return _b().emit(op, *vars_)


def _loops(ufunc, args, dtype=None):
    """NumPy's loop for these operands: (input dtypes, output dtype). ``dtype`` is the
    ufunc's ``dtype=`` argument: it fixes the output dtype, and the inputs must cast to the
    loop's under NumPy's default 'same_kind' rule."""
    keys = tuple(_resolve_key(a) for a in args)
    kw = {}
    if dtype is not None:
        kw["signature"] = (None,) * ufunc.nin + (dt.canonical(dtype, f"numpy.{ufunc.__name__} dtype"),)
    try:
        r = ufunc.resolve_dtypes(keys + (None,) * ufunc.nout, casting="same_kind", **kw)
    except TypeError as err:
        raise DTypeError(f"numpy.{ufunc.__name__}: {err}", user_loc()) from None
    except Exception as err:  # numpy's own UFuncNoLoopError derives from TypeError on new versions
        raise DTypeError(f"numpy.{ufunc.__name__}: {err}", user_loc()) from None
    for d in r:
        dt.canonical(d, f"numpy.{ufunc.__name__}")
    return r[:ufunc.nin], r[ufunc.nin]


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
    "maximum": "maximum", "minimum": "minimum", "arctan2": "arctan2",
    "equal": "equal", "not_equal": "not_equal", "less": "less", "less_equal": "less_equal",
    "greater": "greater", "greater_equal": "greater_equal", "logical_and": "logical_and",
    "logical_or": "logical_or", "logical_xor": "logical_xor", "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor",
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
        if name in _IDENTITY_ON_INT and not dt.is_float(d):
            return _wrap(x)
        if name in _CONST_ON_NONFLOAT and not dt.is_float(d):
            return _wrap(_b().full(x.shape, _CONST_ON_NONFLOAT[name], dt.BOOL))
        if d == dt.BOOL and name in ("absolute", "square", "reciprocal"):
            return _wrap(x)
        if name == "reciprocal" and not dt.is_float(d):
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
    """NumPy's in-place operator ``a += b`` (and -=, *=...). A traced array cannot be
    changed, so ``a`` is rebound to a new value, which keeps a's shape and dtype as NumPy's
    in-place result does. A traced Python number is rebound as Python would."""
    if not _is_tracer(a) or a.weak is not None:
        return _python_arithmetic(f, a, b)
    r = f(a, b)
    if r.shape != a.shape:
        raise ShapeError(f"non-broadcastable output operand with shape {a.shape} doesn't match the "
                         f"broadcast shape {r.shape}", user_loc())
    if not _np.can_cast(r.dtype, a.dtype, "same_kind"):
        raise DTypeError(f"Cannot cast ufunc '{f.__name__}' output from {r.dtype} to {a.dtype} with "
                         "casting rule 'same_kind'", user_loc())
    return astype(r, a.dtype)


def _composite(rule, vars_, out_dt):
    """Apply a composite rule. float16 is computed in float32 and rounded once at the end,
    as NumPy's float16 loops do."""
    if vars_[0].dtype != dt.FLOAT16:
        return rule(*vars_)
    r = rule(*[_b().convert(v, dt.FLOAT32) for v in vars_])
    return _b().convert(r, out_dt)


def _c(v, value):
    """A 0-d constant of v's dtype, reshaped to v's rank (broadcasts elementwise)."""
    b = _b()
    return b.reshape(b.constant(_np.asarray(value, dtype=v.dtype)), (1,) * v.rank)


def _e(op, *vs):
    return _emit_elementwise(op, list(vs))


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
    # -0.0 has its sign bit set: 1/-0.0 is -inf. (A NaN's sign bit cannot be seen.)
    "signbit": lambda x: _e("select", _e("equal", x, _c(x, 0)), _e("less", _e("reciprocal", x), _c(x, 0)),
                            _e("less", x, _c(x, 0))),
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
        _reject(f"numpy.{ufunc.__name__}", kwargs, out=out, where=where)
        return _ufunc_call(ufunc, args, dtype=dtype)
    f.__name__ = ufunc.__name__
    f.__doc__ = f"NumPy's ``{ufunc.__name__}`` on traced arrays."
    return f


def _reject(fname, extra=None, **given):
    """Raise for NumPy arguments vmapc does not implement (out=, where=, order=, ...)."""
    defaults = {"out": None, "where": True, "order": "K", "casting": "same_kind", "subok": True,
                "initial": _np._NoValue, "signature": None}
    for k, v in given.items():
        d = defaults.get(k, None)
        if v is not d and not (isinstance(v, str) and v == d):
            raise UnsupportedError(f"{fname}: argument `{k}` is not supported by vmapc", user_loc())
    for k in (extra or {}):
        raise UnsupportedError(f"{fname}: argument `{k}` is not supported by vmapc", user_loc())


_UFUNCS = [u for u in vars(_np).values() if isinstance(u, _np.ufunc)]
_SUPPORTED_UFUNCS = set(_UNARY_OPS) | set(_BINARY_OPS) | set(_COMPOSITE_UNARY) | set(_COMPOSITE_BINARY) | {"matmul", "true_divide", "mod"}

for _u in _UFUNCS:
    if _u.__name__ in _SUPPORTED_UFUNCS and _u.__name__ != "matmul":
        globals()[_u.__name__] = _make_ufunc_wrapper(_u)

abs = absolute  # noqa: F821  (defined by the loop above)
true_divide = divide  # noqa: F821
mod = remainder  # noqa: F821


def invert(x):
    """``~x``: bitwise not (logical not for bool)."""
    return _ufunc_call(_np.invert, (x,))


bitwise_not = invert
bitwise_invert = invert


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
    if a.dtype == dt.BOOL:  # NumPy rounds bools with rint (to float16), and only to 0 decimals
        if decimals:
            raise DTypeError("numpy.round: bool arrays can only be rounded to 0 decimals", user_loc())
        return rint(a)  # noqa: F821
    if not dt.is_float(a.dtype):
        if decimals >= 0:
            return a
        x = _b().convert(x, dt.FLOAT64)
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
        a = stack([asarray(x) for x in a])
    if not _is_tracer(a):
        return _np.asarray(a, dtype=dtype)
    return a if dtype is None else astype(a, dtype)


array = asarray


@_implements(_np.copy)
def copy(a, order="K", subok=False):
    """A copy; traced arrays are immutable, so the value itself."""
    return a if _is_tracer(a) else _np.copy(a, order=order, subok=subok)


# --- axes -----------------------------------------------------------------------------------------

def _axes(axis, rank, fname, scalar_ok=False):
    """Normalize ``axis`` (None, an int or a sequence of ints; negative counts from the end)
    to a tuple of distinct non-negative axes. ``scalar_ok``: NumPy's ufunc reductions accept
    axis 0 or -1 on a 0-d array, reducing nothing."""
    if axis is None:
        return tuple(range(rank))
    if scalar_ok and rank == 0 and _is_int(axis) and int(axis) in (0, -1):
        return ()
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, Tracer):
            raise TracingError(f"{fname}: axis must be static, got a traced value", user_loc())
        if not _is_int(a):
            raise ShapeError(f"{fname}: axis must be an int or a tuple of ints, got {a!r}", user_loc())
        a = int(a)
        if not -rank <= a < rank:
            raise OutOfBoundsError(f"{fname}: axis {a} is out of bounds for array of dimension {rank}",
                             user_loc())
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{fname}: repeated axis in {axis}", user_loc())
    return tuple(out)


def _axis(axis, rank, fname):
    """One axis (an int), normalized."""
    if isinstance(axis, (list, tuple)):
        raise ShapeError(f"{fname}: axis must be a single int, got {axis!r}", user_loc())
    return _axes(axis, rank, fname)[0]


def _is_int(x):
    return isinstance(x, (int, _np.integer)) and not isinstance(x, (bool, _np.bool_))


def _reduce(op, x, axes, keepdims):
    b = _b()
    out = b.emit(op, x, axes=tuple(sorted(axes)))
    if keepdims:
        out = b.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def _sum_dtype(d):
    if d == dt.BOOL or (dt.is_int(d) and d.itemsize < 8):
        return dt.UINT64 if dt.is_unsigned(d) else dt.INT64
    return d


def _accumulate(op, a, axes, keepdims, dtype):
    """reduce_sum or reduce_prod in NumPy's dtype: dtype if given, else (u)int64 for small
    integers and bools. A float16 sum accumulates in float32 (NumPy's pairwise sum does); a
    bool sum is a logical or, a bool product a logical and."""
    d = dt.canonical(dtype) if dtype is not None else _sum_dtype(a.dtype)
    bld = _b()
    x = bld.convert(_var(a), d)
    if d == dt.BOOL:
        return _reduce({"reduce_sum": "reduce_any", "reduce_prod": "reduce_all"}[op], x, axes, keepdims)
    if d == dt.FLOAT16 and op == "reduce_sum":
        return bld.convert(_reduce(op, bld.convert(x, dt.FLOAT32), axes, keepdims), d)
    return _reduce(op, x, axes, keepdims)


@_implements(_np.sum)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Sum over axes. Small integers and bools accumulate in (u)int64 as in NumPy; float16
    accumulates in float32."""
    _reject("numpy.sum", out=out, initial=initial, where=where)
    if not _is_tracer(a):
        return _np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    axes = _axes(axis, a.ndim, "numpy.sum", scalar_ok=True)
    return _wrap(_accumulate("reduce_sum", a, axes, keepdims, dtype))


@_implements(_np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_np._NoValue, where=True):
    """Product over axes (dtype rules as for sum)."""
    _reject("numpy.prod", out=out, initial=initial, where=where)
    if not _is_tracer(a):
        return _np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims)
    axes = _axes(axis, a.ndim, "numpy.prod", scalar_ok=True)
    return _wrap(_accumulate("reduce_prod", a, axes, keepdims, dtype))


def _minmax(op, bool_op, fname, np_f, a, axis, out, keepdims, initial, where):
    _reject(fname, out=out, initial=initial, where=where)
    if not _is_tracer(a):
        return np_f(a, axis=axis, keepdims=keepdims)
    axes = _axes(axis, a.ndim, fname, scalar_ok=True)
    for ax in axes:
        if a.shape[ax] == 0:
            raise ShapeError(f"zero-size array to reduction operation {fname.split('.')[-1]} which has "
                             "no identity", user_loc())
    return _wrap(_reduce(bool_op if a.dtype == dt.BOOL else op, _var(a), axes, keepdims))


@_implements(_np.max, getattr(_np, "amax", None))
def max(a, axis=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Maximum over axes; NaN propagates."""
    return _minmax("reduce_max", "reduce_any", "numpy.max", _np.max, a, axis, out, keepdims, initial, where)


@_implements(_np.min, getattr(_np, "amin", None))
def min(a, axis=None, out=None, keepdims=False, initial=_np._NoValue, where=True):  # noqa: A001
    """Minimum over axes; NaN propagates."""
    return _minmax("reduce_min", "reduce_all", "numpy.min", _np.min, a, axis, out, keepdims, initial, where)


amax, amin = max, min


@_implements(_np.any)
def any(a, axis=None, out=None, keepdims=False, *, where=True):  # noqa: A001
    _reject("numpy.any", out=out, where=where)
    if not _is_tracer(a):
        return _np.any(a, axis=axis, keepdims=keepdims)
    return _wrap(_reduce("reduce_any", _b().convert(_var(a), dt.BOOL), _axes(axis, a.ndim, "numpy.any", scalar_ok=True), keepdims))


@_implements(_np.all)
def all(a, axis=None, out=None, keepdims=False, *, where=True):  # noqa: A001
    _reject("numpy.all", out=out, where=where)
    if not _is_tracer(a):
        return _np.all(a, axis=axis, keepdims=keepdims)
    return _wrap(_reduce("reduce_all", _b().convert(_var(a), dt.BOOL), _axes(axis, a.ndim, "numpy.all", scalar_ok=True), keepdims))


def _count(shape, axes):
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def _mean_dtype(d, dtype):
    """The dtype NumPy sums in for a mean or variance: dtype if given, else float64 for
    integers and bools and float32 for float16."""
    if dtype is not None:
        return dt.canonical(dtype)
    if dt.is_float(d):
        return dt.FLOAT32 if d == dt.FLOAT16 else d
    return dt.FLOAT64


def _divide_count(s, n, res):
    """NumPy's ``true_divide(s, n, casting='unsafe')`` into dtype res: a float sum is divided
    in its dtype, anything else in float64 (0/0 is NaN, as in NumPy)."""
    bld = _b()
    if not dt.is_float(s.dtype):
        s = bld.convert(s, dt.FLOAT64)
    return bld.convert(_e("divide", s, _c(s, n)), res)


@_implements(_np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    """Arithmetic mean; integers give float64, float16 accumulates in float32."""
    _reject("numpy.mean", out=out, where=where)
    if not _is_tracer(a):
        return _np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    acc = _mean_dtype(a.dtype, dtype)
    res = a.dtype if dtype is None and a.dtype == dt.FLOAT16 else acc
    axes = _axes(axis, a.ndim, "numpy.mean")
    s = _accumulate("reduce_sum", a, axes, keepdims, acc)
    return _wrap(_divide_count(s, _count(a.shape, axes), res))


@_implements(_np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None, correction=None):
    """Variance as NumPy computes it: sum(|a - mean(a)|**2) / max(n - ddof, 0)."""
    _reject("numpy.var", out=out, where=where)
    if mean is not None:
        raise UnsupportedError("numpy.var: argument `mean` is not supported by vmapc", user_loc())
    if correction is not None:
        ddof = correction
    if not _is_tracer(a):
        return _np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    # NumPy's _var: sums in dtype (float64 for integers and bools), dividing into it
    acc = dt.canonical(dtype) if dtype is not None else a.dtype if dt.is_float(a.dtype) else dt.FLOAT64
    axes = _axes(axis, a.ndim, "numpy.var")
    n = _count(a.shape, axes)
    m = _wrap(_divide_count(_accumulate("reduce_sum", a, axes, True, acc), n, acc))
    d = subtract(a, m)  # noqa: F821  (NumPy's promotion of a and its mean)
    ss = _accumulate("reduce_sum", multiply(d, d), axes, keepdims, acc)  # noqa: F821
    return _wrap(_divide_count(ss, builtins.max(n - ddof, 0), acc))


@_implements(_np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True, mean=None, correction=None):
    """Standard deviation: sqrt(var)."""
    if not _is_tracer(a):
        return _np.std(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    v = var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where, mean=mean,
            correction=correction)
    return _wrap(_b().emit("sqrt", v.ir_var))


@_implements(_np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    """max - min over axes."""
    if not _is_tracer(a):
        return _np.ptp(a, axis=axis, keepdims=keepdims)
    return subtract(max(a, axis, out, keepdims), min(a, axis, out, keepdims))  # noqa: F821


def _argreduce(op, fname, np_f, a, axis, out, keepdims):
    _reject(fname, out=out)
    if not _is_tracer(a):
        return np_f(a, axis=axis, keepdims=keepdims)
    x = _var(a)
    b = _b()
    if a.ndim == 0 and _is_int(axis) and int(axis) in (0, -1):
        axis = None  # NumPy accepts axis 0 or -1 on a 0-d array
    if axis is None:
        if a.size == 0:
            raise ShapeError(f"attempt to get {fname.split('.')[-1]} of an empty sequence", user_loc())
        r = b.emit(op, b.reshape(x, (a.size,)), axis=0)
        if keepdims:
            r = b.reshape(r, (1,) * a.ndim)
        return _wrap(r)
    ax = _axis(axis, a.ndim, fname)
    if a.shape[ax] == 0:
        raise ShapeError(f"attempt to get {fname.split('.')[-1]} of an empty sequence", user_loc())
    r = b.emit(op, x, axis=ax)
    if keepdims:
        r = b.reshape(r, tuple(1 if i == ax else d for i, d in enumerate(a.shape)))
    return _wrap(r)


@_implements(_np.argmax)
def argmax(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the first maximum; NaN counts as the maximum, as in NumPy."""
    return _argreduce("argmax", "numpy.argmax", _np.argmax, a, axis, out, keepdims)


@_implements(_np.argmin)
def argmin(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the first minimum; NaN counts as the minimum, as in NumPy."""
    return _argreduce("argmin", "numpy.argmin", _np.argmin, a, axis, out, keepdims)


def _as_float(x):
    """x as a floating array or tracer; integers and bools become float64 (as in SciPy)."""
    if not _is_tracer(x):
        x = _np.asarray(x)
    return x if dt.is_float(x.dtype) else astype(x, dt.FLOAT64)


# The extensions below are written with this module's functions, so they work on tracers
# and, through NumPy, on concrete arrays alike.

def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) computed stably (scipy.special.logsumexp without weights)."""
    x = _as_float(a)
    m = max(x, axis=axis, keepdims=True)
    m = where(isfinite(m), m, 0)  # noqa: F821
    r = add(log(sum(exp(subtract(x, m)), axis=axis, keepdims=True)), m)  # noqa: F821
    return r if keepdims else squeeze(r, axis=_axes(axis, x.ndim, "logsumexp"))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, computed stably (scipy.special.softmax)."""
    x = _as_float(x)
    z = exp(subtract(x, max(x, axis=axis, keepdims=True)))  # noqa: F821
    return divide(z, sum(z, axis=axis, keepdims=True))  # noqa: F821


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis (scipy.special.log_softmax)."""
    x = _as_float(x)
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))  # noqa: F821


# --- contractions --------------------------------------------------------------------------------

def _dot_general(a, b, contract, batch=((), ())):
    """dot_general on two vars of one numeric dtype (bool is computed in int32)."""
    bld = _b()
    if a.dtype == dt.BOOL:
        r = bld.emit("dot_general", bld.convert(a, dt.INT32), bld.convert(b, dt.INT32),
                     contract=contract, batch=batch)
        return _e("not_equal", r, _c(r, 0))
    return bld.emit("dot_general", a, b, contract=contract, batch=batch)


def _strong_dtype(*xs):
    """The result dtype of NumPy functions that turn every operand into an array first
    (dot, einsum, stack...): Python numbers count as float64/int64/bool, not weakly."""
    return dt.canonical(_np.result_type(*[x.dtype if _is_tracer(x) else _np.asarray(x).dtype for x in xs]))


def _contract_operands(x1, x2):
    d = _strong_dtype(x1, x2)
    return _var(x1, d), _var(x2, d)


@_implements(_np.matmul)
def matmul(x1, x2, /, out=None, **kwargs):
    """NumPy's matmul: 1-D operands gain and lose a dim; leading dims broadcast."""
    _reject("numpy.matmul", kwargs, out=out)
    if not _has_tracer((x1, x2)):
        return _np.matmul(x1, x2)
    a, b = _contract_operands(x1, x2)
    if a.rank == 0 or b.rank == 0:
        raise ShapeError("matmul: Input operand does not have enough dimensions (0-d)", user_loc())
    bld = _b()
    if a.rank == 1 or b.rank == 1:
        # a vector operand is contracted directly (no reshape to a 1-row matrix), so that a
        # batched vector @ shared matrix stays one plain GEMM after vmap
        ka, kb = a.rank - 1, (0 if b.rank == 1 else b.rank - 2)
        if a.shape[ka] != b.shape[kb]:
            raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                             f"(size {b.shape[kb]} is different from {a.shape[ka]})", user_loc())
        return _wrap(_dot_general(a, b, ((ka,), (kb,))))
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                         f"(size {b.shape[-2]} is different from {a.shape[-1]})", user_loc())
    if b.rank == 2:
        # (..., M, K) @ (K, N): contract directly, the leading dims of a are free dims
        r = _dot_general(a, b, ((a.rank - 1,), (0,)))
    elif a.rank == 2:
        # (M, K) @ (..., K, N): result dims are M, ..., N; move M next to N
        r = _dot_general(a, b, ((1,), (b.rank - 2,)))
        nb = b.rank - 2
        r = bld.transpose(r, tuple(range(1, nb + 1)) + (0, nb + 1))
    else:
        try:
            bshape = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError as err:
            raise ShapeError(f"matmul: {err}", user_loc()) from None
        nb = len(bshape)
        a = bld.broadcast_in_dim(a, bshape + a.shape[-2:], tuple(range(nb - a.rank + 2, nb + 2)))
        b = bld.broadcast_in_dim(b, bshape + b.shape[-2:], tuple(range(nb - b.rank + 2, nb + 2)))
        r = _dot_general(a, b, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    return _wrap(r)


@_implements(_np.dot)
def dot(a, b, out=None):
    """NumPy's dot: products for 0-d, inner product for 1-D, otherwise the last axis of a
    with the second-to-last of b (the last, if b is 1-D)."""
    _reject("numpy.dot", out=out)
    if not _has_tracer((a, b)):
        return _np.dot(a, b)
    x, y = _contract_operands(a, b)
    if x.rank == 0 or y.rank == 0:
        return _wrap(_e("multiply", x, y))
    ka = x.rank - 1
    kb = 0 if y.rank == 1 else y.rank - 2
    if x.shape[ka] != y.shape[kb]:
        raise ShapeError(f"shapes {tuple(x.shape)} and {tuple(y.shape)} not aligned: "
                         f"{x.shape[ka]} (dim {ka}) != {y.shape[kb]} (dim {kb})", user_loc())
    return _wrap(_dot_general(x, y, ((ka,), (kb,))))


@_implements(_np.vdot)
def vdot(a, b):
    """Dot product of the flattened arrays."""
    if not _has_tracer((a, b)):
        return _np.vdot(a, b)
    return dot(ravel(a), ravel(b))


@_implements(_np.inner)
def inner(a, b):
    """Sum of products over the last axes."""
    if not _has_tracer((a, b)):
        return _np.inner(a, b)
    x, y = _contract_operands(a, b)
    if x.rank == 0 or y.rank == 0:
        return _wrap(_e("multiply", x, y))
    if x.shape[-1] != y.shape[-1]:
        raise ShapeError(f"inner: shapes {tuple(x.shape)} and {tuple(y.shape)} not aligned", user_loc())
    return _wrap(_dot_general(x, y, ((x.rank - 1,), (y.rank - 1,))))


@_implements(_np.outer)
def outer(a, b, out=None):
    """Outer product of the flattened arrays."""
    _reject("numpy.outer", out=out)
    if not _has_tracer((a, b)):
        return _np.outer(a, b)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))  # noqa: F821


@_implements(_np.tensordot)
def tensordot(a, b, axes=2):
    """Sum of products over ``axes`` (an int N: the last N of a with the first N of b; or a
    pair of axis lists)."""
    if not _has_tracer((a, b)):
        return _np.tensordot(a, b, axes)
    x, y = _contract_operands(a, b)
    if isinstance(axes, (int, _np.integer)):
        n = int(axes)
        if n < 0 or n > x.rank or n > y.rank:
            raise ShapeError(f"tensordot: axes={n} does not fit ranks {x.rank} and {y.rank}", user_loc())
        ax_a, ax_b = tuple(range(x.rank - n, x.rank)), tuple(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = (ax_a,) if isinstance(ax_a, (int, _np.integer)) else tuple(ax_a)
        ax_b = (ax_b,) if isinstance(ax_b, (int, _np.integer)) else tuple(ax_b)
        if len(ax_a) != len(ax_b):
            raise ShapeError("tensordot: shape-mismatch for sum (axes lists differ in length)", user_loc())
        ax_a = _axes(ax_a, x.rank, "numpy.tensordot")
        ax_b = _axes(ax_b, y.rank, "numpy.tensordot")
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise ShapeError(f"tensordot: shape-mismatch for sum: dim {i} of a is {x.shape[i]}, "
                             f"dim {j} of b is {y.shape[j]}", user_loc())
    return _wrap(_dot_general(x, y, (tuple(ax_a), tuple(ax_b))))


@_implements(_np.einsum)
def einsum(subscripts, *operands, out=None, optimize=False, dtype=None, **kw):
    """Einstein summation for contractions, transposes and reductions, with ``...``.
    A repeated index within one operand (a diagonal or trace) is not supported."""
    _reject("numpy.einsum", kw, out=out)
    if not isinstance(subscripts, str):
        raise UnsupportedError("numpy.einsum: only the string form of subscripts is supported", user_loc())
    if not _has_tracer(operands):
        return _np.einsum(subscripts, *operands, optimize=optimize)
    d = dt.canonical(dtype) if dtype is not None else _strong_dtype(*operands)
    vars_ = [_var(o, d) for o in operands]
    return _wrap(_einsum(subscripts.replace(" ", ""), vars_))


def _einsum(subs, vars_):
    bld = _b()
    if "->" in subs:
        lhs, out = subs.split("->")
        explicit = True
    else:
        lhs, out, explicit = subs, None, False
    specs = lhs.split(",")
    if len(specs) != len(vars_):
        raise ShapeError(f"einsum: {len(specs)} operand subscripts for {len(vars_)} operands", user_loc())
    used = set(subs) - set(",->.")
    spare = [c for c in string.ascii_letters if c not in used]
    # expand "..." into fresh letters, right-aligned across operands (they broadcast)
    ell_rank = 0
    for s, v in zip(specs, vars_):
        if "..." in s:
            ell_rank = builtins.max(ell_rank, v.rank - (len(s) - 3))
    ell = "".join(spare[:ell_rank])
    terms = []
    for s, v in zip(specs, vars_):
        if "..." in s:
            k = v.rank - (len(s) - 3)
            s = s.replace("...", ell[ell_rank - k:] if k else "")
        if len(s) != v.rank:
            raise ShapeError(f"einsum: subscripts {s!r} do not match an operand of rank {v.rank}", user_loc())
        if len(set(s)) != len(s):
            raise UnsupportedError(f"einsum: the repeated index in {s!r} (a diagonal or trace) is not "
                                   "supported", user_loc())
        terms.append(s)
    if explicit:
        out = out.replace("...", ell)
    else:
        counts = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes = {}
    for t, v in zip(terms, vars_):
        for c, n in zip(t, v.shape):
            if c in sizes and sizes[c] != n and n != 1 and sizes[c] != 1:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {n}", user_loc())
            if c not in sizes or sizes[c] == 1:
                sizes[c] = n
    for c in out:
        if c not in sizes:
            raise ShapeError(f"einsum: output index {c!r} does not appear in any operand", user_loc())

    def stretch(v, t):
        shape = tuple(sizes[c] for c in t)
        return bld.broadcast_in_dim(v, shape, tuple(range(v.rank))) if v.shape != shape else v

    def sum_out(v, t, keep):
        axes = tuple(i for i, c in enumerate(t) if c not in keep)
        if axes:
            v = bld.emit("reduce_sum", v, axes=axes)
            t = "".join(c for c in t if c in keep)
        return v, t

    v, t = vars_[0], terms[0]
    for k in range(1, len(vars_)):
        later = set(out).union(*terms[k + 1:])
        w, u = vars_[k], terms[k]
        v, t = sum_out(stretch(v, t), t, later | set(u))
        w, u = sum_out(stretch(w, u), u, later | set(t))
        batch = [c for c in t if c in u and c in later]
        contract = [c for c in t if c in u and c not in later]
        v = _dot_general(v, w, (tuple(t.index(c) for c in contract), tuple(u.index(c) for c in contract)),
                         (tuple(t.index(c) for c in batch), tuple(u.index(c) for c in batch)))
        t = "".join(batch) + "".join(c for c in t if c not in u) + "".join(c for c in u if c not in t)
    v, t = sum_out(stretch(v, t), t, set(out))
    return bld.transpose(v, tuple(t.index(c) for c in out))


# --- shape functions -----------------------------------------------------------------------------

def _static_ints(seq, what):
    if isinstance(seq, Tracer):
        raise TracingError(f"{what} must be static Python ints, got a traced value", user_loc())
    out = []
    for s in seq:
        if isinstance(s, Tracer):
            raise TracingError(f"{what} must be static Python ints, got a traced value", user_loc())
        out.append(int(s))
    return tuple(out)


@_implements(_np.reshape)
def reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    """Row-major reshape; one entry may be -1."""
    if shape is None:
        shape = newshape
    if order != "C":
        raise UnsupportedError(f"numpy.reshape: order={order!r} is not supported (only 'C')", user_loc())
    if not _is_tracer(a):
        return _np.reshape(a, shape)
    if isinstance(shape, (int, _np.integer)):
        shape = (shape,)
    shape = list(_static_ints(shape, "reshape sizes"))
    if shape.count(-1) > 1:
        raise ShapeError("can only specify one unknown dimension", user_loc())
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or a.size % known:
            raise ShapeError(f"cannot reshape array of size {a.size} into shape {tuple(shape)}", user_loc())
        shape[shape.index(-1)] = a.size // known
    if a.size != int(_np.prod(shape, dtype=_np.int64)):
        raise ShapeError(f"cannot reshape array of size {a.size} into shape {tuple(shape)}", user_loc())
    return _wrap(_b().reshape(_var(a), tuple(shape)))


@_implements(_np.ravel)
def ravel(a, order="C"):
    if order != "C":
        raise UnsupportedError(f"numpy.ravel: order={order!r} is not supported (only 'C')", user_loc())
    if not _is_tracer(a):
        return _np.ravel(a)
    return reshape(a, (-1,))


@_implements(_np.transpose, getattr(_np, "permute_dims", None))
def transpose(a, axes=None):
    """Permute axes (reverse them when axes is None)."""
    if not _is_tracer(a):
        return _np.transpose(a, axes)
    perm = tuple(reversed(range(a.ndim))) if axes is None else _axes(tuple(axes), a.ndim, "numpy.transpose")
    if len(perm) != a.ndim:
        raise ShapeError("transpose: axes don't match array", user_loc())
    return _wrap(_b().transpose(_var(a), perm))


permute_dims = transpose


@_implements(_np.moveaxis)
def moveaxis(a, source, destination):
    if not _is_tracer(a):
        return _np.moveaxis(a, source, destination)
    src = _axes(source, a.ndim, "numpy.moveaxis")
    dst = _axes(destination, a.ndim, "numpy.moveaxis")
    if len(src) != len(dst):
        raise ShapeError("moveaxis: `source` and `destination` arguments must have the same number "
                         "of elements", user_loc())
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@_implements(_np.swapaxes)
def swapaxes(a, axis1, axis2):
    if not _is_tracer(a):
        return _np.swapaxes(a, axis1, axis2)
    i, j = _axis(axis1, a.ndim, "numpy.swapaxes"), _axis(axis2, a.ndim, "numpy.swapaxes")
    perm = list(range(a.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


@_implements(_np.expand_dims)
def expand_dims(a, axis):
    if not _is_tracer(a):
        return _np.expand_dims(a, axis)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out_rank = a.ndim + len(axes)
    axes = _axes(tuple(axes), out_rank, "numpy.expand_dims")
    it = iter(a.shape)
    shape = tuple(1 if i in axes else next(it) for i in range(out_rank))
    return _wrap(_b().reshape(_var(a), shape))


@_implements(_np.squeeze)
def squeeze(a, axis=None):
    if not _is_tracer(a):
        return _np.squeeze(a, axis)
    if axis is None:
        axes = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = _axes(axis, a.ndim, "numpy.squeeze")
        for ax in axes:
            if a.shape[ax] != 1:
                raise ShapeError("cannot select an axis to squeeze out which has size not equal to one",
                                 user_loc())
    shape = tuple(d for i, d in enumerate(a.shape) if i not in axes)
    return _wrap(_b().reshape(_var(a), shape))


@_implements(_np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    """Broadcast to shape (NumPy's rules)."""
    if not _is_tracer(array):
        return _np.broadcast_to(array, shape)
    shape = (shape,) if isinstance(shape, (int, _np.integer)) else _static_ints(shape, "broadcast_to shape")
    x = _var(array)
    if x.rank > len(shape):
        raise ShapeError(f"cannot broadcast a rank-{x.rank} array to shape {shape}", user_loc())
    off = len(shape) - x.rank
    for i, d in enumerate(x.shape):
        if d != 1 and d != shape[off + i]:
            raise ShapeError(f"operands could not be broadcast together with remapped shapes "
                             f"[original->remapped]: {tuple(x.shape)} and requested shape {tuple(shape)}",
                             user_loc())
    return _wrap(_b().broadcast_in_dim(x, tuple(shape), tuple(range(off, len(shape)))))


@_implements(_np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    if not _has_tracer(args):
        return _np.broadcast_arrays(*args)
    try:
        shape = broadcast_shapes(*[_np.shape(a) if not _is_tracer(a) else a.shape for a in args])
    except ValueError as err:
        raise ShapeError(str(err), user_loc()) from None
    return tuple(broadcast_to(a if _is_tracer(a) else _wrap(_var(a)), shape) for a in args)


@_implements(_np.shape)
def shape(a):
    return a.shape if _is_tracer(a) else _np.shape(a)


@_implements(_np.ndim)
def ndim(a):
    return a.ndim if _is_tracer(a) else _np.ndim(a)


@_implements(_np.size)
def size(a, axis=None):
    if not _is_tracer(a):
        return _np.size(a, axis)
    return a.size if axis is None else a.shape[axis]


@_implements(_np.concatenate, getattr(_np, "concat", None))
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """Join arrays along an existing axis (axis=None flattens them first)."""
    _reject("numpy.concatenate", out=out, casting=casting)
    arrays = list(arrays)
    if not _has_tracer(arrays):
        return _np.concatenate(arrays, axis=axis, dtype=dtype)
    if axis is None:
        arrays = [ravel(a) if _is_tracer(a) else _np.ravel(a) for a in arrays]
        axis = 0
    d = dt.canonical(dtype) if dtype is not None else _strong_dtype(*arrays)
    vars_ = [_var(a, d) for a in arrays]
    ranks = {v.rank for v in vars_}
    if 0 in ranks:
        raise ShapeError("zero-dimensional arrays cannot be concatenated", user_loc())
    if len(ranks) != 1:
        raise ShapeError("all the input arrays must have same number of dimensions, got ranks "
                         f"{[v.rank for v in vars_]}", user_loc())
    ax = _axis(axis, vars_[0].rank, "numpy.concatenate")
    return _wrap(_b().emit("concatenate", *vars_, axis=ax))


concat = concatenate


@_implements(_np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays along a new axis."""
    _reject("numpy.stack", out=out, casting=casting)
    arrays = list(arrays)
    if not _has_tracer(arrays):
        return _np.stack(arrays, axis=axis, dtype=dtype)
    if not arrays:
        raise ShapeError("need at least one array to stack", user_loc())
    shapes = {tuple(_np.shape(a)) if not _is_tracer(a) else a.shape for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f"all input arrays must have the same shape, got {sorted(shapes)}", user_loc())
    rank = len(next(iter(shapes))) + 1
    ax = _axis(axis, rank, "numpy.stack")
    return concatenate([expand_dims(a if _is_tracer(a) else _wrap(_var(a)), ax) for a in arrays],
                       axis=ax, dtype=dtype)


@_implements(_np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    _reject("numpy.hstack", casting=casting)
    tup = list(tup)
    if not _has_tracer(tup):
        return _np.hstack(tup, dtype=dtype)
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if arrs[0].ndim == 1 else 1, dtype=dtype)


@_implements(_np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    _reject("numpy.vstack", casting=casting)
    tup = list(tup)
    if not _has_tracer(tup):
        return _np.vstack(tup, dtype=dtype)
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@_implements(_np.atleast_1d)
def atleast_1d(*arys):
    if len(arys) != 1:
        return tuple(atleast_1d(a) for a in arys)
    a = arys[0]
    if not _is_tracer(a):
        return _np.atleast_1d(a)
    return reshape(a, (1,)) if a.ndim == 0 else a


@_implements(_np.atleast_2d)
def atleast_2d(*arys):
    if len(arys) != 1:
        return tuple(atleast_2d(a) for a in arys)
    a = arys[0]
    if not _is_tracer(a):
        return _np.atleast_2d(a)
    return reshape(a, (1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a


def _split(fname, ary, indices_or_sections, axis, equal):
    """Slices of ary between static split points (NumPy's split and array_split)."""
    ax = _axis(axis, ary.ndim, fname)
    n = ary.shape[ax]
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ShapeError("number sections must be larger than 0.", user_loc())
        if equal and n % k:
            raise ShapeError("array split does not result in an equal division", user_loc())
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = [builtins.sum(sizes[:i]) for i in range(k + 1)]
    else:
        # each split point is a Python slice bound: negative counts from the end, clamped
        idx = [slice(int(i), None).indices(n)[0] for i in _static_ints(indices_or_sections, "split indices")]
        bounds = [0] + idx + [n]
    x = _var(ary)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        start, limit = [0] * ary.ndim, list(ary.shape)
        start[ax], limit[ax] = lo, builtins.max(lo, hi)
        out.append(_wrap(_b().emit("slice", x, start=tuple(start), limit=tuple(limit), step=(1,) * ary.ndim)))
    return out


@_implements(_np.split)
def split(ary, indices_or_sections, axis=0):
    """Split into equal sections (an int that divides the axis) or at static indices."""
    if not _is_tracer(ary):
        return _np.split(ary, indices_or_sections, axis)
    return _split("numpy.split", ary, indices_or_sections, axis, equal=True)


@_implements(_np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """Split into sections whose sizes differ by at most one (the first ones larger), or at
    static indices."""
    if not _is_tracer(ary):
        return _np.array_split(ary, indices_or_sections, axis)
    return _split("numpy.array_split", ary, indices_or_sections, axis, equal=False)


@_implements(_np.flip)
def flip(m, axis=None):
    if not _is_tracer(m):
        return _np.flip(m, axis)
    axes = _axes(axis, m.ndim, "numpy.flip")
    return _wrap(_b().emit("rev", _var(m), axes=tuple(sorted(axes))) if axes else _var(m))


@_implements(_np.fliplr)
def fliplr(m):
    return flip(m, 1) if _is_tracer(m) else _np.fliplr(m)


@_implements(_np.flipud)
def flipud(m):
    return flip(m, 0) if _is_tracer(m) else _np.flipud(m)


@_implements(_np.roll)
def roll(a, shift, axis=None):
    """Roll by static shifts (two slices and a concatenate per axis). ``shift`` and ``axis``
    may be sequences; they broadcast against each other as in NumPy."""
    if not _is_tracer(a):
        return _np.roll(a, shift, axis)
    if _has_tracer((shift,)):
        raise TracingError("numpy.roll: shift must be static Python ints; for a traced shift use "
                           "vmapc.numpy.dynamic_slice on np.concatenate([x, x])", user_loc())
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    try:
        pairs = _np.broadcast(_np.asarray(shift), _np.asarray(axis))
    except ValueError as err:
        raise ShapeError(f"numpy.roll: {err}", user_loc()) from None
    if pairs.ndim > 1:
        raise ShapeError("'shift' and 'axis' should be scalars or 1D sequences", user_loc())
    r = a
    for s, ax in pairs:
        ax = _axis(ax, a.ndim, "numpy.roll")
        n = a.shape[ax]
        s = int(s) % n if n else 0
        if s:
            hi, lo = split(r, [n - s], axis=ax)
            r = concatenate([lo, hi], axis=ax)
    return r


@_implements(_np.tile)
def tile(A, reps):
    """Repeat the whole array ``reps`` times along each axis (static counts)."""
    if not _is_tracer(A):
        return _np.tile(A, reps)
    reps = (reps,) if isinstance(reps, (int, _np.integer)) else _static_ints(reps, "tile reps")
    x = _var(A)
    rank = builtins.max(len(reps), x.rank)
    reps = (1,) * (rank - len(reps)) + tuple(reps)
    shape = (1,) * (rank - x.rank) + x.shape
    bld = _b()
    # broadcast to (r0, s0, r1, s1, ...) then merge pairs
    inter = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    y = bld.broadcast_in_dim(bld.reshape(x, shape), inter, tuple(range(1, 2 * rank, 2)))
    return _wrap(bld.reshape(y, tuple(r * s for r, s in zip(reps, shape))))


@_implements(_np.repeat)
def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times (a static int, or static per-element counts)."""
    if not _is_tracer(a):
        return _np.repeat(a, repeats, axis)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "numpy.repeat")
    if _has_tracer((repeats,)):
        raise TracingError("numpy.repeat: repeats must be static (the result shape depends on it)",
                           user_loc())
    reps = _np.asarray(repeats)
    if reps.size == 0:
        reps = reps.astype(_np.int64)
    if not _np.can_cast(reps.dtype, _np.int64, "safe"):
        raise DTypeError(f"numpy.repeat: repeats must be integers, got {reps.dtype}", user_loc())
    if (reps < 0).any():
        raise ShapeError("numpy.repeat: negative dimensions are not allowed", user_loc())
    if reps.ndim == 0 or reps.size == 1:
        r = int(reps.reshape(-1)[0])
        x = _var(a)
        bld = _b()
        inter = x.shape[:ax + 1] + (r,) + x.shape[ax + 1:]
        y = bld.broadcast_in_dim(x, inter, tuple(i for i in range(len(inter)) if i != ax + 1))
        return _wrap(bld.reshape(y, x.shape[:ax] + (x.shape[ax] * r,) + x.shape[ax + 1:]))
    if reps.shape != (a.shape[ax],):
        raise ShapeError(f"numpy.repeat: repeats has shape {reps.shape}, expected ({a.shape[ax]},)", user_loc())
    idx = _np.repeat(_np.arange(a.shape[ax]), reps)
    return take(a, idx, axis=ax)


@_implements(_np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """Constant padding (``mode='constant'``, the default). ``constant_values`` is a scalar
    (static or traced) or static (before, after) values per axis; as in NumPy the axes are
    padded in order, so a corner takes the value of the last axis."""
    if not _is_tracer(array):
        return _np.pad(array, pad_width, mode, **kwargs)
    if mode != "constant":
        raise UnsupportedError(f"numpy.pad: mode={mode!r} is not supported (only 'constant')", user_loc())
    cv = kwargs.pop("constant_values", 0)
    if kwargs:
        raise UnsupportedError(f"numpy.pad: argument `{next(iter(kwargs))}` is not supported", user_loc())
    if _has_tracer((pad_width,)):
        raise TracingError("numpy.pad: pad_width must be static ints (it sets the result shape)", user_loc())
    rank = array.ndim
    try:
        pw = _np.broadcast_to(_np.asarray(pad_width), (rank, 2))
        values = _np.broadcast_to(_np.asarray(cv), (rank, 2)) if not _is_tracer(cv) else None
    except ValueError as err:
        raise ShapeError(f"numpy.pad: {err}", user_loc()) from None
    if not _np.issubdtype(pw.dtype, _np.integer) and pw.size:
        raise DTypeError("`pad_width` must be of integral type.", user_loc())
    if (pw < 0).any():
        raise ShapeError("index can't contain negative values", user_loc())
    bld = _b()
    x = _var(array)
    if _is_tracer(cv):
        if cv.size != 1:
            raise UnsupportedError("numpy.pad: a traced constant_values must be a single value", user_loc())
        v = bld.reshape(_var(cv, x.dtype), ())
        return _wrap(bld.emit("pad", x, v, lo=tuple(int(p) for p in pw[:, 0]), hi=tuple(int(p) for p in pw[:, 1])))
    values = values.astype(x.dtype)  # NumPy assigns them into the result: an unsafe cast
    if not rank or (values == values.flat[0]).all():
        v = bld.constant(values.reshape(-1)[:1].reshape(()) if rank else _np.zeros((), x.dtype))
        return _wrap(bld.emit("pad", x, v, lo=tuple(int(p) for p in pw[:, 0]), hi=tuple(int(p) for p in pw[:, 1])))
    for ax in range(rank):
        for side in (0, 1):
            if pw[ax, side]:
                width = [0] * rank
                width[ax] = int(pw[ax, side])
                zero = (0,) * rank
                x = bld.emit("pad", x, bld.constant(values[ax, side]), lo=tuple(width) if side == 0 else zero,
                             hi=zero if side == 0 else tuple(width))
    return _wrap(x)


# --- indexing ------------------------------------------------------------------------------------

def _index_var(i, n=None, axis=None):
    """An integer index (tracer or array-like) as a var. A static index is checked against
    the axis size n, when given, as NumPy checks it; a traced one is clamped later."""
    if isinstance(i, Tracer):
        if i.dtype == dt.BOOL:
            raise UnsupportedError("indexing with a boolean mask gives a shape that depends on the "
                                   "data, which cannot be compiled ahead of time; use "
                                   "vmapc.numpy.where(mask, x, 0) instead", user_loc())
        if not dt.is_int(i.dtype):
            raise TracingError(f"arrays used as indices must be of integer type, got {i.dtype}", user_loc())
        return _var(i)
    a = _np.asarray(i)
    if a.dtype == bool:
        raise UnsupportedError("indexing a traced array with a boolean mask gives a shape that depends "
                               "on the data; use vmapc.numpy.where(mask, x, 0) instead", user_loc())
    if a.size == 0:
        a = a.astype(_np.int64)
    if not _np.issubdtype(a.dtype, _np.integer):
        raise TracingError(f"arrays used as indices must be of integer type, got {a.dtype}", user_loc())
    if n is not None:
        bad = a[(a < -n) | (a >= n)]
        if bad.size:
            raise OutOfBoundsError(f"index {bad.flat[0]} is out of bounds for axis {axis} with size {n}",
                                   user_loc())
    return _b().constant(a.astype(_np.int64))


def _wrap_and_clamp(i, n):
    """Indices counted from the end when negative, then clamped into [0, n) (int64)."""
    i = _b().convert(i, dt.INT64)
    i = _e("select", _e("less", i, _c(i, 0)), _e("add", i, _c(i, n)), i)
    return _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))


def _getitem(x, key):
    """NumPy indexing: basic (ints, slices with steps, None, ...) and integer arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    bld = _b()
    v = _var(x)
    # expand Ellipsis
    n_ell = builtins.sum(1 for k in key if k is Ellipsis)
    if n_ell > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')", user_loc())
    consumed = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > v.rank:
        raise ShapeError(f"too many indices for array: array is {v.rank}-dimensional, but {consumed} "
                         "were indexed", user_loc())
    full = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (v.rank - consumed))
        else:
            full.append(k)
    if n_ell == 0:
        full.extend([slice(None)] * (v.rank - consumed))

    def is_adv(k):
        return isinstance(k, (Tracer, list, _np.ndarray)) and not (isinstance(k, _np.ndarray) and k.ndim == 0
                                                                  and k.dtype != bool)

    has_array = builtins.any(is_adv(k) for k in full)
    # pass 1: slices, static ints (as width-1 slices), newaxis -> one slice, rev, reshape
    start, limit, step, rev_axes = [], [], [], []
    out_shape = []           # shape after this pass, before advanced indices
    adv = []                 # (position in out_shape, index object)
    adv_key_pos = []         # position in the index tuple, for NumPy's adjacency rule
    dim = 0
    for pos, k in enumerate(full):
        if k is None:
            out_shape.append(1)
            continue
        n = v.shape[dim]
        if isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if isinstance(part, Tracer):
                    raise TracingError(
                        "slice bounds must be static Python ints; for a window at a traced offset use "
                        "vmapc.numpy.dynamic_slice(x, start_indices, slice_sizes)", user_loc())
            if k.step == 0:
                raise ShapeError("slice step cannot be zero", user_loc())
            s0, s1, st = k.indices(n)
            count = len(range(s0, s1, st))
            if st > 0:
                lo, hi, stp = s0, s0 + builtins.max(count - 1, 0) * st + (1 if count else 0), st
            else:
                rev_axes.append(dim)
                r0 = n - 1 - s0
                lo, hi, stp = r0, r0 + builtins.max(count - 1, 0) * (-st) + (1 if count else 0), -st
            start.append(lo), limit.append(hi), step.append(stp)
            out_shape.append(count)
        elif is_adv(k) or (has_array and isinstance(k, (int, _np.integer)) and not isinstance(k, bool)) \
                or isinstance(k, Tracer):
            start.append(0), limit.append(n), step.append(1)
            adv.append((len(out_shape), k))
            adv_key_pos.append(pos)
            out_shape.append(n)
        elif isinstance(k, (int, _np.integer)) and not isinstance(k, bool):
            i = int(k)
            if not -n <= i < n:
                raise OutOfBoundsError(f"index {i} is out of bounds for axis {dim} with size {n}", user_loc())
            i %= n
            start.append(i), limit.append(i + 1), step.append(1)
            out_shape.append(None)   # dropped below
        elif isinstance(k, _np.ndarray):  # 0-d integer array: a static int
            return _getitem(x, tuple(int(k) if kk is k else kk for kk in full))
        else:
            raise TracingError(f"invalid index {k!r} of type {type(k).__name__}", user_loc())
        dim += 1
    if rev_axes:
        v = bld.emit("rev", v, axes=tuple(rev_axes))
    v = bld.emit("slice", v, start=tuple(start), limit=tuple(limit), step=tuple(step)) \
        if (tuple(start), tuple(limit), tuple(step)) != ((0,) * v.rank, v.shape, (1,) * v.rank) else v
    # drop static-int dims, insert newaxis dims
    kept = [d for d in out_shape if d is not None]
    positions = []
    p = 0
    for d in out_shape:
        positions.append(None if d is None else p)
        if d is not None:
            p += 1
    v = bld.reshape(v, tuple(kept))
    if not adv:
        return _wrap(v)
    adv = [(positions[pos], k) for pos, k in adv]
    return _wrap(_advanced_index(v, adv, adv_key_pos))


def _advanced_index(v, adv, key_pos):
    """Integer-array indices at dims adv[i][0]: broadcast them, merge the indexed dims into
    one and take along it (NumPy's placement rule for non-adjacent indices included)."""
    bld = _b()
    dims = [d for d, _ in adv]
    idx = [_index_var(k, v.shape[d], d) for d, k in adv]
    if len(idx) == 1:
        return bld.emit("take", v, idx[0], axis=dims[0], batch_dims=0)
    try:
        ishape = broadcast_shapes(*[i.shape for i in idx])
    except ValueError as err:
        raise ShapeError(f"shape mismatch: indexing arrays could not be broadcast together: {err}",
                         user_loc()) from None
    # NumPy puts the index dims where the indices are if they are adjacent, else first
    adjacent = key_pos == list(range(key_pos[0], key_pos[0] + len(key_pos)))
    # linearize the (normalized, broadcast) indices into the merged indexed dims
    lin = None
    for i, d in zip(idx, dims):
        n = v.shape[d]
        i = _wrap_and_clamp(i, n)
        i = bld.broadcast_in_dim(bld.reshape(i, (1,) * (len(ishape) - i.rank) + i.shape), ishape,
                                 tuple(range(len(ishape))))
        lin = i if lin is None else _e("add", _e("multiply", lin, _c(lin, n)), i)
    others = [k for k in range(v.rank) if k not in dims]
    where_ = dims[0] if adjacent else 0
    v = bld.transpose(v, others[:where_] + dims + others[where_:])
    merged = int(_np.prod([v.shape[where_ + j] for j in range(len(dims))], dtype=_np.int64))
    v = bld.reshape(v, v.shape[:where_] + (merged,) + v.shape[where_ + len(dims):])
    return bld.emit("take", v, lin, axis=where_, batch_dims=0)


@_implements(_np.take)
def take(a, indices, axis=None, out=None, mode=None):
    """Take elements along an axis. Under ``mode`` None/'raise' static indices out of range
    raise as in NumPy, and traced ones are clamped (compiled code cannot raise); 'clip'
    clamps (negative indices to 0), 'wrap' wraps."""
    _reject("numpy.take", out=out)
    if not _has_tracer((a, indices)):
        return _np.take(a, indices, axis=axis, mode=mode or "raise")
    if mode not in (None, "raise", "clip", "wrap"):
        raise UnsupportedError(f"numpy.take: mode={mode!r} is not supported", user_loc())
    if not _is_tracer(a):
        a = _wrap(_var(a))
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "numpy.take")
    n = a.shape[ax]
    i = _index_var(indices, n if mode in (None, "raise") else None, ax)
    if mode == "clip":
        i = _b().convert(i, dt.INT64)
        i = _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))
    elif mode == "wrap":
        i = _b().convert(i, dt.INT64)
        i = _e("remainder", i, _c(i, builtins.max(n, 1)))
    return _wrap(_b().emit("take", _var(a), i, axis=ax, batch_dims=0))


@_implements(_np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """NumPy's take_along_axis; static indices out of range raise, traced ones are clamped."""
    if not _has_tracer((arr, indices)):
        return _np.take_along_axis(arr, indices, axis)
    if not _is_tracer(arr):
        arr = _wrap(_var(arr))
    if axis is None:
        arr, axis = ravel(arr), 0
    ax = _axis(axis, arr.ndim, "numpy.take_along_axis")
    i = _index_var(indices, arr.shape[ax], ax)
    if i.rank != arr.ndim:
        raise ShapeError("`indices` and `arr` must have the same number of dimensions", user_loc())
    return _wrap(_b().emit("take_along_axis", _var(arr), i, axis=ax))


def dynamic_slice(operand, start_indices, slice_sizes):
    """A window of static size ``slice_sizes`` at (possibly traced) ``start_indices``, like
    ``lax.dynamic_slice``: starts are clamped so that the window stays inside the array."""
    if not _has_tracer((operand, *start_indices)):
        a = _np.asarray(operand)
        starts = [builtins.min(builtins.max(int(s), 0), d - n) for s, n, d in zip(start_indices, slice_sizes, a.shape)]
        return a[tuple(slice(s, s + n) for s, n in zip(starts, slice_sizes))]
    if not _is_tracer(operand):
        operand = _wrap(_var(operand))
    if len(start_indices) != operand.ndim or len(slice_sizes) != operand.ndim:
        raise ShapeError(f"dynamic_slice: need {operand.ndim} start indices and slice sizes, got "
                         f"{len(start_indices)} and {len(slice_sizes)}", user_loc())
    starts = []
    for s in start_indices:
        sv = _var(s) if _is_tracer(s) else _b().constant(_np.int64(int(s)))
        if sv.rank != 0:
            raise ShapeError("dynamic_slice: each start index must be a scalar", user_loc())
        if not dt.is_int(sv.dtype):
            raise TracingError(f"dynamic_slice: start indices must be integers, got {sv.dtype}", user_loc())
        starts.append(sv)
    return _wrap(_b().emit("dynamic_slice", _var(operand), *starts,
                           sizes=_static_ints(slice_sizes, "slice_sizes")))


# --- creation ------------------------------------------------------------------------------------
# With static arguments these return NumPy arrays: they become constants (a broadcast
# scalar when all elements are equal) when they meet a tracer.

zeros, ones, empty, full = _np.zeros, _np.ones, _np.zeros, _np.full
arange, eye, identity, linspace = _np.arange, _np.eye, _np.identity, _np.linspace


def _like(fill, a, dtype, shape):
    d = dtype if dtype is not None else a.dtype
    return _np.full(a.shape if shape is None else shape, fill, dtype=d)


@_implements(_np.zeros_like, _np.empty_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(0, a, dtype, shape) if _is_tracer(a) else _np.zeros_like(a, dtype=dtype, shape=shape)


@_implements(_np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(1, a, dtype, shape) if _is_tracer(a) else _np.ones_like(a, dtype=dtype, shape=shape)


@_implements(_np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if isinstance(fill_value, Tracer):
        d = dtype if dtype is not None else (a.dtype if hasattr(a, "dtype") else None)
        return broadcast_to(astype(fill_value, d) if d is not None else fill_value,
                            a.shape if shape is None else shape)
    if not _is_tracer(a):
        return _np.full_like(a, fill_value, dtype=dtype, shape=shape)
    return _like(fill_value, a, dtype, shape)


empty_like = zeros_like


# --- misc ----------------------------------------------------------------------------------------

@_implements(_np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """NumPy's formula: |a - b| <= atol + rtol * |b| where b is finite, or a == b (so equal
    infinities are close); b is first made floating (``result_type(b, 1.0)``)."""
    if not _has_tracer((a, b, rtol, atol)):
        return _np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    x, y = a, b
    if _is_tracer(y) and y.weak is None or isinstance(y, (_np.ndarray, _np.generic, list, tuple)):
        y = astype(y, _np.result_type(y.dtype if _is_tracer(y) else _np.asarray(y).dtype, 1.0))
    elif type(y) is int:
        y = float(y)
    close = less_equal(absolute(subtract(x, y)), add(atol, multiply(rtol, absolute(y))))  # noqa: F821
    r = logical_or(logical_and(close, isfinite(y)), equal(x, y))  # noqa: F821
    if equal_nan:
        r = logical_or(r, logical_and(isnan(x), isnan(y)))  # noqa: F821
    return r


@_implements(_np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    if not _has_tracer((a, b)):
        return _np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return all(isclose(a, b, rtol, atol, equal_nan))


@_implements(_np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    if not _is_tracer(x):
        return _np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    if not dt.is_float(x.dtype):
        return x
    fi = _np.finfo(x.dtype)
    r = where(isnan(x), nan, x)  # noqa: F821
    r = where(logical_and(isinf(r), greater(r, 0)), fi.max if posinf is None else posinf, r)  # noqa: F821
    return where(logical_and(isinf(r), less(r, 0)), fi.min if neginf is None else neginf, r)  # noqa: F821


class linalg:
    """``vmapc.numpy.linalg``: vector and matrix norms."""

    @staticmethod
    def norm(x, ord=None, axis=None, keepdims=False):
        """NumPy's norm: vector norms of any order, and the Frobenius, 1, -1, inf and -inf
        norms of matrices. Matrix 2-norms and nuclear norms need an SVD and are not
        supported."""
        if not _is_tracer(x):
            return _np.linalg.norm(x, ord, axis, keepdims)
        if not dt.is_float(x.dtype):
            x = astype(x, dt.FLOAT64)
        if axis is None:
            if ord is None or (ord in ("f", "fro") and x.ndim == 2) or (ord == 2 and x.ndim == 1):
                r = sqrt(sum(multiply(x, x)))  # noqa: F821
                return reshape(r, (1,) * x.ndim) if keepdims else r
            if x.ndim not in (1, 2):
                raise ShapeError("Improper number of dimensions to norm.", user_loc())
            axis = tuple(range(x.ndim))
        axes = _axes(axis, x.ndim, "numpy.linalg.norm")
        if len(axes) == 1:
            return linalg._vector_norm(x, ord, axes, keepdims)
        if len(axes) != 2:
            raise ShapeError("Improper number of dimensions to norm.", user_loc())
        row, col = axes
        if ord in (None, "f", "fro"):
            return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))  # noqa: F821
        if ord in (1, -1, _np.inf, -_np.inf):
            inner, outer = (row, col) if ord in (1, -1) else (col, row)
            outer -= outer > inner  # the inner axis is gone
            extreme = max if ord in (1, _np.inf) else min
            r = extreme(sum(absolute(x), axis=inner), axis=outer)  # noqa: F821
            if keepdims:
                r = reshape(r, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
            return r
        if ord in (2, -2, "nuc"):
            raise UnsupportedError(f"numpy.linalg.norm: matrix ord={ord!r} is not supported (it needs "
                                   "an SVD)", user_loc())
        raise ShapeError("Invalid norm order for matrices.", user_loc())

    @staticmethod
    def _vector_norm(x, ord, axes, keepdims):
        if ord is None or ord == 2:
            return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))  # noqa: F821
        if isinstance(ord, str):
            raise ShapeError(f"Invalid norm order '{ord}' for vectors", user_loc())
        if ord == _np.inf:
            return max(absolute(x), axis=axes, keepdims=keepdims)  # noqa: F821
        if ord == -_np.inf:
            return min(absolute(x), axis=axes, keepdims=keepdims)  # noqa: F821
        if ord == 0:
            return sum(astype(not_equal(x, 0), x.dtype), axis=axes, keepdims=keepdims)  # noqa: F821
        if ord == 1:
            return sum(absolute(x), axis=axes, keepdims=keepdims)  # noqa: F821
        r = sum(power(absolute(x), ord), axis=axes, keepdims=keepdims)  # noqa: F821
        return power(r, astype(_np.reciprocal(float(ord)), r.dtype))  # noqa: F821


_HANDLED[_np.linalg.norm] = linalg.norm


# --- NumPy dispatch ----------------------------------------------------------------------------

_UNSUPPORTED_HINTS = {
    "nonzero": "its result shape depends on the data",
    "argwhere": "its result shape depends on the data",
    "flatnonzero": "its result shape depends on the data",
    "unique": "its result shape depends on the data",
    "extract": "its result shape depends on the data",
    "compress": "its result shape depends on the data",
    "copyto": "traced arrays are immutable",
    "put": "traced arrays are immutable",
    "place": "traced arrays are immutable",
    "fill_diagonal": "traced arrays are immutable",
}


def _qualname(func):
    mod = getattr(func, "__module__", "numpy") or "numpy"
    if mod.startswith("numpy._core") or mod.startswith("numpy.core") or mod.startswith("numpy.lib"):
        mod = "numpy"
    return f"{mod}.{func.__name__}"


def _dispatch_function(func, args, kwargs):
    impl = _HANDLED.get(func)
    if impl is None:
        hint = _UNSUPPORTED_HINTS.get(func.__name__)
        raise UnsupportedError(
            f"{_qualname(func)} is not supported by vmapc"
            + (f" ({hint})" if hint else "")
            + "; see docs/numpy.md for the supported functions", user_loc())
    try:
        inspect.signature(impl).bind(*args, **kwargs)
    except TypeError as err:
        raise UnsupportedError(f"{_qualname(func)}: {err}", user_loc()) from None
    return impl(*args, **kwargs)


_REDUCE_METHODS = {"add": sum, "multiply": prod, "maximum": max, "minimum": min,
                   "logical_and": all, "logical_or": any}


def _dispatch_ufunc(ufunc, method, inputs, kwargs):
    name = ufunc.__name__
    if method == "__call__":
        if name == "matmul":
            return matmul(*inputs, **kwargs)
        f = globals().get(name) if name in _SUPPORTED_UFUNCS else None
        if f is None:
            raise UnsupportedError(f"numpy.{name} is not supported by vmapc; see docs/numpy.md",
                                   user_loc())
        try:
            inspect.signature(f).bind(*inputs, **kwargs)
        except TypeError as err:
            raise UnsupportedError(f"numpy.{name}: {err}", user_loc()) from None
        return f(*inputs, **kwargs)
    if method == "reduce" and name in _REDUCE_METHODS:
        (a,) = inputs
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        _reject(f"numpy.{name}.reduce", kwargs)
        return _REDUCE_METHODS[name](a, axis=axis, keepdims=keepdims)
    raise UnsupportedError(f"numpy.{name}.{method} is not supported by vmapc", user_loc())


def supported_functions() -> list:
    """Names of the NumPy functions and ufuncs that trace (for docs/numpy.md)."""
    names = {_qualname(f) for f in _HANDLED}
    names |= {f"numpy.{n}" for n in _SUPPORTED_UFUNCS if hasattr(_np, n)}
    return sorted(names)


# The public API (``from vmapc.numpy import *``, docs/numpy.md): NumPy's names, the dtypes
# and constants, and vmapc's extensions; not the modules and helpers imported above.
_INTERNAL = {"annotations", "Tracer", "DTypeError", "OutOfBoundsError", "ShapeError", "TracingError", "UnsupportedError",
             "broadcast_shapes", "current", "to_var", "user_loc"}
__all__ = sorted(n for n, v in globals().items()
                 if not n.startswith("_") and n not in _INTERNAL and not isinstance(v, type(_np)))
