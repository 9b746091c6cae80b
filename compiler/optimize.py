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
  evaluating a loop could take as long as running it;
* **across sub-programs** (:func:`simplify_control`): a ``cond`` whose index is a constant
  (or that has one branch) is replaced by that branch; a small constant operand moves into
  the sub-programs that read it (where it can fold); operands no sub-program reads, results
  nobody reads and loop carries that only feed themselves are dropped.

Every rewrite preserves each value's type, so the program's signature and the
batch-dim annotations of the values that survive are unchanged.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .ir import Eqn, Function, dead_code_elimination, has_subfunctions, map_subfunctions, used_vars
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
        out, across = simplify_control(out)
        if across:      # sub-programs gained constants or lost outputs: simplify them again
            out = _simplify_subfunctions(out, max_rounds)
        changed = changed or folded or across
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


# --- across sub-programs ---------------------------------------------------------------------------

def simplify_control(fn: Function) -> tuple:
    """Rewrites across the boundary of the control-flow ops' sub-programs (see the module
    docstring): a ``cond`` with a constant index (or one branch) becomes that branch; small
    constant operands move into the sub-programs that read them; operands no sub-program
    reads, results nobody reads (a ``cond``'s, a ``scan``'s ``ys``) and loop carries that
    only feed themselves are dropped. Returns (function, whether anything changed)."""
    producer = {v: e for e in fn.eqns for v in e.outputs}
    used = used_vars(fn)
    replace: dict = {}
    eqns, changed = [], False
    for e in fn.eqns:
        e = Eqn(e.op, [replace.get(v, v) for v in e.inputs], e.outputs, e.attrs, e.loc)
        if e.op == "cond":
            inlined = _inline_constant_cond(e, producer)
            if inlined is not None:
                new_eqns, outs = inlined
                eqns.extend(new_eqns)
                replace.update(zip(e.outputs, outs))
                changed = True
                continue
        rule = _ACROSS.get(e.op)
        if rule is not None:
            new = rule(e, producer, used)
            if new is not None:
                e, changed = new, True
        eqns.append(e)
    if not changed:
        return fn, False
    outputs = [replace.get(v, v) for v in fn.outputs]
    bdims = None
    if fn.bdims is not None:
        bdims = dict(fn.bdims)
        for old, new in replace.items():
            if old in bdims:
                bdims.setdefault(new, bdims[old])
    return Function(fn.inputs, eqns, outputs, fn.name, fn.arg_names, bdims), True


def _constant_value(v, producer):
    e = producer.get(v)
    if e is not None and e.op == "constant" and e.outputs[0].type.shape == np.shape(e.attrs["value"]) \
            and np.size(e.attrs["value"]) <= FOLD_MAX_ELEMENTS:
        return e.attrs["value"]
    return None


def _inline_constant_cond(e: Eqn, producer):
    """(equations, outputs) running the branch a constant index picks, or None."""
    from .reference.control import clamp_index
    branches = e.attrs["branches"]
    index = _constant_value(e.inputs[0], producer)
    if index is None and len(branches) > 1:
        return None
    f = branches[0] if index is None else branches[clamp_index(index, len(branches))]
    from .ir import Builder
    b = Builder()
    outs = b.inline(f, e.inputs[1:])
    return b.eqns, outs


def _sub(fn: Function, inputs=None, eqns=None, outputs=None) -> Function:
    return dead_code_elimination(Function(fn.inputs if inputs is None else inputs,
                                          fn.eqns if eqns is None else eqns,
                                          fn.outputs if outputs is None else outputs, fn.name))


def _internalize(fn: Function, keep, values) -> Function:
    """`fn` keeping the inputs flagged in `keep`; each dropped input with a value in
    `values` becomes a constant equation at the start."""
    consts = [Eqn("constant", [], [v], {"value": np.array(values[i], order="C")})
              for i, v in enumerate(fn.inputs) if not keep[i] and values[i] is not None]
    return _sub(fn, [v for v, k in zip(fn.inputs, keep) if k], consts + list(fn.eqns))


def _reads(fn: Function) -> list:
    """For each input of `fn`: does anything read it?"""
    u = used_vars(fn)
    return [id(v) in u for v in fn.inputs]


def _cond_across(e: Eqn, producer, used):
    branches = e.attrs["branches"]
    ops = e.inputs[1:]
    values = [_constant_value(v, producer) for v in ops]
    reads = [any(r) for r in zip(*[_reads(f) for f in branches])] if ops else []
    keep_in = [r and val is None for r, val in zip(reads, values)]
    keep_out = [id(v) in used for v in e.outputs]
    if all(keep_in) and all(keep_out):
        return None
    new = tuple(_internalize(_sub(f, outputs=[v for v, k in zip(f.outputs, keep_out) if k]), keep_in, values)
                for f in branches)
    return Eqn("cond", [e.inputs[0]] + [v for v, k in zip(ops, keep_in) if k],
               [v for v, k in zip(e.outputs, keep_out) if k], {"branches": new}, e.loc)


def _needed(fn: Function, outputs) -> set:
    """ids of the inputs of `fn` that the outputs at positions `outputs` depend on."""
    live = {id(fn.outputs[j]) for j in outputs}
    for q in reversed(fn.eqns):
        if any(id(v) in live for v in q.outputs):
            live.update(id(v) for v in q.inputs)
    return {id(v) for v in fn.inputs if id(v) in live}


def _dead_carries(n_carry, carry_in, body, body_offset, cond_reads, out_used):
    """Which carries to keep: a carry stays if its result is read, the predicate reads it,
    or a carry that stays needs it (iterated)."""
    keep = [out_used[k] or cond_reads[k] for k in range(n_carry)]
    while True:
        need = _needed(body, [body_offset + k for k in range(n_carry) if keep[k]]
                       + list(range(n_carry + body_offset, len(body.outputs))))
        new = [keep[k] or id(carry_in[k]) in need for k in range(n_carry)]
        if new == keep:
            return keep
        keep = new


def _while_across(e: Eqn, producer, used):
    from .ops.control import while_split
    cond, body = e.attrs["cond"], e.attrs["body"]
    nc, nb, n = while_split(cond, body, len(e.inputs))
    cc, bc, init = e.inputs[:nc], e.inputs[nc:nc + nb], e.inputs[nc + nb:]
    cond_reads, body_reads = _reads(cond), _reads(body)
    keep_carry = _dead_carries(n, body.inputs[nb:], body, 0, cond_reads[nc:], [id(v) in used for v in e.outputs])
    cv = [_constant_value(v, producer) for v in cc]
    bv = [_constant_value(v, producer) for v in bc]
    keep_cc = [r and v is None for r, v in zip(cond_reads[:nc], cv)]
    keep_bc = [r and v is None for r, v in zip(body_reads[:nb], bv)]
    if all(keep_carry) and all(keep_cc) and all(keep_bc):
        return None
    body = _sub(body, outputs=[v for v, k in zip(body.outputs, keep_carry) if k])
    new_cond = _internalize(cond, keep_cc + keep_carry, cv + [None] * n)
    new_body = _internalize(body, keep_bc + keep_carry, bv + [None] * n)
    ins = ([v for v, k in zip(cc, keep_cc) if k] + [v for v, k in zip(bc, keep_bc) if k]
           + [v for v, k in zip(init, keep_carry) if k])
    return Eqn("while_loop", ins, [v for v, k in zip(e.outputs, keep_carry) if k],
               {"cond": new_cond, "body": new_body}, e.loc)


def _scan_across(e: Eqn, producer, used):
    a = e.attrs
    body, nk, n = a["body"], a["n_consts"], a["n_carry"]
    consts, init, xs = e.inputs[:nk], e.inputs[nk:nk + n], e.inputs[nk + n:]
    out_used = [id(v) in used for v in e.outputs]
    keep_y = out_used[n:]
    body_y = _sub(body, outputs=body.outputs[:n] + [v for v, k in zip(body.outputs[n:], keep_y) if k])
    keep_carry = _dead_carries(n, body_y.inputs[nk:nk + n], body_y, 0, [False] * n, out_used[:n])
    reads = _reads(body_y)
    kv = [_constant_value(v, producer) for v in consts]
    keep_k = [r and v is None for r, v in zip(reads[:nk], kv)]
    keep_x = reads[nk + n:]
    if all(keep_y) and all(keep_carry) and all(keep_k) and all(keep_x):
        return None
    n_y = sum(keep_y)
    body_y = _sub(body_y, outputs=[v for v, k in zip(body_y.outputs[:n], keep_carry) if k] + body_y.outputs[n:])
    new_body = _internalize(body_y, keep_k + keep_carry + keep_x, kv + [None] * (n + len(xs)))
    ins = ([v for v, k in zip(consts, keep_k) if k] + [v for v, k in zip(init, keep_carry) if k]
           + [v for v, k in zip(xs, keep_x) if k])
    outs = [v for v, k in zip(e.outputs[:n], keep_carry) if k] + [v for v, k in zip(e.outputs[n:], keep_y) if k]
    assert len(outs) == sum(keep_carry) + n_y
    return Eqn("scan", ins, outs, {"body": new_body, "length": a["length"], "reverse": a["reverse"],
                                   "n_consts": sum(keep_k), "n_carry": sum(keep_carry)}, e.loc)


_ACROSS = {"cond": _cond_across, "while_loop": _while_across, "scan": _scan_across}
