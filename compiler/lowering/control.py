"""Lowering of the control-flow ops to the ``scf`` dialect, with tensors as loop-carried
values: ``cond`` to ``scf.if`` (nested, one level per branch after the first, for
``switch``: IREE 3.13 converts ``scf.if``/``scf.for``/``scf.while`` with tensor values,
not ``scf.index_switch``), ``while_loop`` to ``scf.while`` and ``scan`` to ``scf.for``.

The ops sit at the level of the function, around the kernels of their sub-programs: IREE
runs the branches' and bodies' equations as dispatches and the control flow itself on the
host. A predicate therefore travels from the device to the host once per iteration (a
``tensor.extract`` of a 0-d tensor), while a ``scan`` has a static trip count and reads
nothing back. The index of a ``cond`` is clamped and widened to i32 by a 0-d kernel before
it is read (IREE 3.13 lost the sign of an i8 scalar read on the host, see
``indexing._dynamic_slice_rule``).

``scan`` reads the i-th slice of each ``xs`` with ``tensor.extract_slice`` and writes each
``y`` into a loop-carried result with ``tensor.insert_slice`` (what IREE makes of these is
in ``docs/control-flow.md``).
"""

from __future__ import annotations

from .. import dtypes as dt
from ..ops.control import while_split

from iree.compiler import ir
from iree.compiler.dialects import arith, scf, tensor

from .base import DYN, const, index_const, optimization_barrier, tensor_type


def _index_of(lctx, eqn) -> int:
    return next(k for k, e in enumerate(lctx.fn.eqns) if e is eqn)


def _selector(lctx, index, t, n: int) -> ir.Value:
    """The branch number clamped into [0, n - 1], as a host i32 scalar."""
    i32 = dt.INT32

    def body(args):
        x = args[0]
        if t.dtype == dt.BOOL:
            return [arith.extui(ir.IntegerType.get_signless(32), x)]
        signed = t.dtype in dt.SIGNED
        wide = ir.IntegerType.get_signless(64)
        if dt.bits(t.dtype) < 64:
            x = arith.extsi(wide, x) if signed else arith.extui(wide, x)
        hi = const(dt.INT64, n - 1)
        x = arith.minsi(x, hi) if signed else arith.minui(x, hi)
        if signed:
            x = arith.maxsi(x, const(dt.INT64, 0))
        return [arith.trunci(ir.IntegerType.get_signless(32), x)]
    out = lctx.generic([index], [[]], [lctx.empty((), i32)], [[]], 0, body)[0]
    return tensor.extract(out, [])


def _if(pred, types, then_fn, else_fn) -> list:
    op = scf.IfOp(pred, types, has_else=True)
    with ir.InsertionPoint(op.then_block):
        scf.YieldOp(then_fn())
    with ir.InsertionPoint(op.else_block):
        scf.YieldOp(else_fn())
    return list(op.results)


def _cond_rule(lctx, eqn, xs):
    index, ops = xs[0], list(xs[1:])
    branches = eqn.attrs["branches"]
    k = _index_of(lctx, eqn)
    types = [tensor_type(v.type) for v in eqn.outputs]

    def run(i):
        return lambda: lctx.lower_sub(branches[i], ops, f"{k}:cond.branches[{i}]")
    if len(branches) == 1:
        return run(0)()
    sel = _selector(lctx, index, eqn.inputs[0].type, len(branches))

    def chain(i):
        """branches[i] if sel == i, else the chain from i + 1 (the last branch takes the rest)."""
        if i == len(branches) - 1:
            return run(i)()
        pred = arith.cmpi(arith.CmpIPredicate.eq, sel, const(dt.INT32, i))
        return _if(pred, types, run(i), lambda: chain(i + 1))
    return chain(0)


def _while_rule(lctx, eqn, xs):
    cond, body = eqn.attrs["cond"], eqn.attrs["body"]
    nc, nb, _ = while_split(cond, body, len(xs))
    cc, bc, init = list(xs[:nc]), list(xs[nc:nc + nb]), list(xs[nc + nb:])
    k = _index_of(lctx, eqn)
    types = [tensor_type(v.type) for v in eqn.outputs]
    op = scf.WhileOp(types, init)
    before = op.regions[0].blocks.append(*types)
    after = op.regions[1].blocks.append(*types)
    with ir.InsertionPoint(before):
        (pred,) = lctx.lower_sub(cond, cc + list(before.arguments), f"{k}:while_loop.cond")
        scf.ConditionOp(tensor.extract(pred, []), list(before.arguments))
    with ir.InsertionPoint(after):
        args = list(after.arguments)
        outs = lctx.lower_sub(body, bc + args, f"{k}:while_loop.body")
        unread = _unread_carries(body, nb)
        if unread:
            (p,) = lctx.lower_sub(cond, cc + args, f"{k}:while_loop.cond")
            for j in unread:
                outs[j] = _keep_if(lctx, p, outs[j], args[j], eqn.outputs[j].type)
        scf.YieldOp(outs)
    return list(op.results)


def _unread_carries(body, nb: int) -> list:
    """The carries `body` overwrites without reading them."""
    read = {id(x) for e in body.eqns for x in e.inputs} | {id(v) for v in body.outputs}
    return [j for j, v in enumerate(body.inputs[nb:]) if id(v) not in read]


def _keep_if(lctx, pred, new, old, t) -> ir.Value:
    """``new if pred else old`` for a 0-d bool tensor `pred`: how a loop body reads a
    carry it only overwrites. IREE 3.13 rotates a ``scf.while`` into a do-while (the
    body in the "before" region), then drops the block argument of a carry the body
    does not read, and its stream conversion fails on the resulting while whose regions
    take different arguments ("region branch point has 4 operands, but region successor
    needs 2 inputs", tests/test_regressions.py). `pred` is the loop's condition
    evaluated again on the body's inputs, always true where the body runs, which IREE
    cannot fold away."""
    r = t.rank
    dims = list(range(r))
    return lctx.generic([pred, new, old], [[], dims, dims], [lctx.empty(t.shape, t.dtype)], [dims], r,
                        lambda a: [arith.select(a[0], a[1], a[2])])[0]


def _scan_rule(lctx, eqn, xs):
    body, length, reverse = eqn.attrs["body"], eqn.attrs["length"], eqn.attrs["reverse"]
    nk, n = eqn.attrs["n_consts"], eqn.attrs["n_carry"]
    consts, init, seqs = list(xs[:nk]), list(xs[nk:nk + n]), list(xs[nk + n:])
    k = _index_of(lctx, eqn)
    invariant = _invariant_ys(body, nk, n)
    ys = [lctx.empty(v.shape, v.dtype) for v in eqn.outputs[n:]]
    op = scf.ForOp(index_const(0), index_const(length), index_const(1), init + ys)
    with ir.InsertionPoint(op.body):
        i = op.induction_variable
        pos = arith.subi(index_const(length - 1), i) if reverse else i
        carry, acc = list(op.inner_iter_args[:n]), list(op.inner_iter_args[n:])
        slices = []
        for x, v in zip(seqs, eqn.inputs[nk + n:]):
            rest = v.shape[1:]
            if 0 in v.shape:      # an empty slice; MLIR rejects offset 0 into a dim of size 0
                slices.append(lctx.empty(rest, v.dtype))
                continue
            dyn, static = lctx.mixed(rest)
            slices.append(tensor.ExtractSliceOp(tensor_type(v.type.with_shape(rest)), x, [pos], dyn, [],
                                                [DYN] + [0] * len(rest), [1] + static, [1] * v.rank).result)
        outs = lctx.lower_sub(body, consts + carry + slices, f"{k}:scan.body")
        stacked = []
        for y, a, v, same in zip(outs[n:], acc, eqn.outputs[n:], invariant):
            rest = v.shape[1:]
            if 0 in v.shape:      # nothing to write (see the slices above)
                stacked.append(a)
                continue
            if same:              # the same value at every step: see _invariant_ys
                y = optimization_barrier(y)
            dyn, static = lctx.mixed(rest)
            stacked.append(tensor.InsertSliceOp(y, a, [pos], dyn, [], [DYN] + [0] * len(rest), [1] + static,
                                                [1] * v.rank).result)
        scf.YieldOp(outs[:n] + stacked)
    return list(op.results)


def _invariant_ys(body, nk: int, n: int) -> list:
    """For each ``y`` of a scan body, whether it is computed from the consts alone (the
    same value at every step).

    Such a ``y`` is written into the stacked ``ys`` through ``util.optimization_barrier``.
    Without it, when the value is a compile-time constant in IREE's eyes (a constant, or
    an expression IREE folds to one, such as ``select(c, x, x)`` or an argmax over an
    axis of size 1), IREE 3.13 hoists the whole loop into an initializer whose stream IR
    never settles: "maximum iteration count exceeded in fixed point pipeline"
    (tests/test_regressions.py::test_scans_stacking_invariant_values_compile). The barrier
    keeps the loop out of IREE's constant expressions. (Computing such ``ys`` once and
    broadcasting them outside the loop avoids that bug too, but made IREE's stream
    partitioning fail on another program: "circular dependency: input operation uses
    partition output".)"""
    varying = {id(v) for v in body.inputs[nk:]}
    for e in body.eqns:
        if any(id(x) in varying for x in e.inputs):
            varying.update(id(v) for v in e.outputs)
    return [id(y) not in varying for y in body.outputs[n:]]


RULES = {"cond": _cond_rule, "while_loop": _while_rule, "scan": _scan_rule}
