"""vmapc.runtime: load compiled modules and call them with NumPy arrays.

Imports only ``iree.runtime`` and NumPy, never ``iree.compiler``.
"""

from .module import Function, Module, device, load

__all__ = ["Module", "Function", "device", "load"]
