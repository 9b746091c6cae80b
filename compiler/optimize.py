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
* **dead code**: equations nobody reads are dropped.

Every rewrite preserves each value's type, so the program's signature and the
batch-dim annotations of the values that survive are unchanged.
"""

from __future__ import annotations

from .ir import Eqn, Function, dead_code_elimination
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
    out = fn
    for _ in range(max_rounds):
        out, changed = _simplify_once(out)
        out = dead_code_elimination(out)
        if not changed:
            break
    for attr in ("in_tree", "out_tree"):
        if hasattr(fn, attr):
            setattr(out, attr, getattr(fn, attr))
    return out
