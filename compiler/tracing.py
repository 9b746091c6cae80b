"""Tracing: run a Python function on stand-in arrays and record what it does.

``trace(fn, *args)`` calls ``fn`` with :class:`Tracer` objects in place of its
array arguments. A tracer knows its shape and dtype but not its values; every
operation on it appends an equation to the current :class:`TraceContext`'s
builder and returns a new tracer. The result is a :class:`~vmapc.ir.Function`.

Tracers support Python's operators, indexing, array methods (``x.sum(axis=1)``),
the ``vmapc.numpy`` namespace, and NumPy's own dispatch protocols
(``__array_ufunc__`` and ``__array_function__``), so a function written with plain
``np.`` calls traces unchanged.

What cannot be traced raises an error at the user's line: Python control flow on
a traced value (``if x > 0:``) needs a value that does not exist yet; turning a
tracer into a NumPy array or a Python number likewise. Arrays captured from the
enclosing scope become constants; Python numbers stay "weak" (NEP 50), so
``x * 2.0`` keeps ``x``'s float32.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import threading

import numpy as np

from . import dtypes as dt
from . import pytree
from .errors import (Loc, NotCallableError, TracerBoolConversionError, TracerConversionError, TracingError,
                     UnsupportedError, VmapcError)
from .ir import Builder, Function, TensorType, Var

# Frames in these folders are vmapc's (or NumPy's dispatch machinery), not the user's.
_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP_DIRS = tuple({_HERE, os.path.join(os.path.dirname(_HERE), "rules"),
                    os.path.join(os.path.dirname(_HERE), "runtime"),
                    os.path.dirname(os.path.abspath(np.__file__))})


def register_internal_dir(path: str):
    """Treat frames in `path` as vmapc's own when looking for the user's line."""
    global _SKIP_DIRS
    _SKIP_DIRS = _SKIP_DIRS + (os.path.abspath(path),)


def _is_user_file(fname: str) -> bool:
    return not fname.startswith(_SKIP_DIRS) and not fname.startswith("<frozen")


def user_loc(depth: int = 1) -> Loc | None:
    """The innermost stack frame outside vmapc and NumPy: the user's line."""
    f = sys._getframe(depth)
    while f is not None:
        if _is_user_file(f.f_code.co_filename):
            return Loc(f.f_code.co_filename, f.f_lineno)
        f = f.f_back
    return None


def traceback_loc(tb) -> Loc | None:
    """The innermost user frame of a traceback: the user's line that called into vmapc
    when an exception was raised inside it."""
    found = None
    while tb is not None:
        if _is_user_file(tb.tb_frame.f_code.co_filename):
            found = Loc(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def function_loc(fn) -> Loc | None:
    """Where a Python function is defined (its ``def`` line), if it has code."""
    code = getattr(inspect.unwrap(fn) if callable(fn) else fn, "__code__", None)
    return Loc(code.co_filename, code.co_firstlineno) if code is not None else None


class ShapeDtype:
    """An abstract argument: a shape and a dtype, no data (like ``jax.ShapeDtypeStruct``).

    ``vmapc.f32[8, 4]`` is ``ShapeDtype((8, 4), float32)``; ``vmapc.f32[()]`` is 0-d."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        from .errors import ShapeError
        from .ops import check_size
        self.shape = tuple(int(d) for d in shape)
        try:
            self.dtype = dt.canonical(dtype)
        except VmapcError as err:
            raise err.with_loc(user_loc())
        if any(d < 0 for d in self.shape):
            raise ShapeError(f"negative dimensions are not allowed, got shape {self.shape}", user_loc())
        try:
            check_size(self.shape, self.dtype, "the spec")
        except VmapcError as err:
            raise err.with_loc(user_loc())

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"{dt.short_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    def __eq__(self, other):
        return isinstance(other, ShapeDtype) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))


class DTypeSpecMaker:
    """``vmapc.f32[8, 4]`` makes a ShapeDtype."""

    def __init__(self, dtype):
        self.dtype = dt.canonical(dtype)

    def __getitem__(self, shape):
        if not isinstance(shape, tuple):
            shape = (shape,)
        return ShapeDtype(shape, self.dtype)

    def __repr__(self):
        return f"vmapc.{dt.short_name(self.dtype)}"


_state = threading.local()


def _stack():
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def current() -> "TraceContext | None":
    s = _stack()
    return s[-1] if s else None


def traced_files() -> set:
    """The files of the functions being traced in this thread."""
    return {c.file for c in _stack() if c.file is not None}


class TraceContext:
    """One trace in progress: a builder, and a cache so that a captured array used
    twice becomes one constant."""

    def __init__(self):
        self.builder = Builder(loc_fn=lambda: user_loc())
        self.constants: dict = {}
        self.alive = True
        # A trace started while another runs (vmap inside a traced function) may meet
        # the enclosing trace's tracers through closures: each becomes an extra input
        # of the inner function ("captured"), which the caller binds to the outer value.
        self.parent = current()
        self.captured: dict = {}   # id(outer tracer) -> (outer tracer, inner input var)
        self.file = None           # the traced function's file (see functionalize.allocations)

    def capture(self, t: "Tracer") -> Var:
        hit = self.captured.get(id(t))
        if hit is None:
            hit = self.captured[id(t)] = (t, Var(t.ir_var.type, "captured"))
        return hit[1]

    def encloses(self, other: "TraceContext") -> bool:
        c = self.parent
        while c is not None:
            if c is other:
                return True
            c = c.parent
        return False

    def __enter__(self):
        from .functionalize import allocations
        from .random import guard_enter   # np.random/random calls raise while tracing
        _stack().append(self)
        guard_enter()
        self._allocations = allocations().__enter__()
        return self

    def __exit__(self, *exc):
        from .random import guard_exit
        self._allocations.__exit__(*exc)
        guard_exit()
        _stack().pop()
        self.alive = False

    def constant(self, arr: np.ndarray) -> Var:
        """A captured NumPy array as a constant (splats become a broadcast scalar)."""
        key = id(arr)
        hit = self.constants.get(key)
        if hit is not None and hit[0] is arr:
            return hit[1]
        a = np.asarray(arr)
        d = dt.canonical(a.dtype, "captured array")
        # equal bytes, not equal values: 0.0 and -0.0 differ, NaNs with the same bits agree
        rows = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(a.size, -1) if a.size else a
        if a.size > 1 and (rows == rows[0]).all():
            v = self.builder.full(a.shape, a.reshape(-1)[0], d)
        else:
            v = self.builder.constant(a.astype(d, copy=False))
        if isinstance(arr, np.ndarray):
            self.constants[key] = (arr, v)
        return v


class Tracer:
    """A stand-in for an array while tracing; see the module docstring.

    A tracer can be written into (``x[i] = v``, ``x += y``): the write rebinds it to a new
    IR value, and views of it (basic indexing, ``.T``, ``reshape``...) see the write, as in
    NumPy; see :mod:`vmapc.functionalize`."""

    __slots__ = ("_var", "ctx", "weak", "_root", "_steps", "_gen", "_layout", "_readonly", "_immutable",
                 "_writes")
    __array_priority__ = 1000

    def __init__(self, var: Var, ctx: TraceContext, weak=None):
        self._var = var
        self.ctx = ctx
        # For a traced Python scalar argument: its Python type (bool, int or float).
        # Its dtype then yields to the arrays it meets, as a Python number would (NEP 50).
        self.weak = weak
        # functionalization (vmapc.functionalize): a view's root tracer and the steps that
        # read it from the root, the root's write count when _var was read, the view's
        # stand-in layout; read-only views; NumPy scalars (immutable); a root's past values
        self._root = None
        self._steps = ()
        self._gen = 0
        self._layout = None
        self._readonly = False
        self._immutable = False
        self._writes = None

    @property
    def ir_var(self) -> Var:
        """The IR value the tracer stands for now (a view re-reads its root after a write)."""
        if self._root is not None and self._gen != self._root._gen:
            from .functionalize import refresh
            refresh(self)
        return self._var

    # -- what is known statically --------------------------------------------------------------
    @property
    def shape(self):
        return self._var.shape

    @property
    def dtype(self):
        return self._var.dtype

    @property
    def ndim(self):
        return self._var.rank

    @property
    def size(self):
        return math.prod(self._var.shape)   # Python ints: no int64 overflow

    @property
    def itemsize(self):
        return self._var.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return f"Tracer<{self._var.type}>"

    # -- what is not ---------------------------------------------------------------------------
    def __bool__(self):
        raise TracerBoolConversionError(
            "the truth value of a traced array is not known while tracing, so Python control flow "
            "(if/while/and/or/not) cannot depend on it. Compute both sides and choose with "
            "vmapc.numpy.where(cond, x, y) (np.where traces too), or use vmapc.cond / vmapc.switch "
            "for branches and vmapc.while_loop / fori_loop / scan for loops.", user_loc())

    def _concrete(self, what):
        from .functionalize import storing_into_numpy
        if storing_into_numpy():
            from .errors import WriteError
            raise WriteError(
                "assignment of a traced value (or at a traced index) into a NumPy array that is not "
                "traced: a global, a closure, or an array made by a NumPy function vmapc does not "
                "trace (np.array, np.arange...). vmapc never writes into such arrays. Allocate the "
                "array inside the function with np.zeros/np.empty/np.full/np.*_like, or make a traced "
                "copy there (t = np.zeros_like(a); t[...] = a)", user_loc())
        raise TracerConversionError(
            f"{what} needs a concrete value, but this is a traced array {self.ir_var.type}: its values "
            "exist only when the compiled function runs. Keep it an array (use vmapc.numpy "
            "operations), or pass the value as a Python constant instead of an argument. To index a "
            "NumPy array with a traced index (table[i], np.take(table, i)), which NumPy itself "
            "cannot do, use vmapc.numpy.take(table, i, axis=0).", user_loc())

    def __float__(self):
        self._concrete("float()")

    def __int__(self):
        self._concrete("int()")

    def __complex__(self):
        self._concrete("complex()")

    def __index__(self):
        self._concrete("using a traced array as a Python index or size")

    def item(self, *args):
        self._concrete(".item()")

    def tolist(self):
        self._concrete(".tolist()")

    def __array__(self, dtype=None, copy=None):
        self._concrete("converting to a NumPy array (np.asarray/np.array)")

    def __setitem__(self, key, value):
        from . import numpy as vnp
        vnp._setitem(self, key, value)

    def fill(self, value):
        """``x.fill(v)``: every element set to v."""
        self[...] = value

    # -- NumPy protocols -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import numpy as vnp
        return vnp._dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import numpy as vnp
        return vnp._dispatch_function(func, args, kwargs)

    def __getattr__(self, name):
        # only called for attributes a tracer lacks: name the ndarray method we do not support
        # (attributes that are not methods, such as .strides, stay AttributeErrors for hasattr)
        if not name.startswith("_") and callable(getattr(np.ndarray, name, None)):
            hint = (f" (it {'sorts' if name == 'sort' else 'works'} in place, and traced arrays are immutable; "
                    f"use np.{name}(x))" if name in ("sort", "partition") else "")
            raise UnsupportedError(f"numpy.ndarray.{name} is not supported by vmapc on traced arrays{hint}; "
                                   "see docs/numpy.md for the supported methods", user_loc())
        raise AttributeError(f"'Tracer' object has no attribute {name!r}")


def _is_python_number(x) -> bool:
    """A Python bool/int/float, or a traced one (a weakly typed tracer)."""
    if isinstance(x, Tracer):
        return x.weak is not None
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _python_arithmetic(f, *operands):
    """f(*operands) for a Python operator. Arithmetic on Python numbers gives a Python
    number, so when every operand is one (or a traced one) the result stays weakly typed
    (NEP 50); NumPy functions themselves always return (strongly typed) arrays."""
    r = f(*operands)
    if isinstance(r, Tracer) and all(_is_python_number(o) for o in operands):
        d = r.dtype
        r = Tracer(r.ir_var, r.ctx, weak=bool if d == dt.BOOL else float if dt.is_float(d)
                   else complex if dt.is_complex(d) else int)
    return r


def _install_operators():
    """Python operators and array methods forward to vmapc.numpy."""
    from . import numpy as vnp

    binops = {
        "add": vnp.add, "sub": vnp.subtract, "mul": vnp.multiply, "truediv": vnp.divide,
        "floordiv": vnp.floor_divide, "mod": vnp.remainder, "pow": vnp.power,
        "matmul": vnp.matmul, "and": vnp.bitwise_and, "or": vnp.bitwise_or, "xor": vnp.bitwise_xor,
    }
    for name, f in binops.items():
        setattr(Tracer, f"__{name}__", (lambda f: lambda self, other: _python_arithmetic(f, self, other))(f))
        setattr(Tracer, f"__r{name}__", (lambda f: lambda self, other: _python_arithmetic(f, other, self))(f))
        setattr(Tracer, f"__i{name}__", (lambda f: lambda self, other: vnp._inplace(f, self, other))(f))
    for name, u in {"lshift": np.left_shift, "rshift": np.right_shift}.items():
        # not supported: raises UnsupportedError naming the NumPy function
        setattr(Tracer, f"__{name}__", (lambda u: lambda self, other: vnp._dispatch_ufunc(u, "__call__", (self, other), {}))(u))
        setattr(Tracer, f"__r{name}__", (lambda u: lambda self, other: vnp._dispatch_ufunc(u, "__call__", (other, self), {}))(u))
    Tracer.__divmod__ = lambda self, other: (self // other, self % other)
    Tracer.__rdivmod__ = lambda self, other: (other // self, other % self)
    cmps = {"lt": vnp.less, "le": vnp.less_equal, "gt": vnp.greater, "ge": vnp.greater_equal,
            "eq": vnp.equal, "ne": vnp.not_equal}
    for name, f in cmps.items():
        setattr(Tracer, f"__{name}__", (lambda f: lambda self, other: _python_arithmetic(f, self, other))(f))
    Tracer.__hash__ = object.__hash__
    Tracer.__neg__ = lambda self: _python_arithmetic(vnp.negative, self)
    Tracer.__pos__ = lambda self: _python_arithmetic(vnp.positive, self)
    Tracer.__abs__ = lambda self: _python_arithmetic(vnp.absolute, self)
    Tracer.__invert__ = lambda self: vnp.invert(self)
    Tracer.__getitem__ = lambda self, key: vnp._getitem(self, key)
    Tracer.T = property(lambda self: vnp.transpose(self))
    Tracer.flat = property(lambda self: vnp.writes.FlatIter(self))
    Tracer.mT = property(lambda self: vnp.swapaxes(self, -1, -2))
    Tracer.real = property(lambda self: vnp.real(self))      # values, not writable views
    Tracer.imag = property(lambda self: vnp.imag(self))

    methods = {
        "sum": vnp.sum, "prod": vnp.prod, "mean": vnp.mean, "max": vnp.max, "min": vnp.min,
        "argmax": vnp.argmax, "argmin": vnp.argmin, "any": vnp.any, "all": vnp.all,
        "var": vnp.var, "std": vnp.std, "ptp": vnp.ptp, "clip": vnp.clip, "round": vnp.round,
        "dot": vnp.dot, "squeeze": vnp.squeeze, "swapaxes": vnp.swapaxes, "take": vnp.take,
        "repeat": vnp.repeat, "ravel": vnp.ravel, "flatten": vnp.flatten, "conj": vnp._conj_method,
        "conjugate": vnp._conj_method,
        "copy": vnp.copy, "argsort": vnp.argsort, "argpartition": vnp.argpartition, "cumsum": vnp.cumsum,
        "cumprod": vnp.cumprod, "diagonal": vnp.diagonal, "trace": vnp.trace, "view": vnp._view,
    }
    for name, f in methods.items():
        setattr(Tracer, name, (lambda f: lambda self, *a, **k: f(self, *a, **k))(f))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return vnp.reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return vnp.transpose(self, axes or None)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        if order not in ("K", "A", "C"):
            raise UnsupportedError(f"astype: argument `order`={order!r} is not supported", user_loc())
        if casting != "unsafe":
            raise UnsupportedError(f"astype: argument `casting`={casting!r} is not supported (only "
                                   "the default 'unsafe')", user_loc())
        return vnp.astype(self, dtype)

    Tracer.reshape = reshape
    Tracer.transpose = transpose
    Tracer.astype = astype


# --- trace ---------------------------------------------------------------------------------------

def _arg_names(fn, n):
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            break
    while len(names) < n:
        names.append(f"arg{len(names)}")
    return names[:n]


def abstractify(x, what: str):
    """The (shape, dtype) an argument stands for, or None for a Python scalar (weak)."""
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return None
    if isinstance(x, ShapeDtype):
        return TensorType(x.shape, x.dtype)
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype == object:
            raise TracingError(f"{what} is a NumPy array of dtype object; vmapc needs numeric arrays",
                               user_loc())
        return TensorType(x.shape, dt.canonical(x.dtype, what))
    if isinstance(x, Tracer):
        return x.ir_var.type
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        try:
            return TensorType(tuple(x.shape), dt.canonical(x.dtype, what))
        except TypeError:
            pass
    if isinstance(x, (list, tuple)):
        raise TracingError(f"{what} is a {type(x).__name__}; pass an array (np.asarray(...)) or a spec "
                           "such as vmapc.f32[3]", user_loc())
    hint = " (pass np.complex128(...) for a complex number)" if isinstance(x, complex) else ""
    raise TracingError(f"{what} has type {type(x).__name__}, which is not an array, a shape spec "
                       f"(vmapc.f32[...]) or a Python bool, int or float{hint}", user_loc())


def trace_flat(fn, args, kwargs=None, arg_names=None, name=None, static=None):
    """Trace `fn(*args, **kwargs)`. Each leaf of the arguments is an input, except
    the static ones (``static(leaf)`` true; by default :func:`vmapc.arguments.compile_static`:
    Python ints, bools and non-numbers), which reach `fn` as they are and stay in
    ``in_tree``; outputs that are not arrays or numbers likewise stay in ``out_tree``.

    Returns ``(function, in_tree, out_tree, weak)`` where ``weak[i]`` tells whether
    flat input i is a Python scalar (weakly typed)."""
    from .arguments import compile_static
    kwargs = kwargs or {}
    leaves, in_tree = pytree.flatten((tuple(args), kwargs), static=static or compile_static)
    names = arg_names or _arg_names(fn, len(args))
    leaf_names = []
    for keys in pytree.leaf_keys(in_tree):
        # positional: [0][1][2] -> argname_2 ; keyword: [1]['k'] -> k
        if keys[0] == "[0]" and int(keys[1][1:-1]) < len(names):
            base = [names[int(keys[1][1:-1])]] + keys[2:]
        else:
            base = keys[1:]
        leaf_names.append("_".join(k.strip("[].'\"") for k in base) or "arg")
    with TraceContext() as ctx:
        ctx.file = getattr(getattr(inspect.unwrap(fn), "__code__", None), "co_filename", None)
        in_vars, tracers, weak = [], [], []
        for i, leaf in enumerate(leaves):
            try:
                t = abstractify(leaf, f"argument `{leaf_names[i]}`")
            except VmapcError as err:
                raise err.with_loc(user_loc())
            if t is None:
                kind = bool if isinstance(leaf, bool) else int if isinstance(leaf, int) else float
                v = Var(TensorType((), {bool: dt.BOOL, int: dt.INT64, float: dt.FLOAT64}[kind]))
                in_vars.append(v)
                tracers.append(Tracer(v, ctx, weak=kind))
                weak.append(True)
            else:
                v = Var(t)
                in_vars.append(v)
                # a weak tracer of an enclosing trace (a vmap's unbatched Python float) stays weak
                kind = leaf.weak if isinstance(leaf, Tracer) else None
                tracers.append(Tracer(v, ctx, weak=kind))
                tracers[-1]._immutable = isinstance(leaf, np.generic)   # NumPy scalars: no writes
                weak.append(kind is not None)
        a, k = pytree.unflatten(in_tree, tracers)
        from .random import check_traced_function
        check_traced_function(fn)   # a NumPy Generator named in fn would give constants
        try:
            out = fn(*a, **k)
        except VmapcError as err:
            # an error inside the user's function: point at the user's line that called vmapc
            raise err.with_loc(traceback_loc(err.__traceback__))
        except (TypeError, ValueError) as err:
            # NumPy's ndarray.__setitem__ replaces the error of a tracer it could not convert
            # ("setting an array element with a sequence"): give the user vmapc's
            from .errors import WriteError
            if isinstance(err.__cause__, WriteError):
                raise err.__cause__ from None
            raise
        out_leaves, out_tree = pytree.flatten(out, static=_static_output)
        out_vars = []
        for j, o in enumerate(out_leaves):
            try:
                out_vars.append(to_var(ctx, o, f"output {j}"))
            except VmapcError as err:   # what the function returns: point at the function
                raise err.with_loc(function_loc(fn) or user_loc())
    # the arguments the function wrote into: their final values are extra outputs, which the
    # caller writes back (vmapc.api); f.mutated lists them, f.writes has each one's past values
    mutated = [i for i, (t, v) in enumerate(zip(tracers, in_vars)) if t._var is not v]
    out_vars += [tracers[i]._var for i in mutated]
    captured = [t for t, _ in ctx.captured.values()]
    in_vars += [v for _, v in ctx.captured.values()]
    leaf_names += [f"captured{i}" for i in range(len(captured))]
    f = ctx.builder.build(in_vars, out_vars, name=name or getattr(fn, "__name__", "main"),
                          arg_names=leaf_names)
    f.captured = captured  # outer tracers bound to the trailing inputs (see TraceContext)
    f.mutated = tuple(mutated)
    f.writes = {i: list(tracers[i]._writes) for i in mutated}
    if f.name == "<lambda>" or not f.name.isidentifier():
        f.name = "main"
    f.in_tree, f.out_tree = in_tree, out_tree
    return f, in_tree, out_tree, weak


def _static_output(x) -> bool:
    """An output that is returned as it is (a string, an object): not an array and not
    a Python number (numbers become arrays)."""
    from .arguments import is_array
    from .numpy.writes import Masked, _masked_error
    if isinstance(x, Masked):            # x[mask] returned: an error at the x[mask] line
        _masked_error("a result", x.loc)
    return not is_array(x) and not isinstance(x, (bool, int, float))


def to_var(ctx: TraceContext, x, what: str) -> Var:
    """The IR value for anything a traced function can return or combine."""
    if isinstance(x, Tracer):
        if x.ctx is not ctx and x.ctx.alive and ctx.encloses(x.ctx):
            return ctx.capture(x)
        if x.ctx is not ctx:
            raise TracingError(f"{what} is a tracer from another (finished or outer) trace: a traced "
                               "value escaped its function, for example through a global or a closure",
                               user_loc())
        return x.ir_var
    if isinstance(x, (bool, int, float)):
        return ctx.builder.constant(np.asarray(x))
    if isinstance(x, (np.ndarray, np.generic)):
        return ctx.constant(np.asarray(x))
    refuse = getattr(type(x), "__vmapc_refuse__", None)   # x[mask]: says why it is not an array
    if refuse is not None:
        refuse(x, what)
    raise TracingError(f"{what} has type {type(x).__name__}; a traced function must return arrays "
                       "(or tuples, lists and dicts of arrays)")   # trace_flat adds the function's line


def trace(fn, *args, **kwargs) -> Function:
    """Trace `fn` at the given example arguments (arrays, ``vmapc.f32[...]`` specs,
    Python numbers, or pytrees of these) and return its IR.

    >>> print(vmapc.trace(lambda x, w: np.tanh(x @ w), vmapc.f32[8, 4], vmapc.f32[4, 3]))

    A function that writes into its array arguments (``x[i] = v``, ``x += y``) gets one
    more output per argument it writes, after its own: that argument's final value
    (``fn.mutated`` lists the arguments, by flat index).
    """
    if not callable(fn):
        raise NotCallableError(f"vmapc.trace: expected a function, got {type(fn).__name__}")
    return trace_flat(fn, args, kwargs)[0]
