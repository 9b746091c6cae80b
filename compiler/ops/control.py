"""Control flow: ``cond``, ``while_loop`` and ``scan``, the ops that carry sub-programs.

Each takes its branches or loop body as :class:`~vmapc.ir.Function` attributes (closed:
a value from outside is an explicit operand). After JAX's ``cond_p``, ``while_p`` and
``scan_p``:

``cond[branches=(F0, F1, ...)](index, *operands)``
    runs ``branches[index](*operands)``. ``index`` is a 0-d bool (False picks ``F0``, True
    ``F1``) or integer, clamped into ``[0, len(branches) - 1]``. Every branch takes the
    operands' types and all return the same types, which are the results.

``while_loop[cond, body](*cond_consts, *body_consts, *init)``
    ``carry = init; while cond(*cond_consts, *carry): carry = body(*body_consts, *carry)``;
    the results are the final carry. ``body`` returns the carry (its outputs fix how many
    carries there are), ``cond`` returns one 0-d bool; the inputs of each before the carry
    are its constants, so the split of the operands follows from the two signatures.

``scan[body, length, reverse, n_consts, n_carry](*consts, *init, *xs)``
    ``body(*consts, *carry, *x) -> (*carry, *y)`` runs ``length`` times; ``x`` is the
    i-th slice along axis 0 of each ``xs`` (the last first when ``reverse``), and the
    results are the final carry and the ``y``s stacked along a new axis 0 (in the order of
    ``i``, so ``reverse`` does not reverse the stacked ``ys``), as ``jax.lax.scan``.

``vmapc.control`` builds them from Python functions (``vmapc.cond``, ``vmapc.switch``,
``vmapc.while_loop``, ``vmapc.fori_loop``, ``vmapc.scan``, ``vmapc.map``).
"""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import DTypeError, IRError, ShapeError
from .core import _T, define


def _fmt(ts) -> str:
    return "(" + ", ".join(str(t) for t in ts) + ")"


def _is_function(f) -> bool:
    from ..ir import Function
    return isinstance(f, Function)


def _check_sub(op, name, f):
    if not _is_function(f):
        raise IRError(f"{op}: attribute {name} must be a sub-program, got {type(f).__name__}")


def _check_count(op, name, n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise IRError(f"{op}: {name} must be a non-negative int, got {n!r}")


def _cond_infer(ts, branches):
    if not isinstance(branches, tuple) or not branches:
        raise IRError(f"cond: branches must be a non-empty tuple of sub-programs, got {branches!r}")
    for k, f in enumerate(branches):
        _check_sub("cond", f"branches[{k}]", f)
    if not ts:
        raise IRError("cond takes an index and the operands, got no operands")
    index, ops = ts[0], list(ts[1:])
    if index.rank != 0 or index.dtype not in dt.KINDS["integer_or_bool"]:
        raise DTypeError(f"cond: the index must be a 0-d bool or integer, got {index}")
    outs = branches[0].out_types
    for k, f in enumerate(branches):
        if f.in_types != ops:
            raise IRError(f"cond: branch {k} takes {_fmt(f.in_types)} but the operands are {_fmt(ops)}")
        if f.out_types != outs:
            raise IRError(f"cond: branch {k} returns {_fmt(f.out_types)} but branch 0 returns {_fmt(outs)}")
    return list(outs)


def while_split(cond, body, n_operands):
    """(number of cond constants, number of body constants, number of carries) of a
    while_loop with these sub-programs and `n_operands` operands."""
    n_carry = len(body.outputs)
    return len(cond.inputs) - n_carry, len(body.inputs) - n_carry, n_carry


def _while_infer(ts, cond, body):
    _check_sub("while_loop", "cond", cond)
    _check_sub("while_loop", "body", body)
    nc, nb, n = while_split(cond, body, len(ts))
    if nc < 0 or nb < 0 or nc + nb + n != len(ts):
        raise IRError(f"while_loop: {len(ts)} operands do not split into the constants of cond "
                      f"({len(cond.inputs)} inputs), of body ({len(body.inputs)} inputs) and {n} carries")
    carry = list(ts[nc + nb:])
    if cond.in_types != list(ts[:nc]) + carry:
        raise IRError(f"while_loop: cond takes {_fmt(cond.in_types)} but is given "
                      f"{_fmt(list(ts[:nc]) + carry)}")
    if body.in_types != list(ts[nc:nc + nb]) + carry:
        raise IRError(f"while_loop: body takes {_fmt(body.in_types)} but is given "
                      f"{_fmt(list(ts[nc:nc + nb]) + carry)}")
    if body.out_types != carry:
        raise IRError(f"while_loop: body returns {_fmt(body.out_types)} but the carry is {_fmt(carry)}")
    if len(cond.outputs) != 1 or cond.out_types[0] != _T((), dt.BOOL):
        raise IRError(f"while_loop: cond must return one bool[], got {_fmt(cond.out_types)}")
    return carry


def _scan_infer(ts, body, length, reverse, n_consts, n_carry):
    _check_sub("scan", "body", body)
    _check_count("scan", "length", length)
    _check_count("scan", "n_consts", n_consts)
    _check_count("scan", "n_carry", n_carry)
    if not isinstance(reverse, bool):
        raise IRError(f"scan: reverse must be True or False, got {reverse!r}")
    if n_consts + n_carry > len(ts):
        raise IRError(f"scan: {len(ts)} operands, fewer than n_consts + n_carry = {n_consts + n_carry}")
    consts, carry, xs = list(ts[:n_consts]), list(ts[n_consts:n_consts + n_carry]), list(ts[n_consts + n_carry:])
    for i, x in enumerate(xs):
        if x.rank == 0 or x.shape[0] != length:
            raise ShapeError(f"scan: xs[{i}] is {x}, but the scan has length {length} along axis 0")
    slices = [_T(x.shape[1:], x.dtype) for x in xs]
    if body.in_types != consts + carry + slices:
        raise IRError(f"scan: body takes {_fmt(body.in_types)} but is given {_fmt(consts + carry + slices)}")
    outs = body.out_types
    if len(outs) < n_carry or outs[:n_carry] != carry:
        raise IRError(f"scan: body returns {_fmt(outs)}, whose first {n_carry} must be the carry {_fmt(carry)}")
    return carry + [_T((length,) + t.shape, t.dtype) for t in outs[n_carry:]]


define("cond", "control", ("branches",), _cond_infer, "branches[clamp(index)](*operands)")
define("while_loop", "control", ("cond", "body"), _while_infer, "loop body while cond holds")
define("scan", "control", ("body", "length", "reverse", "n_consts", "n_carry"), _scan_infer,
       "loop body over the leading axis of xs, carrying state, stacking ys")
