"""``vmapc.dask``: run a compiled function or an artifact over Dask arrays chunked
along the batch axis (install with ``pip install "vmapc[dask]"``).

A batch is embarrassingly parallel, so a batch bigger than one process or one
machine is a Dask array chunked along its batch axis, and running the batched
function over it is one task per chunk::

    import vmapc, vmapc.dask

    model = vmapc.load("mlp_out/")                          # or vmapc.compile(f, in_dims=...)
    xs = vmapc.dask.from_npy("xs.npy", chunks=100_000)      # read by the workers, chunk by chunk
    ys = vmapc.dask.map_batches(model, xs, w1, w2)          # a Dask array; nothing has run yet
    print(ys.shape, ys.dtype, ys.chunks)                    # known before computing
    vmapc.dask.to_npy(ys, "ys.npy")                         # computed and written by chunks

How it maps onto Dask:

* Everything about the call is checked first, on the client, before a task is
  scheduled: the arguments against the function's signature (an artifact's
  manifest, or the traced function), batched inputs chunked along their batch axis
  only and all alike.
* The compiled module travels as bytes inside a small :class:`~vmapc.runtime.chunked.Program`
  that is one key of the graph, as is every shared (unbatched) argument: each worker
  receives them once, whatever the number of chunks, and no task embeds them. Each
  worker process loads the module on its first chunk and reuses it for the others
  (IREE objects are never pickled). On the CPU the workers run it on IREE's
  ``local-sync`` driver, on the worker's thread, so Dask alone decides the
  parallelism.
* A chunk shorter than the others (the last one, usually) runs as it is through a
  ``batch="dynamic"`` module, and is padded to the compiled size through a static one.
* One task per chunk runs the module and returns all its outputs; each output is a
  Dask array picking its part, so a computation of several outputs runs each chunk once.
* A chunk that fails with a vmapc error fails the computation with that error, the
  chunk's index range in its message (and in ``err.chunk``). A worker that dies is
  Dask's to handle: ``dask.distributed`` reruns its tasks elsewhere.

It works with any Dask scheduler: the threaded default (IREE releases the GIL while
a module runs, so threads run chunks in parallel), ``dask.distributed`` with a
``LocalCluster`` or any scheduler address (``Client("tcp://...")``). Inputs and outputs
as files (:func:`from_npy`, :func:`to_npy`, :func:`to_zarr`) are read and written by
the workers at the same paths, so a cluster of several machines needs a shared file
system for them. ``docs/scaling.md`` walks through it.
"""

from __future__ import annotations

import os
import shutil
import uuid

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.layers import ArraySliceDep
except ImportError as _e:  # pragma: no cover - the dask extra is missing
    raise ImportError(f"vmapc.dask needs Dask ({_e}): pip install \"vmapc[dask]\"") from _e

from . import pytree
from .errors import BatchingError, VmapcError
from .runtime.chunked import NpyFile, NpyOutput, run_chunk

__all__ = ["map_batches", "from_npy", "to_npy", "to_zarr"]

WHAT = "vmapc.dask.map_batches"


def _is_dask(x) -> bool:
    return isinstance(x, da.Array)


def _fail(err: VmapcError):
    from .tracing import user_loc
    return err.with_loc(user_loc())


def map_batches(fn, *args, in_dims=None, out_dims=None, chunk_size=None, driver=None):
    """Apply `fn` to a batch held in Dask arrays, one task per chunk of the batch axis.

    `fn` is an artifact (``vmapc.load(path)``, or its path), a function compiled with
    ``vmapc.compile(f, in_dims=...)`` (or a ``vmapc.vmap``), or a Python function with
    `in_dims` (compiled with ``batch="dynamic"``). `args` are its arguments: batched ones
    are Dask arrays chunked along their batch axis (or NumPy arrays and
    :class:`~vmapc.runtime.chunked.NpyFile` s, split into chunks of `chunk_size`), shared
    ones NumPy arrays, numbers or Dask arrays. `in_dims`/`out_dims` are those of the
    compiled function (an artifact's are in its manifest); `chunk_size` also rechunks
    batched Dask arrays along the batch axis. `driver` overrides the workers' IREE
    driver (default: ``local-sync`` on the CPU, the build's driver elsewhere).

    Returns a Dask array for each output, in the structure `fn` returns (a tuple for
    an artifact with several outputs), with its shape, dtype and chunks known. Errors
    in the arguments are raised here, before anything runs."""
    try:
        return _map_batches(fn, args, in_dims, out_dims, chunk_size, driver)
    except VmapcError as err:
        raise _fail(err) from None


def _map_batches(fn, args, in_dims, out_dims, chunk_size, driver):
    from .scaleout import inputs
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool)
                                   or chunk_size < 1):
        raise BatchingError(f"{WHAT}: chunk_size must be a positive int, got {chunk_size!r}")
    inp = inputs(fn, args, in_dims, out_dims, WHAT)
    leaves = list(inp.leaves)
    for i, (x, d) in enumerate(zip(leaves, inp.bdims)):
        if d is None:
            continue
        if not _is_dask(x):
            if chunk_size is None:
                raise BatchingError(f"{WHAT}: argument `{inp.names[i]}` is not a Dask array (it is {type(x).__name__}); "
                                    "give chunk_size=N to split it into chunks of N examples, or pass a Dask "
                                    "array chunked along its batch axis")
            leaves[i] = _from_arraylike(x, d, int(chunk_size))
        elif chunk_size is not None:
            leaves[i] = x.rechunk({d: int(chunk_size)})
    chunks = _check_chunks(inp.names, leaves, inp.bdims)
    inp.leaves = leaves
    plan = inp.plan(chunk_len=max(chunks) if chunks else 1, driver=driver)
    return _graph(plan, chunks)


def _from_arraylike(x, d, n):
    chunks = tuple(n if i == d else -1 for i in range(len(x.shape)))
    if isinstance(x, NpyFile):
        return _npy_array(x, chunks)
    return da.from_array(x, chunks=chunks)


def _check_chunks(names, leaves, bdims) -> tuple:
    """The chunks along the batch axis, the same for every batched input; no batched
    input may be split along another axis (each task needs whole examples)."""
    found = None
    for name, x, d in zip(names, leaves, bdims):
        if d is None:
            continue
        for axis, c in enumerate(x.chunks):
            if axis != d and len(c) > 1:
                raise BatchingError(
                    f"{WHAT}: argument `{name}` is chunked along axis {axis} ({len(c)} chunks), which is not its "
                    f"batch axis ({d}); each task needs whole examples: rechunk it with "
                    f"x.rechunk({{{axis}: -1}}) (or chunk it along axis {d} only)")
        c = tuple(int(v) for v in x.chunks[d])
        if found is None:
            found = (name, c)
        elif c != found[1]:
            raise BatchingError(
                f"{WHAT}: batched arguments are chunked differently along the batch axis: `{found[0]}` has "
                f"chunks {_fmt_chunks(found[1])}, `{name}` has {_fmt_chunks(c)}; chunk them alike, e.g. "
                f"{name}.rechunk({{{d}: {found[0]}.chunks[...]}}) or chunk_size=N")
    return found[1] if found else ()


def _fmt_chunks(c) -> str:
    return str(c) if len(c) <= 6 else f"({', '.join(map(str, c[:3]))}, ..., {c[-1]}) ({len(c)} chunks)"


def _shared(x, name=None):
    """A shared argument as a one-chunk Dask array: one key of the graph, which each
    worker fetches once; no task embeds it."""
    if _is_dask(x):
        return x.rechunk(tuple(-1 for _ in x.shape))
    x = np.asarray(x)
    return da.from_array(x, chunks=tuple(-1 for _ in x.shape), name=name, meta=np.empty((0,) * x.ndim, x.dtype))


def _program_array(program):
    """The Program as a one-element object array in one chunk (a graph key like the
    shared arguments; its name comes from the module's SHA-256, not a hash of its bytes)."""
    holder = np.empty((1,), object)
    holder[0] = program
    return _shared(holder, name=f"vmapc-program-{program.digest[:32]}-{dask.base.tokenize(program.batch, program.driver)}")


def _unwrap(block):
    # blockwise hands over a block split along no axis but the batch one as nested
    # one-element lists (one level per other axis)
    while isinstance(block, list):
        (block,) = block
    return block


def _run_block(program, where, *leaves):
    (index,) = where
    return tuple(run_chunk(_unwrap(program)[0], index.start, [_unwrap(x) for x in leaves]))


def _pick(block, j):
    return block[j]


def _pick_first(blocks, j):
    # `blocks` is the list of one block that a contracted index hands over
    return _unwrap(blocks)[j]


def _graph(plan, chunks):
    program = plan.program
    pairs = []
    for k, (x, d) in enumerate(zip(plan.leaves, plan.bdims)):
        if d is None:        # every task gets the one block (a shared argument: no batch index)
            x = _shared(x)
            pairs += [x, tuple(f"x{k}_{a}" for a in range(x.ndim))]
        else:
            pairs += [x, tuple("b" if a == d else f"x{k}_{a}" for a in range(x.ndim))]
    runs = da.blockwise(_run_block, ("b",), _program_array(program), ("p",),
                        ArraySliceDep((tuple(chunks),)), ("b",), *pairs,
                        concatenate=False, align_arrays=False, meta=np.empty((0,), object), dtype=object,
                        token=f"vmapc-{program.name}")
    outs = []
    for j, (name, shape, dtype, d) in enumerate(zip(plan.out_names, plan.out_shapes, plan.out_dtypes,
                                                     plan.out_dims)):
        meta = np.empty((0,) * len(shape), dtype)
        if d is None:       # the same for every chunk: the first one's
            letters = tuple(f"o{a}" for a in range(len(shape)))
            # the first chunk's block (Dask's array-expr mode has no .blocks: a slice on the
            # chunk boundary is the block itself there)
            first = runs.blocks[0] if hasattr(runs, "blocks") else runs[:chunks[0]]
            outs.append(da.blockwise(_pick_first, letters, first, ("b",), j, None,
                                     new_axes={c: shape[a] for a, c in enumerate(letters)},
                                     concatenate=False, align_arrays=False, meta=meta, dtype=dtype,
                                     token=f"vmapc-{program.name}-{name}"))
            continue
        letters = tuple("b" if a == d else f"o{a}" for a in range(len(shape)))
        outs.append(da.blockwise(_pick, letters, runs, ("b",), j, None,
                                 new_axes={c: shape[a] for a, c in enumerate(letters) if a != d},
                                 concatenate=False, align_arrays=False, meta=meta, dtype=dtype,
                                 token=f"vmapc-{program.name}-{name}"))
    return pytree.unflatten(plan.out_tree, outs)


# --- files --------------------------------------------------------------------------------------------

def from_npy(path, chunks, axis: int = 0):
    """A ``.npy`` file as a Dask array with `chunks` examples per chunk along `axis`
    (whole along the others). Each task reads its chunk from the file (through a
    mapping opened for that read), so the data never travels through the client
    and a file bigger than memory is fine; the workers must see the file at this path."""
    f = path if isinstance(path, NpyFile) else NpyFile(path)
    axis = int(axis) % max(f.ndim, 1)
    return _npy_array(f, tuple(int(chunks) if a == axis else -1 for a in range(f.ndim)))


def _npy_array(f: NpyFile, chunks):
    st = os.stat(f.path)
    name = "vmapc-npy-" + dask.base.tokenize(f.path, st.st_mtime_ns, st.st_size, chunks)
    return da.from_array(f, chunks=chunks, name=name, asarray=False, fancy=False, lock=False,
                         inline_array=True, meta=np.empty((0,) * f.ndim, f.dtype))


def _write_block(block, target, block_info=None):
    target[tuple(slice(*loc) for loc in block_info[0]["array-location"])] = block
    return np.ones((1,) * block.ndim, np.int64)


def _as_lists(arrays, paths):
    if isinstance(arrays, (list, tuple)) != isinstance(paths, (list, tuple)):
        raise TypeError("give one array and one path, or lists of each")
    if not isinstance(arrays, (list, tuple)):
        return [arrays], [paths]
    if len(arrays) != len(paths):
        raise TypeError(f"{len(arrays)} arrays but {len(paths)} paths")
    return list(arrays), list(paths)


def to_npy(arrays, paths, *, progress=None):
    """Compute Dask arrays and write each to a ``.npy`` file, chunk by chunk, from
    the workers (nothing is gathered on the client). Each file is written under a
    temporary name in its folder and renamed to `path` when every chunk of every
    array is written; if any chunk fails, the temporary files are removed, the error
    is raised and the paths are untouched. `progress(done, total)` is called as chunks
    finish. The workers must see the paths."""
    arrays, paths = _as_lists(arrays, paths)
    outs = []
    try:
        tasks = []
        for x, p in zip(arrays, paths):
            x = da.asarray(x)
            out = NpyOutput(p, x.shape, x.dtype)
            outs.append(out)
            written = x.map_blocks(_write_block, out, dtype=np.int64, meta=np.empty((0,) * x.ndim, np.int64),
                                   chunks=tuple((1,) * len(c) for c in x.chunks))
            # one task per chunk where the collection can say (for progress), else the whole array
            tasks += list(written.to_delayed().flat) if hasattr(written, "to_delayed") else [written]
        compute_tasks(tasks, progress)
        for out in outs:
            out.commit()
    except BaseException:
        for out in outs:
            out.abort()
        raise


def to_zarr(arrays, paths, *, overwrite: bool = False):
    """Compute Dask arrays and write each to a Zarr array at a local `path` (a
    directory), through Dask's ``to_zarr`` into a temporary directory next to it,
    renamed to `path` when every array is written. An existing `path` is replaced
    only with ``overwrite=True``. Needs the ``zarr`` package."""
    arrays, paths = _as_lists(arrays, paths)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    for p in paths:
        if os.path.exists(p) and not overwrite:
            raise FileExistsError(f"{p} exists (pass overwrite=True to replace it)")
    tmps = [os.path.join(os.path.dirname(p), f".{os.path.basename(p)}.{uuid.uuid4().hex[:12]}.partial")
            for p in paths]
    try:
        stores = [da.to_zarr(da.asarray(x), t, compute=False) for x, t in zip(arrays, tmps)]
        dask.compute(*stores)
        for t, p in zip(tmps, paths):
            if os.path.exists(p):
                old = t + ".old"
                os.replace(p, old)
                os.replace(t, p)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(t, p)
    finally:
        for t in tmps:
            shutil.rmtree(t, ignore_errors=True)


def _client():
    """The dask.distributed client that dask.compute would use now, or None."""
    sched = dask.base.get_scheduler()
    client = getattr(sched, "__self__", None)
    return client if type(client).__name__ == "Client" else None


def compute_tasks(tasks, progress=None):
    """Compute Dask collections (delayed objects, one per chunk), calling
    `progress(done, total)` as each finishes; the first failure is raised (and, on a
    cluster, the rest cancelled)."""
    client = _client()
    if client is not None:
        total = len(tasks)
        from distributed import as_completed
        futures = client.compute(tasks)
        try:
            for done, f in enumerate(as_completed(futures, loop=client.loop), 1):
                f.result()
                if progress:
                    progress(done, total)
        except BaseException:
            client.cancel(futures)
            raise
        return
    if progress is None:
        dask.compute(*tasks)
        return
    from dask.callbacks import Callback
    keys = set(dask.core.flatten([t.__dask_keys__() for t in tasks]))
    total, count = len(keys), [0]

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            count[0] += 1
            progress(count[0], total)

    with Callback(posttask=posttask):
        dask.compute(*tasks)
