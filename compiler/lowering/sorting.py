"""Lowering of the sorting ops: ``sort`` as a bitonic sorting network of
``linalg.generic`` stages, ``top_k`` as IREE's ``iree_linalg_ext.topk``.

**sort.** IREE has a sort op (``iree_linalg_ext.sort``), but 3.13 lowers it to a bubble
sort on every backend: n passes of n compare-and-swaps, one element after the other
(256 rows of 1024 float32s: 0.5 s, where NumPy takes 11 ms; docs/performance.md).
A bitonic network does the same job in log2(n) * (log2(n) + 1) / 2 stages, each of
which compares every element with one partner (``i xor j``) in parallel: one
``linalg.generic`` over the whole array per stage, whose body reads the partner with
``tensor.extract`` and keeps the smaller or larger of the two (about 25 ms for the same
sort). The sorted axis is padded to a power of two; the padding sorts last.

A network is not stable, and needs a strict total order; so every element carries its
original position (an int32 iota along the axis) and equal keys are ordered by it. That
makes the result exactly the stable sort on every backend and with any schedule: floats
ascend with NaNs last (all NaNs equal), ``-0.0`` equals ``0.0``, and a descending sort
reverses the order of the keys, not of the positions. Operands that are not keys are
gathered at the end with the sorted positions.

Small networks (up to :data:`UNROLL_STAGES` stages, 16 elements) are unrolled, one
generic per stage; larger ones run one generic in a ``scf.for`` loop nest over the
stages, so that compile time does not grow with the size (55 unrolled stages for 1024
elements took IREE 5-8 s to compile, the loop 1.5 s, for a 1.3-1.5x slower sort).

**top_k.** ``iree_linalg_ext.topk`` keeps, per row, a sorted buffer of the k best and
inserts each element in turn (O(n k)): 3.5 ms for the 4 largest of 4096 rows of 64,
where sorting them takes 10 ms. Its comparator says "greater"; NaN counts as greater than
every number, and the buffer starts with the smallest value of the dtype at position
2**31 - 1, so real elements always win ties (positions are int32: 3.13's topk fails to
compile with int64 ones). IREE breaks ties between equal values by
position; the values are then read back from x at the chosen positions, so that -0.0
and 0.0 (equal, but not the same bits) come out as they were.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..shapes import Sym

from iree.compiler import ir
from iree.compiler.dialects import arith, scf, tensor

from .base import (_and, _is_f, _max_int, _min_int, _not, _or, cmp, const, element_type, index_const, loop_index,
                   select, tensor_type)

UNROLL_STAGES = 10


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


def _stage(lctx, state, types, axis, k, j, descending, n):
    """One compare-and-exchange stage of the network: position i meets i xor j and keeps
    the one that sorts first if i is the lower of the two in an ascending block of k
    (i & k == 0), else the other. `k` and `j` are index values. One single-result
    generic per state tensor, each comparing again (IREE 3.13 fails to compile a
    multi-result generic whose results are transposed afterwards)."""
    rank = types[0].rank
    ident = list(range(rank))
    dtypes = [t.dtype for t in types[:-1]]

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
            first = _before(mine[:-1], mine[-1], theirs[:-1], theirs[-1], dtypes, descending, n)
            keep = arith.cmpi(arith.CmpIPredicate.eq, first, want_first)
            return [select(keep, mine[m], theirs[m])]
        init = lctx.empty(types[m].shape, types[m].dtype)
        return lctx.generic(state, [ident] * len(state), [init], [ident], rank, body)[0]
    return [stage_of(m) for m in range(len(state))]


def _network(lctx, state, types, axis, size, descending, n):
    """The bitonic network over `size` (a power of two) positions."""
    levels = size.bit_length() - 1
    if levels * (levels + 1) // 2 <= UNROLL_STAGES:
        for a in range(1, levels + 1):
            for b in range(a - 1, -1, -1):
                state = _stage(lctx, state, types, axis, index_const(1 << a), index_const(1 << b), descending, n)
        return state
    one = index_const(1)
    outer = scf.ForOp(one, index_const(levels + 1), one, state)
    with ir.InsertionPoint(outer.body):
        a = outer.induction_variable
        inner = scf.ForOp(index_const(0), a, one, list(outer.inner_iter_args))
        with ir.InsertionPoint(inner.body):
            b = arith.subi(arith.subi(a, inner.induction_variable), one)   # a - 1 down to 0
            new = _stage(lctx, list(inner.inner_iter_args), types, axis, arith.shli(one, a), arith.shli(one, b),
                         descending, n)
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


def _sort_rule(lctx, eqn, xs):
    axis, descending, num_keys = eqn.attrs["axis"], eqn.attrs["descending"], eqn.attrs["num_keys"]
    t = eqn.inputs[0].type
    n = t.shape[axis]
    if n <= 1:
        return list(xs)
    size = 1 << (n - 1).bit_length()
    key_types = [v.type for v in eqn.inputs[:num_keys]]
    types = [_padded_type(kt, axis, size) for kt in key_types] + [_padded_type(t, axis, size, dt.INT32)]
    state = [_pad(x, kt, axis, size) for x, kt in zip(xs, key_types)] + [_iota(lctx, types[-1], axis)]
    state = _network(lctx, state, types, axis, size, descending, n)
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
