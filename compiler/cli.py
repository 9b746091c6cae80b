"""The ``vmapc`` command: trace, show, compile and run models from the shell.

::

    vmapc trace   model.py:mlp --arg x=f32[784] --arg w=f32[784,10] -o mlp.vir
    vmapc show    mlp.vir --in-dims 0,None --batch 256 --stage batched
    vmapc compile mlp.vir --in-dims 0,None --batch 256 --target cpu,vulkan -o out/
    vmapc run     out/ --input x=x.npy --input w=w.npy --output-dir res/
    vmapc targets
    vmapc rules

A model is ``FILE.py:FUNCTION`` (traced at the ``--arg`` specs: ``NAME=f32[784]``
or ``NAME=example.npy``) or a ``.vir`` file written by ``vmapc trace``.
Exit status: 0 on success, 2 for usage errors, 1 for failures; messages go to
stderr as one line (``vmapc: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import dtypes as dt
from .errors import VmapcError

STAGES = ("traced", "batched", "mlir")


class UsageError(Exception):
    """A bad command line: exit status 2."""


class Failure(Exception):
    """Something that failed for a reason other than vmapc's own errors: exit status 1."""


# --- reading models --------------------------------------------------------------------------------

def _load_python(src: str):
    path, _, name = src.rpartition(":")
    if not path or not name:
        raise UsageError(f"expected FILE.py:FUNCTION or a .vir file, got {src!r}")
    p = Path(path)
    if not p.exists():
        raise Failure(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"_vmapc_model_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise Failure(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(p.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except VmapcError:
        raise
    except Exception as e:
        raise Failure(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.pop(0)
    fn = getattr(module, name, None)
    if fn is None:
        available = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                     and getattr(v, "__module__", None) == module.__name__]
        raise Failure(f"{path} has no function {name!r}" + (f" (it has: {', '.join(available)})" if available else ""))
    if not callable(fn):
        raise Failure(f"{path}: {name} is not a function")
    return fn


def parse_arg_spec(text: str):
    """``NAME=f32[784,10]`` or ``NAME=path.npy`` -> (name, ShapeDtype)."""
    from .runtime.artifact import parse_type
    from .tracing import ShapeDtype
    name, sep, spec = text.partition("=")
    if not sep or not name.isidentifier() or not spec:
        raise UsageError(f"bad --arg {text!r}: expected NAME=DTYPE[SHAPE] (e.g. x=f32[784]) or NAME=FILE.npy")
    if spec.endswith(".npy"):
        try:
            a = np.load(spec, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise Failure(f"--arg {name}: cannot read {spec}: {e}") from None
        try:
            return name, ShapeDtype(a.shape, dt.canonical(a.dtype, f"--arg {name}"))
        except VmapcError as e:
            raise UsageError(e.message) from None
    try:
        t = parse_type(spec)
    except VmapcError:
        raise UsageError(f"bad --arg {text!r}: {spec!r} is not a type like f32[784,10] "
                         f"(dtypes: {', '.join(dt.BY_SHORT_NAME)})") from None
    if not all(isinstance(d, int) for d in t.shape):
        raise UsageError(f"bad --arg {text!r}: shapes must be static ints")
    return name, ShapeDtype(t.shape, t.dtype)


def load_model(src: str, arg_specs):
    """The traced program for SRC (a .vir file, or FILE.py:FUNCTION with --arg specs)."""
    from .text import parse
    from .tracing import _arg_names, trace_flat
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
            return parse(text)
        except VmapcError as e:
            raise Failure(f"{src}: not a valid vmapc IR file: {e.message.splitlines()[0]}") from None
    fn = _load_python(src)
    specs = dict(parse_arg_spec(a) for a in arg_specs)
    params = _arg_names(fn, len(specs))
    try:
        import inspect
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        pass
    missing = [p for p in params if p not in specs]
    unknown = [n for n in specs if n not in params]
    if unknown:
        raise UsageError(f"--arg {unknown[0]}: {src} has no parameter {unknown[0]!r} "
                         f"(parameters: {', '.join(params)})")
    if missing:
        raise UsageError(f"missing --arg for parameter(s) {', '.join(missing)} of {src} "
                         "(give each as NAME=f32[SHAPE] or NAME=FILE.npy)")
    f, _, _, _ = trace_flat(fn, [specs[p] for p in params], {}, arg_names=params,
                            name=src.rpartition(":")[2])
    return f


def parse_in_dims(text, n_inputs: int, what="--in-dims"):
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != n_inputs:
        raise UsageError(f"{what} has {len(parts)} entries but the model has {n_inputs} "
                         f"{'inputs' if what == '--in-dims' else 'outputs'}")
    out = []
    for p in parts:
        if p in ("None", "none", "-"):
            out.append(None)
        else:
            try:
                out.append(int(p))
            except ValueError:
                raise UsageError(f"{what}: {p!r} is not an int or None") from None
    return out


def parse_batch(text):
    if text is None:
        return None
    if text == "dynamic":
        return "dynamic"
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--batch must be a positive int or 'dynamic', got {text!r}") from None
    if n < 1:
        raise UsageError(f"--batch must be a positive int or 'dynamic', got {text!r}")
    return n


def parse_targets(text):
    from .driver import TARGETS
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        if n not in TARGETS:
            raise UsageError(f"unknown target {n!r} (known: {', '.join(TARGETS)})")
    if not names:
        raise UsageError("--target needs at least one target")
    return names


def _check_in_dims(fn, in_dims):
    """Range-check in_dims against the per-example input ranks (rank + 1 positions)."""
    for i, (d, v) in enumerate(zip(in_dims, fn.inputs)):
        if d is not None and not -(v.rank + 1) <= d <= v.rank:
            name = fn.arg_names[i] if fn.arg_names else f"input {i}"
            raise UsageError(f"--in-dims: entry {i} is {d} but `{name}` is {v.type} "
                             f"(valid: {-(v.rank + 1)}..{v.rank} or None)")


# --- subcommands -----------------------------------------------------------------------------------

def cmd_trace(a):
    fn = load_model(a.model, a.arg)
    text = fn.text(locations=True) + "\n"
    if a.output:
        Path(a.output).write_text(f"# vmapc IR ({fn.name}), traced from {a.model}\n" + text)
        print(f"wrote {a.output}: {len(fn.inputs)} inputs, {len(fn.eqns)} equations, "
              f"{len(fn.outputs)} outputs", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _batched(a, fn):
    from .export import batch_program
    in_dims = parse_in_dims(a.in_dims, len(fn.inputs))
    out_dims = parse_in_dims(a.out_dims, len(fn.outputs), "--out-dims") if a.out_dims else 0
    batch = parse_batch(a.batch)
    if in_dims is not None:
        _check_in_dims(fn, in_dims)
        if batch is None:
            raise UsageError("--batch is required with --in-dims (an int, or 'dynamic')")
    elif batch is not None:
        raise UsageError("--batch needs --in-dims (which inputs carry the batch)")
    return batch_program(fn, in_dims, out_dims, batch), in_dims, out_dims, batch


def cmd_show(a):
    fn = load_model(a.model, a.arg)
    if a.stage == "traced":
        print(fn.text(locations=a.locations))
        return
    program, in_dims, _, _ = _batched(a, fn)
    if a.stage == "batched":
        if in_dims is None:
            raise UsageError("--stage batched needs --in-dims and --batch")
        print(program.text(locations=a.locations))
        return
    from .lowering import lower
    print(lower([program]).text)


def cmd_compile(a):
    from .export import export
    fn = load_model(a.model, a.arg)
    targets = parse_targets(a.target)
    _, in_dims, out_dims, batch = _batched(a, fn)
    tty = sys.stderr.isatty()
    starts = {}

    def progress(target, stage):
        if stage == "compiling":
            starts[target] = time.perf_counter()
            if tty:
                print(f"  {target}: compiling...", end="\r", file=sys.stderr, flush=True)
        elif tty:
            print(f"  {target}: done in {time.perf_counter() - starts[target]:.1f} s   ", file=sys.stderr)
    manifest = export(fn, a.output, in_dims=in_dims, out_dims=out_dims, batch=batch, targets=targets,
                      progress=progress)
    sig = ", ".join(f"{x['name']}: {x['type']}" for x in manifest["inputs"])
    print(f"wrote {a.output}: {manifest['function']}({sig}) for {', '.join(targets)}")


def _read_input(spec: str):
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"bad --input {spec!r}: expected NAME=FILE.npy")
    try:
        return name, np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Failure(f"--input {name}: {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise Failure(f"--input {name}: cannot read {path}: {e}") from None


def cmd_run(a):
    from .runtime.artifact import load
    model = load(a.artifact, target=a.target, driver=a.driver)
    inputs = dict(_read_input(s) for s in a.input)
    t0 = time.perf_counter()
    outs = model(**inputs)
    elapsed = time.perf_counter() - t0
    if not isinstance(outs, tuple):
        outs = (outs,)
    res = Path(a.output_dir) if a.output_dir else None
    if res is not None:
        res.mkdir(parents=True, exist_ok=True)
    for name, o in zip(model.output_names, outs):
        line = f"{name}: {o.dtype}{list(o.shape)}"
        if res is not None:
            np.save(res / f"{name}.npy", o)
            line += f" -> {res / (name + '.npy')}"
        print(line)
    print(f"ran on {model.target} in {elapsed * 1e3:.2f} ms", file=sys.stderr)


def cmd_targets(a):
    from . import targets as _t
    rows = _t.targets()
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "compile" + (" + run" if r["can_run"] else "")
        print(f"{r['name']:8} {state:15} {', '.join(r.get('devices') or []) or '-':30} {r.get('reason') or ''}")


def cmd_rules(a):
    from .rules import report
    rows = report()
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['op']:20} {r['family']:12} {r['rule']}")
    kinds = {}
    for r in rows:
        kinds[r["rule"]] = kinds.get(r["rule"], 0) + 1
    print(f"{len(rows)} ops: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def build_parser():
    p = argparse.ArgumentParser(prog="vmapc", description="vmapc: a batching compiler for Python.")
    p.add_argument("--version", action="version", version=f"vmapc {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def model_args(sp):
        sp.add_argument("model", help="FILE.py:FUNCTION or a .vir file")
        sp.add_argument("--arg", action="append", default=[], metavar="NAME=SPEC",
                        help="argument spec for a Python model: NAME=f32[784] or NAME=example.npy")

    def batch_args(sp):
        sp.add_argument("--in-dims", help="per input: its batch axis or None, e.g. 0,None")
        sp.add_argument("--out-dims", help="per output: its batch axis or None (default 0)")
        sp.add_argument("--batch", help="batch size: an int, or 'dynamic'")

    s = sub.add_parser("trace", help="trace a Python function into an IR file")
    model_args(s)
    s.add_argument("-o", "--output", help="the .vir file to write (default: stdout)")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("show", help="print a stage of a model: traced, batched or mlir")
    model_args(s)
    batch_args(s)
    s.add_argument("--stage", choices=STAGES, default="traced")
    s.add_argument("--locations", action="store_true", help="show each equation's source line")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("compile", help="compile a model into a deployable artifact directory")
    model_args(s)
    batch_args(s)
    s.add_argument("--target", default="cpu", help="comma-separated targets: cpu, vulkan, cuda")
    s.add_argument("-o", "--output", required=True, help="artifact directory to write")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("run", help="run a compiled artifact on .npy inputs")
    s.add_argument("artifact", help="directory written by `vmapc compile`")
    s.add_argument("--target", help="which build to run (default: the first that runs here)")
    s.add_argument("--driver", help="IREE runtime driver (e.g. local-sync, local-task)")
    s.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    s.add_argument("--output-dir", help="write each result as NAME.npy here")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("targets", help="list compilation targets and whether they run here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_targets)

    s = sub.add_parser("rules", help="list every op with its family and kind of batching rule")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_rules)
    return p


def _version():
    from . import __version__
    return __version__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)       # exits with status 2 on usage errors
    try:
        args.func(args)
    except UsageError as e:
        parser.exit(2, f"vmapc {args.command}: error: {e}\n")
    except Failure as e:
        print(f"vmapc {args.command}: error: {e}", file=sys.stderr)
        return 1
    except VmapcError as e:
        msg = str(e).replace("\n", " ")
        print(f"vmapc {args.command}: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vmapc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
