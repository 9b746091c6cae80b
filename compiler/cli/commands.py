"""The subcommands: ``trace``, ``show``, ``compile``, ``run`` (a batch that fits in
memory), ``targets`` and ``rules``. ``run --chunk-size`` is in :mod:`vmapc.cli.chunked`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .chunked import cmd_run_chunked
from .models import Failure, UsageError, _batching, _note, load_model, parse_targets, read_npy


# --- subcommands -----------------------------------------------------------------------------------

def cmd_trace(a):
    fn, outputs = load_model(a.model, a.arg)
    text = fn.text(locations=True) + "\n"
    if not a.output:
        sys.stdout.write(text)
        return
    out = Path(a.output)
    source = Path(a.model.rpartition(":")[0])
    if not a.force and (out.exists() or out.is_symlink()):
        if source.exists() and out.resolve() == source.resolve():
            raise UsageError(f"-o {a.output} is the model's own source file; refusing to overwrite it "
                             "(--force to do it anyway)")
        if out.suffix != ".vir" or not out.is_file():
            raise UsageError(f"-o {a.output} exists and is not a .vir file; refusing to overwrite it "
                             "(--force to do it anyway)")
    header = f"# vmapc IR of {fn.name}, traced from {_printable(a.model)}\n# outputs: {' '.join(outputs)}\n"
    from ..export import _atomic_write
    try:
        _atomic_write(out, (header + text).encode())
    except OSError as e:
        raise Failure(f"cannot write {a.output}: {e.strerror or e}") from None
    _note(f"wrote {a.output}: {fn.name}({', '.join(f'{n}: {v.type}' for n, v in zip(fn.arg_names, fn.inputs))})"
          f", {len(fn.eqns)} equations")


def cmd_show(a):
    from ..export import batch_program
    fn, _ = load_model(a.model, a.arg)
    in_dims, out_dims, batch = _batching(a, fn, batch_default="dynamic")
    if a.stage == "batched" and in_dims is None:
        raise UsageError("--stage batched needs --in-dims (and optionally --batch; default: dynamic)")
    program = batch_program(fn, in_dims, out_dims, batch, a.randomness)
    if a.stage in ("traced", "batched"):
        print(program.text(locations=a.locations))
    else:
        from ..lowering import lower
        from ..optimize import simplify
        targets = parse_targets(a.target)
        if len(targets) != 1:
            raise UsageError("--target: show prints the MLIR of one target at a time")
        print(lower([simplify(program)], target=targets[0]).text)   # what compile compiles


def _model_sources(model: str) -> list:
    """The files a MODEL argument names (FILE.py:FUNCTION or FILE.vir)."""
    return [Path(model if model.endswith(".vir") else model.rpartition(":")[0])]


def _read_key(path: str, what: str) -> bytes:
    """A signing key from a file (its bytes, surrounding whitespace removed)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as e:
        raise Failure(f"{what}: cannot read the key file {path}: {e.strerror or e}") from None
    if len(key) < 16:
        raise UsageError(f"{what}: the key in {path} is shorter than 16 bytes; make one with "
                         "python -c \"import secrets; print(secrets.token_hex(32))\" > KEYFILE")
    return key


def _apply_limits(a):
    """--compile-timeout/--compile-memory: the limits of vmapc.driver.compile_limits."""
    from ..driver import parse_size
    if a.compile_timeout is not None:
        if a.compile_timeout <= 0:
            raise UsageError("--compile-timeout: give a positive number of seconds")
        os.environ["VMAPC_COMPILE_TIMEOUT"] = str(a.compile_timeout)
    if a.compile_memory is not None:
        try:
            parse_size(a.compile_memory)
        except ValueError as e:
            raise UsageError(f"--compile-memory: {e}") from None
        os.environ["VMAPC_COMPILE_MEMORY"] = a.compile_memory


def cmd_compile(a):
    from ..errors import ArtifactError
    from ..export import check_output_dir, export
    targets = parse_targets(a.target)
    _apply_limits(a)
    key = _read_key(a.sign, "--sign") if a.sign else None
    try:   # before any work: never write into a directory of the user's own files
        check_output_dir(a.output, _model_sources(a.model))
    except ArtifactError as e:
        raise UsageError(e.message) from None
    fn, outputs = load_model(a.model, a.arg)
    in_dims, out_dims, batch = _batching(a, fn)
    starts = {}

    def progress(target, stage, nbytes=None):
        if stage == "compiling":
            starts[target] = time.perf_counter()
            _note(f"  {target}: compiling ...", end="\r")
        else:
            path = Path(a.output, target.replace(":", "-") + ".vmfb")
            _note(f"  {target}: compiled in {time.perf_counter() - starts[target]:.1f} s, "
                  f"{(nbytes or 0) / 1024:.0f} KiB -> {path}")

    _note(f"vmapc: compiling {fn.name} for {', '.join(t.label for t in targets)}"
          + (f" (batch {batch}, in_dims {','.join(str(d) for d in in_dims)})" if in_dims else ""))
    manifest = export(fn, a.output, in_dims=in_dims, out_dims=out_dims, batch=batch, targets=targets,
                      outputs=outputs, progress=progress, sign_key=key, sources=_model_sources(a.model),
                      randomness=a.randomness)
    sig = ", ".join(f"{x['name']}: {x['type']}" for x in manifest["inputs"])
    res = ", ".join(f"{x['name']}: {x['type']}" for x in manifest["outputs"])
    _note(f"wrote {a.output}: {manifest['function']}({sig}) -> ({res})")


def _read_inputs(specs, names, optional=()):
    """{name: array} for --input NAME=FILE.npy, checking the names against the model first
    (the `optional` ones may be left out)."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input {spec!r}: expected NAME=FILE.npy")
        pairs.append((name, path))
    given = [n for n, _ in pairs]
    for n in given:
        if n not in names:
            raise UsageError(f"--input {n}: the model has no input {n!r} (its inputs: {', '.join(names)})")
        if given.count(n) > 1:
            raise UsageError(f"--input {n} is given twice")
    missing = [n for n in names if n not in given and n not in optional]
    if missing:
        raise UsageError(f"missing --input for {', '.join(missing)} (the model takes {', '.join(names)})")
    return {name: read_npy(path, f"--input {name}") for name, path in pairs}


def cmd_run(a):
    if a.chunk_size is not None or a.scheduler or a.workers is not None:
        return cmd_run_chunked(a)
    from ..runtime.artifact import load
    keys = [_read_key(k, "--trusted-key") for k in a.trusted_key] or None
    model = load(a.artifact, target=a.target, driver=a.driver, trusted_keys=keys)
    inputs = _read_inputs(a.input, model.input_names, optional=model.defaults)
    t0 = time.perf_counter()
    outs = model(**inputs)
    elapsed = time.perf_counter() - t0
    if not isinstance(outs, tuple):
        outs = (outs,)
    res = Path(a.output_dir) if a.output_dir else None
    if res is not None:
        try:
            res.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Failure(f"--output-dir: cannot create {res}: {e.strerror or e}") from None
    for name, o in zip(model.output_names, outs):
        line = f"{name}: {o.dtype}[{', '.join(map(str, o.shape))}]"
        if res is not None:
            path = _result_path(res, name)
            try:
                _save_npy(path, o)
            except OSError as e:
                raise Failure(f"--output-dir: cannot write {path}: {e.strerror or e}") from None
            line += f" -> {path}"
        print(line)
    print(f"ran {_printable(model.name)} on {model.target} ({model.driver}) in {elapsed * 1e3:.3f} ms")


def _result_path(res: Path, name: str) -> Path:
    """OUTPUT_DIR/NAME.npy, after checking that it stays inside OUTPUT_DIR (the manifest's
    names are plain identifiers already; this is the last line of defence)."""
    from ..runtime.artifact import plain_name
    path = res / f"{name}.npy"
    if path.is_symlink():
        raise Failure(f"--output-dir: {path} is a symbolic link; refusing to write a result through it "
                      "(remove it, or choose another directory)")
    if not plain_name(name) or path.resolve().parent != res.resolve():
        raise Failure(f"--output-dir: refusing to write the result {ascii(name)}: its file would not be "
                      f"directly inside {res}")
    return path


def _save_npy(path: Path, a):
    """np.save through a temporary file renamed into place (a symlink at `path` is
    replaced, never followed)."""
    import io
    from ..export import _atomic_write
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    _atomic_write(path, buf.getvalue())


def _printable(text: str) -> str:
    """`text` with control characters escaped (names from files are never printed raw)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def cmd_targets(a):
    try:
        from ..targets import targets
    except ImportError as e:
        raise Failure(f"the target list is not available in this vmapc ({e})") from None
    rows = targets()
    if a.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    print(f"{'target':8} {'compile':8} {'run':4} devices / reason")
    for r in rows:
        where = ", ".join(r.get("devices") or []) or "-"
        why = f"  ({r['reason']})" if r.get("reason") else ""
        print(f"{r['name']:8} {'yes' if r['can_compile'] else 'no':8} {'yes' if r['can_run'] else 'no':4} "
              f"{where}{why}")


def cmd_rules(a):
    from ..rules import report
    rows = report()
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'op':20} {'family':12} rule")
    for r in rows:
        print(f"{r['op']:20} {r['family']:12} {r['rule']}")
    kinds = {}
    for r in rows:
        kinds[r["rule"]] = kinds.get(r["rule"], 0) + 1
    print(f"{len(rows)} ops: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
