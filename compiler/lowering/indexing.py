"""Lowering of gathers (``take``, ``take_along_axis``, ``dynamic_slice``): generics over
the output whose body computes a clamped index and reads the operand with
``tensor.extract``; and of the writes: ``update_slice`` is ``tensor.insert_slice`` at
offsets read on the host (IREE updates the operand's buffer in place when nothing else
reads it, which keeps a loop that writes one row per iteration linear), ``scatter`` is
IREE's ``iree_linalg_ext.scatter`` or a ``linalg.generic`` over the output (see
:func:`scatter_lowering`)."""

from __future__ import annotations


from .. import dtypes as dt
from ..shapes import Sym, prod

from iree.compiler import ir
from iree.compiler.dialects import arith, tensor

from .base import _TARGET, DYN, add, convert, element_type, gather_source, index_const, loop_index, maximum, minimum, mul, select


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


# --- writes ------------------------------------------------------------------------------------

def _host_index(lctx, s, dtype):
    """A 0-d integer tensor as an index value on the host. Narrow integers are widened to
    i64 by a one-element generic first (IREE 3.13 loses the sign of an i8/i16 scalar read
    on the host; see _dynamic_slice_rule)."""
    if dt.bits(dtype) < 64:
        i64 = ir.IntegerType.get_signless(64)
        init = tensor.empty([], i64)
        s = lctx.generic([s], [[]], [init], [[]], 0, lambda a: [convert(a[0], dtype, dt.INT64)])[0]
        dtype = dt.INT64
    return lctx.extract_index(tensor.extract(s, []), dtype)


def _update_slice_rule(lctx, eqn, xs):
    """tensor.insert_slice of the update at its clamped starts (dims written whole: 0)."""
    x, upd, starts = xs[0], xs[1], xs[2:]
    xt, ut = eqn.inputs[0].type, eqn.inputs[1].type
    if 0 in ut.shape:
        return [x]
    offsets = []
    for s, sv, d, n in zip(starts, eqn.inputs[2:], xt.shape, ut.shape):
        if isinstance(d, Sym) or d == n:
            offsets.append(0)
            continue
        i = _host_index(lctx, s, sv.dtype)
        if sv.dtype in dt.UNSIGNED:
            i = arith.minui(i, index_const(d - n))
        else:
            i = arith.maxsi(arith.minsi(i, index_const(d - n)), index_const(0))
        offsets.append(i)
    doff = [o for o in offsets if not isinstance(o, int)]
    soff = [o if isinstance(o, int) else DYN for o in offsets]
    dsz, ssz = lctx.mixed(ut.shape)
    return [tensor.InsertSliceOp(upd, x, doff, dsz, [], soff, ssz, [1] * xt.rank).result]


def _combine(mode, dtype):
    """How a scatter update u combines with the value v it lands on."""
    if mode == "set":
        return lambda u, v: u
    if dtype == dt.BOOL:
        return {"add": arith.ori, "max": arith.ori, "multiply": arith.andi, "min": arith.andi}[mode]
    f = {"add": add, "multiply": mul, "min": minimum, "max": maximum}[mode]
    return lambda u, v: f(v, u, dtype)


def scatter_lowering(eqn) -> str:
    """Which lowering a scatter gets. ``"linalg_ext"``: IREE's ``iree_linalg_ext.scatter``,
    one step per update applied in order, so its work is the number of updates (times the
    slice each writes), and inside a loop it updates the carried buffer in place.
    ``"generic"``: one loop over every output element and every update that compares
    indices (no serial loop, every target): its work is (output size) x (updates per
    row), which only wins while that product is tiny. Measured in docs/performance.md
    ("Kernels that write into their arguments"): e.g. 1,000 rows of 64 written at 10
    indices take 0.27 ms with linalg_ext and 3.8 ms as a generic; a 256-bin histogram of
    10,000 samples 0.2 ms and 14 ms."""
    x, idx = eqn.inputs[0].type, eqn.inputs[1].type
    target = _TARGET.get(None)
    if target is not None and target.name == "vulkan":
        # IREE 3.13's SPIR-V code for the generic reads a scatter's operand wrongly when it
        # is transposed (batched at its last dim): wrong sums on lavapipe. linalg_ext is right.
        return "linalg_ext"
    if eqn.attrs["mode"] == "set" and eqn.attrs["batch_dims"] and x.shape[eqn.attrs["axis"]] == 1:
        # IREE 3.13 cannot vectorize the generic's last-write search into an axis of size 1
        # beside batch dims ("'vector.multi_reduction' op reduction dimension out of range";
        # tests/test_regressions.py::test_set_scatter_into_an_axis_of_size_one_compiles)
        return "linalg_ext"
    n = prod(x.shape) * prod(idx.shape[eqn.attrs["batch_dims"]:])
    return "generic" if isinstance(n, int) and n <= SCATTER_GENERIC_LIMIT else "linalg_ext"


# the largest (output size) x (updates per row) lowered as a generic; see scatter_lowering
SCATTER_GENERIC_LIMIT = 1024


def _scatter_rule(lctx, eqn, xs):
    x, idx, upd = xs
    if 0 in eqn.inputs[2].type.shape:
        return [x]
    if scatter_lowering(eqn) == "generic":
        return [_scatter_generic(lctx, eqn, xs)]
    return [_scatter_linalg_ext(lctx, eqn, xs)]


def _scatter_index(lctx, eqn, idx, kdims):
    """The clamped index of the update at loop dims `kdims` (batch dims first), as an index."""
    xt, it = eqn.inputs[0].type, eqn.inputs[1].type
    raw = tensor.extract(idx, [loop_index(d) for d in kdims])
    return _clamp_index(lctx, lctx.extract_index(raw, it.dtype), lctx.dim(xt.shape[eqn.attrs["axis"]]))


def _scatter_generic(lctx, eqn, xs):
    """A generic over (output dims, update dims): each output element folds in, in order, the
    updates whose index is its own. `set` takes the last: the largest update position that
    hits (an order-free max reduction), then a gather of that update."""
    x, idx, upd = xs
    xt, it, ut = (v.type for v in eqn.inputs)
    axis, bd, mode = eqn.attrs["axis"], eqn.attrs["batch_dims"], eqn.attrs["mode"]
    r, k = xt.rank, it.rank - bd
    kdims = list(range(r, r + k))
    upd_map = list(range(axis)) + kdims + list(range(axis + 1, r))
    red = tuple(kdims)
    if mode != "set":
        combine = _combine(mode, xt.dtype)

        def body(args):
            u, acc = args
            hit = arith.cmpi(arith.CmpIPredicate.eq, _scatter_index(lctx, eqn, idx, list(range(bd)) + kdims),
                             loop_index(axis))
            return [select(hit, combine(u, acc), acc)]
        return lctx.generic([upd], [upd_map], [x], [list(range(r))], r + k, body, reduction_dims=red)[0]
    # set: pos[p] = the largest row-major update position k whose index hits p (-1: none)
    i64 = ir.IntegerType.get_signless(64)
    kshape = it.shape[bd:]
    init = lctx.full(xt.shape, dt.INT64, -1)

    def find(args):   # upd is an operand only to give the loops over its dims their sizes
        _, best = args
        hit = arith.cmpi(arith.CmpIPredicate.eq, _scatter_index(lctx, eqn, idx, list(range(bd)) + kdims),
                         loop_index(axis))
        lin = index_const(0)
        for j, n in enumerate(kshape):
            lin = arith.addi(arith.muli(lin, lctx.dim(n)), loop_index(r + j))
        pos = arith.index_cast(i64, lin)
        return [select(hit, arith.maxsi(best, pos), best)]
    pos = lctx.generic([upd], [upd_map], [init], [list(range(r))], r + k, find, reduction_dims=red)[0]

    def pick(args):
        p, v, _ = args
        found = arith.cmpi(arith.CmpIPredicate.sge, p, arith.constant(i64, ir.IntegerAttr.get(i64, 0)))
        # unflatten the position (clamped to 0 where nothing hit, so the read stays in bounds)
        rem = arith.index_cast(ir.IndexType.get(), arith.maxsi(p, arith.constant(i64, ir.IntegerAttr.get(i64, 0))))
        kpos = []
        for n in reversed(kshape):
            nv = lctx.dim(n)
            kpos.append(arith.remui(rem, nv))
            rem = arith.divui(rem, nv)
        kpos.reverse()
        at = [loop_index(d) for d in range(axis)] + kpos + [loop_index(d) for d in range(axis + 1, r)]
        return [select(found, tensor.extract(upd, at), v)]
    out = lctx.empty(xt.shape, xt.dtype)
    ident = list(range(r))
    return lctx.generic([pos, x], [ident, ident], [out], [ident], r, pick)[0]


def _scatter_linalg_ext(lctx, eqn, xs):
    """``iree_linalg_ext.scatter`` with one update per element of the updates' leading dims
    (the operand's dims before `axis`, then the index dims) and the dims after `axis` as
    the slice each update writes. Its index vectors hold the leading coordinates and the
    clamped index; IREE applies the updates in order (``unique_indices(false)``)."""
    x, idx, upd = xs
    xt, it, ut = (v.type for v in eqn.inputs)
    axis, bd, mode = eqn.attrs["axis"], eqn.attrs["batch_dims"], eqn.attrs["mode"]
    k = it.rank - bd
    lead = list(ut.shape[:axis + k])        # one update per element of these dims
    depth = axis + 1
    i64 = ir.IntegerType.get_signless(64)
    n = len(lead)

    def coords(args):
        c = loop_index(n)          # which coordinate of the index vector
        j = _scatter_index(lctx, eqn, idx, list(range(bd)) + list(range(axis, axis + k)))
        for d in range(axis):
            j = select(arith.cmpi(arith.CmpIPredicate.eq, c, index_const(d)), loop_index(d), j)
        return [arith.index_cast(i64, j)]
    indices = lctx.generic([], [], [lctx.empty(lead + [depth], dt.INT64)], [list(range(n + 1))], n + 1, coords)[0]
    # computed in a dispatch of its own: fused into the scatter's, IREE 3.13 materializes the
    # whole index tensor on the stack (refused past 32 KiB: "exceeded stack allocation limit")
    indices = ir.Operation.create("util.optimization_barrier", results=[indices.type], operands=[indices]).result
    dyn = [lctx.dim(d) for d in lead if not isinstance(d, int)]
    if dyn:   # the barrier hides the dynamic sizes from IREE's shape analysis: tie them back on
        indices = ir.Operation.create("flow.tensor.tie_shape", results=[indices.type], operands=[indices] + dyn).result
    # one leading dim of updates: collapse several, or add one when there are none
    slice_shape = list(ut.shape[axis + k:])
    if n == 0:
        indices = lctx.expand(indices, [1, depth], [[0, 1]])
        upd = lctx.expand(upd, [1] + slice_shape, [[0, 1]] + [[i + 1] for i in range(len(slice_shape))]) \
            if slice_shape else lctx.expand(upd, [1], [])
    else:
        indices = lctx.collapse(indices, lead + [depth], [list(range(n)), [n]])
        upd = lctx.collapse(upd, ut.shape, [list(range(n))] + [[n + i] for i in range(len(slice_shape))])
    res_ty = ir.RankedTensorType(x.type)
    op = ir.Operation.create(
        "iree_linalg_ext.scatter", results=[res_ty], operands=[upd, indices, x],
        attributes={"dimension_map": ir.DenseI64ArrayAttr.get(list(range(depth))),
                    "unique_indices": ir.BoolAttr.get(False),
                    "operandSegmentSizes": ir.DenseI32ArrayAttr.get([2, 1])},
        regions=1)
    et = element_type(xt.dtype)
    block = op.regions[0].blocks.append(et, et)
    with ir.InsertionPoint(block):
        ir.Operation.create("iree_linalg_ext.yield",
                            operands=[_combine(mode, xt.dtype)(block.arguments[0], block.arguments[1])])
    return op.result


RULES = {"take": _take_rule, "take_along_axis": _take_along_axis_rule, "dynamic_slice": _dynamic_slice_rule,
         "update_slice": _update_slice_rule, "scatter": _scatter_rule}
