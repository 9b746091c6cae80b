"""Compiling MLIR to an IREE ``.vmfb``, with a memory and a disk cache.

A :class:`~vmapc.targets.Target` (see :mod:`vmapc.targets`) gives the
``iree-compile`` flags and the runtime HAL driver. :func:`compile_mlir` runs
``iree-compile`` (a subprocess: a compiler crash cannot take the caller down)
on the module's bytecode, after looking in two caches keyed by the SHA-256 of
(bytecode, flags, IREE version, vmapc version):

* in memory, a dict for this process;
* on disk, one file per key under ``$VMAPC_CACHE_DIR`` (default
  ``~/.cache/vmapc``). An entry is a header (magic, SHA-256 of the payload) and
  the ``.vmfb``; it is written to a temporary file in the same directory and
  renamed into place, so readers and concurrent writers only ever see whole
  entries. An entry whose checksum does not match is discarded with a
  :class:`~vmapc.errors.CacheWarning` and rebuilt.

When IREE rejects a module, :class:`~vmapc.errors.CompileError` names the
failing equation's op and the user's ``file:line`` (every MLIR op carries the
equation's location, see :mod:`vmapc.lowering`); IREE's full output is kept in
the exception's ``details``.

:func:`compile_functions` is the one-call path used by tests and the API: lower
many Functions into one module, compile once, and get a callable per function.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

from .errors import CacheWarning, CompileError, Loc, TargetError  # noqa: F401


# The target model lives in vmapc.targets; these names are kept here for existing users.
from .targets import TARGETS, Target, get_target, target  # noqa: E402,F401


# --- caching -------------------------------------------------------------------------------------

_MAGIC = b"VMAPC-VMFB-1\n"
_MEMORY: dict = {}
_MEMORY_LOCK = threading.Lock()
stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "corrupt": 0, "fusion_retries": 0}


def cache_dir() -> Path:
    d = os.environ.get("VMAPC_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "vmapc"


def clear_memory_cache():
    with _MEMORY_LOCK:
        _MEMORY.clear()


@functools.lru_cache(maxsize=None)
def _versions() -> str:
    from iree.compiler import version as iv
    try:
        from importlib.metadata import version
        vm = version("vmapc")
    except Exception:  # not installed (running from a checkout)
        vm = "dev"
    return f"iree={iv.VERSION}/{iv.REVISIONS.get('IREE', '')};vmapc={vm}"


@functools.lru_cache(maxsize=None)
def _host_cpu() -> str:
    """What ``--iree-llvmcpu-target-cpu=host`` means on this machine (a shared cache
    directory must not hand one machine's AVX-512 code to another)."""
    import platform
    ident = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            seen = set()
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part") and key not in seen:
                    seen.add(key)
                    ident += "|" + line.strip()
    except OSError:
        ident += "|" + platform.processor()
    return ident


def cache_key(bytecode: bytes, flags) -> str:
    h = hashlib.sha256()
    host = _host_cpu() if any(f.endswith("-target-cpu=host") for f in flags) else ""
    for part in (bytecode, "\0".join(flags).encode(), _versions().encode(), host.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _entry_path(key: str) -> Path:
    return cache_dir() / f"{key}.vmfb"


def _read_disk(key: str, warn: bool = True):
    path = _entry_path(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest_len = 64
    head = len(_MAGIC) + digest_len + 1
    payload = data[head:]
    ok = (data.startswith(_MAGIC) and len(data) > head
          and data[len(_MAGIC):head - 1].decode("ascii", "replace") == hashlib.sha256(payload).hexdigest())
    if not ok:
        if not warn:  # seen (and reported) before taking the lock
            return None
        stats["corrupt"] += 1
        warnings.warn(f"vmapc: discarding corrupt cache entry {path} (it will be rebuilt)",
                      CacheWarning, stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return payload


def _write_disk(key: str, vmfb: bytes):
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(vmfb).hexdigest().encode() + b"\n" + vmfb)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, _entry_path(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:  # a read-only or full disk must not break compilation
        warnings.warn(f"vmapc: cannot write the compile cache in {d}: {e}", CacheWarning, stacklevel=3)


# --- compiling -----------------------------------------------------------------------------------

def compile_mlir(mlir, target="cpu", *, flags=(), cache: bool = True, lowered=None) -> bytes:
    """Compile MLIR (bytecode or text, or a LoweredModule) to a ``.vmfb`` for `target`.

    `flags` are extra ``iree-compile`` flags; `lowered` (a LoweredModule) is used to
    map diagnostics back to equations when `mlir` is bytecode or text."""
    from .lowering import LoweredModule
    if isinstance(mlir, LoweredModule):
        lowered, mlir = mlir, mlir.compiler_input
    if isinstance(mlir, str):
        mlir = mlir.encode()
    t = get_target(target)
    if lowered is not None and lowered.target is not None and lowered.target.lowering_key != t.lowering_key:
        raise TargetError(f"this module was lowered for target {lowered.target.label}, not {t.label}: "
                          f"lower it with lower(functions, target={t.label!r})")
    libm = t.libm_flags if lowered is not None and lowered.needs_libm else ()
    loops = t.control_flow_flags if lowered is not None and lowered.has_control_flow else ()
    all_flags = tuple(t.flags) + libm + loops + tuple(flags)
    key = cache_key(mlir, all_flags)
    if cache:
        with _MEMORY_LOCK:
            hit = _MEMORY.get(key)
        if hit is not None:
            stats["memory_hits"] += 1
            return hit
        hit = _read_disk(key)
        if hit is not None:
            stats["disk_hits"] += 1
            with _MEMORY_LOCK:
                _MEMORY[key] = hit
            return hit
    if not cache:
        stats["compiles"] += 1
        return _run_iree_compile(mlir, all_flags, lowered)
    # One process compiles, concurrent ones wait for its disk entry (a per-key file lock).
    with _key_lock(key):
        vmfb = _read_disk(key, warn=False)
        if vmfb is not None:
            stats["disk_hits"] += 1
        else:
            vmfb = _run_iree_compile(mlir, all_flags, lowered)
            stats["compiles"] += 1
            _write_disk(key, vmfb)
    with _MEMORY_LOCK:
        _MEMORY[key] = vmfb
    return vmfb


@contextlib.contextmanager
def _key_lock(key: str):
    """An exclusive inter-process lock for one cache key (a no-op where fcntl or the
    cache directory is unavailable)."""
    try:
        import fcntl
        d = cache_dir() / "locks"
        d.mkdir(parents=True, exist_ok=True)
        f = open(d / f"{key}.lock", "a+b")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            f.close()


# IREE 3.13 CPU codegen bug: with aggressive fusion, a dispatch that fuses a contraction's
# elementwise consumer with reductions that have several results (a softmax over q @ k.T
# whose row sums are also returned, as reverse-mode differentiation keeps them) fails with
# this message. Such a module is compiled again without that (performance-only) flag.
AGGRESSIVE_FUSION = "--iree-dispatch-creation-enable-aggressive-fusion=true"
FUSION_BUG = "write affecting operations on global resources are restricted to workgroup distributed contexts"


def _run_iree_compile(mlir: bytes, flags, lowered) -> bytes:
    from iree.compiler.tools.binaries import find_tool
    cmd = [find_tool("iree-compile"), "-", "-o", "-", "--iree-input-type=none",
           "--mlir-print-op-on-diagnostic=false", *flags]
    proc = subprocess.run(cmd, input=mlir, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        stderr = proc.stderr.decode("utf-8", "replace")
        if AGGRESSIVE_FUSION in flags and FUSION_BUG in stderr:
            stats["fusion_retries"] += 1
            return _run_iree_compile(mlir, tuple(f for f in flags if f != AGGRESSIVE_FUSION), lowered)
        raise compile_error(stderr, lowered, proc.returncode)
    return proc.stdout


# `loc("fn#3:add"("model.py":12:0))` as printed in diagnostics, or the file:line prefix
_NAME_LOC = re.compile(r'"(?P<name>[^"\s]+#\d+:\w+)"')
_FILE_LOC = re.compile(r'^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning|note|remark): '
                       r'(?P<msg>.*)$')


def compile_error(stderr: str, lowered=None, returncode=None) -> CompileError:
    """Turn IREE's diagnostics into a CompileError naming the op and the user's line."""
    lines = stderr.splitlines()
    first = next((ln for ln in lines if ": error: " in ln or ln.startswith("error:")), None)
    msg, where, ops = first, None, []
    if first is not None:
        m = _FILE_LOC.match(first)
        if m:
            msg = m.group("msg")
            if m.group("file") not in ("-", "<stdin>"):
                where = Loc(m.group("file"), int(m.group("line")))
        else:
            msg = first.split("error:", 1)[-1]
    if lowered is not None:
        named = [m.group("name") for ln in lines for m in _NAME_LOC.finditer(ln)]
        hits = [lowered.find(n) for n in named if lowered.find(n)]
        if not hits and where is not None:
            hits = [e for e in lowered.equations.values() if e[3] == where]
        for fn, k, op, loc in hits:
            if op not in ops:
                ops.append(op)
            where = where or loc
    if msg is None or "Stack dump:" in stderr:
        msg = f"iree-compile crashed (exit status {returncode}); its output is in this error's .details"
    msg = msg.strip()
    # IREE often appends the failing operation's full text: keep the sentence
    cut = re.search(r"(: %|: \"|\bthat was explicitly marked illegal\b)", msg)
    if cut and cut.start() > 20:
        msg = msg[:cut.start()] + (" (explicitly marked illegal)" if "illegal" in cut.group() else "")
    if len(msg) > 300:
        msg = msg[:297] + "..."
    if "No Unix linker tool found" in stderr:
        msg += (" (this module calls libm (sin, cos, tan or a float64 math function), which IREE"
                " links with the system linker: install one (binutils' ld), or pass"
                " --iree-llvmcpu-system-linker-path=...)")
    if not ops:
        head = "IREE failed to compile the module"
    elif len(ops) <= 3:
        head = f"IREE failed to compile {'/'.join(ops)}"
    else:  # many ops share the line
        head = "IREE failed to compile an op"
    err = CompileError(f"{head}: {msg}", where)
    err.details = stderr
    return err


# --- the one-call path ---------------------------------------------------------------------------

def compile_functions(functions, target="cpu", *, driver: str | None = None, flags=(),
                      cache: bool = True) -> dict:
    """Lower Functions into one module, compile it once and load it.

    Returns ``{name: callable}``; each callable takes NumPy arrays (checked against
    the Function's input types) and returns the list of output arrays."""
    from .ir import Function
    from .lowering import lower
    from .runtime import Module
    if isinstance(functions, Function):
        functions = [functions]
    functions = list(functions)
    t = get_target(target)
    lowered = lower(functions, target=t)
    vmfb = compile_mlir(lowered, t, flags=flags, cache=cache)
    module = Module(vmfb, driver=driver or t.choose_driver(functions),
                    signatures={f.name: (f.in_types, f.out_types) for f in functions})
    return {f.name: module.function(f.name) for f in functions}
