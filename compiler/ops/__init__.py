"""The op set: every primitive the IR knows, defined once.

An :class:`Op` has a name, a family, the names of its attributes and a type
inference function ``infer(in_types, **attrs) -> [out_types]`` that also checks its
operands (raising :class:`~vmapc.errors.ShapeError` or
:class:`~vmapc.errors.DTypeError`). Semantics are NumPy's; where NumPy would raise
at run time and compiled code cannot, the op says what it does instead (indexing
clamps, integer division by zero gives 0).

The IR is stricter than NumPy so that each stage stays simple:

* elementwise ops take operands of one dtype and equal rank; a dim of size 1
  broadcasts against any size. ``vmapc.numpy`` adds the reshapes and conversions
  that NumPy's broadcasting and promotion imply;
* reductions drop the reduced axes (``keepdims`` is a reshape afterwards);
* all contractions are ``dot_general`` (as in XLA): output dims are the batch dims,
  then the lhs free dims, then the rhs free dims;
* control flow (``cond``, ``while_loop``, ``scan``) carries its branches and loop bodies
  as sub-programs (attributes that are Functions).

The definitions live in one module per op family (``elementwise``, ``reduction``,
``contraction``, ``shape``, ``indexing``, ``creation``, ``control``, ``sorting``, ``random``, ``collective``, ``custom``), as the interpretations do:
:mod:`vmapc.reference`, :mod:`vmapc.rules` and :mod:`vmapc.lowering` are packages with
the same family modules. ``core`` holds the registry and the shared checks.

Each op has one entry in each interpretation's table: the NumPy reference
(:mod:`vmapc.reference`), the batching rules (:mod:`vmapc.rules`) and the lowering
to MLIR (:mod:`vmapc.lowering`). ``tests/test_op_tables.py`` checks that none is
missing.
"""

from __future__ import annotations

from .core import MAX_BYTES, OPS, Op, check_size, define, infer_types  # noqa: F401
from . import collective, contraction, control, creation, custom, elementwise, indexing, random, reduction, shape, sorting  # noqa: F401,E402  (they define the ops)
from .elementwise import BINARY, UNARY  # noqa: F401,E402
from .reduction import IDENTITY_FREE, REDUCE  # noqa: F401,E402

FAMILIES = sorted({o.family for o in OPS.values()})
