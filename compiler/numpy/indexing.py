"""Indexing: NumPy's basic and integer-array indexing (``x[...]``), ``take``,
``take_along_axis`` and ``dynamic_slice``."""

from __future__ import annotations

import builtins

import numpy as _np

from .. import dtypes as dt
from ..errors import OutOfBoundsError, ShapeError, TracingError, UnsupportedError
from ..shapes import broadcast_shapes
from ..tracing import Tracer, user_loc

from ._core import _axis, _b, _c, _e, _has_tracer, _implements, _is_tracer, _reject, _static_ints, _var, _wrap
from .shape import ravel
from .writes import with_out

# --- indexing ------------------------------------------------------------------------------------

def _index_var(i, n=None, axis=None):
    """An integer index (tracer or array-like) as a var. A static index is checked against
    the axis size n, when given, as NumPy checks it; a traced one is clamped later."""
    if isinstance(i, Tracer):
        if i.dtype == dt.BOOL:
            raise UnsupportedError("indexing with a boolean mask gives a shape that depends on the "
                                   "data, which cannot be compiled ahead of time; use "
                                   "vmapc.numpy.where(mask, x, 0) instead", user_loc())
        if not dt.is_int(i.dtype):
            raise TracingError(f"arrays used as indices must be of integer type, got {i.dtype}", user_loc())
        return _var(i)
    a = _np.asarray(i)
    if a.dtype == bool:
        raise UnsupportedError("indexing a traced array with a boolean mask gives a shape that depends "
                               "on the data; use vmapc.numpy.where(mask, x, 0) instead", user_loc())
    if a.size == 0:
        a = a.astype(_np.int64)
    if not _np.issubdtype(a.dtype, _np.integer):
        raise TracingError(f"arrays used as indices must be of integer type, got {a.dtype}", user_loc())
    if n is not None:
        bad = a[(a < -n) | (a >= n)]
        if bad.size:
            raise OutOfBoundsError(f"index {bad.flat[0]} is out of bounds for axis {axis} with size {n}",
                                   user_loc())
    return _b().constant(_static_index(a))


def _static_index(a):
    """A static index array as int32 when it fits (IREE 3.13's SPIR-V backend fails on a gather
    from a constant int64 tensor: "failed to legalize unresolved target materialization from
    i64 to vector<2xi32>"), else int64."""
    a = _np.asarray(a)
    small = a.size == 0 or (int(a.min()) >= -2 ** 31 and int(a.max()) < 2 ** 31)
    return a.astype(_np.int32 if small else _np.int64)


def _wrap_and_clamp(i, n):
    """Indices counted from the end when negative, then clamped into [0, n) (int64)."""
    i = _b().convert(i, dt.INT64)
    i = _e("select", _e("less", i, _c(i, 0)), _e("add", i, _c(i, n)), i)
    return _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))


class _Plan:
    """An index parsed the NumPy way: the view its basic part selects (``steps`` from x, see
    vmapc.functionalize), then the integer-array indices into that view (``adv``: (dim,
    index) pairs, with ``key_pos`` their positions in the key, for NumPy's placement rule).
    ``copy``: NumPy returns a copy although the index is basic (a 0-d array index);
    ``scalar``: every dim is indexed by an integer, so NumPy returns a scalar.
    ``mask``: (dim, traced boolean mask) for a write through a traced mask."""

    def __init__(self):
        self.steps, self.adv, self.key_pos, self.copy, self.mask = [], [], [], False, None
        self.scalar = False


def _is_weak_int(k):
    return isinstance(k, Tracer) and k.weak is int


def _parse_index(x, key, write=False):
    """The :class:`_Plan` of ``x[key]``. A traced 0-d integer indexes one dim at a traced
    position (a Python int traced as an argument is basic indexing and gives a view; a 0-d
    array gives a copy, as NumPy's integer-array indexing does). With `write`, a traced
    boolean mask is allowed (``x[mask] = v``)."""
    if not isinstance(key, tuple):
        key = (key,)
    plan = _Plan()
    rank = x.ndim
    # static boolean masks are their nonzero() integer arrays, as in NumPy
    expanded = []
    for k in key:
        if isinstance(k, (list, _np.ndarray)) and not isinstance(k, Tracer) and _np.asarray(k).dtype == bool \
                and _np.asarray(k).ndim > 0:
            expanded.extend(_np.nonzero(_np.asarray(k)))
        elif isinstance(k, (bool, _np.bool_)):
            raise UnsupportedError("indexing with a Python or NumPy bool (x[True]) is not supported", user_loc())
        else:
            expanded.append(k)
    key = tuple(expanded)
    n_ell = builtins.sum(1 for k in key if k is Ellipsis)
    if n_ell > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')", user_loc())

    def consumes(k):
        if k is None or k is Ellipsis:
            return 0
        if isinstance(k, Tracer) and k.dtype == dt.BOOL:
            return builtins.max(k.ndim, 1)
        return 1
    consumed = builtins.sum(consumes(k) for k in key)
    if consumed > rank:
        raise ShapeError(f"too many indices for array: array is {rank}-dimensional, but {consumed} "
                         "were indexed", user_loc())
    full = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (rank - consumed))
        else:
            full.append(k)
    if n_ell == 0:
        full.extend([slice(None)] * (rank - consumed))

    def is_array(k):    # an integer-array index (not a 0-d one)
        if isinstance(k, Tracer):
            return k.ndim > 0
        return isinstance(k, (list, _np.ndarray)) and _np.ndim(k) > 0

    masks = [k for k in full if isinstance(k, Tracer) and k.dtype == dt.BOOL]
    if masks:
        if not write:
            raise UnsupportedError("indexing with a boolean mask gives a shape that depends on the "
                                   "data, which cannot be compiled ahead of time; use "
                                   "vmapc.numpy.where(mask, x, 0) instead (x[mask] = v and x[mask] += v "
                                   "are supported)", user_loc())
        others = [k for k in full if not (isinstance(k, Tracer) and k.dtype == dt.BOOL)]
        if len(masks) > 1 or builtins.any(not (isinstance(k, slice) and k == slice(None)) for k in others):
            raise UnsupportedError("a traced boolean mask can be combined only with full slices (x[:, mask] "
                                   "= v); other combinations give shapes that depend on the data",
                                   user_loc())
        dim = full.index(masks[0])
        m = masks[0]
        if m.shape != x.shape[dim:dim + m.ndim]:
            raise OutOfBoundsError(f"boolean index did not match indexed array along axis {dim}; size of "
                                   f"axis is {x.shape[dim] if dim < rank else 0} but size of corresponding "
                                   f"boolean axis is {m.shape[0] if m.ndim else 1}", user_loc())
        plan.mask = (dim, m)
        return plan

    has_array = builtins.any(is_array(k) for k in full)
    start, limit, stride, rev_axes = [], [], [], []
    out = []          # per entry of `full`: the size it leaves in the view, or None (dropped)
    dyn = []          # (dim, index var) of traced scalar indices
    for pos, k in enumerate(full):
        if k is None:
            out.append(1)
            continue
        dim = len(start)
        n = x.shape[dim]
        if isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if isinstance(part, Tracer):
                    raise TracingError(
                        "slice bounds must be static Python ints; for a window at a traced offset use "
                        "vmapc.numpy.dynamic_slice(x, start_indices, slice_sizes)", user_loc())
            if k.step == 0:
                raise ShapeError("slice step cannot be zero", user_loc())
            s0, s1, st = k.indices(n)
            count = len(range(s0, s1, st))
            if st > 0:
                lo, hi, stp = s0, s0 + builtins.max(count - 1, 0) * st + (1 if count else 0), st
            else:
                rev_axes.append(dim)
                r0 = n - 1 - s0
                lo, hi, stp = r0, r0 + builtins.max(count - 1, 0) * (-st) + (1 if count else 0), -st
            start.append(lo), limit.append(hi), stride.append(stp)
            out.append(count)
            continue
        is_int = isinstance(k, (int, _np.integer)) and not isinstance(k, bool)
        is_0d = (isinstance(k, _np.ndarray) and k.ndim == 0) or (isinstance(k, Tracer) and k.ndim == 0)
        if is_array(k) or (has_array and (is_int or is_0d)):
            start.append(0), limit.append(n), stride.append(1)
            plan.adv.append((pos, k))
            plan.key_pos.append(pos)
            out.append(n)
        elif isinstance(k, Tracer):      # a traced scalar index: one dim at a traced position
            if not dt.is_int(k.dtype):
                raise TracingError(f"arrays used as indices must be of integer type, got {k.dtype}",
                                   user_loc())
            if n == 0:
                raise OutOfBoundsError(f"index is out of bounds for axis {dim} with size 0", user_loc())
            plan.copy = plan.copy or k.weak is None
            start.append(0), limit.append(n), stride.append(1)
            dyn.append((dim, _wrap_and_clamp(_var(k), n)))
            out.append(None)
        elif is_int or is_0d:
            if is_0d and not dt.is_int(_np.asarray(k).dtype):
                raise TracingError(f"invalid index {k!r}: only integers, slices, None, ... and integer or "
                                   "boolean arrays are valid indices", user_loc())
            plan.copy = plan.copy or is_0d
            i = int(k)
            if not -n <= i < n:
                raise OutOfBoundsError(f"index {i} is out of bounds for axis {dim} with size {n}", user_loc())
            i %= n
            start.append(i), limit.append(i + 1), stride.append(1)
            out.append(None)
        else:
            raise TracingError(f"invalid index {k!r} of type {type(k).__name__}", user_loc())
    steps = plan.steps
    if rev_axes:
        steps.append(("rev", tuple(rev_axes)))
    steps.append(("slice", tuple(start), tuple(limit), tuple(stride)))
    for d, i in reversed(dyn):     # last first: earlier dims keep their numbers
        steps.append(("index", d, i))
    kept = tuple(n for n in out if n is not None)
    steps.append(("reshape", kept))
    # every dim indexed by an integer, no `...`: NumPy gives a scalar (a copy), not a 0-d view
    plan.scalar = not kept and n_ell == 0 and not plan.adv
    if plan.adv:   # each advanced index's dim in the view
        position = {}
        p = 0
        for pos, n in enumerate(out):
            if n is not None:
                position[pos] = p
                p += 1
        plan.adv = [(position[pos], k) for pos, k in plan.adv]
    return plan


def _getitem(x, key):
    """NumPy indexing: basic (ints, slices with steps, None, ..., traced scalars) gives a
    view of x, integer arrays a copy."""
    if not isinstance(x, Tracer):
        x = _wrap(_var(x))
    plan = _parse_index(x, key, write=True)
    if plan.mask is not None:    # only good for x[mask] += v and x[mask] = y[mask]
        from .writes import getitem_mask
        return getitem_mask(x, plan.mask)
    from ..functionalize import view
    v = x
    for step in plan.steps:
        v = view(v, step)
    if plan.adv:
        lin, where_, merge = _advanced_index(v.ir_var, plan.adv, plan.key_pos)
        base = v.ir_var
        for step in merge:
            base = _read_step(base, step)
        return _wrap(_b().emit("take", base, lin, axis=where_, batch_dims=0))
    if plan.scalar:        # NumPy scalars are immutable: x[i] += 1 reads, adds and writes back
        r = _wrap(v.ir_var)
        r._immutable = True
        return r
    return _wrap(v.ir_var) if plan.copy else v


def _read_step(x, step):
    from ..functionalize import read
    return read(_b(), x, step)


def _advanced_index(v, adv, key_pos):
    """Integer-array indices at dims adv[i][0] of v: broadcast them and linearize them into
    one index along a merged dim (NumPy's placement rule for non-adjacent indices included).
    Returns (index, the merged dim's position, the steps that move the indexed dims together
    and merge them): ``take(read(v, steps), index, axis)`` is NumPy's result."""
    dims = [d for d, _ in adv]
    idx = [_index_var(k, v.shape[d], d) for d, k in adv]
    if len(idx) == 1:
        return idx[0], dims[0], []
    bld = _b()
    if not builtins.any(isinstance(k, Tracer) for _, k in adv):   # static: linearize them here
        try:
            arrays = _np.broadcast_arrays(*[_np.asarray(k) % v.shape[d] if v.shape[d] else _np.asarray(k)
                                            for d, k in adv])
        except ValueError as err:
            raise ShapeError(f"shape mismatch: indexing arrays could not be broadcast together: {err}",
                             user_loc()) from None
        lin_np = _np.zeros(arrays[0].shape, _np.int64)
        for a, d in zip(arrays, dims):
            lin_np = lin_np * v.shape[d] + a
        idx = None
    else:
        try:
            ishape = broadcast_shapes(*[i.shape for i in idx])
        except ValueError as err:
            raise ShapeError(f"shape mismatch: indexing arrays could not be broadcast together: {err}",
                             user_loc()) from None
    # NumPy puts the index dims where the indices are if they are adjacent, else first
    adjacent = key_pos == list(range(key_pos[0], key_pos[0] + len(key_pos)))
    if idx is None:
        lin = bld.constant(_static_index(lin_np))
    else:
        lin = None
        for i, d in zip(idx, dims):
            n = v.shape[d]
            i = _wrap_and_clamp(i, n)
            i = bld.broadcast_in_dim(bld.reshape(i, (1,) * (len(ishape) - i.rank) + i.shape), ishape,
                                     tuple(range(len(ishape))))
            lin = i if lin is None else _e("add", _e("multiply", lin, _c(lin, n)), i)
    others = [k for k in range(v.rank) if k not in dims]
    where_ = dims[0] if adjacent else 0
    perm = tuple(others[:where_] + dims + others[where_:])
    moved = tuple(v.shape[p] for p in perm)
    merged = int(_np.prod([moved[where_ + j] for j in range(len(dims))], dtype=_np.int64))
    shape = moved[:where_] + (merged,) + moved[where_ + len(dims):]
    return lin, where_, [("transpose", perm), ("reshape", shape)]


@_implements(_np.take)
@with_out("numpy.take", "unsafe")
def take(a, indices, axis=None, out=None, mode=None):
    """Take elements along an axis. Under ``mode`` None/'raise' static indices out of range
    raise as in NumPy, and traced ones are clamped (compiled code cannot raise); 'clip'
    clamps (negative indices to 0), 'wrap' wraps."""
    _reject("numpy.take", out=out)
    if not _has_tracer((a, indices)):
        return _np.take(a, indices, axis=axis, mode=mode or "raise")
    if mode not in (None, "raise", "clip", "wrap"):
        raise UnsupportedError(f"numpy.take: mode={mode!r} is not supported", user_loc())
    if not _is_tracer(a):
        a = _wrap(_var(a))
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "numpy.take")
    n = a.shape[ax]
    i = _index_var(indices, n if mode in (None, "raise") else None, ax)
    if mode == "clip":
        i = _b().convert(i, dt.INT64)
        i = _e("minimum", _e("maximum", i, _c(i, 0)), _c(i, builtins.max(n - 1, 0)))
    elif mode == "wrap":
        i = _b().convert(i, dt.INT64)
        i = _e("remainder", i, _c(i, builtins.max(n, 1)))
    return _wrap(_b().emit("take", _var(a), i, axis=ax, batch_dims=0))


@_implements(_np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """NumPy's take_along_axis; static indices out of range raise, traced ones are clamped."""
    if not _has_tracer((arr, indices)):
        return _np.take_along_axis(arr, indices, axis)
    if not _is_tracer(arr):
        arr = _wrap(_var(arr))
    if axis is None:
        arr, axis = ravel(arr), 0
    ax = _axis(axis, arr.ndim, "numpy.take_along_axis")
    i = _index_var(indices, arr.shape[ax], ax)
    if i.rank != arr.ndim:
        raise ShapeError("`indices` and `arr` must have the same number of dimensions", user_loc())
    return _wrap(_b().emit("take_along_axis", _var(arr), i, axis=ax))


def dynamic_slice(operand, start_indices, slice_sizes):
    """A window of static size ``slice_sizes`` at (possibly traced) ``start_indices``, like
    ``lax.dynamic_slice``: starts are clamped so that the window stays inside the array."""
    if not _has_tracer((operand, *start_indices)):
        a = _np.asarray(operand)
        starts = [builtins.min(builtins.max(int(s), 0), d - n) for s, n, d in zip(start_indices, slice_sizes, a.shape)]
        return a[tuple(slice(s, s + n) for s, n in zip(starts, slice_sizes))]
    if not _is_tracer(operand):
        operand = _wrap(_var(operand))
    if len(start_indices) != operand.ndim or len(slice_sizes) != operand.ndim:
        raise ShapeError(f"dynamic_slice: need {operand.ndim} start indices and slice sizes, got "
                         f"{len(start_indices)} and {len(slice_sizes)}", user_loc())
    starts = []
    for s in start_indices:
        sv = _var(s) if _is_tracer(s) else _b().constant(_np.int64(int(s)))
        if sv.rank != 0:
            raise ShapeError("dynamic_slice: each start index must be a scalar", user_loc())
        if not dt.is_int(sv.dtype):
            raise TracingError(f"dynamic_slice: start indices must be integers, got {sv.dtype}", user_loc())
        starts.append(sv)
    return _wrap(_b().emit("dynamic_slice", _var(operand), *starts,
                           sizes=_static_ints(slice_sizes, "slice_sizes")))


@_implements(_np.lib.stride_tricks.sliding_window_view)
def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """Every window of ``window_shape`` along ``axis`` (default: every axis), the window dims
    last, as NumPy's view; here a gather (``take``) with static positions per windowed
    axis. Traced arrays are never writeable."""
    if not _is_tracer(x):
        return _np.lib.stride_tricks.sliding_window_view(x, window_shape, axis, subok=subok, writeable=writeable)
    if writeable:
        raise UnsupportedError("sliding_window_view: writeable=True is not supported (traced arrays are "
                               "immutable)", user_loc())
    window = tuple(window_shape) if _np.iterable(window_shape) else (window_shape,)
    window = _static_ints(window, "sliding_window_view window_shape")
    if builtins.any(w < 0 for w in window):
        raise ShapeError("sliding_window_view: `window_shape` cannot contain negative values", user_loc())
    if axis is None:
        if len(window) != x.ndim:
            raise ShapeError(f"sliding_window_view: Since axis is `None`, must provide window_shape for all "
                             f"dimensions of `x`; got {len(window)} window_shape elements and `x.ndim` is "
                             f"{x.ndim}.", user_loc())
        axes = tuple(range(x.ndim))
    else:
        axes = tuple(axis) if _np.iterable(axis) else (axis,)
        if len(window) != len(axes):
            raise ShapeError(f"sliding_window_view: Must provide matching length window_shape and axis; got "
                             f"{len(window)} window_shape elements and {len(axes)} axes elements.", user_loc())
        axes = tuple(_axis(a, x.ndim, "sliding_window_view") for a in axes)
    v = _var(x)
    bld = _b()
    for ax, w in zip(axes, window):
        n = v.shape[ax]
        if w > n:
            raise ShapeError("sliding_window_view: window shape cannot be larger than input array shape",
                             user_loc())
        starts = n - w + 1
        idx = (_np.arange(starts)[:, None] + _np.arange(w)[None, :]).astype(_np.int64)
        v = bld.emit("take", v, bld.constant(idx), axis=ax, batch_dims=0)   # ..., starts, w, ...
        v = bld.transpose(v, [d for d in range(v.rank) if d != ax + 1] + [ax + 1])
    return _wrap(v)
