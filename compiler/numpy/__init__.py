"""``vmapc.numpy``: NumPy's API over traced arrays.

Each function here accepts tracers, NumPy arrays and Python numbers. With no
tracer among its arguments it simply calls NumPy, so ``vmapc.numpy`` also works
as plain NumPy on concrete data; with a tracer it emits IR. The same functions
serve NumPy's dispatch protocols, so ``np.sum(tracer, axis=1)`` and
``vmapc.numpy.sum(tracer, axis=1)`` record the same equations.

NumPy's semantics are the spec: broadcasting, dtype promotion (NumPy 2 / NEP 50,
decided by asking NumPy itself through ``ufunc.resolve_dtypes`` and
``np.result_type``), negative axes, ``keepdims``. Python numbers, and traced ones
(a weak tracer), take part weakly where NumPy lets them (ufuncs, ``where``, ``clip``)
and as float64/int64/bool arrays where NumPy converts them (``dot``, ``einsum``,
``stack``...); what these functions return is an array, strongly typed, as in NumPy.
Where the IR is stricter than NumPy (equal ranks, one dtype per op), this layer
inserts the reshapes and conversions. A few functions NumPy lacks are provided because models need them:
``sigmoid``, ``erf``, ``rsqrt``, ``logsumexp``, ``softmax``, ``log_softmax``,
``dynamic_slice`` and ``top_k``.

The functions live in one module per family, as the op families of :mod:`vmapc.rules`
and :mod:`vmapc.lowering` do: ``ufuncs`` (elementwise), ``reductions``, ``cumulative``
(scans and differences), ``contractions``, ``shape``, ``indexing``, ``creation``,
``sorting``, ``matrices`` (diagonals, triangles, cross products), ``statistics`` (cov,
histograms), ``misc`` and ``linalg`` (``vmapc.numpy.linalg``);
``_core`` holds the plumbing they share and ``dispatch`` NumPy's protocols.

Anything else raises :class:`~vmapc.errors.UnsupportedError` naming the function
or argument. Functions whose result shape depends on data (``nonzero``, boolean
masks, ``unique``) cannot be compiled ahead of time and say so.
"""

from __future__ import annotations

import numpy as _np

from . import linalg  # noqa: F401  (vmapc.numpy.linalg)
from ._core import _HANDLED, _implements  # noqa: F401
from .contractions import *  # noqa: F401,F403
from .creation import *  # noqa: F401,F403
from .cumulative import *  # noqa: F401,F403
from .matrices import *  # noqa: F401,F403
from .dispatch import _dispatch_function, _dispatch_ufunc, supported_functions  # noqa: F401
from .indexing import *  # noqa: F401,F403
from .indexing import _getitem  # noqa: F401
from .misc import *  # noqa: F401,F403
from .reductions import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .statistics import *  # noqa: F401,F403
from .ufuncs import *  # noqa: F401,F403
from .ufuncs import _SUPPORTED_UFUNCS, _conj_method, _inplace, _view  # noqa: F401
from .writes import _setitem, copyto, fill_diagonal, flatten, place, put, putmask  # noqa: F401

# dtypes, so that `import vmapc.numpy as np` code can say np.float32
bool_ = _np.bool_
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint16, uint32, uint64 = _np.uint8, _np.uint16, _np.uint32, _np.uint64
float16, float32, float64 = _np.float16, _np.float32, _np.float64
complex64, complex128 = _np.complex64, _np.complex128
pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, None
dtype = _np.dtype

# The public API (``from vmapc.numpy import *``, docs/numpy.md): NumPy's names, the dtypes
# and constants, and vmapc's extensions; not the modules and helpers the family modules import.
_INTERNAL = {"annotations", "Tracer", "DTypeError", "OutOfBoundsError", "ShapeError", "TracingError", "UnsupportedError",
             "broadcast_shapes", "current", "to_var", "user_loc", "dt", "builtins", "inspect", "math", "operator",
             "string", "view", "with_out", "numpy_original"}
__all__ = sorted(n for n, v in globals().items()
                 if not n.startswith("_") and n not in _INTERNAL and not isinstance(v, type(_np)))
__all__.append("linalg")
__all__.sort()
