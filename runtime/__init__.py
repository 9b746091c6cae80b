"""vmapc.runtime: load compiled modules and call them with NumPy arrays.

Imports only ``iree.runtime`` and NumPy, never ``iree.compiler``.
"""

from .module import Function, Module, aligned, aligned_empty, device, load, trim

__all__ = ["Module", "Function", "aligned", "aligned_empty", "device", "load", "trim"]
