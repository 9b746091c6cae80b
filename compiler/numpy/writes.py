"""Writes: ``x[key] = v`` (and so ``x[key] += v``), ``ufunc.at``, ``out=``, ``np.copyto``,
``np.put``, ``np.place``, ``np.putmask``, ``np.fill_diagonal`` and ``ndarray.fill``.

Each write computes the array's new value and rebinds the traced array to it
(:mod:`vmapc.functionalize`), so every alias and view sees it, as in NumPy:

* a basic index (ints, slices with steps, ``None``, ``...``, traced scalars) selects a view;
  the value, broadcast and cast to the array's dtype, replaces it: an ``update_slice``
  (or a ``scatter`` for strided windows) into the root array;
* integer-array indices are a ``scatter`` (mode ``set``) into the view the rest of the
  index selects. With repeated indices the last write wins, which is what NumPy does in
  practice, so ``x[[0, 0]] += 1`` (NumPy's buffered read, add, write) adds once;
* ``np.add.at`` and the other unbuffered ``ufunc.at`` are scatters that combine (``add``,
  ``multiply``, ``min``, ``max``; ``subtract`` adds the negated values): repeats
  accumulate, as in NumPy;
* a traced boolean mask, ``x[mask] = v`` and ``x[mask] += v``, is ``where(mask, v, x)``
  (``v`` must be the same for every selected element: its values cannot be matched to
  positions whose number depends on the data).

Casting follows NumPy: assignment casts ``unsafe`` (``x[0] = 2.7`` stores 2 in an int
array; a Python number that does not fit raises :class:`~vmapc.errors.CastError`),
``out=`` of a ufunc and ``copyto`` cast ``same_kind``, ``out=`` of a reduction
``unsafe``.
"""

from __future__ import annotations

import builtins
import functools

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, OutOfBoundsError, ShapeError, UnsupportedError, WriteError
from ..functionalize import assign, check_writable, convert_value, python_value, read_steps, write_steps
from ..shapes import broadcast_shapes
from ..tracing import Tracer, user_loc

from ._core import _b, _has_tracer, _implements, _loops, _var, _wrap

_BROADCAST_INTO = "could not broadcast input array from shape {value} into shape {target}"
_BROADCAST_FANCY = "shape mismatch: value array of shape {value} could not be broadcast to indexing result of " \
                   "shape {target}"


def _target(x, steps):
    """A view of tracer x through `steps`, for writing (vmapc.functionalize.assign)."""
    t = Tracer(read_steps(x.ctx.builder, x.ir_var, steps), x.ctx)
    root = x._root if x._root is not None else x
    t._root, t._steps, t._gen = root, x._steps + tuple(steps), root._gen
    return t


def _writable(x, what):
    if not isinstance(x, Tracer):
        if isinstance(x, _np.ndarray):
            raise WriteError(f"{what}: the target is a NumPy array that is not traced (a global, a "
                             "closure, or an array made by a NumPy function vmapc does not trace, such "
                             "as np.array or np.arange); vmapc never writes into such arrays. Create it "
                             "inside the function with np.zeros/np.empty/np.full/np.*_like, or copy it "
                             "there with vmapc.numpy.array(x)", user_loc())
        raise WriteError(f"{what}: the target is a {type(x).__name__}, not an array", user_loc())
    check_writable(x, what)


def _setitem(x, key, value, mode="set", ufunc=None):
    """``x[key] = value`` (mode "set"), or ``ufunc.at(x, key, value)`` (mode add/multiply/
    min/max, with `ufunc` the NumPy ufunc for basic indices)."""
    from .indexing import _advanced_index, _parse_index
    what = "assignment" if mode == "set" else f"numpy.{ufunc.__name__}.at"
    _writable(x, what)
    plan = _parse_index(x, key, write=True)
    if plan.mask is not None:
        return _mask_write(x, plan.mask, value, mode, ufunc)
    view_steps = plan.steps
    if not plan.adv:
        target = _target(x, view_steps)
        if mode == "set":
            new = convert_value(value, x.dtype, target.shape, _BROADCAST_INTO)
        else:
            new = _combine_basic(ufunc, target, value)
        assign(target, new)
        return
    base = _target(x, view_steps)
    lin, axis, merge = _advanced_index(base.ir_var, plan.adv, plan.key_pos)
    target = _target(base, merge) if merge else base
    cur = target.ir_var
    shape = cur.shape[:axis] + lin.shape + cur.shape[axis + 1:]
    upd = convert_value(value, x.dtype, shape, _BROADCAST_FANCY)
    if mode == "subtract":
        upd = _b().emit("negative", upd) if x.dtype != dt.BOOL else upd
        mode = "add"
    assign(target, _b().emit("scatter", cur, lin, upd, axis=axis, batch_dims=0, mode=mode))


def _combine_basic(ufunc, target, value):
    """ufunc(target, value) cast back (unsafe) to target's dtype, as ufunc.at stores it."""
    r = ufunc(target, value)
    v = _var(r)
    if v.shape != target.shape:
        raise ShapeError(_BROADCAST_INTO.format(value=_fmt(v.shape), target=_fmt(target.shape)), user_loc())
    return _b().convert(v, target.dtype)


def _mask_write(x, mask, value, mode, ufunc):
    """x[..., mask, ...] = value (or ufunc.at with the mask): where(mask, value, x). The value
    must broadcast to the selection without knowing how many elements it has."""
    dim, m = mask
    b = _b()
    cur = x.ir_var
    rest = cur.shape[dim + m.ndim:]
    if isinstance(value, Masked):
        value = value.values_for(mask)
        if mode == "set":
            assign(x, b.emit("select", _full_mask(mask, cur.shape), b.convert(_var(value), x.dtype), cur))
            return
    v = value if isinstance(value, Tracer) else python_value(value, x.dtype)
    vshape = _np.shape(v) if not isinstance(v, Tracer) else v.shape
    # NumPy broadcasts the value to (pre..., count, rest...): only a count dim of 1 fits here
    sel = cur.shape[:dim] + (1,) + rest
    try:
        ok = broadcast_shapes(tuple(vshape), sel) == sel
    except ValueError:
        ok = False
    if not ok:
        raise UnsupportedError(f"assigning an array of shape {_fmt(vshape)} through a traced boolean mask "
                               "needs the number of True elements, which depends on the data; assign a "
                               "value that broadcasts to the selected elements' shape "
                               f"{_fmt(sel[:dim] + sel[dim + 1:])}, or use np.where", user_loc())
    full = cur.shape[:dim] + (1,) * m.ndim + rest
    vv = _var(v)
    vv = b.reshape(vv, (1,) * (len(sel) - vv.rank) + vv.shape)        # (pre, 1, rest)
    vv = b.reshape(vv, vv.shape[:dim] + (1,) * m.ndim + vv.shape[dim + 1:])
    if mode == "set":
        vv = b.convert(vv, x.dtype)
    else:
        vv = _var(_combine_basic(ufunc, x, _wrap(vv)))
    vv = b.broadcast_in_dim(b.convert(vv, x.dtype), cur.shape, tuple(range(len(full))))
    assign(x, b.emit("select", _full_mask(mask, cur.shape), vv, cur))


def _full_mask(mask, shape):
    dim, m = mask
    b = _b()
    mv = b.reshape(_var(m), (1,) * dim + m.shape + (1,) * (len(shape) - dim - m.ndim))
    return b.broadcast_in_dim(mv, tuple(shape), tuple(range(len(shape))))


class Masked:
    """``x[mask]`` for a traced boolean mask: its shape depends on the data, so it is not an
    array; it exists for ``x[mask] += v`` (Python reads it, updates it in place, and
    assigns it back) and ``x[mask] = y[mask]``. It holds a full-shape array whose elements
    at the mask's positions are the selection's; arithmetic with values that broadcast
    to the selection keeps it so. Anything else raises the error indexing with a traced
    mask always raised."""

    def __init__(self, mask, values):
        self.mask = mask          # (dim, traced mask)
        self.values = values      # a tracer of the indexed array's shape
        self.loc = user_loc()     # where x[mask] was written, for the error of a misuse

    def __vmapc_refuse__(self, what):
        _masked_error(what, self.loc)

    def values_for(self, mask):
        if mask[0] != self.mask[0] or not _same_value(mask[1].ir_var, self.mask[1].ir_var):
            _masked_error("a selection by one boolean mask assigned through another")
        return self.values

    def _operand(self, other):
        if isinstance(other, Masked):
            return other.values_for(self.mask)
        dim, m = self.mask
        shape = self.values.shape
        sel = shape[:dim] + (1,) + shape[dim + m.ndim:]
        o = other if isinstance(other, Tracer) else _np.asarray(other) if not isinstance(
            other, (bool, int, float)) else other
        oshape = o.shape if hasattr(o, "shape") else ()
        try:
            ok = broadcast_shapes(tuple(oshape), sel) == sel
        except ValueError:
            ok = False
        if not ok:
            _masked_error(f"combining it with an array of shape {_fmt(oshape)}")
        if not oshape:
            return o
        ov = _var(o)
        ov = _b().reshape(ov, (1,) * (len(sel) - ov.rank) + ov.shape)
        return _wrap(_b().reshape(ov, ov.shape[:dim] + (1,) * m.ndim + ov.shape[dim + 1:]))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs or ufunc.nout != 1:
            _masked_error(f"numpy.{ufunc.__name__}.{method}")
        from .dispatch import _dispatch_ufunc
        ins = [self.values if x is self else self._operand(x) for x in inputs]
        return Masked(self.mask, _dispatch_ufunc(ufunc, "__call__", tuple(ins), {}))

    def __array_function__(self, func, types, args, kwargs):
        _masked_error(f"numpy.{func.__name__}")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        _masked_error(f"its .{name}")

    def __bool__(self):
        _masked_error("its truth value")

    def __len__(self):
        _masked_error("its length")

    def __iter__(self):
        _masked_error("iterating over it")

    def __getitem__(self, key):
        _masked_error("indexing it")

    def __setitem__(self, key, value):
        _masked_error("writing into it (write x[mask] = v instead)")


def _same_value(a, b, depth=6):
    """Whether IR values a and b are computed the same way (``y[y < 0]`` written twice makes
    two masks): the same var, or equations with the same op, attributes and operands."""
    if a is b:
        return True
    if depth == 0 or a.type != b.type:
        return False
    eqns = {id(v): e for e in _b().eqns[::-1] for v in e.outputs}
    ea, eb = eqns.get(id(a)), eqns.get(id(b))
    if ea is None or eb is None or ea.op != eb.op or len(ea.inputs) != len(eb.inputs):
        return False
    if ea.attrs.keys() != eb.attrs.keys() or any(
            not (_np.array_equal(x, y) if isinstance(x, _np.ndarray) else x == y)
            for x, y in ((ea.attrs[k], eb.attrs[k]) for k in ea.attrs)):
        return False
    return all(_same_value(x, y, depth - 1) for x, y in zip(ea.inputs, eb.inputs))


def _masked_op(ufunc, reflected=False):
    def op(self, other):
        return self.__array_ufunc__(ufunc, "__call__", *((other, self) if reflected else (self, other)))
    return op


for _name, _u in {"add": _np.add, "sub": _np.subtract, "mul": _np.multiply, "truediv": _np.true_divide,
                  "floordiv": _np.floor_divide, "mod": _np.remainder, "pow": _np.power,
                  "and": _np.bitwise_and, "or": _np.bitwise_or, "xor": _np.bitwise_xor}.items():
    setattr(Masked, f"__{_name}__", _masked_op(_u))
    setattr(Masked, f"__r{_name}__", _masked_op(_u, reflected=True))
    setattr(Masked, f"__i{_name}__", _masked_op(_u))
for _name, _u in {"lt": _np.less, "le": _np.less_equal, "gt": _np.greater, "ge": _np.greater_equal,
                  "eq": _np.equal, "ne": _np.not_equal}.items():
    setattr(Masked, f"__{_name}__", _masked_op(_u))
Masked.__neg__ = lambda self: self.__array_ufunc__(_np.negative, "__call__", self)
Masked.__abs__ = lambda self: self.__array_ufunc__(_np.absolute, "__call__", self)
Masked.__invert__ = lambda self: self.__array_ufunc__(_np.invert, "__call__", self)
Masked.__hash__ = object.__hash__


def _masked_error(use, loc=None):
    raise UnsupportedError(f"indexing with a boolean mask gives a shape that depends on the data, which "
                           f"cannot be compiled ahead of time; x[mask] can only be assigned to or updated in "
                           f"place (x[mask] = v, x[mask] += v, x[mask] = y[mask]), not used in {use}. Use "
                           "vmapc.numpy.where(mask, x, 0) instead", loc or user_loc())


def getitem_mask(x, mask):
    """``x[mask]`` with a traced boolean mask: a :class:`Masked` selection."""
    return Masked(mask, _wrap(x.ir_var))


def _fmt(shape):
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# --- ufunc.at ------------------------------------------------------------------------------------

_AT_MODES = {"add": "add", "subtract": "subtract", "multiply": "multiply", "minimum": "min",
             "maximum": "max"}


def ufunc_at(ufunc, a, indices, b=None):
    """``ufunc.at(a, indices, b)``: unbuffered, so repeated indices combine every update (in
    the indices' order). Integer-array indices become a scatter; basic ones, which cannot
    repeat, ``a[indices] = ufunc(a[indices], b)``. The values are converted to a's dtype
    first (NumPy computes in the ufunc's loop dtype and casts each result back)."""
    name = ufunc.__name__
    if name not in _AT_MODES:
        raise UnsupportedError(f"numpy.{name}.at is not supported by vmapc (supported: "
                               f"{', '.join('numpy.' + n + '.at' for n in _AT_MODES)})", user_loc())
    if b is None:
        raise UnsupportedError(f"numpy.{name}.at needs the values argument", user_loc())
    _writable(a, f"numpy.{name}.at")
    if a.dtype == dt.BOOL and name == "subtract":
        raise DTypeError("numpy boolean subtract, the `-` operator, is not supported, use the bitwise_xor, "
                         "the `^` operator, or the logical_xor function instead.", user_loc())
    _loops(ufunc, (a, b))   # NumPy's dtype errors (no loop for these dtypes)
    _setitem(a, indices, b, mode=_AT_MODES[name], ufunc=ufunc)


# --- out= ----------------------------------------------------------------------------------------

def write_out(result, out, fname, casting, exact_shape=False):
    """Write `result` into `out` (NumPy's ``out=``), checking the cast under `casting` and the
    shape; returns `out` itself, as NumPy does."""
    if isinstance(out, tuple):
        if len(out) != 1:
            raise UnsupportedError(f"{fname}: out= must be one array, got {len(out)}", user_loc())
        (out,) = out
    _writable(out, f"{fname}: out=")
    r = _var(result)
    if casting != "unsafe" and not _np.can_cast(r.dtype, out.dtype, casting):
        raise DTypeError(f"Cannot cast ufunc '{fname.rpartition('.')[2]}' output from dtype('{r.dtype}') to "
                         f"dtype('{out.dtype}') with casting rule '{casting}'", user_loc())
    if exact_shape and r.shape != out.shape:
        raise ShapeError(f"{fname}: out= has shape {_fmt(out.shape)}, but the result has shape "
                         f"{_fmt(r.shape)}", user_loc())
    try:
        both = broadcast_shapes(r.shape, out.shape)
    except ValueError:
        both = r.shape
    if both != out.shape:
        raise ShapeError(f"non-broadcastable output operand with shape {_fmt(out.shape)} doesn't match the "
                         f"broadcast shape {_fmt(both)}", user_loc())
    assign(out, convert_value(_wrap(r), out.dtype, out.shape, _BROADCAST_INTO))
    return out


def ufunc_out(ufunc, result, out, where):
    """A ufunc's ``out=`` (cast same_kind, broadcast) and ``where=`` (elements where it is
    False keep out's values)."""
    fname = f"numpy.{ufunc.__name__}"
    if isinstance(out, tuple):
        (out,) = out
    if where is True:
        return write_out(result, out, fname, "same_kind")
    _writable(out, f"{fname}: out=")
    old = out.ir_var
    write_out(result, out, fname, "same_kind")
    m = convert_value(where, dt.BOOL, out.shape, "where= of shape {value} does not broadcast to the output's {target}")
    assign(out, _b().emit("select", m, out.ir_var, old))
    return out


def with_out(fname, casting, exact_shape=True):
    """Decorator: NumPy's ``out=`` for a function computing a new array (a reduction, clip,
    take, concatenate...): the result is written into ``out`` and ``out`` returned."""
    def deco(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            out = kwargs.pop("out", None)
            r = f(*args, **kwargs)
            if out is None:
                return r
            if not isinstance(out, Tracer) and not _has_tracer((r,)):   # plain NumPy, no trace
                _np.copyto(out, r, casting=casting)
                return out
            return write_out(r, out, fname, casting, exact_shape)
        return g
    return deco


# --- NumPy's writing functions -------------------------------------------------------------------

def _value_array(v, dtype):
    return v if isinstance(v, Tracer) else _wrap(_var(python_value(v, dtype)))


@_implements(_np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    """dst[...] = src, cast under `casting`; elements where `where` is False keep their values."""
    _writable(dst, "numpy.copyto")
    if casting not in ("no", "equiv", "safe", "same_kind", "unsafe"):
        raise UnsupportedError(f"numpy.copyto: casting={casting!r} is not a casting rule", user_loc())
    python = isinstance(src, (bool, int, float)) and not isinstance(src, _np.generic)
    if casting != "unsafe":
        if python:   # NEP 50: a Python number casts by kind only (bool < int < float)
            sd = _np.dtype({bool: "bool", int: "int64", float: "float64"}[type(src)])
            rank = {bool: 0, int: 1, float: 2}
            ok = rank[type(src)] <= (0 if dst.dtype == dt.BOOL else 2 if dt.is_float(dst.dtype) else 1)
        else:
            sd = src.dtype if isinstance(src, Tracer) else _np.asarray(src).dtype
            ok = _np.can_cast(sd, dst.dtype, casting)
        if not ok:
            raise DTypeError(f"Cannot cast {'scalar' if python else 'array data'} from dtype('{sd}') to "
                             f"dtype('{dst.dtype}') according to the rule '{casting}'", user_loc())
    old = dst.ir_var
    new = convert_value(src, dst.dtype, dst.shape, _BROADCAST_INTO)
    if where is not True:
        m = convert_value(where, dt.BOOL, dst.shape, "where= of shape {value} does not broadcast to {target}")
        new = _b().emit("select", m, new, old)
    assign(dst, new)


def _flat(a):
    return _target(a, [("reshape", (a.size,))])


@_implements(_np.put)
def put(a, ind, v, mode="raise"):
    """a.flat[ind] = v (v repeated to the length of ind); repeated indices: the last wins.
    Static indices out of range raise under mode 'raise'; traced ones are clamped."""
    _writable(a, "numpy.put")
    if mode not in ("raise", "wrap", "clip"):
        raise UnsupportedError(f"numpy.put: mode={mode!r} is not supported", user_loc())
    flat = _flat(a)
    n = a.size
    if isinstance(ind, Tracer):
        if not dt.is_int(ind.dtype):
            raise DTypeError(f"numpy.put: indices must be integers, got {ind.dtype}", user_loc())
        i = _b().reshape(_var(ind), (ind.size,))
    else:
        i = _np.asarray(ind).reshape(-1)
        if i.size and not _np.issubdtype(i.dtype, _np.integer):
            raise DTypeError(f"numpy.put: indices must be integers, got {i.dtype}", user_loc())
        if mode == "raise" and i.size and ((i < -n) | (i >= n)).any():
            bad = i[(i < -n) | (i >= n)][0]
            raise OutOfBoundsError(f"index {bad} is out of bounds for axis 0 with size {n}", user_loc())
        i = _b().constant(i.astype(_np.int64))
    if mode in ("wrap", "clip"):
        from ._core import _c, _e
        i = _b().convert(i, dt.INT64)
        i = _e("remainder", i, _c(i, builtins.max(n, 1))) if mode == "wrap" else \
            _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))
    k = i.shape[0]
    if k == 0:
        return
    vv = _var(_value_array(v, a.dtype))
    vv = _b().reshape(vv, (max(1, int(_np.prod(vv.shape))),)) if vv.rank != 1 else vv
    if vv.shape[0] == 0:
        return
    if vv.shape[0] != k:   # NumPy repeats v to the number of indices
        reps = -(-k // vv.shape[0])
        from .shape import tile
        vv = _var(tile(_wrap(vv), reps))
        vv = _b().emit("slice", vv, start=(0,), limit=(k,), step=(1,))
    vv = _b().convert(vv, a.dtype)
    assign(flat, _b().emit("scatter", flat.ir_var, i, vv, axis=0, batch_dims=0, mode="set"))


@_implements(_np.putmask)
def putmask(a, mask, values):
    """a.flat[n] = values[n % len(values)] wherever mask.flat[n]: positions do not depend on the
    data, so this always compiles."""
    _writable(a, "numpy.putmask")
    m = _var(mask if isinstance(mask, Tracer) else _np.asarray(mask), dt.BOOL)
    if m.shape != a.shape:
        raise ShapeError("putmask: mask and data must be the same size", user_loc())
    vals = _var(_value_array(values, a.dtype))
    n = a.size
    vflat = _b().reshape(vals, (max(1, vals.shape[0] if vals.rank == 1 else int(_np.prod(vals.shape))),))
    if vflat.shape[0] == 0:
        return
    if vflat.shape[0] != n:
        from .shape import tile
        vflat = _var(tile(_wrap(vflat), -(-n // vflat.shape[0])))
        vflat = _b().emit("slice", vflat, start=(0,), limit=(n,), step=(1,))
    tiled = _b().reshape(_b().convert(vflat, a.dtype), a.shape)
    assign(a, _b().emit("select", m, tiled, a.ir_var))


@_implements(_np.place)
def place(arr, mask, vals):
    """arr[mask] = vals, vals repeated as needed: with a static mask (the positions are known)
    or a single value. A traced mask with several values needs each True element's rank,
    which vmapc does not compute."""
    _writable(arr, "numpy.place")
    if isinstance(mask, Tracer):
        vals_a = vals if isinstance(vals, Tracer) else _np.asarray(vals)
        if int(_np.prod(vals_a.shape)) != 1:
            raise UnsupportedError("numpy.place with a traced mask and more than one value needs each "
                                   "selected element's rank among them, which depends on the data; use "
                                   "a single value, or np.putmask (positions by index)", user_loc())
        _setitem(arr, mask.reshape(arr.shape) if mask.shape != arr.shape else mask,
                 vals_a.reshape(()) if not isinstance(vals_a, Tracer) else vals_a.reshape(()))
        return
    m = _np.asarray(mask, bool).reshape(-1)
    if m.size != arr.size:
        raise ShapeError("place: mask and data must be the same size", user_loc())
    pos = _np.nonzero(m)[0]
    if pos.size == 0:
        return
    put(arr, pos, vals, mode="raise")


@_implements(_np.fill_diagonal)
def fill_diagonal(a, val, wrap=False):
    """a's main diagonal set to val (repeated); for a tall 2-d array with wrap=True the
    diagonal restarts below, as in NumPy."""
    _writable(a, "numpy.fill_diagonal")
    if a.ndim < 2:
        raise ShapeError("array must be at least 2-d", user_loc())
    if a.ndim == 2:
        step = a.shape[1] + 1
        end = a.size if wrap else a.shape[1] * a.shape[1]
    else:
        if len(set(a.shape)) != 1:
            raise ShapeError("All dimensions of input must be of equal length", user_loc())
        step = 1 + int(_np.cumprod(a.shape[:-1]).sum())
        end = a.size
    pos = _np.arange(0, builtins.min(end, a.size), step)
    if pos.size:
        put(a, pos, val, mode="raise")


class FlatIter:
    """``x.flat``: reads are copies (as NumPy's flatiter gives), writes go into x."""

    def __init__(self, base):
        self.base = base

    def __getitem__(self, key):
        r = _flat(self.base)[key]
        return r if r._immutable else _wrap(_var(r))

    def __setitem__(self, key, value):
        _setitem(_flat(self.base), key, value)

    def __len__(self):
        return self.base.size


def flatten(a):
    """``x.flatten()``: a copy, never a view."""
    return _wrap(_b().reshape(_var(a), (a.size,)))

