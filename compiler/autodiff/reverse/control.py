"""Reverse-mode rules of the control-flow ops.

* ``cond``: the backward pass is a ``cond`` on the same index whose branches are the
  branches' reverse-mode programs: the branch that ran forward runs backward. Each
  recomputes its forward values from the operands (nothing is kept from the forward
  ``cond``), so a branch costs about twice its forward work.
* ``scan`` (and ``fori_loop`` with static bounds, which is a ``scan``): the forward
  pass keeps the carry at the start of every step (a stacked extra output of the
  forward ``scan``: ``length`` times the carry's size). The backward pass is a ``scan``
  in the opposite order whose body recomputes that step's forward values from the kept
  carry and runs the body's reverse-mode program: the carry's cotangent flows from the
  last step to the first, the cotangents of the ``xs`` are stacked, and those of the
  constants are summed over the steps. That is ``jax.checkpoint`` of the body: memory
  for one carry per step, about twice the forward work.
* ``while_loop`` has no reverse mode: how many steps it takes is only known when it
  runs, so there is nowhere to keep one carry per step (as in JAX). Forward mode works;
  for gradients, write the loop as ``scan`` or as ``fori_loop`` with Python int bounds.
"""

from __future__ import annotations

from ...ir import Builder, Function, Var, dead_code_elimination
from ..helpers import add, is_differentiable, zeros, zeros_like

WHILE_LOOP = ("the number of steps is only known at run time, so the loop's intermediate values cannot "
              "be kept for the backward pass. Write the loop as vmapc.scan, or as vmapc.fori_loop with "
              "Python int bounds, or use forward mode (vmapc.jvp, vmapc.jacfwd)")


def _vjp(fn, wrt, cotangents):
    from . import vjp_function
    return vjp_function(fn, wrt, cotangents, name=fn.name)


def _cts(b, outs, cts):
    """Cotangents of the floating-point outputs, zeros where symbolic."""
    return [c if c is not None else zeros_like(b, o) for o, c in zip(outs, cts) if is_differentiable(o)]


def cond_rule(b, primals, outs, cts, branches, active, residuals):
    idx, ops = primals[0], list(primals[1:])
    wrt = [a and is_differentiable(v) for a, v in zip(active[1:], ops)]
    n = len(branches[0].outputs)
    new = []
    for f in branches:
        g = _vjp(f, wrt, None)
        new.append(dead_code_elimination(Function(g.inputs, g.eqns, g.outputs[n:], name=f.name)))
    res = iter(b.emit_multi("cond", [idx] + ops + _cts(b, outs, cts), {"branches": tuple(new)}))
    return [None] + [next(res) if w else None for w in wrt]


def scan_forward(b, primals, active, body, length, reverse, n_consts, n_carry):
    """The forward scan, also stacking the carry at the start of every step."""
    carry_in = body.inputs[n_consts:n_consts + n_carry]
    kept = Function(body.inputs, body.eqns, list(body.outputs) + list(carry_in), name=body.name)
    res = b.emit_multi("scan", list(primals), {"body": kept, "length": length, "reverse": reverse,
                                               "n_consts": n_consts, "n_carry": n_carry})
    n_out = len(body.outputs)
    return res[:n_carry] + res[n_carry:n_out], res[n_out:]


def scan_rule(b, primals, outs, cts, body, length, reverse, n_consts, n_carry, active, residuals):
    nc, nk = n_consts, n_carry
    consts, init, xs = primals[:nc], primals[nc:nc + nk], primals[nc + nk:]
    ca = [a and is_differentiable(v) for a, v in zip(active[:nc], consts)]
    ka = [is_differentiable(v) for v in init]          # a carry's cotangent flows through every step
    xa = [a and is_differentiable(v) for a, v in zip(active[nc + nk:], xs)]
    n_out = len(body.outputs)
    float_outs = [is_differentiable(v) for v in body.outputs]
    g = _vjp(body, ca + ka + xa, None)     # (consts, carry, x, cts of float outputs) -> (outs, cts of wrt inputs)
    # the backward body: consts | (sums of the consts' cotangents, the carry's cotangent) |
    # (the kept carry, x, the cotangents of y) -> (new sums, the carry's cotangent before
    # the step) | the cotangents of x
    bb = Builder()
    k_consts = [Var(v.type) for v in consts]
    acc = [Var(v.type) for v, a in zip(consts, ca) if a]
    ct_carry = [Var(v.type) for v, a in zip(init, ka) if a]
    k_carry = [Var(v.type) for v in body.inputs[nc:nc + nk]]
    k_x = [Var(v.type) for v in body.inputs[nc + nk:]]
    ct_y = [Var(v.type) for v, f in zip(body.outputs[nk:], float_outs[nk:]) if f]
    it_ct_carry = iter(ct_carry)
    ct_outs = [next(it_ct_carry) for f in float_outs[:nk] if f] + ct_y
    res = bb.inline(g, k_consts + k_carry + k_x + ct_outs)[n_out:]
    n_ca = sum(ca)
    new_acc = [bb.emit("add", a, c) for a, c in zip(acc, res[:n_ca])]
    back = Function(k_consts + acc + ct_carry + k_carry + k_x + ct_y,
                    bb.eqns, new_acc + res[n_ca:], name=f"{body.name}_backward")
    back = dead_code_elimination(back)
    stacked_ct_y = [c if c is not None else zeros_like(b, o)
                    for o, c, f in zip(outs[nk:], cts[nk:], float_outs[nk:]) if f]
    ct_final = [c if c is not None else zeros_like(b, o) for o, c, a in zip(outs[:nk], cts[:nk], ka) if a]
    operands = (list(consts) + [zeros(b, v.shape, v.dtype) for v, a in zip(consts, ca) if a] + ct_final
                + list(residuals) + list(xs) + stacked_ct_y)
    r = b.emit_multi("scan", operands, {"body": back, "length": length, "reverse": not reverse,
                                        "n_consts": nc, "n_carry": n_ca + len(ct_final)})
    it_c, it_k, it_x = iter(r[:n_ca]), iter(r[n_ca:n_ca + len(ct_final)]), iter(r[n_ca + len(ct_final):])
    return ([next(it_c) if a else None for a in ca] + [next(it_k) if a else None for a in ka]
            + [next(it_x) if a else None for a in xa])


RULES = {"cond": cond_rule, "scan": scan_rule}
