"""``vmapc.ray``: run a compiled function or an artifact over a Ray Data ``Dataset``
(install with ``pip install "vmapc[ray]"``).

Ray Data streams a dataset through a function in batches of rows. Here the rows
are examples, and each batch runs through the compiled module on an actor (a
long-lived worker process) that loads the module once, when it starts, and keeps
it for every batch it is given::

    import ray, vmapc, vmapc.ray

    ds = ray.data.read_numpy("xs/")                     # a column "data": one row per example
    ys = vmapc.ray.map_batches(model, ds, "data", w1, w2, batch_size=4096, actors=2)
    ys.write_numpy("ys/", column="out")                 # one column per output

The arguments after the dataset are the function's: a batched input is the name of
a column (its rows are the examples), a shared one an array or a number, sent to
each actor once, with the module, when the actor starts. As with
:mod:`vmapc.dask`, everything is checked against the function's signature (the
columns' types from the dataset's schema) before anything runs, the module travels
as bytes and is loaded by each actor (IREE objects are never pickled), actors run
it on ``local-sync`` on the CPU, and a batch of another size than the compiled one
is padded. Differences that come from Ray Data:

* rows are examples, so each output is a column with the batch on axis 0 (an
  ``out_dims`` elsewhere is moved there; an unbatched output is repeated per row);
* Ray Data does not tell a batch where its rows are in the dataset, so an error in
  a batch names its length, not its index range; Ray wraps it in its own exception
  (``ray.exceptions.RayTaskError``), the vmapc error being its cause;
* batches reach the function read-only and zero-copy; vmapc copies what it must.
"""

from __future__ import annotations

import os

import numpy as np

try:
    import ray
    import ray.data
except ImportError as _e:  # pragma: no cover - the ray extra is missing
    raise ImportError(f"vmapc.ray needs Ray Data ({_e}): pip install \"vmapc[ray]\"") from _e

from .errors import BatchingError, CallError, VmapcError
from .runtime.chunked import function, run_chunk

__all__ = ["map_batches"]

WHAT = "vmapc.ray.map_batches"


class _Spec:
    """A column as an argument for the signature checks: shape and dtype, no data."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)


def _column_types(ds) -> dict:
    """{column: (per-row shape, dtype)} from the dataset's schema."""
    schema = ds.schema()
    if schema is None:
        raise BatchingError(f"{WHAT}: the dataset has no schema (is it empty?)")
    out = {}
    for name, t in zip(schema.names, schema.types):
        try:
            if hasattr(t, "value_type") and hasattr(t, "shape"):      # Ray's fixed-shape tensor columns
                out[name] = (tuple(t.shape), np.dtype(t.value_type.to_pandas_dtype()))
            elif hasattr(t, "to_pandas_dtype"):                       # a plain Arrow column
                out[name] = ((), np.dtype(t.to_pandas_dtype()))
            else:
                out[name] = ((), np.dtype(t))
        except (TypeError, NotImplementedError):
            out[name] = None                                          # not numbers: refused if used
    return out


class _Runner:
    """The Ray Data actor: loads the module when it starts, then runs batches."""

    def __init__(self, program, shared, columns, in_dims, out_dims, output_names):
        self.program, self.shared = program, shared
        self.columns, self.in_dims = columns, in_dims
        self.out_dims, self.output_names = out_dims, output_names
        function(self.program)  # load now: once per actor

    def __call__(self, batch: dict) -> dict:
        arrays = []
        it = iter(self.shared)
        for col, d in zip(self.columns, self.in_dims):
            if col is None:
                arrays.append(next(it))
            else:
                arrays.append(np.moveaxis(np.asarray(batch[col]), 0, d))
        outs = run_chunk(self.program, 0, arrays)
        n = len(batch[next(c for c in self.columns if c is not None)])
        result = {}
        for name, r, d in zip(self.output_names, outs, self.out_dims):
            result[name] = np.broadcast_to(r, (n,) + r.shape).copy() if d is None else np.moveaxis(r, d, 0)
        return result


def map_batches(fn, dataset, *args, in_dims=None, out_dims=None, batch_size: int = 4096, actors: int = 1,
                driver=None, **ray_args):
    """Apply `fn` to the rows of `dataset` in batches of `batch_size`, on `actors`
    Ray actors that each load the module once; returns a Dataset with one column per
    output (named as the artifact's outputs, or ``out``, ``out0``, ``out1``, ... /
    the keys of a returned dict for a compiled function).

    `fn`: an artifact (``vmapc.load``, or its path), a ``vmapc.compile(f, in_dims=...)``
    function, or a Python function with `in_dims`. `args`: one per input of `fn`, a
    column name (str) for each batched input, an array or number for each shared one.
    `driver` overrides the actors' IREE driver; `ray_args` go to Ray's
    ``map_batches`` (e.g. ``num_cpus``, ``memory``)."""
    try:
        return _map_batches(fn, dataset, args, in_dims, out_dims, batch_size, actors, driver, ray_args)
    except VmapcError as err:
        from .tracing import user_loc
        raise err.with_loc(user_loc()) from None


def _map_batches(fn, ds, args, in_dims, out_dims, batch_size, actors, driver, ray_args):
    from . import pytree
    from .runtime.artifact import load
    from .scaleout import inputs
    if isinstance(fn, (str, os.PathLike)):
        fn = load(fn)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise BatchingError(f"{WHAT}: batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(actors, int) or isinstance(actors, bool) or actors < 1:
        raise BatchingError(f"{WHAT}: actors must be a positive int, got {actors!r}")
    leaves, tree = pytree.flatten(tuple(args))
    if any(isinstance(x, str) for x in leaves) and tree != pytree.flatten(tuple(range(len(args))))[1]:
        raise CallError(f"{WHAT}: pass the function's arguments flat (column names and arrays)")
    types = _column_types(ds) if any(isinstance(x, str) for x in args) else {}
    columns, specs = [], []
    for i, a in enumerate(args):
        if isinstance(a, str):
            if a not in types:
                raise CallError(f"{WHAT}: argument {i} names the column {a!r}, which the dataset does not have "
                                f"(its columns: {', '.join(types)})")
            if types[a] is None:
                raise CallError(f"{WHAT}: column {a!r} does not hold numbers")
            columns.append(a)
            specs.append(a)
        else:
            columns.append(None)
            specs.append(a)
    # a column's rows are examples: it stands for an array with the batch where the function wants it
    stand_ins = []
    art_dims, names = _declared_in_dims(fn, len(args), in_dims)
    for name, col, d in zip(names, columns, art_dims):
        if (col is None) != (d is None):
            raise BatchingError(f"{WHAT}: argument `{name}` is " + (
                f"the column {col!r}, but the function shares it between examples (its in_dim is None); "
                "pass an array" if col is not None else
                f"not a column name, but the function batches it along axis {d}; pass a column name"))
    for a, d in zip(specs, art_dims):
        if isinstance(a, str):
            shape, dtype = types[a]
            d = 0 if d is None else d % (len(shape) + 1)
            stand_ins.append(_Spec(shape[:d] + (batch_size,) + shape[d:], dtype))
        else:
            stand_ins.append(a)
    inp = inputs(fn, stand_ins, in_dims, out_dims, WHAT)
    plan = inp.plan(chunk_len=batch_size, driver=driver)
    shared = [x for x, col in zip(plan.leaves, columns) if col is None]
    return ds.map_batches(
        _Runner, batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs=dict(program=plan.program, shared=shared, columns=columns,
                                   in_dims=list(plan.bdims), out_dims=plan.out_dims,
                                   output_names=plan.out_names),
        **ray_args)


def _declared_in_dims(fn, n, in_dims):
    """(each argument's batch axis, its name), before the arguments are checked: from
    the artifact's manifest, the compiled function's in_dims, or the `in_dims` given."""
    from .runtime.artifact import Artifact
    from .tracing import _arg_names
    if isinstance(fn, Artifact):
        dims, names = fn.manifest.get("in_dims") or [None] * n, fn.input_names
    else:
        dims = getattr(fn, "in_dims", None)
        dims = in_dims if dims is None else dims
        names = _arg_names(getattr(fn, "fn", fn), n)
    if not isinstance(dims, (list, tuple)):
        dims = [dims] * n
    dims = [d if isinstance(d, int) and not isinstance(d, bool) else None for d in list(dims)[:n]]
    return dims + [None] * (n - len(dims)), list(names)[:n] + [str(i) for i in range(len(names), n)]
