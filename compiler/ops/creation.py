"""Creation: ``iota`` and ``constant``, which take no operands."""

from __future__ import annotations

import numpy as np

from ..errors import IRError, ShapeError
from .core import _T, _check_arity, define

# --- creation ----------------------------------------------------------------------------------

def _iota_infer(ts, shape, dimension, dtype):
    _check_arity("iota", ts, 0)
    if not 0 <= dimension < len(shape):
        raise ShapeError(f"iota: dimension {dimension} out of range for shape {shape}")
    return [_T(shape, dtype)]


def _constant_infer(ts, value):
    _check_arity("constant", ts, 0)
    if not isinstance(value, np.ndarray):
        raise IRError(f"constant: value must be a NumPy array, got {type(value).__name__}")
    return [_T(value.shape, value.dtype)]


define("iota", "creation", ("shape", "dimension", "dtype"), _iota_infer,
       "iota[shape, dimension, dtype](): the index along `dimension`, broadcast to `shape`.")
define("constant", "creation", ("value",), _constant_infer, "constant[value](): a literal array.")
