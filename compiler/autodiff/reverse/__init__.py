"""Reverse mode: the VJP pass and its rule table.

``vjp_function(fn)`` rewrites a program ``fn(x) -> y`` into one that computes
``(y, ȳ·J)``: it takes the primal inputs and a cotangent ``ȳ`` for each
floating-point output, and returns the primal outputs and the cotangents of the
differentiated inputs. It copies the program's equations (the forward pass), then
walks them backwards, calling for each equation that lies on a path from a
differentiated input to an output the op's rule::

    rule(builder, primals, outs, cotangents of outs, **attrs) -> cotangents of primals

A rule emits ordinary ops; the values of the forward pass it needs (``primals``,
``outs``) are simply read, so the forward pass's results are the residuals and no
separate linearization step exists. A cotangent is ``None`` when it is zero, and a
value read by several equations gets the sum of their cotangents. Rules may compute
the cotangent of an operand nobody asked for (the data of a layer, when only the
weights are differentiated): dead-code elimination drops it, so the program only
computes what its outputs need.

Why direct reverse rules rather than JAX's linearize-then-transpose: the IR is
straight-line SSA whose forward values are all available, so a reverse rule can
read them directly and the pass needs neither partial evaluation nor a transpose
interpreter; each op's rule is one short function next to its forward rule, and
both are checked against finite differences (``vmapc.testing.check_grads``).

The result is an ordinary program, so ``vmap`` batches it (per-example gradients),
the passes apply to it again (``grad`` of ``grad``, ``jacfwd`` of ``jacrev``), and
it simplifies and compiles like any other.
"""

from __future__ import annotations

from ...errors import AutodiffError
from ...ir import Builder, Function, Var, dead_code_elimination
from ..helpers import NON_DIFFERENTIABLE, add, is_differentiable, zeros_like
from . import collective, contraction, control, custom, elementwise, indexing, reduction, shape, sorting

VJP_RULES: dict = {}
for _module in (elementwise, reduction, contraction, shape, indexing, control, sorting, collective, custom):
    VJP_RULES.update(_module.RULES)

# Ops that reverse mode refuses, with the reason (ops that exist in forward mode only).
NO_REVERSE: dict = {"while_loop": control.WHILE_LOOP}

# Ops that carry sub-programs (loops, branches) may keep values of their forward pass for
# the backward pass (a loop's carry at every step): ``FORWARD_RULES[op](b, primals,
# active, **attrs) -> (outs, residuals)`` takes the copied equation's place in the
# forward pass. The reverse rule of an op in ``WHOLE_OPS`` is called with two more
# keyword arguments, ``active`` (whose operands' cotangents are wanted) and
# ``residuals`` (what its forward rule kept, or None).
FORWARD_RULES: dict = {"scan": control.scan_forward, **sorting.FORWARD}
WHOLE_OPS: set = set(control.RULES) | set(sorting.FORWARD)


def vjp_function(fn: Function, wrt=None, cotangents=None, name: str | None = None) -> Function:
    """``fn`` in reverse mode: inputs are ``fn``'s inputs, then one cotangent for each
    floating-point output marked in `cotangents` (default: all; the others are plain
    outputs, such as ``has_aux`` values); outputs are ``fn``'s outputs, then the
    cotangent of each input marked in `wrt` (default: all; zeros for an input the
    outputs do not depend on, and for integer and bool inputs)."""
    n = len(fn.inputs)
    wrt = [True] * n if wrt is None else list(wrt)
    cotangents = [True] * len(fn.outputs) if cotangents is None else list(cotangents)
    if len(wrt) != n or len(cotangents) != len(fn.outputs):
        raise AutodiffError(f"vjp: {len(wrt)} and {len(cotangents)} flags for a function of {n} inputs "
                            f"and {len(fn.outputs)} outputs")
    b = Builder()
    env: dict = {}
    active: set = set()
    names = fn.arg_names or [f"arg{i}" for i in range(n)]
    inputs = []
    for v, w in zip(fn.inputs, wrt):
        nv = Var(v.type, v.hint)
        inputs.append(nv)
        env[id(v)] = nv
        if w and is_differentiable(v):
            active.add(id(v))
    # the forward pass: copy every equation, and note those on a path from a differentiated input
    on_path, residuals = [], {}
    for e in fn.eqns:
        b.loc = e.loc
        args = [env[id(v)] for v in e.inputs]
        diff = e.op not in NON_DIFFERENTIABLE and any(id(v) in active for v in e.inputs)
        if diff and e.op in NO_REVERSE:
            raise AutodiffError(f"reverse-mode differentiation (grad, vjp, jacrev) of {e.op}: "
                                f"{NO_REVERSE[e.op]}", e.loc)
        if diff and e.op in FORWARD_RULES:
            outs, residuals[id(e)] = FORWARD_RULES[e.op](b, args, [id(v) in active for v in e.inputs], **e.attrs)
        else:
            outs = b.emit_multi(e.op, args, e.attrs)
        for v, o in zip(e.outputs, outs):
            env[id(v)] = o
        if diff:
            on_path.append(e)
            active.update(id(v) for v in e.outputs if is_differentiable(v))
    outputs = [env[id(v)] for v in fn.outputs]
    # the cotangents of the outputs are inputs of the new program
    ct: dict = {}
    ct_inputs, ct_names = [], []
    for j, v in enumerate(fn.outputs):
        if not (cotangents[j] and is_differentiable(v)):
            continue
        c = Var(v.type, "cotangent")
        ct_inputs.append(c)
        ct_names.append(f"out{j}_bar")
        if id(v) in active:
            ct[id(v)] = add(b, ct.get(id(v)), c)
    # the backward pass
    for e in reversed(on_path):
        cts = [ct.pop(id(v), None) for v in e.outputs]
        if all(c is None for c in cts):
            continue
        rule = VJP_RULES.get(e.op)
        if rule is None:
            raise AutodiffError(f"vjp: op {e.op} has no reverse-mode rule", e.loc)
        b.loc = e.loc
        primals = [env[id(v)] for v in e.inputs]
        extra = {}
        if e.op in WHOLE_OPS:
            extra = {"active": [id(v) in active for v in e.inputs], "residuals": residuals.get(id(e))}
        try:
            cins = rule(b, primals, [env[id(v)] for v in e.outputs], cts, **e.attrs, **extra)
        except AutodiffError as err:
            raise err.with_loc(e.loc)
        for v, p, c in zip(e.inputs, primals, cins):
            if c is None or id(v) not in active:
                continue
            if c.type != p.type:
                raise AssertionError(f"reverse-mode rule for {e.op} gave a cotangent {c.type} for an "
                                     f"operand {p.type} (a bug in the rule)")
            ct[id(v)] = add(b, ct.get(id(v)), c)
    grads, grad_names = [], []
    for v, nv, w, nm in zip(fn.inputs, inputs, wrt, names):
        if w:
            c = ct.get(id(v))
            grads.append(zeros_like(b, nv) if c is None else c)
            grad_names.append(f"{nm}_bar")
    out = Function(inputs + ct_inputs, b.eqns, outputs + grads, name=name or f"vjp_{fn.name}",
                   arg_names=list(names) + ct_names)
    return dead_code_elimination(out)
