"""Writing deployable artifacts: ``vmapc.export`` and ``vmapc compile`` on the command line.

``export(fn, out_dir, in_dims=..., batch=..., targets=[...])`` batches a traced
program (or a Python function, traced at the example ``args`` given), compiles
it for each target and writes an artifact directory that :func:`vmapc.load`
runs with only ``iree-base-runtime`` and NumPy. The layout and the manifest are
described in :mod:`vmapc.runtime.artifact` and ``docs/cli.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from .errors import ArtifactError, BatchingError
from .ir import Function
from .shapes import Sym
from .vmap import OFFSET_NAME, vmap

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


def batch_program(fn: Function, in_dims, out_dims=0, batch=None, randomness="error") -> Function:
    """The program to compile: `fn` itself without in_dims, else `fn` batched at
    `batch` (an int, or "dynamic" for a symbolic batch size ``B``), random draws from
    shared keys following `randomness` (with "different", the program may take one more
    input, ``example_offset``: see :func:`vmapc.vmap.batch_function`)."""
    if in_dims is None:
        if batch is not None:
            raise BatchingError("a batch size needs in_dims (which inputs carry the batch)")
        if randomness != "error":
            raise BatchingError("randomness needs in_dims (it says what a vmap does with random draws from a "
                                "key every example shares)")
        return fn
    if batch is None:
        raise BatchingError("a batch size is needed with in_dims: an int, or 'dynamic'")
    if batch == "dynamic":
        size = Sym(BATCH_SYMBOL)
    elif isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        size = batch
    else:
        raise BatchingError(f"the batch size must be a positive int or 'dynamic', got {batch!r}")
    return vmap(fn, in_dims=in_dims, out_dims=out_dims, axis_size=size, randomness=randomness)


def output_names(out_tree=None, n: int = 1) -> list:
    """Names for a function's outputs, from the structure it returns: a dict's keys
    (``{"logits": ..}`` -> ``logits``), else ``out`` for a single array and
    ``out0``, ``out1``, ... (``out1_0`` for nested tuples) for several."""
    from . import pytree
    paths = pytree.leaf_paths(out_tree) if out_tree is not None else None
    if paths is None or len(paths) != n:
        paths = [""] if n == 1 else [f"[{j}]" for j in range(n)]
    names, used = [], set()
    for j, p in enumerate(paths):
        parts = [s.strip("'\"") for s in re.findall(r"\[([^\]]*)\]", p)]
        if not parts:
            name = "out"
        elif parts[0].isdigit():
            name = "out" + "_".join(parts)
        else:
            name = "_".join(parts)
        name = re.sub(r"\W", "_", name)
        if not name.isidentifier() or name in used:
            name = f"out{j}"
        used.add(name)
        names.append(name)
    return names


def _normalize(dims, values):
    return [None if d is None else int(d) % (v.rank + 1) for d, v in zip(dims, values)]


def export(fn, out_dir, *, args=None, in_dims=None, out_dims=0, batch=None, targets=("cpu",),
           outputs=None, progress=None, randomness="error") -> dict:
    """Batch, compile and write an artifact directory; returns the manifest.

    `fn` is a traced program (see :func:`vmapc.trace`), or a Python function with
    `args`, the specs or arrays of one example (``args=(vmapc.f32[784], w)``).
    `in_dims` lists, per input, where its batch axis will be (None: shared);
    `out_dims`, per output or one for all; `batch` is an int or ``"dynamic"``.
    `outputs` names the results (default: from the structure `fn` returns).
    `progress(target, stage)` is called with "compiling" and "done" per target.
    `randomness` is vmap's mode for random draws from shared keys; with "different" the
    artifact may take one more input, ``example_offset`` (default 0: the global index of the
    first example, for running a large batch in parts)."""
    from . import __version__
    from .driver import compile_mlir
    from .lowering import lower
    from .optimize import simplify
    from .targets import get_target
    from .runtime.artifact import FORMAT, VERSION, sha256_file

    if not isinstance(fn, Function):
        if args is None:
            raise TypeError("vmapc.export: give `args` (one example's specs or arrays) to trace a Python "
                            "function, or pass a traced program (vmapc.trace)")
        from .tracing import trace_flat
        fn, _, out_tree, _ = trace_flat(fn, tuple(args), {})
        outputs = outputs or output_names(out_tree, len(fn.outputs))
    elif args is not None:
        raise TypeError("vmapc.export: `args` is for Python functions; a traced program has its types")
    if in_dims is not None and not isinstance(in_dims, (list, tuple)):
        in_dims = [in_dims] * len(fn.inputs)
    if in_dims is not None and all(d is None for d in in_dims):
        raise BatchingError("vmapc.export: in_dims are all None; batch at least one input")
    if isinstance(targets, str):
        targets = [targets]
    targets = list({t.label: t for t in (get_target(t) for t in targets)}.values())
    if not targets:
        raise BatchingError("vmapc.export: no targets")
    # what is compiled: the batched program, simplified as vmapc.compile does (same signature)
    batched = batch_program(fn, in_dims, out_dims, batch, randomness)
    offset_input = getattr(batched, "offset_input", None) if in_dims is not None else None
    program = simplify(batched)
    names_out = list(outputs) if outputs is not None else output_names(getattr(fn, "out_tree", None),
                                                                       len(fn.outputs))
    if len(names_out) != len(fn.outputs) or len(set(names_out)) != len(names_out):
        raise ValueError(f"vmapc.export: outputs must be {len(fn.outputs)} distinct names, got {names_out}")
    names_in = fn.arg_names or [f"arg{i}" for i in range(len(fn.inputs))]
    if offset_input is not None and OFFSET_NAME in names_in:
        raise BatchingError(f"vmapc.export: an input is named {OFFSET_NAME!r}, the name randomness='different' "
                            "gives the index of the first example; rename it")
    for t in targets:           # every target's dtype/op check before the first (slow) compile
        t.check([program])
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # An old manifest must not describe the new files while they are being written.
        (out / "manifest.json").unlink(missing_ok=True)
    except OSError as e:
        raise ArtifactError(f"cannot write the artifact directory {out}: {e}") from None
    lowered_by_key: dict = {}
    entries = {}
    for t in targets:
        if progress:
            progress(t.label, "compiling")
        lowered = lowered_by_key.get(t.lowering_key)
        if lowered is None:
            lowered = lowered_by_key[t.lowering_key] = lower([program], target=t)
        vmfb = compile_mlir(lowered, t)
        path = out / (t.label.replace(":", "-") + ".vmfb")
        _atomic_write(path, vmfb)
        flags = list(t.flags) + (list(t.libm_flags) if lowered.needs_libm else [])
        entries[t.label] = {"file": path.name, "target": t.name, "options": dict(t.options), "flags": flags,
                            "module_attrs": [name for name, _ in t.module_attrs],
                            "driver": t.choose_driver([program]), "output_storage": bool(t.output_storage),
                            "sha256": sha256_file(path), "bytes": len(vmfb)}
        if progress:
            progress(t.label, "done")
    _atomic_write(out / "model.vir", (fn.text(locations=True) + "\n").encode())
    if in_dims is not None:
        _atomic_write(out / "batched.vir", (program.text(locations=True) + "\n").encode())
    elif (out / "batched.vir").exists():
        (out / "batched.vir").unlink()
    if in_dims is None:
        per_in, per_out = [None] * len(fn.inputs), [None] * len(fn.outputs)
    else:
        per_in = _normalize(in_dims, fn.inputs)
        outs = list(out_dims) if isinstance(out_dims, (list, tuple)) else [out_dims] * len(fn.outputs)
        per_out = _normalize(outs, fn.outputs)
    from iree.compiler import version as iv
    manifest = {
        "format": FORMAT, "version": VERSION,
        "function": fn.name, "entry": program.name,
        "inputs": [{"name": n, "type": str(pv.type), "example_type": str(v.type), "in_dim": d}
                   for n, v, pv, d in zip(names_in, fn.inputs, program.inputs, per_in)],
        "outputs": [{"name": n, "type": str(pv.type), "example_type": str(v.type), "out_dim": d}
                    for n, v, pv, d in zip(names_out, fn.outputs, program.outputs, per_out)],
        "in_dims": per_in, "out_dims": per_out,
        "randomness": randomness if in_dims is not None else None,
        "batch": batch if in_dims is not None else None,
        "batch_symbol": BATCH_SYMBOL if batch == "dynamic" and in_dims is not None else None,
        "targets": entries,
        "vmapc_version": __version__, "iree_version": iv.VERSION,
        "ir_hash": hashlib.sha256(program.canonical().encode()).hexdigest(),
    }
    if offset_input is not None:    # randomness="different": the first example's global index
        manifest["inputs"].append({"name": OFFSET_NAME, "type": "u32[]", "example_type": "u32[]", "in_dim": None,
                                   "default": 0})
    _atomic_write(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
