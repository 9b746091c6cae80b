"""Reference rules of the gathers: indices count from the end when negative and are
clamped into range, as compiled code does."""

from __future__ import annotations


import numpy as np



def _clamp_index(idx, n):
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, idx + n, idx)
    return np.clip(idx, 0, max(n - 1, 0))


def _take(x, idx, axis, batch_dims):
    if batch_dims == 0:
        if x.shape[axis] == 0:
            return np.zeros(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)
        return np.take(x, _clamp_index(idx, x.shape[axis]), axis=axis)
    out_shape = x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis + 1:]
    out = np.empty(out_shape, x.dtype)
    for b in np.ndindex(*x.shape[:batch_dims]):
        out[b] = _take(x[b], idx[b], axis - batch_dims, 0)
    return out


def _take_along_axis(x, idx, axis):
    shape = []
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        shape.append(b if i == axis or a == 1 else a)   # a size-1 dim of x stretches (to 0 too)
    xs = list(shape)
    xs[axis] = x.shape[axis]
    x = np.broadcast_to(x, xs)
    idx = np.broadcast_to(idx, shape)
    if x.shape[axis] == 0:
        return np.zeros(shape, x.dtype)
    return np.take_along_axis(x, _clamp_index(idx, x.shape[axis]), axis=axis)


def _dynamic_slice(x, *starts, sizes):
    idx = []
    for s, n, d in zip(starts, sizes, x.shape):
        s = int(np.clip(int(s), 0, d - n))
        idx.append(slice(s, s + n))
    return x[tuple(idx)].copy()



RULES = {"take": _take, "take_along_axis": _take_along_axis, "dynamic_slice": _dynamic_slice}
