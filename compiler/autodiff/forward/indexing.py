"""Forward-mode rules of the gathers and the writes.

The gathers are linear in the array, so the tangent is gathered with the same indices
(which, being integers, have no tangent). The writes ``update_slice`` and
``scatter[mode=set|add]`` are linear in the operand and the updates together, so the
tangents are written the same way (a missing one is zeros); with ``set`` the tangent
of an element comes from the same writer as its value (the last update to it).
``scatter`` with ``multiply``, ``min`` or ``max`` has no rule yet: it raises
:class:`~vmapc.errors.AutodiffError` (:func:`refuse_scatter_mode`).
"""

from __future__ import annotations

from ...errors import AutodiffError
from ..helpers import zeros_like

LINEAR_SCATTER_MODES = ("set", "add")


def refuse_scatter_mode(mode):
    if mode not in LINEAR_SCATTER_MODES:
        raise AutodiffError(f"scatter[mode={mode}] cannot be differentiated yet: only modes "
                            f"{' and '.join(LINEAR_SCATTER_MODES)} have derivative rules (for "
                            f"{mode}, write the combine with `take` and elementwise ops, then "
                            f"scatter with mode='set')")


def take_rule(b, primals, tangents, outs, axis, batch_dims):
    return [b.emit("take", tangents[0], primals[1], axis=axis, batch_dims=batch_dims)]


def take_along_axis_rule(b, primals, tangents, outs, axis):
    return [b.emit("take_along_axis", tangents[0], primals[1], axis=axis)]


def dynamic_slice_rule(b, primals, tangents, outs, sizes):
    return [b.emit("dynamic_slice", tangents[0], *primals[1:], sizes=sizes)]


def update_slice_rule(b, primals, tangents, outs):
    (x, upd), (tx, tu) = primals[:2], tangents[:2]
    tx = zeros_like(b, x) if tx is None else tx
    tu = zeros_like(b, upd) if tu is None else tu
    return [b.emit("update_slice", tx, tu, *primals[2:])]


def scatter_rule(b, primals, tangents, outs, axis, batch_dims, mode):
    refuse_scatter_mode(mode)
    (x, idx, upd), (tx, _, tu) = primals, tangents
    tx = zeros_like(b, x) if tx is None else tx
    tu = zeros_like(b, upd) if tu is None else tu
    return [b.emit("scatter", tx, idx, tu, axis=axis, batch_dims=batch_dims, mode=mode)]


RULES = {"update_slice": update_slice_rule, "scatter": scatter_rule, "take": take_rule,
         "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule}
