"""Batching rules of the control-flow ops: ``cond``, ``while_loop`` and ``scan``
(after JAX's ``_cond_batching_rule``, ``_while_loop_batching_rule`` and
``_scan_batching_rule``).

A control-flow op carries sub-programs, so its rule batches them: it decides where each
of their inputs carries the batch, finds where their outputs' batch lands with
:func:`vmapc.vmap.batch_outputs`, and rebuilds them with
:func:`vmapc.vmap.batch_subfunction`.

**Loops find their carries' batch dims by a fixpoint.** A carry is batched if its initial
value is, or if the body makes it batched from batched inputs; the rule starts from the
batched initial values and batches the body's analysis again until no new carry turns
batched (at most one round per carry). Every batched carry sits at axis 0, inside the loop
and out. A carry the batch never reaches (a loop counter, say) stays unbatched: ``x[i]``
in the body stays a ``dynamic_slice``, not a gather.

**cond.** With an unbatched index the op stays a ``cond``: the branches are batched and
only the chosen one runs. With a batched index every branch runs on the whole batch and a
``select`` per example picks each example's result, so the values a branch computes for
an example that did not take it (a NaN, an infinity; vmapc's ops do not trap) never reach
the result.

**while_loop.** With an unbatched predicate the loop stays a plain loop over batched
carries. With a batched predicate (examples stop at different steps) the loop runs while
*any* example is unfinished: the predicate of each example is carried along, the body
runs on the whole batch, and a ``select`` keeps the carry of finished examples unchanged,
so no example's result sees a step past its own end.

**Loops that must not run.** Straight-line code and ``scan`` (a fixed trip count) can run
on any values, but a ``while_loop`` inside a branch an example did not take, or inside the
body of a loop an example has finished, would see values the per-example program never
gives it, and could run forever on them. Such sub-programs are batched through
:func:`mask_loops`: each gets the per-example flag "this example is here" (the branch was
taken, the example is unfinished) and every ``while_loop`` inside it, at any depth, stops
where the flag is false. So a loop runs exactly as many steps as the slowest example that
really reaches it.

**scan.** Batched ``xs`` carry the batch on axis 1 (axis 0 is the scan axis), so each
slice has it on axis 0; stacked ``ys`` come back with it one axis after where the body put
it.
"""

from __future__ import annotations

import numpy as np

from vmapc import dtypes as dt
from vmapc.ir import Builder, Eqn, Function, TensorType, Var, subfunctions, walk_eqns
from vmapc.ops.control import while_split
from vmapc.vmap import batch_outputs, batch_subfunction

from .helpers import axis_size_of, move_bdim, move_bdim_to_front, to_front_or_materialize


def _has_while(fn: Function) -> bool:
    return any(e.op == "while_loop" for e in walk_eqns(fn))


def _bcast(b, mask: Var, rank: int) -> Var:
    """A (B,) mask reshaped to select against values of `rank` with the batch first."""
    return b.reshape(mask, mask.shape + (1,) * (rank - 1))


def _select(b, mask, x, y):
    """Per example: x where mask (a (B,) bool), else y; x and y batched at 0."""
    return b.emit("select", _bcast(b, mask, x.rank), x, y)


def mask_loops(fn: Function) -> Function:
    """`fn` with a first input ``active`` (a 0-d bool) that every ``while_loop`` inside it,
    at any depth, needs to keep going: with ``active`` false they all stop at once. What a
    guarded sub-program runs as (see the module docstring)."""
    active = Var(TensorType((), dt.BOOL), "active")
    return Function([active] + fn.inputs, [_mask_eqn(e, active) for e in fn.eqns], fn.outputs, name=fn.name)


def _mask_eqn(e: Eqn, active: Var) -> Eqn:
    if not _has_while_eqn(e):
        return e
    a = e.attrs
    if e.op == "while_loop":
        nc, nb, _ = while_split(a["cond"], a["body"], len(e.inputs))
        cond = mask_loops(a["cond"])
        b = Builder()
        ins = [Var(v.type) for v in cond.inputs]
        (p,) = b.inline(cond, ins)
        cond = b.build(ins, [b.emit("logical_and", ins[0], p)], name=a["cond"].name)
        ops = [active] + e.inputs[:nc] + [active] + e.inputs[nc:]
        return Eqn("while_loop", ops, e.outputs, {"cond": cond, "body": mask_loops(a["body"])}, e.loc)
    if e.op == "cond":
        return Eqn("cond", [e.inputs[0], active] + e.inputs[1:], e.outputs,
                   {"branches": tuple(mask_loops(f) for f in a["branches"])}, e.loc)
    # scan: active is one more constant
    return Eqn("scan", [active] + e.inputs, e.outputs, dict(a, body=mask_loops(a["body"]), n_consts=a["n_consts"] + 1),
               e.loc)


def _has_while_eqn(e: Eqn) -> bool:
    return e.op == "while_loop" or any(_has_while(f) for _, f in subfunctions(e))


# --- cond ------------------------------------------------------------------------------------------

def cond_rule(b, args, bdims, branches):
    idx, ops = args[0], list(args[1:])
    di, dops = bdims[0], list(bdims[1:])
    size = axis_size_of(args, bdims)
    if di is None:
        found = [batch_outputs(f, dops, size) for f in branches]
        out_ds = []
        for j in range(len(branches[0].outputs)):
            ds = {o[j] for o in found}
            out_ds.append(ds.pop() if len(ds) == 1 else 0)
        new = tuple(batch_subfunction(f, dops, size, out_ds) for f in branches)
        return b.emit_multi("cond", [idx] + ops, {"branches": new}), out_ds
    # a batched index: every branch runs, a select per example picks the results
    ops = [move_bdim_to_front(b, x, d) for x, d in zip(ops, dops)]
    dops = [None if d is None else 0 for d in dops]
    idx = b.convert(move_bdim_to_front(b, idx, di), dt.INT32 if idx.dtype == dt.BOOL else idx.dtype)
    n = len(branches)
    masks = []
    for k in range(n):
        const = b.reshape(b.constant(np.asarray(k, idx.dtype)), (1,))
        if k == n - 1:
            masks.append(None)    # the last branch takes what the others leave (clamping)
        else:
            masks.append(b.emit("less_equal" if k == 0 else "equal", idx, const))
    results = []
    for k, f in enumerate(branches):
        if not _has_while(f):
            results.append(b.inline(batch_subfunction(f, dops, size, [0] * len(f.outputs)), ops))
            continue
        # its loops run only for the examples that take it
        taken = masks[k] if masks[k] is not None else b.emit(
            "greater_equal", idx, b.reshape(b.constant(np.asarray(k, idx.dtype)), (1,)))
        bf = batch_subfunction(mask_loops(f), [0] + dops, size, [0] * len(f.outputs))
        results.append(b.inline(bf, [taken] + ops))
    outs = []
    for j in range(len(branches[0].outputs)):
        out = results[-1][j]
        for k in reversed(range(n - 1)):
            out = _select(b, masks[k], results[k][j], out)
        outs.append(out)
    return outs, [0] * len(outs)


# --- while_loop ------------------------------------------------------------------------------------

def _consts_to_front(b, args, bdims, n):
    """A loop's first `n` operands (its constants) with their batch axis first: the body
    reads them every iteration, so a transpose happens once, outside the loop."""
    args, bdims = list(args), list(bdims)
    for i in range(n):
        if bdims[i] is not None:
            args[i], bdims[i] = move_bdim_to_front(b, args[i], bdims[i]), 0
    return args, bdims


def _carry_fixpoint(body, dconsts, dinit, size, n_carry, extra=()):
    """Which carries are batched: those batched initially, and those the body makes
    batched, iterated until nothing changes. Returns (carry bdims, the body's out bdims)."""
    carry = [d is not None for d in dinit]
    while True:
        ds = [0 if c else None for c in carry]
        outs = batch_outputs(body, list(dconsts) + ds + list(extra), size)
        new = [c or o is not None for c, o in zip(carry, outs[:n_carry])]
        if new == carry:
            return ds, outs
        carry = new


def while_rule(b, args, bdims, cond, body):
    nc, nb, n = while_split(cond, body, len(args))
    size = axis_size_of(args, bdims)
    args, bdims = _consts_to_front(b, args, bdims, nc + nb)
    cc, bc, init = args[:nc], args[nc:nc + nb], args[nc + nb:]
    dcc, dbc, dinit = bdims[:nc], bdims[nc:nc + nb], bdims[nc + nb:]
    carry_d, _ = _carry_fixpoint(body, dbc, dinit, size, n)
    (pred_d,) = batch_outputs(cond, list(dcc) + carry_d, size)
    if pred_d is None:     # every example stops at the same step: a plain loop
        init = [x if cd is None else to_front_or_materialize(b, x, d, size)
                for x, d, cd in zip(init, dinit, carry_d)]
        new_cond = batch_subfunction(cond, list(dcc) + carry_d, size, [None])
        new_body = batch_subfunction(body, list(dbc) + carry_d, size, carry_d)
        return b.emit_multi("while_loop", list(cc) + list(bc) + init, {"cond": new_cond, "body": new_body}), carry_d
    # a batched predicate: loop while any example is unfinished, freezing the finished ones
    carry_d = [0] * n
    init = [to_front_or_materialize(b, x, d, size) for x, d in zip(init, dinit)]
    bcond = batch_subfunction(cond, list(dcc) + carry_d, size, [0])
    masked = _has_while(body)       # its loops run only for the unfinished examples
    bbody = batch_subfunction(mask_loops(body) if masked else body, ([0] if masked else []) + list(dbc) + carry_d,
                              size, carry_d)
    (pred,) = b.inline(bcond, list(cc) + init)
    # cond: (carry..., pred) -> any(pred)
    cb = Builder()
    c_ins = [Var(v.type) for v in init] + [Var(pred.type)]
    new_cond = cb.build(c_ins, [cb.emit("reduce_any", c_ins[-1], axes=(0,))], name="cond")
    # body: consts (cond's, body's); carry (carry..., pred)
    bb = Builder()
    k_cc, k_bc = [Var(v.type) for v in cc], [Var(v.type) for v in bc]
    carry, p = [Var(v.type) for v in init], Var(pred.type)
    stepped = bb.inline(bbody, ([p] if masked else []) + k_bc + carry)
    kept = [_select(bb, p, s, c) for s, c in zip(stepped, carry)]
    (p_next,) = bb.inline(bcond, k_cc + kept)
    new_body = bb.build(k_cc + k_bc + carry + [p], kept + [p_next], name="body")
    outs = b.emit_multi("while_loop", list(cc) + list(bc) + init + [pred], {"cond": new_cond, "body": new_body})
    return outs[:n], carry_d


# --- scan ------------------------------------------------------------------------------------------

def scan_rule(b, args, bdims, body, length, reverse, n_consts, n_carry):
    size = axis_size_of(args, bdims)
    args, bdims = _consts_to_front(b, args, bdims, n_consts)
    consts, init, xs = args[:n_consts], args[n_consts:n_consts + n_carry], args[n_consts + n_carry:]
    dconsts = bdims[:n_consts]
    dinit, dxs = bdims[n_consts:n_consts + n_carry], bdims[n_consts + n_carry:]
    xs = [x if d is None else move_bdim(b, x, d, 1) for x, d in zip(xs, dxs)]   # axis 0 is the scan's
    dslices = [None if d is None else 0 for d in dxs]
    carry_d, outs_d = _carry_fixpoint(body, dconsts, dinit, size, n_carry, dslices)
    ys_d = outs_d[n_carry:]
    init = [x if cd is None else to_front_or_materialize(b, x, d, size) for x, d, cd in zip(init, dinit, carry_d)]
    new_body = batch_subfunction(body, list(dconsts) + carry_d + dslices, size, carry_d + ys_d)
    outs = b.emit_multi("scan", list(consts) + init + xs,
                        {"body": new_body, "length": length, "reverse": reverse, "n_consts": n_consts,
                         "n_carry": n_carry})
    return outs, carry_d + [None if d is None else d + 1 for d in ys_d]


RULES = {"cond": cond_rule, "while_loop": while_rule, "scan": scan_rule}
