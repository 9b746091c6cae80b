"""``vmapc run --chunk-size``: a batch bigger than memory, read chunk by chunk from its
``.npy`` files and run here or on Dask workers, each output written by chunks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .models import Failure, UsageError, _one_line

# --- vmapc run --chunk-size: a batch bigger than memory ----------------------------------------------

def _input_files(specs, names):
    """{name: NpyFile} for --input NAME=FILE.npy: the files' headers, no data yet."""
    from ..runtime.chunked import NpyFile
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input {spec!r}: expected NAME=FILE.npy")
        if name not in names:
            raise UsageError(f"--input {name}: the model has no input {name!r} (its inputs: {', '.join(names)})")
        if name in dict(pairs):
            raise UsageError(f"--input {name} is given twice")
        pairs.append((name, path))
    missing = [n for n in names if n not in dict(pairs)]
    if missing:
        raise UsageError(f"missing --input for {', '.join(missing)} (the model takes {', '.join(names)})")
    files = {}
    for name, path in pairs:
        try:
            files[name] = NpyFile(path)
        except FileNotFoundError:
            raise Failure(f"--input {name}: {path}: no such file") from None
        except (OSError, ValueError, EOFError) as e:
            raise Failure(f"--input {name}: cannot read {path} as a .npy array: {_one_line(e)}") from None
    return files


class _ProgressBar:
    """``[#####.....] 50% 5/10 chunks 1.2 s`` on stderr, redrawn in place, only when
    stderr is a terminal."""

    def __init__(self, what: str):
        self.what, self.t0, self.shown = what, time.perf_counter(), False

    def __call__(self, done: int, total: int):
        if not sys.stderr.isatty():
            return
        width = 30
        filled = width * done // max(total, 1)
        print(f"\r{self.what} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}% "
              f"{done}/{total} chunks {time.perf_counter() - self.t0:.1f} s", end="", file=sys.stderr, flush=True)
        self.shown = True

    def close(self):
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False


def _dask_client(a):
    """A dask.distributed Client: at --scheduler ADDRESS, or of a LocalCluster of
    --workers N processes (one thread each)."""
    try:
        import logging
        from distributed import Client, LocalCluster
        from .. import dask  # noqa: F401  (vmapc.dask, which needs dask.array)
    except ImportError as e:
        raise Failure(f"--scheduler and --workers run on Dask, which is not installed here ({e}; "
                      "pip install \"vmapc[dask]\")") from None
    if a.scheduler:
        try:
            return Client(a.scheduler, timeout="20s"), f"the Dask scheduler at {a.scheduler}"
        except (OSError, TimeoutError, ValueError) as e:
            raise Failure(f"--scheduler {a.scheduler}: cannot connect: {_one_line(e)}") from None
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster), f"{a.workers} local worker process{'es' if a.workers > 1 else ''}"


def cmd_run_chunked(a):
    """vmapc run ... --chunk-size N [--scheduler ADDRESS | --workers N]: the batched
    inputs are read chunk by chunk from their files, each chunk runs through the module
    (here, or on Dask workers) and each result is written by chunks into a .npy under a
    temporary name, renamed when complete."""
    from ..runtime.artifact import load
    from ..runtime.chunked import NpyOutput
    from ..scaleout import inputs, ranges, run_in_process
    if a.chunk_size is None:
        raise UsageError("--scheduler and --workers split the batch into chunks: give --chunk-size N")
    if a.chunk_size < 1:
        raise UsageError(f"--chunk-size must be a positive number of examples, got {a.chunk_size}")
    if a.workers is not None and a.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {a.workers}")
    if not a.output_dir:
        raise UsageError("--chunk-size writes each result chunk by chunk into a file: give --output-dir DIR")
    model = load(a.artifact, target=a.target, driver=a.driver)
    files = _input_files(a.input, model.input_names)
    in_dims = model.manifest.get("in_dims") or [None] * len(model.input_names)
    args = []
    for (name, _), d in zip(model.inputs, in_dims):
        f = files[name]
        if d is None:           # shared inputs (weights) are read whole
            try:
                args.append(np.load(f.path, allow_pickle=False))
            except (OSError, ValueError) as e:
                raise Failure(f"--input {name}: cannot read {f.path} as a .npy array: {_one_line(e)}") from None
        else:
            args.append(f)
    # in this process, the build's own driver (local-task where IREE's thread pool pays);
    # on Dask workers, local-sync unless --driver says otherwise (Dask owns the cores)
    on_dask = bool(a.scheduler) or a.workers is not None
    plan = inputs(model, args, what="vmapc run").plan(chunk_len=a.chunk_size,
                                                       driver=a.driver or (None if on_dask else model.driver))
    res = Path(a.output_dir)
    try:
        res.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Failure(f"--output-dir: cannot create {res}: {e.strerror or e}") from None
    paths = [res / f"{name}.npy" for name in plan.out_names]
    n_chunks = len(ranges(plan.size, a.chunk_size))
    bar = _ProgressBar(f"vmapc run {model.name}")
    client, where = _dask_client(a) if on_dask else (None, "this process")
    try:
        t0 = time.perf_counter()
        if client is not None:
            _run_on_dask(a, client, model, args, paths, bar)
        else:
            outs = [NpyOutput(p, s, d) for p, s, d in zip(paths, plan.out_shapes, plan.out_dtypes)]
            try:
                run_in_process(plan, a.chunk_size, outs, progress=bar)
            except BaseException:
                for o in outs:
                    o.abort()
                raise
            for o in outs:
                o.commit()
        elapsed = time.perf_counter() - t0
    finally:
        bar.close()
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not a.scheduler:
                cluster.close()
    for name, shape, dtype, p in zip(plan.out_names, plan.out_shapes, plan.out_dtypes, paths):
        print(f"{name}: {dtype}[{', '.join(map(str, shape))}] -> {p}")
    print(f"ran {model.name} on {model.target} ({plan.program.driver}) over {plan.size} examples in {n_chunks} "
          f"chunk{'s' if n_chunks != 1 else ''} of {a.chunk_size} on {where} in {elapsed:.3f} s "
          f"({plan.size / max(elapsed, 1e-9):,.0f} examples/s)")


def _run_on_dask(a, client, model, args, paths, bar):
    from .. import dask as vdask
    with client.as_current():
        in_dims = model.manifest["in_dims"]
        xs = [vdask.from_npy(x, a.chunk_size, axis=d) if d is not None else x for x, d in zip(args, in_dims)]
        ys = vdask.map_batches(model, *xs, driver=a.driver)
        vdask.to_npy(list(ys) if isinstance(ys, tuple) else [ys], paths, progress=bar)
