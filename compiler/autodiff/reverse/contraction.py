"""Reverse-mode rule of ``dot_general``.

The result's dims are (batch, lhs free, rhs free). The cotangent of ``lhs`` is the
result's cotangent contracted with ``rhs`` over the rhs free dims, sharing the batch
dims; what remains is (batch, lhs free, rhs contracting dims), which a transpose puts
back in ``lhs``'s order, the rhs contracting dims standing in for the lhs
contracting dims they were paired with. ``rhs`` is symmetric. Both are
``dot_general`` again, so under ``vmap`` they batch like any contraction: with
shared weights, the cotangent of the activations stays one GEMM with the batch
folded into its rows.
"""

from __future__ import annotations


def _free(rank, contract, batch):
    return [i for i in range(rank) if i not in contract and i not in batch]


def dot_general_rule(b, primals, outs, cts, contract, batch):
    (lhs, rhs), (ct,) = primals, cts
    (lc, rc), (lb, rb) = contract, batch
    nb, k = len(lb), len(lc)
    lfree, rfree = _free(lhs.rank, lc, lb), _free(rhs.rank, rc, rb)
    nlf, nrf = len(lfree), len(rfree)
    ct_batch = tuple(range(nb))
    # lhs: contract ct's rhs-free dims with rhs's free dims
    r = b.emit("dot_general", ct, rhs, contract=(tuple(range(nb + nlf, nb + nlf + nrf)), tuple(rfree)),
               batch=(ct_batch, tuple(rb)))
    where = {}
    for j, d in enumerate(lb):
        where[d] = j
    for j, d in enumerate(lfree):
        where[d] = nb + j
    rc_sorted = sorted(rc)
    for d, e in zip(lc, rc):
        where[d] = nb + nlf + rc_sorted.index(e)
    ct_lhs = b.transpose(r, [where[i] for i in range(lhs.rank)])
    # rhs: contract lhs's free dims with ct's lhs-free dims
    r = b.emit("dot_general", lhs, ct, contract=(tuple(lfree), tuple(range(nb, nb + nlf))),
               batch=(tuple(lb), ct_batch))
    where = {}
    for j, d in enumerate(rb):
        where[d] = j
    lc_sorted = sorted(lc)
    for d, e in zip(rc, lc):
        where[d] = nb + lc_sorted.index(e)
    for j, d in enumerate(rfree):
        where[d] = nb + k + j
    ct_rhs = b.transpose(r, [where[i] for i in range(rhs.rank)])
    return [ct_lhs, ct_rhs]


RULES = {"dot_general": dot_general_rule}
