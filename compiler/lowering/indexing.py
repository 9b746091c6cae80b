"""Lowering of gathers (``take``, ``take_along_axis``, ``dynamic_slice``): generics over
the output whose body computes a clamped index and reads the operand with
``tensor.extract``."""

from __future__ import annotations


from .. import dtypes as dt
from ..shapes import Sym

from iree.compiler.dialects import arith, tensor

from .base import gather_source, index_const, loop_index, select


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
    x, idx = gather_source(xs[0]), xs[1]
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
    x, idx = gather_source(xs[0]), xs[1]
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


RULES = {"take": _take_rule, "take_along_axis": _take_along_axis_rule, "dynamic_slice": _dynamic_slice_rule}
