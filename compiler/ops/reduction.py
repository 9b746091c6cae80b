"""Reductions: ``reduce_*`` over static axes (which disappear), ``argmax``/``argmin``, and
the scans ``cumulative[combine]`` (NumPy's ``ufunc.accumulate``), which keep the axis."""

from __future__ import annotations


from .. import dtypes as dt
from ..errors import DTypeError, IRError, ShapeError
from .core import _T, _check_arity, _check_axes, _check_kind, define

# --- reductions --------------------------------------------------------------------------------

REDUCE = {
    "reduce_sum": "number", "reduce_prod": "number", "reduce_max": "any",
    "reduce_min": "any", "reduce_any": "any", "reduce_all": "any",
}
IDENTITY_FREE = {"reduce_max": "maximum", "reduce_min": "minimum"}


def _reduce_infer(name, kind):
    def infer(ts, axes):
        _check_arity(name, ts, 1)
        t = ts[0]
        _check_kind(name, t, kind)
        if name in ("reduce_any", "reduce_all") and t.dtype != dt.BOOL:
            raise DTypeError(f"{name}: operand has dtype {t.dtype}, expected bool")
        _check_axes(name, axes, t.rank)
        if name in IDENTITY_FREE and any(t.shape[a] == 0 for a in axes):
            raise ShapeError(f"zero-size array to reduction operation {IDENTITY_FREE[name]} "
                             "which has no identity")
        return [_T([d for i, d in enumerate(t.shape) if i not in axes], t.dtype)]
    return infer


for _n, _k in REDUCE.items():
    define(_n, "reduction", ("axes",), _reduce_infer(_n, _k))


def _argreduce_infer(name):
    def infer(ts, axis):
        _check_arity(name, ts, 1)
        t = ts[0]
        _check_kind(name, t, "any")
        _check_axes(name, (axis,), t.rank, "axis")
        if t.shape[axis] == 0:
            raise ShapeError(f"attempt to get {name} of an empty sequence")
        return [_T([d for i, d in enumerate(t.shape) if i != axis], dt.INT64)]
    return infer


for _n in ("argmax", "argmin"):
    define(_n, "reduction", ("axis",), _argreduce_infer(_n),
           f"{_n}[axis](x): int64 index of the first extreme element; NaN counts as extreme.")


# --- cumulative (scans) --------------------------------------------------------------------------

CUMULATIVE = {"add": "all", "multiply": "all", "maximum": "any", "minimum": "any"}


def _cumulative_infer(ts, combine, axis, reverse):
    _check_arity("cumulative", ts, 1)
    t = ts[0]
    if combine not in CUMULATIVE:
        raise IRError(f"cumulative: combine must be one of {', '.join(CUMULATIVE)}, got {combine!r}")
    if not isinstance(reverse, bool):
        raise IRError(f"cumulative: reverse must be a bool, got {reverse!r}")
    _check_kind(f"cumulative[{combine}]", t, CUMULATIVE[combine])
    _check_axes("cumulative", (axis,), t.rank, "axis")
    return [t]


define("cumulative", "reduction", ("combine", "axis", "reverse"), _cumulative_infer,
       "cumulative[combine, axis, reverse](x): the inclusive scan of x along axis with the binary op "
       "(add, multiply, maximum, minimum; for bool or/and), combining elements in order from the "
       "first (from the last if reverse), as NumPy's ufunc.accumulate.")
