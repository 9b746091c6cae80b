"""Reference rules of ``iota`` and ``constant``."""

from __future__ import annotations


import numpy as np



def _iota(shape, dimension, dtype):
    r = np.arange(shape[dimension]).reshape([-1 if i == dimension else 1 for i in range(len(shape))])
    return np.broadcast_to(r, shape).astype(dtype)



RULES = {"iota": _iota, "constant": lambda value: value}
