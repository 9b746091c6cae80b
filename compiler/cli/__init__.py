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

The command is a package: :mod:`vmapc.cli.models` reads models, ``.npy`` inputs and the
options that describe the batch; :mod:`vmapc.cli.commands` holds the subcommands and
:mod:`vmapc.cli.chunked` ``run --chunk-size``; this module builds the parser and maps errors
to exit statuses.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from ..errors import VmapcError
from .commands import cmd_compile, cmd_rules, cmd_run, cmd_show, cmd_targets, cmd_trace
from .models import STAGES, Failure, UsageError, _one_line


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
    from .. import __version__
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

