"""vmap: batching as a rewrite of the IR.

``batch_function(fn, in_bdims, axis_size)`` walks ``fn``'s equations in order and
keeps, for every value, where its batch axis is (``bdim``, or None when the value
is the same for every example). For each equation the pass ("plumbing") does one
of two things:

* if no input is batched, the equation is copied unchanged — everything that does
  not depend on the batch (weights, constants, their transforms) stays unbatched
  and is computed once;
* otherwise it calls the op's batching rule from :mod:`vmapc.rules`,
  ``rule(builder, args, bdims, **attrs) -> (outs, out_bdims)``, which emits
  ordinary ops and says where the batch axis ended up. An op without a rule goes
  through the loop-and-stack fallback.

At the end, ``out_dims`` move each output's batch axis where the caller wants it
(broadcasting outputs that do not depend on the batch). The result is an ordinary
``Function`` whose values print their batch dim after ``@``.

One kind of equation may not be copied even when no input is batched: a random draw
from a key that is the same for every example (``key_use``, see :mod:`vmapc.random`).
Copying it would give every example the same numbers, so the vmap's ``randomness``
mode decides (``rules.UNBATCHED_RULES``): ``"error"`` raises, ``"same"`` copies, and
``"different"`` folds each example's global index into the key. The index is
``iota(B) + example_offset``; the offset is 0 for a whole batch, and a run-time input of
the batched program (``example_offset: u32[]``) when the batch may be one part of a
larger one (``vmapc.compile`` with ``chunk_size``, artifacts run chunk by chunk), so
the draws do not depend on how the batch is cut.

:class:`Vmapped` is the user-facing transform (``vmapc.vmap``). Called inside a
trace (nested vmap, or under ``vmapc.compile``), it traces the function at one
example's shapes, batches that IR and inlines it into the enclosing trace, so
nesting composes to any depth. Called on arrays, it compiles itself for the CPU
(cached by signature) and runs.
"""

from __future__ import annotations

import contextvars

import numpy as np

from . import dtypes as dt
from . import pytree
from .errors import BatchingError, NotCallableError, VmapcError
from .ir import Builder, Function, TensorType, Var
from .shapes import Sym


def _physical(t, bdim, size):
    return t.with_shape(t.shape[:bdim] + (size,) + t.shape[bdim:])


RANDOMNESS = ("error", "same", "different")
OFFSET_NAME = "example_offset"


class Randomness:
    """What one vmap does with a random draw from a key that is the same for every
    example: ``mode`` is "error", "same" or "different". For "different", ``offset`` is
    the global index of the batch's first example: an int, or None for a run-time input
    of the batched program (created when a draw first needs it, as ``offset_input``)."""

    def __init__(self, mode="error", offset=0, closed=False):
        check_randomness(mode)
        self.mode = mode
        self.offset = offset
        self.closed = closed          # a sub-program: no index of the batch is in scope
        self.offset_input = None
        self._index = None            # (builder, var): the index, emitted once per builder

    def index(self, b: Builder, axis_size) -> Var:
        """u32[B]: each example's global index, ``iota(B) + offset``."""
        if self.closed:
            raise BatchingError("vmap(randomness='different') cannot number the examples inside the body "
                                "of a cond, loop or scan; split the key outside it (keys = "
                                "vmapc.random.split(key, n), batched with in_dims 0) and pass the keys in")
        if self._index is not None and self._index[0] is b:
            return self._index[1]
        idx = b.emit("iota", shape=(axis_size,), dimension=0, dtype=dt.UINT32)
        if self.offset is None:
            if self.offset_input is None:
                self.offset_input = Var(TensorType((), dt.UINT32), OFFSET_NAME)
            idx = b.emit("add", idx, b.reshape(self.offset_input, (1,)))
        elif self.offset:
            idx = b.emit("add", idx, b.full((1,), self.offset % 2 ** 32, dt.UINT32))
        self._index = (b, idx)
        return idx


def check_randomness(mode):
    if not isinstance(mode, str) or mode not in RANDOMNESS:
        raise BatchingError(f"vmap: randomness must be 'error', 'same' or 'different', got {mode!r}")


# The randomness of the vmap being applied, seen by rules that batch sub-programs (loop
# bodies, branches): their draws follow the enclosing vmap's mode.
_CURRENT = contextvars.ContextVar("vmapc_randomness", default=None)


def _sub_randomness():
    cur = _CURRENT.get()
    return Randomness(cur.mode if cur is not None else "error", closed=True)


def batch_function(fn: Function, in_bdims, axis_size, out_bdims=0, name: str | None = None,
                   randomness="error", example_offset=0, axis_name: str | None = None) -> Function:
    """The batched version of `fn`: input i gains a batch axis of `axis_size` at
    position ``in_bdims[i]`` (None: unbatched); output j has it at ``out_bdims[j]``
    (an int applies to every output; None: the output must not depend on the batch).
    Sizes may be symbolic (``Sym("B")``).

    ``randomness`` ("error", "same", "different", or a :class:`Randomness`) says what a
    draw from a key that is the same for every example does (see the module docstring);
    ``example_offset`` is the global index of the first example, an int or None for a
    run-time input. When "different" needed the index and the offset is a run-time
    input, the result has one more input, last, ``example_offset: u32[]``, and
    ``result.offset_input`` is its position (otherwise None). ``axis_name`` names the
    batch axis for the collectives in `fn` (:mod:`vmapc.collective`)."""
    from vmapc.rules.helpers import materialize, move_bdim

    if isinstance(out_bdims, int) or out_bdims is None:
        out_bdims = [out_bdims] * len(fn.outputs)
    rng = randomness if isinstance(randomness, Randomness) else Randomness(randomness, example_offset)
    b, inputs, env, bdims = _batch_eqns(fn, in_bdims, axis_size, rng, axis_name)
    outputs = []
    for j, (v, want) in enumerate(zip(fn.outputs, out_bdims)):
        nv, d = env[v]
        if want is None:
            if d is not None:
                raise BatchingError(f"vmap: out_dims for output {j} is None, but that output depends on "
                                    "the batched inputs; give it an int out_dim")
        elif d is None:
            _check_batched_size(nv.type, want, axis_size, f"vmap: output {j} batched")
            nv = materialize(b, nv, axis_size, want)
        else:
            nv = move_bdim(b, nv, d, want)
        outputs.append(nv)
        bdims[nv] = want
    arg_names = fn.arg_names
    if rng.offset_input is not None:
        inputs.append(rng.offset_input)
        bdims[rng.offset_input] = None
        if arg_names is not None:
            arg_names = list(arg_names) + [OFFSET_NAME]
    out = Function(inputs, b.eqns, outputs, name=name or fn.name, arg_names=arg_names, bdims=bdims)
    out.offset_input = len(inputs) - 1 if rng.offset_input is not None else None
    return out


def batch_outputs(fn: Function, in_bdims, axis_size) -> list:
    """Where each output of `fn` carries the batch when its inputs carry it at
    `in_bdims`, left where the rules put it (None: the output does not depend on the
    batch). The analysis that loop rules iterate to a fixpoint (JAX's
    ``batch_jaxpr(..., instantiate=False)``); nothing is kept."""
    _, _, env, _ = _batch_eqns(fn, in_bdims, axis_size, _sub_randomness(), _current_axis_name())
    return [env[v][1] for v in fn.outputs]


def batch_subfunction(fn: Function, in_bdims, axis_size, out_bdims) -> Function:
    """A sub-program (a loop body, a branch) batched for an op's batching rule: like
    :func:`batch_function`, but an output whose entry in `out_bdims` is None must not
    depend on the batch (the rule has checked this with :func:`batch_outputs`), and
    the result has no batch-dim annotations of its own."""
    f = batch_function(fn, in_bdims, axis_size, out_bdims, name=fn.name, randomness=_sub_randomness(),
                       axis_name=_current_axis_name())
    f.bdims = None
    return f


def _current_axis_name():
    """The axis name of the pass in progress: a sub-program batched by an op's rule is
    batched over the same named axis."""
    from .collective import current_axis
    return current_axis()[0]


def _batch_eqns(fn: Function, in_bdims, axis_size, randomness: Randomness | None = None, axis_name=None):
    """The pass itself: (builder holding the batched equations, batched inputs,
    env mapping each var of `fn` to (batched var, bdim), bdims of the new vars)."""
    from .collective import batching
    randomness = randomness if randomness is not None else Randomness()
    token = _CURRENT.set(randomness)
    try:
        with batching(axis_name, axis_size):
            return _batch_eqns_in(fn, in_bdims, axis_size, randomness, axis_name)
    finally:
        _CURRENT.reset(token)


def _batch_eqns_in(fn: Function, in_bdims, axis_size, randomness: Randomness, axis_name):
    from vmapc.rules import BATCH_RULES, UNBATCHED_RULES, fallback_rule

    in_bdims = list(in_bdims)
    if len(in_bdims) != len(fn.inputs):
        raise BatchingError(f"vmap: {len(in_bdims)} in_dims for a function of {len(fn.inputs)} inputs")
    b = Builder()
    env: dict = {}
    bdims: dict = {}
    inputs = []
    for i, (v, d) in enumerate(zip(fn.inputs, in_bdims)):
        if d is not None:
            _check_batched_size(v.type, d, axis_size, f"vmap: input {i} batched")
        nv = Var(v.type if d is None else _physical(v.type, d, axis_size), v.hint)
        inputs.append(nv)
        env[v] = (nv, d)
        bdims[nv] = d
    for e in fn.eqns:
        args = [env[v][0] for v in e.inputs]
        ds = [env[v][1] for v in e.inputs]
        b.loc = e.loc
        if all(d is None for d in ds) and e.op in UNBATCHED_RULES:   # a draw from a shared key
            try:
                outs, out_ds = UNBATCHED_RULES[e.op](b, args, axis_size, randomness, **e.attrs)
            except VmapcError as err:
                raise err.with_loc(e.loc)
            _check_rule(e, outs, out_ds, axis_size)
        # a collective over this pass's axis acts even on unbatched operands (psum of a constant)
        elif all(d is None for d in ds) and (axis_name is None or e.attrs.get("axis_name") != axis_name):
            outs, out_ds = b.emit_multi(e.op, args, e.attrs), [None] * len(e.outputs)
        else:
            rule = BATCH_RULES.get(e.op)
            try:
                if rule is None:
                    outs, out_ds = fallback_rule(b, args, ds, e.op, e.attrs, e.loc)
                else:
                    outs, out_ds = rule(b, args, ds, **e.attrs)
            except VmapcError as err:
                raise err.with_loc(e.loc)
            _check_rule(e, outs, out_ds, axis_size)
        for v, nv, d in zip(e.outputs, outs, out_ds):
            env[v] = (nv, d)
            bdims[nv] = d
    return b, inputs, env, bdims


def _check_batched_size(t, bdim, size, what):
    from .ops import check_size
    if isinstance(size, int):
        check_size(_physical(t, bdim, size).shape, t.dtype, what)


def _check_rule(e, outs, out_ds, size):
    """A rule's results must be the equation's results with a batch axis added."""
    for v, nv, d in zip(e.outputs, outs, out_ds):
        want = v.type if d is None else _physical(v.type, d, size)
        if nv.type != want:
            raise AssertionError(f"batching rule for {e.op} produced {nv.type} with bdim {d}; "
                                 f"expected {want} (a bug in the rule)")


# --- in_dims / out_dims --------------------------------------------------------------------------

def _is_array(x):
    from .tracing import Tracer
    return isinstance(x, (np.ndarray, np.generic, Tracer)) or (
        hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (bool, int, float)))


def _describe(x):
    from .arguments import describe
    return describe(x)


def _check_dim(d, what):
    if d is not None and (not isinstance(d, (int, np.integer)) or isinstance(d, bool)):
        raise BatchingError(f"vmap: {what} must be an int or None, got {d!r} ({_describe(d)})")


def check_in_dims(in_dims):
    """The top level of ``in_dims``: an int, None, or a tuple (list) with one entry per
    positional argument (checked when ``vmap``/``compile`` is called, as JAX does)."""
    if isinstance(in_dims, (tuple, list)) or in_dims is None:
        return
    if isinstance(in_dims, (int, np.integer)) and not isinstance(in_dims, bool):
        return
    raise BatchingError(f"vmap: in_dims must be an int, None, or a tuple with one entry per positional "
                        f"argument, got {_describe(in_dims)} {in_dims!r}"
                        + ("; for a function taking one dict, write in_dims=({...},)" if isinstance(in_dims, dict)
                           else ""))


def leaf_in_dims(fn, in_dims, args, kwargs, static=None):
    """The traced leaves of ``(args, kwargs)``, their normalized batch dims and their
    paths, in the order of ``pytree.flatten((args, kwargs), static=static)``. A leaf
    with in_dim None for which ``static(leaf)`` is true (a Python value that reaches
    the function as it is) is left out, as is a ``pytree.Static`` argument. Raises
    BatchingError naming the argument path."""
    from .tracing import _arg_names
    names = _arg_names(fn, len(args))
    check_in_dims(in_dims)
    if isinstance(in_dims, list):
        in_dims = tuple(in_dims)
    if isinstance(in_dims, tuple) and len(in_dims) != len(args):
        msg = (f"vmap: in_dims has {len(in_dims)} entries but the function was called with {len(args)} "
               "positional arguments")
        if kwargs:
            msg += (f" and keyword arguments {sorted(kwargs)}, which the entries of a tuple in_dims never "
                    "correspond to: keyword arguments are always batched along axis 0 (as in jax.vmap and "
                    "torch.func.vmap); pass them positionally to give them in_dims")
        raise BatchingError(msg)
    per_arg = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(args)
    leaves, dims, paths = [], [], []
    for i, (a, d) in enumerate(zip(args, per_arg)):
        where = f"in_dims[{i}]" if isinstance(in_dims, tuple) else "in_dims"
        if type(a) is pytree.Static:
            if isinstance(in_dims, tuple) and d is not None:
                raise BatchingError(f"vmap: {where} is {d!r} but argument `{names[i]}` is static "
                                    "(static_argnums/static_argnames) and cannot be batched; give it None")
            continue
        ls, td = pytree.flatten(a)
        ds = pytree.broadcast_prefix(d, td, where, f"argument `{names[i]}`", BatchingError)
        for p, leaf, dd in zip(pytree.leaf_paths(td, f"`{names[i]}`"), ls, ds):
            leaves.append(leaf)
            dims.append(dd)
            paths.append((where if td.kind == "leaf" else f"{where} (for {p})", p))
    for k, v in sorted(kwargs.items()):   # keyword arguments are batched along axis 0 (as in JAX)
        ls, td = pytree.flatten(v)
        for p, leaf in zip(pytree.leaf_paths(td, f"`{k}`"), ls):
            leaves.append(leaf)
            dims.append(0 if _is_array(leaf) else None)
            paths.append((f"keyword argument {p} (batched along 0)", p))
    kept, out, kept_paths = [], [], []
    for leaf, d, (where, p) in zip(leaves, dims, paths):
        _check_dim(d, where)
        if d is None:
            if static is None or not static(leaf):
                kept.append(leaf)
                out.append(None)
                kept_paths.append(p)
            continue
        if not _is_array(leaf):
            raise BatchingError(f"vmap: {where} is {d} but argument {p} is {_describe(leaf)}, not an array; "
                                "use None for it in in_dims")
        rank = len(leaf.shape)
        if not -rank <= d < rank:
            raise BatchingError(f"vmap: {where} is {d} but argument {p} has rank {rank}"
                                + (f" (valid: {-rank}..{rank - 1})" if rank else " (a 0-d array cannot be batched)"))
        kept.append(leaf)
        out.append(int(d) % rank)
        kept_paths.append(p)
    return kept, out, kept_paths


def batch_size(leaves, bdims, paths, axis_size, fn=None, args=(), kwargs=None):
    sizes = [(p, leaf.shape[d], d) for leaf, d, p in zip(leaves, bdims, paths) if d is not None]
    if axis_size is not None and (not isinstance(axis_size, (int, np.integer, Sym)) or isinstance(axis_size, bool)
                                  or (isinstance(axis_size, (int, np.integer)) and axis_size < 0)):
        raise BatchingError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}")
    if not sizes:
        if axis_size is None:
            _check_binds(fn, args, kwargs or {})
            if not any(_is_array(x) for x in leaves):
                raise BatchingError(f"vmap: the function was called with no array arguments (args={args!r:.60}, "
                                    f"kwargs={kwargs or {}!r:.60}), so there is nothing to batch and the batch "
                                    "size is unknown; pass axis_size=N")
            raise BatchingError("vmap: no argument is batched (every in_dim is None) and axis_size is not "
                                "given, so the batch size is unknown; pass axis_size=N")
        return axis_size
    distinct = {s for _, s, _ in sizes}
    if len(distinct) > 1:
        detail = ", ".join(f"argument {p} has size {s} at axis {d}" for p, s, d in sizes)
        raise BatchingError(f"vmap: batch sizes disagree: {detail}; every batched argument must have the "
                            "same size along its in_dim")
    (size,) = distinct
    if axis_size is not None and axis_size != size:
        raise BatchingError(f"vmap: axis_size is {axis_size} but the batched arguments have size {size} "
                            f"({', '.join(f'{p} at axis {d}' for p, _, d in sizes)})")
    return size


def _check_binds(fn, args, kwargs):
    """A call that leaves out a required argument is reported as that, not as a
    batching problem."""
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as err:
        raise BatchingError(f"vmap: {getattr(fn, '__name__', 'the function')}{sig} cannot be called with these "
                            f"arguments: {err}") from None


def leaf_out_dims(out_dims, out_tree, out_types):
    """Per-output normalized out_dims (checked against each output's rank + 1). An
    output that is not an array (returned as it is) must have out_dims None."""
    if out_tree == pytree.LEAF and type(out_dims) is tuple and len(out_dims) == 1:
        out_dims = out_dims[0]            # out_dims=(1,) for a function returning one array (torch.func)

    def on_static(d, x, where):
        if d is not None:
            _check_dim(d, f"out_dims at {where}")
            raise BatchingError(f"vmap: out_dims at {where} is {d}, but the function returned {_describe(x)} "
                                f"({x!r:.40}) there, not an array; give it out_dims None to return it as it is")
    ds = pytree.broadcast_prefix(out_dims, out_tree, "out_dims", "the output", BatchingError, on_static)
    res = []
    for j, (d, t) in enumerate(zip(ds, out_types)):
        _check_dim(d, f"out_dims for output {j}")
        if d is None:
            res.append(None)
            continue
        rank = t.rank + 1
        if not -rank <= d < rank:
            raise BatchingError(f"vmap: out_dims for output {j} is {d} but the batched output has rank "
                                f"{rank} (valid: {-rank}..{rank - 1})")
        res.append(int(d) % rank)
    return res


def example_spec(leaf, d):
    """What one example of a leaf looks like (for tracing the unbatched function)."""
    from .tracing import ShapeDtype, Tracer
    if isinstance(leaf, Tracer):
        t = leaf.ir_var.type
        if d is None:
            return leaf if leaf.weak else ShapeDtype(t.shape, t.dtype)
        return ShapeDtype(t.shape[:d] + t.shape[d + 1:], t.dtype)
    if not _is_array(leaf):
        return leaf
    shape = tuple(leaf.shape)
    if d is not None:
        shape = shape[:d] + shape[d + 1:]
    return ShapeDtype(shape, leaf.dtype)


class Vmapped:
    """``vmapc.vmap(fn, in_dims=0, out_dims=0, axis_size=None, axis_name=None)``.

    ``in_dims`` and ``out_dims`` follow JAX and torch.func: an int (negative counts
    from the end) or None, or a pytree prefix of the arguments / outputs (tuples,
    lists, dicts, namedtuples, registered classes). Keyword arguments are batched
    along axis 0. ``axis_size`` is needed when no argument is batched, and checked
    otherwise. An argument with in_dim None that is not an array reaches `fn` as it
    is (see :mod:`vmapc.arguments`). ``randomness`` is what a :mod:`vmapc.random`
    draw from a key that is the same for every example does: "error" (the default),
    "same" or "different" (see ``docs/randomness.md``). ``axis_name`` names the batch
    axis for the collectives (:mod:`vmapc.collective`: ``vmapc.psum(x, axis_name)``...)."""

    def __init__(self, fn, in_dims=0, out_dims=0, axis_size=None, randomness="error", axis_name=None):
        if not callable(fn):
            raise NotCallableError(f"vmap: expected a function, got {type(fn).__name__}")
        try:
            check_randomness(randomness)
            check_in_dims(in_dims)
            if axis_name is not None:
                from .collective import check_axis_name
                check_axis_name(axis_name, "vmap: axis_name")
        except BatchingError as err:
            from .tracing import user_loc
            raise err.with_loc(user_loc())
        self.fn = fn
        self.in_dims = in_dims
        self.out_dims = out_dims
        self.axis_size = axis_size
        self.randomness = randomness
        self.axis_name = axis_name
        self.__name__ = getattr(fn, "__name__", "vmapped")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn
        self._compiled = None

    def __repr__(self):
        extra = f", randomness={self.randomness!r}" if self.randomness != "error" else ""
        extra += "" if self.axis_name is None else f", axis_name={self.axis_name!r}"
        return f"vmap({self.__name__}, in_dims={self.in_dims!r}, out_dims={self.out_dims!r}{extra})"

    def trace_batched(self, args, kwargs, symbolic=None, with_example=False, example_offset=0, static=None):
        """Trace one example and batch it. Returns (batched Function, leaf bdims,
        out_tree, leaves[, the traced example Function]); the batched function's
        inputs are the leaves followed by any values captured from an enclosing trace
        (unbatched), and ``example_offset`` when it is None and a draw needed it (see
        :func:`batch_function`). With `symbolic` (a Sym), the batch size in the IR is
        that symbol.

        An unbatched leaf for which ``static(leaf)`` is true (by default
        :func:`vmapc.arguments.compile_static`) reaches the function as it is and is
        not among the leaves."""
        from .arguments import compile_static
        from .collective import binding
        from .tracing import trace_flat
        static = static or compile_static
        all_leaves, all_bdims, paths = leaf_in_dims(self.fn, self.in_dims, args, kwargs)
        size = batch_size(all_leaves, all_bdims, paths, self.axis_size, self.fn, args, kwargs)
        if symbolic is not None:
            size = symbolic
        passed = [d is None and static(x) for x, d in zip(all_leaves, all_bdims)]
        examples = [pytree.Static(x) if p else example_spec(x, d) for x, d, p in zip(all_leaves, all_bdims, passed)]
        # declared static arguments (pytree.Static) stay wrapped, so that they stay static
        slots, in_tree = pytree.flatten((tuple(args), kwargs), is_leaf=lambda x: type(x) is pytree.Static)
        it = iter(examples)
        ex_args, ex_kwargs = pytree.unflatten(in_tree, [x if type(x) is pytree.Static else next(it) for x in slots])
        with binding(self.axis_name, size):
            f, _, out_tree, _ = trace_flat(self.fn, ex_args, ex_kwargs, name=self.__name__)
        leaves = [x for x, p in zip(all_leaves, passed) if not p]
        bdims = [d for d, p in zip(all_bdims, passed) if not p]
        captured = getattr(f, "captured", [])
        from .writeback import out_dims_of_writes, user_outputs, writes_of
        out_ds = leaf_out_dims(self.out_dims, out_tree, f.out_types[:user_outputs(f)])
        if writes_of(f):   # arguments the function writes into: each example writes its own slice
            out_ds += out_dims_of_writes(f, bdims, size, [q for q, p in zip(paths, passed) if not p])
        bf = batch_function(f, bdims + [None] * len(captured), size, out_ds, randomness=self.randomness,
                            example_offset=example_offset, axis_name=self.axis_name)
        bf.mutated = writes_of(f)
        if with_example:
            return bf, bdims, out_tree, leaves + captured, f
        return bf, bdims, out_tree, leaves + captured

    def __call__(self, *args, **kwargs):
        from .tracing import Tracer, current, to_var, user_loc
        ctx = current()
        if ctx is not None:
            # Inside a trace (nested vmap, vmap under compile): trace, batch and inline.
            # Every unbatched argument that is not a tracer reaches the function as it is;
            # an unbatched tracer becomes an (unbatched) input of the inner program, like
            # whatever the function uses from enclosing traces through closures.
            try:
                bf, _, out_tree, all_leaves = self.trace_batched(args, kwargs, static=_not_a_tracer)
            except BatchingError as err:   # bad in_dims or sizes: point at the user's vmap call
                raise err.with_loc(user_loc())
            ins = [to_var(ctx, x, f"argument {i}") for i, x in enumerate(all_leaves)]
            outs = ctx.builder.inline(bf, ins)
            if bf.mutated:     # what the function wrote into its arguments, written into them
                from .writeback import write_back_traced
                n = len(outs) - len(bf.mutated)
                write_back_traced(all_leaves, bf.mutated, outs[n:])
                outs = outs[:n]
            return pytree.unflatten(out_tree, [Tracer(v, ctx) for v in outs])
        if self._compiled is None:
            from .api import compile as _compile
            self._compiled = _compile(self)
        return self._compiled(*args, **kwargs)


def _not_a_tracer(x) -> bool:
    from .tracing import Tracer
    return not isinstance(x, Tracer)


def vmap(fn, in_dims=0, out_dims=0, axis_size=None, randomness="error", axis_name=None):
    """Vectorize `fn` over a batch axis; see :class:`Vmapped`.

    On an IR :class:`~vmapc.ir.Function`, returns the batched Function (``in_dims``
    per flat input, ``axis_size`` required); with ``randomness="different"`` it may
    take one more input, ``example_offset`` (see :func:`batch_function`)."""
    if isinstance(fn, Function):
        check_randomness(randomness)
        if axis_size is None:
            raise BatchingError("vmap of an IR Function needs axis_size (its inputs have no batch axis yet)")
        n = len(fn.inputs)
        ins = list(in_dims) if isinstance(in_dims, (tuple, list)) else [in_dims] * n
        if len(ins) != n:
            raise BatchingError(f"vmap: {len(ins)} in_dims for a function of {n} inputs")
        norm = []
        for i, (d, v) in enumerate(zip(ins, fn.inputs)):
            _check_dim(d, f"in_dims[{i}]")
            if d is not None and not -(v.rank + 1) <= d <= v.rank:
                raise BatchingError(f"vmap: in_dims[{i}] is {d} but input {i} has rank {v.rank} "
                                    f"(valid: {-(v.rank + 1)}..{v.rank})")
            norm.append(None if d is None else int(d) % (v.rank + 1))
        outs = list(out_dims) if isinstance(out_dims, (tuple, list)) else [out_dims] * len(fn.outputs)
        if len(outs) != len(fn.outputs):
            raise BatchingError(f"vmap: {len(outs)} out_dims for a function of {len(fn.outputs)} outputs")
        for j, (d, v) in enumerate(zip(outs, fn.outputs)):
            _check_dim(d, f"out_dims[{j}]")
            if d is not None and not -(v.rank + 1) <= d <= v.rank:
                raise BatchingError(f"vmap: out_dims[{j}] is {d} but output {j} has rank {v.rank}, so the "
                                    f"batched output has rank {v.rank + 1} (valid: {-(v.rank + 1)}..{v.rank})")
        outs = [None if d is None else int(d) % (v.rank + 1) for d, v in zip(outs, fn.outputs)]
        return batch_function(fn, norm, axis_size, outs, randomness=randomness, example_offset=None,
                              axis_name=axis_name)
    return Vmapped(fn, in_dims, out_dims, axis_size, randomness, axis_name)
