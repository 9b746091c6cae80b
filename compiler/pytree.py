"""Pytrees: nested tuples, lists and dicts of arrays, as in JAX.

Functions take and return pytrees; ``in_dims``/``out_dims`` are pytree prefixes
of them. Dicts are ordered by sorted key, so two dicts with the same keys have
the same structure whatever order they were built in. ``None`` is an empty node
(it holds no leaf). Anything else is a leaf.
"""

from __future__ import annotations


class TreeDef:
    """The structure of a pytree, without its leaves."""

    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind: str, meta=None, children=()):
        self.kind = kind          # "leaf", "none", "tuple", "list", "dict"
        self.meta = meta          # dict keys for "dict"
        self.children = tuple(children)

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self.kind == other.kind and self.meta == other.meta
                and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, self.meta, self.children))

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        if self.kind == "tuple":
            return "(" + ", ".join(map(repr, self.children)) + ("," if len(self.children) == 1 else "") + ")"
        if self.kind == "list":
            return "[" + ", ".join(map(repr, self.children)) + "]"
        return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children)) + "}"


LEAF = TreeDef("leaf")


def _sorted_keys(d: dict):
    try:
        return tuple(sorted(d))
    except TypeError:
        return tuple(sorted(d, key=repr))


def flatten(tree, is_leaf=None):
    """(leaves, treedef) of a pytree."""
    leaves = []

    def rec(t):
        if is_leaf is not None and is_leaf(t):
            leaves.append(t)
            return LEAF
        if t is None:
            return TreeDef("none")
        if isinstance(t, tuple) and not hasattr(t, "_fields"):
            return TreeDef("tuple", None, [rec(c) for c in t])
        if isinstance(t, list):
            return TreeDef("list", None, [rec(c) for c in t])
        if isinstance(t, dict):
            keys = _sorted_keys(t)
            return TreeDef("dict", keys, [rec(t[k]) for k in keys])
        leaves.append(t)
        return LEAF
    td = rec(tree)
    return leaves, td


def unflatten(td: TreeDef, leaves):
    it = iter(leaves)

    def rec(t):
        if t.kind == "leaf":
            return next(it)
        if t.kind == "none":
            return None
        kids = [rec(c) for c in t.children]
        if t.kind == "tuple":
            return tuple(kids)
        if t.kind == "list":
            return kids
        return dict(zip(t.meta, kids))
    return rec(td)


def leaf_paths(td: TreeDef, prefix: str = ""):
    """A readable path for each leaf, e.g. ``params['w1']`` or ``args[1][0]``."""
    out = []

    def rec(t, p):
        if t.kind == "leaf":
            out.append(p)
        elif t.kind in ("tuple", "list"):
            for i, c in enumerate(t.children):
                rec(c, f"{p}[{i}]")
        elif t.kind == "dict":
            for k, c in zip(t.meta, t.children):
                rec(c, f"{p}[{k!r}]")
    rec(td, prefix)
    return out


def broadcast_prefix(prefix, td: TreeDef, what: str, path: str, error):
    """Expand a pytree prefix (e.g. ``in_dims``) to one value per leaf of `td`.

    A non-container value in `prefix` applies to every leaf below it. Raises
    `error` (an exception class) naming `path` when the structures disagree."""
    out = []

    def rec(p, t, here):
        if t.kind == "leaf" or not isinstance(p, (tuple, list, dict)) or (
                isinstance(p, tuple) and hasattr(p, "_fields")):
            if isinstance(p, (tuple, list, dict)) and t.kind == "leaf":
                raise error(f"{what} at {here} is a {type(p).__name__}, but {here} is an array, "
                            "not a container")
            out.extend([p] * t.num_leaves)
            return
        if t.kind == "none":
            return
        if t.kind in ("tuple", "list"):
            if not isinstance(p, (tuple, list)) or len(p) != len(t.children):
                n = len(p) if isinstance(p, (tuple, list)) else None
                raise error(f"{what} at {here} has {'a ' + type(p).__name__ if n is None else f'{n} entries'} "
                            f"but the value there is a {t.kind} of {len(t.children)}")
            for i, (pp, c) in enumerate(zip(p, t.children)):
                rec(pp, c, f"{here}[{i}]")
            return
        if not isinstance(p, dict) or _sorted_keys(p) != t.meta:
            raise error(f"{what} at {here} has keys {list(_sorted_keys(p)) if isinstance(p, dict) else type(p).__name__} "
                        f"but the value there is a dict with keys {list(t.meta)}")
        for k, c in zip(t.meta, t.children):
            rec(p[k], c, f"{here}[{k!r}]")
    rec(prefix, td, path)
    return out
