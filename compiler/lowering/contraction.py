"""Lowering of ``dot_general``: ``linalg.matmul``/``batch_matmul`` when the operands are
matrices after collapsing contiguous dims (a batch folded into the rows stays one GEMM),
else one generic with the transposes folded into its maps."""

from __future__ import annotations


from .. import dtypes as dt
from ..shapes import prod

from iree.compiler.dialects import linalg

from .base import add, const, convert, mul


# --- rules: contraction --------------------------------------------------------------------------

def _dot_general_rule(lctx, eqn, xs):
    lhs, rhs = xs
    lt, rt = eqn.inputs[0].type, eqn.inputs[1].type
    out = eqn.outputs[0].type
    (lc, rc), (lb, rb) = eqn.attrs["contract"], eqn.attrs["batch"]
    dtype = lt.dtype
    if 0 in lt.shape or 0 in rt.shape:  # an empty contraction is zeros (IREE crashes on it)
        return [lctx.full(out.shape, dtype, 0)]
    acc = dt.FLOAT32 if dtype == dt.FLOAT16 else dtype  # float16 accumulates in float32
    r = _matmul(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc)
    if r is None:
        r = _contraction_generic(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc)
    if acc != dtype:
        r = lctx.map_scalars([r], [out.with_dtype(acc)], out, lambda v: convert(v, acc, dtype))
    return [r]


def _matmul(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc):
    """linalg.matmul / batch_matmul when the operands are [batch, free, contract] and
    [batch, contract, free] after collapsing contiguous groups; None otherwise."""
    nb, k = len(lb), len(lc)
    if tuple(lb) != tuple(range(nb)) or tuple(rb) != tuple(range(nb)) or k == 0:
        return None
    pairs = sorted(zip(lc, rc))
    nlf, nrf = lt.rank - nb - k, rt.rank - nb - k
    if nlf < 1 or nrf < 1:
        return None
    if [a for a, _ in pairs] != list(range(nb + nlf, lt.rank)) or [b for _, b in pairs] != list(range(nb, nb + k)):
        return None
    bg = [list(range(nb))] if nb else []
    lhs2 = lctx.collapse(lhs, lt.shape, bg + [list(range(nb, nb + nlf)), list(range(nb + nlf, lt.rank))])
    rhs2 = lctx.collapse(rhs, rt.shape, bg + [list(range(nb, nb + k)), list(range(nb + k, rt.rank))])
    out_groups = bg + [list(range(nb, nb + nlf)), list(range(nb + nlf, out.rank))]
    mid = [prod([out.shape[i] for i in g]) for g in out_groups]
    init = linalg.fill(const(acc, 0), outs=[lctx.empty(mid, acc)])
    if nb:
        r = linalg.batch_matmul(lhs2, rhs2, outs=[init])
    else:
        r = linalg.matmul(lhs2, rhs2, outs=[init])
    return lctx.expand(r, out.shape, out_groups)


def _contraction_generic(lctx, lhs, rhs, lt, rt, out, lc, rc, lb, rb, acc):
    """Any dot_general as one generic: loop dims are batch, lhs free, rhs free,
    contract; transposes are folded into the operand maps."""
    nb, k = len(lb), len(lc)
    lfree = [i for i in range(lt.rank) if i not in lc and i not in lb]
    rfree = [i for i in range(rt.rank) if i not in rc and i not in rb]
    n = nb + len(lfree) + len(rfree) + k
    lmap, rmap = [None] * lt.rank, [None] * rt.rank
    for j, (a, b) in enumerate(zip(lb, rb)):
        lmap[a] = rmap[b] = j
    for j, a in enumerate(lfree):
        lmap[a] = nb + j
    for j, b in enumerate(rfree):
        rmap[b] = nb + len(lfree) + j
    for j, (a, b) in enumerate(zip(lc, rc)):
        lmap[a] = rmap[b] = n - k + j
    init = lctx.full(out.shape, acc, 0)
    dtype = lt.dtype

    def body(args):
        a, b, c = args
        a, b = convert(a, dtype, acc), convert(b, dtype, acc)
        return [add(c, mul(a, b, acc), acc)]
    return lctx.generic([lhs, rhs], [lmap, rmap], [init], [list(range(n - k))], n, body,
                        reduction_dims=tuple(range(n - k, n)))[0]


RULES = {"dot_general": _dot_general_rule}
