"""Planning a run over chunks of a batch: the client side of :mod:`vmapc.dask`,
:mod:`vmapc.ray` and ``vmapc run --chunk-size``.

Before anything is scheduled, :func:`inputs` checks the arguments against the
function, which is one of

* a loaded artifact (``vmapc.load(path)``) or the path of one: its manifest says
  each input's type and batch axis, so the arguments are checked against it
  (count, dtype, rank, every dim but the batch);
* a ``vmapc.compile(f, in_dims=...)`` function, or a ``vmapc.vmap`` of one, or a
  plain Python function with ``in_dims`` (compiled with ``batch="dynamic"``): the
  arguments are pytrees, batched as ``in_dims`` say.

Then :meth:`Inputs.plan` compiles the function for the chunks if it is not an
artifact already (a ``batch="dynamic"`` module takes every chunk as it is; a static
one is compiled for the chunk length and pads the ragged last chunk) and returns a
:class:`Plan`: the :class:`~vmapc.runtime.chunked.Program` the workers run, the
argument leaves and their batch axes, the batch size, and each output's name,
shape, dtype and batch axis, all known before any chunk runs.

This module imports no Dask or Ray; the engines add their own checks (how their
arrays are chunked) between the two steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import pytree
from .errors import ArtifactError, BatchingError, CallError, NotCallableError
from .runtime.chunked import Program
from .shapes import Sym


def _is_arraylike(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (bool, int, float, complex))


def _shape(x) -> tuple:
    return tuple(int(d) for d in x.shape)


@dataclass
class Plan:
    """What a run over chunks needs, found before it starts (see the module docstring)."""

    program: Program
    leaves: list          # the arguments' leaves, in the program's input order
    bdims: list           # each leaf's batch axis, or None for shared leaves
    size: int             # the number of examples
    out_tree: object      # the pytree structure of the outputs
    out_shapes: list      # each output's whole shape
    out_dtypes: list

    @property
    def out_dims(self):
        return list(self.program.out_dims)

    @property
    def out_names(self):
        return list(self.program.output_names)

    @property
    def input_names(self):
        return list(self.program.input_names)


class Inputs:
    """The checked arguments of a run: ``leaves``, their ``bdims``, the batch
    ``size`` and the input ``names``, for a function still to be planned."""

    def __init__(self, source, leaves, bdims, size, names, args, what):
        self.source, self.leaves, self.bdims, self.size = source, leaves, bdims, size
        self.names, self._args, self.what = names, args, what

    def plan(self, chunk_len: int | None = None, driver: str | None = None) -> Plan:
        """Compile (if needed) for chunks of up to `chunk_len` examples; `driver`
        overrides the workers' IREE driver (default: ``local-sync`` on the CPU)."""
        from .runtime.artifact import Artifact
        if isinstance(self.source, Artifact):
            return _plan_artifact(self, driver)
        return _plan_compiled(self, chunk_len, driver)


def inputs(fn, args, in_dims=None, out_dims=None, what="vmapc.dask.map_batches") -> Inputs:
    """Check `args` against `fn` (an artifact, its path, a compiled function or a
    function with `in_dims`); see the module docstring."""
    from .runtime.artifact import Artifact, load
    if isinstance(fn, (str, os.PathLike)):
        fn = load(fn)
    if isinstance(fn, Artifact):
        return _artifact_inputs(fn, list(args), in_dims, out_dims, what)
    from . import api
    from .vmap import Vmapped
    if isinstance(fn, Vmapped):
        fn = api.compile(fn)
    elif not isinstance(fn, api.Compiled):
        if not callable(fn):
            raise NotCallableError(f"{what}: expected a vmapc.compile'd function, an artifact (vmapc.load) "
                                   f"or an artifact's path, got {type(fn).__name__}")
        if in_dims is None:
            raise BatchingError(f"{what}: give in_dims (which arguments carry the batch) to run a Python "
                                "function, or pass a vmapc.compile(f, in_dims=...) function or an artifact")
        fn = api.compile(fn, in_dims=in_dims, out_dims=0 if out_dims is None else out_dims, batch="dynamic")
        in_dims = out_dims = None
    return _compiled_inputs(fn, tuple(args), in_dims, out_dims, what)


# --- artifacts -------------------------------------------------------------------------------------------

def _artifact_inputs(art, args, in_dims, out_dims, what):
    m = art.manifest
    names = art.input_names
    if len(args) != len(names):
        raise CallError(f"{what}: {art.name} takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
    if m.get("batch") is None or all(d is None for d in m.get("in_dims") or [None]):
        raise ArtifactError(f"{what}: {art.path} was compiled without in_dims, so it has no batch axis to "
                            "split (compile it with --in-dims and --batch)")
    _check_manifest_dims(art)
    bdims = list(m["in_dims"])
    for given, key, fixed in ((in_dims, "in_dims", bdims), (out_dims, "out_dims", m["out_dims"])):
        if given is None:
            continue
        per = list(given) if isinstance(given, (list, tuple)) else [given] * len(fixed)
        types = art.inputs if key == "in_dims" else art.outputs
        norm = [None if d is None else int(d) % t.rank if isinstance(d, int) and t.rank else d
                for d, (_, t) in zip(per, types)]
        if len(per) != len(fixed) or norm != list(fixed):
            raise BatchingError(f"{what}: {key}={given!r} does not match the artifact's {key} {tuple(fixed)}, "
                                f"fixed when it was compiled (leave {key} out for an artifact)")
    leaves, size = [], None
    for (name, t), a, d in zip(art.inputs, args, bdims):
        if not _is_arraylike(a):
            if d is not None:
                raise CallError(f"{what}: argument `{name}` is {type(a).__name__}, not an array; {art.name} "
                                f"batches it along axis {d} ({name}: {t})")
            a = np.asarray(a, dtype=t.dtype)
        _check_type(what, art.name, name, a, t, d)
        if d is not None:
            n = _shape(a)[d]
            if size is not None and n != size[1]:
                raise BatchingError(f"{what}: batch sizes disagree: argument `{size[0]}` has {size[1]} examples, "
                                    f"argument `{name}` has {n}")
            size = size or (name, n)
        leaves.append(a)
    return Inputs(art, leaves, bdims, size[1], list(names), args, what)


def _check_manifest_dims(art):
    """The manifest's in_dims/out_dims/batch, which the runtime alone does not use,
    checked before a worker relies on them (an artifact is untrusted input)."""
    m = art.manifest
    for key, values in (("in_dims", art.inputs), ("out_dims", art.outputs)):
        dims = m.get(key)
        ok = isinstance(dims, list) and len(dims) == len(values) and all(
            d is None or (type(d) is int and 0 <= d < t.rank) for d, (_, t) in zip(dims, values))
        if not ok:
            raise ArtifactError(f"{art.path}: bad manifest: {key!r} must give each {key[:-5]}put's batch axis "
                                f"(an int below its rank, or null), got {dims!r}")
    batch = m.get("batch")
    if not (batch == "dynamic" or (type(batch) is int and batch >= 1)):
        raise ArtifactError(f"{art.path}: bad manifest: 'batch' must be a positive int or \"dynamic\", "
                            f"got {batch!r}")
    for key, values in (("in_dims", art.inputs), ("out_dims", art.outputs)):
        for d, (name, t) in zip(m[key], values):
            if d is not None and not (isinstance(t.shape[d], Sym) if batch == "dynamic" else t.shape[d] == batch):
                raise ArtifactError(f"{art.path}: bad manifest: {key} puts the batch of `{name}` ({t}) on axis {d}, "
                                    f"whose size is not the batch size {batch}")


def _check_type(what, fname, name, a, t, d):
    shape = _shape(a)
    want = f"{fname} takes {name}: {t}" + (f", batched along axis {d}" if d is not None else " (shared)")
    if np.dtype(a.dtype).newbyteorder("=") != np.dtype(t.dtype):
        raise CallError(f"{what}: argument `{name}` has dtype {np.dtype(a.dtype)}, but {want}")
    ok = len(shape) == t.rank and all(isinstance(want_d, Sym) or i == d or want_d == got
                                      for i, (want_d, got) in enumerate(zip(t.shape, shape)))
    if not ok:
        raise CallError(f"{what}: argument `{name}` has shape {shape}, but {want}")


def _plan_artifact(inp: Inputs, driver):
    art = inp.source
    info = art.manifest["targets"][art.target]
    path = art.path / info["file"]
    try:
        vmfb = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None
    family = info.get("target") or art.target.partition(":")[0]
    if driver is None:
        driver = "local-sync" if family == "cpu" else (info.get("driver") or art.driver)
    program = Program.create(vmfb, name=art.name, entry=art.manifest["entry"], driver=driver,
                             input_names=art.input_names, in_types=[str(t) for _, t in art.inputs],
                             in_dims=list(inp.bdims), output_names=art.output_names,
                             out_types=[str(t) for _, t in art.outputs], out_dims=list(art.manifest["out_dims"]),
                             batch=art.manifest["batch"])
    if info.get("sha256") and program.digest != info["sha256"]:
        raise ArtifactError(f"{path}: checksum mismatch (the file changed after it was loaded)")
    n = len(art.outputs)
    out_tree = pytree.LEAF if n == 1 else pytree.flatten(tuple(range(n)))[1]
    return _finish(inp, program, out_tree)


# --- compiled functions ----------------------------------------------------------------------------------

def _compiled_inputs(compiled, args, in_dims, out_dims, what):
    from .vmap import batch_size, leaf_in_dims
    if compiled.in_dims is None:
        raise BatchingError(f"{what}: {compiled.__name__} was compiled without in_dims, so no argument "
                            "carries a batch to split; use vmapc.compile(f, in_dims=...)")
    if in_dims is not None and in_dims != compiled.in_dims:
        raise BatchingError(f"{what}: in_dims={in_dims!r} does not match the compiled function's "
                            f"in_dims={compiled.in_dims!r} (leave in_dims out for a compiled function)")
    if out_dims is not None and out_dims != compiled.out_dims:
        raise BatchingError(f"{what}: out_dims={out_dims!r} does not match the compiled function's "
                            f"out_dims={compiled.out_dims!r} (leave out_dims out for a compiled function)")
    leaves, bdims, paths = leaf_in_dims(compiled.fn, compiled.in_dims, args, {})
    size = batch_size(leaves, bdims, paths, compiled.axis_size)
    if all(d is None for d in bdims):
        raise BatchingError(f"{what}: every in_dim is None, so there is no batch axis to split")
    names = [p.replace("`", "") for p in paths]
    return Inputs(compiled, list(leaves), list(bdims), int(size), names, args, what)


def _stand_in(x, d, n):
    """A zero-cost array that looks like `x` (with n examples along d) for tracing."""
    shape = list(_shape(x))
    if d is not None:
        shape[d] = n
    return np.broadcast_to(np.zeros((), np.dtype(x.dtype).newbyteorder("=")), shape)


def _plan_compiled(inp: Inputs, chunk_len, driver):
    compiled = inp.source
    dynamic = compiled.batch == "dynamic"
    n = compiled.chunk_size or chunk_len or inp.size
    n = max(int(n), 1)
    stand_ins = [_stand_in(x, d, n) if _is_arraylike(x) and (d is not None or not isinstance(x, np.ndarray))
                 else x for x, d in zip(inp.leaves, inp.bdims)]
    _, tree = pytree.flatten((inp._args, {}))
    args, _ = pytree.unflatten(tree, stand_ins)
    lowered = compiled.lower(*args)
    p = lowered.program
    if len(p.inputs) != len(inp.leaves):
        raise BatchingError(f"{inp.what}: {lowered.name} captures values from an enclosing trace; "
                            "call it at the top level")
    vmfb = lowered.vmfb()
    target = lowered.target
    if driver is None:
        driver = "local-sync" if target.name == "cpu" else (compiled.driver or target.choose_driver([p]))
    batched = lowered.batched
    out_dims = [batched.bdims.get(v) for v in batched.outputs]
    from .export import output_names
    program = Program.create(vmfb, name=lowered.name, entry=p.name, driver=driver, input_names=inp.names,
                             in_types=[str(t) for t in p.in_types], in_dims=list(inp.bdims),
                             output_names=output_names(lowered.out_tree, len(p.outputs)),
                             out_types=[str(t) for t in p.out_types], out_dims=out_dims,
                             batch="dynamic" if dynamic and not compiled.chunk_size else n)
    # shared Python numbers become arrays of the dtype they were traced with
    for i, (x, t) in enumerate(zip(inp.leaves, p.in_types)):
        if not _is_arraylike(x):
            inp.leaves[i] = np.asarray(x, dtype=t.dtype)
    return _finish(inp, program, lowered.out_tree)


def _finish(inp: Inputs, program: Program, out_tree) -> Plan:
    _, outs = program.signature()
    shapes, dtypes = [], []
    for name, t, d in zip(program.output_names, outs, program.out_dims):
        shape = list(t.shape)
        if d is not None:
            shape[d] = inp.size
        if any(isinstance(x, Sym) for x in shape):
            raise BatchingError(f"{inp.what}: output `{name}` ({t}) has a symbolic dim besides its batch axis")
        shapes.append(tuple(shape))
        dtypes.append(np.dtype(t.dtype))
    return Plan(program, inp.leaves, inp.bdims, inp.size, out_tree, shapes, dtypes)


# --- running a plan in this process -------------------------------------------------------------------------

def ranges(size: int, chunk: int):
    """[start, stop) of each chunk of `chunk` examples (one empty chunk for size 0)."""
    return [(s, min(s + chunk, size)) for s in range(0, max(size, 1), chunk)]


def run_in_process(plan: Plan, chunk_size: int, outputs, progress=None):
    """Run `plan` here, chunk after chunk, writing each output's chunk into
    ``outputs[j][index] = block`` (e.g. :class:`~vmapc.runtime.chunked.NpyOutput`);
    memory holds one chunk at a time when the batched leaves read their slices
    lazily (:class:`~vmapc.runtime.chunked.NpyFile`). `progress(done, total)` after
    each chunk."""
    from .runtime.chunked import run_chunk
    chunks = ranges(plan.size, chunk_size)
    for k, (start, stop) in enumerate(chunks):
        arrays = [x if d is None else x[(slice(None),) * d + (slice(start, stop),)]
                  for x, d in zip(plan.leaves, plan.bdims)]
        results = run_chunk(plan.program, start, arrays)
        for out, r, d in zip(outputs, results, plan.out_dims):
            if d is not None:
                out[(slice(None),) * d + (slice(start, stop),)] = r
            elif k == 0:
                out[...] = r
        if progress:
            progress(k + 1, len(chunks))
