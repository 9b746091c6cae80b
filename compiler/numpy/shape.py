"""Shape functions: reshape, transpose and axis moves, squeeze/expand, broadcasting,
concatenation and stacking, splits, flips, roll, tile, repeat, pad.

Where NumPy returns a view (transpose and the axis moves, squeeze/expand_dims, flips,
splits, ``broadcast_to`` read-only, and ``reshape``/``ravel`` when the layout allows), so
does this module: a write through the result changes the array it came from
(:mod:`vmapc.functionalize`); everything else gives a new array."""

from __future__ import annotations

import builtins

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, TracingError, UnsupportedError
from ..shapes import broadcast_shapes
from ..tracing import user_loc

from ..functionalize import view
from .writes import with_out
from ._core import _axes, _axis, _b, _has_tracer, _implements, _is_int, _is_tracer, _reject, _static_ints, _strong_dtype, _var, _wrap

# --- shape functions -----------------------------------------------------------------------------


@_implements(_np.reshape)
def reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    """Row-major reshape; one entry may be -1."""
    if shape is None:
        shape = newshape
    if order != "C":
        raise UnsupportedError(f"numpy.reshape: order={order!r} is not supported (only 'C')", user_loc())
    if not _is_tracer(a):
        return _np.reshape(a, shape)
    if isinstance(shape, (int, _np.integer)):
        shape = (shape,)
    shape = list(_static_ints(shape, "reshape sizes"))
    if shape.count(-1) > 1:
        raise ShapeError("can only specify one unknown dimension", user_loc())
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or a.size % known:
            raise ShapeError(f"cannot reshape array of size {a.size} into shape {tuple(shape)}", user_loc())
        shape[shape.index(-1)] = a.size // known
    if a.size != int(_np.prod(shape, dtype=_np.int64)):
        raise ShapeError(f"cannot reshape array of size {a.size} into shape {tuple(shape)}", user_loc())
    if copy:
        return _wrap(_b().reshape(_var(a), tuple(shape)))
    r = view(a, ("reshape", tuple(shape)))
    if copy is False and r._root is None:
        raise ShapeError("Unable to avoid creating a copy while reshaping.", user_loc())
    return r


@_implements(_np.ravel)
def ravel(a, order="C"):
    if order != "C":
        raise UnsupportedError(f"numpy.ravel: order={order!r} is not supported (only 'C')", user_loc())
    if not _is_tracer(a):
        return _np.ravel(a)
    return reshape(a, (-1,))


@_implements(_np.transpose, getattr(_np, "permute_dims", None))
def transpose(a, axes=None):
    """Permute axes (reverse them when axes is None)."""
    if not _is_tracer(a):
        return _np.transpose(a, axes)
    perm = tuple(reversed(range(a.ndim))) if axes is None else _axes(tuple(axes), a.ndim, "numpy.transpose")
    if len(perm) != a.ndim:
        raise ShapeError("transpose: axes don't match array", user_loc())
    return view(a, ("transpose", perm))


permute_dims = transpose


@_implements(_np.moveaxis)
def moveaxis(a, source, destination):
    if not _is_tracer(a):
        return _np.moveaxis(a, source, destination)
    src = _axes(source, a.ndim, "numpy.moveaxis")
    dst = _axes(destination, a.ndim, "numpy.moveaxis")
    if len(src) != len(dst):
        raise ShapeError("moveaxis: `source` and `destination` arguments must have the same number "
                         "of elements", user_loc())
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@_implements(_np.swapaxes)
def swapaxes(a, axis1, axis2):
    if not _is_tracer(a):
        return _np.swapaxes(a, axis1, axis2)
    i, j = _axis(axis1, a.ndim, "numpy.swapaxes"), _axis(axis2, a.ndim, "numpy.swapaxes")
    perm = list(range(a.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


@_implements(_np.expand_dims)
def expand_dims(a, axis):
    if not _is_tracer(a):
        return _np.expand_dims(a, axis)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out_rank = a.ndim + len(axes)
    axes = _axes(tuple(axes), out_rank, "numpy.expand_dims")
    it = iter(a.shape)
    shape = tuple(1 if i in axes else next(it) for i in range(out_rank))
    return view(a, ("reshape", shape))


@_implements(_np.squeeze)
def squeeze(a, axis=None):
    if not _is_tracer(a):
        return _np.squeeze(a, axis)
    if axis is None:
        axes = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = _axes(axis, a.ndim, "numpy.squeeze")
        for ax in axes:
            if a.shape[ax] != 1:
                raise ShapeError("cannot select an axis to squeeze out which has size not equal to one",
                                 user_loc())
    shape = tuple(d for i, d in enumerate(a.shape) if i not in axes)
    return view(a, ("reshape", shape))


@_implements(_np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    """Broadcast to shape (NumPy's rules)."""
    if not _is_tracer(array):
        return _np.broadcast_to(array, shape)
    shape = (shape,) if isinstance(shape, (int, _np.integer)) else _static_ints(shape, "broadcast_to shape")
    x = _var(array)
    if x.rank > len(shape):
        raise ShapeError(f"cannot broadcast a rank-{x.rank} array to shape {shape}", user_loc())
    off = len(shape) - x.rank
    for i, d in enumerate(x.shape):
        if d != 1 and d != shape[off + i]:
            raise ShapeError(f"operands could not be broadcast together with remapped shapes "
                             f"[original->remapped]: {tuple(x.shape)} and requested shape {tuple(shape)}",
                             user_loc())
    r = _wrap(_b().broadcast_in_dim(x, tuple(shape), tuple(range(off, len(shape)))))
    r._readonly = True     # NumPy's broadcast_to gives a read-only view
    return r


@_implements(_np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    if not _has_tracer(args):
        return _np.broadcast_arrays(*args)
    try:
        shape = broadcast_shapes(*[_np.shape(a) if not _is_tracer(a) else a.shape for a in args])
    except ValueError as err:
        raise ShapeError(str(err), user_loc()) from None
    return tuple(broadcast_to(a if _is_tracer(a) else _wrap(_var(a)), shape) for a in args)


@_implements(_np.shape)
def shape(a):
    return a.shape if _is_tracer(a) else _np.shape(a)


@_implements(_np.ndim)
def ndim(a):
    return a.ndim if _is_tracer(a) else _np.ndim(a)


@_implements(_np.size)
def size(a, axis=None):
    if not _is_tracer(a):
        return _np.size(a, axis)
    return a.size if axis is None else a.shape[axis]


@_implements(_np.concatenate, getattr(_np, "concat", None))
@with_out("numpy.concatenate", "same_kind")
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """Join arrays along an existing axis (axis=None flattens them first)."""
    _reject("numpy.concatenate", out=out, casting=casting)
    arrays = list(arrays)
    if not _has_tracer(arrays):
        return _np.concatenate(arrays, axis=axis, dtype=dtype)
    if axis is None:
        arrays = [ravel(a) if _is_tracer(a) else _np.ravel(a) for a in arrays]
        axis = 0
    d = dt.canonical(dtype) if dtype is not None else _strong_dtype(*arrays)
    vars_ = [_var(a, d) for a in arrays]
    ranks = {v.rank for v in vars_}
    if 0 in ranks:
        raise ShapeError("zero-dimensional arrays cannot be concatenated", user_loc())
    if len(ranks) != 1:
        raise ShapeError("all the input arrays must have same number of dimensions, got ranks "
                         f"{[v.rank for v in vars_]}", user_loc())
    ax = _axis(axis, vars_[0].rank, "numpy.concatenate")
    return _wrap(_b().emit("concatenate", *vars_, axis=ax))


concat = concatenate


@_implements(_np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays along a new axis."""
    _reject("numpy.stack", out=out, casting=casting)
    arrays = list(arrays)
    if not _has_tracer(arrays):
        return _np.stack(arrays, axis=axis, dtype=dtype)
    if not arrays:
        raise ShapeError("need at least one array to stack", user_loc())
    shapes = {tuple(_np.shape(a)) if not _is_tracer(a) else a.shape for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f"all input arrays must have the same shape, got {sorted(shapes)}", user_loc())
    rank = len(next(iter(shapes))) + 1
    ax = _axis(axis, rank, "numpy.stack")
    return concatenate([expand_dims(a if _is_tracer(a) else _wrap(_var(a)), ax) for a in arrays],
                       axis=ax, dtype=dtype)


@_implements(_np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    _reject("numpy.hstack", casting=casting)
    tup = list(tup)
    if not _has_tracer(tup):
        return _np.hstack(tup, dtype=dtype)
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if arrs[0].ndim == 1 else 1, dtype=dtype)


@_implements(_np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    _reject("numpy.vstack", casting=casting)
    tup = list(tup)
    if not _has_tracer(tup):
        return _np.vstack(tup, dtype=dtype)
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@_implements(_np.atleast_1d)
def atleast_1d(*arys):
    if len(arys) != 1:
        return tuple(atleast_1d(a) for a in arys)
    a = arys[0]
    if not _is_tracer(a):
        return _np.atleast_1d(a)
    return reshape(a, (1,)) if a.ndim == 0 else a


@_implements(_np.atleast_2d)
def atleast_2d(*arys):
    if len(arys) != 1:
        return tuple(atleast_2d(a) for a in arys)
    a = arys[0]
    if not _is_tracer(a):
        return _np.atleast_2d(a)
    return reshape(a, (1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a


def _split(fname, ary, indices_or_sections, axis, equal):
    """Slices of ary between static split points (NumPy's split and array_split)."""
    ax = _axis(axis, ary.ndim, fname)
    n = ary.shape[ax]
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ShapeError("number sections must be larger than 0.", user_loc())
        if equal and n % k:
            raise ShapeError("array split does not result in an equal division", user_loc())
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = [builtins.sum(sizes[:i]) for i in range(k + 1)]
    else:
        # each split point is a Python slice bound: negative counts from the end, clamped
        idx = [slice(int(i), None).indices(n)[0] for i in _static_ints(indices_or_sections, "split indices")]
        bounds = [0] + idx + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        start, limit = [0] * ary.ndim, list(ary.shape)
        start[ax], limit[ax] = lo, builtins.max(lo, hi)
        out.append(view(ary, ("slice", tuple(start), tuple(limit), (1,) * ary.ndim)))
    return out


@_implements(_np.split)
def split(ary, indices_or_sections, axis=0):
    """Split into equal sections (an int that divides the axis) or at static indices."""
    if not _is_tracer(ary):
        return _np.split(ary, indices_or_sections, axis)
    return _split("numpy.split", ary, indices_or_sections, axis, equal=True)


@_implements(_np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """Split into sections whose sizes differ by at most one (the first ones larger), or at
    static indices."""
    if not _is_tracer(ary):
        return _np.array_split(ary, indices_or_sections, axis)
    return _split("numpy.array_split", ary, indices_or_sections, axis, equal=False)


@_implements(_np.flip)
def flip(m, axis=None):
    if not _is_tracer(m):
        return _np.flip(m, axis)
    axes = _axes(axis, m.ndim, "numpy.flip")
    return view(m, ("rev", tuple(sorted(axes))))


@_implements(_np.fliplr)
def fliplr(m):
    return flip(m, 1) if _is_tracer(m) else _np.fliplr(m)


@_implements(_np.flipud)
def flipud(m):
    return flip(m, 0) if _is_tracer(m) else _np.flipud(m)


@_implements(_np.roll)
def roll(a, shift, axis=None):
    """Roll by static shifts (two slices and a concatenate per axis). ``shift`` and ``axis``
    may be sequences; they broadcast against each other as in NumPy."""
    if not _is_tracer(a):
        return _np.roll(a, shift, axis)
    if _has_tracer((shift,)):
        raise TracingError("numpy.roll: shift must be static Python ints; for a traced shift use "
                           "vmapc.numpy.dynamic_slice on np.concatenate([x, x])", user_loc())
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    try:
        pairs = _np.broadcast(_np.asarray(shift), _np.asarray(axis))
    except ValueError as err:
        raise ShapeError(f"numpy.roll: {err}", user_loc()) from None
    if pairs.ndim > 1:
        raise ShapeError("'shift' and 'axis' should be scalars or 1D sequences", user_loc())
    r = a
    for s, ax in pairs:
        ax = _axis(ax, a.ndim, "numpy.roll")
        n = a.shape[ax]
        s = int(s) % n if n else 0
        if s:
            hi, lo = split(r, [n - s], axis=ax)
            r = concatenate([lo, hi], axis=ax)
    return r if r is not a else _wrap(_var(a))     # a new array, also when nothing moves


@_implements(_np.tile)
def tile(A, reps):
    """Repeat the whole array ``reps`` times along each axis (static counts)."""
    if not _is_tracer(A):
        return _np.tile(A, reps)
    reps = (reps,) if isinstance(reps, (int, _np.integer)) else _static_ints(reps, "tile reps")
    x = _var(A)
    rank = builtins.max(len(reps), x.rank)
    reps = (1,) * (rank - len(reps)) + tuple(reps)
    shape = (1,) * (rank - x.rank) + x.shape
    bld = _b()
    # broadcast to (r0, s0, r1, s1, ...) then merge pairs
    inter = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    y = bld.broadcast_in_dim(bld.reshape(x, shape), inter, tuple(range(1, 2 * rank, 2)))
    return _wrap(bld.reshape(y, tuple(r * s for r, s in zip(reps, shape))))


@_implements(_np.repeat)
def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times (a static int, or static per-element counts)."""
    if not _is_tracer(a):
        return _np.repeat(a, repeats, axis)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "numpy.repeat")
    if _has_tracer((repeats,)):
        raise TracingError("numpy.repeat: repeats must be static (the result shape depends on it)",
                           user_loc())
    reps = _np.asarray(repeats)
    if reps.size == 0:
        reps = reps.astype(_np.int64)
    if not _np.can_cast(reps.dtype, _np.int64, "safe"):
        raise DTypeError(f"numpy.repeat: repeats must be integers, got {reps.dtype}", user_loc())
    if (reps < 0).any():
        raise ShapeError("numpy.repeat: negative dimensions are not allowed", user_loc())
    if reps.ndim == 0 or reps.size == 1:
        r = int(reps.reshape(-1)[0])
        x = _var(a)
        bld = _b()
        inter = x.shape[:ax + 1] + (r,) + x.shape[ax + 1:]
        y = bld.broadcast_in_dim(x, inter, tuple(i for i in range(len(inter)) if i != ax + 1))
        return _wrap(bld.reshape(y, x.shape[:ax] + (x.shape[ax] * r,) + x.shape[ax + 1:]))
    if reps.shape != (a.shape[ax],):
        raise ShapeError(f"numpy.repeat: repeats has shape {reps.shape}, expected ({a.shape[ax]},)", user_loc())
    idx = _np.repeat(_np.arange(a.shape[ax]), reps)
    from .indexing import take   # indexing builds on this module
    return take(a, idx, axis=ax)


@_implements(_np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """Constant padding (``mode='constant'``, the default). ``constant_values`` is a scalar
    (static or traced) or static (before, after) values per axis; as in NumPy the axes are
    padded in order, so a corner takes the value of the last axis."""
    if not _is_tracer(array):
        return _np.pad(array, pad_width, mode, **kwargs)
    if mode != "constant":
        raise UnsupportedError(f"numpy.pad: mode={mode!r} is not supported (only 'constant')", user_loc())
    cv = kwargs.pop("constant_values", 0)
    if kwargs:
        raise UnsupportedError(f"numpy.pad: argument `{next(iter(kwargs))}` is not supported", user_loc())
    if _has_tracer((pad_width,)):
        raise TracingError("numpy.pad: pad_width must be static ints (it sets the result shape)", user_loc())
    rank = array.ndim
    try:
        pw = _np.broadcast_to(_np.asarray(pad_width), (rank, 2))
        values = _np.broadcast_to(_np.asarray(cv), (rank, 2)) if not _is_tracer(cv) else None
    except ValueError as err:
        raise ShapeError(f"numpy.pad: {err}", user_loc()) from None
    if not _np.issubdtype(pw.dtype, _np.integer) and pw.size:
        raise DTypeError("`pad_width` must be of integral type.", user_loc())
    if (pw < 0).any():
        raise ShapeError("index can't contain negative values", user_loc())
    bld = _b()
    x = _var(array)
    if _is_tracer(cv):
        if cv.size != 1:
            raise UnsupportedError("numpy.pad: a traced constant_values must be a single value", user_loc())
        v = bld.reshape(_var(cv, x.dtype), ())
        return _wrap(bld.emit("pad", x, v, lo=tuple(int(p) for p in pw[:, 0]), hi=tuple(int(p) for p in pw[:, 1])))
    values = values.astype(x.dtype)  # NumPy assigns them into the result: an unsafe cast
    if not rank or (values == values.flat[0]).all():
        v = bld.constant(values.reshape(-1)[:1].reshape(()) if rank else _np.zeros((), x.dtype))
        return _wrap(bld.emit("pad", x, v, lo=tuple(int(p) for p in pw[:, 0]), hi=tuple(int(p) for p in pw[:, 1])))
    for ax in range(rank):
        for side in (0, 1):
            if pw[ax, side]:
                width = [0] * rank
                width[ax] = int(pw[ax, side])
                zero = (0,) * rank
                x = bld.emit("pad", x, bld.constant(values[ax, side]), lo=tuple(width) if side == 0 else zero,
                             hi=zero if side == 0 else tuple(width))
    return _wrap(x)


@_implements(getattr(_np, "unstack", None))
def unstack(x, /, *, axis=0):
    """The slices of x along axis, as a tuple (NumPy 2.1's unstack)."""
    if not _is_tracer(x):
        return _np.unstack(x, axis=axis)
    if x.ndim == 0:
        raise ShapeError("numpy.unstack: Input array must be at least 1-d.", user_loc())
    ax = _axis(axis, x.ndim, "numpy.unstack")
    return tuple(squeeze(part, ax) for part in _split("numpy.unstack", x, x.shape[ax], ax, equal=True)) \
        if x.shape[ax] else ()


def ascontiguousarray(a, dtype=None, *, like=None):
    """a (at least 1-d, as NumPy's) in dtype: traced arrays have no memory layout to change.
    (NumPy's own np.ascontiguousarray, like np.asarray, cannot be intercepted: on a tracer
    it raises.)"""
    if not _is_tracer(a):
        return _np.ascontiguousarray(a, dtype=dtype)
    from .ufuncs import astype
    r = a if dtype is None else astype(a, dtype)
    return reshape(r, (1,)) if r.ndim == 0 else r


def asfortranarray(a, dtype=None, *, like=None):
    """As ascontiguousarray: the layout of a traced array is the compiler's business."""
    if not _is_tracer(a):
        return _np.asfortranarray(a, dtype=dtype)
    return ascontiguousarray(a, dtype)
