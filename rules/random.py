"""Batching the random family, and what a vmap does with a draw from a shared key.

``threefry2x32`` is elementwise (equal-rank operands, size-1 dims broadcast), so the
elementwise family rule batches it: a batched key or counter gives a batched result with
no copy of the unbatched operands.

``key_use[what](key, *deps)`` is the identity; its batching rule returns the key with its
batch dim. The interesting case is the one the vmap pass would otherwise copy unchanged:
**no operand batched**, that is a draw from a key that every example shares (a key passed
with ``in_dims=None``, or made inside the function from a constant seed). Copying would
silently give every example the same numbers, so the pass calls
:data:`UNBATCHED_RULES` instead, with the vmap's ``randomness`` mode (after
``torch.func.vmap``):

* ``"error"`` (the default) raises a :class:`~vmapc.errors.BatchingError` at the user's line;
* ``"same"`` copies the draw: every example gets the same numbers (what JAX does);
* ``"different"`` replaces the key by ``fold_in(key, i)`` for example ``i``, its **global**
  index (``iota(B) + example_offset``), so example ``i`` draws what a loop calling the
  function with ``vmapc.random.fold_in(key, i)`` would, whatever the chunking.

In every mode the rule emits a fresh ``key_use`` of the shared key first, so that an
enclosing vmap (nested vmap) applies its own mode to it: with "different" at both levels,
example ``(i, j)`` gets ``fold_in(fold_in(key, i), j)``, as two nested loops would.
"""

from __future__ import annotations

from vmapc import dtypes as dt
from vmapc.errors import BatchingError

from .elementwise import elementwise_rule


def key_use_rule(b, args, bdims, what):
    return [args[0]], [bdims[0]]


def fold_in_index(b, key, index):
    """``fold_in(key, i)`` for each entry of ``index`` (u32[B]): keys u32[B, 2], batch dim 0.
    The same hash as :func:`vmapc.random.fold_in` and ``split(key, B)[i]``:
    ``threefry2x32(key, (0, i))``."""
    n = index.shape[0]
    k0 = b.emit("slice", key, start=(0,), limit=(1,), step=(1,))
    k1 = b.emit("slice", key, start=(1,), limit=(2,), step=(1,))
    zero = b.full((1,), 0, dt.UINT32)
    y0, y1 = b.emit_multi("threefry2x32", [k0, k1, zero, index], {})
    return b.emit("concatenate", b.reshape(y0, (n, 1)), b.reshape(y1, (n, 1)), axis=1)


def key_use_unbatched(b, args, axis_size, randomness, what):
    key = b.emit("key_use", *args, what=what)      # for enclosing vmaps
    if randomness.mode == "same":
        return [key], [None]
    if randomness.mode == "error":
        raise BatchingError(
            f"vmap: vmapc.random.{what} draws from a key that is the same for every example, so every "
            "example would get the same numbers (randomness='error', the default). Pass one key per "
            "example (keys = vmapc.random.split(key, n), batched with in_dims 0), or choose "
            "randomness='different' (each example folds its index into the key) or 'same' (one draw, "
            "shared) in vmapc.vmap / vmapc.compile (--randomness for the vmapc command)")
    return [fold_in_index(b, key, randomness.index(b, axis_size))], [0]


RULES = {"threefry2x32": lambda b, args, bdims: elementwise_rule(b, args, bdims, op="threefry2x32"),
         "key_use": key_use_rule}
KINDS = {"threefry2x32": "family", "key_use": "native"}

# rule(builder, args, axis_size, randomness, **attrs) -> (outs, out_bdims), called by the vmap
# pass for an equation of these ops when none of its operands is batched
UNBATCHED_RULES = {"key_use": key_use_unbatched}
