"""The loop-and-stack fallback, for an op without a batching rule.

It slices every batched operand into its examples, applies the op to each, and
concatenates the results along a new leading batch axis: correct for any op, but
the program grows with the batch size and the compiler sees B small ops instead
of one big one. Every op in vmapc's library has a real rule, so this only runs
for ops added without one. Each use warns with a ``PerformanceWarning`` naming the
op; ``vmapc.rules.fallback_mode("error")`` turns that into a ``BatchingError`` and
``"silent"`` silences it.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

from vmapc.errors import BatchingError, PerformanceWarning
from vmapc.shapes import Sym

from .helpers import axis_size_of, insert_unit_dim

MODES = ("warn", "error", "silent")
_state = threading.local()


def get_mode() -> str:
    return getattr(_state, "mode", "warn")


def set_mode(mode: str):
    """Set what happens when an op needs the fallback: "warn", "error" or "silent"."""
    if mode not in MODES:
        raise ValueError(f"fallback mode must be one of {MODES}, got {mode!r}")
    _state.mode = mode


@contextlib.contextmanager
def fallback_mode(mode: str):
    """``with vmapc.rules.fallback_mode("error"): ...`` for a block of code."""
    old = get_mode()
    set_mode(mode)
    try:
        yield
    finally:
        set_mode(old)


def fallback_rule(b, args, bdims, op, attrs, loc=None):
    mode = get_mode()
    if mode == "error":
        raise BatchingError(f"vmap: op {op} has no batching rule and the loop-and-stack fallback is "
                            "switched off (vmapc.rules.fallback_mode('error'))", loc)
    if mode == "warn":
        warnings.warn(f"vmap: op {op} has no batching rule; running it once per example "
                      "(loop-and-stack fallback), which is slow", PerformanceWarning, stacklevel=2)
    size = axis_size_of(args, bdims)
    if isinstance(size, Sym):
        raise BatchingError(f"vmap: op {op} has no batching rule, and the loop-and-stack fallback "
                            "needs a static batch size (not batch='dynamic')", loc)
    per_example = []
    for i in range(size):
        ex = []
        for x, d in zip(args, bdims):
            if d is None:
                ex.append(x)
                continue
            start = [0] * x.rank
            limit = list(x.shape)
            start[d], limit[d] = i, i + 1
            piece = b.emit("slice", x, start=tuple(start), limit=tuple(limit), step=(1,) * x.rank)
            ex.append(b.reshape(piece, x.shape[:d] + x.shape[d + 1:]))
        per_example.append(b.emit_multi(op, ex, attrs))
    if size == 0:
        from vmapc.ops import infer_types
        types = infer_types(op, [x.type if d is None else x.type.with_shape(x.shape[:d] + x.shape[d + 1:])
                                 for x, d in zip(args, bdims)], attrs)
        return [b.full((0,) + t.shape, 0, t.dtype) for t in types], [0] * len(types)
    outs = []
    for j in range(len(per_example[0])):
        pieces = [insert_unit_dim(b, o[j], 0) for o in per_example]
        outs.append(pieces[0] if len(pieces) == 1 else b.emit("concatenate", *pieces, axis=0))
    return outs, [0] * len(outs)
