"""Creation ops (``iota``, ``constant``) have no operands, so they are never batched:
the vmap pass copies them unchanged. Their rule exists so that every op has an
entry in the table; it emits the op as it is and reports an unbatched result."""

from __future__ import annotations


def iota_rule(b, args, bdims, shape, dimension, dtype):
    return [b.emit("iota", shape=shape, dimension=dimension, dtype=dtype)], [None]


def constant_rule(b, args, bdims, value):
    return [b.emit("constant", value=value)], [None]


RULES = {"iota": iota_rule, "constant": constant_rule}
