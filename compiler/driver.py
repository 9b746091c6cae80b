"""Compiling MLIR to an IREE ``.vmfb``, with a memory and a disk cache.

A :class:`~vmapc.targets.Target` (see :mod:`vmapc.targets`) gives the
``iree-compile`` flags and the runtime HAL driver. :func:`compile_mlir` runs
``iree-compile`` (a subprocess: a compiler crash cannot take the caller down)
on the module, after looking in two caches keyed by the SHA-256 of the *key
material*: the SHA-256 of the MLIR, the flags, the IREE and vmapc versions and,
for ``--iree-llvmcpu-target-cpu=host``, this machine's CPU:

* in memory, a dict for this process;
* on disk, one file per key under ``$VMAPC_CACHE_DIR`` (default
  ``~/.cache/vmapc``). An entry is a header (magic, the full key material, the
  SHA-256 of the payload) and the ``.vmfb``; it is written to a temporary file in
  the same directory and renamed into place, so readers and concurrent writers
  only ever see whole entries. An entry is used only when its key material is the
  one this process computed and its checksum matches; otherwise it is discarded
  with a :class:`~vmapc.errors.CacheWarning` and rebuilt.

The cache directory is private: it is created ``0700``, and one that is group- or
world-writable or owned by another user is not used (a ``CacheWarning``, then a
private directory under the system's temporary directory). A per-key lock file
(opened with ``O_NOFOLLOW``) makes a second process compiling the same module wait
for the first; a holder that is stopped, gone, or slower than the compile time
limit does not block the others forever (the wait says why, once).

Every ``iree-compile`` runs under a time and a memory limit (:func:`compile_limits`,
``$VMAPC_COMPILE_TIMEOUT`` and ``$VMAPC_COMPILE_MEMORY``): a runaway compile is
killed and becomes a :class:`~vmapc.errors.CompileError` naming the function. On a
terminal, a compile that takes more than a few seconds shows its progress.

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
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from .errors import CacheWarning, CompileError, Loc, TargetError  # noqa: F401


# The target model lives in vmapc.targets; these names are kept here for existing users.
from .targets import TARGETS, Target, get_target, target  # noqa: E402,F401


# --- caching -------------------------------------------------------------------------------------

_MAGIC = b"VMAPC-VMFB-2\n"
_MEMORY: dict = {}
_MEMORY_LOCK = threading.Lock()
stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "corrupt": 0, "fusion_retries": 0}


def cache_dir() -> Path:
    """The configured disk-cache directory (``$VMAPC_CACHE_DIR``, default ``~/.cache/vmapc``);
    :func:`usable_cache_dir` is the one actually used."""
    d = os.environ.get("VMAPC_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "vmapc"


def clear_memory_cache():
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _private_problem(path: Path) -> str | None:
    """Why directory `path` may not hold this user's compiled code, or None when it is
    a directory of ours that nobody else can write to."""
    try:
        st = path.stat()
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    import stat
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"it is writable by {'others' if st.st_mode & 0o002 else 'its group'} (mode {st.st_mode & 0o777:o})"
    return None


def _make_private(path: Path) -> str | None:
    """Create `path` (mode 0700) if needed; None when it is then usable, else why not."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as e:
            return f"cannot create it ({e.strerror or e})"
    return _private_problem(path)


@functools.lru_cache(maxsize=16)
def _checked_cache_dir(configured: str):
    path = Path(configured)
    why = _make_private(path)
    if why is None:
        return path
    uid = os.getuid() if hasattr(os, "getuid") else 0
    fallback = Path(tempfile.gettempdir()) / f"vmapc-cache-{uid}"
    why_fallback = _make_private(fallback)
    if why_fallback is None:
        warnings.warn(f"vmapc: not using the compile cache {path}: {why}; using {fallback} instead",
                      CacheWarning, stacklevel=4)
        return fallback
    warnings.warn(f"vmapc: not using the compile cache {path}: {why} (nor {fallback}: {why_fallback}); "
                  "compiled modules are not cached on disk", CacheWarning, stacklevel=4)
    return None


def usable_cache_dir() -> Path | None:
    """The disk-cache directory to use: :func:`cache_dir` when it is private (created
    0700 if missing), else a private fallback, else None (no disk cache)."""
    configured = str(cache_dir())
    d = _checked_cache_dir(configured)
    if d is not None and not d.is_dir():     # removed since: create it again
        _checked_cache_dir.cache_clear()
        d = _checked_cache_dir(configured)
    return d


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


def key_material(bytecode: bytes, flags) -> dict:
    """Everything a compiled module depends on: the MLIR (by its SHA-256), the flags,
    the IREE and vmapc versions, and the CPU when it is compiled for ``host``. A disk
    entry records it and is used only when it is equal to this."""
    host = _host_cpu() if any(f.endswith("-target-cpu=host") for f in flags) else ""
    host = hashlib.sha256(host.encode()).hexdigest() if host else ""
    return {"mlir_sha256": hashlib.sha256(bytecode).hexdigest(), "flags": list(flags),
            "versions": _versions(), "host": host}


def cache_key(bytecode: bytes, flags) -> str:
    return _key_of(key_material(bytecode, flags))


def _key_of(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _entry_path(d: Path, key: str) -> Path:
    return d / f"{key}.vmfb"


def parse_entry(data: bytes):
    """(key material, payload) of a disk entry, or None when it is not a whole entry."""
    if not data.startswith(_MAGIC):
        return None
    head_end = data.find(b"\n", len(_MAGIC))
    if head_end < 0:
        return None
    try:
        head = json.loads(data[len(_MAGIC):head_end])
        payload = data[head_end + 1:]
        ok = (isinstance(head, dict) and isinstance(head.get("material"), dict) and payload
              and head.get("payload_sha256") == hashlib.sha256(payload).hexdigest())
    except (ValueError, RecursionError):
        return None
    return (head["material"], payload) if ok else None


def _read_disk(key: str, warn: bool = True, material: dict | None = None):
    d = usable_cache_dir()
    if d is None:
        return None
    path = _entry_path(d, key)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    entry = parse_entry(data)
    why = None
    if entry is None:
        why = "corrupt"
    elif entry[0] != (material if material is not None else {"key": key}):
        why = "written for another module (its key material differs from this module's)"
    if why is None:
        return entry[1]
    if not warn:  # seen (and reported) before taking the lock
        return None
    stats["corrupt"] += 1
    what = "corrupt cache entry" if why == "corrupt" else f"cache entry {path}: it was"
    warnings.warn(f"vmapc: discarding {what} {path if why == 'corrupt' else why} (it will be rebuilt)",
                  CacheWarning, stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _write_disk(key: str, vmfb: bytes, material: dict | None = None):
    d = usable_cache_dir()
    if d is None:
        return
    head = {"material": material if material is not None else {"key": key},
            "payload_sha256": hashlib.sha256(vmfb).hexdigest()}
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n" + vmfb)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, _entry_path(d, key))
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
    material = key_material(mlir, all_flags)
    key = _key_of(material)
    if cache:
        with _MEMORY_LOCK:
            hit = _MEMORY.get(key)
        if hit is not None:
            stats["memory_hits"] += 1
            return hit
        hit = _read_disk(key, material=material)
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
        vmfb = _read_disk(key, warn=False, material=material)
        if vmfb is not None:
            stats["disk_hits"] += 1
        else:
            vmfb = _run_iree_compile(mlir, all_flags, lowered)
            stats["compiles"] += 1
            _write_disk(key, vmfb, material)
    with _MEMORY_LOCK:
        _MEMORY[key] = vmfb
    return vmfb


# How long a process waits for another that holds a key's lock before it says so.
LOCK_NOTICE_S = 2.0


def _holder_state(pid: int) -> str | None:
    """'gone', 'stopped' or None (running, or unknown) for the process holding a lock."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except OSError:
            return None
        return None
    return "stopped" if state in ("T", "t") else "gone" if state in ("Z", "X") else None


@contextlib.contextmanager
def _key_lock(key: str):
    """An exclusive inter-process lock for one cache key (a no-op where fcntl or the
    cache directory is unavailable). The lock file (created with O_NOFOLLOW: a symlink
    planted there is refused) holds the holder's pid. A waiter says once why it waits;
    it stops waiting, and compiles itself, when the holder is stopped or gone or holds
    the lock longer than the compile time limit."""
    try:
        import fcntl
        d = usable_cache_dir()
        if d is None:
            raise OSError("no cache directory")
        locks = d / "locks"
        if not locks.is_dir():
            locks.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o600)
    except (ImportError, OSError):
        yield
        return
    locked = False
    try:
        locked = _acquire(fcntl, fd, locks / f"{key}.lock")
        yield
    finally:
        try:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _acquire(fcntl, fd: int, path: Path) -> bool:
    """Take the lock on `fd` (True), or give up waiting (False); see _key_lock."""
    start = time.monotonic()
    told = False
    try:
        limit = compile_limits()[0] + 30
    except CompileError:          # a bad setting: reported by the compile itself
        limit = DEFAULT_TIMEOUT_S + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
            return True
        waited = time.monotonic() - start
        try:
            pid = int(os.pread(fd, 32, 0).split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        state = _holder_state(pid) if pid else None
        if state is not None or waited > limit:
            why = (f"process {pid} holding it is {state}" if state is not None else
                   f"it has been held for {waited:.0f} s, longer than the compile time limit")
            warnings.warn(f"vmapc: not waiting for the compile-cache lock {path}: {why}; compiling here",
                          CacheWarning, stacklevel=5)
            return False
        if not told and waited > LOCK_NOTICE_S:
            told = True
            holder = f"process {pid}" if pid else "another process"
            warnings.warn(f"vmapc: waiting for {holder}, which is compiling the same module "
                          f"(lock {path})", CacheWarning, stacklevel=5)
        time.sleep(0.05 if waited < 1 else 0.25)


# --- limits on iree-compile -----------------------------------------------------------------------

DEFAULT_TIMEOUT_S = 600.0
PROGRESS_AFTER_S = 3.0


def _default_memory() -> int:
    """Half the machine's memory, at least 2 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return max(total // 2, 2 << 30)


def parse_size(text) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"`` or a number of bytes -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 8G, 512M or a number of bytes)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def compile_limits():
    """(seconds, bytes): how long one ``iree-compile`` may run and how much memory
    (resident) it may use, from ``$VMAPC_COMPILE_TIMEOUT`` (seconds; default 600) and
    ``$VMAPC_COMPILE_MEMORY`` (``8G``, ``512M``, bytes; default half the machine's
    memory, at least 2 GiB). A compile past either is killed and raises
    :class:`~vmapc.errors.CompileError`."""
    timeout, memory = DEFAULT_TIMEOUT_S, _default_memory()
    text = os.environ.get("VMAPC_COMPILE_TIMEOUT", "").strip()
    if text:
        try:
            timeout = float(text)
        except ValueError:
            raise CompileError(f"VMAPC_COMPILE_TIMEOUT must be a number of seconds, got {text!r}") from None
    text = os.environ.get("VMAPC_COMPILE_MEMORY", "").strip()
    if text:
        try:
            memory = parse_size(text)
        except ValueError as e:
            raise CompileError(f"VMAPC_COMPILE_MEMORY: {e}") from None
    return timeout, memory


def _rss(pid: int) -> int:
    """Resident memory of a process in bytes (0 where /proc is not available)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _names(lowered) -> str:
    if lowered is None:
        return "the module"
    names = [getattr(f, "name", f) for f in lowered.functions]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


# IREE 3.13 CPU codegen bug: with aggressive fusion, a dispatch that fuses a contraction's
# elementwise consumer with reductions that have several results (a softmax over q @ k.T
# whose row sums are also returned, as reverse-mode differentiation keeps them) fails with
# this message. Such a module is compiled again without that (performance-only) flag.
AGGRESSIVE_FUSION = "--iree-dispatch-creation-enable-aggressive-fusion=true"
FUSION_BUG = "write affecting operations on global resources are restricted to workgroup distributed contexts"
# Another: a dispatch that fuses a long element-wise producer (a drawn normal and a payoff)
# with two reductions of its rows (a mean, then the squared deviations from it) keeps a whole
# tile of rows of the producer on the stack (8 x 20,000 floats for a Monte Carlo price over
# 20,000 paths) and fails with this message. Retried without the flag too.
STACK_BUG = "exceeded stack allocation limit"


_INPUT_NAME = "vmapc-module.mlir"     # the file iree-compile reads (not a user's location)


def _run_iree_compile(mlir: bytes, flags, lowered) -> bytes:
    """Run iree-compile on `mlir` within the time and memory limits (compile_limits),
    showing progress on a terminal after a few seconds."""
    from iree.compiler.tools.binaries import find_tool
    # The module goes in through a private temporary file, not stdin: communicate() retried
    # after a timeout stops writing its input (CPython 3.11), and iree-compile would wait for
    # the rest of a large module forever.
    with tempfile.TemporaryDirectory(prefix="vmapc-compile-") as tmp:
        path = os.path.join(tmp, _INPUT_NAME)
        with open(path, "wb") as fh:
            fh.write(mlir)
        return _run_iree_compile_file(path, find_tool("iree-compile"), flags, lowered)


def _run_iree_compile_file(path, tool, flags, lowered) -> bytes:
    timeout, memory = compile_limits()
    cmd = [tool, path, "-o", "-", "--iree-input-type=none", "--mlir-print-op-on-diagnostic=false", *flags]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    start = time.monotonic()
    tty = sys.stderr.isatty()
    shown = False
    why = None
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - start
            rss = _rss(proc.pid)
            if elapsed > timeout:
                why = f"did not finish within {timeout:g} s (VMAPC_COMPILE_TIMEOUT)"
            elif memory and rss > memory:
                why = (f"used more than {memory / (1 << 20):.0f} MiB of memory "
                       "(VMAPC_COMPILE_MEMORY)")
            if why is not None:
                _kill(proc)
                proc.communicate()
                break
            if tty and elapsed > PROGRESS_AFTER_S:
                shown = True
                print(f"\rvmapc: compiling {_names(lowered)} with IREE: {elapsed:.0f} s, "
                      f"{rss / (1 << 20):.0f} MiB", end="", file=sys.stderr, flush=True)
    except BaseException:          # KeyboardInterrupt: leave no compiler running
        _kill(proc)
        raise
    finally:
        if shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    if why is not None:
        err = CompileError(f"iree-compile {why} compiling {_names(lowered)}; the compile was stopped "
                           "(a bigger limit may let it finish; if it does not, please report the program)")
        err.details = ""
        raise err
    if proc.returncode != 0 or not out:
        stderr = err.decode("utf-8", "replace")
        if AGGRESSIVE_FUSION in flags and (FUSION_BUG in stderr or STACK_BUG in stderr):
            stats["fusion_retries"] += 1
            return _run_iree_compile_file(path, tool, tuple(f for f in flags if f != AGGRESSIVE_FUSION), lowered)
        raise compile_error(stderr, lowered, proc.returncode)
    return out


def _kill(proc):
    """Kill iree-compile and what it started (its linker)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()


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
            if m.group("file") not in ("-", "<stdin>") and not m.group("file").endswith(_INPUT_NAME):
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
        if isinstance(returncode, int) and returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            why = " (a file grew past the size limit: is the disk full?)" if name == "SIGXFSZ" else ""
            msg = f"iree-compile was killed by {name}{why}; its output is in this error's .details"
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
