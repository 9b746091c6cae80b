"""Lowering of shape ops: reshapes as collapse/expand, transposes, broadcasts as
generics, concatenation and slices as insert/extract_slice, rev, pad."""

from __future__ import annotations


from ..errors import LoweringError
from ..shapes import Sym, prod

from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, tensor

from .base import optimization_barrier, index_const, loop_index, tensor_type


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
    """tensor.extract_slice; with steps, a generic reading through a strided map (IREE 3.13
    fails to compile a gather, a generic with tensor.extract in its body, from a strided
    extract_slice: "LLVM Translation failed for builtin.unrealized_conversion_cast", e.g.
    for x[::2][::-1] or np.take(x[::2], i))."""
    out = eqn.outputs[0].type
    start, step = eqn.attrs["start"], eqn.attrs["step"]
    if not any(s != 1 for s in step) or 0 in out.shape:
        dsz, ssz = lctx.mixed(out.shape)
        r = tensor.ExtractSliceOp(tensor_type(out), xs[0], [], dsz, [], list(start), ssz,
                                  [1] * out.rank if 0 in out.shape else list(step)).result
        if all(d == 1 for d in out.shape) and isinstance(xs[0], ir.OpResult) \
                and xs[0].owner.operation.name != "arith.constant":
            # IREE 3.13 never finishes compiling (tiling loops, memory grows) when it fuses the
            # producer of a one-element slice into a consumer that broadcasts it
            # (tests/test_regressions.py): the element is materialized on its own.
            r = optimization_barrier(r)
        return [r]
    # the unit-stride box around the window, then a generic reading every step-th element
    box = [d if st == 1 else (d - 1) * st + 1 for d, st in zip(out.shape, step)]
    x = xs[0]
    if list(start) != [0] * out.rank or tuple(box) != tuple(eqn.inputs[0].shape):
        dsz, ssz = lctx.mixed(box)
        x = tensor.ExtractSliceOp(tensor_type(out.with_shape(box)), x, [], dsz, [], list(start), ssz,
                                  [1] * out.rank).result
    exprs = [ir.AffineDimExpr.get(d) if st == 1 else ir.AffineExpr.get_mul(ir.AffineDimExpr.get(d),
                                                                           ir.AffineConstantExpr.get(st))
             for d, st in enumerate(step)]
    in_map = ir.AffineMap.get(out.rank, 0, exprs)
    op = linalg.GenericOp_([x], [lctx.empty(out.shape, out.dtype)],
                           ir.ArrayAttr.get([ir.AffineMapAttr.get(in_map),
                                             ir.AffineMapAttr.get(ir.AffineMap.get_identity(out.rank))]),
                           ir.ArrayAttr.get([ir.Attribute.parse("#linalg.iterator_type<parallel>")] * out.rank))
    block = op.regions[0].blocks[0]
    with ir.InsertionPoint(block):
        linalg.YieldOp([block.arguments[0]])
    return [op.results[0]]


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


RULES = {
    "reshape": _reshape_rule,
    "transpose": _transpose_rule,
    "broadcast_in_dim": _broadcast_in_dim_rule,
    "concatenate": _concatenate_rule,
    "slice": _slice_rule,
    "rev": _rev_rule,
    "pad": _pad_rule,
}
