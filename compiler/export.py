"""Writing deployable artifacts: ``vmapc.export`` and ``vmapc compile`` on the command line.

``export(fn, out_dir, in_dims=..., batch=..., targets=[...])`` batches a traced
program (or a Python function, traced at the example ``args`` given), compiles
it for each target and writes an artifact directory that :func:`vmapc.load`
runs with only ``iree-base-runtime`` and NumPy. The layout and the manifest are
described in :mod:`vmapc.runtime.artifact` and ``docs/cli.md``.

No user file is lost: the artifact is built in a temporary directory next to
``out_dir`` and renamed into place only when complete, so a failed compile (or a
full disk) leaves a previous artifact there working; and ``out_dir`` must be
missing, empty, or hold only an artifact's own files (:func:`check_output_dir`).
Files get the permissions the process's umask gives, as any file a program writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import ArtifactError, BatchingError
from .ir import Function
from .shapes import Sym
from .vmap import OFFSET_NAME, vmap

BATCH_SYMBOL = "B"


def umask() -> int:
    """The process's umask, read without changing it where the system says it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _atomic_write(path: Path, data: bytes):
    """Write `path` through a temporary file renamed into place (a reader never sees half
    a file; a symlink at `path` is replaced, never followed), with the umask's permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# What an artifact directory holds: the files vmapc writes, and nothing else.
ARTIFACT_FILES = ("manifest.json", "model.vir", "batched.vir")
_VMFB = re.compile(r"^[a-z]+(-[A-Za-z0-9_.+-]+)?\.vmfb$")


def check_output_dir(out, sources=()) -> None:
    """Raise ArtifactError unless `out` may become an artifact directory: it does not
    exist, or is an empty directory, or holds only an artifact's own files (manifest.json,
    model.vir, batched.vir, TARGET.vmfb). `sources`: the model's files, which must not be
    inside it. (``vmapc compile`` reports this as a wrong command line, exit status 2.)"""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ArtifactError(f"-o {out}: it exists and is not a directory; give a new or empty "
                            "directory, or a previous artifact's")
    try:
        entries = sorted(os.listdir(out))
    except OSError as e:
        raise ArtifactError(f"-o {out}: cannot read it: {e.strerror or e}") from None
    real = out.resolve()
    inside = [str(p) for p in sources if p is not None and Path(p).resolve().parent == real]
    if inside:
        raise ArtifactError(f"-o {out}: it holds the model being compiled ({inside[0]}); vmapc replaces "
                            "the whole directory: write the artifact to another one")
    foreign = [e for e in entries if not (e in ARTIFACT_FILES or _VMFB.match(e))
               or not (out / e).is_file() or (out / e).is_symlink()]
    if entries and "manifest.json" not in entries:
        foreign = foreign or entries
    if foreign:
        shown = ", ".join(ascii(e)[1:-1] for e in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ArtifactError(f"-o {out}: it holds files vmapc did not write ({shown}); vmapc replaces the "
                            "whole directory, so give a new or empty directory, or a previous artifact's")


def _publish(tmp: Path, out: Path):
    """Move the finished artifact `tmp` to `out`, replacing a previous artifact there."""
    os.chmod(tmp, 0o777 & ~umask())
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def batch_symbol(fn: Function) -> str:
    """The name of the symbolic batch size: ``B``, unless the program already has a
    symbol of that name (a ``.vir`` with ``f32[B]``), which must not be unified with the
    batch size: then the first of ``B1``, ``B2``, ... it does not use."""
    from .ir import walk_eqns
    from .shapes import symbols
    used = set()
    for v in fn.inputs:
        used |= symbols(v.shape)
    for e in walk_eqns(fn):
        for v in list(e.inputs) + list(e.outputs):
            used |= symbols(v.shape)
    name, k = BATCH_SYMBOL, 0
    while name in used:
        k += 1
        name = f"{BATCH_SYMBOL}{k}"
    return name


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
    mutated = tuple(getattr(fn, "mutated", ()) or ())
    if mutated and not isinstance(out_dims, (list, tuple)):   # each written argument keeps its in_dim
        own = len(fn.outputs) - len(mutated)
        ins = in_dims if isinstance(in_dims, (list, tuple)) else [in_dims] * len(fn.inputs)
        out_dims = [out_dims] * own + [ins[i] for i in mutated]
    if batch == "dynamic":
        size = Sym(batch_symbol(fn))
    elif isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        size = batch
    else:
        raise BatchingError(f"the batch size must be a positive int or 'dynamic', got {batch!r}")
    return vmap(fn, in_dims=in_dims, out_dims=out_dims, axis_size=size, randomness=randomness)


def output_names(out_tree=None, n: int = 1, fn: Function | None = None) -> list:
    """Names for a function's outputs, from the structure it returns: a dict's keys
    (``{"logits": ..}`` -> ``logits``), else ``out`` for a single array and
    ``out0``, ``out1``, ... (``out1_0`` for nested tuples) for several. With `fn` (a
    traced Function that writes into arguments), its last outputs, the written arguments'
    final values, are named after the arguments (``x`` or, if taken, ``x_written``)."""
    mutated = tuple(getattr(fn, "mutated", ()) or ()) if fn is not None else ()
    if mutated:
        own = output_names(out_tree, n - len(mutated))
        for i in mutated:
            name = fn.arg_names[i] if fn.arg_names else f"arg{i}"
            own.append(name if name not in own else f"{name}_written")
        return own
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
           outputs=None, progress=None, sign_key=None, sources=(), randomness="error") -> dict:
    """Batch, compile and write an artifact directory; returns the manifest.

    `fn` is a traced program (see :func:`vmapc.trace`), or a Python function with
    `args`, the specs or arrays of one example (``args=(vmapc.f32[784], w)``).
    `in_dims` lists, per input, where its batch axis will be (None: shared);
    `out_dims`, per output or one for all; `batch` is an int or ``"dynamic"``.
    `outputs` names the results (default: from the structure `fn` returns): plain
    identifiers, since ``vmapc run`` writes ``NAME.npy`` files.
    `progress(target, stage, nbytes=None)` is called with "compiling" and "done" per target.
    `sign_key` (bytes or str): sign the manifest with HMAC-SHA256 (see ``docs/cli.md``).
    `sources`: the model's files, which must not be inside `out_dir` (it is replaced whole).
    `randomness` is vmap's mode for random draws from shared keys; with "different" the
    artifact may take one more input, ``example_offset`` (default 0: the global index of the
    first example, for running a large batch in parts)."""
    from .optimize import simplify
    from .runtime.artifact import plain_name
    from .targets import get_target

    if not isinstance(fn, Function):
        if args is None:
            raise TypeError("vmapc.export: give `args` (one example's specs or arrays) to trace a Python "
                            "function, or pass a traced program (vmapc.trace)")
        from .tracing import trace_flat
        fn, _, out_tree, _ = trace_flat(fn, tuple(args), {})
        outputs = outputs or output_names(out_tree, len(fn.outputs), fn)
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
    if len(names_out) != len(fn.outputs) or len({n.lower() for n in names_out}) != len(names_out) \
            or not all(plain_name(n) for n in names_out):
        raise ValueError(f"vmapc.export: outputs must be {len(fn.outputs)} distinct plain identifiers (they "
                         f"name NAME.npy files; letters, digits and _), got {[ascii(n) for n in names_out]}")
    if offset_input is not None and OFFSET_NAME in (fn.arg_names or ()):
        raise BatchingError(f"vmapc.export: an input is named {OFFSET_NAME!r}, the name randomness='different' "
                            "gives the index of the first example; rename it")
    for t in targets:           # every target's dtype/op check before the first (slow) compile
        t.check([program])
    out = Path(out_dir)
    check_output_dir(out, sources)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        raise ArtifactError(f"cannot write the artifact directory {out}: {e.strerror or e}") from None
    try:
        manifest = _write_artifact(tmp, fn, program, targets, in_dims, out_dims, batch, names_out, progress,
                                   sign_key, randomness, offset_input)
        check_output_dir(out, sources)      # nothing appeared there meanwhile
        _publish(tmp, out)
    except OSError as e:       # a full disk, a read-only directory: nothing half-written stays
        raise ArtifactError(f"cannot write the artifact {out}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_artifact(out: Path, fn, program, targets, in_dims, out_dims, batch, names_out, progress, sign_key,
                    randomness, offset_input):
    """Compile for each target and write every file of the artifact into `out`."""
    from . import __version__
    from .driver import compile_mlir
    from .lowering import lower
    from .runtime.artifact import FORMAT, VERSION, plain_name, sign
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
                            "sha256": hashlib.sha256(vmfb).hexdigest(), "bytes": len(vmfb)}
        if progress:
            progress(t.label, "done", len(vmfb))
    _atomic_write(out / "model.vir", (fn.text(locations=True) + "\n").encode())
    if in_dims is not None:
        _atomic_write(out / "batched.vir", (program.text(locations=True) + "\n").encode())
    names_in = fn.arg_names
    if not names_in or len(set(names_in)) != len(names_in) or not all(plain_name(n) for n in names_in):
        names_in = [f"arg{i}" for i in range(len(fn.inputs))]
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
        "batch_symbol": batch_symbol(fn) if batch == "dynamic" and in_dims is not None else None,
        "targets": entries,
        "vmapc_version": __version__, "iree_version": iv.VERSION,
        "ir_hash": hashlib.sha256(program.canonical().encode()).hexdigest(),
    }
    if offset_input is not None:    # randomness="different": the first example's global index
        manifest["inputs"].append({"name": OFFSET_NAME, "type": "u32[]", "example_type": "u32[]", "in_dim": None,
                                   "default": 0})
    if sign_key is not None:
        manifest = sign(manifest, sign_key)
    _atomic_write(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
