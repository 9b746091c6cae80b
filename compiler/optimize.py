"""Simplifying IR before lowering.

Tracing and batching favour simple, local rules over tidy output: a rule may move
a batch axis with a transpose that the next rule moves back, NumPy's broadcasting
adds reshapes of scalars, and the same constant is captured many times. IREE
would clean most of this up, but a smaller program compiles faster and its MLIR
is easier to read. ``simplify`` runs a few rewrites to a fixed point:

* **fold chains**: ``reshape(reshape(x))`` is one reshape; ``transpose(transpose(x))``
  is one transpose (none if the permutations cancel); a reshape or transpose to
  the same shape disappears;
* **transposes into contractions**: a ``dot_general`` operand produced by a
  transpose reads the transpose's input instead, with its dims renumbered, when
  that keeps the order of the free dims (``q @ k.T`` contracts ``k`` directly);
* **common subexpressions**: equations with the same op, operands and attributes
  are computed once (constants included);
* **dead code**: equations nobody reads are dropped;
* **constants folded**: an equation whose operands are all known at compile time
  (literals, iotas and what is computed from them) is evaluated with the reference
  rules and replaced by a literal, when its result is small (at most
  ``FOLD_MAX_ELEMENTS``). Broadcasts and iotas stay: they are cheap and exact in
  IREE and folding them would only grow the module. IREE 3.13 miscompiles some
  reductions of constant data when its own constant evaluation is off (vmapc turns
  it off for modules that call libm): ``sum(k * k)`` of a broadcast constant ``k``
  gave 1 instead of 2. Folding them here is also what NumPy computes;
* **empty operands**: a ``concatenate`` drops operands with nothing along its axis;
* **algebraic identities** with a constant operand whose elements are all equal (what
  derivative programs are full of: the seed 1 of a gradient, the exponent 1 of the
  derivative of ``x ** 2``): ``x * 1`` and ``x ** 1`` are ``x``, ``x ** 2`` is
  ``square(x)`` (float ``power`` is a libm call), ``select`` with a constant condition is
  the branch it picks; each only where the result has ``x``'s type (nothing is
  broadcast away) and the identity is exact for every value, NaN and -0.0 included;
* **sub-programs** (loop bodies, branches) are simplified the same way, each on its own
  (their signatures stay); an equation carrying one is never folded here, since
  evaluating a loop could take as long as running it.

Every rewrite preserves each value's type, so the program's signature and the
batch-dim annotations of the values that survive are unchanged.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .ir import Eqn, Function, dead_code_elimination, has_subfunctions, map_subfunctions
from .shapes import is_static, prod
from .text import fmt_attr


def _compose(p1, p2):
    """transpose(transpose(x, p1), p2) == transpose(x, compose)."""
    return tuple(p1[i] for i in p2)


def _attr_key(e: Eqn):
    # the result types too: a constant's printed value says neither its dtype nor its shape
    return (e.op, tuple(id(v) for v in e.inputs),
            tuple((k, fmt_attr(v)) for k, v in sorted(e.attrs.items())),
            tuple(v.type for v in e.outputs))


def _fold_dot_operand(e: Eqn, side: int, perm) -> dict | None:
    """dot_general attrs reading transpose(x, perm)'s input directly, or None when that
    would reorder the free dims."""
    (lc, rc), (lb, rb) = e.attrs["contract"], e.attrs["batch"]
    c, b = (lc, lb) if side == 0 else (rc, rb)
    free = [i for i in range(len(perm)) if i not in c and i not in b]
    moved = [perm[i] for i in free]
    if moved != sorted(moved):
        return None
    c2, b2 = tuple(perm[i] for i in c), tuple(perm[i] for i in b)
    if side == 0:
        return {"contract": (c2, rc), "batch": (b2, rb)}
    return {"contract": (lc, c2), "batch": (lb, b2)}


FOLD_MAX_ELEMENTS = 1024       # a folded result becomes a literal of at most this many elements
KNOWN_MAX_ELEMENTS = 1 << 20   # the largest intermediate value computed while folding
_KEPT = ("constant", "iota", "broadcast_in_dim")


def fold_constants(fn: Function) -> tuple:
    """`fn` with its small compile-time-constant results as literals (see the module
    docstring), and whether anything changed. Output values keep their identity, so
    types and batch-dim annotations are unchanged."""
    known: dict = {}
    eqns = []
    changed = False
    for e in fn.eqns:
        sizes = [prod(v.shape) if is_static(v.shape) else None for v in e.outputs]
        if (not has_subfunctions(e) and all(v in known for v in e.inputs) and all(n is not None and n <= KNOWN_MAX_ELEMENTS for n in sizes)):
            try:
                with np.errstate(all="ignore"):
                    values = reference.apply(e, [known[v] for v in e.inputs])
            except Exception:        # the reference cannot evaluate it: IREE will
                values = None
            if values is not None:
                known.update(zip(e.outputs, values))
                if e.op not in _KEPT and all(n <= FOLD_MAX_ELEMENTS for n in sizes):
                    eqns.extend(Eqn("constant", [], [v], {"value": np.array(x, order="C")}, e.loc)
                                for v, x in zip(e.outputs, values))
                    changed = True
                    continue
        eqns.append(e)
    if not changed:
        return fn, False
    return Function(fn.inputs, eqns, fn.outputs, fn.name, fn.arg_names, fn.bdims), True


def _splat(v, producer):
    """The one value of every element of `v` when it is a constant (or a broadcast of
    one) whose elements are all equal; else None."""
    e = producer.get(v)
    if e is not None and e.op == "broadcast_in_dim":
        e = producer.get(e.inputs[0])
    if e is None or e.op != "constant" or e.attrs["value"].size == 0:
        return None
    x = e.attrs["value"].reshape(-1)
    if not np.all(x == x[0]):
        return None
    return x[0].item()


def _identity(op, ins, out, producer):
    """An algebraic identity of the module docstring: the var that the result equals,
    or ``(op, ins)`` to compute it with, or None."""
    if op == "multiply":
        for a, b in (ins, ins[::-1]):
            if a.type == out.type and _splat(b, producer) == 1:
                return a
    elif op == "power" and ins[0].type == out.type:
        c = _splat(ins[1], producer)
        if c == 1:
            return ins[0]
        if c == 2:
            return ("square", [ins[0]])
    elif op == "select":
        c = _splat(ins[0], producer)
        if c is not None:
            pick = ins[1] if c else ins[2]
            if pick.type == out.type:
                return pick
    return None


def _simplify_once(fn: Function) -> tuple:
    producer: dict = {}
    replace: dict = {}
    seen: dict = {}
    eqns = []
    changed = False

    def get(v):
        while v in replace:
            v = replace[v]
        return v

    for e in fn.eqns:
        ins = [get(v) for v in e.inputs]
        op, attrs = e.op, dict(e.attrs)
        if op in ("reshape", "transpose") and ins[0].type == e.outputs[0].type and (
                op == "reshape" or attrs["perm"] == tuple(range(len(attrs["perm"])))):
            replace[e.outputs[0]] = ins[0]
            changed = True
            continue
        if op == "concatenate" and any(v.shape[attrs["axis"]] == 0 for v in ins):
            nonempty = [v for v in ins if v.shape[attrs["axis"]] != 0]
            if len(nonempty) == 1:
                replace[e.outputs[0]] = nonempty[0]
                changed = True
                continue
            if nonempty:
                ins, changed = nonempty, True
        same = _identity(op, ins, e.outputs[0], producer) if op in ("multiply", "power", "select") else None
        if isinstance(same, tuple):
            (op, ins), changed = same, True
        elif same is not None:
            replace[e.outputs[0]] = same
            changed = True
            continue
        src = producer.get(ins[0]) if ins else None
        if op == "reshape" and src is not None and src.op == "reshape":
            ins, changed = [src.inputs[0]], True
        elif op == "transpose" and src is not None and src.op == "transpose":
            perm = _compose(src.attrs["perm"], attrs["perm"])
            ins, changed = [src.inputs[0]], True
            if perm == tuple(range(len(perm))):
                replace[e.outputs[0]] = ins[0]
                continue
            attrs["perm"] = perm
        elif op == "dot_general":
            for side in (0, 1):
                p = producer.get(ins[side])
                if p is not None and p.op == "transpose":
                    new = _fold_dot_operand(Eqn(op, ins, e.outputs, attrs), side, p.attrs["perm"])
                    if new is not None:
                        attrs.update(new)
                        ins[side] = p.inputs[0]
                        changed = True
        ne = Eqn(op, ins, e.outputs, attrs, e.loc)
        key = _attr_key(ne)
        hit = seen.get(key)
        if hit is not None and len(hit.outputs) == len(ne.outputs):
            for a, b in zip(ne.outputs, hit.outputs):
                replace[a] = b
            changed = True
            continue
        seen[key] = ne
        for v in ne.outputs:
            producer[v] = ne
        eqns.append(ne)
    outputs = [get(v) for v in fn.outputs]
    bdims = None
    if fn.bdims is not None:
        bdims = dict(fn.bdims)
        for old in replace:
            if old in bdims:
                bdims.setdefault(get(old), bdims[old])
    return Function(fn.inputs, eqns, outputs, fn.name, fn.arg_names, bdims), changed


def simplify(fn: Function, max_rounds: int = 8) -> Function:
    """`fn` with the rewrites of the module docstring applied until nothing changes."""
    out = _simplify_subfunctions(fn, max_rounds)
    for _ in range(max_rounds):
        out, folded = fold_constants(out)
        out, changed = _simplify_once(out)
        changed = changed or folded
        out = dead_code_elimination(out)
        if not changed:
            break
    for attr in ("in_tree", "out_tree"):
        if hasattr(fn, attr):
            setattr(out, attr, getattr(fn, attr))
    return out


def _simplify_subfunctions(fn: Function, max_rounds: int) -> Function:
    if not any(has_subfunctions(e) for e in fn.eqns):
        return fn
    eqns = [Eqn(e.op, e.inputs, e.outputs, map_subfunctions(e, lambda f: simplify(f, max_rounds)), e.loc)
            if has_subfunctions(e) else e for e in fn.eqns]
    return Function(fn.inputs, eqns, fn.outputs, fn.name, fn.arg_names, fn.bdims)
