"""Forward-mode rules of the gathers: linear in the array, so the tangent is gathered
with the same indices (which, being integers, have no tangent)."""

from __future__ import annotations


def take_rule(b, primals, tangents, outs, axis, batch_dims):
    return [b.emit("take", tangents[0], primals[1], axis=axis, batch_dims=batch_dims)]


def take_along_axis_rule(b, primals, tangents, outs, axis):
    return [b.emit("take_along_axis", tangents[0], primals[1], axis=axis)]


def dynamic_slice_rule(b, primals, tangents, outs, sizes):
    return [b.emit("dynamic_slice", tangents[0], *primals[1:], sizes=sizes)]


RULES = {"take": take_rule, "take_along_axis": take_along_axis_rule, "dynamic_slice": dynamic_slice_rule}
