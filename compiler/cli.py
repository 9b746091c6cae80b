"""The ``vmapc`` command: trace, show, compile and run models from the shell.

A *model* is either a Python function, named ``FILE.py:FUNCTION`` and traced at
the argument specs given with ``--arg`` (``NAME=f32[784]``, or ``NAME=x.npy`` to
take the shape and dtype of an example array), or a ``.vir`` file: the IR text
that ``vmapc trace -o`` writes. The per-example program is the starting point;
``--in-dims`` says where each input carries the batch (an axis, or ``None`` for
inputs shared by every example, such as weights) and ``--batch`` how big the
batch is (an int, or ``dynamic`` for one module serving every batch size)::

    vmapc trace   model.py:mlp --arg x=f32[64] --arg w=f32[64,10] -o mlp.vir
    vmapc show    mlp.vir --in-dims 0,None --stage batched
    vmapc compile mlp.vir --in-dims 0,None --batch dynamic --target cpu,vulkan -o out/
    vmapc run     out/ --input x=xs.npy --input w=w.npy --output-dir res/
    vmapc targets
    vmapc rules

``compile`` writes an artifact directory (one ``.vmfb`` per target, the IR and a
``manifest.json``) that ``run`` and :func:`vmapc.load` execute without the IREE
compiler; ``docs/cli.md`` is the reference for the commands and the format.

Output conventions: a command's result goes to stdout (IR text, tables, result
shapes and time); progress notes go to stderr and only when it is a terminal;
errors go to stderr as one line, ``vmapc COMMAND: error: ...``, never a
traceback (``VMAPC_DEBUG=1`` shows one for internal errors). Exit status: 0 on
success, 2 when the command line is wrong (a malformed option, or options that
do not fit the model), 1 when something fails (a missing or corrupt file,
tracing, compiling or running).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import dtypes as dt
from .errors import VmapcError

STAGES = ("traced", "batched", "mlir")


class UsageError(Exception):
    """A wrong command line: exit status 2."""


class Failure(Exception):
    """A failure that is not one of vmapc's own errors: exit status 1."""


# --- reading models --------------------------------------------------------------------------------

def _user_frame(exc: BaseException, path: Path) -> str:
    """' (at model.py:3: source line)' for the innermost frame of `exc` in the user's file."""
    where = ""
    for fs in traceback.extract_tb(exc.__traceback__):
        try:
            if Path(fs.filename).resolve() == path.resolve():
                where = f" (at {fs.filename}:{fs.lineno}: {(fs.line or '').strip()})"
        except OSError:
            pass
    return where


def _load_python(src: str):
    path, _, name = src.rpartition(":")
    if not path or not name:
        raise UsageError(f"model {src!r}: expected FILE.py:FUNCTION or a .vir file")
    p = Path(path)
    if not p.is_file():
        raise Failure(f"{path}: no such file")
    mod_name = f"_vmapc_model_{re.sub(r'[^0-9A-Za-z_]', '_', p.stem)}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise Failure(f"{path}: cannot be imported as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module            # dataclasses and pickling look modules up here
    sys.path.insert(0, str(p.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise Failure(f"{path}: importing it failed: SyntaxError: {e.msg} (line {e.lineno})") from None
    except Exception as e:
        raise Failure(f"{path}: importing it failed: {type(e).__name__}: {e}{_user_frame(e, p)}") from None
    finally:
        sys.path.pop(0)
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        available = [k for k, v in vars(module).items() if inspect.isfunction(v) and not k.startswith("_")
                     and v.__module__ == module.__name__]
        what = "no function" if fn is None else "no function (it is not callable):"
        raise Failure(f"{path} has {what} {name!r}; its functions: {', '.join(available) or 'none'}")
    return fn, p


_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\]]*)\]$")


def read_npy(path: str, what: str, header_only: bool = False):
    """The array in a .npy file (or its (shape, dtype) with `header_only`), checked before
    anything is allocated: the header must be valid, its dtype one vmapc supports (never
    a pickle), and its shape must match the size of the data in the file, so a header
    claiming terabytes is an error, not an allocation."""
    import math
    fmt = np.lib.format
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise Failure(f"{what}: {path}: no such file") from None
    except OSError as e:
        raise Failure(f"{what}: cannot read {path}: {e.strerror or e}") from None
    with f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
        except (ValueError, OSError, EOFError, SyntaxError, TypeError, RecursionError, MemoryError) as e:
            raise Failure(f"{what}: {path} is not a valid .npy file: {_one_line(e)}") from None
        if dtype.hasobject or dtype.newbyteorder("=") not in dt.SHORT_NAMES:
            raise UsageError(f"{what}: {path} has dtype {dtype}, which vmapc does not support "
                             f"(supported: {', '.join(dt.BY_SHORT_NAME)})")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != size - offset:
            raise Failure(f"{what}: {path} is not a valid .npy file: its header says shape {tuple(shape)} of "
                          f"{dtype} ({nbytes} bytes of data) but the file holds {size - offset} bytes after it")
        if header_only:
            return tuple(shape), dtype.newbyteorder("=")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise Failure(f"{what}: cannot read {path} as a .npy array: {_one_line(e)}") from None
        except MemoryError:
            raise Failure(f"{what}: {path} ({nbytes} bytes) does not fit in memory") from None


def parse_arg_spec(text: str):
    """``NAME=f32[784,10]`` (or ``float32[...]``) or ``NAME=FILE.npy`` -> (name, ShapeDtype);
    ``NAME=64`` -> (name, 64), a static int (docs/vmap.md)."""
    from .tracing import ShapeDtype
    name, sep, spec = text.partition("=")
    if not sep or not name.isidentifier() or not spec:
        raise UsageError(f"--arg {text!r}: expected NAME=DTYPE[SHAPE] (e.g. x=f32[784]), NAME=FILE.npy or NAME=INT")
    if re.fullmatch(r"-?[0-9]+", spec):
        return name, int(spec)
    if spec.endswith(".npy"):
        shape, dtype = read_npy(spec, f"--arg {name}", header_only=True)
        return name, _spec(name, shape, dtype)
    m = _SPEC.match(spec)
    if not m:
        raise UsageError(f"--arg {name}: {spec!r} is not DTYPE[SHAPE] such as f32[784,10] or f32[] "
                         "(or a .npy file)")
    dtype = dt.BY_SHORT_NAME.get(m.group(1))
    if dtype is None:
        try:
            dtype = np.dtype(m.group(1))
        except TypeError:
            dtype = None
        if dtype not in dt.SHORT_NAMES:
            raise UsageError(f"--arg {name}: unknown dtype {m.group(1)!r} "
                             f"(dtypes: {', '.join(dt.BY_SHORT_NAME)})")
    dims = [d.strip() for d in m.group(2).split(",")] if m.group(2).strip() else []
    if not all(d.isdigit() and len(d) < 40 for d in dims):
        raise UsageError(f"--arg {name}: bad shape [{m.group(2)}]: give sizes as non-negative ints, "
                         "e.g. f32[784,10] (the batch dim comes from --in-dims/--batch)")
    return name, _spec(name, [int(d) for d in dims], dtype)


def _spec(name, shape, dtype):
    """A ShapeDtype, or a UsageError for a shape compiled code cannot address."""
    from .tracing import ShapeDtype
    try:
        return ShapeDtype(shape, dtype)
    except VmapcError as e:
        raise UsageError(f"--arg {name}: {_one_line(e.message)}") from None


def _parameters(fn):
    """[(name, required)] of the parameters that --arg can give, in order."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise Failure(f"cannot read the signature of {fn!r}") from None
    return [(p.name, p.default is p.empty) for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


_OUTPUTS_COMMENT = re.compile(r"^#\s*outputs:\s*(.*)$", re.M)


def load_model(src: str, arg_specs):
    """(program, output names) for SRC: a .vir file, or FILE.py:FUNCTION traced at the --arg specs."""
    from .export import output_names
    from .text import parse
    from .tracing import trace_flat
    if src.endswith(".vir"):
        if arg_specs:
            raise UsageError("--arg is for FILE.py:FUNCTION models; a .vir file already has its types")
        try:
            text = Path(src).read_text()
        except FileNotFoundError:
            raise Failure(f"{src}: no such file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise Failure(f"{src}: cannot read it: {e}") from None
        try:
            fn = parse(text)
        except VmapcError as e:
            raise Failure(f"{src}: not a valid vmapc IR file: {_one_line(e.message)}") from None
        from .runtime.artifact import plain_name
        m = _OUTPUTS_COMMENT.search(text)
        names = m.group(1).split() if m else []
        if len(names) != len(fn.outputs) or len({n.lower() for n in names}) != len(names) \
                or not all(plain_name(n) for n in names):
            names = output_names(None, len(fn.outputs))
        return fn, names

    fn, path = _load_python(src)
    specs = {}
    for a in arg_specs:
        name, s = parse_arg_spec(a)
        if name in specs:
            raise UsageError(f"--arg {name} is given twice")
        specs[name] = s
    params = _parameters(fn)
    known = [n for n, _ in params]
    unknown = [n for n in specs if n not in known]
    if unknown:
        raise UsageError(f"--arg {unknown[0]}: {src} has no parameter {unknown[0]!r} "
                         f"(its parameters: {', '.join(known) or 'none'})")
    missing = [n for n, required in params if required and n not in specs]
    if missing:
        raise UsageError(f"missing --arg for parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"of {src} (give each as NAME=f32[SHAPE] or NAME=FILE.npy)")
    # Leading given parameters are passed positionally, later ones (after a defaulted
    # parameter left out) by keyword; parameters left out keep their Python defaults.
    positional, keywords = [], {}
    for n, _ in params:
        if n not in specs:
            continue
        if not keywords and len(positional) == known.index(n):
            positional.append(specs[n])
        else:
            keywords[n] = specs[n]
    try:
        f, _, out_tree, _ = trace_flat(fn, positional, keywords, arg_names=known[:len(positional)],
                                       name=src.rpartition(":")[2])
    except VmapcError:
        raise
    except Exception as e:  # the user's code raised while being traced
        raise Failure(f"tracing {src} failed: {type(e).__name__}: {e}{_user_frame(e, path)}") from None
    return f, output_names(out_tree, len(f.outputs), f)


def parse_dims(text, values, what):
    """``0,None,-1`` -> [0, None, -1], one entry per value (for --out-dims, one entry
    may stand for all), each checked against the value's rank."""
    kind = "inputs" if what == "--in-dims" else "outputs"
    parts = [p.strip() for p in text.split(",")]
    if what == "--out-dims" and len(parts) == 1:
        parts = parts * len(values)
    if len(parts) != len(values):
        raise UsageError(f"{what} has {len(parts)} entr{'y' if len(parts) == 1 else 'ies'} but the model has "
                         f"{len(values)} {kind if len(values) != 1 else kind[:-1]}; give one per {kind[:-1]}, e.g. "
                         f"{what} {','.join(['0'] + ['None'] * (len(values) - 1))}")
    out = []
    for i, (p, (name, v)) in enumerate(zip(parts, values)):
        if p.lower() in ("none", "-"):
            out.append(None)
            continue
        try:
            d = int(p)
        except ValueError:
            raise UsageError(f"{what}: entry {i} ({name}) is {p!r}; expected an axis (int) or None") from None
        if not -(v.rank + 1) <= d <= v.rank:
            raise UsageError(f"{what}: entry {i} is {d} but `{name}` is {v.type} per example "
                             f"(valid: {-(v.rank + 1)}..{v.rank}, or None)")
        out.append(d)
    if what == "--in-dims" and all(d is None for d in out):
        raise UsageError("--in-dims: every entry is None; at least one input must carry the batch")
    return out


def parse_batch(text):
    if text == "dynamic":
        return "dynamic"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--batch: expected a positive int or 'dynamic', got {text!r}")
    return n


def parse_targets(text):
    """``cpu,vulkan,cuda:sm_90a`` -> [Target]: a family, or ``family:option`` (see vmapc.targets)."""
    from .errors import TargetError
    from .targets import get_target
    names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise UsageError("--target: give at least one target (cpu, vulkan, cuda)")
    try:
        return [get_target(n) for n in names]
    except TargetError as e:
        raise UsageError(f"--target: {_one_line(e.message)}") from None


def _batching(a, fn, batch_default=None):
    """(in_dims, out_dims, batch) from --in-dims/--out-dims/--batch, checked against fn."""
    if a.in_dims is None:
        if a.batch is not None:
            raise UsageError("--batch needs --in-dims (which inputs carry the batch)")
        if a.out_dims is not None:
            raise UsageError("--out-dims needs --in-dims (which inputs carry the batch)")
        return None, 0, None
    names = fn.arg_names or [f"input {i}" for i in range(len(fn.inputs))]
    in_dims = parse_dims(a.in_dims, list(zip(names, fn.inputs)), "--in-dims")
    out_dims = 0
    if a.out_dims is not None:
        out_dims = parse_dims(a.out_dims, [(f"output {j}", v) for j, v in enumerate(fn.outputs)], "--out-dims")
    if a.batch is None and batch_default is None:
        raise UsageError("--in-dims needs --batch (an int, or 'dynamic')")
    batch = parse_batch(a.batch if a.batch is not None else batch_default)
    return in_dims, out_dims, batch


def _one_line(text: str) -> str:
    """One line, with control characters escaped (messages quote untrusted files)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(str(text).split()))


def _note(msg: str, end="\n"):
    """A progress note: on stderr, and only when it is a terminal."""
    if sys.stderr.isatty():
        print(msg, end=end, file=sys.stderr, flush=True)


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
    from .export import _atomic_write
    try:
        _atomic_write(out, (header + text).encode())
    except OSError as e:
        raise Failure(f"cannot write {a.output}: {e.strerror or e}") from None
    _note(f"wrote {a.output}: {fn.name}({', '.join(f'{n}: {v.type}' for n, v in zip(fn.arg_names, fn.inputs))})"
          f", {len(fn.eqns)} equations")


def cmd_show(a):
    from .export import batch_program
    fn, _ = load_model(a.model, a.arg)
    in_dims, out_dims, batch = _batching(a, fn, batch_default="dynamic")
    if a.stage == "batched" and in_dims is None:
        raise UsageError("--stage batched needs --in-dims (and optionally --batch; default: dynamic)")
    program = batch_program(fn, in_dims, out_dims, batch, a.randomness)
    if a.stage in ("traced", "batched"):
        print(program.text(locations=a.locations))
    else:
        from .lowering import lower
        from .optimize import simplify
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
    from .driver import parse_size
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
    from .errors import ArtifactError
    from .export import check_output_dir, export
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
    from .runtime.artifact import load
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
    from .runtime.artifact import plain_name
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
    from .export import _atomic_write
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    _atomic_write(path, buf.getvalue())


def _printable(text: str) -> str:
    """`text` with control characters escaped (names from files are never printed raw)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


# --- vmapc run --chunk-size: a batch bigger than memory ----------------------------------------------

def _input_files(specs, names):
    """{name: NpyFile} for --input NAME=FILE.npy: the files' headers, no data yet."""
    from .runtime.chunked import NpyFile
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
        from . import dask  # noqa: F401  (vmapc.dask, which needs dask.array)
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
    from .runtime.artifact import load
    from .runtime.chunked import NpyOutput
    from .scaleout import inputs, ranges, run_in_process
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
    from . import dask as vdask
    with client.as_current():
        in_dims = model.manifest["in_dims"]
        xs = [vdask.from_npy(x, a.chunk_size, axis=d) if d is not None else x for x, d in zip(args, in_dims)]
        ys = vdask.map_batches(model, *xs, driver=a.driver)
        vdask.to_npy(list(ys) if isinstance(ys, tuple) else [ys], paths, progress=bar)


def cmd_targets(a):
    try:
        from .targets import targets
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
    from .rules import report
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


# --- the parser ------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


_FMT = argparse.RawDescriptionHelpFormatter

EXAMPLES = {
    "trace": """examples:
  vmapc trace model.py:mlp --arg x=f32[64] --arg w1=f32[64,32] --arg w2=f32[32,10] -o mlp.vir
  vmapc trace model.py:mlp --arg x=x0.npy --arg w1=w1.npy --arg w2=w2.npy   # IR on stdout""",
    "show": """examples:
  vmapc show mlp.vir                                        # the traced program
  vmapc show mlp.vir --in-dims 0,None,None --stage batched  # batch dims after @
  vmapc show mlp.vir --in-dims 0,None,None --batch 256 --stage mlir""",
    "compile": """examples:
  vmapc compile mlp.vir --in-dims 0,None,None --batch dynamic -o out/
  vmapc compile model.py:mlp --arg x=f32[64] --arg w1=f32[64,32] --arg w2=f32[32,10] \\
      --in-dims 0,None,None --batch 256 --target cpu,vulkan -o out/

writes OUT/<target>.vmfb per target, OUT/model.vir, OUT/batched.vir and
OUT/manifest.json (see docs/cli.md). Progress is shown when stderr is a terminal.""",
    "run": """example:
  vmapc run out/ --input x=xs.npy --input w1=w1.npy --input w2=w2.npy --output-dir res/

prints one line per result (name: dtype[shape]) and the time of the call.

a batch bigger than memory, in chunks (here, or on Dask workers; docs/scaling.md):
  vmapc run out/ --input x=big.npy --input w1=w1.npy --input w2=w2.npy --output-dir res/ \\
      --chunk-size 100000 [--workers 2 | --scheduler tcp://host:8786]""",
}


def build_parser():
    p = _Parser(prog="vmapc", formatter_class=_FMT,
                description="vmapc: a batching compiler for Python. Trace a NumPy function written for one "
                            "example,\nbatch it, compile it with IREE and run it.",
                epilog="Run 'vmapc COMMAND --help' for each command; docs/cli.md is the reference.\n"
                       "Exit status: 0 success, 1 failure, 2 wrong command line.")
    p.add_argument("--version", action="version", version=f"vmapc {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def model_args(sp):
        sp.add_argument("model", metavar="MODEL",
                        help="FILE.py:FUNCTION (traced at the --arg specs) or a .vir file from 'vmapc trace'")
        sp.add_argument("--arg", action="append", default=[], metavar="NAME=SPEC",
                        help="one per parameter of a Python model, for ONE example: NAME=f32[784] "
                             "(dtype[shape]; f32[] is a scalar) or NAME=example.npy (its shape and dtype)")

    def batch_args(sp, batch_help):
        sp.add_argument("--in-dims", metavar="DIMS",
                        help="per input, in order: the axis that carries the batch, or None for inputs "
                             "shared by every example (e.g. 0,None,None); negative axes count from "
                             "the end")
        sp.add_argument("--out-dims", metavar="DIMS",
                        help="per output (or one for all): where the batch axis goes, or None (default 0)")
        sp.add_argument("--batch", metavar="N|dynamic", help=batch_help)
        sp.add_argument("--randomness", choices=("error", "same", "different"), default="error",
                        help="what a random draw from a key every example shares does (docs/randomness.md): "
                             "error (the default), same (one draw, shared) or different (each example folds "
                             "its global index into the key; the artifact then takes example_offset, default 0)")

    s = sub.add_parser("trace", help="trace a Python function into an IR file (.vir)", formatter_class=_FMT,
                       description="Trace FILE.py:FUNCTION for one example at the --arg specs and write "
                                   "its IR\n(the text form of docs/ir.md, with source lines).",
                       epilog=EXAMPLES["trace"])
    model_args(s)
    s.add_argument("-o", "--output", metavar="FILE.vir", help="the IR file to write (default: stdout)")
    s.add_argument("--force", action="store_true",
                   help="overwrite -o even when it is not a .vir file, or is the model's own source")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("show", help="print a stage of a model: traced, batched or mlir", formatter_class=_FMT,
                       description="Print one stage of a model: the traced IR, the batched IR (each value's "
                                   "batch dim\nafter @) or the MLIR handed to IREE.",
                       epilog=EXAMPLES["show"])
    model_args(s)
    batch_args(s, "batch size for the batched and mlir stages: an int, or 'dynamic' (the default here)")
    s.add_argument("--stage", choices=STAGES, default="traced",
                   help="traced (default), batched (needs --in-dims) or mlir (batched when --in-dims is given)")
    s.add_argument("--locations", action="store_true", help="show each equation's source line")
    s.add_argument("--target", default="cpu", metavar="T",
                   help="the target the mlir stage is lowered for (default: cpu)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("compile", help="compile a model into a deployable artifact directory",
                       formatter_class=_FMT,
                       description="Batch a model and compile it with IREE for each target into an artifact "
                                   "directory\nthat 'vmapc run' and vmapc.load() execute without the compiler.",
                       epilog=EXAMPLES["compile"])
    model_args(s)
    batch_args(s, "batch size, required with --in-dims: an int (static shapes, any target), or 'dynamic' "
                  "(one module for every batch size; best on cpu)")
    s.add_argument("--target", default="cpu", metavar="T[,T...]",
                   help="comma-separated targets: cpu, vulkan, cuda, or FAMILY:OPTION such as cpu:generic "
                        "(a portable CPU build) or cuda:sm_90a (default: cpu; see 'vmapc targets')")
    s.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the artifact directory to write: new, empty, or a previous artifact (replaced "
                        "only once the new one is complete)")
    s.add_argument("--sign", metavar="KEYFILE",
                   help="sign the manifest with HMAC-SHA256 and the key in KEYFILE (see docs/cli.md)")
    s.add_argument("--compile-timeout", type=float, metavar="SECONDS",
                   help="stop an iree-compile that runs longer (default: $VMAPC_COMPILE_TIMEOUT or 600)")
    s.add_argument("--compile-memory", metavar="SIZE",
                   help="stop an iree-compile that uses more memory, e.g. 8G (default: "
                        "$VMAPC_COMPILE_MEMORY or half the machine's memory)")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("run", help="run a compiled artifact on .npy inputs", formatter_class=_FMT,
                       description="Run an artifact written by 'vmapc compile' on .npy inputs, one per "
                                   "model input.", epilog=EXAMPLES["run"])
    s.add_argument("artifact", metavar="OUT", help="the artifact directory written by 'vmapc compile'")
    s.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="one per model input (the names are in OUT/manifest.json)")
    s.add_argument("--target", help="which build to run (default: the first of cpu, cuda, vulkan that runs here)")
    s.add_argument("--driver", help="IREE runtime driver, e.g. local-sync or local-task (default: the build's)")
    s.add_argument("--output-dir", metavar="DIR", help="write each result as DIR/NAME.npy")
    s.add_argument("--trusted-key", action="append", default=[], metavar="KEYFILE",
                   help="require the artifact to be signed with the key in KEYFILE (repeatable: any of them)")
    s.add_argument("--chunk-size", type=int, metavar="N",
                   help="run the batch in chunks of N examples, read from the input files and written to "
                        "--output-dir chunk by chunk: memory holds a few chunks, not the batch (docs/scaling.md)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="with --chunk-size: run the chunks on the Dask cluster at ADDRESS (tcp://host:8786); "
                            "its workers must see the input and output files at the same paths")
    where.add_argument("--workers", type=int, metavar="N",
                       help="with --chunk-size: run the chunks on N local Dask worker processes")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("targets", help="list compilation targets and whether they compile and run here",
                       description="List the compilation targets, whether each can compile and run here, "
                                   "its devices, and why not.")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_targets)

    s = sub.add_parser("rules", help="list every op with its family and kind of batching rule",
                       description="List every IR op with its family and the kind of its batching rule "
                                   "(native, family or fallback).")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_rules)
    return p


def _version():
    from . import __version__
    return __version__


def _join_dims(argv):
    """`--in-dims -1,None` -> `--in-dims=-1,None`: argparse would read -1,None as an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--in-dims", "--out-dims") and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_dims(sys.argv[1:] if argv is None else list(argv)))
    prefix = f"vmapc {args.command}: error:"
    try:
        args.func(args)
        sys.stdout.flush()
    except UsageError as e:
        print(f"{prefix} {_one_line(e)}", file=sys.stderr)
        return 2
    except Failure as e:
        print(f"{prefix} {_one_line(e)}", file=sys.stderr)
        return 1
    except VmapcError as e:
        where = ""
        if e.loc is not None:
            src = e.loc.source()
            where = " " + _one_line(f"(at {e.loc}" + (f": {src})" if src else ")"))
        msg = _one_line(e.message)
        details = getattr(e, "details", None)
        if details and "details" in msg:     # a compiler crash: its first line says why
            first = next((ln.strip() for ln in str(details).splitlines() if ln.strip()), "")
            msg = re.sub(r";? ?its output is in this error's \.details", "", msg) + f": {first[:300]}"
        print(f"{prefix} {type(e).__name__}: {msg}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vmapc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prefix} out of memory", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `vmapc rules | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        if os.environ.get("VMAPC_DEBUG"):
            raise
        print(f"{prefix} internal error: {type(e).__name__}: {_one_line(e)} "
              "(set VMAPC_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
