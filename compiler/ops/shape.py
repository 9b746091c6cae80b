"""Shape ops: reshape, transpose, broadcast_in_dim, concatenate, slice, rev, pad."""

from __future__ import annotations


from ..errors import DTypeError, IRError, ShapeError
from ..shapes import Sym, prod
from .core import _T, _check_arity, _check_axes, _fmt_shape, define

# --- shape ops ---------------------------------------------------------------------------------

def _reshape_infer(ts, shape):
    _check_arity("reshape", ts, 1)
    t = ts[0]
    if any(not isinstance(d, (int, Sym)) or (isinstance(d, int) and d < 0) for d in shape):
        raise ShapeError(f"reshape: bad target shape {shape}")
    if prod(t.shape) != prod(shape):
        raise ShapeError(f"cannot reshape array of shape {_fmt_shape(t.shape)} into shape {_fmt_shape(shape)}")
    return [_T(shape, t.dtype)]


def _transpose_infer(ts, perm):
    _check_arity("transpose", ts, 1)
    t = ts[0]
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the {t.rank} axes")
    return [_T([t.shape[p] for p in perm], t.dtype)]


def _broadcast_in_dim_infer(ts, shape, dims):
    _check_arity("broadcast_in_dim", ts, 1)
    t = ts[0]
    if len(dims) != t.rank or any(not 0 <= d < len(shape) for d in dims) or list(dims) != sorted(set(dims)):
        raise ShapeError(f"broadcast_in_dim: dims {dims} must be {t.rank} increasing positions in "
                         f"the result's {len(shape)} dims")
    for i, d in enumerate(dims):
        if t.shape[i] != 1 and t.shape[i] != shape[d]:
            raise ShapeError(f"cannot broadcast shape {_fmt_shape(t.shape)} to {_fmt_shape(shape)}")
    return [_T(shape, t.dtype)]


def _concatenate_infer(ts, axis):
    if not ts:
        raise ShapeError("need at least one array to concatenate")
    t0 = ts[0]
    if not 0 <= axis < t0.rank:
        raise ShapeError(f"concatenate: axis {axis} out of range for rank {t0.rank}")
    for t in ts[1:]:
        if t.dtype != t0.dtype:
            raise DTypeError(f"concatenate: operand dtypes differ ({t0.dtype} and {t.dtype})")
        if t.rank != t0.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, t0.shape)) if i != axis):
            raise ShapeError("all the input array dimensions except for the concatenation axis must "
                             f"match exactly, got shapes {', '.join(_fmt_shape(x.shape) for x in ts)}")
    shape = list(t0.shape)
    shape[axis] = _sum_dims([t.shape[axis] for t in ts])
    return [_T(shape, t0.dtype)]


def _sum_dims(ds):
    if all(isinstance(d, int) for d in ds):
        return sum(ds)
    nonzero = [d for d in ds if d != 0]
    if len(nonzero) == 1:
        return nonzero[0]
    raise ShapeError("concatenate: cannot add symbolic sizes")


def _slice_infer(ts, start, limit, step):
    _check_arity("slice", ts, 1)
    t = ts[0]
    if not len(start) == len(limit) == len(step) == t.rank:
        raise IRError("slice: start, limit and step need one entry per dim")
    out = []
    for d, s, l, k in zip(t.shape, start, limit, step):
        if isinstance(d, Sym) or isinstance(l, Sym):
            if (s, l, k) != (0, d, 1):
                raise ShapeError("slice: a dynamic dim can only be taken whole")
            out.append(d)
            continue
        if not (0 <= s <= l <= d) or k < 1:
            raise ShapeError(f"slice: bad bounds start={s} limit={l} step={k} for a dim of size {d}")
        out.append(-(-(l - s) // k))
    return [_T(out, t.dtype)]


def _rev_infer(ts, axes):
    _check_arity("rev", ts, 1)
    _check_axes("rev", axes, ts[0].rank)
    return [ts[0]]


def _pad_infer(ts, lo, hi):
    _check_arity("pad", ts, 2)
    t, v = ts
    if v.rank != 0 or v.dtype != t.dtype:
        raise DTypeError(f"pad: the padding value must be a 0-d {t.dtype}, got {v}")
    if len(lo) != t.rank or len(hi) != t.rank or any(p < 0 for p in lo + hi):
        raise ShapeError(f"pad: need non-negative lo/hi for each of {t.rank} dims, got {lo}, {hi}")
    out = []
    for d, a, b in zip(t.shape, lo, hi):
        if isinstance(d, Sym):
            if a or b:
                raise ShapeError("pad: a dynamic dim cannot be padded")
            out.append(d)
        else:
            out.append(d + a + b)
    return [_T(out, t.dtype)]


define("reshape", "shape", ("shape",), _reshape_infer, "reshape[shape](x): row-major reshape.")
define("transpose", "shape", ("perm",), _transpose_infer, "transpose[perm](x): result dim i is x dim perm[i].")
define("broadcast_in_dim", "shape", ("shape", "dims"), _broadcast_in_dim_infer,
       "broadcast_in_dim[shape, dims](x): x's dim i becomes result dim dims[i] (size 1 stretches); "
       "other result dims are new.")
define("concatenate", "shape", ("axis",), _concatenate_infer, "concatenate[axis](*xs)")
define("slice", "shape", ("start", "limit", "step"), _slice_infer,
       "slice[start, limit, step](x): static strided slice, positive steps.")
define("rev", "shape", ("axes",), _rev_infer, "rev[axes](x): reverse the order along axes (np.flip).")
define("pad", "shape", ("lo", "hi"), _pad_infer,
       "pad[lo, hi](x, value): constant padding with the 0-d `value`.")
