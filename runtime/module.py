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
"""

from __future__ import annotations

import os
import threading

import numpy as np
from iree import runtime as rt

from ..errors import ArtifactError, CallError
from ..shapes import bind

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
        arrays, _ = self._check(args)
        dev = self.module.device
        arg_list = rt.VmVariantList(len(arrays))
        for a in arrays:
            arg_list.push_ref(_buffer_view(dev, a))
        n_out = len(self.out_types) if self.out_types is not None else 8
        ret = rt.VmVariantList(n_out)
        self.module.context.invoke(self.vm_fn, arg_list, ret)
        outs = []
        for i in range(len(ret)):
            bv = ret.get_as_object(i, rt.HalBufferView)
            shape = tuple(bv.shape)
            if self.out_types is not None:
                dtype = np.dtype(self.out_types[i].dtype)
            else:
                dtype = np.dtype(rt.HalElementType.map_to_dtype(bv.element_type))
            if 0 in shape:
                outs.append(np.zeros(shape, dtype))
                continue
            host = bv.map().asarray(shape, _storage_dtype(dtype))
            outs.append(np.array(host, copy=True).view(dtype))
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
    return np.dtype(np.uint8) if dtype == np.bool_ else dtype


def _fmt_bindings(bindings):
    return ", ".join(f"{k}={v}" for k, v in sorted(bindings.items()))


def load(vmfb, driver: str = "local-sync", signatures: dict | None = None) -> Module:
    """Load a compiled module (bytes or a path)."""
    return Module(vmfb, driver=driver, signatures=signatures)
