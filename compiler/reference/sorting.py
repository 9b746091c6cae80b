"""Reference rules of the sorting ops, with NumPy's stable sort (``np.lexsort``, which
orders NaNs last and keeps equal keys in their original order)."""

from __future__ import annotations


import numpy as np


def _order(keys, descending):
    """The stable permutation sorting `keys` (arrays of one shape) along their last axis,
    the first key first. Descending: the keys' order reversed, equal keys still in their
    original order (sort the reversed positions, then reverse the permutation)."""
    n = keys[0].shape[-1]
    if descending:
        keys = [k[..., ::-1] for k in keys]
    perm = np.lexsort(keys[::-1], axis=-1) if n else np.zeros(keys[0].shape, np.int64)
    if descending:
        perm = (n - 1 - perm)[..., ::-1]
    return perm.astype(np.int64)


def _sort(*xs, axis, descending, num_keys):
    moved = [np.moveaxis(x, axis, -1) for x in xs]
    perm = _order(moved[:num_keys], descending)
    return [np.moveaxis(np.take_along_axis(x, perm, -1), -1, axis) for x in moved]


def _top_k(x, k):
    perm = _order([x], True)[..., :k]
    return [np.take_along_axis(x, perm, -1), perm]


RULES = {"sort": _sort, "top_k": _top_k}
