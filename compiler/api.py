"""``vmapc.compile``: trace, batch, lower, compile and call, once per signature.

``compile(fn, target="cpu", in_dims=None, ...)`` returns a :class:`Compiled`
callable. Its first call with a given input signature (the shapes and dtypes of
the array arguments, the pytree structure, and the kinds of any Python numbers)
traces ``fn``, batches it when ``in_dims`` is given, lowers it to MLIR, compiles it
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
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import dtypes as dt
from . import pytree
from .errors import BatchingError, CallError, ExecutionError, NotCallableError, VmapcError
from .ir import walk_eqns
from .optimize import simplify
from .shapes import Sym
from .tracing import Tracer, trace_flat, user_loc
from .vmap import Vmapped, _is_array, leaf_in_dims

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


@functools.lru_cache(maxsize=64)
def _flat_tree(n):
    """The pytree structure of n positional array arguments and no keywords."""
    return pytree.flatten((tuple(range(n)), {}))[1]


class Lowered:
    """A function traced (and batched) for one signature, lowered to MLIR.

    ``ir``: the traced program (one example when ``in_dims`` is given);
    ``batched``: the batched program (None without ``in_dims``);
    ``program``: what is lowered (the above, simplified by :mod:`vmapc.optimize`);
    ``mlir``: the MLIR text handed to IREE; ``compile()``: an :class:`Executable`."""

    def __init__(self, ir, batched, out_tree, target, driver, batch, name):
        self.ir = ir
        self.batched = batched
        # what is lowered: the program after vmapc.optimize.simplify (same signature)
        self.program = simplify(batched if batched is not None else ir)
        self.has_control_flow = any(e.op in ("cond", "while_loop", "scan") for e in walk_eqns(self.program))
        self.out_tree = out_tree
        self.target = target
        self.driver = driver
        self.batch = batch
        self.name = name
        self._lowered = None

    @property
    def lowered_module(self):
        if self._lowered is None:
            from .lowering import lower
            self._lowered = lower([self.program], target=self.target)
        return self._lowered

    @property
    def mlir(self) -> str:
        return self.lowered_module.text

    def compile(self) -> "Executable":
        from .driver import compile_mlir
        from .runtime import Module
        p = self.program
        vmfb = compile_mlir(self.lowered_module, self.target, flags=self.target.program_flags([p]))
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
        self._single = out_tree == pytree.LEAF

    def _run(self, arrays, checked=False):
        try:
            # checked: the arrays' exact shapes and dtypes were matched against this signature
            return self.fn.call_checked(arrays) if checked else self.fn(*arrays)
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
        outs = self._run(arrays, checked=True)
        return outs[0] if self._single else pytree.unflatten(self.out_tree, outs)

    def __call__(self, *args, **kwargs):
        try:
            leaves, _ = pytree.flatten((args, kwargs))
            if len(leaves) != len(self.in_types):
                raise CallError(f"{self.lowered.name}: expected {len(self.in_types)} array arguments, "
                                f"got {len(leaves)}")
            for i, x in enumerate(leaves):
                _leaf_key(x, f"{i}")            # a CallError for what is not an array or a number
            leaves = _native(leaves) or leaves
            leaves = [np.asarray(x, dtype=t.dtype) if not _is_array(x) else x for x, t in zip(leaves, self.in_types)]
            return pytree.unflatten(self.out_tree, self.call_flat(leaves))
        except CallError as err:
            raise _at_call_site(err)


class Compiled:
    """The callable returned by :func:`compile`; see the module docstring."""

    def __init__(self, fn, target="cpu", in_dims=None, out_dims=0, axis_size=None, batch="static",
                 chunk_size=None, driver=None):
        from .driver import get_target
        batched = in_dims is not None
        if isinstance(fn, Vmapped) and in_dims is None:
            # vmap(f, in_dims=None, axis_size=N) is still a vmap (every output gains the batch)
            in_dims, out_dims, axis_size, fn, batched = fn.in_dims, fn.out_dims, fn.axis_size, fn.fn, True
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
        self.__name__ = getattr(fn, "__name__", "compiled")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn
        self._cache: dict = {}
        self._fast: dict = {}          # ((shape, dtype), ...) of positional arrays -> Executable
        self._lock = threading.Lock()
        self._vmapped = Vmapped(fn, in_dims, out_dims, axis_size) if batched else None

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
        name = self.__name__ if self.__name__.isidentifier() and self.__name__ != "<lambda>" else "main"
        if self._vmapped is None:
            f, _, out_tree, _ = trace_flat(self.fn, args, kwargs, name=name)
            return Lowered(f, None, out_tree, self.target, self.driver, self.batch, name)
        if self.chunk_size is not None:
            args, kwargs = self._chunk_args(args, kwargs, 0, self.chunk_size)
        symbolic = Sym(BATCH_SYMBOL) if self.batch == "dynamic" else None
        if symbolic is not None and all(d is None for d in leaf_in_dims(self.fn, self.in_dims, args, kwargs)[1]):
            raise BatchingError("vmapc.compile: batch='dynamic' needs at least one batched argument (its "
                                "size is the batch size at run time), but every in_dim is None; use "
                                "batch='static' with axis_size")
        bf, _, out_tree, _, f = self._vmapped.trace_batched(args, kwargs, symbolic=symbolic, with_example=True)
        bf.name = name
        return Lowered(f, bf, out_tree, self.target, self.driver, self.batch, name)

    def __call__(self, *args, **kwargs):
        # Fast path: positional NumPy arrays whose exact shapes and dtypes were seen
        # before go straight to their executable (a dict lookup, no pytree work); with
        # chunk_size, to the chunk loop with the batch dims found then.
        if not kwargs:
            try:
                fast = tuple((a.shape, a.dtype) for a in args if type(a) is np.ndarray)
            except AttributeError:
                fast = None
            if fast is not None and len(fast) == len(args):
                hit = self._fast.get(fast)
                if hit is not None:
                    if self.chunk_size is None:
                        return hit.call_positional(args)
                    return self._run_chunked(hit[0], args, kwargs, list(args), hit[1])
        leaves, tree = pytree.flatten((args, kwargs))
        native = _native(leaves)
        if native is not None:
            args, kwargs = pytree.unflatten(tree, native)
            return self(*args, **kwargs)
        try:
            bdims = None
            if self._vmapped is not None:
                _, bdims, _ = leaf_in_dims(self.fn, self.in_dims, args, kwargs)
            key = (tree, self._signature(leaves, bdims))
        except (BatchingError, CallError) as err:
            raise _at_call_site(err)
        exe = self._cache.get(key)
        if exe is None:
            with self._lock:        # one compile per signature, also under threads
                exe = self._cache.get(key)
                if exe is None:
                    try:
                        exe = self.lower(*args, **kwargs).compile()
                    except VmapcError as err:   # errors without a line of their own: the call's
                        raise _at_call_site(err)
                    self._cache[key] = exe
        if exe.lowered.has_control_flow and bdims is not None and (self.batch == "dynamic" or self.chunk_size) and \
                0 in {x.shape[d] for x, d in zip(leaves, bdims) if d is not None}:
            return self._run_empty(args, kwargs)
        positional = not kwargs and tree == _flat_tree(len(args)) and all(type(a) is np.ndarray for a in args)
        if self.chunk_size is not None:
            if positional:
                self._fast[tuple((a.shape, a.dtype) for a in args)] = (exe, bdims)
            return self._run_chunked(exe, args, kwargs, leaves, bdims)
        if positional:
            self._fast[tuple((a.shape, a.dtype) for a in args)] = exe
        flat = [x if _is_array(x) else np.asarray(x, dtype=t.dtype) for x, t in zip(leaves, exe.in_types)]
        return pytree.unflatten(exe.out_tree, exe.call_flat(flat))

    def _run_empty(self, args, kwargs):
        """A batch of 0 examples through a program with loops, on the host: its batched
        program at batch size 0 on the reference evaluator. The stand-in examples a chunk
        would be padded with could keep a while loop running forever, and IREE 3.13 can hang
        running a loop over zero-sized tensors on local-task (iree-org/iree#20166)."""
        from .reference import evaluate
        bf, _, out_tree, leaves = self._vmapped.trace_batched(args, kwargs)
        flat = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, bf.inputs)]
        return pytree.unflatten(out_tree, evaluate(bf, *flat))

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
        return pytree.unflatten(tree, out)

    def _run_chunked(self, exe, args, kwargs, leaves, bdims):
        """Run the batch through `exe` (compiled for chunks of ``chunk_size``) chunk by
        chunk. A full chunk reads each batched argument through a slice (a view: with
        the batch in axis 0 of a C-contiguous, 64-byte aligned array and rows a multiple
        of 64 bytes, IREE reads it in place); only the last chunk is padded (repeating
        the last example) into a buffer of its own. Results go straight into arrays
        allocated once for the whole batch; a batch of at most one chunk returns the
        module's results themselves (sliced, not copied)."""
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
            res = exe._run(chunk, checked=True)
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
        return pytree.unflatten(exe.out_tree, outs)


def compile(fn=None, *, target="cpu", in_dims=None, out_dims=0, axis_size=None, batch="static",
            chunk_size=None, driver=None):
    """Compile `fn` ahead of time with IREE; see the module docstring.

    ``target``: "cpu", "vulkan" or "cuda" (see ``vmapc.targets()``).
    ``in_dims``/``out_dims``/``axis_size``: as for :func:`vmapc.vmap`; with
    ``in_dims`` the compiled function runs over a batch.
    ``batch``: "static" or "dynamic"; ``chunk_size``: run batches in chunks of N.
    ``driver``: the IREE runtime driver (default: the target's choice).

    Usable as a decorator: ``@vmapc.compile(in_dims=0)``."""
    if fn is None:
        return lambda f: Compiled(f, target, in_dims, out_dims, axis_size, batch, chunk_size, driver)
    return Compiled(fn, target, in_dims, out_dims, axis_size, batch, chunk_size, driver)
