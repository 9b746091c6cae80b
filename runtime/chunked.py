"""Running a batch chunk by chunk, wherever the chunk is.

A batch axis is embarrassingly parallel: examples ``[0, 100)`` and ``[100, 200)``
can run in different threads, processes or machines through the same compiled
module. :mod:`vmapc.dask`, :mod:`vmapc.ray` and ``vmapc run --chunk-size`` split
a batch along its batch axis into chunks and send each chunk to a worker. This
module is what runs on the worker; it needs only NumPy and IREE's runtime
(never ``iree.compiler``, never Dask or Ray):

* :class:`Program` is everything a worker needs to run the batched function: the
  compiled module as bytes, its entry point and signature (types with the batch
  dims), where each input and output carries the batch, and the batch size it was
  compiled for (an int, or ``"dynamic"``). It is plain data: it pickles, and it is
  sent to each worker once.
* :func:`function` loads a program's module once per process and keeps it, keyed by
  the SHA-256 of its bytes and the driver: every later chunk in that process reuses
  it. IREE objects never leave the process that made them.
* :func:`run_chunk` runs the examples ``[start, start + n)`` of a batch. A module
  compiled for a fixed batch size S runs a chunk of another size in pieces of S,
  padding the last piece by repeating its last example (the padded results are
  dropped); a ``"dynamic"`` module takes any chunk in one call. A chunk that fails
  raises the error it failed with (the same class), its message prefixed with the
  chunk's index range, which is also in ``err.chunk``.
* :class:`NpyFile` reads a ``.npy`` file by slices (the path travels, not the data)
  and :class:`NpyOutput` writes one by chunks under a temporary name, renamed into
  place only when every chunk is written: a run that fails or is interrupted never
  leaves a file that looks complete.

On the CPU, workers run the module on the ``local-sync`` driver (on the worker's own
thread): the engine (Dask, Ray) owns the parallelism, and IREE's ``local-task``
thread pool in every worker would oversubscribe the cores.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import CallError, ExecutionError, VmapcError


@dataclass(frozen=True, repr=False)
class Program:
    """A compiled batched function, as data a worker can load (see the module docstring).

    ``in_types``/``out_types`` are type strings such as ``"f32[B,64]"`` (``B``: a
    dynamic batch) or ``"f32[256,64]"``; ``in_dims``/``out_dims`` say where each input
    and output carries the batch (None: shared by every example); ``batch`` is the
    batch size the module was compiled for, or ``"dynamic"``."""

    name: str
    entry: str
    vmfb: bytes
    digest: str
    driver: str
    input_names: tuple
    in_types: tuple
    in_dims: tuple
    output_names: tuple
    out_types: tuple
    out_dims: tuple
    batch: object

    @classmethod
    def create(cls, vmfb: bytes, **fields) -> "Program":
        vmfb = bytes(vmfb)
        return cls(vmfb=vmfb, digest=hashlib.sha256(vmfb).hexdigest(),
                   **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    def __repr__(self):
        sig = ", ".join(f"{n}: {t}" for n, t in zip(self.input_names, self.in_types))
        return (f"<vmapc Program {self.name}({sig}) batch={self.batch} on {self.driver}, "
                f"{len(self.vmfb) // 1024} KiB, sha256 {self.digest[:12]}>")

    def signature(self):
        """(in TensorTypes, out TensorTypes), parsed from the type strings."""
        from .artifact import parse_type
        return [parse_type(t) for t in self.in_types], [parse_type(t) for t in self.out_types]


# --- one loaded module per program and process ---------------------------------------------------

_LOADED: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
MAX_LOADED = 8          # modules kept per process (least recently used dropped first)
_STATS = {"loads": 0, "chunks": 0}


def function(program: Program):
    """The loaded entry point of `program` in this process (a
    :class:`vmapc.runtime.Function`), loaded on first use and kept."""
    key = (program.digest, program.driver)
    with _LOCK:
        fn = _LOADED.get(key)
        if fn is not None:
            _LOADED.move_to_end(key)
            return fn
        from .module import Module
        if hashlib.sha256(program.vmfb).hexdigest() != program.digest:
            from ..errors import ArtifactError
            raise ArtifactError(f"{program.name}: the compiled module does not match its SHA-256 "
                                "(damaged on the way to this worker)")
        ins, outs = program.signature()
        module = Module(program.vmfb, driver=program.driver, signatures={program.entry: (ins, outs)})
        fn = module.function(program.entry)
        _LOADED[key] = fn
        while len(_LOADED) > MAX_LOADED:
            _LOADED.popitem(last=False)
        _STATS["loads"] += 1
        return fn


def stats() -> dict:
    """This process's counters: ``loads`` (modules loaded) and ``chunks`` (chunks run)."""
    with _LOCK:
        return dict(_STATS, loaded=len(_LOADED))


def forget():
    """Drop this process's loaded modules (tests)."""
    with _LOCK:
        _LOADED.clear()
        _STATS.update(loads=0, chunks=0)


# --- running a chunk ---------------------------------------------------------------------------------

def chunk_error(err: VmapcError, name: str, start: int, stop: int, entry: str | None = None) -> VmapcError:
    """`err`, same class, its message prefixed with the chunk's index range
    (``mlp, examples [200:300): ...``); the range is also in ``.chunk``."""
    new = copy.copy(err)
    message = err.message
    for prefix in {f"{name}: ", f"{entry or name}: "}:
        if message.startswith(prefix):
            message = message[len(prefix):]
    new.message = f"{name}, examples [{start}:{stop}): {message}"
    new.chunk = (start, stop)
    new.args = (new._render(),)
    return new


def _length(program: Program, arrays, start: int) -> int:
    """The number of examples in this chunk: the batched inputs must agree."""
    sizes = [(n, np.shape(a)[d]) for n, a, d in zip(program.input_names, arrays, program.in_dims)
             if d is not None and d < np.ndim(a)]
    lengths = {s for _, s in sizes}
    if len(lengths) > 1:
        from ..errors import BatchingError
        detail = ", ".join(f"`{n}` has {s}" for n, s in sizes)
        raise BatchingError(f"{program.name}, chunk at example {start}: the batched inputs have different "
                            f"numbers of examples ({detail})")
    return lengths.pop() if lengths else 0


def _native(a):
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder("=")) if not a.dtype.isnative else a


def _piece(a, d: int, start: int, stop: int, size: int):
    """Examples [start, stop) of `a` along axis d, padded to `size` by repeating the
    last one (zeros when `a` has none)."""
    if stop - start == size:
        return a[(slice(None),) * d + (slice(start, stop),)]
    n = a.shape[d]
    if n == 0:
        shape = list(a.shape)
        shape[d] = size
        return np.zeros(shape, a.dtype)
    return np.take(a, np.minimum(np.arange(start, start + size), n - 1), axis=d)


def _cut(r, d, n):
    return r if d is None else r[(slice(None),) * d + (slice(0, n),)]


def _call(program: Program, fn, arrays):
    try:
        return fn(*arrays)
    except CallError as e:
        from .artifact import _name_args
        raise CallError(_name_args(e.message, list(program.input_names))) from None
    except RuntimeError as e:          # IREE's status: out of memory, a device failure
        if isinstance(e, VmapcError):
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExecutionError(f"the compiled code failed while running: {first}") from None


def run_chunk(program: Program, start: int, arrays) -> list:
    """Run examples ``[start, start + n)``: `arrays` are the program's inputs in
    order, the batched ones holding this chunk's n examples along their in_dim, the
    shared ones whole. Returns the outputs (batched ones with n examples along their
    out_dim). Errors carry the chunk's range (see :func:`chunk_error`)."""
    arrays = [_native(a) for a in arrays]
    n = 0
    try:
        n = _length(program, arrays, start)
        fn = function(program)
        outs = _run(program, fn, arrays, n)
    except VmapcError as e:
        raise chunk_error(e, program.name, start, start + n, program.entry) from None
    with _LOCK:
        _STATS["chunks"] += 1
    return outs


def _run(program: Program, fn, arrays, n: int) -> list:
    size = program.batch
    if size == "dynamic" or n == size:
        return list(_call(program, fn, arrays))
    outs = None
    for s in range(0, max(n, 1), size):          # a chunk of 0 still runs one padded piece
        e = min(s + size, n)
        piece = [a if d is None else _piece(a, d, s, e, size) for a, d in zip(arrays, program.in_dims)]
        res = _call(program, fn, piece)
        if n <= size:
            return [_cut(r, d, n) for r, d in zip(res, program.out_dims)]
        if outs is None:
            outs = []
            for r, d in zip(res, program.out_dims):
                if d is None:
                    outs.append(r)
                    continue
                shape = list(r.shape)
                shape[d] = n
                outs.append(np.empty(shape, r.dtype))
        for o, r, d in zip(outs, res, program.out_dims):
            if d is not None:
                o[(slice(None),) * d + (slice(s, e),)] = _cut(r, d, e - s)
    return outs


# --- .npy files by chunks ------------------------------------------------------------------------------

def read_npy_header(path):
    """(shape, dtype, fortran_order, data offset) of a .npy file, without reading the
    data; object arrays are refused (their data would be pickles)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        if dtype.hasobject:
            raise ValueError("it holds Python objects (dtype object), which vmapc does not read")
        return tuple(shape), dtype, bool(fortran), f.tell()


class NpyFile:
    """A ``.npy`` file as an array whose slices are read when asked for: ``shape``,
    ``dtype``, ``ndim`` and ``x[index]`` (a NumPy array holding just those elements).
    It pickles as its path, so a Dask or Ray task that reads a chunk carries a few
    bytes, and the worker reads the chunk from the file (which must be at the same
    path there: a shared or local file system). The file is mapped for each read and
    unmapped after it, so reading a file bigger than memory chunk by chunk keeps the
    process's memory at about one chunk."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.shape, self.dtype, self.fortran_order, self.offset = read_npy_header(self.path)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self):
        return self.shape[0]

    def _map(self, mode="r"):
        return np.memmap(self.path, dtype=self.dtype, mode=mode, offset=self.offset, shape=self.shape,
                         order="F" if self.fortran_order else "C")

    def _rows(self, index):
        """(start, stop) when `index` selects whole rows start:stop of a C-order file."""
        if self.fortran_order or not self.shape:
            return None
        index = index if isinstance(index, tuple) else (index,)
        if not index or len(index) > len(self.shape) or not all(isinstance(i, slice) for i in index):
            return None
        start, stop, step = index[0].indices(self.shape[0])
        if step != 1 or any(i.indices(n) != (0, n, 1) for i, n in zip(index[1:], self.shape[1:])):
            return None
        return start, max(start, stop)

    def __getitem__(self, index):
        if self.size == 0:
            return np.empty(self.shape, self.dtype)[index]
        rows = self._rows(index)
        if rows is not None:     # whole rows: one read into a fresh 64-byte aligned array
            from .module import aligned_empty
            out = aligned_empty((rows[1] - rows[0],) + self.shape[1:], self.dtype)
            view = memoryview(out.reshape(-1).view(np.uint8))
            row_bytes = out[:1].nbytes if len(out) else 0
            with open(self.path, "rb", buffering=0) as f:
                f.seek(self.offset + rows[0] * row_bytes)
                done = 0
                while done < len(view):
                    n = f.readinto(view[done:])
                    if not n:
                        raise EOFError(f"{self.path}: the file ends before row {rows[1]} (truncated?)")
                    done += n
            return out
        m = self._map()
        try:
            return np.array(m[index], copy=True)
        finally:
            del m

    def __array__(self, dtype=None, copy=None):
        a = self[...]
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return f"NpyFile({self.path!r}, shape={self.shape}, dtype={self.dtype})"


class NpyOutput:
    """A ``.npy`` file written by chunks: created (full size, unwritten parts zero,
    sparse on most file systems) under a temporary name next to `path`; ``x[index] =
    block`` writes a part (from any process that sees the file: it pickles as the two
    paths); :meth:`commit` renames it to `path` once everything is written, and
    :meth:`abort` removes it. Until the rename, `path` is untouched."""

    def __init__(self, path, shape, dtype):
        self.path = os.path.abspath(os.fspath(path))
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        folder, name = os.path.split(self.path)
        self.tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.partial")
        if int(np.prod(self.shape, dtype=np.int64)) == 0:
            np.save(self.tmp, np.empty(self.shape, self.dtype), allow_pickle=False)
            os.replace(self.tmp + ".npy", self.tmp)
        else:
            m = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=self.shape)
            del m

    def __setitem__(self, index, value):
        m = np.lib.format.open_memmap(self.tmp, mode="r+")
        try:
            m[index] = value
            m.flush()
        finally:
            del m

    def commit(self):
        os.replace(self.tmp, self.path)

    def abort(self):
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __repr__(self):
        return f"NpyOutput({self.path!r}, shape={self.shape}, dtype={self.dtype})"
