"""Helpers that batching rules share (after functorch's BatchRulesHelper).

A rule sees each operand as an IR value plus its batch dim ``bdim``: the position
of the batch axis in the value's physical shape, or ``None`` when the operand is
not batched (every example sees the same value). These helpers move, add and
remove that axis without the rule having to count positions by hand. All of them
emit ordinary ops through the builder ``b`` and skip no-op equations.
"""

from __future__ import annotations

from vmapc.ir import Builder, Var


def move_bdim(b: Builder, x: Var, src: int, dst: int) -> Var:
    """Move axis `src` of x to position `dst` (a transpose; nothing if src == dst)."""
    if src == dst:
        return x
    perm = [i for i in range(x.rank) if i != src]
    perm.insert(dst, src)
    return b.transpose(x, perm)


def move_bdim_to_front(b: Builder, x: Var, bdim: int | None) -> Var:
    """x with its batch axis first. An unbatched x is returned unchanged."""
    return x if bdim is None else move_bdim(b, x, bdim, 0)


def logical_to_physical(axis: int, bdim: int | None) -> int:
    """Position, in the batched value, of the example's axis `axis`."""
    return axis if bdim is None or axis < bdim else axis + 1


def batch_size(x: Var, bdim: int):
    return x.shape[bdim]


def insert_unit_dim(b: Builder, x: Var, at: int) -> Var:
    """x with a new size-1 axis at position `at` (a reshape). Elementwise ops then
    broadcast it against the batch axis of the other operands."""
    return b.reshape(x, x.shape[:at] + (1,) + x.shape[at:])


def materialize(b: Builder, x: Var, size, at: int = 0) -> Var:
    """Broadcast an unbatched x to carry a batch axis of `size` at position `at`.
    Copies data: use only where an op needs every operand batched (concatenate)."""
    shape = x.shape[:at] + (size,) + x.shape[at:]
    dims = tuple(i for i in range(len(shape)) if i != at)
    return b.broadcast_in_dim(x, shape, dims)


def to_front_or_materialize(b: Builder, x: Var, bdim: int | None, size) -> Var:
    """x batched with its batch axis first, broadcasting it if it was unbatched."""
    return materialize(b, x, size, 0) if bdim is None else move_bdim(b, x, bdim, 0)


def shift_axes(axes, bdim: int | None) -> tuple:
    """Logical axes of an op's attribute, as physical positions around bdim."""
    return tuple(logical_to_physical(a, bdim) for a in axes)


def axis_size_of(args, bdims):
    """The batch size, read off the first batched operand."""
    for x, d in zip(args, bdims):
        if d is not None:
            return x.shape[d]
    raise AssertionError("a batching rule was called with no batched operand")
