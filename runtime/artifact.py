"""Compiled artifacts: a directory written by ``vmapc compile``, loaded by ``vmapc.load``.

An artifact directory holds, per target, a ``<target>.vmfb``, the traced and
batched IR (``model.vir``, ``batched.vir``) and a ``manifest.json`` describing
the entry point: argument and result names and types (before and after
batching), ``in_dims``/``out_dims``, the batch size (an int or ``"dynamic"``), the
flags each target was compiled with, the vmapc and IREE versions and a hash of
the IR. ``docs/cli.md`` documents the format. Loading needs only
``iree-base-runtime`` and NumPy::

    model = vmapc.load("out/")              # picks a target that runs here
    y = model(x, w)                         # or model(x=x, w=w)

Loading checks the artifact before anything reaches IREE: the manifest's format
and version, the ``.vmfb``'s SHA-256, and the manifest's signature against the
one compiled into the module (IREE's ``iree.abi.declaration``), so a manifest
from another build is caught at load time, not by a wrong answer. Every call is
then checked against the signature (names, dtypes, shapes, one batch size).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from .. import dtypes as dt
from ..errors import ArtifactError, CallError
from ..ir import TensorType
from ..shapes import Sym, parse_dim

FORMAT = "vmapc-artifact"
VERSION = 1
_TYPE = re.compile(r"^([a-z0-9]+)\[([^\]]*)\]$")


def parse_type(text: str) -> TensorType:
    """``"f32[B,784]"`` -> TensorType."""
    m = _TYPE.match(text.strip()) if isinstance(text, str) else None
    if not m or m.group(1) not in dt.BY_SHORT_NAME:
        raise ArtifactError(f"bad type {text!r} (expected e.g. f32[B,784])")
    try:
        dims = [parse_dim(d) for d in m.group(2).split(",")] if m.group(2).strip() else []
    except ValueError:
        raise ArtifactError(f"bad type {text!r} (expected e.g. f32[B,784])") from None
    return TensorType(dims, dt.BY_SHORT_NAME[m.group(1)])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(path) -> dict:
    """The validated manifest of an artifact directory (or of a manifest.json path)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such directory")
    mf = path / "manifest.json" if path.is_dir() else path
    if not mf.exists():
        raise ArtifactError(f"{path} is not a vmapc artifact (no manifest.json)")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mf}: cannot read the manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mf}: not a vmapc artifact manifest (no \"format\": \"{FORMAT}\")")
    if manifest.get("version") != VERSION:
        raise ArtifactError(f"{mf}: artifact format version {manifest.get('version')!r}; this vmapc "
                            f"reads version {VERSION} (recompile the model with this vmapc)")
    _validate(manifest, mf)
    return manifest


def _validate(m: dict, mf: Path):
    """Check the parts of the manifest that loading and calling rely on."""
    def bad(what):
        raise ArtifactError(f"{mf}: bad manifest: {what}")
    if not isinstance(m.get("entry"), str) or not m["entry"]:
        bad("'entry' must name the compiled function")
    for key in ("inputs", "outputs"):
        entries = m.get(key)
        if not isinstance(entries, list):
            bad(f"{key!r} must be a list")
        names = set()
        for i, a in enumerate(entries):
            if not isinstance(a, dict) or not isinstance(a.get("name"), str) or "type" not in a:
                bad(f"{key}[{i}] needs a 'name' and a 'type'")
            if a["name"] in names:
                bad(f"{key}[{i}]: the name {a['name']!r} is used twice")
            names.add(a["name"])
            try:
                parse_type(a["type"])
            except ArtifactError as e:
                bad(f"{key}[{i}] ({a['name']}): {e.message}")
    targets = m.get("targets")
    if not isinstance(targets, dict) or not targets:
        bad("'targets' must map each target to its compiled file")
    for name, info in targets.items():
        if not isinstance(info, dict) or not isinstance(info.get("file"), str):
            bad(f"targets.{name} needs a 'file'")
        if Path(info["file"]).name != info["file"]:
            bad(f"targets.{name}.file must be a file name in the artifact, got {info['file']!r}")


# --- the ABI compiled into the module ---------------------------------------------------------------

def abi_type(t: TensorType) -> str:
    """How IREE declares a tensor of this type: ``tensor<?x64xf32>``."""
    d = t.dtype
    elem = "i1" if dt.is_bool(d) else f"f{dt.bits(d)}" if dt.is_float(d) else f"i{dt.bits(d)}"
    dims = ["?" if isinstance(x, Sym) else str(x) for x in t.shape]
    return "tensor<" + "x".join(dims + [elem]) + ">"


_TENSOR = re.compile(r"tensor<[^>]*>")


def declared_signature(vm_fn):
    """(inputs, outputs) as ``tensor<...>`` strings from the function's
    ``iree.abi.declaration``, or None when the module does not say."""
    try:
        decl = dict(vm_fn.reflection).get("iree.abi.declaration")
    except Exception:
        return None
    if not isinstance(decl, str) or "->" not in decl:
        return None
    head, _, tail = decl.partition("->")
    return _TENSOR.findall(head), _TENSOR.findall(tail)


def _check_abi(vm_fn, inputs, outputs, where):
    declared = declared_signature(vm_fn)
    if declared is None:
        return
    for kind, ours, theirs in (("input", inputs, declared[0]), ("output", outputs, declared[1])):
        if len(ours) != len(theirs):
            raise ArtifactError(f"{where}: the manifest does not match the module: it lists {len(ours)} "
                                f"{kind}s, the compiled function has {len(theirs)} (from another build?)")
        for (name, t), decl in zip(ours, theirs):
            if abi_type(t) != decl:
                raise ArtifactError(f"{where}: the manifest does not match the module: {kind} `{name}` is "
                                    f"{t} in the manifest but {decl} in the compiled function "
                                    "(from another build?)")


class Artifact:
    """A loaded artifact for one target: call it with arrays (positionally, in the
    manifest's order, or by name); returns one array or a tuple of them."""

    def __init__(self, path, target: str | None = None, driver: str | None = None):
        from .module import Module
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        targets = self.manifest["targets"]
        if target is None:
            target = _pick_target(targets)
        if target not in targets:
            raise ArtifactError(f"{self.path}: no {target!r} build in this artifact (it has: "
                                f"{', '.join(targets)})")
        info = targets[target]
        vmfb = self.path / info["file"]
        if not vmfb.is_file():
            raise ArtifactError(f"{self.path}: {info['file']} is missing (the {target} build)")
        if info.get("sha256") and sha256_file(vmfb) != info["sha256"]:
            raise ArtifactError(f"{vmfb}: checksum mismatch (the file is corrupt or from another build)")
        self.target = target
        self.inputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["inputs"]]
        # inputs the caller may leave out (example_offset of randomness="different": 0)
        self.defaults = {a["name"]: a["default"] for a in self.manifest["inputs"]
                         if isinstance(a.get("default"), int) and not isinstance(a.get("default"), bool)}
        self.outputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["outputs"]]
        try:
            module = Module(vmfb, driver=driver or info.get("driver") or "local-sync",
                            signatures={self.manifest["entry"]: ([t for _, t in self.inputs],
                                                                 [t for _, t in self.outputs])})
        except ArtifactError as e:
            raise ArtifactError(f"{vmfb}: {e.message}") from None
        self.driver = module.driver
        entry = self.manifest["entry"]
        vm_fn = module.vm_module.lookup_function(entry)
        if vm_fn is None:
            raise ArtifactError(f"{self.path}: the manifest's entry {entry!r} is not in {info['file']} "
                                f"(it has: {', '.join(module.names) or 'nothing'})")
        _check_abi(vm_fn, self.inputs, self.outputs, vmfb)
        self.function = module.function(entry)

    @property
    def name(self) -> str:
        return self.manifest.get("function") or self.manifest["entry"]

    @property
    def input_names(self):
        return [n for n, _ in self.inputs]

    @property
    def output_names(self):
        return [n for n, _ in self.outputs]

    def __call__(self, *args, **named):
        if args and named:
            raise CallError("pass the arguments either all positionally or all by name")
        if named:
            unknown = [n for n in named if n not in self.input_names]
            if unknown:
                raise CallError(f"unknown argument(s) {', '.join(unknown)}; {self.name} takes "
                                f"{', '.join(self.input_names)}")
            named = {**{n: v for n, v in self.defaults.items() if n not in named}, **named}
            missing = [n for n in self.input_names if n not in named]
            if missing:
                raise CallError(f"missing argument(s) {', '.join(missing)}; {self.name} takes "
                                f"{', '.join(self.input_names)}")
            args = [named[n] for n in self.input_names]
        trailing = [n for n in self.input_names[len(args):]]
        if args and trailing and all(n in self.defaults for n in trailing):
            args = list(args) + [self.defaults[n] for n in trailing]
        if len(args) != len(self.inputs):
            raise CallError(f"{self.name} takes {len(self.inputs)} arguments ({', '.join(self.input_names)}), "
                            f"got {len(args)}")
        arrays = []
        for (name, t), a in zip(self.inputs, args):
            a = np.asarray(a, dtype=t.dtype) if name in self.defaults and isinstance(a, int) else np.asarray(a)
            if a.dtype != t.dtype:
                raise CallError(f"argument `{name}` has dtype {a.dtype}, {self.name} expects {t}")
            arrays.append(a)
        try:
            outs = self.function(*arrays)
        except CallError as e:
            raise CallError(_name_args(e.message, self.input_names)) from None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __repr__(self):
        sig = ", ".join(f"{n}: {t}" for n, t in self.inputs)
        return f"<vmapc artifact {self.name}({sig}) on {self.target}>"


def _name_args(message: str, names):
    """'argument 1 has ...' -> 'argument `w` has ...'."""
    return re.sub(r"argument (\d+)", lambda m: f"argument `{names[int(m.group(1))]}`"
                  if int(m.group(1)) < len(names) else m.group(0), message)


def _pick_target(targets: dict) -> str:
    """The first build, in the order cpu, cuda, vulkan, whose runtime driver opens here."""
    from .module import device
    families = ("cpu", "cuda", "vulkan")

    def rank(name):
        family = targets[name].get("target") or name.partition(":")[0]
        return families.index(family) if family in families else len(families)
    for name in sorted(targets, key=rank):
        try:
            device(targets[name].get("driver") or "local-sync")
        except Exception:
            continue
        return name
    raise ArtifactError(f"none of this artifact's builds ({', '.join(targets)}) can run here: no device "
                        "for their IREE drivers")


def load(path, target: str | None = None, driver: str | None = None) -> Artifact:
    """Load an artifact directory written by ``vmapc compile`` or :func:`vmapc.export`
    (see the module docstring). ``target`` picks a build (default: the first of
    cpu, cuda, vulkan that runs here); ``driver`` overrides its IREE runtime driver."""
    return Artifact(path, target, driver)
