"""Forward mode: the JVP pass and its rule table.

``jvp_function(fn)`` rewrites a program ``fn(x) -> y`` into one that computes
``(y, J·t)``: it takes the primal inputs and a tangent for each differentiated
input, and returns the primal outputs and their tangents. It walks the equations
in order, copying each one, and when an operand carries a tangent it calls the op's
rule, which emits ordinary ops that compute the tangents of the results::

    rule(builder, primals, tangents, outs, **attrs) -> tangents of outs

``primals`` and ``outs`` are the copied equation's operands and results, and a
tangent is ``None`` when it is known to be zero (a *symbolic zero*), so a rule only
does work for tangents that exist, and values that do not depend on the
differentiated inputs are never differentiated. Integer and bool values never carry
a tangent: to differentiation they are constants.

The result is an ordinary program: it can be batched (``jacfwd`` is ``vmap`` over
tangents), differentiated again (``hessian`` is forward mode over reverse mode),
simplified and compiled like any other. The rules live in one module per op
family, as every other interpretation's do.
"""

from __future__ import annotations

from ...errors import AutodiffError
from ...ir import Builder, Function, Var
from ..helpers import NON_DIFFERENTIABLE, is_differentiable, zeros_like
from . import collective, contraction, control, custom, elementwise, indexing, reduction, shape, sorting

JVP_RULES: dict = {}
for _module in (elementwise, reduction, contraction, shape, indexing, control, sorting, collective, custom):
    JVP_RULES.update(_module.RULES)

# Ops that carry sub-programs (a loop body, branches) are rewritten whole: their rule
# computes the primal results too, ``rule(b, primals, tangents, **attrs) -> (outs,
# tangents)``, in place of the copied equation.
WHOLE_OPS: set = set(control.RULES) | sorting.WHOLE


def jvp_function(fn: Function, active=None, name: str | None = None) -> Function:
    """``fn`` in forward mode: inputs are ``fn``'s inputs, then one tangent for each
    input marked in `active` (default: all) that is floating point; outputs are
    ``fn``'s outputs, then one tangent per output (zeros for an output that does not
    depend on the tangents, and for integer and bool outputs). The result's attribute
    ``nonzero_tangents`` says which output tangents can be nonzero."""
    n = len(fn.inputs)
    active = [True] * n if active is None else list(active)
    if len(active) != n:
        raise AutodiffError(f"jvp: {len(active)} activity flags for a function of {n} inputs")
    b = Builder()
    env: dict = {}
    tan: dict = {}
    inputs, t_inputs = [], []
    names = fn.arg_names or [f"arg{i}" for i in range(n)]
    t_names = []
    for v, a, nm in zip(fn.inputs, active, names):
        nv = Var(v.type, v.hint)
        inputs.append(nv)
        env[id(v)] = nv
        if a and is_differentiable(v):
            t = Var(v.type, "tangent")
            t_inputs.append(t)
            t_names.append(f"{nm}_dot")
            tan[id(v)] = t
    for e in fn.eqns:
        b.loc = e.loc
        args = [env[id(v)] for v in e.inputs]
        ts = [tan.get(id(v)) for v in e.inputs]
        if e.op in NON_DIFFERENTIABLE or all(t is None for t in ts):
            outs = b.emit_multi(e.op, args, e.attrs)
        else:
            rule = JVP_RULES.get(e.op)
            if rule is None:
                raise AutodiffError(f"jvp: op {e.op} has no forward-mode rule", e.loc)
            try:
                if e.op in WHOLE_OPS:
                    outs, t_outs = rule(b, args, ts, **e.attrs)
                else:
                    outs = b.emit_multi(e.op, args, e.attrs)
                    t_outs = rule(b, args, ts, outs, **e.attrs)
            except AutodiffError as err:
                raise err.with_loc(e.loc)
            for v, o, t in zip(e.outputs, outs, t_outs):
                if t is not None and is_differentiable(v):
                    if t.type != o.type:
                        raise AssertionError(f"forward-mode rule for {e.op} gave a tangent {t.type} "
                                             f"for a result {o.type} (a bug in the rule)")
                    tan[id(v)] = t
        for v, o in zip(e.outputs, outs):
            env[id(v)] = o
    outputs = [env[id(v)] for v in fn.outputs]
    t_outputs = []
    for v, o in zip(fn.outputs, outputs):
        t = tan.get(id(v))
        t_outputs.append(zeros_like(b, o) if t is None else t)
    out = Function(inputs + t_inputs, b.eqns, outputs + t_outputs, name=name or f"jvp_{fn.name}",
                   arg_names=list(names) + t_names)
    out.nonzero_tangents = [id(v) in tan for v in fn.outputs]
    return out
