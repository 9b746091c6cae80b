"""vmapc: a batching compiler for Python.

Write NumPy code for one example; run it over a batch, compiled ahead of time by
IREE for the CPU, Vulkan or CUDA::

    import numpy as np, vmapc

    def predict(x, w1, w2):              # one example: x is a vector
        return np.tanh(x @ w1) @ w2

    batched = vmapc.compile(predict, in_dims=(0, None, None))
    y = batched(xs, w1, w2)              # xs: a batch of vectors

The pipeline, each stage inspectable:

* :func:`trace` turns a Python function into IR (:mod:`vmapc.ir`, printed by
  :mod:`vmapc.text`, parsed back by :func:`parse`);
* :func:`vmap` batches it by rewriting the IR with per-op rules (:mod:`vmapc.rules`);
  a named batch axis (``axis_name=``) gives the function collectives over the batch
  (:func:`psum`, :func:`pmean`, :func:`pmax`, :func:`pmin`, :func:`all_gather`,
  :func:`axis_index`; :mod:`vmapc.collective`);
* :func:`compile` lowers it to MLIR (:mod:`vmapc.lowering`), compiles it with IREE
  (:mod:`vmapc.driver`) and runs it (:mod:`vmapc.runtime`);
* :func:`eval` runs any IR on the NumPy reference evaluator.

Structured control flow (:mod:`vmapc.control`): :func:`cond`, :func:`switch`,
:func:`while_loop`, :func:`fori_loop`, :func:`scan` and :func:`map` trace branches and
loop bodies as sub-programs, which ``vmap`` batches and the compiler lowers to loops.

Automatic differentiation (:mod:`vmapc.autodiff`) is one more IR rewrite that composes
with all of these: :func:`grad`, :func:`value_and_grad`, :func:`vjp`, :func:`jvp`,
:func:`jacrev`, :func:`jacfwd`, :func:`hessian` and :func:`stop_gradient`.
"""

from . import dtypes, errors, pytree, shapes
from .errors import (ArtifactError, AutodiffError, BatchingError, CallError, CompileError, LoweringError, NotCallableError,
                     PerformanceWarning, TargetError, TracingError, UnsupportedError, VmapcError)
from .ir import Function, TensorType
from .reference import evaluate as eval  # noqa: A001
from .shapes import Sym
from .text import parse
from .tracing import DTypeSpecMaker, ShapeDtype, _install_operators, trace
from . import numpy  # noqa: E402  (after tracing: it registers the tracer's operators)
from . import random  # noqa: E402  (vmapc.random: keys and draws)
from .vmap import vmap, Vmapped
from .control import cond, fori_loop, map, scan, switch, while_loop  # noqa: A004  (vmapc.map, as jax.lax.map)
from .collective import all_gather, axis_index, axis_size, pmax, pmean, pmin, psum
from .autodiff import grad, hessian, jacfwd, jacrev, jvp, stop_gradient, value_and_grad, vjp
# Eager, so that `vmapc.export` is the function, not its submodule (it imports no IREE).
from .export import export
from .custom import custom_op

_install_operators()

__version__ = "0.1.0"

# Shape specs: vmapc.f32[8, 4] is a float32 array of shape (8, 4).
bool_ = DTypeSpecMaker("bool")
i8, i16, i32, i64 = (DTypeSpecMaker(t) for t in ("int8", "int16", "int32", "int64"))
u8, u16, u32, u64 = (DTypeSpecMaker(t) for t in ("uint8", "uint16", "uint32", "uint64"))
f16, f32, f64 = (DTypeSpecMaker(t) for t in ("float16", "float32", "float64"))
c64, c128 = DTypeSpecMaker("complex64"), DTypeSpecMaker("complex128")


def __getattr__(name):
    # The compiler-facing API imports IREE's compiler lazily, so that `import vmapc`
    # stays cheap and `vmapc.runtime` works where only iree-base-runtime is installed.
    if name in ("compile", "Compiled", "Lowered"):
        from . import api
        return getattr(api, name)
    if name in ("load",):
        from .runtime.artifact import load
        return load
    if name in ("targets",):
        from .targets import targets
        return targets
    if name in ("target", "Target"):
        from . import targets as _targets
        return getattr(_targets, name)
    raise AttributeError(f"module 'vmapc' has no attribute {name!r}")
