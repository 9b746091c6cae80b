"""Reading the command line: models (``FILE.py:FUNCTION`` traced at ``--arg`` specs, or
``.vir`` files), ``.npy`` inputs checked before anything is allocated, ``--in-dims``,
``--batch`` and ``--target``; and the two exceptions that set the exit status."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from .. import dtypes as dt
from ..errors import VmapcError

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
    from ..tracing import ShapeDtype
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
    from ..export import output_names
    from ..text import parse
    from ..tracing import trace_flat
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
        from ..runtime.artifact import plain_name
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
    from ..errors import TargetError
    from ..targets import get_target
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
