"""Pytrees: nested containers of arrays, as in JAX and ``torch.utils._pytree``.

Functions take and return pytrees; ``in_dims``/``out_dims`` are pytree prefixes
of them. :func:`flatten` splits a pytree into its leaves (the arrays, in a fixed
order) and a :class:`TreeDef` (everything else); :func:`unflatten` puts them back.

The containers:

* ``tuple``, ``list`` and ``dict``. A dict is ordered by sorted key, so two dicts
  with the same keys have the same structure whatever order they were built in;
* ``collections.namedtuple`` classes, rebuilt as the same class;
* ``collections.OrderedDict``, ordered by insertion and rebuilt as an OrderedDict;
* any class registered with :func:`register` (``flatten(obj) -> (children, aux)``,
  ``unflatten(aux, children) -> obj``), and dataclasses through the
  :func:`register_dataclass` decorator;
* ``None``, an empty container: it holds no leaf and comes back as ``None``.

Anything else is a leaf. A *static* value (a Python int given to ``compile``, a
string, a function; see ``docs/vmap.md``) is kept inside the TreeDef as a
``const`` node instead of becoming a leaf: ``flatten(tree, static=pred)`` does
that for every leaf where ``pred(leaf)`` is true, and always for a value wrapped
in :class:`Static`. Two TreeDefs are equal when their structures and their static
values (with their types: ``1``, ``1.0`` and ``True`` differ) are equal, so a
TreeDef is a cache key; it is hashable when its static values are.

This module is hand-written rather than built on ``optree``: see ``docs/vmap.md``
("Pytrees") for the measurement and the reasons.
"""

from __future__ import annotations

import collections
import dataclasses


class Static:
    """Wraps a value that :func:`flatten` keeps in the TreeDef as it is, whatever it
    is (a declared static argument: ``compile(..., static_argnums=...)``)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Static({self.value!r})"


class TreeDef:
    """The structure of a pytree, without its leaves."""

    __slots__ = ("kind", "meta", "children", "num_leaves")

    def __init__(self, kind: str, meta=None, children=()):
        self.kind = kind          # "leaf", "none", "const", "tuple", "list", "dict", "odict", "namedtuple", "custom"
        self.meta = meta          # dict keys; the namedtuple class; (class, aux) of a custom node; (type, value) of a const
        self.children = tuple(children)
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in self.children)

    def __eq__(self, other):
        if not isinstance(other, TreeDef) or self.kind != other.kind or self.children != other.children:
            return False
        if self.kind == "const":
            return self.meta[0] is other.meta[0] and self.meta[1] == other.meta[1]
        return self.meta == other.meta

    def __hash__(self):
        return hash((self.kind, self.meta, self.children))

    def __repr__(self):
        k = self.kind
        if k == "leaf":
            return "*"
        if k == "none":
            return "None"
        if k == "const":
            return f"static({self.meta[1]!r})"
        if k == "tuple":
            return "(" + ", ".join(map(repr, self.children)) + ("," if len(self.children) == 1 else "") + ")"
        if k == "list":
            return "[" + ", ".join(map(repr, self.children)) + "]"
        if k in ("dict", "odict"):
            body = ", ".join(f"{key!r}: {c!r}" for key, c in zip(self.meta, self.children))
            return "{" + body + "}" if k == "dict" else f"OrderedDict({{{body}}})"
        cls = self.meta if k == "namedtuple" else self.meta[0]
        return f"{cls.__name__}(" + ", ".join(map(repr, self.children)) + ")"


LEAF = TreeDef("leaf")
NONE = TreeDef("none")

# type -> (flatten, unflatten, names): flatten(obj) -> (children, aux); unflatten(aux, children) -> obj;
# names: the children's names for error messages and paths (a dataclass's fields), or None
_REGISTRY: dict = {}


def register(cls, flatten, unflatten, names=None):
    """Make instances of `cls` (exactly that class, not its subclasses) pytree
    containers: ``flatten(obj) -> (children, aux)`` lists the children (pytrees
    themselves) and any hashable data the structure keeps (``aux``);
    ``unflatten(aux, children)`` rebuilds the object. `names`, optional, names the
    children in error messages and argument names. Returns `cls`."""
    if not isinstance(cls, type):
        raise TypeError(f"vmapc.pytree.register: expected a class, got {cls!r}")
    if not callable(flatten) or not callable(unflatten):
        raise TypeError("vmapc.pytree.register: flatten and unflatten must be functions")
    _REGISTRY[cls] = (flatten, unflatten, tuple(names) if names is not None else None)
    return cls


def register_dataclass(cls=None, *, static=()):
    """Class decorator: register a dataclass as a pytree container (making it a
    dataclass first if it is not one). Its fields are the children, except those
    named in `static` or declared with ``dataclasses.field(metadata={"static": True})``:
    those are part of the structure (hashable, compared, a cache key), like a static
    argument::

        @vmapc.pytree.register_dataclass
        @dataclasses.dataclass
        class Layer:
            w: np.ndarray
            b: np.ndarray
            activation: str = dataclasses.field(default="tanh", metadata={"static": True})
    """
    def deco(c):
        if not dataclasses.is_dataclass(c):
            c = dataclasses.dataclass(c)
        fields = [f for f in dataclasses.fields(c) if f.init]
        unknown = set(static) - {f.name for f in fields}
        if unknown:
            raise TypeError(f"vmapc.pytree.register_dataclass: {c.__name__} has no field(s) {sorted(unknown)}")
        meta = tuple(f.name for f in fields if f.name in static or f.metadata.get("static"))
        data = tuple(f.name for f in fields if f.name not in meta)

        def flatten(obj):
            return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in meta)

        def unflatten(aux, children):
            return c(**dict(zip(data, children)), **dict(zip(meta, aux)))
        return register(c, flatten, unflatten, names=data)
    return deco if cls is None else deco(cls)


def _is_namedtuple(t) -> bool:
    return isinstance(t, tuple) and hasattr(type(t), "_fields")


def _sorted_keys(d: dict):
    try:
        return tuple(sorted(d))
    except TypeError:
        return tuple(sorted(d, key=repr))


def _const(v) -> TreeDef:
    return TreeDef("const", (type(v), v))


def flatten(tree, is_leaf=None, static=None):
    """(leaves, treedef) of a pytree. ``is_leaf(x)``: treat x as a leaf even if it is a
    container. ``static(x)``: keep this leaf in the treedef instead (see the module
    docstring); a :class:`Static` is always kept there."""
    leaves = []

    def rec(t):
        if is_leaf is not None and is_leaf(t):
            leaves.append(t)
            return LEAF
        ty = type(t)
        if ty is tuple:
            return TreeDef("tuple", None, [rec(c) for c in t])
        if ty is list:
            return TreeDef("list", None, [rec(c) for c in t])
        if ty is dict:
            keys = _sorted_keys(t)
            return TreeDef("dict", keys, [rec(t[k]) for k in keys])
        if t is None:
            return NONE
        if ty is Static:
            return _const(t.value)
        node = _REGISTRY.get(ty)
        if node is not None:
            children, aux = node[0](t)
            return TreeDef("custom", (ty, aux), [rec(c) for c in children])
        if ty is collections.OrderedDict:
            keys = tuple(t)
            return TreeDef("odict", keys, [rec(t[k]) for k in keys])
        if _is_namedtuple(t):
            return TreeDef("namedtuple", ty, [rec(c) for c in t])
        if isinstance(t, dict):       # other dict subclasses (defaultdict, ...) come back as dicts
            keys = _sorted_keys(t)
            return TreeDef("dict", keys, [rec(t[k]) for k in keys])
        if static is not None and static(t):
            return _const(t)
        leaves.append(t)
        return LEAF
    td = rec(tree)
    return leaves, td


def unflatten(td: TreeDef, leaves):
    it = iter(leaves)

    def rec(t):
        k = t.kind
        if k == "leaf":
            return next(it)
        if k == "none":
            return None
        if k == "const":
            return t.meta[1]
        kids = [rec(c) for c in t.children]
        if k == "tuple":
            return tuple(kids)
        if k == "list":
            return kids
        if k == "dict":
            return dict(zip(t.meta, kids))
        if k == "odict":
            return collections.OrderedDict(zip(t.meta, kids))
        if k == "namedtuple":
            return t.meta(*kids)
        cls, aux = t.meta
        return _REGISTRY[cls][1](aux, kids)
    return rec(td)


def _child_keys(t: TreeDef):
    """How each child of a container is reached: ("[0]", ...), ("['w']", ...) or (".w", ...)."""
    if t.kind in ("tuple", "list"):
        return [f"[{i}]" for i in range(len(t.children))]
    if t.kind in ("dict", "odict"):
        return [f"[{k!r}]" for k in t.meta]
    if t.kind == "namedtuple":
        return [f".{f}" for f in t.meta._fields]
    if t.kind == "custom":
        names = _REGISTRY.get(t.meta[0], (None, None, None))[2]
        if names is not None and len(names) == len(t.children):
            return [f".{n}" for n in names]
        return [f"[{i}]" for i in range(len(t.children))]
    return []


def leaf_keys(td: TreeDef):
    """For each leaf, the list of steps that reach it (see :func:`leaf_paths`)."""
    out = []

    def rec(t, p):
        if t.kind == "leaf":
            out.append(p)
            return
        for key, c in zip(_child_keys(t), t.children):
            rec(c, p + [key])
    rec(td, [])
    return out


def leaf_paths(td: TreeDef, prefix: str = ""):
    """A readable path for each leaf, e.g. ``params['w1']``, ``args[1][0]`` or ``p.x``."""
    return [prefix + "".join(k) for k in leaf_keys(td)]


def static_values(td: TreeDef):
    """(steps, value) of every static value kept in the treedef (steps as in
    :func:`leaf_keys`)."""
    out = []

    def rec(t, p):
        if t.kind == "const":
            out.append((p, t.meta[1]))
            return
        for key, c in zip(_child_keys(t), t.children):
            rec(c, p + [key])
    rec(td, [])
    return out


def _describe_node(t: TreeDef, value=False) -> str:
    if t.kind == "const" and value:
        r = repr(t.meta[1])
        return f"the static {type(t.meta[1]).__name__} {r if len(r) <= 40 else r[:37] + '...'}"
    if t.kind == "leaf":
        return "an array"
    if t.kind in ("tuple", "list"):
        return f"a {t.kind} of {len(t.children)}"
    if t.kind == "dict":
        return f"a dict with keys {list(t.meta)}"
    if t.kind == "odict":
        return f"an OrderedDict with keys {list(t.meta)}"
    if t.kind == "namedtuple":
        return f"a {t.meta.__name__} (namedtuple)"
    if t.kind == "custom":
        return f"a {t.meta[0].__name__}"
    if t.kind == "none":
        return "None"
    return f"a static {type(t.meta[1]).__name__}"


def first_difference(a: TreeDef, b: TreeDef):
    """Where two treedefs first differ: (steps, node of a, node of b), or None when
    they are equal (describe the nodes with :func:`describe`)."""
    def rec(x, y, p):
        if x == y:
            return None
        same_kind = x.kind == y.kind and len(x.children) == len(y.children) and (
            x.kind == "const" or x.meta == y.meta)
        if not same_kind or x.kind == "const":
            return p, x, y
        for key, cx, cy in zip(_child_keys(x), x.children, y.children):
            r = rec(cx, cy, p + [key])
            if r is not None:
                return r
        return p, x, y
    return rec(a, b, [])


def describe(t: TreeDef) -> str:
    """A node in words: "an array", "a tuple of 2", "the static int 3"..."""
    return _describe_node(t, True)


def _is_container(p) -> bool:
    return isinstance(p, (tuple, list, dict)) or type(p) in _REGISTRY


def broadcast_prefix(prefix, td: TreeDef, what: str, path: str, error, on_static=None):
    """Expand a pytree prefix (e.g. ``in_dims``) to one value per leaf of `td`.

    A non-container value in `prefix` applies to every leaf below it. A container
    must be the same kind of container as the value (a tuple for a tuple, a list
    for a list, the same namedtuple or registered class; a dict or OrderedDict for
    either, with the same keys). Raises `error` (an exception class) naming `path`
    when they disagree, as JAX and torch.func do. ``on_static(value_of_prefix,
    static_value, path)`` is called for each static value of `td`."""
    out = []

    def rec(p, t, here):
        if not _is_container(p):
            out.extend([p] * t.num_leaves)
            if on_static is not None:
                for keys, value in static_values(t):
                    on_static(p, value, here + "".join(keys))
            return
        kind = t.kind
        ok = False
        if kind == "tuple":
            ok = type(p) is tuple
        elif kind == "list":
            ok = type(p) is list
        elif kind in ("dict", "odict"):
            ok = isinstance(p, dict)
        elif kind == "namedtuple":
            ok = type(p) is t.meta
        elif kind == "custom":
            ok = type(p) is t.meta[0]
        if not ok:
            raise error(f"{what} at {here} is a {type(p).__name__}, but {here} is {_describe_node(t)}"
                        + (", not a container" if kind in ("leaf", "const", "none") else "")
                        + "; a container in it must be the same kind of container as the value "
                          "(or give one int or None for all of it)")
        if kind in ("dict", "odict"):
            if set(_sorted_keys(p)) != set(t.meta):
                raise error(f"{what} at {here} has keys {list(_sorted_keys(p))} but the value there is "
                            f"{_describe_node(t)}")
            for key, c in zip(t.meta, t.children):
                rec(p[key], c, f"{here}[{key!r}]")
            return
        kids = list(p) if kind != "custom" else _REGISTRY[t.meta[0]][0](p)[0]
        if len(kids) != len(t.children):
            raise error(f"{what} at {here} has {len(kids)} entries but the value there is {_describe_node(t)}")
        for key, pp, c in zip(_child_keys(t), kids, t.children):
            rec(pp, c, here + key)
    rec(prefix, td, path)
    return out
