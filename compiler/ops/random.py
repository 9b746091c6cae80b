"""The random family: ``threefry2x32``, the counter-based hash that every random draw of
:mod:`vmapc.random` is built from, and ``key_use``, which marks where a key is consumed.

``threefry2x32(k0, k1, x0, x1) -> (y0, y1)`` is Threefry-2x32 with 20 rounds (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011) applied elementwise: key words
``k0, k1`` and counter words ``x0, x1`` give two words of output. Every operand is uint32, of
equal rank, and size-1 dims broadcast, as for the other elementwise ops; so the elementwise
family rule batches it, and its lowering needs only 32-bit integer arithmetic (add, xor,
shifts), which every backend has.

``key_use[what](key, *deps) -> key`` returns ``key`` unchanged. It sits where a
:mod:`vmapc.random` function consumes a key (``what`` names the function), so that the vmap
pass can see a draw from a key that is the same for every example: there the pass applies
the vmap's ``randomness`` mode instead of copying the draw unchanged (see
:mod:`vmapc.rules.random`). ``deps`` are values the draw also depends on (the data of
``fold_in``): when one of them is batched the draw differs per example already.
"""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import DTypeError, IRError, ShapeError
from .core import _T, _broadcast_equal_rank, _check_arity, define


def _threefry_infer(ts):
    _check_arity("threefry2x32", ts, 4)
    for i, t in enumerate(ts):
        if t.dtype != dt.UINT32:
            raise DTypeError(f"threefry2x32: operand {i} has dtype {t.dtype}, expected uint32")
    shape = _broadcast_equal_rank("threefry2x32", ts)
    return [_T(shape, dt.UINT32), _T(shape, dt.UINT32)]


def _key_use_infer(ts, what):
    if not ts:
        raise IRError("key_use takes a key operand")
    if not isinstance(what, str):
        raise IRError(f"key_use: `what` must be a string, got {what!r}")
    k = ts[0]
    if k.dtype != dt.UINT32:
        raise DTypeError(f"key_use: the key has dtype {k.dtype}, expected uint32")
    if k.shape != (2,):
        raise ShapeError(f"key_use: the key has shape {k.shape}, expected (2,)")
    return [k]


define("threefry2x32", "random", (), _threefry_infer,
       "threefry2x32(k0, k1, x0, x1) -> (y0, y1): Threefry-2x32, 20 rounds, elementwise over uint32.")
define("key_use", "random", ("what",), _key_use_infer,
       "key_use[what](key, *deps) -> key: marks a key consumed by vmapc.random.`what`.")
