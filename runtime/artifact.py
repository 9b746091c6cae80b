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

Loading checks the artifact before anything reaches IREE: the manifest's format,
version and every field it relies on (names are plain identifiers, file names
stay inside the directory, types and sizes are well-formed), the ``.vmfb``'s size
and SHA-256, optionally an HMAC-SHA256 signature by a trusted key (see
:func:`sign` and ``docs/cli.md``), and the manifest's signature against the one
compiled into the module (IREE's ``iree.abi.declaration``), so a manifest from
another build is caught at load time, not by a wrong answer. Every call is then
checked against the signature (names, dtypes, shapes, one batch size).

Trust: everything in an artifact is checked except the compiled module's code. A
``.vmfb`` is native code, like a shared library: load artifacts only from sources
you trust, or require a signature with ``trusted_keys``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import numpy as np

from .. import dtypes as dt
from ..errors import ArtifactError, CallError, ExecutionError, VmapcError
from ..ir import TensorType
from ..shapes import Sym, parse_dim
from .module import as_input

FORMAT = "vmapc-artifact"
VERSION = 1
_TYPE = re.compile(r"^([a-z0-9]+)\[([^\]]*)\]$")


# Names in a manifest: plain ASCII identifiers (they become file names, NAME.npy).
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TARGET_LABEL = re.compile(r"^[a-z]+(:[A-Za-z0-9_.+-]{1,64})?$")
_FILE = re.compile(r"^[A-Za-z0-9_.+-]{1,128}\.vmfb$")
_DRIVER = re.compile(r"^[a-z0-9-]{1,32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 16 << 20
_MAX_ELEMENTS_BYTES = 2 ** 63 - 1


def plain_name(x) -> bool:
    """Whether `x` is a name an artifact may use: an ASCII identifier of at most 128 characters."""
    return isinstance(x, str) and _NAME.match(x) is not None


def show(x) -> str:
    """A value from an untrusted file, quoted for a message: control characters escaped."""
    return ascii(x)


def parse_type(text: str) -> TensorType:
    """``"f32[B,784]"`` -> TensorType (a size that does not fit compiled code is refused)."""
    m = _TYPE.match(text.strip()) if isinstance(text, str) and len(text) < 1000 else None
    if not m or m.group(1) not in dt.BY_SHORT_NAME:
        raise ArtifactError(f"bad type {show(text)} (expected e.g. f32[B,784])")
    try:
        dims = [parse_dim(d) for d in m.group(2).split(",")] if m.group(2).strip() else []
    except ValueError:
        raise ArtifactError(f"bad type {show(text)} (expected e.g. f32[B,784])") from None
    dtype = dt.BY_SHORT_NAME[m.group(1)]
    n = dtype.itemsize
    for d in dims:
        n *= d if isinstance(d, int) else d.coef
    if n > _MAX_ELEMENTS_BYTES or len(dims) > 64:
        raise ArtifactError(f"bad type {show(text)}: more than the 2**63 - 1 bytes compiled code can address")
    return TensorType(dims, dtype)


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
        with open(mf, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{mf}: the manifest is bigger than {MAX_MANIFEST_BYTES >> 20} MiB")
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ArtifactError(f"{mf}: cannot read the manifest: its JSON is nested too deeply") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mf}: cannot read the manifest: {show(str(e))[1:-1]}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mf}: not a vmapc artifact manifest (no \"format\": \"{FORMAT}\")")
    if manifest.get("version") != VERSION:
        raise ArtifactError(f"{mf}: artifact format version {show(manifest.get('version'))}; this vmapc "
                            f"reads version {VERSION} (recompile the model with this vmapc)")
    _validate(manifest, mf)
    return manifest


def _validate(m: dict, mf: Path):
    """Check every field of the manifest that loading, calling and ``vmapc run`` use: an
    artifact is untrusted input in everything but its compiled code."""
    def bad(what):
        raise ArtifactError(f"{mf}: bad manifest: {what}")

    def is_int(x):
        return type(x) is int

    if not plain_name(m.get("entry")):
        bad("'entry' must name the compiled function (a plain identifier)")
    if not (isinstance(m.get("function", ""), str) and len(m.get("function", "")) < 256
            and m.get("function", "").isprintable()):
        bad(f"'function' must be a name (printable text), got {show(m.get('function'))}")
    for key in ("vmapc_version", "iree_version"):
        if key in m and not (isinstance(m[key], str) and len(m[key]) < 256):
            bad(f"{key!r} must be a string")
    if "ir_hash" in m and not (isinstance(m["ir_hash"], str) and _HEX64.match(m["ir_hash"])):
        bad("'ir_hash' must be a SHA-256 in hex")
    for key, dim_key in (("inputs", "in_dim"), ("outputs", "out_dim")):
        entries = m.get(key)
        if not isinstance(entries, list) or len(entries) > 10000:
            bad(f"{key!r} must be a list")
        names = set()
        for i, a in enumerate(entries):
            if not isinstance(a, dict) or "name" not in a or "type" not in a:
                bad(f"{key}[{i}] needs a 'name' and a 'type'")
            if not plain_name(a["name"]):
                bad(f"{key}[{i}]: the name {show(a['name'])} is not a plain identifier "
                    "(letters, digits and _, not starting with a digit)")
            if a["name"].lower() in names:
                bad(f"{key}[{i}]: the name {a['name']!r} is used twice")
            names.add(a["name"].lower())       # NAME.npy files: one per name, on any filesystem
            try:
                t = parse_type(a["type"])
                if "example_type" in a:
                    parse_type(a["example_type"])
            except ArtifactError as e:
                bad(f"{key}[{i}] ({a['name']}): {e.message}")
            d = a.get(dim_key)
            if d is not None and not (is_int(d) and 0 <= d < max(t.rank, 1)):
                bad(f"{key}[{i}] ({a['name']}): {dim_key} must be null or an axis of {t}, got {show(d)}")
    # (inputs with a default, example_offset, come after the function's own and have no in_dim)
    n_in = len([a for a in m["inputs"] if "default" not in a])
    for key, n in (("in_dims", n_in), ("out_dims", len(m["outputs"]))):
        dims = m.get(key)
        if dims is not None and not (isinstance(dims, list) and len(dims) == n
                                     and all(d is None or (is_int(d) and 0 <= d <= 64) for d in dims)):
            bad(f"{key!r} must list one axis or null per {'input' if key == 'in_dims' else 'output'}")
    batch = m.get("batch")
    if not (batch is None or batch == "dynamic" or (is_int(batch) and batch >= 0)):
        bad(f"'batch' must be a size, \"dynamic\" or null, got {show(batch)}")
    if m.get("batch_symbol") is not None and not plain_name(m["batch_symbol"]):
        bad("'batch_symbol' must be a plain identifier")
    targets = m.get("targets")
    if not isinstance(targets, dict) or not targets:
        bad("'targets' must map each target to its compiled file")
    for name, info in targets.items():
        if not _TARGET_LABEL.match(name):
            bad(f"the target name {show(name)} is not a target label such as cpu or cpu:generic")
        if not isinstance(info, dict) or not isinstance(info.get("file"), str):
            bad(f"targets.{name} needs a 'file'")
        if not _FILE.match(info["file"]):
            bad(f"targets.{name}.file must be a file name in the artifact (NAME.vmfb), got {show(info['file'])}")
        if not (isinstance(info.get("sha256"), str) and _HEX64.match(info["sha256"])):
            bad(f"targets.{name}.sha256 is missing or not a SHA-256 in hex: the module's checksum "
                "is required")
        if not (is_int(info.get("bytes")) and info["bytes"] > 0):
            bad(f"targets.{name}.bytes must be the size of {info['file']}")
        if info.get("driver") is not None and not (isinstance(info["driver"], str) and _DRIVER.match(info["driver"])):
            bad(f"targets.{name}.driver must name an IREE driver, got {show(info['driver'])}")
        if info.get("target") is not None and not (isinstance(info["target"], str) and _DRIVER.match(info["target"])):
            bad(f"targets.{name}.target must name a target family, got {show(info['target'])}")
        if not isinstance(info.get("output_storage", False), bool):
            bad(f"targets.{name}.output_storage must be true or false")
        for key in ("flags", "module_attrs"):
            v = info.get(key, [])
            if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                bad(f"targets.{name}.{key} must be a list of strings")
        if not isinstance(info.get("options", {}), dict):
            bad(f"targets.{name}.options must be an object")
    sig = m.get("signature")
    if sig is not None and not (isinstance(sig, dict) and sig.get("algorithm") == SIGNATURE_ALGORITHM
                                and isinstance(sig.get("mac"), str) and _HEX64.match(sig["mac"])
                                and isinstance(sig.get("key_id"), str) and len(sig["key_id"]) < 128):
        bad(f"'signature' must be {{\"algorithm\": \"{SIGNATURE_ALGORITHM}\", \"key_id\": ..., \"mac\": ...}}")


# --- signing ----------------------------------------------------------------------------------------

SIGNATURE_ALGORITHM = "hmac-sha256"


def _key_bytes(key) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ArtifactError("a signing key must be bytes (or a str) of at least 16 bytes; "
                            "e.g. python -c \"import secrets; print(secrets.token_hex(32))\" > key")
    return bytes(key)


def key_id(key) -> str:
    """A short public name for a key (the start of its SHA-256), recorded in signatures."""
    return hashlib.sha256(_key_bytes(key)).hexdigest()[:16]


def _signed_bytes(manifest: dict) -> bytes:
    """What a signature covers: the manifest without its signature, as canonical JSON. It
    includes each module's SHA-256, so the MAC covers the code too."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(manifest: dict, key) -> dict:
    """The manifest with an HMAC-SHA256 ``signature`` by `key` (bytes or str)."""
    k = _key_bytes(key)
    mac = hmac.new(k, _signed_bytes(manifest), hashlib.sha256).hexdigest()
    return {**manifest, "signature": {"algorithm": SIGNATURE_ALGORITHM, "key_id": key_id(k), "mac": mac}}


def verify_signature(manifest: dict, trusted_keys, where) -> None:
    """Raise ArtifactError unless the manifest is signed by one of `trusted_keys`."""
    keys = [_key_bytes(k) for k in ([trusted_keys] if isinstance(trusted_keys, (str, bytes)) else trusted_keys)]
    if not keys:
        raise ArtifactError("trusted_keys is empty: give the keys whose signatures you accept")
    sig = manifest.get("signature")
    if sig is None:
        raise ArtifactError(f"{where}: the artifact is not signed, and trusted keys were given "
                            "(sign it with vmapc compile --sign KEYFILE)")
    body = _signed_bytes(manifest)
    for k in keys:
        if hmac.compare_digest(hmac.new(k, body, hashlib.sha256).hexdigest(), sig["mac"]):
            return
    raise ArtifactError(f"{where}: the artifact's signature (key {show(sig['key_id'])}) does not match "
                        "any trusted key: it was changed after signing, or signed with another key")


# --- the ABI compiled into the module ---------------------------------------------------------------

def abi_type(t: TensorType) -> str:
    """How IREE declares a tensor of this type: ``tensor<?x64xf32>``."""
    d = t.dtype
    elem = ("i1" if dt.is_bool(d) else f"f{dt.bits(d)}" if dt.is_float(d)
            else f"complex<f{dt.bits(dt.component(d))}>" if dt.is_complex(d) else f"i{dt.bits(d)}")
    dims = ["?" if isinstance(x, Sym) else str(x) for x in t.shape]
    return "tensor<" + "x".join(dims + [elem]) + ">"


_TENSOR = re.compile(r"tensor<(?:[^<>]|<[^<>]*>)*>")   # complex<f32> nests


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

    def __init__(self, path, target: str | None = None, driver: str | None = None, trusted_keys=None):
        from .module import Module
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if trusted_keys is not None:
            verify_signature(self.manifest, trusted_keys, self.path)
        targets = self.manifest["targets"]
        if target is None:
            target = _pick_target(targets)
        if target not in targets:
            raise ArtifactError(f"{self.path}: no {show(target)} build in this artifact (it has: "
                                f"{', '.join(targets)})")
        info = targets[target]
        vmfb = self.path / info["file"]
        if not vmfb.is_file():
            raise ArtifactError(f"{self.path}: {info['file']} is missing (the {target} build)")
        # read once, then check what was read (no window to swap the file)
        try:
            size = vmfb.stat().st_size
            if size != info["bytes"]:
                raise ArtifactError(f"{vmfb}: {size} bytes, the manifest says {info['bytes']} (the file "
                                    "is corrupt or from another build)")
            code = vmfb.read_bytes()
        except OSError as e:
            raise ArtifactError(f"{vmfb}: cannot read it: {e.strerror or e}") from None
        if hashlib.sha256(code).hexdigest() != info["sha256"]:
            raise ArtifactError(f"{vmfb}: checksum mismatch (the file is corrupt or from another build)")
        self.target = target
        self.inputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["inputs"]]
        # inputs the caller may leave out (example_offset of randomness="different": 0)
        self.defaults = {a["name"]: a["default"] for a in self.manifest["inputs"]
                         if isinstance(a.get("default"), int) and not isinstance(a.get("default"), bool)}
        self.outputs = [(a["name"], parse_type(a["type"])) for a in self.manifest["outputs"]]
        try:
            module = Module(code, driver=driver or info.get("driver") or "local-sync",
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
            if name in self.defaults and isinstance(a, int):
                a = np.asarray(a, dtype=t.dtype)
            a = as_input(a, f"`{name}`", t.dtype)
            if not a.dtype.isnative:        # big-endian data runs as a native-order copy
                a = a.astype(a.dtype.newbyteorder("="))
            if a.dtype != t.dtype:
                raise CallError(f"argument `{name}` has dtype {a.dtype}, {self.name} expects {t}")
            arrays.append(a)
        try:
            outs = self.function(*arrays)
        except CallError as e:
            raise CallError(_name_args(e.message, self.input_names)) from None
        except (RuntimeError, MemoryError) as e:     # IREE's status: out of memory, a device failure
            if isinstance(e, VmapcError):
                raise
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ExecutionError(f"{self.name}: the compiled code failed while running: {first}") from None
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


def load(path, target: str | None = None, driver: str | None = None, trusted_keys=None) -> Artifact:
    """Load an artifact directory written by ``vmapc compile`` or :func:`vmapc.export`
    (see the module docstring). ``target`` picks a build (default: the first of
    cpu, cuda, vulkan that runs here); ``driver`` overrides its IREE runtime driver.
    ``trusted_keys`` (keys as bytes or str): require an HMAC-SHA256 signature by one
    of them (``vmapc compile --sign KEYFILE``) before any code is loaded."""
    return Artifact(path, target, driver, trusted_keys)
