"""Lowering of the elementwise family: one scalar body per unary and binary op
(``UNARY``, ``BINARY``), wrapped in a ``linalg.generic`` that broadcasts size-1 dims
through its maps; ``select``, ``convert`` and ``bitcast``.

The scalar bodies follow :mod:`vmapc.reference` exactly, including where it departs
from raw machine arithmetic; see the package docstring for the IREE workarounds."""

from __future__ import annotations

import math


from .. import dtypes as dt

from iree.compiler.dialects import arith
from iree.compiler.dialects import complex as cplx
from iree.compiler.dialects import math as mathd

from .base import (_TARGET, _and, _f64_math, _is_f, _is_s, _min_int, _not, _or, _via_f32, add, cmp, const, convert,
                   element_type, make_complex, maximum, minimum, mul, parts, select, truthy)


def _math1(name):
    op = getattr(mathd, name)
    return _via_f32(lambda x, dtype: op(x))


# IREE expands float64 math.expm1/log1p as exp(x) - 1 and log(1 + x), and math.sinh
# as (exp(x) - exp(-x)) / 2: near 0 every digit cancels (expm1(1e-20) and sinh(1e-20)
# gave 0, sinh(3.2e-3) was 40 ulps off in float32). Kahan's formulas keep them exact to
# a few ulps using only exp and log.

def _expm1_kahan(x, dtype):
    one = const(dtype, 1.0)
    u = mathd.exp(x)
    um1 = arith.subf(u, one)
    r = arith.mulf(um1, arith.divf(x, mathd.log(u)))
    r = select(cmp("eq", u, one, dtype), x, r)                        # tiny x
    r = select(cmp("eq", um1, const(dtype, -1.0), dtype), um1, r)     # very negative x: -1
    return select(cmp("eq", u, const(dtype, math.inf), dtype), u, r)  # overflow: inf


def _log1p_kahan(x, dtype):
    one = const(dtype, 1.0)
    u = arith.addf(one, x)
    r = arith.mulf(mathd.log(u), arith.divf(x, arith.subf(u, one)))
    r = select(cmp("eq", u, one, dtype), x, r)                        # tiny x
    return select(cmp("eq", u, const(dtype, math.inf), dtype), u, r)  # x = inf


def _expm1(x, dtype):
    return _expm1_kahan(x, dtype) if dtype == dt.FLOAT64 else mathd.expm1(x)


def _log1p(x, dtype):
    return _log1p_kahan(x, dtype) if dtype == dt.FLOAT64 else mathd.log1p(x)


def _half_exp(ax, dtype):
    """exp(ax) / 2 for large ax (exp(-ax) negligible), as (exp(ax / 2) / 2) * exp(ax / 2):
    finite up to where the result overflows (IREE's exp(ax) / 2 overflows first)."""
    h = mathd.exp(arith.mulf(ax, const(dtype, 0.5)))
    return arith.mulf(arith.mulf(h, const(dtype, 0.5)), h)


def _sinh(x, dtype):
    """sinh(|x| < 1) = (e + e / (e + 1)) / 2 with e = expm1(|x|), sign restored."""
    ax = mathd.absf(x)
    e = _expm1(ax, dtype)
    small = arith.mulf(const(dtype, 0.5), arith.addf(e, arith.divf(e, arith.addf(e, const(dtype, 1.0)))))
    r = select(cmp("lt", ax, const(dtype, 1.0), dtype), mathd.copysign(small, x), mathd.sinh(x))
    return select(cmp("gt", ax, const(dtype, 20.0), dtype), mathd.copysign(_half_exp(ax, dtype), x), r)


def _cosh(x, dtype):
    ax = mathd.absf(x)
    return select(cmp("gt", ax, const(dtype, 20.0), dtype), _half_exp(ax, dtype), mathd.cosh(x))


def _trig(name):
    """sin/cos/tan. On the CPU in float64 through libm, for every float dtype: IREE's
    float32 approximations reduce the argument poorly (sin(1e4) is off by 1e-3). Elsewhere
    the backend's own function (libdevice on CUDA, GLSL.std.450 on Vulkan), float16
    through float32."""
    op = getattr(mathd, name)

    def f(x, dtype):
        if not _f64_math():
            return _via_f32(lambda v, dtype: op(v))(x, dtype=dtype)
        return convert(op(convert(x, dtype, dt.FLOAT64)), dt.FLOAT64, dtype)
    return f


def _round(x, dtype):
    """Round half to even, as np.round. SPIR-V cannot lower math.roundeven on float64
    (IREE expands it with a 64-bit bitcast): there it is floor-based, exactly."""
    t = _TARGET.get(None)
    if dtype != dt.FLOAT64 or t is None or t.name != "vulkan":
        return mathd.roundeven(x)
    fl = mathd.floor(x)
    diff = arith.subf(x, fl)
    half = const(dtype, 0.5)
    up = arith.addf(fl, const(dtype, 1))
    fl_odd = cmp("ne", arith.subf(fl, arith.mulf(mathd.floor(arith.mulf(fl, half)), const(dtype, 2))),
                 const(dtype, 0), dtype)
    r = select(cmp("gt", diff, half, dtype), up, select(_and(cmp("eq", diff, half, dtype), fl_odd), up, fl))
    # keep -0.0 and x's sign for results of zero (np.round(-0.4) is -0.0); inf and NaN pass
    r = mathd.copysign(r, x)
    return select(_isfinite(x, dtype), r, x)


def _sign(x, dtype):
    one, zero = const(dtype, 1), const(dtype, 0)
    if dtype in dt.UNSIGNED:
        return select(cmp("ne", x, zero, dtype), one, zero)
    pos = cmp("gt", x, zero, dtype)
    neg = cmp("lt", x, zero, dtype)
    if _is_f(dtype):  # NaN stays NaN, -0.0 gives 0.0 (NumPy)
        rest = select(cmp("eq", x, zero, dtype), zero, x)
    else:
        rest = zero
    return select(pos, one, select(neg, const(dtype, -1), rest))


def _negative(x, dtype):
    return arith.negf(x) if _is_f(dtype) else arith.subi(const(dtype, 0), x)


def _abs(x, dtype):
    if _is_f(dtype):
        return mathd.absf(x)
    if dtype in dt.UNSIGNED:
        return x
    # abs(MIN) wraps to MIN, as in NumPy
    return select(cmp("lt", x, const(dtype, 0), dtype), arith.subi(const(dtype, 0), x), x)


@_via_f32
def _sigmoid(x, dtype):
    # as the reference: with e = exp(-|x|), 1/(1+e) for x >= 0 and e/(1+e) otherwise
    # (1 - 1/(1+e) lost every digit for very negative x: 1e-3 relative error at x = -9.7)
    one = const(dtype, 1)
    e = mathd.exp(arith.negf(mathd.absf(x)))
    d = arith.addf(one, e)
    return select(cmp("ge", x, const(dtype, 0), dtype), arith.divf(one, d), arith.divf(e, d))


def _rsqrt(x, dtype):
    # 1/sqrt(x) with both steps rounded to dtype, as the reference computes it
    s = _via_f32(lambda v, dtype: mathd.sqrt(v))(x, dtype=dtype)
    return _via_f32(lambda v, dtype: arith.divf(const(dtype, 1), v))(s, dtype=dtype)


def _erf(x, dtype):
    """erf. IREE approximates float16/32 erf; float64 has no lowering, so it is the
    positive series erf(x) = 2/sqrt(pi) exp(-x^2) sum_n x (2x^2)^n / (1*3*...*(2n+1))
    (no cancellation; 100 terms reach full precision for |x| < 6, and erf(x) rounds
    to +-1 beyond)."""
    if dtype != dt.FLOAT64:
        return _via_f32(lambda v, dtype: mathd.erf(v))(x, dtype=dtype)
    ax = mathd.absf(x)
    small = cmp("lt", ax, const(dtype, 6.0), dtype)
    ax = select(small, ax, const(dtype, 0.0))  # keep the series finite where unused
    x2 = arith.mulf(ax, ax)
    two_x2 = arith.addf(x2, x2)
    term, total = ax, ax
    for n in range(100):
        term = arith.mulf(term, arith.divf(two_x2, const(dtype, 2 * n + 3)))
        total = arith.addf(total, term)
    r = arith.mulf(arith.mulf(const(dtype, 2 / math.sqrt(math.pi)), mathd.exp(arith.negf(x2))), total)
    r = select(small, r, const(dtype, 1.0))
    r = mathd.copysign(r, x)
    return select(arith.cmpf(arith.CmpFPredicate.UNO, x, x), x, r)


def _isinf(x, dtype):
    return cmp("eq", mathd.absf(x), const(dtype, math.inf), dtype)


def _isfinite(x, dtype):
    return cmp("lt", mathd.absf(x), const(dtype, math.inf), dtype)


_UNARY = {
    "negative": _negative,
    "abs": _abs,
    "sign": _sign,
    "square": lambda x, dtype: mul(x, x, dtype),
    "exp": _math1("exp"), "expm1": _via_f32(_expm1), "log": _math1("log"),
    "log1p": _via_f32(_log1p), "sqrt": _math1("sqrt"), "rsqrt": _rsqrt,
    "reciprocal": lambda x, dtype: arith.divf(const(dtype, 1), x),
    "sin": _trig("sin"), "cos": _trig("cos"), "tan": _trig("tan"), "tanh": _math1("tanh"),
    "arcsin": _math1("asin"), "arccos": _math1("acos"), "arctan": _trig("atan"),
    "sinh": _via_f32(_sinh), "cosh": _via_f32(_cosh), "sigmoid": _sigmoid, "erf": _erf,
    "floor": lambda x, dtype: mathd.floor(x), "ceil": lambda x, dtype: mathd.ceil(x),
    "round": _round,  # half to even, as np.round
    "logical_not": lambda x, dtype: _not(truthy(x, dtype)),
    "bitwise_not": lambda x, dtype: arith.xori(x, const(dtype, -1)),
    "isnan": lambda x, dtype: arith.cmpf(arith.CmpFPredicate.UNO, x, x),
    "isfinite": _isfinite,
    "isinf": _isinf,
    "stop_gradient": lambda x, dtype: x,   # the rule below returns the operand itself
    # real, imag and conj take complex operands only (_COMPLEX_UNARY)
}


def _int_divmod(a, b, dtype):
    """Floor quotient and Python-style remainder of integers, never dividing by zero
    or overflowing: a zero divisor gives (0, 0) and MIN // -1 gives (MIN, 0), as the
    reference does. The divisor is replaced by 1 in those cases before dividing."""
    zero = const(dtype, 0)
    one = const(dtype, 1)
    is_zero = cmp("eq", b, zero, dtype)
    if _is_s(dtype):
        ovf = _and(cmp("eq", a, const(dtype, _min_int(dtype)), dtype), cmp("eq", b, const(dtype, -1), dtype))
        sb = select(_or(is_zero, ovf), one, b)
        q = arith.divsi(a, sb)
        r = arith.remsi(a, sb)
        # C division truncates; floor it when the remainder's sign differs from the divisor's
        adjust = _and(cmp("ne", r, zero, dtype),
                      arith.xori(cmp("lt", r, zero, dtype), cmp("lt", sb, zero, dtype)))
        q = select(adjust, arith.subi(q, one), q)
        r = select(adjust, arith.addi(r, sb), r)
    else:
        sb = select(is_zero, one, b)
        q = arith.divui(a, sb)
        r = arith.remui(a, sb)
    return select(is_zero, zero, q), select(is_zero, zero, r)


def _float_divmod(a, b, dtype):
    """NumPy's npy_divmod: (floor quotient, remainder with the divisor's sign)."""
    zero = const(dtype, 0)
    mod = arith.remf(a, b)  # C fmod
    div = arith.divf(arith.subf(a, mod), b)
    mod_nz = cmp("ne", mod, zero, dtype)
    flip = _and(mod_nz, arith.xori(cmp("lt", b, zero, dtype), cmp("lt", mod, zero, dtype)))
    mod2 = select(flip, arith.addf(mod, b), mod)
    div2 = select(flip, arith.subf(div, const(dtype, 1)), div)
    mod2 = select(mod_nz, mod2, mathd.copysign(zero, b))
    fl = mathd.floor(div2)
    fl = select(cmp("gt", arith.subf(div2, fl), const(dtype, 0.5), dtype),
                arith.addf(fl, const(dtype, 1)), fl)
    floordiv = select(cmp("ne", div2, zero, dtype), fl, mathd.copysign(zero, arith.divf(a, b)))
    b_zero = cmp("eq", b, zero, dtype)
    return select(b_zero, arith.divf(a, b), floordiv), select(b_zero, mod, mod2)


@_via_f32
def _float_floor_divide(a, b, dtype):
    return _float_divmod(a, b, dtype)[0]


@_via_f32
def _float_remainder(a, b, dtype):
    return _float_divmod(a, b, dtype)[1]


def _floor_divide(a, b, dtype):
    return _float_floor_divide(a, b, dtype=dtype) if _is_f(dtype) else _int_divmod(a, b, dtype)[0]


def _remainder(a, b, dtype):
    return _float_remainder(a, b, dtype=dtype) if _is_f(dtype) else _int_divmod(a, b, dtype)[1]


def _int_power(a, b, dtype):
    """a ** b for integers by square-and-multiply over the exponent's bits (wrapping,
    as NumPy); a negative exponent gives the truncated value of 1/a**|b|."""
    bits = dt.bits(dtype)
    zero, one = const(dtype, 0), const(dtype, 1)
    signed = _is_s(dtype)
    e = select(cmp("lt", b, zero, dtype), zero, b) if signed else b
    result, base = one, a
    for i in range(bits - 1 if signed else bits):
        bit = cmp("ne", arith.andi(e, const(dtype, 1 << i)), zero, dtype)
        result = select(bit, arith.muli(result, base), result)
        if i < bits - 1:
            base = arith.muli(base, base)
    if not signed:
        return result
    odd = cmp("ne", arith.andi(b, one), zero, dtype)
    minus_one = const(dtype, -1)
    r_neg = select(cmp("eq", a, one, dtype), one,
                   select(cmp("eq", a, minus_one, dtype), select(odd, minus_one, one), zero))
    return select(cmp("lt", b, zero, dtype), r_neg, result)


def _power(a, b, dtype):
    if _is_f(dtype):
        return _float_power(a, b, dtype=dtype)
    return _int_power(a, b, dtype)


def _float_power(x, y, dtype):
    """C's pow: math.powf on |x|, with the sign and special cases of C99 Annex F
    (IREE's expansion gives NaN for pow(NaN, 0), pow(-2, 3), ...). float16/32 are
    computed in float64 on the CPU: IREE's exp(y*log(x)) loses |y*log(x)| ulps. On GPU
    targets (no float64 libm) float32 uses the backend's powf, float16 goes through it."""
    if dtype == dt.FLOAT16 and not _f64_math():
        return convert(_float_power(convert(x, dtype, dt.FLOAT32), convert(y, dtype, dt.FLOAT32), dt.FLOAT32),
                       dt.FLOAT32, dtype)
    if dtype != dt.FLOAT64 and _f64_math():
        r = _float_power(convert(x, dtype, dt.FLOAT64), convert(y, dtype, dt.FLOAT64), dt.FLOAT64)
        return convert(r, dt.FLOAT64, dtype)
    c = lambda v: const(dtype, v)  # noqa: E731
    nan, inf = c(math.nan), c(math.inf)
    ax = mathd.absf(x)
    p = mathd.powf(ax, y)
    y_finite = _isfinite(y, dtype)
    y_int = _and(y_finite, cmp("eq", mathd.floor(y), y, dtype))
    half = arith.mulf(y, c(0.5))
    y_odd = _and(y_int, cmp("ne", mathd.floor(half), half, dtype))
    x_neg = cmp("lt", x, c(0), dtype)
    y_neg = cmp("lt", y, c(0), dtype)
    r = select(x_neg, select(y_int, select(y_odd, arith.negf(p), p), nan), p)
    at_zero = select(y_neg, select(y_odd, mathd.copysign(inf, x), inf), select(y_odd, x, c(0)))
    r = select(cmp("eq", x, c(0), dtype), at_zero, r)
    odd_neg = _and(x_neg, y_odd)
    at_inf = select(y_neg, select(odd_neg, c(-0.0), c(0)), select(odd_neg, c(-math.inf), inf))
    r = select(_isinf(x, dtype), at_inf, r)
    y_inf = select(cmp("eq", ax, c(1), dtype), c(1),
                   select(arith.xori(cmp("lt", ax, c(1), dtype), y_neg), c(0), inf))
    r = select(_isinf(y, dtype), y_inf, r)
    r = select(_or(_isnan(x), _isnan(y)), nan, r)
    return select(_or(cmp("eq", y, c(0), dtype), cmp("eq", x, c(1), dtype)), c(1), r)


def _isnan(x):
    return arith.cmpf(arith.CmpFPredicate.UNO, x, x)


def _atan2(y, x, dtype):
    """atan2 with C99's special cases (IREE's float32 approximation gives NaN for
    atan2(0, 0) and the wrong sign for atan2(-0.0, -1))."""
    if dtype == dt.FLOAT16:
        return convert(_atan2(convert(y, dtype, dt.FLOAT32), convert(x, dtype, dt.FLOAT32),
                              dt.FLOAT32), dt.FLOAT32, dtype)
    c = lambda v: const(dtype, v)  # noqa: E731
    sgn = lambda v: mathd.copysign(c(v), y)  # noqa: E731
    if dtype == dt.FLOAT32 and _f64_math():   # IREE's float32 atan2 is 40 ulps off: libm's float64
        r = convert(mathd.atan2(convert(y, dtype, dt.FLOAT64), convert(x, dtype, dt.FLOAT64)), dt.FLOAT64, dtype)
    else:
        r = mathd.atan2(y, x)
    x_neg = cmp("lt", mathd.copysign(c(1), x), c(0), dtype)  # also -0.0
    y_zero, x_zero = cmp("eq", y, c(0), dtype), cmp("eq", x, c(0), dtype)
    y_inf, x_inf = _isinf(y, dtype), _isinf(x, dtype)
    pi, half_pi = math.atan2(0.0, -1.0), math.atan2(1.0, 0.0)
    r = select(y_zero, select(x_neg, sgn(pi), sgn(0.0)), r)
    r = select(_and(x_zero, _not(y_zero)), sgn(half_pi), r)
    r = select(_and(x_inf, _not(y_inf)), select(x_neg, sgn(pi), sgn(0.0)), r)
    r = select(y_inf, select(x_inf, select(x_neg, sgn(math.atan2(1.0, -1.0)), sgn(math.atan2(1.0, 1.0))),
                             sgn(half_pi)), r)
    return select(_or(_isnan(x), _isnan(y)), c(math.nan), r)


def _shift(a, b, dtype, left):
    """NumPy's left_shift/right_shift: a shift by the bit width or more, or by a negative
    amount (a huge unsigned one), gives 0, or -1 for a negative signed operand shifted right.
    MLIR's shifts are poison there, so the amount is checked first."""
    bits = dt.bits(dtype)
    in_range = arith.cmpi(arith.CmpIPredicate.ult, b, const(dtype, bits))
    safe = select(in_range, b, const(dtype, 0))
    if left:
        return select(in_range, arith.shli(a, safe), const(dtype, 0))
    if _is_s(dtype):
        return select(in_range, arith.shrsi(a, safe), arith.shrsi(a, const(dtype, bits - 1)))
    return select(in_range, arith.shrui(a, safe), const(dtype, 0))


def _logical(op):
    return lambda a, b, dtype: op(truthy(a, dtype), truthy(b, dtype))


_BINARY = {
    "add": add,
    "subtract": lambda a, b, dtype: arith.subf(a, b) if _is_f(dtype) else arith.subi(a, b),
    "multiply": mul,
    "divide": lambda a, b, dtype: arith.divf(a, b),
    "floor_divide": _floor_divide,
    "remainder": _remainder,
    "power": _power,
    "maximum": maximum,
    "minimum": minimum,
    "arctan2": _atan2,
    "copysign": lambda a, b, dtype: mathd.copysign(a, b),
    "equal": lambda a, b, dtype: cmp("eq", a, b, dtype),
    "not_equal": lambda a, b, dtype: cmp("ne", a, b, dtype),
    "less": lambda a, b, dtype: cmp("lt", a, b, dtype),
    "less_equal": lambda a, b, dtype: cmp("le", a, b, dtype),
    "greater": lambda a, b, dtype: cmp("gt", a, b, dtype),
    "greater_equal": lambda a, b, dtype: cmp("ge", a, b, dtype),
    "logical_and": _logical(arith.andi),
    "logical_or": _logical(arith.ori),
    "logical_xor": _logical(arith.xori),
    "bitwise_and": lambda a, b, dtype: arith.andi(a, b),
    "bitwise_or": lambda a, b, dtype: arith.ori(a, b),
    "bitwise_xor": lambda a, b, dtype: arith.xori(a, b),
    "left_shift": lambda a, b, dtype: _shift(a, b, dtype, left=True),
    "right_shift": lambda a, b, dtype: _shift(a, b, dtype, left=False),
    "complex": lambda a, b, dtype: make_complex(a, b),
}


# --- complex numbers: the `complex` dialect, which IREE expands into float arithmetic ----------
# Ops not listed here take complex operands through the shared helpers of .base (add, mul,
# cmp, truthy, convert), or refuse them in type inference.

def _complex_abs(z, dtype):
    """|z| as hypot: max * sqrt(1 + (min/max)^2), neither overflowing nor underflowing where
    the result does not (complex.abs is that too, but let every target compute it alike).
    inf wins over NaN, as in C's hypot."""
    part = dt.component(dtype)
    re, im = parts(z)
    ar, ai = mathd.absf(re), mathd.absf(im)
    big, small = arith.maximumf(ar, ai), arith.minimumf(ar, ai)
    zero = const(part, 0.0)
    q = arith.divf(small, select(cmp("eq", big, zero, part), const(part, 1.0), big))
    r = arith.mulf(big, mathd.sqrt(arith.addf(const(part, 1.0), arith.mulf(q, q))))
    inf = const(part, math.inf)
    return select(_or(cmp("eq", ar, inf, part), cmp("eq", ai, inf, part)), inf, r)


def _complex_power(a, b, dtype):
    """a ** b: 1 for b == 0 (as NumPy), 0 for a == 0 and b with a positive real part,
    else exp(b log a) (MLIR's complex.pow expands into selects of complex values, which
    SPIR-V cannot lower)."""
    part = dt.component(dtype)
    zero_a = cmp("eq", a, const(dtype, 0), dtype)
    br, _ = parts(b)
    r = cplx.exp(mul(b, _complex_log(a, dtype), dtype))
    r = select(_and(zero_a, cmp("gt", br, const(part, 0.0), part)), const(dtype, 0), r)
    return select(cmp("eq", b, const(dtype, 0), dtype), const(dtype, 1), r)


def _complex_log(z, dtype):
    """log|z| + arg(z) j, with this module's hypot and atan2 (MLIR's complex.log gave
    log(0) = -inf + NaN j on the CPU, its atan2(0, 0) being NaN)."""
    part = dt.component(dtype)
    re, im = parts(z)
    return make_complex(_math1("log")(_complex_abs(z, dtype), dtype=part), _atan2(im, re, part))


_COMPLEX_UNARY = {
    "negative": lambda x, dtype: cplx.neg(x),
    "abs": _complex_abs,
    "exp": lambda x, dtype: cplx.exp(x), "log": _complex_log,
    "sqrt": lambda x, dtype: cplx.sqrt(x),
    "sin": lambda x, dtype: cplx.sin(x), "cos": lambda x, dtype: cplx.cos(x),
    "reciprocal": lambda x, dtype: cplx.div(const(dtype, 1), x),
    "real": lambda x, dtype: parts(x)[0], "imag": lambda x, dtype: parts(x)[1],
    "conj": lambda x, dtype: cplx.conj(x),
}

_COMPLEX_BINARY = {
    "subtract": lambda a, b, dtype: cplx.sub(a, b),
    "divide": lambda a, b, dtype: cplx.div(a, b),
    "power": _complex_power,
}


# --- rules: elementwise --------------------------------------------------------------------------

def _unary_rule(name):
    def rule(lctx, eqn, xs):
        dtype = eqn.inputs[0].dtype
        scalar = _COMPLEX_UNARY[name] if dt.is_complex(dtype) and name in _COMPLEX_UNARY else _UNARY[name]
        return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type,
                                 lambda x: scalar(x, dtype=dtype))]
    return rule


def _binary_rule(name):
    def rule(lctx, eqn, xs):
        dtype = eqn.inputs[0].dtype
        scalar = _COMPLEX_BINARY[name] if dt.is_complex(dtype) and name in _COMPLEX_BINARY else _BINARY[name]
        return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type,
                                 lambda a, b: scalar(a, b, dtype=dtype))]
    return rule


def _select_rule(lctx, eqn, xs):
    return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type, select)]


def _convert_rule(lctx, eqn, xs):
    src, dst = eqn.inputs[0].dtype, eqn.outputs[0].dtype
    if src == dst:
        return [xs[0]]
    return [lctx.map_scalars(xs, [eqn.inputs[0].type], eqn.outputs[0].type,
                             lambda x: convert(x, src, dst))]


def _bitcast_rule(lctx, eqn, xs):
    src, dst = eqn.inputs[0].dtype, eqn.outputs[0].dtype
    if element_type(src) == element_type(dst):   # signed and unsigned are one MLIR type
        return [xs[0]]
    return [lctx.map_scalars(xs, [eqn.inputs[0].type], eqn.outputs[0].type,
                             lambda x: arith.bitcast(element_type(dst), x))]


RULES = {name: _unary_rule(name) for name in list(_UNARY) + ["real", "imag", "conj"]}
RULES.update({name: _binary_rule(name) for name in _BINARY})
RULES.update({"select": _select_rule, "convert": _convert_rule, "bitcast": _bitcast_rule,
              "stop_gradient": lambda lctx, eqn, xs: [xs[0]]})
