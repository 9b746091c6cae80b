"""Loading a compiled ``.vmfb`` and calling its functions with NumPy arrays.

This module needs only ``iree.runtime`` and NumPy (never ``iree.compiler``), so
an artifact can be deployed without the compiler.

A :class:`Module` owns one IREE VM context holding the HAL module and the
compiled module; the VM instance and the device are shared by every module that
uses the same HAL driver (``local-sync``: runs on the calling thread, cheapest
for small calls; ``local-task``: a thread pool, for big kernels).

On the CPU, arguments of at least 16 KiB that are 64-byte aligned, C-contiguous
and writeable are imported zero-copy (IREE's CPU kernels assume 64-byte aligned
memory and a misaligned import crashes the process, while NumPy only guarantees
16: :func:`aligned_empty` and :func:`aligned` make such arrays); other arguments
are copied into device buffers. Results of at least 16 KiB are NumPy views of
IREE's result buffers, smaller ones are copied. Element types are passed by their
bits: unsigned integers travel as the same-width signless integers the compiled
code uses, and ``bool`` as one byte per element.

How data crosses depends on the device:

* CPU (``local-sync``/``local-task``): inputs imported in place or copied by
  ``allocate_buffer_copy``; results mapped (they are host memory) and viewed or copied
  (see :class:`Function`).
* GPUs: IREE 3.13 returns results in device-local buffers that cannot be mapped, and
  its own readback (``DeviceArray.to_host()``) imports a NumPy array as the target of
  the copy, which Vulkan rejects (NumPy's 16-byte alignment). So a function compiled
  with output storage (vmapc's Vulkan lowering: a trailing ``!hal.buffer
  {iree.abi.output = k}`` argument per result, visible in its reflection) gets one
  host-visible buffer per result, allocated here at the size of the result, and IREE
  writes the result into it; any other result that is not mappable is copied by a
  queue transfer into a host-visible staging buffer and waited for. On Vulkan, inputs
  go into mappable device-local buffers written through a mapping when the device has
  them (lavapipe and resizable-BAR GPUs), else through ``allocate_buffer_copy``.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading

import numpy as np
from iree import runtime as rt

from ..errors import ArtifactError, CallError
from ..shapes import bind, resolve

_DEVICES: dict = {}
_LOCK = threading.Lock()

# How each dtype crosses the ABI (bits only: signedness is not checked by IREE).
_ELEMENT_TYPES = {
    np.dtype(np.bool_): rt.HalElementType.BOOL_8,
    np.dtype(np.int8): rt.HalElementType.SINT_8,
    np.dtype(np.int16): rt.HalElementType.SINT_16,
    np.dtype(np.int32): rt.HalElementType.SINT_32,
    np.dtype(np.int64): rt.HalElementType.SINT_64,
    np.dtype(np.uint8): rt.HalElementType.UINT_8,
    np.dtype(np.uint16): rt.HalElementType.UINT_16,
    np.dtype(np.uint32): rt.HalElementType.UINT_32,
    np.dtype(np.uint64): rt.HalElementType.UINT_64,
    np.dtype(np.float16): rt.HalElementType.FLOAT_16,
    np.dtype(np.float32): rt.HalElementType.FLOAT_32,
    np.dtype(np.float64): rt.HalElementType.FLOAT_64,
    np.dtype(np.complex64): rt.HalElementType.COMPLEX_64,
    np.dtype(np.complex128): rt.HalElementType.COMPLEX_128,
}


# The CPU drivers allocate through IREE's caching allocator: a buffer freed by one call
# (a transient, or a result the caller dropped) serves the next allocation of the same
# size, instead of going back to the OS and page-faulting in again (a 64 MiB element-wise
# call on local-sync: 38 ms with fresh buffers, 10 ms with reused ones; docs/performance.md).
# The spec is max_allocation_size;max_allocation_capacity;max_free_allocation_count.
# Bounded: allocations over 256 MiB bypass it, and it trims its free buffers when the
# memory it manages passes 1 GiB. Its free list holds up to 1024 buffers: IREE evicts
# free buffers only by bytes, never by count, so with IREE's default of 64 a process that
# had freed 64 small buffers of other sizes stopped caching anything (every big call paid
# its page faults again); loading a module also trims the pool, so the buffers of
# programs no longer in use do not crowd out the new ones. VMAPC_CPU_ALLOCATOR overrides
# the spec ("none": no cache); trim() gives the cached memory back.
CPU_ALLOCATOR = "caching:*=268435456;1073741824;1024"


def _allocators(driver: str):
    if driver not in _LOCAL_DRIVERS:
        return None
    spec = os.environ.get("VMAPC_CPU_ALLOCATOR", CPU_ALLOCATOR).strip()
    return None if spec in ("", "none") else [spec]


def device(driver: str = "local-sync"):
    """(VmInstance, HalDevice, hal VmModule) for a HAL driver, created once per process."""
    with _LOCK:
        entry = _DEVICES.get(driver)
        if entry is None:
            try:
                allocators = _allocators(driver)
                drv = rt.get_driver(driver)
                dev = drv.create_default_device(allocators=allocators) if allocators else drv.create_default_device()
            except (ValueError, RuntimeError) as e:
                from ..errors import TargetError
                raise TargetError(f"cannot open IREE driver {driver!r}: {e}") from None
            inst = rt.VmInstance()
            entry = (inst, dev, rt.create_hal_module(inst, dev))
            _DEVICES[driver] = entry
        return entry


def trim():
    """Give the memory IREE's allocators keep for reuse back to the system (every driver
    opened in this process)."""
    with _LOCK:
        entries = list(_DEVICES.values())
    for _, dev, _ in entries:
        dev.allocator.trim()


_MAP = int(rt.BufferUsage.MAPPING_SCOPED)
_HOST = int(rt.MemoryType.HOST_LOCAL) | int(rt.MemoryType.DEVICE_VISIBLE)
_DEVICE_MAPPABLE = int(rt.MemoryType.DEVICE_LOCAL) | int(rt.MemoryType.HOST_VISIBLE)
_STORAGE_USAGE = int(rt.BufferUsage.DEFAULT) | _MAP
_STAGING_USAGE = int(rt.BufferUsage.TRANSFER_TARGET) | _MAP
_LOCAL_DRIVERS = ("local-sync", "local-task")
_MAPPED_INPUTS: dict = {}  # driver -> whether inputs go into mappable device-local buffers


def _mapped_inputs(driver: str, dev) -> bool:
    """Vulkan: write inputs through a mapping into device-local host-visible memory when
    the device has it (one memcpy, no transfer and wait); CPU and CUDA use IREE's
    ``allocate_buffer_copy``."""
    ok = _MAPPED_INPUTS.get(driver)
    if ok is None:
        ok = False
        if driver == "vulkan":
            try:
                compat = dev.allocator.query_buffer_compatibility(
                    memory_type=_DEVICE_MAPPABLE, allowed_usage=_STORAGE_USAGE, intended_usage=_STORAGE_USAGE,
                    allocation_size=4096)
                ok = bool(int(compat) & int(rt.BufferCompatibility.ALLOCATABLE))
            except (RuntimeError, ValueError):
                ok = False
        _MAPPED_INPUTS[driver] = ok
    return ok


# `%input3: !hal.buffer {iree.abi.output = 1 : index}` in a function's reflection
_STORAGE_ARG = re.compile(r"%input(\d+): !hal\.buffer \{iree\.abi\.output = (\d+) : index\}")
_RESULT_TYPE = re.compile(r"%output\d+: tensor<((?:[^<>]|<[^<>]*>)*)>")   # complex<f32> nests
_MLIR_DTYPES = {"i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
                "f16": np.float16, "f32": np.float32, "f64": np.float64,
                "complex<f32>": np.complex64, "complex<f64>": np.complex128}


def _declaration(vm_fn) -> str:
    try:
        return dict(vm_fn.reflection).get("iree.abi.declaration", "")
    except (AttributeError, TypeError, ValueError):
        return ""


def _storage_outputs(decl: str) -> list:
    """The result index of each output-storage argument, in argument order."""
    return [int(m.group(2)) for m in sorted(_STORAGE_ARG.finditer(decl), key=lambda m: int(m.group(1)))]


def _declared_results(decl: str) -> list:
    """(shape with None for dynamic dims, dtype) of each result, from the declaration."""
    out = []
    for m in _RESULT_TYPE.finditer(decl.split("->", 1)[-1]):
        shape = re.match(r"((?:[0-9?]+x)*)(.*)", m.group(1))   # 4x?xcomplex<f32>
        dims, elem = shape.group(1).split("x")[:-1], shape.group(2)
        out.append((tuple(None if d == "?" else int(d) for d in dims), np.dtype(_MLIR_DTYPES.get(elem, np.uint8))))
    return out


# --- modules that call libm ----------------------------------------------------------------------------
#
# IREE 3.13's self-contained ("embedded") ELF has no float64 sin, cos, tan, atan, atan2,
# asin, acos, tanh or fmod (its built-in musl subset is float32 only), so modules that
# need them are linked as system shared libraries (docs/reliability.md). Loading one,
# IREE's runtime writes the library to $TMPDIR, dlopen()s it and removes it, but it also
# leaves behind the empty file it reserved the name with (iree_dylib_XXXXXX) and keeps
# that file open: one file and one descriptor per load. vmapc removes both after the load
# and explains a failure (a noexec $TMPDIR) instead of passing on dlopen's message.

_SYSTEM_LINKED = b"system-elf-"
_DYLIB_LOCK = threading.Lock()
_PLACEHOLDER = re.compile(r"/iree_dylib_[A-Za-z0-9]{6}$")


def _open_fds() -> dict:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[int(n)] = os.readlink(f"/proc/self/fd/{n}")
        except (OSError, ValueError):
            pass
    return out


def _load_system_linked(instance, hal, vm_module):
    with _DYLIB_LOCK:    # one load at a time, so the descriptors that appear are this load's
        before = _open_fds()
        try:
            context = rt.VmContext(instance, modules=[hal, vm_module])
        except (ValueError, RuntimeError) as e:
            tmp = os.environ.get("TMPDIR") or "/tmp"
            raise ArtifactError(
                f"IREE cannot load this module: {str(e).splitlines()[0].rstrip('; .')}. The module calls the C math "
                f"library (float64 sin/cos/tan/arctan/arcsin/arccos/tanh, or sin/cos/tan of any float), so "
                f"IREE loads its code as a shared library written to $TMPDIR ({tmp}); if that directory "
                "is missing, not writable or mounted noexec, set TMPDIR to one where programs may run") from None
        finally:
            for fd, target in _open_fds().items():
                if fd not in before and _PLACEHOLDER.search(target):
                    try:
                        st = os.fstat(fd)
                        if st.st_size == 0 and os.path.exists(target) \
                                and os.path.samestat(st, os.stat(target)):
                            os.unlink(target)
                        os.close(fd)
                    except OSError:
                        pass
    return context


class Module:
    """A loaded ``.vmfb``: ``Module(vmfb_bytes_or_path, driver="local-sync")``.

    ``signatures`` optionally maps function names to ``(in_types, out_types)``
    (objects with ``.shape`` and ``.dtype``, such as :class:`vmapc.ir.TensorType`);
    calls are then checked against them and results get exactly those dtypes.
    """

    def __init__(self, vmfb, driver: str = "local-sync", signatures: dict | None = None):
        if isinstance(vmfb, (str, os.PathLike)):
            try:
                with open(vmfb, "rb") as f:
                    vmfb = f.read()
            except OSError as e:
                raise ArtifactError(f"cannot read compiled module {vmfb}: {e}") from None
        self.driver = driver
        self.instance, self.device, hal = device(driver)
        try:
            self.vm_module = rt.VmModule.copy_buffer(self.instance, bytes(vmfb))
        except (ValueError, RuntimeError) as e:
            raise ArtifactError(f"not a valid IREE module: {e}") from None
        if _SYSTEM_LINKED in vmfb:
            self.context = _load_system_linked(self.instance, hal, self.vm_module)
        else:
            try:
                self.context = rt.VmContext(self.instance, modules=[hal, self.vm_module])
            except (ValueError, RuntimeError) as e:
                raise ArtifactError(f"IREE cannot load the module: {str(e).splitlines()[0]}") from None
        if driver in _LOCAL_DRIVERS:
            self.device.allocator.trim()   # a new working set (see CPU_ALLOCATOR)
        self.signatures = dict(signatures or {})
        self._functions: dict = {}

    @property
    def names(self) -> list:
        return [n for n in self.vm_module.function_names if not n.startswith("__")]

    def upload(self, a: np.ndarray):
        """A device buffer view holding a copy of `a`."""
        if not _mapped_inputs(self.driver, self.device):
            return _buffer_view(self.device, a)
        flat = contiguous(a).reshape(-1)
        buf = self.device.allocator.allocate_buffer(memory_type=_DEVICE_MAPPABLE, allowed_usage=_STORAGE_USAGE,
                                                    allocation_size=max(flat.nbytes, 4))
        if flat.size:
            view = buf.map().asarray(flat.shape, _storage_dtype(flat.dtype))
            view[...] = flat.view(_storage_dtype(flat.dtype))
            del view
        return rt.HalBufferView(buf, list(a.shape), _ELEMENT_TYPES[a.dtype])

    def empty(self, shape, dtype) -> np.ndarray:
        """A writeable, 64-byte aligned NumPy array backed by a buffer of this module's
        device allocator (on the CPU drivers its caching pool, so a buffer of a size seen
        before is reused without page faults); other drivers give :func:`aligned_empty`."""
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self.driver not in _LOCAL_DRIVERS or nbytes == 0:
            return aligned_empty(shape, dtype)
        buf = self.device.allocator.allocate_buffer(memory_type=_DEVICE_MAPPABLE, allowed_usage=_STORAGE_USAGE,
                                                    allocation_size=nbytes)
        mapped = buf.map()
        return _owning_view(mapped, (mapped, buf), _address(mapped), nbytes, shape, dtype)

    def storage(self, nbytes: int):
        """A host-visible buffer for a result written through ``{iree.abi.output}``."""
        return self.device.allocator.allocate_buffer(memory_type=_HOST, allowed_usage=_STORAGE_USAGE,
                                                     allocation_size=max(int(nbytes), 4))

    def read(self, bv, dtype) -> np.ndarray:
        """A fresh NumPy array with the contents of a result buffer view."""
        shape = tuple(bv.shape)
        if 0 in shape:
            return np.zeros(shape, dtype)
        st = _storage_dtype(dtype)
        buf = bv.get_buffer()
        if (int(buf.memory_type()) & int(rt.MemoryType.HOST_VISIBLE)) and (int(buf.allowed_usage()) & _MAP):
            return np.array(bv.map().asarray(shape, st), copy=True).view(dtype)
        # device-local (CUDA, Vulkan without output storage): a transfer into staging memory
        nbytes = int(np.prod(shape)) * st.itemsize
        staging = self.device.allocator.allocate_buffer(memory_type=_HOST, allowed_usage=_STAGING_USAGE,
                                                        allocation_size=buf.byte_length())
        sem = self.device.create_semaphore(0)
        self.device.queue_copy(buf, staging, rt.HalFence.create_at(sem, 0), rt.HalFence.create_at(sem, 1))
        rt.HalFence.create_at(sem, 1).wait()
        raw = staging.map().asarray((buf.byte_length(),), np.dtype(np.uint8))
        return np.array(raw[:nbytes], copy=True).view(st).reshape(shape).view(dtype)

    def function(self, name: str) -> "Function":
        fn = self._functions.get(name)
        if fn is None:
            vm_fn = self.vm_module.lookup_function(name)
            if vm_fn is None:
                raise CallError(f"the compiled module has no function {name!r} "
                                f"(it has: {', '.join(self.names)})")
            ins, outs = self.signatures.get(name, (None, None))
            fn = self._functions[name] = Function(self, name, vm_fn, ins, outs)
        return fn

    __getitem__ = function

    def __repr__(self):
        return f"<vmapc.runtime.Module on {self.driver}: {', '.join(self.names)}>"


class Function:
    """One function of a :class:`Module`; call it with NumPy arrays, get a list of arrays.

    On the CPU drivers a call costs little more than IREE's own invoke (see
    ``docs/performance.md``): the signature is checked against precomputed
    ``(shape, dtype)`` pairs, inputs of at least ``IMPORT_MIN_BYTES`` that are
    64-byte aligned, C-contiguous and writeable are imported without a copy
    (the compiled code reads the caller's memory; anything else is copied, since
    IREE's kernels assume 64-byte alignment and a misaligned import crashes), and
    results of at least ``VIEW_MIN_BYTES`` are returned as NumPy views of IREE's
    result buffers (each view keeps its buffer alive) instead of copies. A result
    that IREE returns in an input's memory (``lambda x: x`` or a slice of an input
    imported without a copy), or in memory another result already occupies, is
    copied, so results never alias the arguments or each other.
    """

    def __init__(self, module: Module, name: str, vm_fn, in_types=None, out_types=None):
        self.module = module
        self.name = name
        self.vm_fn = vm_fn
        self.in_types = list(in_types) if in_types is not None else None
        self.out_types = list(out_types) if out_types is not None else None
        decl = _declaration(vm_fn)
        self.storage_outputs = _storage_outputs(decl)  # result index of each output-storage argument
        self._declared = _declared_results(decl) if self.storage_outputs else []
        # the fast path: CPU drivers without output storage
        self._local = module.driver in _LOCAL_DRIVERS and not self.storage_outputs
        self._n_out = len(self.out_types) if self.out_types is not None else 8
        self._out_dtypes = ([np.dtype(t.dtype) for t in self.out_types] if self.out_types is not None else None)
        self._static = None  # ((shape, dtype), ...) when every input shape is static
        if self.in_types is not None:
            sig = tuple((tuple(t.shape), np.dtype(t.dtype)) for t in self.in_types)
            if all(isinstance(d, int) for shape, _ in sig for d in shape):
                self._static = sig

    def _result_layouts(self, bindings) -> list:
        """(shape, dtype) of each result before the call (needed to size output storage)."""
        if self.out_types is not None:
            return [(resolve(tuple(t.shape), bindings), np.dtype(t.dtype)) for t in self.out_types]
        if any(d is None for shape, _ in self._declared for d in shape):
            raise CallError(f"{self.name}: results of dynamic shape need the module's signatures "
                            "(Module(..., signatures=...)) to size their buffers")
        return self._declared

    def _check(self, args):
        arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in args]
        sig = self._static
        if sig is not None and len(arrays) == len(sig):
            for a, (shape, dtype) in zip(arrays, sig):
                if a.shape != shape or a.dtype != dtype:
                    break
            else:
                return arrays, {}
        if self.in_types is None:
            for i, a in enumerate(arrays):
                if a.dtype not in _ELEMENT_TYPES:
                    raise CallError(f"{self.name}: argument {i} has unsupported dtype {a.dtype}")
            return arrays, {}
        if len(arrays) != len(self.in_types):
            raise CallError(f"{self.name} takes {len(self.in_types)} arguments, got {len(arrays)}")
        bindings: dict = {}
        for i, (a, t) in enumerate(zip(arrays, self.in_types)):
            if a.dtype != np.dtype(t.dtype):
                raise CallError(f"{self.name}: argument {i} has dtype {a.dtype}, expected {t.dtype}")
            if not bind(tuple(t.shape), a.shape, bindings):
                raise CallError(f"{self.name}: argument {i} has shape {a.shape}, expected "
                                f"({', '.join(str(d) for d in t.shape)})"
                                + (f" with {_fmt_bindings(bindings)}" if bindings else ""))
        return arrays, bindings

    def __call__(self, *args) -> list:
        arrays, bindings = self._check(args)
        if self._local:
            return self._call_local(arrays)
        return self._call_device(arrays, bindings)

    def call_checked(self, arrays) -> list:
        """Call with NumPy arrays the caller has already checked against the signature
        (exact dtypes and shapes): ``vmapc.compile``'s fast path."""
        if self._local:
            return self._call_local(arrays)
        return self(*arrays)

    # -- CPU: zero-copy inputs, results as views ------------------------------------------------
    def _call_local(self, arrays) -> list:
        module = self.module
        dev = module.device
        alloc = dev.allocator
        arg_list = rt.VmVariantList(len(arrays))
        pinned = None  # [start, end) of each input the compiled code reads in place
        for i, a in enumerate(arrays):
            if not a.flags.c_contiguous and 0 in a.strides:     # a broadcast view
                a = contiguous(a, f"{self.name}: argument {i}")
            if a.dtype is _BOOL:
                a = bool_bytes(a)
            nbytes = a.nbytes
            et = _ELEMENT_TYPES[a.dtype]
            if nbytes >= IMPORT_MIN_BYTES and a.flags.c_contiguous and a.flags.writeable:
                ptr = a.ctypes.data
                if ptr % ALIGNMENT == 0:
                    buf = alloc.import_host_allocation(a, _ML, _US)
                    arg_list.push_ref(rt.HalBufferView(buf, a.shape, et))
                    if pinned is None:
                        pinned = []
                    pinned.append((ptr, ptr + nbytes))
                    continue
            if a.size and a.dtype is not _BOOL and a.flags.c_contiguous:
                arg_list.push_ref(alloc.allocate_buffer_copy(_ML, _US, dev, a, et))
            else:
                arg_list.push_ref(_buffer_view(dev, a))
        ret = rt.VmVariantList(self._n_out)
        module.context.invoke(self.vm_fn, arg_list, ret)
        del arg_list
        dtypes = self._out_dtypes
        outs = []
        for i in range(len(ret)):
            bv = ret.get_as_object(i, rt.HalBufferView)
            dtype = dtypes[i] if dtypes is not None else np.dtype(rt.HalElementType.map_to_dtype(bv.element_type))
            shape = tuple(bv.shape)
            st = _storage_dtype(dtype)
            try:
                mapped = bv.map()
            except RuntimeError:          # not host memory (never seen on the CPU drivers)
                mapped = None
            if mapped is None or 0 in shape:
                outs.append(module.read(bv, dtype))
                continue
            if bv.byte_length < VIEW_MIN_BYTES:
                # small: a private copy (and IREE's buffer is freed now); frombuffer is the
                # cheapest way into the mapping (read-only, hence the copy)
                a = np.frombuffer(mapped, st).reshape(shape).copy()
            else:
                ptr = _address(mapped)
                span = (ptr, ptr + bv.byte_length)
                if pinned is not None and any(s < span[1] and span[0] < e for s, e in pinned):
                    # in an input's or an earlier result's memory: a copy
                    a = np.frombuffer(mapped, st).reshape(shape).copy()
                else:
                    # a writeable view that keeps the mapping and the buffer alive
                    a = _owning_view(mapped, (mapped, bv), ptr, bv.byte_length, shape, st)
                    if pinned is None:
                        pinned = []
                    pinned.append(span)
            outs.append(a if st is dtype else a.view(dtype))
        return outs

    # -- GPUs and output storage ----------------------------------------------------------------
    def _call_device(self, arrays, bindings) -> list:
        module = self.module
        arg_list = rt.VmVariantList(len(arrays) + len(self.storage_outputs))
        for i, a in enumerate(arrays):
            if not a.flags.c_contiguous and 0 in a.strides:     # a broadcast view
                a = contiguous(a, f"{self.name}: argument {i}")
            arg_list.push_ref(module.upload(bool_bytes(a) if a.dtype is _BOOL else a))
        if self.storage_outputs:
            layouts = self._result_layouts(bindings)
            for k in self.storage_outputs:
                shape, dtype = layouts[k]
                arg_list.push_ref(module.storage(int(np.prod(shape, dtype=np.int64)) * _storage_dtype(dtype).itemsize))
        ret = rt.VmVariantList(self._n_out)
        module.context.invoke(self.vm_fn, arg_list, ret)
        outs = []
        for i in range(len(ret)):
            bv = ret.get_as_object(i, rt.HalBufferView)
            if self.out_types is not None:
                dtype = np.dtype(self.out_types[i].dtype)
            else:
                dtype = np.dtype(rt.HalElementType.map_to_dtype(bv.element_type))
            outs.append(module.read(bv, dtype))
        return outs

    def __repr__(self):
        return f"<vmapc.runtime.Function {self.name}>"


class ByBatchSize:
    """One function of a module compiled with a dynamic batch size, loaded on two CPU
    drivers: calls whose batch (the size of `axis` of argument `arg`) is in
    ``[threshold, upper)`` run on ``local-task`` (a thread pool, loaded on first use),
    the others on ``local-sync`` (the calling thread: no wake-ups). `upper` None: no
    upper end. Called like a :class:`Function`."""

    def __init__(self, vmfb, name: str, signatures: dict, arg: int, axis: int, threshold: int,
                 upper: int | None = None):
        self._vmfb, self.name, self._signatures = vmfb, name, signatures
        self.arg, self.axis, self.threshold, self.upper = arg, axis, threshold, upper
        self.small = Module(vmfb, driver="local-sync", signatures=signatures).function(name)
        self._large = None
        self._lock = threading.Lock()

    @property
    def module(self):
        return self.small.module

    @property
    def large(self) -> "Function":
        if self._large is None:
            with self._lock:
                if self._large is None:
                    self._large = Module(self._vmfb, driver="local-task",
                                         signatures=self._signatures).function(self.name)
        return self._large

    def pick(self, args) -> "Function":
        try:
            n = args[self.arg].shape[self.axis]
            big = n >= self.threshold and (self.upper is None or n < self.upper)
        except (IndexError, AttributeError, TypeError):
            big = False          # the small function's checks will say what is wrong
        return self.large if big else self.small

    def __call__(self, *args) -> list:
        return self.pick(args)(*args)

    def call_checked(self, arrays) -> list:
        return self.pick(arrays).call_checked(arrays)

    def __repr__(self):
        task = f"{self.threshold}" + (f" to {self.upper - 1}" if self.upper else " or more")
        return f"<vmapc.runtime.ByBatchSize {self.name}: local-task for {task} examples, else local-sync>"


# Zero-copy thresholds (measured in docs/performance.md): below them a copy costs less
# than finding the array's address (~1 us), and a small result copied out frees IREE's
# buffer at once instead of pinning it as long as the caller keeps the array.
ALIGNMENT = 64
IMPORT_MIN_BYTES = 16 * 1024
VIEW_MIN_BYTES = 16 * 1024
_BOOL = np.dtype(np.bool_)
_ML = int(rt.MemoryType.DEVICE_LOCAL)
_US = int(rt.BufferUsage.DEFAULT)
_HOST_VISIBLE = int(rt.MemoryType.HOST_VISIBLE)


def _address(mapped) -> int:
    """The address of a mapping's first byte."""
    return np.frombuffer(mapped, np.uint8).ctypes.data


def _owning_view(mapped, keep, ptr: int, nbytes: int, shape, dtype) -> np.ndarray:
    """A writeable NumPy array over `nbytes` of mapped IREE memory at `ptr`, whose base
    holds `keep` (the mapping and its buffer), so the memory lives as long as the array
    or any view of it. (``MappedMemory.asarray`` ties the mapping to the array it
    returns in a way that a view of that array does not keep: the buffer was freed and
    reused under a view, measured. Its buffer protocol is read-only.) The ctypes array
    type is rounded up to a power of two so that few distinct types get cached."""
    size = 1 << max(int(nbytes) - 1, 1).bit_length()
    raw = (ctypes.c_char * size).from_address(ptr)
    raw._vmapc_keep = keep
    dtype = np.dtype(dtype)
    return np.frombuffer(raw, dtype, count=int(nbytes) // dtype.itemsize).reshape(shape)


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary:
    vmapc's CPU runtime passes such arrays to the compiled code without copying them."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    off = (-raw.ctypes.data) % ALIGNMENT
    return raw[off:off + nbytes].view(dtype).reshape(shape)


def aligned(a) -> np.ndarray:
    """`a` itself when it is a C-contiguous, writeable, 64-byte aligned array, else an
    aligned copy (see :func:`aligned_empty`)."""
    a = np.asarray(a)
    if a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % ALIGNMENT == 0:
        return a
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def _buffer_view(dev, a: np.ndarray):
    """A device copy of `a` (any shape, including 0-d and empty)."""
    flat = contiguous(a).reshape(-1) if a.size else np.zeros(1, a.dtype)
    buf = dev.allocator.allocate_buffer_copy(
        memory_type=rt.MemoryType.DEVICE_LOCAL, allowed_usage=rt.BufferUsage.DEFAULT,
        device=dev, buffer=flat)
    return rt.HalBufferView(buf, list(a.shape), _ELEMENT_TYPES[a.dtype])


_MEANINGFUL_SUBCLASSES = {
    "MaskedArray": "its mask would be dropped; pass x.filled(value), or np.asarray(x) for the raw data",
    "matrix": "its * and ** mean matrix products and it stays 2-d; pass np.asarray(x)",
}


def as_input(x, what: str, dtype=None) -> np.ndarray:
    """`x` as a plain NumPy array for a compiled call (argument `what`). Array subclasses
    whose meaning a compiled function would drop (``np.ma.MaskedArray``, ``np.matrix``)
    are refused; other subclasses (``np.memmap``) pass as their data. A Python number
    takes `dtype`, and an int that does not fit it is refused."""
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray:
            for cls in type(x).__mro__:
                why = _MEANINGFUL_SUBCLASSES.get(cls.__name__)
                if why is not None and cls.__module__.startswith("numpy"):
                    raise CallError(f"argument {what} is a {cls.__module__}.{cls.__name__}: "
                                    f"compiled code sees only its data, so {why}")
        return x
    if dtype is not None:
        dtype = np.dtype(dtype)
        if type(x) is int and dtype.kind in "iu" and not np.iinfo(dtype).min <= x <= np.iinfo(dtype).max:
            raise CallError(f"argument {what} is the Python int {x}, which does not fit {dtype} "
                            f"({np.iinfo(dtype).min}..{np.iinfo(dtype).max})")
    try:
        return np.asarray(x, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as e:
        raise CallError(f"argument {what} cannot be an array of {dtype or 'numbers'}: {e}") from None


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def contiguous(a: np.ndarray, what: str = "argument") -> np.ndarray:
    """A C-contiguous copy of `a` (compiled code reads dense memory). A broadcast view
    (a stride of 0, ``np.broadcast_to``) whose copy would not fit in memory is refused
    with its broadcast size, instead of being materialized until the machine runs out."""
    if 0 in a.strides and a.size > 1:
        nbytes = a.size * a.itemsize
        avail = _available_memory()
        if avail is not None and nbytes > avail:
            raise CallError(f"{what} is a broadcast view (a stride of 0) of shape {a.shape}: compiled code "
                            f"reads a dense copy, which would take {nbytes / 2**30:.1f} GiB, more than the "
                            f"{avail / 2**30:.1f} GiB of memory available; pass the array before broadcasting "
                            "and broadcast inside the function (np.broadcast_to traces)")
        try:
            return np.ascontiguousarray(a)
        except MemoryError:
            raise CallError(f"{what} is a broadcast view (a stride of 0) of shape {a.shape}, whose dense "
                            f"copy ({nbytes / 2**30:.1f} GiB) does not fit in memory") from None
    return np.ascontiguousarray(a)


def bool_bytes(a: np.ndarray) -> np.ndarray:
    """A bool array with every byte 0 or 1. NumPy reads any nonzero byte as True (a
    ``uint8`` array viewed as bool can hold 2 or 255), compiled code reads the byte's
    low bit: such inputs are normalized before they reach it."""
    return np.not_equal(a.view(np.uint8), 0)


def _storage_dtype(dtype):
    dtype = np.dtype(dtype)
    return np.dtype(np.uint8) if dtype == np.bool_ else dtype


def _fmt_bindings(bindings):
    return ", ".join(f"{k}={v}" for k, v in sorted(bindings.items()))


def load(vmfb, driver: str = "local-sync", signatures: dict | None = None) -> Module:
    """Load a compiled module (bytes or a path)."""
    return Module(vmfb, driver=driver, signatures=signatures)
