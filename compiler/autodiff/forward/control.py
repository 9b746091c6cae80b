"""Forward-mode rules of the control-flow ops: the sub-programs are differentiated with
the same pass, and the op carries the tangents along with the values.

* ``cond``: each branch becomes its forward-mode program, so the chosen branch computes
  its results and their tangents; the index, an integer, has none.
* ``while_loop`` and ``scan``: the tangent of each carry joins the carry, and the body
  becomes its forward-mode program (``scan``'s stacked outputs gain their tangents too).
  A carry carries a tangent if its initial value does, or if the body gives it one from
  the tangents it sees: found by a fixpoint, as the batching rules find batched carries.
  ``while_loop``'s condition ignores the tangents.

These rules compute the primal results too (the op is rewritten whole), so they return
``(outs, tangents)``.
"""

from __future__ import annotations

from ...ir import Function, dead_code_elimination
from ...ops.control import while_split
from ..helpers import is_differentiable, zeros_like


def _jvp(fn, active):
    from . import jvp_function
    return jvp_function(fn, active, name=fn.name)


def rearranged(fn: Function, inputs, outputs, name=None) -> Function:
    """`fn` with its inputs and outputs listed in another order (or some outputs left
    out): `inputs` and `outputs` are index lists into ``fn.inputs`` and ``fn.outputs``."""
    return dead_code_elimination(Function([fn.inputs[i] for i in inputs], fn.eqns,
                                          [fn.outputs[j] for j in outputs], name=name or fn.name))


def _tangent_slots(vs, active):
    """Positions, among the tangent inputs of a forward-mode program, of the active
    floating-point values `vs` (None where a value has no tangent input)."""
    out, k = [], 0
    for v, a in zip(vs, active):
        if a and is_differentiable(v):
            out.append(k)
            k += 1
        else:
            out.append(None)
    return out


def cond_rule(b, primals, tangents, branches):
    idx, ops, ts = primals[0], list(primals[1:]), list(tangents[1:])
    active = [t is not None and is_differentiable(v) for v, t in zip(ops, ts)]
    new = tuple(_jvp(f, active) for f in branches)
    outs = b.emit_multi("cond", [idx] + ops + [t for t, a in zip(ts, active) if a], {"branches": new})
    n = len(branches[0].outputs)
    return outs[:n], outs[n:]


def _carry_fixpoint(body, const_active, carry_active, slice_active, n_carry):
    """Which carries carry a tangent: those whose initial value has one, and those the
    body gives one, iterated until nothing changes."""
    carry = list(carry_active)
    while True:
        j = _jvp(body, list(const_active) + carry + list(slice_active))
        new = [c or nz for c, nz in zip(carry, j.nonzero_tangents[:n_carry])]
        if new == carry:
            return carry, j
        carry = new


def _materialize(b, vs, ts, active):
    return [(t if t is not None else zeros_like(b, v)) for v, t, a in zip(vs, ts, active) if a]


def scan_rule(b, primals, tangents, body, length, reverse, n_consts, n_carry):
    nc, nk = n_consts, n_carry
    consts, init, xs = primals[:nc], primals[nc:nc + nk], primals[nc + nk:]
    tc, ti, tx = tangents[:nc], tangents[nc:nc + nk], tangents[nc + nk:]
    ca = [t is not None and is_differentiable(v) for v, t in zip(consts, tc)]
    xa = [t is not None and is_differentiable(v) for v, t in zip(xs, tx)]
    ka = [t is not None and is_differentiable(v) for v, t in zip(init, ti)]
    ka, j = _carry_fixpoint(body, ca, ka, xa, nk)
    ka = [a and is_differentiable(v) for a, v in zip(ka, init)]
    j = _jvp(body, ca + ka + xa)
    n_in = len(body.inputs)
    n_x = n_in - nc - nk
    n_out, n_y = len(body.outputs), len(body.outputs) - nk
    slots = _tangent_slots(body.inputs, ca + ka + xa)
    t_of = [None if s is None else n_in + s for s in slots]
    # the new body: (consts, their tangents, carry, its tangents, x, its tangents) ->
    # (carry, its tangents, ys, their tangents)
    ins = (list(range(nc)) + [t_of[i] for i in range(nc) if ca[i]]
           + list(range(nc, nc + nk)) + [t_of[nc + i] for i in range(nk) if ka[i]]
           + list(range(nc + nk, n_in)) + [t_of[nc + nk + i] for i in range(n_x) if xa[i]])
    outs_sel = (list(range(nk)) + [n_out + i for i in range(nk) if ka[i]]
                + list(range(nk, n_out)) + [n_out + nk + i for i in range(n_y)])
    new_body = rearranged(j, ins, outs_sel)
    operands = (list(consts) + _materialize(b, consts, tc, ca) + list(init) + _materialize(b, init, ti, ka)
                + list(xs) + _materialize(b, xs, tx, xa))
    nk2 = nk + sum(ka)
    res = b.emit_multi("scan", operands, {"body": new_body, "length": length, "reverse": reverse,
                                          "n_consts": nc + sum(ca), "n_carry": nk2})
    carry, t_carry_active = res[:nk], res[nk:nk2]
    ys, t_ys = res[nk2:nk2 + n_y], res[nk2 + n_y:]
    it = iter(t_carry_active)
    t_carry = [next(it) if a else None for a in ka]
    return list(carry) + list(ys), t_carry + list(t_ys)


def while_rule(b, primals, tangents, cond, body):
    nc, nb, nk = while_split(cond, body, len(primals))
    cc, bc, init = primals[:nc], primals[nc:nc + nb], primals[nc + nb:]
    tb, ti = tangents[nc:nc + nb], tangents[nc + nb:]
    ba = [t is not None and is_differentiable(v) for v, t in zip(bc, tb)]
    ka = [t is not None and is_differentiable(v) for v, t in zip(init, ti)]
    ka, _ = _carry_fixpoint(body, ba, ka, [], nk)
    ka = [a and is_differentiable(v) for a, v in zip(ka, init)]
    j = _jvp(body, ba + ka)
    n_in = len(body.inputs)
    slots = _tangent_slots(body.inputs, ba + ka)
    t_of = [None if s is None else n_in + s for s in slots]
    ins = (list(range(nb)) + [t_of[i] for i in range(nb) if ba[i]]
           + list(range(nb, nb + nk)) + [t_of[nb + i] for i in range(nk) if ka[i]])
    outs_sel = list(range(nk)) + [nk + i for i in range(nk) if ka[i]]
    new_body = rearranged(j, ins, outs_sel)
    # the condition takes the carry's tangents too, and ignores them
    from ...ir import Var
    extra = [Var(v.type) for v, a in zip(init, ka) if a]
    new_cond = Function(list(cond.inputs) + extra, cond.eqns, cond.outputs, name=cond.name)
    operands = list(cc) + list(bc) + _materialize(b, bc, tb, ba) + list(init) + _materialize(b, init, ti, ka)
    res = b.emit_multi("while_loop", operands, {"cond": new_cond, "body": new_body})
    it = iter(res[nk:])
    return res[:nk], [next(it) if a else None for a in ka]


RULES = {"cond": cond_rule, "scan": scan_rule, "while_loop": while_rule}
