"""The exceptions vmapc raises, one class per stage.

Every error a user can cause is an instance of :class:`VmapcError`. Each stage has
its own subclass, so a caller can catch "anything that went wrong while tracing"
without matching on message text. Most classes also derive from the built-in
exception that Python programmers would expect (``TypeError`` for a wrong type,
``ValueError`` for a wrong value), so existing ``except ValueError`` code keeps
working.

An error raised at or after tracing carries the user's source location (``loc``)
when one is known, and prints it under the message together with the source
line, in the style of a Python traceback::

    vmapc.errors.TracerBoolConversionError: the truth value of a traced array is
    not known while tracing ...
      at model.py:12:  if x.sum() > 0:

The full catalogue, with the input that triggers each error, is in
``docs/errors.md``; ``tests/test_errors.py`` checks every entry.
"""

from __future__ import annotations

import linecache


class Loc:
    """A source location: the user's file and line that created an equation."""

    __slots__ = ("file", "line")

    def __init__(self, file: str, line: int):
        self.file = file
        self.line = int(line)

    def __eq__(self, other):
        return isinstance(other, Loc) and (self.file, self.line) == (other.file, other.line)

    def __hash__(self):
        return hash((self.file, self.line))

    def __repr__(self):
        return f"Loc({self.file!r}, {self.line})"

    def __str__(self):
        return f"{self.file}:{self.line}"

    def source(self) -> str:
        """The text of the line, or '' when the file cannot be read."""
        return linecache.getline(self.file, self.line).strip()


class VmapcError(Exception):
    """Base class of every error vmapc raises for a user mistake or a failed step."""

    def __init__(self, message: str, loc: Loc | None = None):
        self.message = message
        self.loc = loc
        super().__init__(self._render())

    def _render(self) -> str:
        if self.loc is None:
            return self.message
        src = self.loc.source()
        where = f"{self.loc}:  {src}" if src else str(self.loc)
        return f"{self.message}\n  at {where}"

    def with_loc(self, loc: Loc | None):
        """Attach a location if the error has none yet; returns self."""
        if self.loc is None and loc is not None:
            self.loc = loc
            self.args = (self._render(),)
        return self


# --- tracing -----------------------------------------------------------------------------------

class TracingError(VmapcError):
    """Something in the user's function cannot be traced."""


class NotCallableError(TracingError, TypeError):
    """``vmapc.trace``, ``vmapc.vmap`` or ``vmapc.compile`` given something that is not a function."""


class TracerBoolConversionError(TracingError, TypeError):
    """Python control flow (``if``, ``while``, ``and``/``or``) on a traced value."""


class TracerConversionError(TracingError, TypeError):
    """A traced value was turned into a concrete Python or NumPy object
    (``float(x)``, ``int(x)``, ``np.asarray(x)``, ``x.item()``, using it as an index)."""


class UnsupportedError(TracingError, NotImplementedError):
    """A NumPy function, method, argument or dtype that vmapc does not support."""


class ShapeError(TracingError, ValueError):
    """Operands whose shapes do not fit the operation (broadcasting, reshape sizes, axes), or
    a shape too big for compiled code (more than 2**63 - 1 bytes)."""


class OutOfBoundsError(ShapeError, IndexError):
    """A static index or axis outside an array's bounds (``x[7]`` of a 4-vector, ``axis=3``
    of a matrix), where NumPy raises ``IndexError`` or ``AxisError``. (Traced indices
    cannot be checked while tracing: compiled code clamps them, see ``docs/ir.md``.)"""


class DTypeError(TracingError, TypeError):
    """An operation applied to a dtype it does not accept."""


class ControlFlowError(TracingError, TypeError):
    """A branch or loop body that does not fit its control-flow op (``vmapc.cond``,
    ``switch``, ``while_loop``, ``fori_loop``, ``scan``): branches returning different
    structures or types, a body that changes a carry's structure, shape or dtype, a
    predicate or index that is not a 0-d bool or integer."""


class CastError(DTypeError, ValueError):
    """A value written into an array that NumPy refuses to convert to the array's dtype: NaN or
    infinity into an integer array, a Python int out of the dtype's range (NumPy raises
    ``ValueError`` or ``OverflowError``)."""


class WriteError(TracingError, TypeError):
    """A write into something that is not a writable traced array: a Python number or NumPy
    scalar argument, an ``out=`` that is not an array, a NumPy array that lives outside the
    traced function (a global or a closure: vmapc never mutates those), or an array of an
    enclosing trace."""


# --- the IR ------------------------------------------------------------------------------------

class IRError(VmapcError, ValueError):
    """An IR program that does not verify, or IR text that does not parse."""


class IRParseError(IRError):
    """IR text that does not parse (the message gives line and column)."""


# --- batching ----------------------------------------------------------------------------------

class BatchingError(VmapcError, ValueError):
    """Bad ``in_dims``/``out_dims``/``axis_size``, batch sizes that disagree, or an op
    whose rule is missing while the fallback is switched to ``"error"``."""


# --- automatic differentiation ------------------------------------------------------------------

class AutodiffError(VmapcError, TypeError):
    """A function that cannot be differentiated as asked: ``grad`` of a non-scalar or
    integer output, differentiating with respect to an integer argument, ``has_aux``
    without an ``(output, aux)`` pair, tangents or cotangents that do not match their
    values, or reverse mode through ``while_loop``."""


# --- custom ops ---------------------------------------------------------------------------------

class CustomOpError(VmapcError, ValueError):
    """A user-defined op (:func:`vmapc.custom_op`) that is defined or used wrongly, or whose
    batching rule, derivative rule or lowering gave results that do not fit the op (a wrong
    count, shape, dtype or batch dim). The message names the op."""


# --- lowering, compiling, targets --------------------------------------------------------------

class LoweringError(VmapcError):
    """An equation could not be turned into MLIR."""


class CompileError(VmapcError):
    """IREE rejected the generated MLIR. The message names the op and the user's line."""


class TargetError(VmapcError, ValueError):
    """An unknown target, a target that cannot run here, or a dtype the target lacks."""


# --- calling compiled code ---------------------------------------------------------------------

class CallError(VmapcError, TypeError):
    """Arguments that do not fit a compiled function's signature (count, shape, dtype, kind)."""


class ReadOnlyError(VmapcError, ValueError):
    """A write into a read-only array: an argument the function writes into that the caller
    passed read-only, or a read-only view (``np.broadcast_to``) while tracing. NumPy's
    message: "assignment destination is read-only"."""


class ArtifactError(VmapcError, ValueError):
    """A compiled artifact directory or ``.vmfb`` that is missing, corrupt or mismatched."""


class ExecutionError(VmapcError, RuntimeError):
    """Compiled code failed while running: IREE could not allocate memory for a result
    (``RESOURCE_EXHAUSTED``) or the device failed. The message carries IREE's status."""


# --- warnings ----------------------------------------------------------------------------------

class CustomOpWarning(UserWarning):
    """A program uses a custom op whose Python definition is not registered in this process
    (a ``.vir`` file loaded elsewhere): vmapc runs the body the program carries instead of
    the op's own batching rule, derivatives and lowering. Issued once per op name."""


class PerformanceWarning(UserWarning):
    """An op ran through the slow loop-and-stack batching fallback."""


class CacheWarning(UserWarning):
    """A disk-cache entry was corrupt and has been discarded and rebuilt."""
