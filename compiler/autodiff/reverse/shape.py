"""Reverse-mode rules of the shape ops: each moves the cotangent back to where its
operand's elements came from.

* ``reshape``, ``transpose``, ``rev``: the inverse reshape, permutation, reversal;
* ``broadcast_in_dim``: sum over the new dims and the stretched size-1 dims;
* ``concatenate``: each operand's slice of the cotangent;
* ``slice``: the cotangent padded with zeros back to the operand's shape; a strided
  slice first interleaves zeros between the cotangent's elements;
* ``pad``: the operand's window of the cotangent; the padding value, which appears
  in every padded position, gets the sum over those positions.
"""

from __future__ import annotations

from ..helpers import ew, scalar, sum_to_scalar, zeros


def reshape_rule(b, primals, outs, cts, shape):
    return [b.reshape(cts[0], primals[0].shape)]


def transpose_rule(b, primals, outs, cts, perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return [b.transpose(cts[0], inverse)]


def broadcast_in_dim_rule(b, primals, outs, cts, shape, dims):
    (x,), (ct,) = primals, cts
    stretched = [dims[i] for i in range(x.rank) if x.shape[i] == 1 and shape[dims[i]] != 1]
    axes = tuple(sorted(set(range(len(shape))) - set(dims)) + stretched)
    if axes:
        ct = b.emit("reduce_sum", ct, axes=tuple(sorted(axes)))
    return [b.reshape(ct, x.shape)]


def concatenate_rule(b, primals, outs, cts, axis):
    (ct,) = cts
    res, at = [], 0
    for x in primals:
        n = x.shape[axis]
        start = [0] * ct.rank
        limit = list(ct.shape)
        start[axis], limit[axis] = at, at + n
        res.append(b.emit("slice", ct, start=tuple(start), limit=tuple(limit), step=(1,) * ct.rank))
        at += n
    return res


def slice_rule(b, primals, outs, cts, start, limit, step):
    (x,), (ct,) = primals, cts
    for i, k in enumerate(step):
        if k == 1 or ct.shape[i] == 0:
            continue
        # put each element k apart: [.., m, ..] -> [.., m, 1, ..] ++ zeros [.., m, k-1, ..] -> [.., m*k, ..]
        m = ct.shape[i]
        col = b.reshape(ct, ct.shape[:i + 1] + (1,) + ct.shape[i + 1:])
        z = zeros(b, ct.shape[:i + 1] + (k - 1,) + ct.shape[i + 1:], ct.dtype)
        wide = b.emit("concatenate", col, z, axis=i + 1)
        ct = b.reshape(wide, ct.shape[:i] + (m * k,) + ct.shape[i + 1:])
    # the interleaved rows may run past the operand's end: trim, then pad back to its shape
    keep = tuple(min(c, d - s) for c, d, s in zip(ct.shape, x.shape, start))
    if keep != ct.shape:
        ct = b.emit("slice", ct, start=(0,) * ct.rank, limit=keep, step=(1,) * ct.rank)
    hi = tuple(d - s - c for d, s, c in zip(x.shape, start, ct.shape))
    if any(start) or any(hi):
        ct = b.emit("pad", ct, zeros(b, (), ct.dtype), lo=tuple(start), hi=hi)
    return [ct]


def rev_rule(b, primals, outs, cts, axes):
    return [b.emit("rev", cts[0], axes=axes)]


def pad_rule(b, primals, outs, cts, lo, hi):
    (x, v), (ct,) = primals, cts
    limit = tuple(l + d for l, d in zip(lo, x.shape))
    ct_x = b.emit("slice", ct, start=tuple(lo), limit=limit, step=(1,) * ct.rank)
    # where the padding value went: 1 in the padded positions, 0 in the operand's window
    mask = b.emit("pad", zeros(b, x.shape, x.dtype), scalar(b, 1, v), lo=lo, hi=hi)
    ct_v = sum_to_scalar(b, ew(b, "multiply", ct, mask))
    return [ct_x, ct_v]


RULES = {"reshape": reshape_rule, "transpose": transpose_rule, "broadcast_in_dim": broadcast_in_dim_rule,
         "concatenate": concatenate_rule, "slice": slice_rule, "rev": rev_rule, "pad": pad_rule}
