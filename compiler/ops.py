"""The op set: every primitive the IR knows, defined once.

An :class:`Op` has a name, a family, the names of its attributes and a type
inference function ``infer(in_types, **attrs) -> [out_types]`` that also checks its
operands (raising :class:`~vmapc.errors.ShapeError` or
:class:`~vmapc.errors.DTypeError`). Semantics are NumPy's; where NumPy would raise
at run time and compiled code cannot, the op says what it does instead (indexing
clamps, integer division by zero gives 0).

The IR is stricter than NumPy so that each stage stays simple:

* elementwise ops take operands of one dtype and equal rank; a dim of size 1
  broadcasts against any size. ``vmapc.numpy`` adds the reshapes and conversions
  that NumPy's broadcasting and promotion imply;
* reductions drop the reduced axes (``keepdims`` is a reshape afterwards);
* all contractions are ``dot_general`` (as in XLA): output dims are the batch dims,
  then the lhs free dims, then the rhs free dims.

Each op has one entry in each interpretation's table: the NumPy reference
(:mod:`vmapc.reference`), the batching rules (:mod:`vmapc.rules`) and the lowering
to MLIR (:mod:`vmapc.lowering`). ``tests/test_op_tables.py`` checks that none is
missing.
"""

from __future__ import annotations

import numpy as np

from . import dtypes as dt
from .errors import DTypeError, IRError, ShapeError
from .shapes import Sym, prod


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
    (symbolic dims count as 1)."""
    n = 1
    for d in shape:
        if isinstance(d, int):
            n *= d
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ShapeError(f"{what} would have shape {_fmt_shape(shape)} of {np.dtype(dtype)}: {n} elements, "
                         f"{nbytes} bytes, more than the 2**63 - 1 bytes compiled code can address")


# --- helpers -----------------------------------------------------------------------------------

def _T(shape, dtype):
    from .ir import TensorType
    return TensorType(shape, dtype)


def _check_kind(op, t, kind, which="operand"):
    if t.dtype not in dt.KINDS[kind]:
        allowed = {"float": "floating-point", "int": "integer", "integer_or_bool": "integer or bool",
                   "numeric": "integer or floating-point", "any": "any"}[kind]
        raise DTypeError(f"{op}: {which} has dtype {t.dtype}, expected a {allowed} dtype")


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


# --- elementwise -------------------------------------------------------------------------------

UNARY = {
    # name: (accepted dtype kind, result: "same" or "bool")
    "negative": ("numeric", "same"), "abs": ("numeric", "same"), "sign": ("numeric", "same"),
    "square": ("numeric", "same"),
    "exp": ("float", "same"), "expm1": ("float", "same"), "log": ("float", "same"),
    "log1p": ("float", "same"), "sqrt": ("float", "same"), "rsqrt": ("float", "same"),
    "reciprocal": ("float", "same"),
    "sin": ("float", "same"), "cos": ("float", "same"), "tan": ("float", "same"),
    "tanh": ("float", "same"), "arcsin": ("float", "same"), "arccos": ("float", "same"),
    "arctan": ("float", "same"), "sinh": ("float", "same"), "cosh": ("float", "same"),
    "sigmoid": ("float", "same"), "erf": ("float", "same"),
    "floor": ("float", "same"), "ceil": ("float", "same"), "round": ("float", "same"),
    "logical_not": ("any", "bool"), "bitwise_not": ("integer_or_bool", "same"),
    "isnan": ("float", "bool"), "isfinite": ("float", "bool"), "isinf": ("float", "bool"),
}

BINARY = {
    "add": ("any", "same"), "subtract": ("numeric", "same"), "multiply": ("any", "same"),
    "divide": ("float", "same"), "floor_divide": ("numeric", "same"),
    "remainder": ("numeric", "same"), "power": ("numeric", "same"),
    "maximum": ("any", "same"), "minimum": ("any", "same"), "arctan2": ("float", "same"),
    "equal": ("any", "bool"), "not_equal": ("any", "bool"), "less": ("any", "bool"),
    "less_equal": ("any", "bool"), "greater": ("any", "bool"), "greater_equal": ("any", "bool"),
    "logical_and": ("any", "bool"), "logical_or": ("any", "bool"), "logical_xor": ("any", "bool"),
    "bitwise_and": ("integer_or_bool", "same"), "bitwise_or": ("integer_or_bool", "same"),
    "bitwise_xor": ("integer_or_bool", "same"),
}


def _unary_infer(name, kind, result):
    def infer(ts):
        _check_arity(name, ts, 1)
        _check_kind(name, ts[0], kind)
        return [_T(ts[0].shape, dt.BOOL if result == "bool" else ts[0].dtype)]
    return infer


def _binary_infer(name, kind, result):
    def infer(ts):
        _check_arity(name, ts, 2)
        if ts[0].dtype != ts[1].dtype:
            raise DTypeError(f"{name}: operand dtypes differ ({ts[0].dtype} and {ts[1].dtype}); "
                             "the IR needs explicit conversions")
        _check_kind(name, ts[0], kind)
        return [_T(_broadcast_equal_rank(name, ts), dt.BOOL if result == "bool" else ts[0].dtype)]
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
       "convert[dtype](x): NumPy's astype (floats to ints truncate toward zero; to bool is x != 0).")


# --- reductions --------------------------------------------------------------------------------

REDUCE = {
    "reduce_sum": "numeric", "reduce_prod": "numeric", "reduce_max": "any",
    "reduce_min": "any", "reduce_any": "any", "reduce_all": "any",
}
IDENTITY_FREE = {"reduce_max": "maximum", "reduce_min": "minimum"}


def _reduce_infer(name, kind):
    def infer(ts, axes):
        _check_arity(name, ts, 1)
        t = ts[0]
        _check_kind(name, t, kind)
        if name in ("reduce_any", "reduce_all") and t.dtype != dt.BOOL:
            raise DTypeError(f"{name}: operand has dtype {t.dtype}, expected bool")
        _check_axes(name, axes, t.rank)
        if name in IDENTITY_FREE and any(t.shape[a] == 0 for a in axes):
            raise ShapeError(f"zero-size array to reduction operation {IDENTITY_FREE[name]} "
                             "which has no identity")
        return [_T([d for i, d in enumerate(t.shape) if i not in axes], t.dtype)]
    return infer


for _n, _k in REDUCE.items():
    define(_n, "reduction", ("axes",), _reduce_infer(_n, _k))


def _argreduce_infer(name):
    def infer(ts, axis):
        _check_arity(name, ts, 1)
        t = ts[0]
        _check_axes(name, (axis,), t.rank, "axis")
        if t.shape[axis] == 0:
            raise ShapeError(f"attempt to get {name} of an empty sequence")
        return [_T([d for i, d in enumerate(t.shape) if i != axis], dt.INT64)]
    return infer


for _n in ("argmax", "argmin"):
    define(_n, "reduction", ("axis",), _argreduce_infer(_n),
           f"{_n}[axis](x): int64 index of the first extreme element; NaN counts as extreme.")


# --- contraction -------------------------------------------------------------------------------

def _dot_general_infer(ts, contract, batch):
    _check_arity("dot_general", ts, 2)
    lhs, rhs = ts
    if lhs.dtype != rhs.dtype:
        raise DTypeError(f"dot_general: operand dtypes differ ({lhs.dtype} and {rhs.dtype})")
    _check_kind("dot_general", lhs, "numeric")
    (lc, rc), (lb, rb) = contract, batch
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise IRError("dot_general: contract and batch dims must pair up")
    _check_axes("dot_general", tuple(lc) + tuple(lb), lhs.rank, "lhs dims")
    _check_axes("dot_general", tuple(rc) + tuple(rb), rhs.rank, "rhs dims")
    for a, b in zip(lc, rc):
        if lhs.shape[a] != rhs.shape[b]:
            raise ShapeError(f"dot_general: contracting dims differ in size: lhs dim {a} is "
                             f"{lhs.shape[a]}, rhs dim {b} is {rhs.shape[b]}")
    for a, b in zip(lb, rb):
        if lhs.shape[a] != rhs.shape[b]:
            raise ShapeError(f"dot_general: batch dims differ in size: lhs dim {a} is "
                             f"{lhs.shape[a]}, rhs dim {b} is {rhs.shape[b]}")
    lfree = [d for i, d in enumerate(lhs.shape) if i not in lc and i not in lb]
    rfree = [d for i, d in enumerate(rhs.shape) if i not in rc and i not in rb]
    return [_T([lhs.shape[a] for a in lb] + lfree + rfree, lhs.dtype)]


define("dot_general", "contraction", ("contract", "batch"), _dot_general_infer,
       "dot_general[contract=((lhs..),(rhs..)), batch=((lhs..),(rhs..))](lhs, rhs): sum of products "
       "over the contract dims; result dims are batch, lhs free, rhs free.")


# --- shape ops ---------------------------------------------------------------------------------

def _reshape_infer(ts, shape):
    _check_arity("reshape", ts, 1)
    t = ts[0]
    if any(not isinstance(d, (int, Sym)) or (isinstance(d, int) and d < 0) for d in shape):
        raise ShapeError(f"reshape: bad target shape {shape}")
    if prod(t.shape) != prod(shape):
        raise ShapeError(f"cannot reshape array of shape {_fmt_shape(t.shape)} into shape {_fmt_shape(shape)}")
    return [_T(shape, t.dtype)]


def _transpose_infer(ts, perm):
    _check_arity("transpose", ts, 1)
    t = ts[0]
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the {t.rank} axes")
    return [_T([t.shape[p] for p in perm], t.dtype)]


def _broadcast_in_dim_infer(ts, shape, dims):
    _check_arity("broadcast_in_dim", ts, 1)
    t = ts[0]
    if len(dims) != t.rank or any(not 0 <= d < len(shape) for d in dims) or list(dims) != sorted(set(dims)):
        raise ShapeError(f"broadcast_in_dim: dims {dims} must be {t.rank} increasing positions in "
                         f"the result's {len(shape)} dims")
    for i, d in enumerate(dims):
        if t.shape[i] != 1 and t.shape[i] != shape[d]:
            raise ShapeError(f"cannot broadcast shape {_fmt_shape(t.shape)} to {_fmt_shape(shape)}")
    return [_T(shape, t.dtype)]


def _concatenate_infer(ts, axis):
    if not ts:
        raise ShapeError("need at least one array to concatenate")
    t0 = ts[0]
    if not 0 <= axis < t0.rank:
        raise ShapeError(f"concatenate: axis {axis} out of range for rank {t0.rank}")
    for t in ts[1:]:
        if t.dtype != t0.dtype:
            raise DTypeError(f"concatenate: operand dtypes differ ({t0.dtype} and {t.dtype})")
        if t.rank != t0.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, t0.shape)) if i != axis):
            raise ShapeError("all the input array dimensions except for the concatenation axis must "
                             f"match exactly, got shapes {', '.join(_fmt_shape(x.shape) for x in ts)}")
    shape = list(t0.shape)
    shape[axis] = _sum_dims([t.shape[axis] for t in ts])
    return [_T(shape, t0.dtype)]


def _sum_dims(ds):
    if all(isinstance(d, int) for d in ds):
        return sum(ds)
    nonzero = [d for d in ds if d != 0]
    if len(nonzero) == 1:
        return nonzero[0]
    raise ShapeError("concatenate: cannot add symbolic sizes")


def _slice_infer(ts, start, limit, step):
    _check_arity("slice", ts, 1)
    t = ts[0]
    if not len(start) == len(limit) == len(step) == t.rank:
        raise IRError("slice: start, limit and step need one entry per dim")
    out = []
    for d, s, l, k in zip(t.shape, start, limit, step):
        if isinstance(d, Sym) or isinstance(l, Sym):
            if (s, l, k) != (0, d, 1):
                raise ShapeError("slice: a dynamic dim can only be taken whole")
            out.append(d)
            continue
        if not (0 <= s <= l <= d) or k < 1:
            raise ShapeError(f"slice: bad bounds start={s} limit={l} step={k} for a dim of size {d}")
        out.append(-(-(l - s) // k))
    return [_T(out, t.dtype)]


def _rev_infer(ts, axes):
    _check_arity("rev", ts, 1)
    _check_axes("rev", axes, ts[0].rank)
    return [ts[0]]


def _pad_infer(ts, lo, hi):
    _check_arity("pad", ts, 2)
    t, v = ts
    if v.rank != 0 or v.dtype != t.dtype:
        raise DTypeError(f"pad: the padding value must be a 0-d {t.dtype}, got {v}")
    if len(lo) != t.rank or len(hi) != t.rank or any(p < 0 for p in lo + hi):
        raise ShapeError(f"pad: need non-negative lo/hi for each of {t.rank} dims, got {lo}, {hi}")
    out = []
    for d, a, b in zip(t.shape, lo, hi):
        if isinstance(d, Sym):
            if a or b:
                raise ShapeError("pad: a dynamic dim cannot be padded")
            out.append(d)
        else:
            out.append(d + a + b)
    return [_T(out, t.dtype)]


define("reshape", "shape", ("shape",), _reshape_infer, "reshape[shape](x): row-major reshape.")
define("transpose", "shape", ("perm",), _transpose_infer, "transpose[perm](x): result dim i is x dim perm[i].")
define("broadcast_in_dim", "shape", ("shape", "dims"), _broadcast_in_dim_infer,
       "broadcast_in_dim[shape, dims](x): x's dim i becomes result dim dims[i] (size 1 stretches); "
       "other result dims are new.")
define("concatenate", "shape", ("axis",), _concatenate_infer, "concatenate[axis](*xs)")
define("slice", "shape", ("start", "limit", "step"), _slice_infer,
       "slice[start, limit, step](x): static strided slice, positive steps.")
define("rev", "shape", ("axes",), _rev_infer, "rev[axes](x): reverse the order along axes (np.flip).")
define("pad", "shape", ("lo", "hi"), _pad_infer,
       "pad[lo, hi](x, value): constant padding with the 0-d `value`.")


# --- indexing ----------------------------------------------------------------------------------

def _take_infer(ts, axis, batch_dims):
    _check_arity("take", ts, 2)
    x, idx = ts
    _check_kind("take", idx, "int", "index")
    if not 0 <= batch_dims <= axis < x.rank or batch_dims > idx.rank:
        raise ShapeError(f"take: axis {axis} / batch_dims {batch_dims} do not fit operands "
                         f"{x} and {idx}")
    if x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise ShapeError(f"take: leading batch dims differ: {x} and {idx}")
    if x.shape[axis] == 0 and prod(idx.shape) != 0:
        raise ShapeError("cannot take from an empty axis")
    return [_T(x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis + 1:], x.dtype)]


def _take_along_axis_infer(ts, axis):
    _check_arity("take_along_axis", ts, 2)
    x, idx = ts
    _check_kind("take_along_axis", idx, "int", "index")
    if x.rank != idx.rank or not 0 <= axis < x.rank:
        raise ShapeError(f"take_along_axis: `indices` and `arr` must have the same number of "
                         f"dimensions, got {x} and {idx} (axis {axis})")
    out = []
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if i == axis:
            out.append(b)
        elif a == b or b == 1:
            out.append(a)
        elif a == 1:
            out.append(b)
        else:
            raise ShapeError(f"take_along_axis: shapes {_fmt_shape(x.shape)} and "
                             f"{_fmt_shape(idx.shape)} do not broadcast outside axis {axis}")
    if x.shape[axis] == 0 and prod(idx.shape) != 0:
        raise ShapeError("cannot take from an empty axis")
    return [_T(out, x.dtype)]


def _dynamic_slice_infer(ts, sizes):
    if not ts:
        raise IRError("dynamic_slice needs an operand")
    x, starts = ts[0], ts[1:]
    if len(starts) != x.rank or len(sizes) != x.rank:
        raise ShapeError(f"dynamic_slice: need {x.rank} start indices and sizes, got {len(starts)} and {len(sizes)}")
    for s in starts:
        if s.rank != 0:
            raise ShapeError(f"dynamic_slice: start indices must be 0-d, got {s}")
        _check_kind("dynamic_slice", s, "int", "start index")
    for d, n in zip(x.shape, sizes):
        if isinstance(d, Sym):
            if n != d:
                raise ShapeError("dynamic_slice: a dynamic dim can only be taken whole")
        elif not 0 <= n <= d:
            raise ShapeError(f"dynamic_slice: slice size {n} does not fit a dim of size {d}")
    return [_T(sizes, x.dtype)]


define("take", "indexing", ("axis", "batch_dims"), _take_infer,
       "take[axis, batch_dims](x, idx): x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis+1:]; "
       "the first batch_dims dims of x and idx are shared. Negative indices count from the end; "
       "out-of-range indices are clamped.")
define("take_along_axis", "indexing", ("axis",), _take_along_axis_infer,
       "take_along_axis[axis](x, idx): np.take_along_axis; other dims broadcast; indices clamp.")
define("dynamic_slice", "indexing", ("sizes",), _dynamic_slice_infer,
       "dynamic_slice[sizes](x, *starts): a window of static size at traced offsets, clamped so "
       "the window stays inside x (as in lax.dynamic_slice).")


# --- creation ----------------------------------------------------------------------------------

def _iota_infer(ts, shape, dimension, dtype):
    _check_arity("iota", ts, 0)
    if not 0 <= dimension < len(shape):
        raise ShapeError(f"iota: dimension {dimension} out of range for shape {shape}")
    return [_T(shape, dtype)]


def _constant_infer(ts, value):
    _check_arity("constant", ts, 0)
    if not isinstance(value, np.ndarray):
        raise IRError(f"constant: value must be a NumPy array, got {type(value).__name__}")
    return [_T(value.shape, value.dtype)]


define("iota", "creation", ("shape", "dimension", "dtype"), _iota_infer,
       "iota[shape, dimension, dtype](): the index along `dimension`, broadcast to `shape`.")
define("constant", "creation", ("value",), _constant_infer, "constant[value](): a literal array.")


FAMILIES = sorted({o.family for o in OPS.values()})
