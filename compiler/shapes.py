"""Shapes, with named symbols for dynamic batch sizes.

A shape is a tuple of dims. A dim is a Python ``int`` or a :class:`Sym`: a product
of an integer coefficient and named symbols, such as ``B`` or ``8*B``. Symbols only
appear through batching with ``batch="dynamic"``: a user's function is always
traced at static per-example shapes, and the vmap pass adds the symbolic batch
dim. Folding that batch into another dim (a matmul's M, a reshape) multiplies it
(``8*B``); splitting it back divides.

Symbols are treated as unknown positive sizes that are never 1, so broadcasting
never applies to them.
"""

from __future__ import annotations

import re
from typing import Union


class Sym:
    """A symbolic dim: ``coef * name1 * name2 * ...``."""

    __slots__ = ("coef", "names")

    def __init__(self, names, coef: int = 1):
        if isinstance(names, str):
            names = (names,)
        self.names = tuple(sorted(names))
        self.coef = int(coef)
        if not self.names or self.coef < 1:
            raise ValueError("a symbolic dim needs a name and a positive coefficient")

    def __mul__(self, other):
        if isinstance(other, Sym):
            return Sym(self.names + other.names, self.coef * other.coef)
        if isinstance(other, int):
            if other == 0:
                return 0
            return Sym(self.names, self.coef * other)
        return NotImplemented

    __rmul__ = __mul__

    def divisible_by(self, other) -> bool:
        if isinstance(other, int):
            return other != 0 and self.coef % other == 0
        if isinstance(other, Sym):
            rest = list(self.names)
            for n in other.names:
                if n not in rest:
                    return False
                rest.remove(n)
            return self.coef % other.coef == 0
        return False

    def __floordiv__(self, other):
        if not self.divisible_by(other):
            raise ValueError(f"{self} is not divisible by {other}")
        if isinstance(other, int):
            return Sym(self.names, self.coef // other)
        rest = list(self.names)
        for n in other.names:
            rest.remove(n)
        coef = self.coef // other.coef
        return Sym(rest, coef) if rest else coef

    def __eq__(self, other):
        return isinstance(other, Sym) and (self.names, self.coef) == (other.names, other.coef)

    def __hash__(self):
        return hash((self.names, self.coef))

    def __repr__(self):
        return f"Sym({self.names!r}, {self.coef})"

    def __str__(self):
        parts = ([str(self.coef)] if self.coef != 1 else []) + list(self.names)
        return "*".join(parts)

    def resolve(self, bindings: dict) -> int:
        """The concrete size once each symbol's value is known."""
        v = self.coef
        for n in self.names:
            v *= bindings[n]
        return v


Dim = Union[int, Sym]
Shape = tuple


def is_static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def prod(dims) -> Dim:
    """Product of dims; symbolic if any of them is."""
    out = 1
    sym = None
    for d in dims:
        if isinstance(d, Sym):
            sym = d if sym is None else sym * d
        else:
            out *= d
    if sym is None:
        return out
    return sym * out


def resolve(shape, bindings: dict) -> tuple:
    return tuple(d.resolve(bindings) if isinstance(d, Sym) else d for d in shape)


def dim_str(d: Dim) -> str:
    return str(d)


_DIM_RE = re.compile(r"^(?:(\d+)\*)?([A-Za-z_]\w*(?:\*[A-Za-z_]\w*)*)$")


def parse_dim(text: str) -> Dim:
    text = text.strip()
    if text.isdigit():
        return int(text)
    m = _DIM_RE.match(text)
    if not m:
        raise ValueError(f"bad dim {text!r}")
    coef = int(m.group(1)) if m.group(1) else 1
    return Sym(m.group(2).split("*"), coef)


def symbols(shape) -> set:
    out = set()
    for d in shape:
        if isinstance(d, Sym):
            out.update(d.names)
    return out


def bind(shape, concrete, bindings: dict) -> bool:
    """Match a (possibly symbolic) shape against a concrete one, adding the value of
    each plain symbol (coefficient 1, one name) to `bindings`. Returns False on a
    mismatch. Dims with a product of symbols are checked after binding."""
    if len(shape) != len(concrete):
        return False
    for d, c in zip(shape, concrete):
        if isinstance(d, Sym) and len(d.names) == 1 and d.names[0] not in bindings:
            if c % d.coef:
                return False
            bindings[d.names[0]] = c // d.coef
    for d, c in zip(shape, concrete):
        if isinstance(d, Sym):
            if not set(d.names) <= set(bindings) or d.resolve(bindings) != c:
                return False
        elif d != c:
            return False
    return True


def broadcast_shapes(*shapes, what: str = "operands") -> tuple:
    """NumPy broadcasting of shapes (right-aligned; 1 stretches). Raises ValueError."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        size = 1
        for d in dims:
            if d == 1:
                continue
            if size == 1:
                size = d
            elif d != size:
                raise ValueError(
                    f"{what} could not be broadcast together with shapes "
                    + " ".join("(" + ",".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"
                               for s in shapes))
        out.append(size)
    return tuple(out)


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not isinstance(axis, (int,)) or isinstance(axis, bool):
        raise TypeError(f"{what} must be an integer, got {axis!r}")
    if not -rank <= axis < rank:
        raise IndexError(f"{what} {axis} is out of bounds for an array of rank {rank} "
                         f"(valid: {-rank}..{rank - 1})" if rank else
                         f"{what} {axis} is out of bounds for a 0-d array")
    return axis % rank


def static_size(shape) -> int:
    p = prod(shape)
    if isinstance(p, Sym):
        raise ValueError("shape is symbolic")
    return p
