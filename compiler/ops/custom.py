"""Custom ops: ``custom[name, body](*operands)``, an op the user defined.

A custom op (:func:`vmapc.custom_op`) is one equation that carries its **body** as a
sub-program (closed, like a loop body) and its **name**, a string. The body says what the
op computes, so a program that uses custom ops stays self-contained: printed to a ``.vir``
file and read back in a process where the op's Python definition was never imported, it
still evaluates, batches, differentiates and compiles, through its body.

The name is the key of the Python registration (:data:`vmapc.custom.REGISTRY`), which may
attach a batching rule, derivative rules and a lowering of its own. Each interpretation
uses the registration's rule when there is one and the body otherwise (see
:mod:`vmapc.custom`). Type inference is the body's: the operands have its input types and
the results its output types.
"""

from __future__ import annotations

from ..errors import IRError
from .core import define


def _custom_infer(ts, name, body):
    from ..ir import Function
    if not isinstance(name, str) or not name:
        raise IRError(f"custom: name must be a non-empty string, got {name!r}")
    if not isinstance(body, Function):
        raise IRError(f"custom[{name}]: attribute body must be a sub-program, got {type(body).__name__}")
    if body.in_types != list(ts):
        raise IRError(f"custom[{name}]: the body takes ({', '.join(map(str, body.in_types))}) but the "
                      f"operands are ({', '.join(map(str, ts))})")
    return list(body.out_types)


define("custom", "custom", ("name", "body"), _custom_infer, "a user-defined op: its body, or its registered rules")
