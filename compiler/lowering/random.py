"""Lowering of the random family: ``threefry2x32`` as ``linalg.generic`` ops whose body is
the 20 rounds of Threefry-2x32 in 32-bit integer arithmetic only (add, xor, shifts: every
Vulkan device has them, 64-bit integers are not needed), and ``key_use``, the identity."""

from __future__ import annotations

from iree.compiler.dialects import arith

from .. import dtypes as dt
from ..reference.random import PARITY, ROTATIONS
from .base import broadcast_exprs, const


def _threefry_body(k0, k1, x0, x1):
    u32 = dt.UINT32
    ks = (k0, k1, arith.xori(arith.xori(k0, k1), const(u32, PARITY)))
    x0 = arith.addi(x0, ks[0])
    x1 = arith.addi(x1, ks[1])
    for i in range(5):
        for r in ROTATIONS[i % 2]:
            x0 = arith.addi(x0, x1)
            rot = arith.ori(arith.shli(x1, const(u32, r)), arith.shrui(x1, const(u32, 32 - r)))
            x1 = arith.xori(rot, x0)
        x0 = arith.addi(x0, ks[(i + 1) % 3])
        x1 = arith.addi(arith.addi(x1, ks[(i + 2) % 3]), const(u32, i + 1))
    return [x0, x1]


def _threefry_rule(lctx, eqn, xs):
    """Two generics, one per output word, each with the whole hash in its body: IREE 3.13
    fails to compile a two-result generic one of whose results is transposed ("linalg.yield
    op expected number of yield values (2) to match the number of inits", in its transpose
    propagation). Where both words are used together (bits are their xor), IREE fuses the
    two generics into their consumer and CSE keeps one copy of the hash."""
    out = eqn.outputs[0].type
    r = out.rank
    maps = [broadcast_exprs(v.shape, out.shape) for v in eqn.inputs]
    return [lctx.generic(xs, maps, [lctx.empty(out.shape, out.dtype)], [list(range(r))], r,
                         lambda args, w=w: [_threefry_body(*args[:4])[w]])[0] for w in (0, 1)]


def _key_use_rule(lctx, eqn, xs):
    return [xs[0]]


RULES = {"threefry2x32": _threefry_rule, "key_use": _key_use_rule}
