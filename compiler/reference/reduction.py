"""Reference rules of the reductions and scans."""

from __future__ import annotations


import numpy as np



_ACCUMULATE = {"add": np.add, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}


def _cumulative(x, combine, axis, reverse):
    """NumPy's ufunc.accumulate, in x's dtype (bool: add is or, multiply is and)."""
    if x.dtype == np.bool_:
        combine = {"add": "maximum", "multiply": "minimum"}.get(combine, combine)
    if reverse:
        x = np.flip(x, axis)
    r = _ACCUMULATE[combine].accumulate(x, axis=axis, dtype=x.dtype) if x.ndim else x.copy()
    return np.flip(r, axis) if reverse else r


RULES = {
    "reduce_sum": lambda x, axes: np.sum(x, axis=axes, dtype=x.dtype),
    "reduce_prod": lambda x, axes: np.prod(x, axis=axes, dtype=x.dtype),
    "reduce_max": lambda x, axes: np.max(x, axis=axes) if axes else x.copy(),
    "reduce_min": lambda x, axes: np.min(x, axis=axes) if axes else x.copy(),
    "reduce_any": lambda x, axes: np.any(x, axis=axes),
    "reduce_all": lambda x, axes: np.all(x, axis=axes),
    "argmax": lambda x, axis: np.argmax(x, axis=axis).astype(np.int64),
    "argmin": lambda x, axis: np.argmin(x, axis=axis).astype(np.int64),
    "cumulative": _cumulative,
}
