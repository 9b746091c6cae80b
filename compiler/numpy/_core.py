"""The plumbing every ``vmapc.numpy`` function shares: the dispatch table for NumPy's
``__array_function__``, turning tracers, arrays and Python numbers into IR values, NumPy's
dtype resolution, broadcasting to equal ranks, and axis normalization."""

from __future__ import annotations


import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, OutOfBoundsError, ShapeError, TracingError, UnsupportedError
from ..shapes import broadcast_shapes
from ..tracing import Tracer, current, to_var, user_loc

_HANDLED: dict = {}     # NumPy function object -> implementation here



def _implements(*np_funcs):
    def deco(f):
        for g in np_funcs:
            if g is not None:
                _HANDLED[g] = f
        return f
    return deco


# --- plumbing ------------------------------------------------------------------------------------

def _is_tracer(x):
    return isinstance(x, Tracer)


def _has_tracer(xs):
    for x in xs:
        if isinstance(x, Tracer):
            return True
        if isinstance(x, (list, tuple)) and _has_tracer(x):
            return True
    return False


def _ctx():
    c = current()
    if c is None:
        raise TracingError("vmapc.numpy was given a tracer outside of any trace (a traced value "
                           "escaped its function)", user_loc())
    return c


def _b():
    return _ctx().builder


def _wrap(var):
    return Tracer(var, _ctx())


def _resolve_key(x):
    """What ufunc.resolve_dtypes needs for x: a dtype, or int/float/complex for a weak scalar."""
    if isinstance(x, Tracer):
        if x.weak is not None:
            return dt.BOOL if x.weak is bool else x.weak
        return x.dtype
    if isinstance(x, bool):
        return dt.BOOL
    if isinstance(x, (int, float, complex)) and not isinstance(x, _np.generic):
        return type(x)
    if isinstance(x, (_np.ndarray, _np.generic)):
        return dt.canonical(x.dtype, "array operand")
    if isinstance(x, (list, tuple)):
        return dt.canonical(_np.asarray(x).dtype, "list operand")
    refuse = getattr(type(x), "__vmapc_refuse__", None)   # x[mask]: says why it is not an array
    if refuse is not None:
        refuse(x, "an operation with a traced array")
    raise TracingError(f"cannot use an object of type {type(x).__name__} as an array")


def _result_type(*xs):
    keys = []
    for x in xs:
        k = _resolve_key(x)
        keys.append({int: 0, float: 0.0, complex: 0j}.get(k, k) if isinstance(k, type) else k)
    return dt.canonical(_np.result_type(*keys))


def _var(x, dtype=None):
    """The IR value of x (tracer, array or Python number), converted to dtype."""
    c = _ctx()
    if isinstance(x, Tracer):
        v = to_var(c, x, "operand")
    elif isinstance(x, (bool, int, float, complex)) and not isinstance(x, _np.generic):
        d = dtype if dtype is not None else dt.canonical(_np.asarray(x).dtype)
        try:
            with _np.errstate(over="ignore"):  # 1e10 -> inf in float16, as in NumPy
                arr = _np.asarray(x, dtype=d)
        except OverflowError as err:
            if type(x) is int and d is not None and _np.dtype(d).kind in "iu":
                info = _np.iinfo(d)
                raise DTypeError(f"the Python int {x} does not fit {_np.dtype(d)} ({info.min}..{info.max})",
                                 user_loc()) from None
            raise DTypeError(str(err), user_loc()) from None
        return c.builder.constant(arr)
    else:
        refuse = getattr(type(x), "__vmapc_refuse__", None)
        if refuse is not None:
            refuse(x, "an operation with a traced array")
        a = _np.asarray(x)
        if a.dtype == object:
            raise TracingError("cannot use a NumPy object array in a traced function", user_loc())
        dt.canonical(a.dtype, "array operand")
        v = c.constant(a)
    if dtype is not None:
        v = c.builder.convert(v, dtype)
    return v


def _bcast(vars_):
    """Reshape vars to the common rank (leading 1s); returns them and the result shape."""
    shape = broadcast_shapes(*[v.shape for v in vars_])
    b = _b()
    out = []
    for v in vars_:
        if v.rank < len(shape):
            v = b.reshape(v, (1,) * (len(shape) - v.rank) + v.shape)
        out.append(v)
    return out, shape


def _emit_elementwise(op, vars_):
    try:
        vars_, _ = _bcast(vars_)
    except ValueError as err:
        raise ShapeError(f"{op}: {err}", user_loc()) from None
    return _b().emit(op, *vars_)


def _loops(ufunc, args, dtype=None):
    """NumPy's loop for these operands: (input dtypes, output dtype). ``dtype`` is the
    ufunc's ``dtype=`` argument: it fixes the output dtype, and the inputs must cast to the
    loop's under NumPy's default 'same_kind' rule."""
    keys = tuple(_resolve_key(a) for a in args)
    if all(isinstance(k, type) for k in keys):   # only (traced) Python numbers: int64 / float64 / complex128
        keys = tuple({int: dt.INT64, float: dt.FLOAT64, complex: dt.COMPLEX128}[k] for k in keys)
    kw = {}
    if dtype is not None:
        kw["signature"] = (None,) * ufunc.nin + (dt.canonical(dtype, f"numpy.{ufunc.__name__} dtype"),) * ufunc.nout
    try:
        r = ufunc.resolve_dtypes(keys + (None,) * ufunc.nout, casting="same_kind", **kw)
    except TypeError as err:
        raise DTypeError(f"numpy.{ufunc.__name__}: {err}", user_loc()) from None
    except Exception as err:  # numpy's own UFuncNoLoopError derives from TypeError on new versions
        raise DTypeError(f"numpy.{ufunc.__name__}: {err}", user_loc()) from None
    for d in r:
        dt.canonical(d, f"numpy.{ufunc.__name__}")
    return r[:ufunc.nin], r[ufunc.nin]



def _c(v, value):
    """A 0-d constant of v's dtype, reshaped to v's rank (broadcasts elementwise)."""
    b = _b()
    return b.reshape(b.constant(_np.asarray(value, dtype=v.dtype)), (1,) * v.rank)


def _e(op, *vs):
    return _emit_elementwise(op, list(vs))



def _reject(fname, extra=None, **given):
    """Raise for NumPy arguments vmapc does not implement (out=, where=, order=, ...)."""
    defaults = {"out": None, "where": True, "order": "K", "casting": "same_kind", "subok": True,
                "initial": _np._NoValue, "signature": None}
    for k, v in given.items():
        d = defaults.get(k, None)
        if v is not d and not (isinstance(v, str) and v == d):
            raise UnsupportedError(f"{fname}: argument `{k}` is not supported by vmapc", user_loc())
    for k in (extra or {}):
        raise UnsupportedError(f"{fname}: argument `{k}` is not supported by vmapc", user_loc())


# --- axes -----------------------------------------------------------------------------------------

def _axes(axis, rank, fname, scalar_ok=False):
    """Normalize ``axis`` (None, an int or a sequence of ints; negative counts from the end)
    to a tuple of distinct non-negative axes. ``scalar_ok``: NumPy's ufunc reductions accept
    axis 0 or -1 on a 0-d array, reducing nothing."""
    if axis is None:
        return tuple(range(rank))
    if scalar_ok and rank == 0 and _is_int(axis) and int(axis) in (0, -1):
        return ()
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, Tracer):
            raise TracingError(f"{fname}: axis must be static, got a traced value", user_loc())
        if not _is_int(a):
            raise ShapeError(f"{fname}: axis must be an int or a tuple of ints, got {a!r}", user_loc())
        a = int(a)
        if not -rank <= a < rank:
            raise OutOfBoundsError(f"{fname}: axis {a} is out of bounds for array of dimension {rank}",
                             user_loc())
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{fname}: repeated axis in {axis}", user_loc())
    return tuple(out)


def _axis(axis, rank, fname):
    """One axis (an int), normalized."""
    if isinstance(axis, (list, tuple)):
        raise ShapeError(f"{fname}: axis must be a single int, got {axis!r}", user_loc())
    return _axes(axis, rank, fname)[0]


def _is_int(x):
    return isinstance(x, (int, _np.integer)) and not isinstance(x, (bool, _np.bool_))



def _static_ints(seq, what):
    if isinstance(seq, Tracer):
        raise TracingError(f"{what} must be static Python ints, got a traced value", user_loc())
    out = []
    for s in seq:
        if isinstance(s, Tracer):
            raise TracingError(f"{what} must be static Python ints, got a traced value", user_loc())
        out.append(int(s))
    return tuple(out)


def _strong_dtype(*xs):
    """The result dtype of NumPy functions that turn every operand into an array first
    (dot, einsum, stack...): Python numbers count as float64/int64/bool, not weakly."""
    return dt.canonical(_np.result_type(*[x.dtype if _is_tracer(x) else _np.asarray(x).dtype for x in xs]))
