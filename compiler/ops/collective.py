"""Collectives: ops that combine the examples of a named batch axis.

``psum``, ``pmax`` and ``pmin`` reduce their operand over every example of the
batch axis named ``axis_name`` and give each example the result; ``all_gather``
gives each example the stack of every example's operand (a new axis of
``axis_size`` at ``axis``); ``axis_index`` is the example's own index (int32). In
the per-example program they are typed as the example sees them; they only get a
meaning when :func:`vmapc.vmap` batches that program over the axis they name
(``axis_name=...``), whose batching rule replaces them with ordinary ops
(:mod:`vmapc.rules.collective`). A program that still holds one has an axis no
vmap binds: the reference evaluator and the lowering refuse it.
"""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import IRError, ShapeError
from ..shapes import Sym
from .core import _T, _check_arity, _check_kind, define

COLLECTIVES = ("psum", "pmax", "pmin", "all_gather", "axis_index")


def _check_name(op, axis_name):
    if not isinstance(axis_name, str) or not axis_name:
        raise IRError(f"{op}: axis_name must be a non-empty str, got {axis_name!r}")


def _reduce_infer(name, kind):
    def infer(ts, axis_name):
        _check_arity(name, ts, 1)
        _check_name(name, axis_name)
        _check_kind(name, ts[0], kind)
        return [ts[0]]
    return infer


def _all_gather_infer(ts, axis_name, axis_size, axis):
    _check_arity("all_gather", ts, 1)
    _check_name("all_gather", axis_name)
    t = ts[0]
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis <= t.rank:
        raise ShapeError(f"all_gather: axis {axis!r} out of range for an operand of rank {t.rank} "
                         f"(valid: 0..{t.rank})")
    if not (isinstance(axis_size, int) and not isinstance(axis_size, bool) and axis_size >= 0
            or isinstance(axis_size, Sym)):
        raise IRError(f"all_gather: axis_size must be a non-negative int or a symbol, got {axis_size!r}")
    return [_T(t.shape[:axis] + (axis_size,) + t.shape[axis:], t.dtype)]


def _axis_index_infer(ts, axis_name):
    _check_arity("axis_index", ts, 0)
    _check_name("axis_index", axis_name)
    return [_T((), dt.INT32)]


define("psum", "collective", ("axis_name",), _reduce_infer("psum", "numeric"),
       "psum[axis_name](x): the sum of x over every example of the named batch axis.")
define("pmax", "collective", ("axis_name",), _reduce_infer("pmax", "any"),
       "pmax[axis_name](x): the maximum of x over every example of the named batch axis.")
define("pmin", "collective", ("axis_name",), _reduce_infer("pmin", "any"),
       "pmin[axis_name](x): the minimum of x over every example of the named batch axis.")
define("all_gather", "collective", ("axis_name", "axis_size", "axis"), _all_gather_infer,
       "all_gather[axis_name, axis_size, axis](x): every example's x, stacked along a new axis.")
define("axis_index", "collective", ("axis_name",), _axis_index_infer,
       "axis_index[axis_name](): the example's index along the named batch axis (int32).")
