"""Automatic differentiation: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``jacrev``,
``jacfwd``, ``hessian`` and ``stop_gradient``, after ``jax`` and ``torch.func``.

Differentiation is one more rewrite of the IR, like batching. Two passes do the
work, each with one rule per op, kept by op family next to every other
interpretation of the ops:

* forward mode, :func:`~vmapc.autodiff.forward.jvp_function`: ``f(x) -> y`` becomes
  ``(x, t) -> (y, J·t)``, with the rules in :mod:`vmapc.autodiff.forward`;
* reverse mode, :func:`~vmapc.autodiff.reverse.vjp_function`: ``f(x) -> y`` becomes
  ``(x, ȳ) -> (y, ȳ·J)``, the forward pass followed by the backward pass, with the
  rules in :mod:`vmapc.autodiff.reverse`.

Both produce ordinary programs made of ordinary ops. So everything else composes
without knowing about derivatives: ``vmap`` batches a gradient program (per-example
gradients are ``vmap(grad(loss))``), the passes apply to their own output (``grad``
of ``grad``; ``hessian`` is ``jacfwd`` of ``jacrev``), and ``compile`` simplifies,
lowers and compiles the result into one module. ``jacrev`` and ``jacfwd`` are the
batching pass applied to a derivative program: ``vmap`` of the reverse pass over the
rows of the identity, or of the forward pass over its columns.

The user-facing transforms work like :class:`vmapc.vmap`: called inside a trace
(inside a vmapped or compiled function, or another transform), one traces the
function at its arguments' shapes, differentiates that program and inlines the
result into the enclosing trace; values the function closes over from the enclosing
trace become extra inputs that are not differentiated. Called on arrays, it compiles
itself for the CPU (once per signature) and runs.

Only floating-point values have derivatives. Integer and bool values, and the ops
that make them (comparisons, ``argmax``, casts to integers), are constants to
differentiation; asking for the derivative with respect to an integer argument is
an error. ``docs/autodiff.md`` is the user's guide: kinks and ties, the NaN from an
unselected ``where`` branch and its remedy, memory, and how it performs.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from .. import pytree
from ..errors import AutodiffError, NotCallableError
from ..tracing import ShapeDtype, Tracer, _arg_names, current, to_var, trace_flat, user_loc
from ..vmap import _is_array, batch_function
from .helpers import NON_DIFFERENTIABLE  # noqa: F401
from .forward import JVP_RULES, jvp_function  # noqa: F401
from .reverse import NO_REVERSE, VJP_RULES, vjp_function  # noqa: F401


# --- running a transform: inline inside a trace, compiled on arrays ----------------------------------

class Transformed:
    """A function made by a transform (``vmapc.grad(f)``, ...). Inside a trace it runs
    ``impl`` on the tracers, which inlines the derivative program; called on arrays it
    compiles itself for the CPU, once per signature, and runs."""

    def __init__(self, impl, fn, name):
        self.impl = impl
        self.__wrapped__ = fn          # inspect.signature and the argument names follow it
        self.__name__ = f"{name}_{getattr(fn, '__name__', 'fn')}"
        self.__doc__ = getattr(fn, "__doc__", None)
        self._compiled = None

    def __repr__(self):
        return f"<vmapc {self.__name__}>"

    def __call__(self, *args, **kwargs):
        if current() is not None:
            return self.impl(*args, **kwargs)
        if self._compiled is None:
            from ..api import compile as _compile
            self._compiled = _compile(self)
        return self._compiled(*args, **kwargs)


def _check_callable(fn, what):
    if not callable(fn):
        raise NotCallableError(f"{what}: expected a function, got {type(fn).__name__}", user_loc())


def _argnums(argnums, nargs, what):
    """argnums as a tuple of non-negative ints, and whether the user gave a tuple."""
    many = isinstance(argnums, (tuple, list))
    nums = tuple(argnums) if many else (argnums,)
    if not nums and many:
        raise AutodiffError(f"{what}: argnums is empty; give at least one argument to differentiate",
                            user_loc())
    out = []
    for a in nums:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise AutodiffError(f"{what}: argnums must be an int or a tuple of ints, got {argnums!r}", user_loc())
        if not -nargs <= a < nargs:
            raise AutodiffError(f"{what}: argnums {int(a)} is out of range for a call with {nargs} positional "
                                "arguments", user_loc())
        out.append(int(a) % nargs)
    return tuple(out), many


def _spec(x):
    """What the function is traced at for one argument leaf."""
    if isinstance(x, Tracer):
        t = x.ir_var.type
        return ShapeDtype(t.shape, t.dtype)
    if _is_array(x) and not isinstance(x, ShapeDtype):
        return ShapeDtype(np.shape(x), np.asarray(x).dtype if isinstance(x, (np.ndarray, np.generic)) else x.dtype)
    return x


def _describe_tree(td):
    if td.kind == "leaf":
        return "a single array"
    if td.kind == "none":
        return "None"
    return f"a {td.kind} of {len(td.children)}" if td.kind != "dict" else f"a dict with keys {list(td.meta)}"


class _Traced:
    """A function traced at the shapes of some arguments: its program, the values to
    bind to its inputs (the argument leaves, then the values it captured from an
    enclosing trace), and where each positional argument's leaves are."""

    def __init__(self, fn, args, kwargs, what):
        self.what = what
        self.names = _arg_names(fn, len(args))
        leaves, in_tree = pytree.flatten((tuple(args), kwargs))
        ex_args, ex_kwargs = pytree.unflatten(in_tree, [_spec(x) for x in leaves])
        self.fn, _, self.out_tree, _ = trace_flat(fn, ex_args, ex_kwargs,
                                                  name=getattr(fn, "__name__", "fn"))
        _refuse_complex(self.fn, what)
        self.values = leaves + list(getattr(self.fn, "captured", []))
        self.arg_trees, self.arg_start = [], []
        start = 0
        for a in args:
            ls, td = pytree.flatten(a)
            self.arg_trees.append(td)
            self.arg_start.append(start)
            start += len(ls)

    def leaves_of(self, i):
        return range(self.arg_start[i], self.arg_start[i] + self.arg_trees[i].num_leaves)

    def wrt(self, nums):
        """The inputs to differentiate (the leaves of the arguments in `nums`), checking
        that each is floating point."""
        mask = [False] * len(self.fn.inputs)
        for i in nums:
            paths = pytree.leaf_paths(self.arg_trees[i], f"`{self.names[i]}`")
            for k, p in zip(self.leaves_of(i), paths):
                v = self.fn.inputs[k]
                if not dt.is_float(v.dtype):
                    raise AutodiffError(
                        f"{self.what}: argument {p} (argnums={i}) has dtype {v.dtype}; only floating-point "
                        "arguments can be differentiated (integer and bool values have no derivative). "
                        "Leave it out of argnums, or pass it as floats", user_loc())
                mask[k] = True
        return mask

    def bind(self, ctx):
        """IR values for the inputs, in the enclosing trace."""
        vs = []
        for x, v in zip(self.values, self.fn.inputs):
            if isinstance(x, Tracer):
                vs.append(to_var(ctx, x, "argument"))
            elif _is_array(x):
                vs.append(ctx.builder.convert(ctx.constant(np.asarray(x)), v.dtype))
            else:
                vs.append(ctx.builder.constant(np.asarray(x, dtype=v.dtype)))
        return vs

    def split_aux(self, has_aux):
        """(indices of the main outputs, their tree, indices of the aux outputs, their tree)."""
        td, n = self.out_tree, len(self.fn.outputs)
        if not has_aux:
            return list(range(n)), td, [], None
        if td.kind not in ("tuple", "list") or len(td.children) != 2:
            raise AutodiffError(f"{self.what}(has_aux=True): the function must return a pair (output, aux), "
                                f"but it returned {_describe_tree(td)}", user_loc())
        k = td.children[0].num_leaves
        return list(range(k)), td.children[0], list(range(k, n)), td.children[1]

    def arg_structured(self, nums, many, flat, wrap):
        """Per-argument pytrees from `flat` values listed in the order of the leaves of
        the arguments in `nums` (a tuple when the user gave a tuple of argnums)."""
        res, at = [], 0
        for i in nums:
            n = self.arg_trees[i].num_leaves
            res.append(pytree.unflatten(self.arg_trees[i], [wrap(v) for v in flat[at:at + n]]))
            at += n
        return tuple(res) if many else res[0]


def _refuse_complex(fn, what):
    """Complex differentiation (holomorphic or not, JAX's two conventions) is not
    implemented: a function with a complex value anywhere is refused, rather than
    differentiated as if its complex values were constants."""
    from ..ir import walk_eqns
    vs = list(fn.inputs) + list(fn.outputs) + [v for e in walk_eqns(fn) for v in list(e.inputs) + list(e.outputs)]
    bad = next((v for v in vs if dt.is_complex(v.dtype)), None)
    if bad is not None:
        raise AutodiffError(f"{what}: the function computes with complex numbers ({bad.type}); vmapc does not "
                            "differentiate complex values (split them into real and imaginary parts)",
                            user_loc())


def _wrapper(ctx):
    return lambda v: Tracer(v, ctx)


# --- grad and value_and_grad -------------------------------------------------------------------------

def _grad_impl(fn, argnums, has_aux, with_value, what, args, kwargs):
    nums, many = _argnums(argnums, len(args), what)
    tr = _Traced(fn, args, kwargs, what)
    main, main_tree, aux, aux_tree = tr.split_aux(has_aux)
    if main_tree != pytree.LEAF:
        raise AutodiffError(f"{what}: the function must return a scalar, but it returned "
                            f"{_describe_tree(main_tree)}; use vmapc.jacrev or vmapc.vjp for several outputs",
                            user_loc())
    out = tr.fn.outputs[main[0]]
    if out.rank != 0 or not dt.is_float(out.dtype):
        raise AutodiffError(f"{what}: the function must return a floating-point scalar (0-d), but it "
                            f"returned {out.type}; for a non-scalar output use vmapc.jacrev or vmapc.vjp, "
                            "or reduce it (.sum())", user_loc())
    wrt = tr.wrt(nums)
    g = vjp_function(tr.fn, wrt, [j == main[0] for j in range(len(tr.fn.outputs))])
    ctx = current()
    outs = ctx.builder.inline(g, tr.bind(ctx) + [ctx.builder.constant(np.ones((), out.dtype))])
    wrap = _wrapper(ctx)
    n = len(tr.fn.outputs)
    grads = tr.arg_structured(nums, many, outs[n:], wrap)
    aux_val = pytree.unflatten(aux_tree, [wrap(outs[j]) for j in aux]) if has_aux else None
    if with_value:
        value = wrap(outs[main[0]])
        return ((value, aux_val) if has_aux else value), grads
    return (grads, aux_val) if has_aux else grads


def grad(fn, argnums=0, has_aux=False):
    """The gradient of a scalar-valued `fn` with respect to its positional argument(s)
    `argnums` (an int, or a tuple for a tuple of gradients). Each gradient has the
    structure, shapes and dtypes of its argument (pytrees of arrays: dicts of
    parameters work). With ``has_aux=True`` `fn` returns ``(output, aux)`` and the
    result is ``(gradient, aux)``."""
    _check_callable(fn, "vmapc.grad")
    return Transformed(lambda *a, **k: _grad_impl(fn, argnums, has_aux, False, "vmapc.grad", a, k), fn, "grad")


def value_and_grad(fn, argnums=0, has_aux=False):
    """Like :func:`grad`, returning ``(value, gradient)`` (``((value, aux), gradient)``
    with ``has_aux``)."""
    _check_callable(fn, "vmapc.value_and_grad")
    return Transformed(lambda *a, **k: _grad_impl(fn, argnums, has_aux, True, "vmapc.value_and_grad", a, k),
                       fn, "value_and_grad")


# --- jvp -----------------------------------------------------------------------------------------------

def _as_var(ctx, x, like, what):
    """The IR value of a tangent or cotangent `x` for a value of type `like`."""
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        if like.rank:
            raise AutodiffError(f"{what} is a Python number but the value has shape {like.shape}", user_loc())
        return ctx.builder.constant(np.asarray(x, like.dtype))
    if isinstance(x, Tracer):
        v = to_var(ctx, x, what)
    elif _is_array(x):
        v = ctx.constant(np.asarray(x))
    else:
        raise AutodiffError(f"{what} has type {type(x).__name__}; expected an array", user_loc())
    if v.shape != like.shape or v.dtype != like.dtype:
        raise AutodiffError(f"{what} has type {v.type} but the value it goes with has type {like}; "
                            "they must match in shape and dtype", user_loc())
    return v


def _jvp_impl(fn, primals, tangents, has_aux):
    what = "vmapc.jvp"
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise AutodiffError(f"{what}: primals and tangents must be tuples (or lists) of arguments, got "
                            f"{type(primals).__name__} and {type(tangents).__name__}", user_loc())
    p_leaves, p_tree = pytree.flatten(tuple(primals))
    t_leaves, t_tree = pytree.flatten(tuple(tangents))
    if p_tree != t_tree:
        raise AutodiffError(f"{what}: the tangents have structure {t_tree} but the primals {p_tree}; "
                            "give one tangent per primal array", user_loc())
    tr = _Traced(fn, tuple(primals), {}, what)
    main, main_tree, aux, aux_tree = tr.split_aux(has_aux)
    active = [dt.is_float(v.dtype) for v in tr.fn.inputs[:len(p_leaves)]]
    active += [False] * (len(tr.fn.inputs) - len(p_leaves))
    j = jvp_function(tr.fn, active)
    ctx = current()
    paths = pytree.leaf_paths(t_tree, "tangents")
    ts = [_as_var(ctx, t, v.type, f"{what}: {p}")
          for t, v, a, p in zip(t_leaves, tr.fn.inputs, active, paths) if a]
    outs = ctx.builder.inline(j, tr.bind(ctx) + ts)
    n = len(tr.fn.outputs)
    wrap = _wrapper(ctx)
    out = pytree.unflatten(main_tree, [wrap(outs[k]) for k in main])
    t_out = pytree.unflatten(main_tree, [wrap(outs[n + k]) for k in main])
    if has_aux:
        return out, t_out, pytree.unflatten(aux_tree, [wrap(outs[k]) for k in aux])
    return out, t_out


def jvp(fn, primals, tangents, has_aux=False):
    """Forward mode: ``(fn(*primals), J·tangents)``, where `tangents` has the structure,
    shapes and dtypes of `primals` (a tuple of arguments). Integer primals' tangents
    are ignored. With ``has_aux=True`` returns ``(output, tangent, aux)``."""
    _check_callable(fn, "vmapc.jvp")
    run = Transformed(lambda p, t: _jvp_impl(fn, p, t, has_aux), fn, "jvp")
    return run(tuple(primals) if isinstance(primals, list) else primals,
               tuple(tangents) if isinstance(tangents, list) else tangents)


# --- vjp -----------------------------------------------------------------------------------------------

def _forward_impl(fn, primals, has_aux):
    tr = _Traced(fn, primals, {}, "vmapc.vjp")
    tr.split_aux(has_aux)
    ctx = current()
    outs = ctx.builder.inline(tr.fn, tr.bind(ctx))
    return pytree.unflatten(tr.out_tree, [Tracer(v, ctx) for v in outs])


def _pullback_impl(fn, primals, has_aux, cts):
    what = "vmapc.vjp"
    tr = _Traced(fn, primals, {}, what)
    main, main_tree, _, _ = tr.split_aux(has_aux)
    c_leaves, c_tree = pytree.flatten(cts)
    if c_tree != main_tree:
        raise AutodiffError(f"{what}: the cotangent has structure {c_tree} but the output {main_tree}; give "
                            "one cotangent per output array", user_loc())
    n, n_p = len(tr.fn.outputs), len(pytree.flatten(tuple(primals))[0])
    g = vjp_function(tr.fn, [True] * n_p + [False] * (len(tr.fn.inputs) - n_p), [k in main for k in range(n)])
    ctx = current()
    paths = pytree.leaf_paths(c_tree, "cotangent")
    cs = [_as_var(ctx, c, tr.fn.outputs[k].type, f"{what}: {p}")
          for c, k, p in zip(c_leaves, main, paths)]
    cs = [c for c, k in zip(cs, main) if dt.is_float(tr.fn.outputs[k].dtype)]
    outs = ctx.builder.inline(g, tr.bind(ctx) + cs)
    return tr.arg_structured(range(len(primals)), True, outs[n:], _wrapper(ctx))


class _Pullback:
    """The ``vjp_fn`` that :func:`vjp` returns: cotangents of the output in, cotangents
    of the primals out (a tuple, one per primal)."""

    def __init__(self, fn, primals, has_aux):
        def pullback(primals, cotangent):
            return _pullback_impl(fn, primals, has_aux, cotangent)
        # the compiled program takes (primals, cotangent), so its signature is this one's, not fn's
        pullback.__name__ = getattr(fn, "__name__", "fn")
        self.run = Transformed(pullback, pullback, "vjp")
        self.primals = primals

    def __call__(self, ct):
        return self.run(self.primals, ct)


def vjp(fn, *primals, has_aux=False):
    """Reverse mode: ``(fn(*primals), vjp_fn)``, where ``vjp_fn(ct)`` returns the
    cotangents of the primals (a tuple, one per primal: ``ct·J``) for a cotangent `ct`
    with the structure of the output. With ``has_aux=True``, `fn` returns
    ``(output, aux)`` and the result is ``(output, vjp_fn, aux)``. Integer primals get
    zero cotangents of their own dtype."""
    _check_callable(fn, "vmapc.vjp")
    out = Transformed(lambda *p: _forward_impl(fn, p, has_aux), fn, "forward")(*primals)
    pull = _Pullback(fn, primals, has_aux)
    if has_aux:
        return out[0], pull, out[1]
    return out, pull


# --- Jacobians -------------------------------------------------------------------------------------------

def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _basis(b, n, offset, shape, dtype):
    """Rows ``offset .. offset + size(shape)`` of the n x n identity's columns, as an
    ``(n, *shape)`` value built from iotas (no n x n constant)."""
    m = _size(shape)
    rows = b.emit("iota", shape=(n, m), dimension=0, dtype=dt.INT64)
    cols = b.emit("iota", shape=(n, m), dimension=1, dtype=dt.INT64)
    if offset:
        cols = b.emit("add", cols, b.broadcast_in_dim(b.constant(np.asarray(offset, np.int64)), (n, m), ()))
    return b.reshape(b.convert(b.emit("equal", rows, cols), dtype), (n,) + tuple(shape))


def _jac_impl(fn, argnums, has_aux, mode, args, kwargs):
    what = f"vmapc.{mode}"
    nums, many = _argnums(argnums, len(args), what)
    tr = _Traced(fn, args, kwargs, what)
    main, main_tree, aux, aux_tree = tr.split_aux(has_aux)
    wrt = tr.wrt(nums)
    ins = [k for k, w in enumerate(wrt) if w]
    f = tr.fn
    n_in, n_out = len(f.inputs), len(f.outputs)
    if mode == "jacrev":
        for k in main:
            if not dt.is_float(f.outputs[k].dtype):
                raise AutodiffError(f"{what}: output {k} has dtype {f.outputs[k].dtype}; reverse mode needs "
                                    "floating-point outputs (use vmapc.jacfwd)", user_loc())
    ctx = current()
    b = ctx.builder
    bound = tr.bind(ctx)
    if mode == "jacrev":
        # vmap of the reverse pass over the rows of the identity, one row per output element
        g = vjp_function(f, wrt, [k in main for k in range(n_out)])
        size = sum(_size(f.outputs[k].shape) for k in main)
        basis, at = [], 0
        for k in main:
            basis.append(_basis(b, size, at, f.outputs[k].shape, f.outputs[k].dtype))
            at += _size(f.outputs[k].shape)
        bg = batch_function(g, [None] * n_in + [0] * len(main), size, [None] * n_out + [0] * len(ins))
        outs = b.inline(bg, bound + basis)
        rows = outs[n_out:]              # per differentiated input: (size, *in_shape)
        jac = []                         # [out k][in l]: out_shape + in_shape
        at = 0
        for k in main:
            m, oshape = _size(f.outputs[k].shape), f.outputs[k].shape
            per = []
            for r in rows:
                piece = b.emit("slice", r, start=(at,) + (0,) * (r.rank - 1), limit=(at + m,) + r.shape[1:],
                               step=(1,) * r.rank)
                per.append(b.reshape(piece, tuple(oshape) + r.shape[1:]))
            jac.append(per)
            at += m
    else:
        # vmap of the forward pass over the columns of the identity, one per input element
        j = jvp_function(f, wrt)
        size = sum(_size(f.inputs[k].shape) for k in ins)
        basis, at = [], 0
        for k in ins:
            basis.append(_basis(b, size, at, f.inputs[k].shape, f.inputs[k].dtype))
            at += _size(f.inputs[k].shape)
        bj = batch_function(j, [None] * n_in + [0] * len(ins), size, [None] * n_out + [0] * n_out)
        outs = b.inline(bj, bound + basis)
        cols = [outs[n_out + k] for k in main]   # per output: (size, *out_shape)
        jac = []
        for c, k in zip(cols, main):
            oshape = f.outputs[k].shape
            per, at = [], 0
            for l in ins:
                ishape, m = f.inputs[l].shape, _size(f.inputs[l].shape)
                piece = b.emit("slice", c, start=(at,) + (0,) * (c.rank - 1), limit=(at + m,) + c.shape[1:],
                               step=(1,) * c.rank)
                piece = b.transpose(piece, tuple(range(1, c.rank)) + (0,))   # out_shape + (m,)
                per.append(b.reshape(piece, tuple(oshape) + tuple(ishape)))
                at += m
            jac.append(per)
    wrap = _wrapper(ctx)
    result = pytree.unflatten(main_tree, [tr.arg_structured(nums, many, per, wrap) for per in jac])
    if has_aux:
        return result, pytree.unflatten(aux_tree, [wrap(outs[k]) for k in aux])
    return result


def jacrev(fn, argnums=0, has_aux=False):
    """The Jacobian of `fn` with respect to argument(s) `argnums`, by reverse mode
    (``vmap`` of ``vjp`` over the output's elements: cheap for few outputs). For each
    output leaf, a pytree shaped like the argument(s) whose leaves have shape
    ``output.shape + argument.shape``."""
    _check_callable(fn, "vmapc.jacrev")
    return Transformed(lambda *a, **k: _jac_impl(fn, argnums, has_aux, "jacrev", a, k), fn, "jacrev")


def jacfwd(fn, argnums=0, has_aux=False):
    """The Jacobian by forward mode (``vmap`` of ``jvp`` over the argument's elements:
    cheap for few inputs); same layout as :func:`jacrev`."""
    _check_callable(fn, "vmapc.jacfwd")
    return Transformed(lambda *a, **k: _jac_impl(fn, argnums, has_aux, "jacfwd", a, k), fn, "jacfwd")


def hessian(fn, argnums=0, has_aux=False):
    """The Hessian of a scalar `fn`: ``jacfwd(jacrev(fn))``, forward mode over reverse
    mode. For an argument of shape ``s`` the result has shape ``s + s``."""
    _check_callable(fn, "vmapc.hessian")
    inner = jacrev(fn, argnums, has_aux)
    if not has_aux:
        return Transformed(lambda *a, **k: _jac_impl(inner, argnums, False, "jacfwd", a, k), fn, "hessian")
    return Transformed(lambda *a, **k: _jac_impl(inner, argnums, True, "jacfwd", a, k), fn, "hessian")


# --- stop_gradient -----------------------------------------------------------------------------------------

def stop_gradient(x):
    """`x` unchanged, but a constant to differentiation: its derivative is zero. Works
    on pytrees; on arrays outside a trace it returns them as they are."""
    leaves, td = pytree.flatten(x)
    out = []
    for v in leaves:
        if isinstance(v, Tracer):
            ctx = current()
            out.append(Tracer(ctx.builder.emit("stop_gradient", to_var(ctx, v, "stop_gradient")), ctx,
                              weak=v.weak))
        else:
            out.append(v)
    return pytree.unflatten(td, out)
