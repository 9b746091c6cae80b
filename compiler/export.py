"""Writing deployable artifacts: ``vmapc.export`` and ``vmapc compile`` on the command line.

``export(program, out_dir, in_dims=..., batch=..., targets=[...])`` batches a traced
program (or a Python function traced at given specs), compiles it for each
target and writes an artifact directory that :func:`vmapc.load` (runtime only)
can run. See :mod:`vmapc.runtime.artifact` for the layout and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from . import __version__
from .errors import ArtifactError, BatchingError
from .ir import Function
from .runtime.artifact import FORMAT, VERSION, sha256_file
from .shapes import Sym
from .vmap import vmap

BATCH_SYMBOL = "B"


def _atomic_write(path: Path, data: bytes):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def batch_program(fn: Function, in_dims, out_dims=0, batch=None) -> Function:
    """The program to compile: `fn` itself without in_dims, else `fn` batched at
    `batch` (an int, or "dynamic" for a symbolic batch size)."""
    if in_dims is None:
        return fn
    if batch is None:
        raise BatchingError("a batch size is needed with in_dims: an int, or 'dynamic'")
    size = Sym(BATCH_SYMBOL) if batch == "dynamic" else batch
    if not isinstance(size, Sym) and (not isinstance(size, int) or size < 1):
        raise BatchingError(f"the batch size must be a positive int or 'dynamic', got {batch!r}")
    return vmap(fn, in_dims=in_dims, out_dims=out_dims, axis_size=size)


def export(fn: Function, out_dir, *, in_dims=None, out_dims=0, batch=None, targets=("cpu",),
           progress=None) -> dict:
    """Batch, compile and write an artifact directory; returns the manifest.

    `fn` is a traced program (see :func:`vmapc.trace`). `in_dims` lists, per input,
    where its batch axis will be (None: shared); `out_dims` likewise per output.
    `progress(target, stage)` is called as each target starts and ends."""
    from .driver import compile_mlir, get_target
    from .lowering import lower

    targets = [get_target(t) for t in targets]
    program = batch_program(fn, in_dims, out_dims, batch)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(f"cannot create {out}: {e}") from None
    lowered = lower([program])
    entries = {}
    for t in targets:
        if progress:
            progress(t.name, "compiling")
        vmfb = compile_mlir(lowered, t)
        path = out / f"{t.name}.vmfb"
        _atomic_write(path, vmfb)
        entries[t.name] = {"file": path.name, "flags": list(t.flags), "driver": t.driver,
                           "sha256": sha256_file(path)}
        if progress:
            progress(t.name, "done")
    _atomic_write(out / "model.vir", (fn.text(locations=True) + "\n").encode())
    if program is not fn:
        _atomic_write(out / "batched.vir", (program.text(locations=True) + "\n").encode())
    names = fn.arg_names or [f"arg{i}" for i in range(len(fn.inputs))]
    per_in = list(in_dims) if in_dims is not None else [None] * len(fn.inputs)
    per_out = out_dims if isinstance(out_dims, (list, tuple)) else [out_dims] * len(fn.outputs)
    if in_dims is None:
        per_out = [None] * len(fn.outputs)
    from iree.compiler import version as iv
    manifest = {
        "format": FORMAT, "version": VERSION,
        "function": fn.name, "entry": program.name,
        "inputs": [{"name": n, "type": str(pv.type), "example_type": str(v.type), "in_dim": d}
                   for n, v, pv, d in zip(names, fn.inputs, program.inputs, per_in)],
        "outputs": [{"name": f"out{j}", "type": str(pv.type), "example_type": str(v.type),
                     "out_dim": None if d is None else int(d) % (v.rank + 1)}
                    for j, (v, pv, d) in enumerate(zip(fn.outputs, program.outputs, per_out))],
        "in_dims": per_in, "out_dims": per_out,
        "batch": batch if in_dims is not None else None,
        "targets": entries,
        "vmapc_version": __version__, "iree_version": iv.VERSION,
        "ir_hash": hashlib.sha256(program.canonical().encode()).hexdigest(),
    }
    _atomic_write(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
