"""Lowering: from vmapc IR to one MLIR module of linalg, tensor, arith and math ops.

The IR and MLIR's tensor dialects are close cousins, so lowering is mostly a
matter of choosing, for each op, the MLIR construct that says the same thing.
Almost everything becomes a ``linalg.generic``: a loop nest described by
*indexing maps* (which element of each operand an iteration reads) and a small
*scalar body* (what it computes from those elements). So the work splits in two:

* the **maps** say where data comes from. Broadcasting a size-1 dim is the
  constant 0 in a map, a reduction drops a dim from the output's map, and a
  contraction reads the two operands through different maps. Nothing is copied
  to make operands line up; IREE sees one loop nest per equation and fuses
  neighbouring ones into one kernel;
* the **scalar body** is where the semantics live. ``elementwise._UNARY`` and
  ``_BINARY`` hold one small function per op that emits arith/math ops on scalars of any of
  the real dtypes (``_COMPLEX_UNARY``/``_COMPLEX_BINARY`` the complex ones), following :mod:`vmapc.reference` exactly, including the
  places where the reference departs from raw machine arithmetic (integer
  division by zero gives 0 and is never executed, since x86 ``idiv`` would kill
  the process; float ``floor_divide`` follows NumPy's ``npy_divmod``; ``maximum``
  propagates NaN).

A few ops have a better-fitting construct: contractions that are matmuls after
collapsing contiguous dims become ``linalg.matmul``/``batch_matmul`` (so a batch
folded into the rows is one GEMM), reshapes are ``tensor.collapse_shape`` and
``expand_shape``, slices and concatenations are ``tensor.extract_slice`` and
``insert_slice``, padding is ``tensor.pad``. Gathers (``take``, ``take_along_axis``, ``dynamic_slice``, ``rev``) are
generics over the output whose body computes an index and reads the operand
with ``tensor.extract``; IREE vectorizes those as gathers. Scans (``cumulative``) and
``top_k`` use IREE's own ``iree_linalg_ext.scan`` and ``.topk`` (created by name: the
Python bindings have no builders for that dialect), and ``sort`` is a bitonic network of
generics in a ``scf.for`` loop (``sorting.py`` says why not ``iree_linalg_ext.sort``).

Where IREE 3.13's CPU backend falls short of NumPy's numbers, the scalar bodies
work around it rather than accept a wrong result: sin/cos/tan go through float64
libm (IREE's float32 versions reduce large arguments poorly), float ``power`` is
computed in float64 with C's special cases, ``arctan2`` gets its signed-zero and
infinity cases, float64 ``erf`` is a series (IREE has none), float64 to float16
conversion rounds to odd first (IREE's double rounding and flushing is off by one
ulp), and float16 ops run in float32 with one final rounding, as NumPy's half loops
do. Modules that need libm are linked against the system's (``needs_libm``). One
deviation remains: IREE's CPU runtime flushes float32/float64 subnormals to zero.

Complex numbers are ``complex<f32>``/``complex<f64>`` values of MLIR's ``complex`` dialect,
which IREE expands into float arithmetic. The shared helpers of ``base`` (``add``,
``mul``, ``cmp``, ``select``, ``convert``, ``const``) take them, so reductions,
contractions, selects and conversions need nothing of their own; multiplication is
NumPy's formula, ``select`` and constants go part by part (SPIR-V has neither a
select of complex values nor complex constants), and ``abs``, ``log`` and ``power`` use
vmapc's hypot and atan2 (the dialect's ``log`` of 0 had a NaN imaginary part on the CPU).

Types map directly: ``float16/32/64`` to ``f16/f32/f64``, ``bool`` to ``i1``, and
signed and unsigned integers to the same signless ``iN`` (unsigned-ness lives in
the choice of op: ``divui``, ``cmpi ult``, ``uitofp``...). A symbolic dim such as
``B`` or ``8*B`` is ``?``; its value is read once at function entry with
``tensor.dim`` on an argument that has it.

The table :data:`LOWERINGS` has one rule per op of :data:`vmapc.ops.OPS`, assembled
here from one module per op family (mirroring :mod:`vmapc.rules`): ``elementwise``,
``reduction``, ``contraction``, ``shape``, ``indexing``, ``creation``, ``control`` (``scf``
loops and branches around the sub-programs' kernels), ``sorting``, ``random``. ``base`` holds
the shared helpers (MLIR types, scalar arithmetic, maps, :class:`LoweringContext`) and
``module`` lowers whole functions and modules. A rule is::

    rule(lctx, eqn, operands: list[ir.Value]) -> list[ir.Value]

where ``lctx`` (a :class:`LoweringContext`) offers the shared helpers (types,
dim values, empty tensors, ``generic``). Each rule runs with the equation's
location active, so every MLIR op it creates carries the user's ``file:line``
(wrapped in a name ``"<function>#<k>:<op>"`` that lets a compiler diagnostic be
traced back to the equation).

``lower(functions)`` builds the module in its own ``ir.Context`` (never a
compiler session's, see ``docs/architecture.md``), verifies it, and returns a
:class:`LoweredModule` with the module, its text and its bytecode.
"""

from __future__ import annotations

from . import collective, contraction, control, creation, custom, elementwise, indexing, random, reduction, shape, sorting
from .base import LoweringContext, element_type, tensor_type  # noqa: F401
from .module import LIBM_F64_OPS, LIBM_OPS, LoweredModule, lower, needs_libm  # noqa: F401

LOWERINGS: dict = {}
for _module in (elementwise, reduction, contraction, shape, indexing, creation, control, sorting, random, collective, custom):
    LOWERINGS.update(_module.RULES)
