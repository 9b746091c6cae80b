"""Reference rules of the reductions."""

from __future__ import annotations


import numpy as np



RULES = {
    "reduce_sum": lambda x, axes: np.sum(x, axis=axes, dtype=x.dtype),
    "reduce_prod": lambda x, axes: np.prod(x, axis=axes, dtype=x.dtype),
    "reduce_max": lambda x, axes: np.max(x, axis=axes) if axes else x.copy(),
    "reduce_min": lambda x, axes: np.min(x, axis=axes) if axes else x.copy(),
    "reduce_any": lambda x, axes: np.any(x, axis=axes),
    "reduce_all": lambda x, axes: np.all(x, axis=axes),
    "argmax": lambda x, axis: np.argmax(x, axis=axis).astype(np.int64),
    "argmin": lambda x, axis: np.argmin(x, axis=axis).astype(np.int64),
}
