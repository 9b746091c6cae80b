"""``vmapc.compile``: trace, batch, lower, compile and call, once per signature.

``compile(fn, target="cpu", in_dims=None, ...)`` returns a :class:`Compiled`
callable. Its first call with a given input signature (the shapes and dtypes of
the array arguments, the pytree structure, and the values of the static arguments:
Python ints, strings and other objects, and those named in ``static_argnums``/
``static_argnames``; see :mod:`vmapc.arguments`) traces ``fn``, batches it when ``in_dims`` is given, lowers it to MLIR, compiles it
with IREE (a disk cache makes this cheap across processes) and loads it; later
calls with that signature only run it.

``compiled.lower(*args)`` stops before IREE and returns a :class:`Lowered` whose
``.ir``, ``.batched`` and ``.mlir`` show each stage; ``Lowered.compile()`` gives an
:class:`Executable` bound to exactly that signature, which raises
:class:`~vmapc.errors.CallError` for any other.

Batch sizes: ``batch="static"`` (the default) compiles for the batch size seen;
``batch="dynamic"`` compiles one module whose batch dim is symbolic, serving every
batch size (CPU); ``chunk_size=N`` compiles for batches of N and runs any batch as
a loop of chunks, padding the last one, which bounds memory and keeps shapes
static for GPUs.

``randomness`` ("error", "same", "different") is vmap's mode for random draws from a
key every example shares (``docs/randomness.md``). With "different" the compiled
program may take one more input, the global index of its first example, which the call
passes: 0 for a whole batch, the chunk's start in the chunk loop.
"""

from __future__ import annotations

import threading

import numpy as np

from . import dtypes as dt
from . import pytree
from .arguments import MANY_VALUES, StaticArgs, arg_path, check_hashable, compile_static, static_summary
from .errors import BatchingError, CallError, ExecutionError, NotCallableError, PerformanceWarning, VmapcError
from .ir import walk_eqns
from .runtime.module import as_input
from .optimize import simplify
from .shapes import Sym
from .tracing import Tracer, _arg_names, current, trace_flat, user_loc
from .vmap import Vmapped, _check_binds, _is_array, leaf_in_dims
from .writeback import check_targets, finish, writes_of

BATCH_SYMBOL = "B"


def _leaf_key(x, path):
    if isinstance(x, bool):
        return ("w", bool)
    if isinstance(x, (int, float)) and not isinstance(x, np.generic):
        return ("w", type(x))
    if isinstance(x, Tracer):
        raise CallError(f"argument {path} is a tracer: call the compiled function on arrays, or use "
                        "vmapc.vmap inside traced code")
    if isinstance(x, (np.ndarray, np.generic)) or _is_array(x):
        if isinstance(x, np.ndarray) and type(x) is not np.ndarray:
            as_input(x, path)      # a CallError for subclasses whose meaning would be dropped
        d = np.dtype(x.dtype)
        if not d.isnative:       # big-endian data runs as a native copy (see _native)
            d = d.newbyteorder("=")
        if d == object:
            raise CallError(f"argument {path} is a NumPy array of dtype object; vmapc needs numeric arrays")
        if d not in dt.SHORT_NAMES:
            raise CallError(f"argument {path} has dtype {d}, which vmapc does not support "
                            f"(supported: {', '.join(str(t) for t in dt.ALL)})")
        return ("a", tuple(x.shape), d)
    raise CallError(f"argument {path} has type {type(x).__name__}; pass NumPy arrays, Python numbers, "
                    "or tuples, lists and dicts of them")


def _flat_inputs(leaves, in_types):
    """The leaves as arrays of the signature's dtypes: Python numbers converted (an int
    that does not fit is a CallError), arrays as they are."""
    return [x if _is_array(x) else as_input(x, f"{i}", t.dtype) for i, (x, t) in enumerate(zip(leaves, in_types))]


def _signature_of(fn):
    import inspect
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):   # builtins and C functions: let the call say
        return None


def _check_arguments(sig, args, kwargs, name):
    """A CallError (not Python's TypeError from inside tracing) when the arguments do not
    fit the parameters `sig` (an inspect.Signature, or None: not known): too many or too
    few, or an unknown keyword."""
    if sig is None:
        return
    from inspect import Parameter
    if kwargs and Parameter.VAR_KEYWORD not in {p.kind for p in sig.parameters.values()}:
        unknown = [k for k in kwargs if k not in sig.parameters
                   or sig.parameters[k].kind == Parameter.POSITIONAL_ONLY]
        if unknown:
            params = ", ".join(sig.parameters)
            raise CallError(f"{name}: unexpected keyword argument {unknown[0]!r} (its parameters: {params})")
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        params = ", ".join(p.name for p in sig.parameters.values())
        raise CallError(f"{name}: {e} (its parameters: {params or 'none'})") from None


def _native(leaves):
    """The leaves with arrays of non-native byte order (``'>f4'`` on x86) copied to
    native order, or None when there are none."""
    if not any(isinstance(x, (np.ndarray, np.generic)) and not x.dtype.isnative for x in leaves):
        return None
    return [x.astype(x.dtype.newbyteorder("=")) if isinstance(x, (np.ndarray, np.generic))
            and not x.dtype.isnative else x for x in leaves]


def _at_call_site(err: VmapcError) -> VmapcError:
    """Point an error found while checking a call at the user's line that made it."""
    return err.with_loc(user_loc())


def _fast_key(args):
    """For positional arguments that are all NumPy arrays or Python ints (static): their
    shapes and dtypes, and the ints themselves, as a dict key, and whether there are
    ints; (None, False) for anything else."""
    key = []
    ints = False
    for a in args:
        t = type(a)
        if t is np.ndarray:
            key.append((a.shape, a.dtype))
        elif t is int or t is bool:
            key.append((t, a))
            ints = True
        else:
            return None, False
    return tuple(key), ints


class Lowered:
    """A function traced (and batched) for one signature, lowered to MLIR.

    ``ir``: the traced program (one example when ``in_dims`` is given);
    ``batched``: the batched program (None without ``in_dims``);
    ``program``: what is lowered (the above, simplified by :mod:`vmapc.optimize`);
    ``mlir``: the MLIR text handed to IREE; ``compile()``: an :class:`Executable`."""

    def __init__(self, ir, batched, out_tree, target, driver, batch, name, write_back=True, in_tree=None,
                 static_args=None):
        self.ir = ir
        self.in_tree = in_tree            # the arguments' structure, with their static values
        self.param_names = []             # the function's parameter names (for messages)
        self.static_args = static_args    # static_argnums/static_argnames (a vmapc.arguments.StaticArgs)
        self.batched = batched
        # the arguments the function writes into (their final values are the last outputs)
        self.mutated = writes_of(ir)
        self.write_back = write_back
        # what is lowered: the program after vmapc.optimize.simplify (same signature)
        self.program = simplify(batched if batched is not None else ir)
        self.has_control_flow = any(e.op in ("cond", "while_loop", "scan") for e in walk_eqns(self.program))
        self.arg_names = ir.arg_names or [f"arg{i}" for i in range(len(ir.inputs))]
        self.out_tree = out_tree
        self.target = target
        self.driver = driver
        self.batch = batch
        self.name = name
        self._lowered = None
        # the position of the input `example_offset` (see vmapc.vmap.batch_function), or None
        self.offset_input = getattr(batched, "offset_input", None) if batched is not None else None

    @property
    def lowered_module(self):
        if self._lowered is None:
            from .lowering import lower
            self._lowered = lower([self.program], target=self.target)
        return self._lowered

    @property
    def mlir(self) -> str:
        return self.lowered_module.text

    def vmfb(self) -> bytes:
        """The compiled module (``.vmfb`` bytes) that :meth:`compile` loads."""
        from .driver import compile_mlir
        return compile_mlir(self.lowered_module, self.target, flags=self.target.program_flags([self.program]))

    def compile(self) -> "Executable":
        from .runtime import Module
        p = self.program
        vmfb = self.vmfb()
        signatures = {p.name: (p.in_types, p.out_types)}
        # a dynamic batch on the CPU picks its driver per call, by the batch size
        switch = self.target.driver_switch(p) if self.driver is None and self.batch == "dynamic" else None
        if switch is not None:
            from .runtime.module import ByBatchSize
            return Executable(ByBatchSize(vmfb, p.name, signatures, *switch), self.out_tree, self)
        module = Module(vmfb, driver=self.driver or self.target.choose_driver([p]), signatures=signatures)
        return Executable(module.function(p.name), self.out_tree, self)

    def __repr__(self):
        return f"<vmapc.Lowered {self.program!r} for {self.target.name}>"


class Executable:
    """A compiled program bound to one signature: call it with flat array leaves
    in the traced order (``Compiled`` does that for you), or with the original
    pytree arguments."""

    def __init__(self, fn, out_tree, lowered):
        self.fn = fn
        self.out_tree = out_tree
        self.lowered = lowered
        self.in_types = lowered.program.in_types
        self._single = out_tree == pytree.LEAF and not lowered.mutated
        self.mutated, self.write_back = lowered.mutated, lowered.write_back
        self._offset = lowered.offset_input is not None    # one more input: the first example's index
        self.n_args = len(self.in_types) - self._offset

    def check_targets(self, leaves):
        """Before a call: the arguments the function writes into can take the write-back."""
        if self.mutated and self.write_back:
            check_targets(leaves, self.mutated, self.lowered.arg_names)

    def finish(self, leaves, outs):
        """The call's result, after writing back into the arguments (vmapc.writeback)."""
        return finish(self.out_tree, outs, leaves, self.mutated, self.lowered.arg_names, self.write_back)

    def _run(self, arrays, checked=False, offset=0):
        if self._offset:
            arrays = list(arrays) + [np.array(offset, dtype=np.uint32)]
        try:
            # checked: the arrays' exact shapes and dtypes were matched against this signature
            return self.fn.call_checked(arrays) if checked else self.fn(*arrays)
        except CallError as err:        # found by the runtime (a broadcast view too big to copy)
            raise _at_call_site(err)
        except RuntimeError as err:     # IREE's status: out of memory, a device failure
            if isinstance(err, VmapcError):
                raise
            raise ExecutionError(f"{self.lowered.name}: the compiled code failed while running: "
                                 f"{str(err).splitlines()[0] if str(err) else type(err).__name__}",
                                 user_loc()) from err

    def call_flat(self, leaves):
        return self._run(leaves)

    def call_positional(self, arrays):
        """Call with the arrays of a flat signature and unflatten the results."""
        if self._single:
            return self._run(arrays, checked=True)[0]
        self.check_targets(arrays)
        return self.finish(arrays, self._run(arrays, checked=True))

    def __call__(self, *args, **kwargs):
        try:
            if self.lowered.static_args is not None:
                args, kwargs = self.lowered.static_args.wrap(args, kwargs)
            leaves, tree = pytree.flatten((args, kwargs), static=compile_static)
            expected = self.lowered.in_tree
            if expected is not None and tree != expected:
                where, got, want = pytree.first_difference(tree, expected)
                if "const" in (got.kind, want.kind):     # a static value, where arrays were traced or another value
                    raise CallError(f"{self.lowered.name}: argument `{arg_path(where, self.lowered.param_names)}` "
                                    f"is {pytree.describe(got)}, but this executable was compiled for "
                                    f"{pytree.describe(want)} there")
            if len(leaves) != self.n_args:
                raise CallError(f"{self.lowered.name}: expected {self.n_args} array arguments, "
                                f"got {len(leaves)}")
            for i, x in enumerate(leaves):
                _leaf_key(x, f"{i}")            # a CallError for what is not an array or a number
            if _native(leaves) is not None and self.mutated:
                raise CallError(f"{self.lowered.name}: an argument has non-native byte order; pass "
                                "native arrays to a function that writes into its arguments")
            self.check_targets(leaves)
            flat = _native(leaves) or leaves
            return self.finish(leaves, self.call_flat(_flat_inputs(flat, self.in_types)))
        except CallError as err:
            raise _at_call_site(err)


class Compiled:
    """The callable returned by :func:`compile`; see the module docstring."""

    def __init__(self, fn, target="cpu", in_dims=None, out_dims=0, axis_size=None, batch="static",
                 chunk_size=None, driver=None, write_back=True, randomness=None, static_argnums=None,
                 static_argnames=None, axis_name=None):
        from .driver import get_target
        batched = in_dims is not None
        self._of_vmap = isinstance(fn, Vmapped)     # vmap(f)(...) on arrays: vmap's own errors
        if isinstance(fn, Vmapped) and in_dims is None:
            # vmap(f, in_dims=None, axis_size=N) is still a vmap (every output gains the batch)
            randomness = fn.randomness if randomness is None else randomness
            in_dims, out_dims, axis_size, axis_name, fn, batched = (fn.in_dims, fn.out_dims, fn.axis_size,
                                                                    fn.axis_name, fn.fn, True)
        if randomness is not None and not batched:
            raise BatchingError("vmapc.compile: randomness needs in_dims (it says what a vmap does with random "
                                "draws from a key every example shares)")
        randomness = "error" if randomness is None else randomness
        if not callable(fn):
            raise NotCallableError(f"vmapc.compile: expected a function, got {type(fn).__name__}")
        if batch not in ("static", "dynamic"):
            raise BatchingError(f"vmapc.compile: batch must be 'static' or 'dynamic', got {batch!r}")
        if (batch == "dynamic" or chunk_size is not None) and not batched:
            raise BatchingError("vmapc.compile: batch='dynamic' and chunk_size need in_dims (which "
                                "arguments carry the batch)")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise BatchingError(f"vmapc.compile: chunk_size must be a positive int, got {chunk_size!r}")
        self.target = get_target(target)
        self.fn = fn
        self.in_dims, self.out_dims, self.axis_size = in_dims, out_dims, axis_size
        self.batch = batch
        self.chunk_size = chunk_size
        self.driver = driver
        self.write_back = bool(write_back)
        self.__name__ = getattr(fn, "__name__", "compiled")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn
        self._cache: dict = {}
        self._fast: dict = {}          # ((shape, dtype), ...) of positional arrays -> Executable
        self._sig = False              # fn's inspect.Signature, found on the first full call
        self._lock = threading.Lock()
        self._writes_seen = False      # some signature writes into its arguments
        self.randomness = randomness
        self._vmapped = Vmapped(fn, in_dims, out_dims, axis_size, randomness, axis_name) if batched else None
        try:
            self._static = StaticArgs(fn, static_argnums, static_argnames)
        except CallError as err:
            raise _at_call_site(err)
        self._static_seen: set = set()     # the static values compiled for (PerformanceWarning past MANY_VALUES)

    def __repr__(self):
        return f"<vmapc.compile({self.__name__}, target={self.target.name!r}, in_dims={self.in_dims!r})>"

    # -- the signature of a call ------------------------------------------------------------------
    def _signature(self, leaves, bdims):
        """The cache key: each leaf's shape and dtype (its batch axis left out when one
        module serves every batch size)."""
        key = []
        for i, x in enumerate(leaves):
            k = _leaf_key(x, f"{i}")
            if k[0] == "a" and bdims is not None and bdims[i] is not None and (
                    self.batch == "dynamic" or self.chunk_size is not None):
                shape = list(k[1])
                shape[bdims[i]] = None
                k = ("a", tuple(shape), k[2])
            key.append(k)
        return tuple(key)

    def lower(self, *args, **kwargs) -> Lowered:
        """Trace (and batch) for these arguments and lower to MLIR, without compiling."""
        args, kwargs = self._static.wrap(args, kwargs)
        lowered = self._lower(args, kwargs)
        lowered.in_tree = pytree.flatten((args, kwargs), static=compile_static)[1]
        lowered.static_args = self._static
        lowered.param_names = _arg_names(self.fn, len(args))
        return lowered

    def _lower(self, args, kwargs) -> Lowered:
        name = self.__name__ if self.__name__.isidentifier() and self.__name__ != "<lambda>" else "main"
        if self._vmapped is None:
            f, _, out_tree, _ = trace_flat(self.fn, args, kwargs, name=name)
            return Lowered(f, None, out_tree, self.target, self.driver, self.batch, name, self.write_back)
        if self.chunk_size is not None:
            args, kwargs = self._chunk_args(args, kwargs, 0, self.chunk_size)
        symbolic = Sym(BATCH_SYMBOL) if self.batch == "dynamic" else None
        if symbolic is not None and all(d is None for d in leaf_in_dims(self.fn, self.in_dims, args, kwargs)[1]):
            raise BatchingError("vmapc.compile: batch='dynamic' needs at least one batched argument (its "
                                "size is the batch size at run time), but every in_dim is None; use "
                                "batch='static' with axis_size")
        bf, _, out_tree, _, f = self._vmapped.trace_batched(args, kwargs, symbolic=symbolic, with_example=True,
                                                            example_offset=None)
        bf.name = name
        return Lowered(f, bf, out_tree, self.target, self.driver, self.batch, name, self.write_back)

    def __call__(self, *args, **kwargs):
        # Fast path: positional NumPy arrays (and static Python ints) whose exact shapes
        # and dtypes (and values) were seen before go straight to their executable (a dict
        # lookup, no pytree work); with chunk_size, to the chunk loop with the batch dims
        # found then.
        fast, ints = (None, False) if kwargs else _fast_key(args)
        if fast is not None:
            hit = self._fast.get(fast)
            if hit is not None:
                arrays = [a for a in args if type(a) is np.ndarray] if ints else args
                if self.chunk_size is None:
                    return hit.call_positional(arrays)
                return self._run_chunked(hit[0], args, kwargs, list(arrays), hit[1])
        if current() is not None:
            return self._inline(args, kwargs)
        args, kwargs = self._static.wrap(args, kwargs)
        leaves, tree = pytree.flatten((args, kwargs), static=compile_static)
        native = _native(leaves)
        if native is not None:
            out = self(*pytree.unflatten(tree, native)[0], **pytree.unflatten(tree, native)[1])
            for orig, nat in zip(leaves, native):   # writes into native copies go to the originals
                if nat is not orig and self._writes_seen:
                    np.copyto(orig, nat)
            return out
        try:
            if self._of_vmap:
                _check_binds(self.fn, args, kwargs)
            else:
                if self._sig is False:
                    self._sig = _signature_of(self.fn)
                _check_arguments(self._sig, args, kwargs, self.__name__)
            key, bdims = self._key(args, kwargs, leaves, tree)
            try:
                exe = self._cache.get(key)
            except TypeError:       # an unhashable static value: say which
                check_hashable(tree, _arg_names(self.fn, len(args)))
                raise
        except (BatchingError, CallError) as err:
            raise _at_call_site(err)
        if exe is None:
            with self._lock:        # one compile per signature, also under threads
                exe = self._cache.get(key)
                if exe is None:
                    try:
                        exe = self.lower(*args, **kwargs).compile()
                    except VmapcError as err:   # errors without a line of their own: the call's
                        raise _at_call_site(err)
                    self._cache[key] = exe
                    self._count_static_values(tree, args)
        if exe.lowered.has_control_flow and bdims is not None and (self.batch == "dynamic" or self.chunk_size) and \
                0 in {x.shape[d] for x, d in zip(leaves, bdims) if d is not None}:
            return self._run_empty(args, kwargs)
        if fast is not None and not (exe.lowered.has_control_flow and self.batch == "dynamic"):
            # (a batch of 0 examples through loops must not reach the compiled module: _run_empty)
            self._fast[fast] = exe if self.chunk_size is None else (exe, bdims)
        if self.chunk_size is not None:
            return self._run_chunked(exe, args, kwargs, leaves, bdims)
        exe.check_targets(leaves)
        self._writes_seen = self._writes_seen or bool(exe.mutated)
        try:
            flat = _flat_inputs(leaves, exe.in_types)
        except CallError as err:
            raise _at_call_site(err)
        return exe.finish(leaves, exe.call_flat(flat))

    def _run_empty(self, args, kwargs):
        """A batch of 0 examples through a program with loops, on the host: its batched
        program at batch size 0 on the reference evaluator. The stand-in examples a chunk
        would be padded with could keep a while loop running forever, and IREE 3.13 can hang
        running a loop over zero-sized tensors on local-task (iree-org/iree#20166)."""
        from .reference import evaluate
        bf, _, out_tree, leaves = self._vmapped.trace_batched(args, kwargs)
        flat = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, bf.inputs)]
        return pytree.unflatten(out_tree, evaluate(bf, *flat))

    def _key(self, args, kwargs, leaves, tree):
        """(the cache key of a call, the batch dims of its traced leaves): the
        arguments' structure with their static values, then each traced leaf's kind,
        shape and dtype."""
        bdims = None
        if self._vmapped is not None:
            _, bdims, _ = leaf_in_dims(self.fn, self.in_dims, args, kwargs, static=compile_static)
        return (tree, self._signature(leaves, bdims)), bdims

    def cache_key(self, *args, **kwargs):
        """The key under which a call with these arguments finds its compiled module
        (two calls with equal keys share one): the static values and the traced
        arguments' shapes and dtypes. Compiles nothing."""
        args, kwargs = self._static.wrap(args, kwargs)
        leaves, tree = pytree.flatten((args, kwargs), static=compile_static)
        return self._key(args, kwargs, leaves, tree)[0]

    def _inline(self, args, kwargs):
        """Called inside a trace (vmap or compile of a function that calls this one):
        the function's program becomes part of the enclosing one, as ``jax.jit`` inside
        ``jax.vmap`` does."""
        if self._vmapped is not None:
            return self._vmapped(*args, **kwargs)
        return self.fn(*args, **kwargs)

    def _count_static_values(self, tree, args):
        """Warn once when this function has compiled for many values of its static
        arguments (an int that changes every call compiles every call)."""
        if not pytree.static_values(tree):
            return
        n = len(self._static_seen)
        self._static_seen.add(tree)
        if n == MANY_VALUES and len(self._static_seen) > MANY_VALUES:
            import warnings
            warnings.warn(PerformanceWarning(
                f"vmapc.compile({self.__name__}) has compiled for {len(self._static_seen)} different values of "
                f"its static arguments (now {static_summary(tree, _arg_names(self.fn, len(args)))}); each "
                "value compiles a module of its own. If a value changes from call to call, pass it as an "
                "array (np.int64(n), np.float32(x)) so that it is traced instead"), stacklevel=3)

    # -- chunk_size -------------------------------------------------------------------------------
    def _chunk_args(self, args, kwargs, start, n):
        """The arguments for examples [start, start + n), padding past the end by
        repeating the last example."""
        leaves, tree = pytree.flatten((args, kwargs))
        _, bdims, _ = leaf_in_dims(self.fn, self.in_dims, args, kwargs)
        out = []
        for x, d in zip(leaves, bdims):
            if d is None:
                out.append(x)
                continue
            size = x.shape[d]
            if size == 0:   # no examples: one chunk of stand-ins (their batched results are dropped)
                shape = list(np.shape(x))
                shape[d] = n
                out.append(np.zeros(shape, np.asarray(x).dtype))
                continue
            idx = np.minimum(np.arange(start, start + n), size - 1)
            out.append(np.take(np.asarray(x), idx, axis=d))
        return self._static.wrap(*pytree.unflatten(tree, out))

    def _run_chunked(self, exe, args, kwargs, leaves, bdims):
        """Run the batch through `exe` (compiled for chunks of ``chunk_size``) chunk by
        chunk. A full chunk reads each batched argument through a slice (a view: with
        the batch in axis 0 of a C-contiguous, 64-byte aligned array and rows a multiple
        of 64 bytes, IREE reads it in place); only the last chunk is padded (repeating
        the last example) into a buffer of its own. Results go straight into arrays
        allocated once for the whole batch; a batch of at most one chunk returns the
        module's results themselves (sliced, not copied)."""
        exe.check_targets(leaves)
        sizes = {x.shape[d] for x, d in zip(leaves, bdims) if d is not None}
        size = sizes.pop() if sizes else self.axis_size
        n = self.chunk_size
        flat = [np.asarray(x, dtype=t.dtype) for x, t in zip(leaves, exe.in_types)]
        batched = [i for i, d in enumerate(bdims) if d is not None]
        batched_program = exe.lowered.batched
        out_ds = [batched_program.bdims.get(v) for v in batched_program.outputs]
        outs = None
        for start in range(0, max(size, 1), n):   # a batch of 0 still runs one chunk of stand-ins
            stop = min(start + n, size)
            chunk = list(flat)
            for i in batched:
                x, d = flat[i], bdims[i]
                if stop - start == n:
                    chunk[i] = x[(slice(None),) * d + (slice(start, stop),)]
                    continue
                shape = list(x.shape)
                shape[d] = n
                pad = exe.fn.module.empty(shape, x.dtype)   # IREE's pool: aligned, no page faults
                if size == 0:     # no examples: stand-ins (their batched results are dropped)
                    pad[...] = 0
                else:
                    np.take(x, np.minimum(np.arange(start, start + n), size - 1), axis=d, out=pad)
                chunk[i] = pad
            res = exe._run(chunk, checked=True, offset=start)
            if size <= n:
                outs = [r if d is None else r[(slice(None),) * d + (slice(0, size),)] for r, d in zip(res, out_ds)]
                break
            if outs is None:
                outs = []
                for r, d in zip(res, out_ds):
                    if d is None:
                        outs.append(r)
                    else:
                        shape = list(r.shape)
                        shape[d] = size
                        outs.append(exe.fn.module.empty(shape, r.dtype))   # IREE's pool: no page faults
            for o, r, d in zip(outs, res, out_ds):
                if d is not None:
                    o[(slice(None),) * d + (slice(start, stop),)] = r[(slice(None),) * d + (slice(0, stop - start),)]
        return exe.finish(leaves, outs)


def compile(fn=None, *, target="cpu", in_dims=None, out_dims=0, axis_size=None, batch="static",
            chunk_size=None, driver=None, write_back=True, randomness=None, static_argnums=None,
            static_argnames=None, axis_name=None):
    """Compile `fn` ahead of time with IREE; see the module docstring.

    ``target``: "cpu", "vulkan" or "cuda" (see ``vmapc.targets()``).
    ``in_dims``/``out_dims``/``axis_size``/``randomness``: as for :func:`vmapc.vmap`;
    with ``in_dims`` the compiled function runs over a batch.
    ``batch``: "static" or "dynamic"; ``chunk_size``: run batches in chunks of N.
    ``driver``: the IREE runtime driver (default: the target's choice).
    ``write_back``: a function that writes into its array arguments (``x[i] = v``, ``x += y``)
    writes the final values into the caller's arrays after each call, as NumPy does; with
    False the caller's arrays are left alone and each call returns ``(result, {argument name:
    final value})`` (see :mod:`vmapc.writeback`).
    ``static_argnums``/``static_argnames``: arguments passed to `fn` as they are
    (as in ``jax.jit``): each distinct (hashable) value compiles its own module.
    Python ints are static without being declared, floats are traced (see
    :mod:`vmapc.arguments` and ``docs/vmap.md``).
    ``axis_name``: names the batch axis for collectives, as for :func:`vmapc.vmap`.

    Usable as a decorator: ``@vmapc.compile(in_dims=0)``."""
    options = dict(target=target, in_dims=in_dims, out_dims=out_dims, axis_size=axis_size, batch=batch,
                   chunk_size=chunk_size, driver=driver, write_back=write_back, randomness=randomness,
                   static_argnums=static_argnums, static_argnames=static_argnames, axis_name=axis_name)
    if fn is None:
        return lambda f: Compiled(f, **options)
    return Compiled(fn, **options)
