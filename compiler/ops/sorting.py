"""Sorting: ``sort`` (several operands sorted together by the first ``num_keys`` of them,
like XLA's sort) and ``top_k`` (the ``k`` largest along the last axis, with their
indices).

The order is NumPy's, made total so that every backend gives the same answer: floats
ascend with NaNs last (all NaNs equal, ``-0.0`` equal to ``0.0``), bools ascend
False before True, and elements whose keys are equal keep their original order (a
stable sort). ``descending`` reverses the order of the keys but not of equal elements:
NaNs come first and ties still keep their original order, so a descending sort is not
the reverse of an ascending one."""

from __future__ import annotations


from .. import dtypes as dt
from ..errors import IRError, ShapeError
from ..shapes import Sym
from .core import _T, _check_arity, _check_axes, _check_kind, _fmt_shape, define


def _sort_infer(ts, axis, descending, num_keys):
    if not ts:
        raise IRError("sort needs at least one operand")
    if not isinstance(descending, bool):
        raise IRError(f"sort: descending must be a bool, got {descending!r}")
    if not isinstance(num_keys, int) or isinstance(num_keys, bool) or not 1 <= num_keys <= len(ts):
        raise IRError(f"sort: num_keys must be an int in [1, {len(ts)}], got {num_keys!r}")
    shape = ts[0].shape
    for t in ts[1:]:
        if t.shape != shape:
            raise ShapeError("sort: operands must have one shape, got "
                             + ", ".join(_fmt_shape(t.shape) for t in ts))
    for t in ts[:num_keys]:
        _check_kind("sort", t, "any", "key")
    _check_axes("sort", (axis,), len(shape), "axis")
    if isinstance(shape[axis], Sym):
        raise ShapeError("sort: the sorted axis must have a static size")
    return list(ts)


def _top_k_infer(ts, k):
    _check_arity("top_k", ts, 1)
    t = ts[0]
    if t.rank == 0:
        raise ShapeError("top_k: the operand must have at least one dim")
    _check_kind("top_k", t, "any")
    n = t.shape[-1]
    if isinstance(n, Sym):
        raise ShapeError("top_k: the last axis must have a static size")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n:
        raise ShapeError(f"top_k: k must be an int in [0, {n}] (the size of the last axis), got {k!r}")
    shape = t.shape[:-1] + (k,)
    return [_T(shape, t.dtype), _T(shape, dt.INT64)]


define("sort", "sorting", ("axis", "descending", "num_keys"), _sort_infer,
       "sort[axis, descending, num_keys](*xs): every operand permuted along axis by a stable sort "
       "of the first num_keys operands (lexicographically, the first key first); floats ascend "
       "with NaNs last.")
define("top_k", "sorting", ("k",), _top_k_infer,
       "top_k[k](x): the k largest elements along the last axis in descending order (NaN largest, "
       "ties in order of position) and their int64 indices.")
