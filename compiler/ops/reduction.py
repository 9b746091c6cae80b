"""Reductions: ``reduce_*`` over static axes (which disappear) and ``argmax``/``argmin``."""

from __future__ import annotations


from .. import dtypes as dt
from ..errors import DTypeError, ShapeError
from .core import _T, _check_arity, _check_axes, _check_kind, define

# --- reductions --------------------------------------------------------------------------------

REDUCE = {
    "reduce_sum": "numeric", "reduce_prod": "numeric", "reduce_max": "any",
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
        _check_axes(name, (axis,), t.rank, "axis")
        if t.shape[axis] == 0:
            raise ShapeError(f"attempt to get {name} of an empty sequence")
        return [_T([d for i, d in enumerate(t.shape) if i != axis], dt.INT64)]
    return infer


for _n in ("argmax", "argmin"):
    define(_n, "reduction", ("axis",), _argreduce_infer(_n),
           f"{_n}[axis](x): int64 index of the first extreme element; NaN counts as extreme.")
