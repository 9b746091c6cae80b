"""Custom ops: a function of the user's that vmapc treats as one op, with its own
batching rule, derivatives and lowering (after ``jax.custom_vmap``/``custom_jvp``/
``custom_vjp`` and ``torch.library``).

``@vmapc.custom_op`` wraps a function written with vmapc/NumPy operations. Called inside a
trace, it traces the function once (its **body**) and records one equation,
``custom[name, body](*args)``; called on arrays, it compiles itself and runs, like
``vmapc.cond``. By default the op behaves exactly as its body would inline: it is batched,
differentiated and lowered as the body. Then, each optional:

* ``op.def_vmap(rule)``: how a batch of the op runs. ``rule(axis_size, in_dims, *args)
  -> (outs, out_dims)``, the contract of vmapc's own rules (``rules/README.md``) at the
  level of arrays: each argument arrives with its batch axis where ``in_dims`` says (an
  int, or None for an argument every example shares), and the rule returns the outputs
  and where it put their batch axis. ``op.def_vmap(rule, front=True)`` is the simple
  flavour (``jax.custom_vmap``'s): ``rule(axis_size, in_batched, *args) -> (outs,
  out_batched)``, with every batched argument's batch axis first and flags instead of
  positions. ``op.def_vmap(rule, ir=True)`` takes an IR-level rule, ``rule(builder, args,
  bdims) -> (outs, out_bdims)``, exactly as the internal rules are written;
* ``op.def_jvp(rule)``: forward mode, ``rule(primals, tangents) -> (outs, tangent_outs)``;
* ``op.def_vjp(rule)``: reverse mode, ``rule(primals, outs, cts) -> cts of the args``
  (vmapc keeps every forward value, so the rule reads the primals and the outputs
  directly: there are no residuals to save);
* ``op.def_lowering(rule)``: ``rule(lctx, eqn, operands) -> [mlir values]``, written with
  the :class:`~vmapc.lowering.LoweringContext` the internal lowerings use.

The rules written with arrays (all but ``ir=True`` and the lowering) are traced like any
vmapc function, at the types the op meets, each time the op is batched or differentiated;
they must not close over values of an enclosing trace. A rule's results are checked
against the op: a wrong number of outputs, a wrong shape, dtype or batch dim raises
:class:`~vmapc.errors.CustomOpError` naming the op, never a wrong answer.

Which rule applies is looked up by the op's name in :data:`REGISTRY` when the equation is
batched, differentiated or lowered. A program read from a ``.vir`` file in a process where
the op was never defined still works through its body, and :class:`~vmapc.errors.
CustomOpWarning` says so, once per name. Under ``vmap`` an op without a batching rule
becomes its batched body (the op's derivative rules then no longer apply to it, which
differentiating before batching, ``vmap(grad(f))``, avoids); an op *with* a rule
becomes what the rule emits.

``vmapc.testing.check_batching_rule`` runs a rule through the sweep vmapc's own rules
pass, and ``vmapc.testing.check_grads`` checks derivative rules against finite
differences of the body.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from . import pytree
from .errors import CustomOpError, CustomOpWarning, VmapcError
from .ir import Function, Var

REGISTRY: dict = {}
_WARNED: set = set()


def lookup(name: str):
    """The registered :class:`CustomOp` called `name`, or None (then the body is used,
    and a :class:`~vmapc.errors.CustomOpWarning` says so, once per name)."""
    op = REGISTRY.get(name)
    if op is None and name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(f"custom op {name!r} is not defined in this process (its Python definition was not "
                      "imported), so vmapc uses the body the program carries: the op's own batching rule, "
                      "derivatives and lowering do not apply", CustomOpWarning, stacklevel=2)
    return op


def custom_op(fn=None, *, name: str | None = None):
    """Define a custom op from `fn` (see the module docstring). Use as ``@vmapc.custom_op``,
    ``@vmapc.custom_op("mylib.name")`` or ``@vmapc.custom_op(name="mylib.name")``; the
    default name is the function's module and qualified name. Defining an op again under
    the same name replaces the earlier definition."""
    if isinstance(fn, str):
        name, fn = fn, None
    if fn is None:
        return lambda f: CustomOp(f, name)
    return CustomOp(fn, name)


class CustomOp:
    """A user-defined op; made by :func:`custom_op`."""

    def __init__(self, fn, name=None):
        if not callable(fn):
            raise CustomOpError(f"vmapc.custom_op: expected a function, got {type(fn).__name__}")
        if name is None:
            name = f"{getattr(fn, '__module__', None) or 'user'}.{getattr(fn, '__qualname__', 'op')}"
        if not isinstance(name, str) or not name or any(c in name for c in '"\\\n'):
            raise CustomOpError(f"vmapc.custom_op: the name must be a non-empty string without quotes, "
                                f"backslashes or newlines, got {name!r}")
        self.fn = fn
        self.name = name
        self.vmap_rule = None
        self.vmap_kind = None          # "dims", "front" or "ir"
        self.jvp_rule = None
        self.vjp_rule = None
        self.lowering = None
        functools.update_wrapper(self, fn)
        REGISTRY[name] = self
        _WARNED.discard(name)

    def __repr__(self):
        return f"<vmapc.custom_op {self.name}>"

    # -- registration --------------------------------------------------------------------------

    def def_vmap(self, rule=None, *, front: bool = False, ir: bool = False):
        """Attach a batching rule (usable as a decorator, with or without the keywords);
        returns the rule."""
        if rule is None:
            return lambda r: self.def_vmap(r, front=front, ir=ir)
        self._check_rule(rule, "def_vmap")
        if front and ir:
            raise CustomOpError(f"custom op {self.name}: def_vmap takes front=True or ir=True, not both")
        self.vmap_rule, self.vmap_kind = rule, "front" if front else "ir" if ir else "dims"
        return rule

    def def_jvp(self, rule):
        """Attach a forward-mode rule ``rule(primals, tangents) -> (outs, tangent_outs)``."""
        self._check_rule(rule, "def_jvp")
        self.jvp_rule = rule
        return rule

    def def_vjp(self, rule):
        """Attach a reverse-mode rule ``rule(primals, outs, cts) -> cotangents of the args``."""
        self._check_rule(rule, "def_vjp")
        self.vjp_rule = rule
        return rule

    def def_lowering(self, rule):
        """Attach an MLIR lowering ``rule(lctx, eqn, operands) -> [values]``."""
        self._check_rule(rule, "def_lowering")
        self.lowering = rule
        return rule

    def _check_rule(self, rule, what):
        if not callable(rule):
            raise CustomOpError(f"custom op {self.name}: {what} expects a function, got {type(rule).__name__}")

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        from . import control
        from .tracing import Tracer, current, user_loc
        if kwargs:
            raise CustomOpError(f"custom op {self.name}: takes positional array arguments only, got keyword "
                                f"arguments {sorted(kwargs)}", user_loc())
        if current() is None:
            return control._eager(lambda *a: self(*a), *args)
        ctx = current()
        avals = []
        for i, x in enumerate(args):
            leaves, tree = pytree.flatten(x)
            if tree != pytree.LEAF:
                raise CustomOpError(f"custom op {self.name}: argument {i} is {tree}; a custom op takes arrays "
                                    "(or Python numbers), one per argument", user_loc())
            avals.append(control._aval(x, f"custom op {self.name}: argument {i}"))
        sub = control._trace_sub(self.fn, args, avals, f"custom op {self.name}")
        if sub.captured:
            raise CustomOpError(f"custom op {self.name}: its function uses {len(sub.captured)} traced value(s) "
                                "of the enclosing function through a closure; pass them as arguments", user_loc())
        if getattr(sub.fn, "mutated", ()):
            raise CustomOpError(f"custom op {self.name}: its function writes into its arguments; return the "
                                "new values instead", user_loc())
        body = Function(sub.fn.inputs, sub.fn.eqns, sub.fn.outputs, name="body")
        ins = [control._operand(ctx, x, a, f"argument {i}") for i, (x, a) in enumerate(zip(args, avals))]
        outs = ctx.builder.emit_multi("custom", ins, {"name": self.name, "body": body})
        return pytree.unflatten(sub.out_tree, [Tracer(v, ctx, weak=w) for v, w in zip(outs, sub.out_weak)])


# --- applying the registered rules (called by the rule tables) --------------------------------------

def trace_rule(name: str, fn, types, what: str):
    """Trace ``fn(*tracers)`` at `types` into a Function (outputs: the flattened result, with
    Python None leaves left out); ``fn.none`` lists which positions were None."""
    from .tracing import TraceContext, Tracer, to_var
    ins = [Var(t) for t in types]
    with TraceContext() as ctx:
        res = fn(*[Tracer(v, ctx) for v in ins])
        items = list(res) if isinstance(res, (list, tuple)) else [res]
        outs, none = [], []
        for j, r in enumerate(items):
            if r is None:
                none.append(j)
                continue
            try:
                outs.append(to_var(ctx, r, f"custom op {name}: {what} result {j}"))
            except VmapcError as err:
                raise CustomOpError(f"custom op {name}: {what} result {j}: {err.message}") from None
        captured = list(ctx.captured)
    if captured:
        raise CustomOpError(f"custom op {name}: its {what} uses traced values of an enclosing function "
                            "through a closure; a rule may only use its arguments")
    f = Function(ins, ctx.builder.eqns, outs, name=what.replace(" ", "_"))
    f.none = none
    f.count = len(items)
    return f


def apply_vmap(op: CustomOp, b, args, bdims, size, want_types):
    """Run `op`'s batching rule on batched operands: (outs, out_bdims), checked against
    `want_types` (the unbatched result types). Raises CustomOpError naming the op."""
    from vmapc.rules.helpers import move_bdim_to_front
    name = op.name
    if op.vmap_kind == "ir":
        res = op.vmap_rule(b, list(args), list(bdims))
        try:
            outs, out_ds = res
        except (TypeError, ValueError):
            raise CustomOpError(f"custom op {name}: its batching rule must return (outs, out_bdims), got "
                                f"{type(res).__name__}") from None
        outs, out_ds = list(outs), list(out_ds)
    else:
        if op.vmap_kind == "front":
            args = [move_bdim_to_front(b, x, d) for x, d in zip(args, bdims)]
            info = tuple(d is not None for d in bdims)
        else:
            info = tuple(bdims)
        got = {}

        def wrapper(*xs):
            res = op.vmap_rule(size, info, *xs)
            if not (isinstance(res, tuple) and len(res) == 2):
                raise CustomOpError(f"custom op {name}: its batching rule must return a pair (outs, "
                                    f"{'out_batched' if op.vmap_kind == 'front' else 'out_dims'}), got "
                                    f"{type(res).__name__}")
            outs, dims = res
            single = not isinstance(outs, (list, tuple))
            got["dims"] = [dims] if single and not isinstance(dims, (list, tuple)) else dims
            return [outs] if single else list(outs)
        f = trace_rule(name, wrapper, [x.type for x in args], "batching rule")
        if f.none:
            raise CustomOpError(f"custom op {name}: its batching rule returned None for output {f.none[0]}")
        outs = b.inline(f, list(args))
        dims = got["dims"]
        if not isinstance(dims, (list, tuple)) or len(dims) != len(outs):
            raise CustomOpError(f"custom op {name}: its batching rule returned {len(outs)} output(s) but "
                                f"out dims {dims!r}; give one per output")
        if op.vmap_kind == "front":
            if any(not isinstance(d, bool) for d in dims):
                raise CustomOpError(f"custom op {name}: a front=True batching rule returns out_batched as "
                                    f"bools (True: batched along axis 0), got {dims!r}")
            out_ds = [0 if d else None for d in dims]
        else:
            out_ds = list(dims)
    if len(outs) != len(want_types):
        raise CustomOpError(f"custom op {name}: its batching rule returned {len(outs)} output(s); the op has "
                            f"{len(want_types)}")
    for j, (o, d, t) in enumerate(zip(outs, out_ds, want_types)):
        if d is not None and (not isinstance(d, (int, np.integer)) or isinstance(d, bool)
                              or not -(t.rank + 1) <= d <= t.rank):
            raise CustomOpError(f"custom op {name}: its batching rule gave output {j} the batch dim {d!r}; "
                                f"expected None or an int in {-(t.rank + 1)}..{t.rank}")
        d = out_ds[j] = None if d is None else int(d) % (t.rank + 1)
        want = t if d is None else t.with_shape(t.shape[:d] + (size,) + t.shape[d:])
        if not isinstance(o, Var) or o.type != want:
            have = o.type if isinstance(o, Var) else type(o).__name__
            raise CustomOpError(f"custom op {name}: its batching rule returned {have} with batch dim {d} for "
                                f"output {j}; for a batch of {size} that output must be {want}")
    return outs, out_ds


def _pack(xs, n_out):
    return xs[0] if n_out == 1 else tuple(xs)


def apply_jvp(op: CustomOp, b, primals, tangents, outs):
    """The tangents of `outs` from `op`'s forward-mode rule (None where not floating point)."""
    from .autodiff.helpers import is_differentiable, zeros_like
    name, n, m = op.name, len(primals), len(outs)
    ts = [t if t is not None else zeros_like(b, p) for p, t in zip(primals, tangents)]

    def wrapper(*xs):
        res = op.jvp_rule(tuple(xs[:n]), tuple(xs[n:]))
        if not (isinstance(res, tuple) and len(res) == 2):
            raise CustomOpError(f"custom op {name}: its jvp rule must return a pair (outs, tangent_outs)")
        t_out = res[1]
        return [t_out] if m == 1 and not isinstance(t_out, (list, tuple)) else list(t_out)
    f = trace_rule(name, wrapper, [p.type for p in primals] + [t.type for t in ts], "jvp rule")
    res = iter(b.inline(f, list(primals) + ts))
    if f.count != m:
        raise CustomOpError(f"custom op {name}: its jvp rule returned {f.count} tangent(s); the op has {m} outputs")
    out = []
    for j, o in enumerate(outs):
        t = None if j in f.none else next(res)
        if t is not None and t.type != o.type:
            raise CustomOpError(f"custom op {name}: its jvp rule returned a tangent {t.type} for output {j}, "
                                f"which is {o.type}")
        out.append(t if is_differentiable(o) else None)
    return out


def apply_vjp(op: CustomOp, b, primals, outs, cts):
    """The cotangents of `primals` from `op`'s reverse-mode rule (None where not floating point)."""
    from .autodiff.helpers import is_differentiable, zeros_like
    name, n, m = op.name, len(primals), len(outs)
    cs = [c if c is not None else zeros_like(b, o) for o, c in zip(outs, cts)]

    def wrapper(*xs):
        res = op.vjp_rule(tuple(xs[:n]), _pack(xs[n:n + m], m), _pack(xs[n + m:], m))
        return [res] if n == 1 and not isinstance(res, (list, tuple)) else list(res)
    f = trace_rule(name, wrapper, [p.type for p in primals] + [o.type for o in outs] + [c.type for c in cs],
                   "vjp rule")
    if f.count != n:
        raise CustomOpError(f"custom op {name}: its vjp rule returned {f.count} cotangent(s); the op has {n} "
                            "arguments (give None for one without a cotangent)")
    res = iter(b.inline(f, list(primals) + list(outs) + cs))
    out = []
    for i, p in enumerate(primals):
        c = None if i in f.none else next(res)
        if c is not None and c.type != p.type:
            raise CustomOpError(f"custom op {name}: its vjp rule returned a cotangent {c.type} for argument {i}, "
                                f"which is {p.type}")
        out.append(c if is_differentiable(p) else None)
    return out
