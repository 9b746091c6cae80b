"""Shared pieces of every lowering rule: MLIR types for vmapc dtypes, scalar arithmetic
that follows the reference evaluator (comparisons, conversions, min/max), affine maps,
and :class:`LoweringContext`, which rules use to build tensors and ``linalg.generic`` ops."""

from __future__ import annotations

import contextvars

import numpy as np

from .. import dtypes as dt
from ..errors import LoweringError
from ..ir import Function, TensorType
from ..shapes import Sym, prod

from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, tensor
from iree.compiler.dialects import complex as cplx
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
    if dt.is_complex(dtype):
        return ir.ComplexType.get(element_type(dt.component(dtype)))
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
    if dt.is_complex(dtype):
        value, part = complex(value), dt.component(dtype)
        return make_complex(const(part, value.real), const(part, value.imag))
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


# --- complex scalars: pairs of floats of the component dtype (the `complex` dialect) -----------

def make_complex(re, im) -> ir.Value:
    """The complex scalar re + im*j (complex.create: no complex.constant, which SPIR-V
    cannot lower)."""
    return cplx.CreateOp(ir.ComplexType.get(re.type), re, im).result


def parts(z):
    """(real, imaginary) parts of a complex scalar."""
    return cplx.re(z), cplx.im(z)


def cmp(pred: str, a, b, dtype) -> ir.Value:
    """Compare two scalars of `dtype` (bool and unsigned compare unsigned; float
    comparisons are ordered except ``ne``, so NaN != anything; complex numbers are
    equal when both parts are, and have no order)."""
    if dt.is_complex(dtype):
        part = dt.component(dtype)
        (ar, ai), (br, bi) = parts(a), parts(b)
        eq = _and(cmp("eq", ar, br, part), cmp("eq", ai, bi, part))
        if pred not in ("eq", "ne"):
            raise LoweringError(f"complex numbers have no order ({pred})")
        return eq if pred == "eq" else _not(eq)
    if _is_f(dtype):
        return arith.cmpf(getattr(arith.CmpFPredicate, _CMPF[pred].upper()), a, b)
    table = _CMPS if _is_s(dtype) else _CMPU
    return arith.cmpi(getattr(arith.CmpIPredicate, table[pred]), a, b)


def select(c, a, b):
    """c ? a : b. Complex values are selected part by part (SPIR-V has no select of
    complex<f32>)."""
    if a.type.typeid == ir.ComplexType.static_typeid:
        (ar, ai), (br, bi) = parts(a), parts(b)
        return make_complex(arith.select(c, ar, br), arith.select(c, ai, bi))
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
    if dt.is_complex(dtype):
        return cplx.add(a, b)
    if _is_f(dtype):
        return arith.addf(a, b)
    return arith.ori(a, b) if dtype == dt.BOOL else arith.addi(a, b)


def mul(a, b, dtype):
    if dt.is_complex(dtype):
        return _complex_mul(a, b, dtype)
    if _is_f(dtype):
        return arith.mulf(a, b)
    return arith.andi(a, b) if dtype == dt.BOOL else arith.muli(a, b)


def _complex_mul(a, b, dtype):
    """(ar br - ai bi) + (ar bi + ai br) j, NumPy's formula (MLIR's complex.mul adds C99's
    recovery of infinities from NaN results, which NumPy does not)."""
    (ar, ai), (br, bi) = parts(a), parts(b)
    return make_complex(arith.subf(arith.mulf(ar, br), arith.mulf(ai, bi)),
                        arith.addf(arith.mulf(ar, bi), arith.mulf(ai, br)))


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
    """NumPy's astype for one scalar, with one defined result on every target.
    Float to int truncates toward zero through int64 and wraps to the target's width
    (two's complement), NumPy's answer on x86 for every value in int32's range; NaN,
    infinities and values outside int64's range give int64's minimum (x86's
    ``cvttsd2si``), then wrap. To uint64,
    values in [2**63, 2**64) convert exactly. LLVM's ``fptosi`` alone leaves
    out-of-range values undefined: the answer then depended on fusion and the host
    (see ``float_to_int`` in :mod:`vmapc.reference.elementwise`, the same rule)."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return x
    ty = element_type(dst)
    if dst == dt.BOOL:
        return truthy(x, src)
    if dt.is_complex(src):           # complex to real keeps the real part, as NumPy's astype
        re, im = parts(x)
        part = dt.component(src)
        if not dt.is_complex(dst):
            return convert(re, part, dst)
        return make_complex(convert(re, part, dt.component(dst)), convert(im, part, dt.component(dst)))
    if dt.is_complex(dst):
        part = dt.component(dst)
        return make_complex(convert(x, src, part), const(part, 0.0))
    if _is_f(src):
        if src == dt.FLOAT64 and dst == dt.FLOAT16:
            return arith.truncf(ty, _f64_to_f32_round_to_odd(x))
        if _is_f(dst):
            return arith.extf(ty, x) if dst.itemsize > src.itemsize else arith.truncf(ty, x)
        return _float_to_int(x, src, dst)
    # src is bool or an integer: bool and unsigned values are zero-extended
    if _is_f(dst):
        return arith.sitofp(ty, x) if _is_s(src) else arith.uitofp(ty, x)
    sb, db = dt.bits(src), dt.bits(dst)
    if sb == db:
        return x
    if db < sb:
        return arith.trunci(ty, x)
    return arith.extsi(ty, x) if _is_s(src) else arith.extui(ty, x)


def _float_to_int(x, src, dst) -> ir.Value:
    """Float to integer through int64 (see :func:`convert`): every input has one result."""
    if src == dt.FLOAT16:          # 2**63 is not a float16: compare in float32 (exact)
        x, src = arith.extf(ir.F32Type.get(), x), dt.FLOAT32
    i64 = ir.IntegerType.get_signless(64)
    zero = const(src, 0.0)
    # ordered comparisons: NaN is out of range
    in_range = _and(cmp("ge", x, const(src, -2.0 ** 63), src), cmp("lt", x, const(src, 2.0 ** 63), src))
    r = select(in_range, arith.fptosi(i64, select(in_range, x, zero)), const(dt.INT64, -2 ** 63))
    if dst == dt.UINT64:           # [2**63, 2**64): exact
        high = _and(cmp("ge", x, const(src, 2.0 ** 63), src), cmp("lt", x, const(src, 2.0 ** 64), src))
        shifted = arith.fptosi(i64, select(high, arith.subf(x, const(src, 2.0 ** 63)), zero))
        r = select(high, arith.xori(shifted, const(dt.INT64, -2 ** 63)), r)
    if dt.bits(dst) < 64:
        r = arith.trunci(element_type(dst), r)
    return r


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


# The target being lowered for (a vmapc.targets.Target), while lower() runs.
_TARGET = contextvars.ContextVar("vmapc_lowering_target")


def _f64_math() -> bool:
    """Whether float16/32 transcendental functions may be computed in float64 through
    libm (the CPU). SPIR-V has no float64 sin/exp/log (GLSL.std.450 takes 16/32-bit
    floats), and on CUDA libdevice's float32 functions are already accurate."""
    t = _TARGET.get(None)
    return t is None or t.f64_math


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
    """Per-function state and the shared helpers rules use.

    ``path`` names where the function being lowered sits: the public function's name,
    then ``/k:op.attr`` for each sub-program on the way down (a loop body, a branch);
    location names ``"<path>#<k>:<op>"`` let a compiler diagnostic name the equation.
    A rule for an op that carries sub-programs lowers each one into the region it
    builds with :meth:`lower_sub`, which shares this context's symbolic sizes (MLIR
    regions see the values defined around them)."""

    def __init__(self, fn: Function, equations: dict | None = None, path: str | None = None, syms=None):
        self.fn = fn
        self.syms: dict[str, ir.Value] = {} if syms is None else syms  # symbol name -> index value
        self.equations = {} if equations is None else equations
        self.path = fn.name if path is None else path

    def lower_sub(self, fn: Function, args, label: str) -> list:
        """Lower sub-program `fn` at the current insertion point with its inputs bound to
        the MLIR values `args`; returns the values of its outputs."""
        from .module import lower_eqns
        child = LoweringContext(fn, self.equations, f"{self.path}/{label}", self.syms)
        env = {id(v): a for v, a in zip(fn.inputs, args)}
        lower_eqns(child, env)
        return [env[id(v)] for v in fn.outputs]

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


# --- IREE 3.13 workarounds at the tensor level ------------------------------------------------------

def optimization_barrier(x: ir.Value) -> ir.Value:
    """``util.optimization_barrier``: the same value, which IREE may neither fold nor fuse
    through (so the value is materialized, contiguous, in a buffer of its own)."""
    return ir.Operation.create("util.optimization_barrier", results=[x.type], operands=[x]).results[0]


def _strided_slice(x: ir.Value) -> bool:
    """Whether `x` is (through reshapes) a ``tensor.extract_slice`` whose elements are
    not contiguous in its source, such as a column of a matrix."""
    while isinstance(x, ir.OpResult):
        op = x.owner
        name = op.operation.name if hasattr(op, "operation") else op.name
        if name in ("tensor.collapse_shape", "tensor.expand_shape"):
            x = op.operands[0]
            continue
        if name != "tensor.extract_slice":
            return False
        attrs = op.attributes
        sizes = list(ir.DenseI64ArrayAttr(attrs["static_sizes"]))
        strides = list(ir.DenseI64ArrayAttr(attrs["static_strides"]))
        source = ir.RankedTensorType(op.operands[0].type).shape
        if any(s != 1 for s in strides):
            return True
        partial = False     # row-major: after the first dim of size > 1, every dim is whole
        for size, full in zip(sizes, source):
            if partial and size != full:
                return True
            partial = partial or size != 1
        return False
    return False


def gather_source(x: ir.Value) -> ir.Value:
    """The operand a gather (``tensor.extract`` at computed indices) reads. IREE 3.13
    folds a strided slice into the gather's load and then vectorizes the gather on a
    strided memref, which its LLVM lowering cannot translate ("LLVM Translation failed
    for operation: builtin.unrealized_conversion_cast"); such a slice is materialized
    first (tests/test_regressions.py)."""
    return optimization_barrier(x) if _strided_slice(x) else x


def _reassoc(groups):
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, i) for i in g]) for g in groups])


def empty_rule(lctx, eqn, xs):
    """The results of an equation with no elements to compute."""
    return [lctx.empty(v.shape, v.dtype) for v in eqn.outputs]
