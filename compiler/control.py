"""Structured control flow: ``vmapc.cond``, ``switch``, ``while_loop``, ``fori_loop``,
``scan`` and ``map``, after ``jax.lax``.

Python's own ``if`` and ``while`` cannot look at a traced value: while tracing, the
value does not exist yet. These functions take the branches and loop bodies as Python
functions instead, trace each one once at the types of its operands, and record one
equation that carries the traced functions as sub-programs (the ops of
:mod:`vmapc.ops.control`). Because the loop body is traced once, a loop of 10,000 steps
is as small in the IR as a loop of one, and because the branches are sub-programs,
``vmap`` can batch them like any other op (``rules/control.py``).

Tracing a branch or a body happens *inside* the enclosing trace: when the function
closes over a traced value of the enclosing function, that value becomes an extra
input of the sub-program (:meth:`~vmapc.tracing.TraceContext.capture`) and an extra
operand of the equation, so sub-programs stay closed.

Operands and carries are pytrees of arrays. The types must agree where the op needs them
to: every branch returns the same structure, shapes and dtypes, and a loop body returns
its carry with the structure, shapes and dtypes it came in with. A Python number is
weakly typed (NEP 50), as everywhere in vmapc: a branch returning ``0.0`` where the other
returns a float32 array returns a float32 zero, and a loop carry initialized with a Python
number takes the dtype the body gives it (``fori_loop(0, n, lambda i, s: s + x[i], 0.0)``
sums in ``x``'s dtype). Anything else raises :class:`~vmapc.errors.ControlFlowError` at
the user's call.

Outside any trace the functions work on arrays: they compile themselves for the CPU
(like ``vmapc.vmap`` on arrays) and run.

* ``cond(pred, true_fn, false_fn, *operands)``: ``pred`` a 0-d bool (or integer, where
  nonzero is true);
* ``switch(index, branches, *operands)``: ``index`` a 0-d integer, **clamped** into
  ``[0, len(branches) - 1]`` (as ``jax.lax.switch``: an out-of-range index runs the first
  or the last branch, it is not an error);
* ``while_loop(cond_fn, body_fn, init)``;
* ``fori_loop(lower, upper, body_fn, init)``: ``body_fn(i, carry)`` for ``i`` in
  ``range(lower, upper)``. With Python int bounds it is a ``scan`` (a known trip count:
  a ``for`` loop in the compiled code); with traced bounds a ``while_loop``;
* ``scan(f, init, xs, length=None, reverse=False)``: ``f(carry, x) -> (carry, y)`` over
  the leading axis of ``xs``; returns the final carry and the stacked ``y``;
* ``map(f, xs)``: ``f`` over the leading axis of ``xs``, stacked (a scan without a carry).
"""

from __future__ import annotations

import numpy as np

from . import dtypes as dt
from . import pytree
from .errors import ControlFlowError, NotCallableError, ShapeError, VmapcError
from .ir import Builder, Function, TensorType, Var
from .tracing import (ShapeDtype, Tracer, _is_python_number, abstractify, current, to_var, trace_flat,
                      user_loc)

_WEAK_DTYPES = {bool: dt.BOOL, int: dt.INT64, float: dt.FLOAT64}


# --- operands ----------------------------------------------------------------------------------

class _Aval:
    """What a sub-program input stands for: a type, and the Python number kind (bool, int,
    float) when it is weakly typed."""

    __slots__ = ("type", "weak")

    def __init__(self, type, weak=None):
        self.type, self.weak = type, weak

    def stand_in(self):
        """The argument a sub-program is traced with."""
        if self.weak is not None and self.type.dtype == _WEAK_DTYPES[self.weak]:
            return self.weak(0)
        return ShapeDtype(self.type.shape, self.type.dtype)


def _aval(x, what) -> _Aval:
    if isinstance(x, Tracer):
        return _Aval(x.ir_var.type, x.weak)
    t = abstractify(x, what)
    if t is None:       # a Python number
        kind = bool if isinstance(x, bool) else int if isinstance(x, int) else float
        return _Aval(TensorType((), _WEAK_DTYPES[kind]), kind)
    if isinstance(x, ShapeDtype):
        raise ControlFlowError(f"{what} is a shape spec ({x}); control flow needs values (arrays or "
                               "traced arrays)", user_loc())
    return _Aval(t)


def _operand(ctx, x, aval: _Aval, what) -> Var:
    """The IR value of an operand leaf in the enclosing trace, with the aval's dtype."""
    b = ctx.builder
    if isinstance(x, Tracer):
        v = to_var(ctx, x, what)
    elif _is_python_number(x):
        return b.constant(np.asarray(x, dtype=aval.type.dtype))
    else:
        v = ctx.constant(np.asarray(x))
    return b.convert(v, aval.type.dtype)


def _paths(tree, prefix):
    return pytree.leaf_paths(tree, prefix)


# --- tracing sub-programs ------------------------------------------------------------------------

class _Sub:
    """A traced sub-program: ``fn`` (inputs: its own leaves, then the values it captured),
    the enclosing trace's tracers it captured, its output structure and which outputs
    are weakly typed Python numbers."""

    def __init__(self, fn, captured, out_tree, out_weak):
        self.fn, self.captured, self.out_tree, self.out_weak = fn, captured, out_tree, out_weak

    @property
    def n_own(self):
        return len(self.fn.inputs) - len(self.captured)


def _trace_sub(fn, args, avals, what) -> _Sub:
    """Trace ``fn(*args)`` with each leaf of `args` replaced by its aval's stand-in."""
    if not callable(fn):
        raise NotCallableError(f"{what} must be a function, got {type(fn).__name__}", user_loc())
    raw = {}

    def traced(*a):
        raw["out"] = out = fn(*a)
        return out
    traced.__name__ = getattr(fn, "__name__", "body")
    _, tree = pytree.flatten(tuple(args))
    stand_ins = pytree.unflatten(tree, [a.stand_in() for a in avals])
    f, _, out_tree, _ = trace_flat(traced, stand_ins)
    out_leaves, _ = pytree.flatten(raw.get("out"))
    out_weak = [x.weak if isinstance(x, Tracer) else type(x) if _is_python_number(x) else None
                for x in out_leaves]
    out_weak = [bool if w is np.bool_ else w for w in out_weak]
    f.name = "body"
    return _Sub(f, list(getattr(f, "captured", [])), out_tree, out_weak)


def _rebuild(fn: Function, inputs=None, out_dtypes=None, name=None) -> Function:
    """`fn` with other inputs (the same vars, reordered or padded with unused ones) and
    outputs converted to `out_dtypes`."""
    b = Builder()
    b.eqns = list(fn.eqns)
    outs = list(fn.outputs)
    if out_dtypes is not None:
        outs = [b.convert(v, d) for v, d in zip(outs, out_dtypes)]
    return Function(fn.inputs if inputs is None else inputs, b.eqns, outs, name=name or fn.name)


def _consts_first(sub: _Sub) -> Function:
    """The sub-program with its captured values as its first inputs (a loop's constants)."""
    own, cap = sub.fn.inputs[:sub.n_own], sub.fn.inputs[sub.n_own:]
    return _rebuild(sub.fn, cap + own)


def _captured_vars(ctx, tracers) -> list:
    return [to_var(ctx, t, "a captured value") for t in tracers]


def _type_str(t: TensorType) -> str:
    return f"{dt.short_name(t.dtype)}[{','.join(str(d) for d in t.shape)}]"


# --- cond and switch -------------------------------------------------------------------------------

def _index(ctx, x, fname, what):
    """The IR value of a predicate or index: a 0-d bool or integer."""
    if isinstance(x, Tracer):
        v = to_var(ctx, x, what)
    elif isinstance(x, (bool, int, np.bool_, np.integer)) or (
            isinstance(x, np.ndarray) and x.dtype.kind in "biu" and x.ndim == 0):
        v = ctx.builder.constant(np.asarray(x))
    elif isinstance(x, (float, np.floating, np.ndarray)):
        arr = np.asarray(x)
        raise ControlFlowError(f"{fname}: the {what} must be a 0-d bool or integer, got a {arr.dtype} "
                               f"array of shape {arr.shape}", user_loc())
    else:
        raise ControlFlowError(f"{fname}: the {what} must be a 0-d bool or integer, got "
                               f"{type(x).__name__}", user_loc())
    if v.rank != 0 or v.dtype not in dt.KINDS["integer_or_bool"]:
        hint = " (reduce it first, e.g. with .any() or .all())" if v.rank else \
            " (compare it first, e.g. x > 0)" if dt.is_float(v.dtype) else ""
        raise ControlFlowError(f"{fname}: the {what} must be a 0-d bool or integer, got "
                               f"{_type_str(v.type)}{hint}", user_loc())
    return v


def _unify_outputs(fname, subs, names):
    """The dtype of each output of the branches: equal everywhere, except that weakly typed
    Python numbers take the dtype of the other branches. Raises ControlFlowError."""
    tree = subs[0].out_tree
    for s, name in zip(subs[1:], names[1:]):
        if s.out_tree != tree:
            raise ControlFlowError(f"{fname}: the branches return different structures: {names[0]} "
                                   f"returns {tree} and {name} returns {s.out_tree}", user_loc())
    paths = _paths(tree, "output")
    dtypes = []
    for j, p in enumerate(paths):
        ts = [s.fn.outputs[j].type for s in subs]
        shapes = {t.shape for t in ts}
        if len(shapes) > 1:
            detail = ", ".join(f"{n} returns {_type_str(t)}" for n, t in zip(names, ts))
            raise ControlFlowError(f"{fname}: the branches return different shapes for {p}: {detail}",
                                   user_loc())
        strong = {t.dtype for s, t in zip(subs, ts) if s.out_weak[j] is None}
        if len(strong) > 1 or (not strong and len({t.dtype for t in ts}) > 1 and
                               len({s.out_weak[j] for s in subs}) == 1):
            detail = ", ".join(f"{n} returns {_type_str(t)}" for n, t in zip(names, ts))
            raise ControlFlowError(f"{fname}: the branches return different dtypes for {p}: {detail}",
                                   user_loc())
        if strong:
            dtypes.append(strong.pop())
        else:   # Python numbers of different kinds: NumPy's promotion (bool < int < float)
            dtypes.append(dt.canonical(np.result_type(*[t.dtype for t in ts])))
    return dtypes


def _switch(fname, index, branches, operands):
    ctx = current()
    idx = _index(ctx, index, fname, "predicate" if fname == "vmapc.cond" else "index")
    leaves, tree = pytree.flatten(tuple(operands))
    avals = [_aval(x, f"operand {p}") for x, p in zip(leaves, _paths(tree, "operands"))]
    names = ["false_fn", "true_fn"] if fname == "vmapc.cond" else [f"branches[{k}]" for k in range(len(branches))]
    subs = [_trace_sub(f, operands, avals, f"{fname}: {n}") for f, n in zip(branches, names)]
    dtypes = _unify_outputs(fname, subs, names)
    # every branch takes the operands and the union of what the branches captured
    captured, seen = [], set()
    for s in subs:
        for t in s.captured:
            if id(t) not in seen:
                seen.add(id(t))
                captured.append(t)
    fns = []
    for s in subs:
        mine = {id(t): v for t, v in zip(s.captured, s.fn.inputs[s.n_own:])}
        extra = [mine[id(t)] if id(t) in mine else Var(t.ir_var.type) for t in captured]
        fns.append(_rebuild(s.fn, s.fn.inputs[:s.n_own] + extra, dtypes, name=f"branch{len(fns)}"))
    ins = [_operand(ctx, x, a, "an operand") for x, a in zip(leaves, avals)]
    outs = ctx.builder.emit_multi("cond", [idx] + ins + _captured_vars(ctx, captured), {"branches": tuple(fns)})
    weak = [subs[0].out_weak[j] if all(s.out_weak[j] is not None for s in subs) and
            dtypes[j] == _WEAK_DTYPES.get(subs[0].out_weak[j]) else None for j in range(len(outs))]
    return pytree.unflatten(subs[0].out_tree, [Tracer(v, ctx, weak=w) for v, w in zip(outs, weak)])


def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if `pred` else ``false_fn(*operands)``, traced as one op.

    `pred` is a 0-d bool (an integer counts as ``pred != 0``). Both functions take the
    operands (pytrees of arrays) and return the same structure, shapes and dtypes. Under
    ``vmap`` with a batched `pred`, both branches run for every example and each example
    keeps its own branch's result (see docs/control-flow.md)."""
    if current() is None:
        return _eager(lambda p, *ops: cond(p, true_fn, false_fn, *ops), pred, *operands)
    return _switch("vmapc.cond", pred, (false_fn, true_fn), operands)


def switch(index, branches, *operands):
    """``branches[index](*operands)``, traced as one op; `index` (a 0-d integer) is clamped
    into ``[0, len(branches) - 1]``, as ``jax.lax.switch`` does."""
    if isinstance(branches, (list, tuple)):
        branches = tuple(branches)
    else:
        raise ControlFlowError("vmapc.switch: branches must be a list or tuple of functions, got "
                               f"{type(branches).__name__}", user_loc())
    if not branches:
        raise ControlFlowError("vmapc.switch: branches is empty; give at least one function", user_loc())
    if current() is None:
        return _eager(lambda i, *ops: switch(i, branches, *ops), index, *operands)
    return _switch("vmapc.switch", index, branches, operands)


# --- loops ---------------------------------------------------------------------------------------

def _carry_avals(leaves, tree, what):
    return [_aval(x, f"{what} {p}") for x, p in zip(leaves, _paths(tree, what))]


def _fit_carry(fname, body: _Sub, out_leaves_tree, out_offset, avals, tree, what, rename=None):
    """Check a traced body's carry outputs against the carry: returns (the avals to retrace
    with, or None when they fit; the dtypes to convert the outputs to). `rename` (old, new)
    rewrites the start of the carry's paths in messages (fori_loop's counter is hidden)."""
    if out_leaves_tree != tree:
        raise ControlFlowError(f"{fname}: the body returns a carry of structure {out_leaves_tree}, but the "
                               f"{what} has structure {tree}", user_loc())
    retrace, dtypes = False, []
    new = list(avals)
    paths = _paths(tree, what)
    if rename is not None:
        paths = [rename[1] + p[len(rename[0]):] if p.startswith(rename[0]) else p for p in paths]
    for j, (a, p) in enumerate(zip(avals, paths)):
        out = body.fn.outputs[out_offset + j].type
        weak = body.out_weak[out_offset + j]
        if out.shape != a.type.shape:
            raise ControlFlowError(f"{fname}: the body changes the shape of the carry {p} from "
                                   f"{_type_str(a.type)} to {_type_str(out)}; a loop carry keeps its shape "
                                   "and dtype", user_loc())
        if out.dtype == a.type.dtype:
            dtypes.append(out.dtype)
        elif a.weak is not None and weak is None:    # a Python number takes the body's dtype
            new[j] = _Aval(out)
            retrace = True
            dtypes.append(out.dtype)
        elif weak is not None:                       # the body's Python number takes the carry's
            dtypes.append(a.type.dtype)
        else:
            raise ControlFlowError(f"{fname}: the body changes the dtype of the carry {p} from "
                                   f"{_type_str(a.type)} to {_type_str(out)}; a loop carry keeps its shape "
                                   "and dtype (convert it with .astype in the body or in the initial value)",
                                   user_loc())
    return (new if retrace else None), dtypes


def _weak_carry(avals, body: _Sub, offset=0):
    return [a.weak if a.weak is not None and body.out_weak[offset + j] is not None else None
            for j, a in enumerate(avals)]


def while_loop(cond_fn, body_fn, init_val, *, _fname="vmapc.while_loop", _rename=None):
    """``val = init_val; while cond_fn(val): val = body_fn(val)``; returns ``val``.

    `init_val` is a pytree of arrays; `body_fn` returns the same structure, shapes and
    dtypes; `cond_fn` returns a 0-d bool. Under ``vmap`` with a batched predicate the
    loop runs until every example is done, and each example's carry stops changing when
    its own predicate turns false (see docs/control-flow.md)."""
    if current() is None:
        return _eager(lambda v: while_loop(cond_fn, body_fn, v), init_val)
    fname = _fname
    ctx = current()
    leaves, tree = pytree.flatten(init_val)
    avals = _carry_avals(leaves, tree, "init_val")
    args = (pytree.unflatten(tree, leaves),)
    body = _trace_sub(body_fn, args, avals, f"{fname}: body_fn")
    new, dtypes = _fit_carry(fname, body, body.out_tree, 0, avals, tree, "init_val", _rename)
    if new is not None:     # a Python number in init_val took the body's dtype: trace again
        avals = new
        body = _trace_sub(body_fn, args, avals, f"{fname}: body_fn")
        _, dtypes = _fit_carry(fname, body, body.out_tree, 0, avals, tree, "init_val", _rename)
    c = _trace_sub(cond_fn, args, avals, f"{fname}: cond_fn")
    if len(c.fn.outputs) != 1 or c.fn.outputs[0].rank != 0 or c.fn.outputs[0].dtype not in dt.KINDS["integer_or_bool"]:
        got = ", ".join(_type_str(v.type) for v in c.fn.outputs) or "nothing"
        raise ControlFlowError(f"{fname}: cond_fn must return a 0-d bool, got {got}", user_loc())
    cond_fn_ir = _consts_first(c)
    if cond_fn_ir.outputs[0].dtype != dt.BOOL:      # an integer: nonzero is true
        b = Builder()
        b.eqns = list(cond_fn_ir.eqns)
        v = cond_fn_ir.outputs[0]
        out = b.emit("not_equal", v, b.constant(np.zeros((), v.dtype)))
        cond_fn_ir = Function(cond_fn_ir.inputs, b.eqns, [out], name="cond")
    cond_fn_ir.name = "cond"
    body_ir = _rebuild(_consts_first(body), out_dtypes=dtypes, name="body")
    init = [_operand(ctx, x, a, "init_val") for x, a in zip(leaves, avals)]
    outs = ctx.builder.emit_multi("while_loop", _captured_vars(ctx, c.captured) + _captured_vars(ctx, body.captured)
                                  + init, {"cond": cond_fn_ir, "body": body_ir})
    weak = _weak_carry(avals, body)
    return pytree.unflatten(tree, [Tracer(v, ctx, weak=w) for v, w in zip(outs, weak)])


def _is_static_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def fori_loop(lower, upper, body_fn, init_val):
    """``for i in range(lower, upper): val = body_fn(i, val)``; returns ``val``.

    With Python int bounds this is a :func:`scan` of ``upper - lower`` steps (a loop with a
    known trip count); with traced bounds (per-example trip counts) a :func:`while_loop`.
    ``i`` is a weakly typed integer, like a Python loop index."""
    if current() is None:
        if _is_static_int(lower) and _is_static_int(upper):
            return _eager(lambda v: fori_loop(lower, upper, body_fn, v), init_val)
        return _eager(lambda lo, hi, v: fori_loop(lo, hi, body_fn, v), lower, upper, init_val)
    if not callable(body_fn):
        raise NotCallableError(f"vmapc.fori_loop: body_fn must be a function, got {type(body_fn).__name__}",
                               user_loc())
    for name, x in (("lower", lower), ("upper", upper)):
        if not (_is_static_int(x) or isinstance(x, Tracer) or (isinstance(x, np.ndarray) and x.ndim == 0)):
            raise ControlFlowError(f"vmapc.fori_loop: {name} must be an integer, got {type(x).__name__}",
                                   user_loc())
        d = x.dtype if isinstance(x, (Tracer, np.ndarray)) else None
        if d is not None and (d not in dt.KINDS["int"] or len(x.shape) != 0):
            raise ControlFlowError(f"vmapc.fori_loop: {name} must be a 0-d integer, got "
                                   f"{_type_str(TensorType(x.shape, d))}", user_loc())
    lower, upper = (int(x) if isinstance(x, np.ndarray) else x for x in (lower, upper))
    if _is_static_int(lower) and _is_static_int(upper):
        lo, n = int(lower), max(int(upper) - int(lower), 0)

        def step(carry, _):
            i, val = carry
            return (i + 1, body_fn(i, val)), None
        (_, out), _ = scan(step, (lo, init_val), None, length=n, _fname="vmapc.fori_loop",
                           _rename=("init[1]", "init_val"))
        return out
    from . import numpy as vnp
    # the counter is a weakly typed int64, like a Python loop index (i * x keeps x's dtype)
    hi = vnp.astype(upper, dt.INT64)
    lo = int(lower) if _is_static_int(lower) else vnp.astype(lower, dt.INT64)
    if isinstance(lo, Tracer):
        lo = Tracer(lo.ir_var, lo.ctx, weak=int)

    def body(carry):
        i, val = carry
        return i + 1, body_fn(i, val)
    _, out = while_loop(lambda c: c[0] < hi, body, (lo, init_val), _fname="vmapc.fori_loop",
                        _rename=("init_val[1]", "init_val"))
    return out


def scan(f, init, xs=None, length=None, reverse=False, *, _fname="vmapc.scan", _rename=None):
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of `xs`; returns the final
    carry and the ``y`` s stacked along a new leading axis, as ``jax.lax.scan``.

    `xs` is a pytree of arrays sharing their leading size (or None, then `length` gives
    the number of steps); with ``reverse=True`` the steps run from the last slice to the
    first (the stacked ``y`` s stay in the order of the slices)."""
    if current() is None:
        return _eager(lambda c, x: scan(f, c, x, length=length, reverse=reverse), init, xs)
    fname = _fname
    ctx = current()
    if not isinstance(reverse, (bool, np.bool_)):
        raise ControlFlowError(f"{fname}: reverse must be True or False, got {reverse!r}", user_loc())
    x_leaves, x_tree = pytree.flatten(xs)
    x_paths = _paths(x_tree, "xs")
    lengths = []
    for x, p in zip(x_leaves, x_paths):
        shape = np.shape(x) if not isinstance(x, Tracer) else x.shape
        if len(shape) == 0:
            raise ShapeError(f"{fname}: {p} is a 0-d value; every leaf of xs needs a leading axis to scan "
                             "over", user_loc())
        lengths.append((p, shape[0]))
    if length is not None and (not _is_static_int(length) or length < 0):
        raise ShapeError(f"{fname}: length must be a non-negative int, got {length!r}", user_loc())
    sizes = {n for _, n in lengths} | ({int(length)} if length is not None else set())
    if len(sizes) > 1:
        detail = ", ".join(f"{p} has {n}" for p, n in lengths)
        if length is not None:
            detail += f", length={length}"
        raise ShapeError(f"{fname}: the inputs have different lengths along axis 0 ({detail})", user_loc())
    if not sizes:
        raise ShapeError(f"{fname}: xs has no arrays, so the number of steps is unknown; pass length=N",
                         user_loc())
    n = sizes.pop()
    c_leaves, c_tree = pytree.flatten(init)
    c_avals = _carry_avals(c_leaves, c_tree, "init")
    x_avals = []
    for x, p in zip(x_leaves, x_paths):
        a = _aval(x, p)
        x_avals.append(_Aval(TensorType(a.type.shape[1:], a.type.dtype)))
    args = (pytree.unflatten(c_tree, c_leaves), pytree.unflatten(x_tree, x_leaves))
    body = _trace_sub(f, args, c_avals + x_avals, f"{fname}: f")
    out = _split_pair(fname, body)
    new, dtypes = _fit_carry(fname, body, out[0], 0, c_avals, c_tree, "init", _rename)
    if new is not None:     # a Python number in init took the body's dtype: trace again
        c_avals = new
        body = _trace_sub(f, args, c_avals + x_avals, f"{fname}: f")
        out = _split_pair(fname, body)
        _, dtypes = _fit_carry(fname, body, out[0], 0, c_avals, c_tree, "init", _rename)
    n_carry = len(c_leaves)
    y_dtypes = [v.dtype for v in body.fn.outputs[n_carry:]]
    body_ir = _rebuild(_consts_first(body), out_dtypes=dtypes + y_dtypes, name="body")
    consts = _captured_vars(ctx, body.captured)
    ops = consts + [_operand(ctx, x, a, "init") for x, a in zip(c_leaves, c_avals)]
    ops += [_operand(ctx, x, _Aval(TensorType((n,) + a.type.shape, a.type.dtype)), "xs")
            for x, a in zip(x_leaves, x_avals)]
    outs = ctx.builder.emit_multi("scan", ops, {"body": body_ir, "length": n, "reverse": bool(reverse),
                                                "n_consts": len(consts), "n_carry": n_carry})
    weak = _weak_carry(c_avals, body)
    carry = pytree.unflatten(c_tree, [Tracer(v, ctx, weak=w) for v, w in zip(outs[:n_carry], weak)])
    ys = pytree.unflatten(out[1], [Tracer(v, ctx) for v in outs[n_carry:]])
    return carry, ys


def _split_pair(fname, body: _Sub):
    """The (carry, y) structures of a scan body's output."""
    t = body.out_tree
    if t.kind not in ("tuple", "list") or len(t.children) != 2:
        raise ControlFlowError(f"{fname}: f must return a pair (carry, y), got a value of structure {t}",
                               user_loc())
    return t.children[0], t.children[1]


def map(f, xs):  # noqa: A001  (vmapc.map, as jax.lax.map)
    """``f`` applied to each slice of `xs` along its leading axis, stacked: a :func:`scan`
    without a carry (one example at a time, where ``vmap`` would batch them)."""
    if current() is None:
        return _eager(lambda x: map(f, x), xs)
    if not callable(f):
        raise NotCallableError(f"vmapc.map: f must be a function, got {type(f).__name__}", user_loc())
    _, ys = scan(lambda c, x: (c, f(x)), (), xs)
    return ys


# --- outside a trace -------------------------------------------------------------------------------

def _eager(fn, *args):
    """Run a control-flow call on arrays: compiled for the CPU (IREE's compile cache makes
    a repeated call cheap)."""
    from .api import compile as _compile
    try:
        return _compile(fn)(*args)
    except VmapcError as err:
        raise err.with_loc(user_loc())
