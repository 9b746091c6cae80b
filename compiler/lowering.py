"""Lowering: from vmapc IR to one MLIR module of linalg, tensor, arith and math ops.

The IR and MLIR's tensor dialects are close cousins, so lowering is mostly a
matter of choosing, for each op, the MLIR construct that says the same thing.
Almost everything becomes a ``linalg.generic``: a loop nest described by
*indexing maps* (which element of each operand an iteration reads) and a small
*scalar body* (what it computes from those elements). So the work splits in two:

* the **maps** say where data comes from. Broadcasting a size-1 dim is the
  constant 0 in a map, a reduction drops a dim from the output's map, and a
  contraction reads the two operands through different maps. Nothing is copied
  to make operands line up; IREE sees one loop nest per equation and fuses
  neighbouring ones into one kernel;
* the **scalar body** is where the semantics live. ``_UNARY`` and ``_BINARY``
  hold one small function per op that emits arith/math ops on scalars of any of
  the twelve dtypes, following :mod:`vmapc.reference` exactly, including the
  places where the reference departs from raw machine arithmetic (integer
  division by zero gives 0 and is never executed, since x86 ``idiv`` would kill
  the process; float ``floor_divide`` follows NumPy's ``npy_divmod``; ``maximum``
  propagates NaN).

A few ops have a better-fitting construct: contractions that are matmuls after
collapsing contiguous dims become ``linalg.matmul``/``batch_matmul`` (so a batch
folded into the rows is one GEMM), reshapes are ``tensor.collapse_shape`` and
``expand_shape``, slices and concatenations are ``tensor.extract_slice`` and
``insert_slice``, padding is ``tensor.pad``. Gathers (``take``, ``take_along_axis``, ``dynamic_slice``, ``rev``) are
generics over the output whose body computes an index and reads the operand
with ``tensor.extract``; IREE vectorizes those as gathers.

Where IREE 3.13's CPU backend falls short of NumPy's numbers, the scalar bodies
work around it rather than accept a wrong result: sin/cos/tan go through float64
libm (IREE's float32 versions reduce large arguments poorly), float ``power`` is
computed in float64 with C's special cases, ``arctan2`` gets its signed-zero and
infinity cases, float64 ``erf`` is a series (IREE has none), float64 to float16
conversion rounds to odd first (IREE's double rounding and flushing is off by one
ulp), and float16 ops run in float32 with one final rounding, as NumPy's half loops
do. Modules that need libm are linked against the system's (``needs_libm``). One
deviation remains: IREE's CPU runtime flushes float32/float64 subnormals to zero.

Types map directly: ``float16/32/64`` to ``f16/f32/f64``, ``bool`` to ``i1``, and
signed and unsigned integers to the same signless ``iN`` (unsigned-ness lives in
the choice of op: ``divui``, ``cmpi ult``, ``uitofp``...). A symbolic dim such as
``B`` or ``8*B`` is ``?``; its value is read once at function entry with
``tensor.dim`` on an argument that has it.

The table :data:`LOWERINGS` has one rule per op of :data:`vmapc.ops.OPS`::

    rule(lctx, eqn, operands: list[ir.Value]) -> list[ir.Value]

where ``lctx`` (a :class:`LoweringContext`) offers the shared helpers (types,
dim values, empty tensors, ``generic``). Each rule runs with the equation's
location active, so every MLIR op it creates carries the user's ``file:line``
(wrapped in a name ``"<function>#<k>:<op>"`` that lets a compiler diagnostic be
traced back to the equation).

``lower(functions)`` builds the module in its own ``ir.Context`` (never a
compiler session's, see ``docs/architecture.md``), verifies it, and returns a
:class:`LoweredModule` with the module, its text and its bytecode.
"""

from __future__ import annotations

import contextvars
import io
import math
import re

import numpy as np

from . import dtypes as dt
from .errors import LoweringError
from .ir import Eqn, Function, TensorType, Var
from .shapes import Sym, prod

from iree.compiler import ir
from iree.compiler.dialects import arith, func, linalg, tensor
from iree.compiler.dialects import math as mathd

# --- types ---------------------------------------------------------------------------------------

DYN = ir.ShapedType.get_dynamic_size()  # MLIR's kDynamic sentinel for sizes and offsets


def element_type(dtype) -> ir.Type:
    """The MLIR element type of a vmapc dtype (needs an active context)."""
    dtype = np.dtype(dtype)
    if dtype == dt.FLOAT16:
        return ir.F16Type.get()
    if dtype == dt.FLOAT32:
        return ir.F32Type.get()
    if dtype == dt.FLOAT64:
        return ir.F64Type.get()
    return ir.IntegerType.get_signless(dt.bits(dtype))


def tensor_type(t: TensorType, dtype=None) -> ir.RankedTensorType:
    shape = [DYN if isinstance(d, Sym) else d for d in t.shape]
    return ir.RankedTensorType.get(shape, element_type(dtype if dtype is not None else t.dtype))


def _is_f(dtype):
    return dt.is_float(dtype)


def _is_s(dtype):
    return dtype in dt.SIGNED


def _as_signed_bits(v: int, bits: int) -> int:
    """An integer's two's-complement value in `bits` bits, as a signed Python int."""
    v = int(v) & ((1 << bits) - 1)
    return v - (1 << bits) if bits > 1 and v >= (1 << (bits - 1)) else v


# --- scalar emission (inside a region; uses the ambient insertion point and location) ----------

def const(dtype, value) -> ir.Value:
    """A scalar constant of a vmapc dtype; ints are taken modulo 2**bits."""
    dtype = np.dtype(dtype)
    ty = element_type(dtype)
    if _is_f(dtype):
        return arith.constant(ty, ir.FloatAttr.get(ty, float(value)))
    return arith.constant(ty, ir.IntegerAttr.get(ty, _as_signed_bits(value, dt.bits(dtype))))


def loop_index(d: int) -> ir.Value:
    """The current iteration index of loop dim `d` of the enclosing linalg op."""
    return linalg.IndexOp(d).result


def index_const(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), ir.IntegerAttr.get(ir.IndexType.get(), int(v)))


def _min_int(dtype):
    return 0 if not _is_s(dtype) else int(np.iinfo(dtype).min)


def _max_int(dtype):
    return 1 if dtype == dt.BOOL else int(np.iinfo(dtype).max)


_CMPF = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}
_CMPS = {"eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_CMPU = {"eq": "eq", "ne": "ne", "lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge"}


def cmp(pred: str, a, b, dtype) -> ir.Value:
    """Compare two scalars of `dtype` (bool and unsigned compare unsigned; float
    comparisons are ordered except ``ne``, so NaN != anything)."""
    if _is_f(dtype):
        return arith.cmpf(getattr(arith.CmpFPredicate, _CMPF[pred].upper()), a, b)
    table = _CMPS if _is_s(dtype) else _CMPU
    return arith.cmpi(getattr(arith.CmpIPredicate, table[pred]), a, b)


def select(c, a, b):
    return arith.select(c, a, b)


def truthy(x, dtype):
    """x != 0 as i1 (NaN is true)."""
    if dtype == dt.BOOL:
        return x
    return cmp("ne", x, const(dtype, 0), dtype)


def _and(*xs):
    r = xs[0]
    for x in xs[1:]:
        r = arith.andi(r, x)
    return r


def _or(*xs):
    r = xs[0]
    for x in xs[1:]:
        r = arith.ori(r, x)
    return r


def _not(x):
    return arith.xori(x, const(dt.BOOL, 1))


def add(a, b, dtype):
    if _is_f(dtype):
        return arith.addf(a, b)
    return arith.ori(a, b) if dtype == dt.BOOL else arith.addi(a, b)


def mul(a, b, dtype):
    if _is_f(dtype):
        return arith.mulf(a, b)
    return arith.andi(a, b) if dtype == dt.BOOL else arith.muli(a, b)


def maximum(a, b, dtype):
    if _is_f(dtype):
        return arith.maximumf(a, b)  # NaN-propagating, as np.maximum
    if dtype == dt.BOOL:
        return arith.ori(a, b)
    return arith.maxsi(a, b) if _is_s(dtype) else arith.maxui(a, b)


def minimum(a, b, dtype):
    if _is_f(dtype):
        return arith.minimumf(a, b)
    if dtype == dt.BOOL:
        return arith.andi(a, b)
    return arith.minsi(a, b) if _is_s(dtype) else arith.minui(a, b)


def convert(x, src, dst) -> ir.Value:
    """NumPy's astype for one scalar. Float to int truncates toward zero; values out
    of the target's range give an unspecified result (as in NumPy, where it is
    platform-dependent)."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return x
    ty = element_type(dst)
    if dst == dt.BOOL:
        return truthy(x, src)
    if _is_f(src):
        if src == dt.FLOAT64 and dst == dt.FLOAT16:
            return arith.truncf(ty, _f64_to_f32_round_to_odd(x))
        if _is_f(dst):
            return arith.extf(ty, x) if dst.itemsize > src.itemsize else arith.truncf(ty, x)
        return arith.fptosi(ty, x) if _is_s(dst) else arith.fptoui(ty, x)
    # src is bool or an integer: bool and unsigned values are zero-extended
    if _is_f(dst):
        return arith.sitofp(ty, x) if _is_s(src) else arith.uitofp(ty, x)
    sb, db = dt.bits(src), dt.bits(dst)
    if sb == db:
        return x
    if db < sb:
        return arith.trunci(ty, x)
    return arith.extsi(ty, x) if _is_s(src) else arith.extui(ty, x)


def _f64_to_f32_round_to_odd(x):
    """float64 -> float32 rounding to odd: an inexact result gets an odd last bit. Rounding
    that to float16 (nearest-even) is then correctly rounded, where two round-to-nearest
    steps are not (IREE's own f64 -> f16 also flushes f16 subnormals to zero)."""
    f32, i32 = ir.F32Type.get(), ir.IntegerType.get_signless(32)
    r = arith.truncf(f32, x)
    back = arith.extf(ir.F64Type.get(), r)
    bits = arith.bitcast(i32, r)
    one = const(dt.INT32, 1)
    inexact = arith.cmpf(arith.CmpFPredicate.ONE, back, x)  # ordered: NaN stays
    even = cmp("eq", arith.andi(bits, one), const(dt.INT32, 0), dt.INT32)
    # sign-magnitude: bits + 1 moves away from zero, bits - 1 toward it
    too_big = cmp("gt", mathd.absf(back), mathd.absf(x), dt.FLOAT64)
    moved = select(too_big, arith.subi(bits, one), arith.addi(bits, one))
    return arith.bitcast(f32, select(_and(inexact, even), moved, bits))


def _via_f32(fn):
    """Compute a float16 op in float32 and round once, as NumPy's half loops do."""
    def wrapped(*args, dtype):
        if dtype == dt.FLOAT16:
            args = [convert(a, dt.FLOAT16, dt.FLOAT32) for a in args]
            return convert(fn(*args, dtype=dt.FLOAT32), dt.FLOAT32, dt.FLOAT16)
        return fn(*args, dtype=dtype)
    return wrapped


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


# The target being lowered for (a vmapc.targets.Target), while lower() runs.
_TARGET = contextvars.ContextVar("vmapc_lowering_target")


def _f64_math() -> bool:
    """Whether float16/32 transcendental functions may be computed in float64 through
    libm (the CPU). SPIR-V has no float64 sin/exp/log (GLSL.std.450 takes 16/32-bit
    floats), and on CUDA libdevice's float32 functions are already accurate."""
    t = _TARGET.get(None)
    return t is None or t.f64_math


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
}

# --- maps ----------------------------------------------------------------------------------------

_PARALLEL = "#linalg.iterator_type<parallel>"
_REDUCTION = "#linalg.iterator_type<reduction>"


def affine_map(n_dims: int, exprs) -> ir.AffineMap:
    """A map from `n_dims` loop dims; each expr is a dim number or the constant "0"."""
    out = [ir.AffineConstantExpr.get(0) if e == "0" else ir.AffineDimExpr.get(e) for e in exprs]
    return ir.AffineMap.get(n_dims, 0, out)


def broadcast_exprs(shape, out_shape):
    """Map exprs reading an operand of `shape` (same rank) in a loop over `out_shape`:
    a size-1 dim that broadcasts reads index 0."""
    return ["0" if d == 1 and o != 1 else i for i, (d, o) in enumerate(zip(shape, out_shape))]


# --- the lowering context ------------------------------------------------------------------------

class LoweringContext:
    """Per-function state and the shared helpers rules use."""

    def __init__(self, fn: Function):
        self.fn = fn
        self.syms: dict[str, ir.Value] = {}  # symbol name -> index value

    # dims and tensors
    def dim(self, d) -> ir.Value:
        """An index value for a dim (int or Sym)."""
        if isinstance(d, int):
            return index_const(d)
        v = None
        for name in d.names:
            if name not in self.syms:
                raise LoweringError(f"the dynamic size {name} is not the size of any argument "
                                    f"of {self.fn.name}, so it cannot be known at run time")
            v = self.syms[name] if v is None else arith.muli(v, self.syms[name])
        return v if d.coef == 1 else arith.muli(v, index_const(d.coef))

    def mixed(self, dims):
        """(dynamic values, static list with the kDynamic sentinel) for a list of dims."""
        dyn, static = [], []
        for d in dims:
            if isinstance(d, int):
                static.append(d)
            else:
                static.append(DYN)
                dyn.append(self.dim(d))
        return dyn, static

    def empty(self, shape, dtype) -> ir.Value:
        """tensor.empty of a shape of ints and Syms."""
        sizes = [d if isinstance(d, int) else self.dim(d) for d in shape]
        return tensor.empty(sizes, element_type(dtype))

    def full(self, shape, dtype, value) -> ir.Value:
        """A tensor filled with a scalar constant (tensor.empty + linalg.fill)."""
        return linalg.fill(const(dtype, value), outs=[self.empty(shape, dtype)])

    def generic(self, ins, in_maps, outs, out_maps, n_dims, body, reduction_dims=()):
        """One linalg.generic. `in_maps`/`out_maps` are lists of map exprs (see
        affine_map); `body(args)` gets the block's scalar arguments (inputs, then
        outputs) and returns the values to yield."""
        maps = [affine_map(n_dims, m) for m in list(in_maps) + list(out_maps)]
        iters = [ir.Attribute.parse(_REDUCTION if i in reduction_dims else _PARALLEL)
                 for i in range(n_dims)]
        op = linalg.GenericOp_(list(ins), list(outs),
                               ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                               ir.ArrayAttr.get(iters))
        block = op.regions[0].blocks[0]
        with ir.InsertionPoint(block):
            linalg.YieldOp(list(body(list(block.arguments))))
        return list(op.results)

    def map_scalars(self, ins, in_types, out_type: TensorType, fn) -> ir.Value:
        """An elementwise generic: `fn(*scalars)` over `out_type`'s shape, operands of
        equal rank broadcasting size-1 dims through their maps."""
        r = len(out_type.shape)
        maps = [broadcast_exprs(t.shape, out_type.shape) for t in in_types]
        init = self.empty(out_type.shape, out_type.dtype)
        return self.generic(ins, maps, [init], [list(range(r))], r,
                            lambda args: [fn(*args[:len(ins)])])[0]

    def collapse(self, x: ir.Value, shape, groups) -> ir.Value:
        """tensor.collapse_shape of a value of `shape` into one dim per group."""
        if len(groups) == len(shape) and all(len(g) == 1 for g in groups):
            return x
        out = [prod([shape[i] for i in g]) for g in groups]
        ty = ir.RankedTensorType.get([DYN if isinstance(d, Sym) else d for d in out],
                                     ir.RankedTensorType(x.type).element_type)
        return tensor.CollapseShapeOp(ty, x, _reassoc(groups)).result

    def expand(self, x: ir.Value, out_shape, groups) -> ir.Value:
        """tensor.expand_shape of a value into `out_shape`; group i lists the result
        dims that dim i of `x` splits into."""
        if len(groups) == len(out_shape) and all(len(g) == 1 for g in groups):
            return x
        dyn, static = self.mixed(out_shape)
        ty = ir.RankedTensorType.get(static, ir.RankedTensorType(x.type).element_type)
        return tensor.ExpandShapeOp(ty, x, _reassoc(groups), dyn, static).result

    def extract_index(self, x: ir.Value, dtype) -> ir.Value:
        """An integer scalar as an index (unsigned values zero-extend). Narrow ints are
        widened to i64 explicitly (IREE 3.13 lost the sign of an i8 index computed on
        the host; see _dynamic_slice_rule)."""
        i64 = ir.IntegerType.get_signless(64)
        if dt.bits(dtype) < 64:
            x = arith.extsi(i64, x) if _is_s(dtype) else arith.extui(i64, x)
        return arith.index_cast(ir.IndexType.get(), x)


def _reassoc(groups):
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, i) for i in g]) for g in groups])


# --- rules: elementwise --------------------------------------------------------------------------

def _unary_rule(name):
    scalar = _UNARY[name]

    def rule(lctx, eqn, xs):
        dtype = eqn.inputs[0].dtype
        return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type,
                                 lambda x: scalar(x, dtype=dtype))]
    return rule


def _binary_rule(name):
    scalar = _BINARY[name]

    def rule(lctx, eqn, xs):
        dtype = eqn.inputs[0].dtype
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


# --- rules: reductions ---------------------------------------------------------------------------

_REDUCERS = {
    # op: (identity for dtype, combine(acc, x, dtype))
    "reduce_sum": (lambda d: 0, add),
    "reduce_prod": (lambda d: 1, mul),
    "reduce_max": (lambda d: -math.inf if _is_f(d) else _min_int(d), maximum),
    "reduce_min": (lambda d: math.inf if _is_f(d) else _max_int(d), minimum),
    "reduce_any": (lambda d: 0, lambda a, b, dtype: arith.ori(a, b)),
    "reduce_all": (lambda d: 1, lambda a, b, dtype: arith.andi(a, b)),
}


def _reduce_rule(name):
    identity, combine = _REDUCERS[name]

    def rule(lctx, eqn, xs):
        (x,), t, out = xs, eqn.inputs[0].type, eqn.outputs[0].type
        axes = eqn.attrs["axes"]
        dtype = t.dtype
        # float16 sums and products accumulate in float32 and round once at the end
        acc = dt.FLOAT32 if dtype == dt.FLOAT16 and name in ("reduce_sum", "reduce_prod") else dtype
        init = lctx.full(out.shape, acc, identity(acc))
        kept = [i for i in range(t.rank) if i not in axes]

        def body(args):
            v = convert(args[0], dtype, acc)
            return [combine(args[1], v, dtype=acc)]
        r = lctx.generic([x], [list(range(t.rank))], [init], [kept], t.rank, body, reduction_dims=axes)[0]
        if acc != dtype:
            r = lctx.map_scalars([r], [out.with_dtype(acc)], out, lambda v: convert(v, acc, dtype))
        return [r]
    return rule


def _argreduce_rule(name):
    """argmax/argmin as two single-result reductions: the extreme value (NaN-propagating,
    as reduce_max/min), then the first index holding it. (One two-result reduction is
    smaller, but IREE 3.13 miscompiles it when it fuses a consumer into it and drops
    the unused value result.)"""
    extreme = _reduce_rule("reduce_max" if name == "argmax" else "reduce_min")

    def rule(lctx, eqn, xs):
        (x,), t, out = xs, eqn.inputs[0].type, eqn.outputs[0].type
        axis, dtype = eqn.attrs["axis"], t.dtype
        kept = [i for i in range(t.rank) if i != axis]
        value_eqn = Eqn(name, eqn.inputs, [Var(out.with_dtype(dtype))], {"axes": (axis,)}, eqn.loc)
        (best,) = extreme(lctx, value_eqn, xs)
        init = lctx.full(out.shape, dt.INT64, _max_int(dt.INT64))

        def body(args):
            v, m, best_i = args
            i = arith.index_cast(ir.IntegerType.get_signless(64), loop_index(axis))
            hit = cmp("eq", v, m, dtype)
            if _is_f(dtype):   # the extreme is NaN when any element is: find the first NaN
                hit = _or(hit, _and(arith.cmpf(arith.CmpFPredicate.UNO, v, v),
                                    arith.cmpf(arith.CmpFPredicate.UNO, m, m)))
            return [select(_and(hit, cmp("lt", i, best_i, dt.INT64)), i, best_i)]
        return lctx.generic([x, best], [list(range(t.rank)), kept], [init], [kept], t.rank, body,
                            reduction_dims=(axis,))
    return rule


# --- rules: contraction --------------------------------------------------------------------------

def _dot_general_rule(lctx, eqn, xs):
    lhs, rhs = xs
    lt, rt = eqn.inputs[0].type, eqn.inputs[1].type
    out = eqn.outputs[0].type
    (lc, rc), (lb, rb) = eqn.attrs["contract"], eqn.attrs["batch"]
    dtype = lt.dtype
    if 0 in lt.shape or 0 in rt.shape:  # an empty contraction is zeros (IREE crashes on it)
        return [lctx.full(out.shape, dtype, 0)]
    acc = dt.FLOAT32 if dtype == dt.FLOAT16 else dtype  # float16 accumulates in float32
    r = _matmul(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc)
    if r is None:
        r = _contraction_generic(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc)
    if acc != dtype:
        r = lctx.map_scalars([r], [out.with_dtype(acc)], out, lambda v: convert(v, acc, dtype))
    return [r]


def _matmul(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc):
    """linalg.matmul / batch_matmul when the operands are [batch, free, contract] and
    [batch, contract, free] after collapsing contiguous groups; None otherwise."""
    nb, k = len(lb), len(lc)
    if tuple(lb) != tuple(range(nb)) or tuple(rb) != tuple(range(nb)) or k == 0:
        return None
    pairs = sorted(zip(lc, rc))
    nlf, nrf = lt.rank - nb - k, rt.rank - nb - k
    if nlf < 1 or nrf < 1:
        return None
    if [a for a, _ in pairs] != list(range(nb + nlf, lt.rank)) or [b for _, b in pairs] != list(range(nb, nb + k)):
        return None
    bg = [list(range(nb))] if nb else []
    lhs2 = lctx.collapse(lhs, lt.shape, bg + [list(range(nb, nb + nlf)), list(range(nb + nlf, lt.rank))])
    rhs2 = lctx.collapse(rhs, rt.shape, bg + [list(range(nb, nb + k)), list(range(nb + k, rt.rank))])
    out_groups = bg + [list(range(nb, nb + nlf)), list(range(nb + nlf, out.rank))]
    mid = [prod([out.shape[i] for i in g]) for g in out_groups]
    init = linalg.fill(const(acc, 0), outs=[lctx.empty(mid, acc)])
    if nb:
        r = linalg.batch_matmul(lhs2, rhs2, outs=[init])
    else:
        r = linalg.matmul(lhs2, rhs2, outs=[init])
    return lctx.expand(r, out.shape, out_groups)


def _contraction_generic(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc):
    """Any dot_general as one generic: loop dims are batch, lhs free, rhs free,
    contract; transposes are folded into the operand maps."""
    nb, k = len(lb), len(lc)
    lfree = [i for i in range(lt.rank) if i not in lc and i not in lb]
    rfree = [i for i in range(rt.rank) if i not in rc and i not in rb]
    n = nb + len(lfree) + len(rfree) + k
    lmap, rmap = [None] * lt.rank, [None] * rt.rank
    for j, (a, b) in enumerate(zip(lb, rb)):
        lmap[a] = rmap[b] = j
    for j, a in enumerate(lfree):
        lmap[a] = nb + j
    for j, b in enumerate(rfree):
        rmap[b] = nb + len(lfree) + j
    for j, (a, b) in enumerate(zip(lc, rc)):
        lmap[a] = rmap[b] = n - k + j
    init = lctx.full(out.shape, acc, 0)
    dtype = lt.dtype

    def body(args):
        a, b, c = args
        a, b = convert(a, dtype, acc), convert(b, dtype, acc)
        return [add(c, mul(a, b, acc), acc)]
    return lctx.generic([lhs, rhs], [lmap, rmap], [init], [list(range(n - k))], n, body,
                        reduction_dims=tuple(range(n - k, n)))[0]


# --- rules: shape ops ----------------------------------------------------------------------------

def _reshape_groups(src, dst):
    """Split a reshape into segments: [(src dims, dst dims)], each segment holding
    equal products; the coarsest split is found by matching prefix products."""
    pin = [prod(src[:i]) for i in range(len(src) + 1)]
    pout = [prod(dst[:j]) for j in range(len(dst) + 1)]
    segs, i, j = [], 0, 0
    while i < len(src) and j < len(dst):
        found = None
        for a in range(i + 1, len(src) + 1):
            for b in range(j + 1, len(dst) + 1):
                if pin[a] == pout[b]:
                    found = (a, b)
                    break
            if found:
                break
        if found is None:
            return None
        a, b = found
        segs.append((list(range(i, a)), list(range(j, b))))
        i, j = a, b
    if not segs:
        return None
    # trailing size-1 dims join the last segment
    segs[-1][0].extend(range(i, len(src)))
    segs[-1][1].extend(range(j, len(dst)))
    return segs


def _reshape_rule(lctx, eqn, xs):
    (x,), src, dst = xs, eqn.inputs[0].type, eqn.outputs[0].type
    if src.shape == dst.shape:
        return [x]
    if 0 in src.shape:  # no data: just make the result
        return [lctx.empty(dst.shape, dst.dtype)]
    if src.rank == 0:
        return [lctx.expand(x, dst.shape, [])]
    if dst.rank == 0:
        return [lctx.collapse(x, src.shape, [])]
    segs = _reshape_groups(list(src.shape), list(dst.shape))
    if segs is None:
        raise LoweringError(f"reshape: cannot split {src} -> {dst} into collapses and expansions")
    mid = lctx.collapse(x, src.shape, [s for s, _ in segs])
    return [lctx.expand(mid, dst.shape, [d for _, d in segs])]


def _transpose_rule(lctx, eqn, xs):
    out = eqn.outputs[0].type
    perm = eqn.attrs["perm"]
    if tuple(perm) == tuple(range(len(perm))):
        return [xs[0]]
    init = lctx.empty(out.shape, out.dtype)
    return [linalg.transpose(xs[0], outs=[init], permutation=list(perm)).results[0]]


def _broadcast_in_dim_rule(lctx, eqn, xs):
    t, out = eqn.inputs[0].type, eqn.outputs[0].type
    shape, dims = eqn.attrs["shape"], eqn.attrs["dims"]
    exprs = ["0" if t.shape[i] == 1 and shape[d] != 1 else d for i, d in enumerate(dims)]
    init = lctx.empty(out.shape, out.dtype)
    return lctx.generic(xs, [exprs], [init], [list(range(out.rank))], out.rank, lambda a: [a[0]])


def _concatenate_rule(lctx, eqn, xs):
    out = eqn.outputs[0].type
    axis = eqn.attrs["axis"]
    dest = lctx.empty(out.shape, out.dtype)
    offset = 0
    for x, v in zip(xs, eqn.inputs):
        size = v.shape[axis]
        if 0 in v.shape:  # nothing to copy (an empty slice may not even be in bounds)
            offset = _add_dims(offset, size)
            continue
        offsets = [0] * out.rank
        offsets[axis] = offset
        doff, soff = lctx.mixed(offsets)
        dsz, ssz = lctx.mixed(v.shape)
        dest = tensor.InsertSliceOp(x, dest, doff, dsz, [], soff, ssz, [1] * out.rank).result
        offset = _add_dims(offset, size)
    return [dest]


def _add_dims(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    if b == 0:
        return a
    if isinstance(a, Sym) and isinstance(b, Sym) and a.names == b.names:
        return Sym(a.names, a.coef + b.coef)
    raise LoweringError("concatenate: cannot add symbolic sizes")


def _slice_rule(lctx, eqn, xs):
    out = eqn.outputs[0].type
    start, step = eqn.attrs["start"], eqn.attrs["step"]
    dsz, ssz = lctx.mixed(out.shape)
    ty = tensor_type(out)
    return [tensor.ExtractSliceOp(ty, xs[0], [], dsz, [], list(start), ssz, list(step)).result]


def _rev_rule(lctx, eqn, xs):
    (x,), out = xs, eqn.outputs[0].type
    axes = eqn.attrs["axes"]
    if not axes:
        return [x]
    last = {a: arith.subi(lctx.dim(out.shape[a]), index_const(1)) for a in axes}
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        idx = [arith.subi(last[d], loop_index(d)) if d in last else loop_index(d)
               for d in range(out.rank)]
        return [tensor.extract(x, idx)]
    return lctx.generic([], [], [init], [list(range(out.rank))], out.rank, body)


def _pad_rule(lctx, eqn, xs):
    x, v = xs
    out = eqn.outputs[0].type
    lo, hi = eqn.attrs["lo"], eqn.attrs["hi"]
    if not any(lo) and not any(hi):
        return [x]
    scalar = tensor.extract(v, [])
    op = tensor.PadOp(tensor_type(out), x, [], [], list(lo), list(hi))
    block = op.regions[0].blocks.append(*([ir.IndexType.get()] * out.rank))
    with ir.InsertionPoint(block):
        tensor.YieldOp(scalar)
    return [op.result]


# --- rules: indexing -----------------------------------------------------------------------------

def _clamp_index(lctx, i, n):
    """Reference's _clamp_index on an index value: negative counts from the end, then
    clip into [0, max(n - 1, 0)]."""
    zero = index_const(0)
    i = select(arith.cmpi(arith.CmpIPredicate.slt, i, zero), arith.addi(i, n), i)
    hi = arith.maxsi(arith.subi(n, index_const(1)), zero)
    return arith.minsi(arith.maxsi(i, zero), hi)


# The gathers read their indices with tensor.extract too, not as an input of the generic:
# IREE 3.13 propagates a transpose of a narrow (i8/i16/i32) index tensor into a generic
# that takes it as an input, ignoring that the body's linalg.index ops then refer to
# permuted loops (wrong elements gathered; tests/test_regressions.py).

def _take_rule(lctx, eqn, xs):
    x, idx = xs
    xt, it, out = eqn.inputs[0].type, eqn.inputs[1].type, eqn.outputs[0].type
    axis, bd = eqn.attrs["axis"], eqn.attrs["batch_dims"]
    n = lctx.dim(xt.shape[axis])
    k = it.rank - bd  # the index's own dims land at out[axis : axis + k]
    idx_dims = list(range(bd)) + list(range(axis, axis + k))
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        raw = tensor.extract(idx, [loop_index(d) for d in idx_dims])
        i = _clamp_index(lctx, lctx.extract_index(raw, it.dtype), n)
        pos = ([loop_index(d) for d in range(axis)] + [i]
               + [loop_index(d) for d in range(axis + k, out.rank)])
        return [tensor.extract(x, pos)]
    return lctx.generic([], [], [init], [list(range(out.rank))], out.rank, body)


def _take_along_axis_rule(lctx, eqn, xs):
    x, idx = xs
    xt, it, out = eqn.inputs[0].type, eqn.inputs[1].type, eqn.outputs[0].type
    axis = eqn.attrs["axis"]
    n = lctx.dim(xt.shape[axis])
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        ipos = [index_const(0) if it.shape[d] == 1 and out.shape[d] != 1 else loop_index(d)
                for d in range(out.rank)]
        i = _clamp_index(lctx, lctx.extract_index(tensor.extract(idx, ipos), it.dtype), n)
        pos = [i if d == axis else index_const(0) if xt.shape[d] == 1 and out.shape[d] != 1
               else loop_index(d) for d in range(out.rank)]
        return [tensor.extract(x, pos)]
    return lctx.generic([], [], [init], [list(range(out.rank))], out.rank, body)


def _dynamic_slice_rule(lctx, eqn, xs):
    """A gather over the output: the start indices are 0-d operands of the generic (read
    inside the kernel: IREE 3.13 loses the sign of an i8/i16 scalar read on the host),
    clamped so the window stays inside x, plus the loop index."""
    x, starts = xs[0], xs[1:]
    xt, out = eqn.inputs[0].type, eqn.outputs[0].type
    sizes = eqn.attrs["sizes"]
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        pos = []
        for d, (s, sv, dim, n) in enumerate(zip(args, eqn.inputs[1:], xt.shape, sizes)):
            if isinstance(dim, Sym) or dim == n:  # the whole dim: the start clamps to 0
                pos.append(loop_index(d))
                continue
            i = lctx.extract_index(s, sv.dtype)
            top = index_const(dim - n)
            if sv.dtype in dt.UNSIGNED:  # clip(s, 0, dim - n) of the unsigned value
                i = arith.minui(i, top)
            else:
                i = arith.maxsi(arith.minsi(i, top), index_const(0))
            pos.append(arith.addi(i, loop_index(d)))
        return [tensor.extract(x, pos)]
    return lctx.generic(starts, [[] for _ in starts], [init], [list(range(out.rank))], out.rank, body)


# --- rules: creation -----------------------------------------------------------------------------

def _iota_rule(lctx, eqn, xs):
    out = eqn.outputs[0].type
    dim = eqn.attrs["dimension"]
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        i = arith.index_cast(ir.IntegerType.get_signless(64), loop_index(dim))
        return [convert(i, dt.INT64, out.dtype)]
    return lctx.generic([], [], [init], [list(range(out.rank))], out.rank, body)


def _constant_rule(lctx, eqn, xs):
    value = np.ascontiguousarray(eqn.attrs["value"])
    if value.dtype in dt.UNSIGNED:
        value = value.view(np.dtype(f"i{value.dtype.itemsize}"))
    ty = tensor_type(eqn.outputs[0].type)
    if value.size == 0:
        return [tensor.empty(list(value.shape), ty.element_type)]
    flat = value.reshape(-1)
    if (flat == flat[0]).all() or (value.dtype.kind == "f" and np.isnan(flat).all()):
        if not (value.dtype.kind == "f" and np.signbit(flat).any() != np.signbit(flat).all()):
            attr = ir.DenseElementsAttr.get_splat(ty, _scalar_attr(ty.element_type, flat[0]))
            return [arith.constant(ty, attr)]
    attr = ir.DenseElementsAttr.get(value, signless=True, type=ty.element_type)
    return [arith.constant(ty, attr)]


def _scalar_attr(ty, v):
    if isinstance(v, np.floating):
        return ir.FloatAttr.get(ty, float(v))
    bits = ir.IntegerType(ty).width
    return ir.IntegerAttr.get(ty, _as_signed_bits(int(v), bits) if bits > 1 else int(v))


def _empty_rule(lctx, eqn, xs):
    return [lctx.empty(v.shape, v.dtype) for v in eqn.outputs]


# --- the table -----------------------------------------------------------------------------------

LOWERINGS: dict = {}
for _n in _UNARY:
    LOWERINGS[_n] = _unary_rule(_n)
for _n in _BINARY:
    LOWERINGS[_n] = _binary_rule(_n)
for _n in _REDUCERS:
    LOWERINGS[_n] = _reduce_rule(_n)
LOWERINGS.update({
    "select": _select_rule,
    "convert": _convert_rule,
    "argmax": _argreduce_rule("argmax"),
    "argmin": _argreduce_rule("argmin"),
    "dot_general": _dot_general_rule,
    "reshape": _reshape_rule,
    "transpose": _transpose_rule,
    "broadcast_in_dim": _broadcast_in_dim_rule,
    "concatenate": _concatenate_rule,
    "slice": _slice_rule,
    "rev": _rev_rule,
    "pad": _pad_rule,
    "take": _take_rule,
    "take_along_axis": _take_along_axis_rule,
    "dynamic_slice": _dynamic_slice_rule,
    "iota": _iota_rule,
    "constant": _constant_rule,
})


# --- functions and modules -----------------------------------------------------------------------

# Ops that IREE's CPU backend lowers to calls into libm, which its embedded
# (self-contained) executables lack: a module using them is linked against the system's
# libm (see vmapc.driver.Target.libm_flags). sin/cos/tan are computed in float64 for
# every dtype; the others need libm for float64 only.
LIBM_OPS = {"sin", "cos", "tan", "arctan", "arctan2"}   # IREE's float32 atan/atan2 are 40 ulps off
LIBM_F64_OPS = {"tanh", "arcsin", "arccos", "arctan", "arctan2", "floor_divide", "remainder"}


def needs_libm(eqn) -> bool:
    if eqn.op in LIBM_OPS:
        return True
    return eqn.op in LIBM_F64_OPS and eqn.inputs[0].dtype == dt.FLOAT64


class LoweredModule:
    """The result of :func:`lower`: the MLIR module (owned by `context`), its text and
    bytecode, and `equations`, mapping each location name ``"fn#k:op"`` to
    ``(function name, equation index, op, Loc)`` so compiler diagnostics can name
    the user's line. `needs_libm` says whether some op needs the C math library;
    `target` is the :class:`~vmapc.targets.Target` it was lowered for."""

    def __init__(self, context, module, equations, functions, target=None):
        self.context = context
        self.module = module
        self.equations = equations
        self.functions = {f.name: f for f in functions}
        self.target = target
        self.needs_libm = ((target is None or bool(target.libm_flags))
                           and any(needs_libm(e) for f in functions for e in f.eqns))

    @property
    def text(self) -> str:
        with self.context:
            return str(self.module)

    @property
    def bytecode(self) -> bytes:
        buf = io.BytesIO()
        with self.context:
            self.module.operation.write_bytecode(buf)
        return buf.getvalue()

    @property
    def compiler_input(self) -> bytes:
        """What the driver hands to ``iree-compile``: the text form with locations.
        (IREE 3.13's ``iree-compile`` crashes in PropagateLinalgTranspose on some
        modules read from bytecode, e.g. ``x @ x.T``, that it compiles from text.)"""
        with self.context:
            return self.module.operation.get_asm(enable_debug_info=True).encode()

    def find(self, name: str):
        """(function, index, op, Loc) for a location name, or None."""
        return self.equations.get(name)


def _location(fn: Function, k: int, eqn: Eqn) -> ir.Location:
    child = (ir.Location.file(eqn.loc.file, eqn.loc.line, 0) if eqn.loc is not None
             else ir.Location.unknown())
    return ir.Location.name(f"{fn.name}#{k}:{eqn.op}", childLoc=child)


def _lower_function(fn: Function, equations: dict, output_storage: bool = False):
    """One public func.func. With `output_storage`, each result k gets an extra trailing
    ``!hal.buffer {iree.abi.output = k}`` argument: the caller passes a host-visible
    buffer and IREE writes the result into it (how results are read back on Vulkan,
    where IREE 3.13's own readback fails; see vmapc.runtime.module)."""
    in_tys = [tensor_type(v.type) for v in fn.inputs]
    out_tys = [tensor_type(v.type) for v in fn.outputs]
    storage = [ir.Type.parse("!hal.buffer")] * len(fn.outputs) if output_storage else []
    f = func.FuncOp(fn.name, ir.FunctionType.get(in_tys + storage, out_tys))
    if storage:
        index = ir.IndexType.get()
        empty = ir.DictAttr.get({})
        f.arg_attrs = ir.ArrayAttr.get(
            [empty] * len(in_tys)
            + [ir.DictAttr.get({"iree.abi.output": ir.IntegerAttr.get(index, k)}) for k in range(len(storage))])
    block = f.add_entry_block()
    lctx = LoweringContext(fn)
    env = {}
    with ir.InsertionPoint(block):
        # the value of each symbolic size, read once from an argument that has it
        for v, arg in zip(fn.inputs, block.arguments):
            env[id(v)] = arg
            for pos, d in enumerate(v.shape):
                if isinstance(d, Sym) and len(d.names) == 1 and d.names[0] not in lctx.syms:
                    size = tensor.dim(arg, index_const(pos))
                    if d.coef != 1:
                        size = arith.divui(size, index_const(d.coef))
                    lctx.syms[d.names[0]] = size
        for k, eqn in enumerate(fn.eqns):
            loc = _location(fn, k, eqn)
            equations[f"{fn.name}#{k}:{eqn.op}"] = (fn.name, k, eqn.op, eqn.loc)
            rule = LOWERINGS.get(eqn.op)
            if rule is None:
                raise LoweringError(f"{fn.name}: no lowering for op {eqn.op!r}", eqn.loc)
            if all(0 in v.shape for v in eqn.outputs):
                rule = _empty_rule  # no elements to compute
            try:
                with loc:
                    outs = rule(lctx, eqn, [env[id(v)] for v in eqn.inputs])
            except LoweringError as e:
                raise LoweringError(f"{fn.name}: cannot lower {eqn.op}: {e.message}", eqn.loc) from None
            except (ValueError, TypeError, KeyError, IndexError, ir.MLIRError) as e:
                raise LoweringError(f"{fn.name}: cannot lower {eqn.op}: {e}", eqn.loc) from e
            if len(outs) != len(eqn.outputs):
                raise LoweringError(f"{fn.name}: the lowering of {eqn.op} gave {len(outs)} results, "
                                    f"expected {len(eqn.outputs)}", eqn.loc)
            for v, o in zip(eqn.outputs, outs):
                env[id(v)] = o
        func.ReturnOp([env[id(v)] for v in fn.outputs])
    return f


def lower(functions, target=None) -> LoweredModule:
    """Lower Functions (with distinct names) into one verified MLIR module, one public
    ``func.func`` per Function, for `target` (a :class:`~vmapc.targets.Target` or its
    name; default ``"cpu"``).

    The target is checked first (:meth:`~vmapc.targets.Target.check` raises
    :class:`~vmapc.errors.TargetError` naming a dtype or op it cannot run and the
    user's line), then decides: whether float16/32 sin/cos/tan/power use float64 libm
    (CPU only), how float64 round is expanded (Vulkan), whether results go into
    caller-provided buffers (Vulkan) and which attributes the module carries (e.g. the
    explicit ``hal.device.targets`` of CUDA sm_90a)."""
    from .targets import get_target
    if isinstance(functions, Function):
        functions = [functions]
    functions = list(functions)
    t = get_target(target if target is not None else "cpu")
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise LoweringError(f"function names must be unique, got {names}")
    t.check(functions)
    ctx = ir.Context()
    equations: dict = {}
    token = _TARGET.set(t)
    try:
        with ctx, ir.Location.unknown():
            module = ir.Module.create()
            for name, text in t.module_attrs:
                module.operation.attributes[name] = ir.Attribute.parse(text)
            with ir.InsertionPoint(module.body):
                for fn in functions:
                    _lower_function(fn, equations, output_storage=t.output_storage)
            try:
                ok = module.operation.verify()
            except ir.MLIRError as e:
                raise _verify_error(e, equations) from None
            if not ok:
                raise LoweringError("the generated MLIR module does not verify")
    finally:
        _TARGET.reset(token)
    return LoweredModule(ctx, module, equations, functions, target=t)


def _verify_error(e, equations) -> LoweringError:
    diags = list(getattr(e, "error_diagnostics", []) or [])
    for d in diags:
        m = re.search(r'"([^"]+#\d+:\w+)"', str(d.location))
        if m and m.group(1) in equations:
            fn, k, op, loc = equations[m.group(1)]
            return LoweringError(f"{fn}: the MLIR generated for {op} (equation {k}) does not "
                                 f"verify: {d.message}", loc)
    return LoweringError(f"the generated MLIR module does not verify: {e}")
