"""Lowering of the sorting ops: ``sort`` as a bitonic sorting network of
``linalg.generic`` stages, ``top_k`` as IREE's ``iree_linalg_ext.topk``.

**sort.** IREE has a sort op (``iree_linalg_ext.sort``), but 3.13 lowers it to a bubble
sort on every backend: n passes of n compare-and-swaps, one element after the other
(256 rows of 1024 float32s: 0.5 s in an earlier run, where NumPy takes 11 ms; IREE now refuses
that module, "exceeded stack allocation limit"; ``--study sorting``).
A bitonic network does the same job in log2(n) * (log2(n) + 1) / 2 stages, each of
which compares every element with one partner (``i xor j``) in parallel: one
``linalg.generic`` over the whole array per stage, whose body reads the partner with
``tensor.extract`` and keeps the one that sorts first or last. The sorted axis is
padded to a power of two; the padding sorts last.

A network is not stable, and needs a strict total order; so every element carries its
original position along the axis and equal keys are ordered by it. That makes the
result exactly the stable sort on every backend and with any schedule: floats ascend
with NaNs last (all NaNs equal), ``-0.0`` equals ``0.0``, and a descending sort reverses
the order of the keys, not of the positions. A single key of 32 bits or fewer is packed
with its position into one int64 whose unsigned order is that order (``_sortable32``),
so the network moves one tensor and compares once; other keys (64-bit, or several)
travel as tensors of their own beside an int32 position. At the end every output is
read at the sorted positions.

The stages run as one generic inside a ``scf.for`` loop nest (over the block size and
the partner distance), so compile time does not grow with the size: unrolled, 12 sorts
of 7 or 16 elements took IREE 3x as long to compile (60-70 s against 21-24 s on a
loaded machine). Networks of up to :data:`UNROLL_STAGES` stages (4 elements) are
unrolled.

**top_k.** ``iree_linalg_ext.topk`` keeps, per row, a sorted buffer of the k best and
inserts each element in turn (O(n k)): 3.5 ms for the 4 largest of 4096 rows of 64,
where sorting them takes 10 ms. Its comparator says "greater"; NaN counts as greater than
every number, and the buffer starts with the smallest value of the dtype at position
2**31 - 1, so real elements always win ties (positions are int32: 3.13's topk fails to
compile with int64 ones). IREE breaks ties between equal values by position; the values
are then read back from x at the chosen positions, so that -0.0 and 0.0 (equal, but not
the same bits) come out as they were.
"""

from __future__ import annotations

import math

from .. import dtypes as dt

from iree.compiler import ir
from iree.compiler.dialects import arith, scf, tensor

from .base import (_and, _is_f, _max_int, _min_int, _not, _or, cmp, const, element_type, index_const, loop_index,
                   select, tensor_type)

UNROLL_STAGES = 3


# --- the order ------------------------------------------------------------------------------------

def _uno(x):
    return arith.cmpf(arith.CmpFPredicate.UNO, x, x)


def _precedes(a, b, dtype, descending):
    """a sorts strictly before b on this key (NaN last ascending, first descending)."""
    if not _is_f(dtype):
        return cmp("gt" if descending else "lt", a, b, dtype)
    if descending:
        return _or(cmp("gt", a, b, dtype), _and(_uno(a), _not(_uno(b))))
    return _or(cmp("lt", a, b, dtype), _and(_not(_uno(a)), _uno(b)))


def _same(a, b, dtype):
    """a and b are equal keys (NaNs equal each other)."""
    if not _is_f(dtype):
        return cmp("eq", a, b, dtype)
    return _or(cmp("eq", a, b, dtype), _and(_uno(a), _uno(b)))


def _before(a_keys, a_pos, b_keys, b_pos, dtypes, descending, n):
    """Element a sorts before element b: by the keys (the first first), then by position;
    padding (position >= n) after everything."""
    r = cmp("lt", a_pos, b_pos, dt.INT32)
    for a, b, d in reversed(list(zip(a_keys, b_keys, dtypes))):
        r = _or(_precedes(a, b, d, descending), _and(_same(a, b, d), r))
    limit = const(dt.INT32, n)
    a_pad, b_pad = cmp("ge", a_pos, limit, dt.INT32), cmp("ge", b_pos, limit, dt.INT32)
    return select(cmp("eq", a_pad, b_pad, dt.BOOL), r, b_pad)


# --- sort -------------------------------------------------------------------------------------------

def _padded_type(t, axis, size, dtype=None):
    shape = list(t.shape)
    shape[axis] = size
    return t.with_shape(tuple(shape)) if dtype is None else t.with_shape(tuple(shape)).with_dtype(dtype)


def _pad(x, t, axis, size):
    """x padded with zeros at the end of axis up to `size`."""
    if t.shape[axis] == size:
        return x
    hi = [0] * t.rank
    hi[axis] = size - t.shape[axis]
    zero = const(t.dtype, 0)
    op = tensor.PadOp(tensor_type(_padded_type(t, axis, size)), x, [], [], [0] * t.rank, hi)
    block = op.regions[0].blocks.append(*([ir.IndexType.get()] * t.rank))
    with ir.InsertionPoint(block):
        tensor.YieldOp(zero)
    return op.result


def _stage(lctx, state, types, axis, k, j, before):
    """One compare-and-exchange stage of the network: position i meets i xor j and keeps
    the one that sorts first (``before(mine, theirs)``, lists of scalars of the state
    tensors) if i is the lower of the two in an ascending block of k (i & k == 0), else
    the other. `k` and `j` are index values. One single-result generic per state tensor,
    each comparing again (IREE 3.13 fails to compile a multi-result generic whose results
    are transposed afterwards)."""
    rank = types[0].rank
    ident = list(range(rank))

    def stage_of(m):
        def body(args):
            mine = args[:len(state)]
            i = loop_index(axis)
            p = arith.xori(i, j)
            pos = [p if d == axis else loop_index(d) for d in range(rank)]
            theirs = [tensor.extract(s, pos) for s in state]
            up = arith.cmpi(arith.CmpIPredicate.eq, arith.andi(i, k), index_const(0))
            lower = arith.cmpi(arith.CmpIPredicate.ult, i, p)
            want_first = arith.cmpi(arith.CmpIPredicate.eq, up, lower)
            keep = arith.cmpi(arith.CmpIPredicate.eq, before(mine, theirs), want_first)
            return [select(keep, mine[m], theirs[m])]
        init = lctx.empty(types[m].shape, types[m].dtype)
        return lctx.generic(state, [ident] * len(state), [init], [ident], rank, body)[0]
    return [stage_of(m) for m in range(len(state))]


def _network(lctx, state, types, axis, size, before):
    """The bitonic network over `size` (a power of two) positions."""
    levels = size.bit_length() - 1
    if levels * (levels + 1) // 2 <= UNROLL_STAGES:
        for a in range(1, levels + 1):
            for b in range(a - 1, -1, -1):
                state = _stage(lctx, state, types, axis, index_const(1 << a), index_const(1 << b), before)
        return state
    one = index_const(1)
    outer = scf.ForOp(one, index_const(levels + 1), one, state)
    with ir.InsertionPoint(outer.body):
        a = outer.induction_variable
        inner = scf.ForOp(index_const(0), a, one, list(outer.inner_iter_args))
        with ir.InsertionPoint(inner.body):
            b = arith.subi(arith.subi(a, inner.induction_variable), one)   # a - 1 down to 0
            new = _stage(lctx, list(inner.inner_iter_args), types, axis, arith.shli(one, a), arith.shli(one, b),
                         before)
            scf.YieldOp(new)
        scf.YieldOp(list(inner.results))
    return list(outer.results)


def _iota(lctx, t, axis):
    init = lctx.empty(t.shape, dt.INT32)

    def body(args):
        return [arith.index_cast(ir.IntegerType.get_signless(32), loop_index(axis))]
    return lctx.generic([], [], [init], [list(range(t.rank))], t.rank, body)[0]


def _slice_axis(lctx, x, t, axis, n):
    """The first n positions of axis."""
    if t.shape[axis] == n:
        return x
    out = _padded_type(t, axis, n)
    dsz, ssz = lctx.mixed(out.shape)
    return tensor.ExtractSliceOp(tensor_type(out), x, [], dsz, [], [0] * t.rank, ssz, [1] * t.rank).result


def _gather_axis(lctx, x, t, pos, axis):
    """x permuted along axis: out[..., i, ...] = x[..., pos[..., i, ...], ...]."""
    init = lctx.empty(t.shape, t.dtype)

    def body(args):
        idx = [loop_index(d) for d in range(t.rank)]
        p = arith.index_cast(ir.IndexType.get(), tensor.extract(pos, idx))
        return [tensor.extract(x, [p if d == axis else idx[d] for d in range(t.rank)])]
    return lctx.generic([], [], [init], [list(range(t.rank))], t.rank, body)[0]


def _i32(v):
    return arith.constant(ir.IntegerType.get_signless(32), ir.IntegerAttr.get(ir.IntegerType.get_signless(32), v))


def _sortable32(v, dtype, descending):
    """A key of 32 bits or fewer as an i32 whose unsigned order is the sort order: signed
    ints with the sign bit flipped, floats (float16 widened) by their bits with negatives
    inverted, -0.0 as 0.0 and every NaN as one positive NaN (above +inf)."""
    i32 = ir.IntegerType.get_signless(32)
    if dtype == dt.BOOL or dt.is_unsigned(dtype):
        r = arith.extui(i32, v) if dt.bits(dtype) < 32 else v
    elif dt.is_int(dtype):
        r = arith.xori(arith.extsi(i32, v) if dt.bits(dtype) < 32 else v, _i32(-2 ** 31))
    else:
        f = arith.extf(ir.F32Type.get(), v) if dtype == dt.FLOAT16 else v
        bits = arith.bitcast(i32, f)
        # on the bits: MLIR folds select(f == 0.0, 0.0, f) to f, which keeps -0.0
        bits = select(arith.cmpi(arith.CmpIPredicate.eq, bits, _i32(-2 ** 31)), _i32(0), bits)
        bits = select(_uno(f), _i32(0x7FC00000), bits)
        negative = arith.cmpi(arith.CmpIPredicate.slt, bits, _i32(0))
        r = arith.xori(bits, select(negative, _i32(-1), _i32(-2 ** 31)))
    return arith.xori(r, _i32(-1)) if descending else r


def _packed(lctx, x, t, axis, size, descending):
    """One int64 per element, (sortable key << 32) | position, over the padded axis (padding:
    all ones above its position, so it sorts last): unsigned order is the sort order."""
    n = t.shape[axis]
    shape = list(t.shape)
    shape[axis] = size
    i64 = ir.IntegerType.get_signless(64)
    init = lctx.empty(tuple(shape), dt.INT64)

    def body(args):
        i = loop_index(axis)
        inside = arith.cmpi(arith.CmpIPredicate.ult, i, index_const(n))
        at = select(inside, i, index_const(n - 1))
        v = tensor.extract(x, [at if d == axis else loop_index(d) for d in range(t.rank)])
        key = select(inside, _sortable32(v, t.dtype, descending), _i32(-1))
        hi = arith.shli(arith.extui(i64, key), const(dt.INT64, 32))
        return [arith.ori(hi, arith.index_cast(i64, i))]
    return lctx.generic([], [], [init], [list(range(t.rank))], t.rank, body)[0], t.with_shape(tuple(shape)).with_dtype(dt.INT64)


def _sort_rule(lctx, eqn, xs):
    """A single key of 32 bits or fewer is packed with its position into one int64, so the
    network sorts one tensor with one unsigned compare; other keys travel as tensors of
    their own next to the positions. Every output is then read at the sorted positions
    (the keys too: that keeps -0.0, 0.0 and NaN payloads as they were)."""
    axis, descending, num_keys = eqn.attrs["axis"], eqn.attrs["descending"], eqn.attrs["num_keys"]
    t = eqn.inputs[0].type
    n = t.shape[axis]
    if n <= 1:
        return list(xs)
    size = 1 << (n - 1).bit_length()
    key_types = [v.type for v in eqn.inputs[:num_keys]]
    pos_type = _padded_type(t, axis, size, dt.INT32)
    if num_keys == 1 and dt.bits(t.dtype) <= 32:
        packed, pt = _packed(lctx, xs[0], t, axis, size, descending)
        (packed,) = _network(lctx, [packed], [pt], axis, size,
                             lambda a, b: arith.cmpi(arith.CmpIPredicate.ult, a[0], b[0]))
        packed = _slice_axis(lctx, packed, pt, axis, n)
        pos = lctx.map_scalars([packed], [_padded_type(pt, axis, n)], _padded_type(pos_type, axis, n),
                               lambda v: arith.trunci(ir.IntegerType.get_signless(32), v))
        return [_gather_axis(lctx, x, v.type, pos, axis) for x, v in zip(xs, eqn.inputs)]
    dtypes = [kt.dtype for kt in key_types]
    types = [_padded_type(kt, axis, size) for kt in key_types] + [pos_type]
    state = [_pad(x, kt, axis, size) for x, kt in zip(xs, key_types)] + [_iota(lctx, pos_type, axis)]
    state = _network(lctx, state, types, axis, size,
                     lambda a, b: _before(a[:-1], a[-1], b[:-1], b[-1], dtypes, descending, n))
    keys = [_slice_axis(lctx, s, st, axis, n) for s, st in zip(state[:-1], types[:-1])]
    pos = _slice_axis(lctx, state[-1], types[-1], axis, n)
    rest = [_gather_axis(lctx, x, v.type, pos, axis) for x, v in zip(xs[num_keys:], eqn.inputs[num_keys:])]
    return keys + rest


# --- top_k ------------------------------------------------------------------------------------------

def _lowest(dtype):
    if _is_f(dtype):
        return -math.inf
    return _min_int(dtype)


def _top_k_rule(lctx, eqn, xs):
    (x,), t = xs, eqn.inputs[0].type
    vt, it = eqn.outputs[0].type, eqn.outputs[1].type
    dtype = t.dtype
    work = dt.INT8 if dtype == dt.BOOL else dtype   # IREE 3.13's topk rejects i1 bodies
    src = x if work == dtype else lctx.map_scalars([x], [t], t.with_dtype(work),
                                                   lambda v: arith.extui(element_type(work), v))
    values = lctx.full(vt.shape, work, _lowest(work))
    positions = lctx.full(it.shape, dt.INT32, _max_int(dt.INT32))   # 3.13's topk fails on i64 positions
    op = ir.Operation.create(
        "iree_linalg_ext.topk", results=[tensor_type(vt, work), tensor_type(it, dt.INT32)],
        operands=[src, values, positions],
        attributes={"dimension": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), t.rank - 1)}, regions=1)
    ety = element_type(work)
    block = op.regions[0].blocks.append(ety, ety)
    with ir.InsertionPoint(block):
        a, b = block.arguments
        ir.Operation.create("iree_linalg_ext.yield", operands=[_precedes(a, b, work, True)])
    idx = op.results[1]
    init = lctx.empty(vt.shape, dtype)

    def body(args):
        pos = [loop_index(d) for d in range(vt.rank)]
        p = arith.index_cast(ir.IndexType.get(), tensor.extract(idx, pos))
        return [tensor.extract(x, pos[:-1] + [p])]
    values = lctx.generic([], [], [init], [list(range(vt.rank))], vt.rank, body)[0]
    positions = lctx.map_scalars([idx], [it.with_dtype(dt.INT32)], it,
                                 lambda p: arith.extsi(ir.IntegerType.get_signless(64), p))
    return [values, positions]


RULES = {"sort": _sort_rule, "top_k": _top_k_rule}
