"""The NumPy reference evaluator: one rule per op, and an interpreter for functions.

This is the test oracle. Batching rules are checked by running batched programs
here against a per-example loop, with no compiler in the way; compiled code is
checked against it too. ``vmapc.eval(fn, *arrays)`` exposes it for debugging.

Each rule takes NumPy arrays and the equation's attributes (with symbolic dims
already resolved) and returns the results. Where NumPy would raise or warn at
run time, a rule does what compiled code does instead, so the two can be compared
exactly: indices are clamped, integer division by zero gives 0, an integer raised
to a negative power truncates toward zero.

The rules live in one module per op family, as the other interpretations do
(:mod:`vmapc.rules`, :mod:`vmapc.lowering`); this package assembles :data:`RULES` and
holds the interpreter. A rule for an op that carries sub-programs (a loop body, the
branches of a conditional) runs them with :func:`evaluate`.
"""


from __future__ import annotations

import numpy as np

from ..errors import CallError
from ..ir import Function
from ..shapes import Sym, bind, resolve
from . import collective, contraction, control, creation, custom, elementwise, indexing, random, reduction, shape, sorting

RULES: dict = {}
for _module in (elementwise, reduction, contraction, shape, indexing, creation, control, sorting, random, collective, custom):
    RULES.update(_module.RULES)


def _resolve_attr(v, bindings):
    if isinstance(v, Sym):
        return v.resolve(bindings)
    if isinstance(v, tuple):
        return tuple(_resolve_attr(x, bindings) for x in v)
    return v


def apply(e, operands, bindings=None) -> list:
    """The reference results of one equation on NumPy operands, one array per output
    with exactly the output's dtype and shape (symbolic dims resolved by `bindings`)."""
    bindings = bindings or {}
    attrs = {k: _resolve_attr(x, bindings) for k, x in e.attrs.items()}
    outs = RULES[e.op](*operands, **attrs)
    if not isinstance(outs, list):
        outs = [outs]
    results = []
    for v, o in zip(e.outputs, outs):
        o = np.asarray(o)
        want = resolve(v.shape, bindings)
        if o.shape != want or o.dtype != v.dtype:
            o = np.asarray(o, dtype=v.dtype)
            if o.shape != want:
                raise AssertionError(f"reference rule for {e.op} gave shape {o.shape}, expected {want}")
        results.append(o)
    return results


def evaluate(fn: Function, *args) -> list:
    """Run `fn` on NumPy arrays with the reference rules; returns the list of outputs.

    Arguments must have the dtypes of ``fn``'s inputs and matching shapes (a
    symbolic dim takes its size from the first argument that has it)."""
    if len(args) != len(fn.inputs):
        raise CallError(f"{fn.name} takes {len(fn.inputs)} arguments, got {len(args)}")
    bindings: dict = {}
    env = {}
    for i, (v, a) in enumerate(zip(fn.inputs, args)):
        a = np.asarray(a)
        if a.dtype != v.dtype:
            raise CallError(f"argument {i} has dtype {a.dtype}, expected {v.dtype}")
        if not bind(v.shape, a.shape, bindings):
            raise CallError(f"argument {i} has shape {a.shape}, expected {v.type}")
        if a.dtype == np.bool_:      # any nonzero byte is True (a uint8 array viewed as bool)
            a = np.not_equal(a.view(np.uint8), 0)
        env[v] = a
    with np.errstate(all="ignore"):
        for e in fn.eqns:
            for v, o in zip(e.outputs, apply(e, [env[v] for v in e.inputs], bindings)):
                env[v] = o
    return [env[v] for v in fn.outputs]
