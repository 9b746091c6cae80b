"""Reference rules of ``cond``, ``while_loop`` and ``scan``: Python's own ``if``, ``while``
and ``for`` around the evaluation of the sub-programs.

Sub-programs run through :func:`run_sub`, normally :func:`vmapc.reference.evaluate`; the
fuzzer's oracle swaps in its own evaluator (:func:`sub_evaluator`) so that what it does
to each equation (perturbing results within their rounding error) reaches loop bodies and
branches too.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from ..shapes import bind, resolve

_SUB_EVALUATOR = contextvars.ContextVar("vmapc_reference_sub_evaluator", default=None)


@contextlib.contextmanager
def sub_evaluator(fn):
    """Run sub-programs with ``fn(function, args) -> outputs`` inside this block."""
    token = _SUB_EVALUATOR.set(fn)
    try:
        yield
    finally:
        _SUB_EVALUATOR.reset(token)


def run_sub(fn, args) -> list:
    """The outputs of sub-program `fn` on NumPy arrays `args`."""
    ev = _SUB_EVALUATOR.get()
    if ev is None:
        from . import evaluate
        return evaluate(fn, *args)
    return ev(fn, list(args))


def clamp_index(index, n: int) -> int:
    """A cond's branch for a (bool or integer) index: clamped into [0, n - 1]."""
    i = int(np.asarray(index).item())
    return min(max(i, 0), n - 1)


def _cond(index, *operands, branches):
    return run_sub(branches[clamp_index(index, len(branches))], operands)


def _while_loop(*operands, cond, body):
    from ..ops.control import while_split
    nc, nb, _ = while_split(cond, body, len(operands))
    cc, bc, carry = list(operands[:nc]), list(operands[nc:nc + nb]), list(operands[nc + nb:])
    while bool(run_sub(cond, cc + carry)[0]):
        carry = run_sub(body, bc + carry)
    return carry


def _scan(*operands, body, length, reverse, n_consts, n_carry):
    consts = list(operands[:n_consts])
    carry = list(operands[n_consts:n_consts + n_carry])
    xs = operands[n_consts + n_carry:]
    # the stacked ys' shapes (they may hold a symbolic batch size, bound by the operands)
    bindings: dict = {}
    for v, a in zip(body.inputs, consts + carry + [x[0] if length else np.zeros(x.shape[1:], x.dtype) for x in xs]):
        bind(v.shape, np.shape(a), bindings)
    ys = [np.zeros((length,) + resolve(v.shape, bindings), v.dtype) for v in body.outputs[n_carry:]]
    for i in (reversed(range(length)) if reverse else range(length)):
        outs = run_sub(body, consts + carry + [x[i] for x in xs])
        carry = outs[:n_carry]
        for y, o in zip(ys, outs[n_carry:]):
            y[i] = o
    return carry + ys


RULES = {"cond": _cond, "while_loop": _while_loop, "scan": _scan}
