"""Loading a compiled ``.vmfb`` and calling its functions with NumPy arrays.

This module needs only ``iree.runtime`` and NumPy (never ``iree.compiler``), so
an artifact can be deployed without the compiler.

A :class:`Module` owns one IREE VM context holding the HAL module and the
compiled module; the VM instance and the device are shared by every module that
uses the same HAL driver (``local-sync``: runs on the calling thread, cheapest
for small calls; ``local-task``: a thread pool, for big kernels).

Arguments are copied into device buffers (never imported zero-copy: IREE's CPU
kernels need 64-byte aligned host memory, NumPy only guarantees 16) and results
are copied back into fresh NumPy arrays. Element types are passed by their bits:
unsigned integers travel as the same-width signless integers the compiled code
uses, and ``bool`` as one byte per element.

How data crosses depends on the device:

* CPU (``local-sync``/``local-task``): inputs by ``allocate_buffer_copy``, results
  mapped (they are host memory) and copied out.
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
}


def device(driver: str = "local-sync"):
    """(VmInstance, HalDevice, hal VmModule) for a HAL driver, created once per process."""
    with _LOCK:
        entry = _DEVICES.get(driver)
        if entry is None:
            try:
                dev = rt.get_driver(driver).create_default_device()
            except (ValueError, RuntimeError) as e:
                from ..errors import TargetError
                raise TargetError(f"cannot open IREE driver {driver!r}: {e}") from None
            inst = rt.VmInstance()
            entry = (inst, dev, rt.create_hal_module(inst, dev))
            _DEVICES[driver] = entry
        return entry


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
_RESULT_TYPE = re.compile(r"%output\d+: tensor<([^>]*)>")
_MLIR_DTYPES = {"i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
                "f16": np.float16, "f32": np.float32, "f64": np.float64}


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
        *dims, elem = m.group(1).split("x")
        out.append((tuple(None if d == "?" else int(d) for d in dims), np.dtype(_MLIR_DTYPES.get(elem, np.uint8))))
    return out


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
        self.context = rt.VmContext(self.instance, modules=[hal, self.vm_module])
        self.signatures = dict(signatures or {})
        self._functions: dict = {}

    @property
    def names(self) -> list:
        return [n for n in self.vm_module.function_names if not n.startswith("__")]

    def upload(self, a: np.ndarray):
        """A device buffer view holding a copy of `a`."""
        if not _mapped_inputs(self.driver, self.device):
            return _buffer_view(self.device, a)
        flat = np.ascontiguousarray(a).reshape(-1)
        buf = self.device.allocator.allocate_buffer(memory_type=_DEVICE_MAPPABLE, allowed_usage=_STORAGE_USAGE,
                                                    allocation_size=max(flat.nbytes, 4))
        if flat.size:
            view = buf.map().asarray(flat.shape, _storage_dtype(flat.dtype))
            view[...] = flat.view(_storage_dtype(flat.dtype))
            del view
        return rt.HalBufferView(buf, list(a.shape), _ELEMENT_TYPES[a.dtype])

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
    """One function of a :class:`Module`; call it with NumPy arrays, get a list of arrays."""

    def __init__(self, module: Module, name: str, vm_fn, in_types=None, out_types=None):
        self.module = module
        self.name = name
        self.vm_fn = vm_fn
        self.in_types = list(in_types) if in_types is not None else None
        self.out_types = list(out_types) if out_types is not None else None
        decl = _declaration(vm_fn)
        self.storage_outputs = _storage_outputs(decl)  # result index of each output-storage argument
        self._declared = _declared_results(decl) if self.storage_outputs else []

    def _result_layouts(self, bindings) -> list:
        """(shape, dtype) of each result before the call (needed to size output storage)."""
        if self.out_types is not None:
            return [(resolve(tuple(t.shape), bindings), np.dtype(t.dtype)) for t in self.out_types]
        if any(d is None for shape, _ in self._declared for d in shape):
            raise CallError(f"{self.name}: results of dynamic shape need the module's signatures "
                            "(Module(..., signatures=...)) to size their buffers")
        return self._declared

    def _check(self, args):
        arrays = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in args]
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
        module = self.module
        arg_list = rt.VmVariantList(len(arrays) + len(self.storage_outputs))
        for a in arrays:
            arg_list.push_ref(module.upload(a))
        if self.storage_outputs:
            layouts = self._result_layouts(bindings)
            for k in self.storage_outputs:
                shape, dtype = layouts[k]
                arg_list.push_ref(module.storage(int(np.prod(shape, dtype=np.int64)) * _storage_dtype(dtype).itemsize))
        n_out = len(self.out_types) if self.out_types is not None else 8
        ret = rt.VmVariantList(n_out)
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


def _buffer_view(dev, a: np.ndarray):
    """A device copy of `a` (any shape, including 0-d and empty)."""
    flat = np.ascontiguousarray(a).reshape(-1) if a.size else np.zeros(1, a.dtype)
    buf = dev.allocator.allocate_buffer_copy(
        memory_type=rt.MemoryType.DEVICE_LOCAL, allowed_usage=rt.BufferUsage.DEFAULT,
        device=dev, buffer=flat)
    return rt.HalBufferView(buf, list(a.shape), _ELEMENT_TYPES[a.dtype])


def _storage_dtype(dtype):
    dtype = np.dtype(dtype)
    return np.dtype(np.uint8) if dtype == np.bool_ else dtype


def _fmt_bindings(bindings):
    return ", ".join(f"{k}={v}" for k, v in sorted(bindings.items()))


def load(vmfb, driver: str = "local-sync", signatures: dict | None = None) -> Module:
    """Load a compiled module (bytes or a path)."""
    return Module(vmfb, driver=driver, signatures=signatures)
