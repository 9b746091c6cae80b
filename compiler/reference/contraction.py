"""Reference rule of ``dot_general``: an einsum (float16 accumulates in float32)."""

from __future__ import annotations


import numpy as np



def _dot_general(lhs, rhs, contract, batch):
    (lc, rc), (lb, rb) = contract, batch
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ls = [None] * lhs.ndim
    rs = [None] * rhs.ndim
    for a, b in zip(lb, rb):
        ls[a] = rs[b] = next(letters)
    for a, b in zip(lc, rc):
        ls[a] = rs[b] = next(letters)
    lfree = [i for i in range(lhs.ndim) if ls[i] is None]
    rfree = [i for i in range(rhs.ndim) if rs[i] is None]
    for i in lfree:
        ls[i] = next(letters)
    for i in rfree:
        rs[i] = next(letters)
    out = [ls[a] for a in lb] + [ls[i] for i in lfree] + [rs[i] for i in rfree]
    spec = f"{''.join(ls)},{''.join(rs)}->{''.join(out)}"
    if lhs.dtype == np.float16:  # accumulate in float32, as compiled code does
        return np.einsum(spec, lhs.astype(np.float32), rhs.astype(np.float32)).astype(np.float16)
    return np.einsum(spec, lhs, rhs).astype(lhs.dtype)



RULES = {"dot_general": _dot_general}
