"""Reference rules of the gathers and of the writes that invert them: indices count from
the end when negative and are clamped into range, as compiled code does. ``scatter``
applies its updates one after the other in the row-major order of the indices, which
is what makes a repeated index well defined: the last ``set`` wins, ``add`` accumulates
(as ``np.add.at``)."""

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


def _update_slice(x, upd, *starts):
    out = np.array(x)       # an ndarray copy, also of a 0-d value (a NumPy scalar has no item assignment)
    idx = []
    for s, n, d in zip(starts, upd.shape, x.shape):
        s = int(np.clip(int(s), 0, d - n))
        idx.append(slice(s, s + n))
    out[tuple(idx)] = upd
    return out


# how an update combines with the value it lands on (bool: or / and, as NumPy's bool loops)
_COMBINE = {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}
_COMBINE_BOOL = {"add": np.logical_or, "multiply": np.logical_and, "min": np.logical_and,
                 "max": np.logical_or}


def _scatter(x, idx, upd, axis, batch_dims, mode):
    out = x.copy()
    if batch_dims:
        for b in np.ndindex(*x.shape[:batch_dims]):
            out[b] = _scatter(x[b], idx[b], upd[b], axis - batch_dims, 0, mode)
        return out
    n, k = x.shape[axis], idx.size
    if k == 0 or out.size == 0:
        return out
    j = _clamp_index(idx, n).reshape(-1)
    # both with the indexed axis first: out (n, pre..., post...), updates (k, pre..., post...)
    o = np.moveaxis(out, axis, 0)
    u = upd.reshape(x.shape[:axis] + (k,) + x.shape[axis + 1:])
    u = np.moveaxis(u, axis, 0)
    if mode == "set":
        # the last update to each element wins: the first occurrence in the reversed order
        _, first = np.unique(j[::-1], return_index=True)
        last = k - 1 - first
        o[j[last]] = u[last]
    else:
        table = _COMBINE_BOOL if x.dtype == np.bool_ else _COMBINE
        table[mode].at(o, j, u)
    return out


RULES = {"take": _take, "take_along_axis": _take_along_axis, "dynamic_slice": _dynamic_slice,
         "update_slice": _update_slice, "scatter": _scatter}
