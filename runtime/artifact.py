"""Compiled artifacts: a directory written by ``vmapc compile``, loaded by ``vmapc.load``.

An artifact directory holds, per target, a ``<target>.vmfb``, the traced and
batched IR (``model.vir``, ``batched.vir``) and a ``manifest.json`` describing
the entry point: argument and result names and types (before and after
batching), ``in_dims``/``out_dims``, the batch size (an int or ``"dynamic"``), the
flags each target was compiled with, the vmapc and IREE versions and a hash of
the IR. Loading needs only ``iree-base-runtime`` and NumPy::

    model = vmapc.load("out/")              # picks a target that runs here
    y = model(x, w)                         # or model(x=x, w=w)

Every call is checked against the manifest's signature before it reaches IREE.
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
from ..shapes import parse_dim

FORMAT = "vmapc-artifact"
VERSION = 1
_TYPE = re.compile(r"^([a-z0-9]+)\[([^\]]*)\]$")


def parse_type(text: str) -> TensorType:
    """``"f32[B,784]"`` -> TensorType."""
    m = _TYPE.match(text.strip())
    if not m or m.group(1) not in dt.BY_SHORT_NAME:
        raise ArtifactError(f"manifest: bad type {text!r}")
    try:
        dims = [parse_dim(d) for d in m.group(2).split(",")] if m.group(2).strip() else []
    except ValueError:
        raise ArtifactError(f"manifest: bad type {text!r}") from None
    return TensorType(dims, dt.BY_SHORT_NAME[m.group(1)])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(path) -> dict:
    path = Path(path)
    mf = path / "manifest.json" if path.is_dir() else path
    if not mf.exists():
        raise ArtifactError(f"{path} is not a vmapc artifact (no manifest.json)")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mf}: cannot read the manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mf}: not a vmapc artifact manifest")
    if manifest.get("version") != VERSION:
        raise ArtifactError(f"{mf}: artifact format version {manifest.get('version')}, this vmapc reads "
                            f"version {VERSION}")
    for key in ("entry", "inputs", "outputs", "targets"):
        if key not in manifest:
            raise ArtifactError(f"{mf}: the manifest has no {key!r}")
    return manifest


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
                                f"{', '.join(targets) or 'none'})")
        info = targets[target]
        vmfb = self.path / info["file"]
        if not vmfb.exists():
            raise ArtifactError(f"{self.path}: {info['file']} is missing")
        if info.get("sha256") and sha256_file(vmfb) != info["sha256"]:
            raise ArtifactError(f"{vmfb}: checksum mismatch (the file is corrupt or from another build)")
        self.target = target
        self.inputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["inputs"]]
        self.outputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["outputs"]]
        module = Module(vmfb, driver=driver or info.get("driver", "local-sync"),
                        signatures={self.manifest["entry"]: ([t for _, t in self.inputs],
                                                             [t for _, t in self.outputs])})
        self.function = module.function(self.manifest["entry"])

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
            unknown = set(named) - set(self.input_names)
            if unknown:
                raise CallError(f"unknown argument(s) {', '.join(sorted(unknown))}; this model takes "
                                f"{', '.join(self.input_names)}")
            missing = [n for n in self.input_names if n not in named]
            if missing:
                raise CallError(f"missing argument(s) {', '.join(missing)}")
            args = [named[n] for n in self.input_names]
        if len(args) != len(self.inputs):
            raise CallError(f"this model takes {len(self.inputs)} arguments ({', '.join(self.input_names)}), "
                            f"got {len(args)}")
        arrays = []
        for (name, t), a in zip(self.inputs, args):
            a = np.asarray(a)
            if a.dtype != t.dtype:
                raise CallError(f"argument `{name}` has dtype {a.dtype}, the model expects {t}")
            arrays.append(a)
        try:
            outs = self.function(*arrays)
        except CallError as e:
            raise CallError(_name_args(e.message, self.input_names)) from None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __repr__(self):
        sig = ", ".join(f"{n}: {t}" for n, t in self.inputs)
        return f"<vmapc artifact {self.manifest.get('function', '?')}({sig}) on {self.target}>"


def _name_args(message: str, names):
    """'argument 1 has ...' -> 'argument `w` has ...'."""
    return re.sub(r"argument (\d+)", lambda m: f"argument `{names[int(m.group(1))]}`"
                  if int(m.group(1)) < len(names) else m.group(0), message)


def _pick_target(targets: dict) -> str:
    from .module import device
    for name in ("cpu", "cuda", "vulkan"):
        if name in targets:
            try:
                device(targets[name].get("driver", "local-sync"))
            except Exception:
                continue
            return name
    if targets:
        return next(iter(targets))
    raise ArtifactError("the artifact has no compiled targets")


def load(path, target: str | None = None, driver: str | None = None) -> Artifact:
    """Load an artifact directory written by ``vmapc compile`` (see the module docstring)."""
    return Artifact(path, target, driver)
