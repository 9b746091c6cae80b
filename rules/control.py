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
the result. A branch that contains a ``while_loop`` could loop forever on inputs its
examples never give it, so it is guarded: it runs (an unbatched ``cond``) only when some
example takes it, and the examples that do not take it pass it the operands of one that
does (the first), so it only ever sees inputs the per-example program gives it.

**while_loop.** With an unbatched predicate the loop stays a plain loop over batched
carries. With a batched predicate (examples stop at different steps) the loop runs while
*any* example is unfinished: the predicate of each example is carried along, the body
runs on the whole batch, and a ``select`` keeps the carry of finished examples unchanged,
so no example's result sees a step past its own end. As for ``cond``, a body that contains
a ``while_loop`` gets, in place of a finished example's carry, the carry of an unfinished
one.

**scan.** Batched ``xs`` carry the batch on axis 1 (axis 0 is the scan axis), so each
slice has it on axis 0; stacked ``ys`` come back with it one axis after where the body put
it.
"""

from __future__ import annotations

import numpy as np

from vmapc import dtypes as dt
from vmapc.ir import Builder, Function, Var, walk_eqns
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


def _donor_inputs(b, mask, xs, ds):
    """The values `xs` (batch at ds) with the examples outside `mask` replaced by the first
    example inside it: what a guarded sub-program sees (see the module docstring)."""
    donor = b.emit("argmax", mask, axis=0)
    out = []
    for x, d in zip(xs, ds):
        if d is None:
            out.append(x)
            continue
        row = b.emit("take", x, donor, axis=0, batch_dims=0)
        out.append(_select(b, mask, x, b.reshape(row, (1,) + row.shape)))
    return out


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
        bf = batch_subfunction(f, dops, size, [0] * len(f.outputs))
        if not _has_while(f):
            results.append(b.inline(bf, ops))
            continue
        taken = masks[k] if masks[k] is not None else b.emit(
            "greater_equal", idx, b.reshape(b.constant(np.asarray(k, idx.dtype)), (1,)))
        results.append(_guarded(b, bf, taken, ops, dops))
    outs = []
    for j in range(len(branches[0].outputs)):
        out = results[-1][j]
        for k in reversed(range(n - 1)):
            out = _select(b, masks[k], results[k][j], out)
        outs.append(out)
    return outs, [0] * len(outs)


def _guarded(b, bf: Function, taken: Var, ops, dops) -> list:
    """Run batched branch `bf` only if some example takes it, on donor inputs."""
    any_taken = b.emit("reduce_any", taken, axes=(0,))
    safe = _donor_inputs(b, taken, ops, dops)
    skip = Builder()
    zeros = [skip.full(v.shape, 0, v.dtype) for v in bf.outputs]
    skip_fn = skip.build([Var(v.type) for v in bf.inputs], zeros, name="skip")
    return b.emit_multi("cond", [any_taken] + safe, {"branches": (skip_fn, bf)})


# --- while_loop ------------------------------------------------------------------------------------

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
    cc, bc, init = args[:nc], args[nc:nc + nb], args[nc + nb:]
    dcc, dbc, dinit = bdims[:nc], bdims[nc:nc + nb], bdims[nc + nb:]
    size = axis_size_of(args, bdims)
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
    bbody = batch_subfunction(body, list(dbc) + carry_d, size, carry_d)
    (pred,) = b.inline(bcond, list(cc) + init)
    # cond: (carry..., pred) -> any(pred)
    cb = Builder()
    c_ins = [Var(v.type) for v in init] + [Var(pred.type)]
    new_cond = cb.build(c_ins, [cb.emit("reduce_any", c_ins[-1], axes=(0,))], name="cond")
    # body: consts (cond's, body's); carry (carry..., pred)
    bb = Builder()
    k_cc, k_bc = [Var(v.type) for v in cc], [Var(v.type) for v in bc]
    carry, p = [Var(v.type) for v in init], Var(pred.type)
    ins = carry
    if _has_while(body):
        ins = _donor_inputs(bb, p, carry, carry_d)
    stepped = bb.inline(bbody, k_bc + ins)
    kept = [_select(bb, p, s, c) for s, c in zip(stepped, carry)]
    (p_next,) = bb.inline(bcond, k_cc + kept)
    new_body = bb.build(k_cc + k_bc + carry + [p], kept + [p_next], name="body")
    outs = b.emit_multi("while_loop", list(cc) + list(bc) + init + [pred], {"cond": new_cond, "body": new_body})
    return outs[:n], carry_d


# --- scan ------------------------------------------------------------------------------------------

def scan_rule(b, args, bdims, body, length, reverse, n_consts, n_carry):
    consts, init, xs = args[:n_consts], args[n_consts:n_consts + n_carry], args[n_consts + n_carry:]
    dconsts = bdims[:n_consts]
    dinit, dxs = bdims[n_consts:n_consts + n_carry], bdims[n_consts + n_carry:]
    size = axis_size_of(args, bdims)
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
