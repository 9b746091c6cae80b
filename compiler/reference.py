"""The NumPy reference evaluator: one rule per op, and an interpreter for functions.

This is the test oracle. Batching rules are checked by running batched programs
here against a per-example loop, with no compiler in the way; compiled code is
checked against it too. ``vmapc.eval(fn, *arrays)`` exposes it for debugging.

Each rule takes NumPy arrays and the equation's attributes (with symbolic dims
already resolved) and returns the results. Where NumPy would raise or warn at
run time, a rule does what compiled code does instead, so the two can be compared
exactly: indices are clamped, integer division by zero gives 0, an integer raised
to a negative power truncates toward zero.
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from .errors import CallError
from .ir import Function
from .shapes import Sym, bind, resolve


def _erf(x):
    f = np.vectorize(math.erf, otypes=[np.float64])
    return f(x.astype(np.float64)).astype(x.dtype)


def _sigmoid(x):
    # e/(1+e) for x < 0, not 1 - 1/(1+e), which cancels (1e-3 relative error at x = -9.7);
    # float16 in float32, rounded once, as the compiled code does
    y = x.astype(np.float32) if x.dtype == np.float16 else x
    e = np.exp(-np.abs(y))
    return np.where(y >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _int_power(a, b):
    if not dt.is_int(a.dtype):
        return np.power(a, b)
    neg = b < 0
    r = np.power(a, np.where(neg, 0, b).astype(b.dtype))
    if dt.is_unsigned(a.dtype):
        return r
    odd = (b % 2) != 0
    r_neg = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(a.dtype)
    return np.where(neg, r_neg, r).astype(a.dtype)


def _int_div_guard(fn):
    """Integer floor_divide/remainder as NumPy computes them, without its run-time
    warnings: a zero divisor gives 0; MIN // -1 wraps to MIN (remainder 0)."""
    def rule(a, b):
        if not dt.is_int(a.dtype):
            return fn(a, b)
        zero = b == 0
        safe_b = np.where(zero, 1, b).astype(b.dtype)
        if not dt.is_unsigned(a.dtype):
            minv = np.iinfo(a.dtype).min
            ovf = (a == minv) & (safe_b == -1)
            safe_b = np.where(ovf, 1, safe_b).astype(b.dtype)
            r = fn(a, safe_b)
            if fn is np.remainder:
                r = np.where(ovf, 0, r)
        else:
            r = fn(a, safe_b)
        return np.where(zero, 0, r).astype(a.dtype)
    return rule


_UNARY = {
    "negative": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square,
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt,
    "rsqrt": lambda x: (1 / np.sqrt(x)).astype(x.dtype), "reciprocal": np.reciprocal,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "arcsin": np.arcsin,
    "arccos": np.arccos, "arctan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "sigmoid": _sigmoid, "erf": _erf, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "logical_not": np.logical_not, "bitwise_not": np.invert,
    "isnan": np.isnan, "isfinite": np.isfinite, "isinf": np.isinf,
}

_BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
    "floor_divide": _int_div_guard(np.floor_divide), "remainder": _int_div_guard(np.remainder),
    "power": _int_power, "maximum": np.maximum, "minimum": np.minimum, "arctan2": np.arctan2,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor, "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor,
}


def _dot_general(lhs, rhs, contract, batch):
    (lc, rc), (lb, rb) = contract, batch
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ls = [None] * lhs.ndim
    rs = [None] * rhs.ndim
    for a, b in zip(lb, rb):
        ls[a] = rs[b] = next(letters)
    for a, b in zip(lc, rc):
        ls[a] = rs[b] = next(letters)
    lfree = [i for i in range(lhs.ndim) if ls[i] is None]
    rfree = [i for i in range(rhs.ndim) if rs[i] is None]
    for i in lfree:
        ls[i] = next(letters)
    for i in rfree:
        rs[i] = next(letters)
    out = [ls[a] for a in lb] + [ls[i] for i in lfree] + [rs[i] for i in rfree]
    spec = f"{''.join(ls)},{''.join(rs)}->{''.join(out)}"
    if lhs.dtype == np.float16:  # accumulate in float32, as compiled code does
        return np.einsum(spec, lhs.astype(np.float32), rhs.astype(np.float32)).astype(np.float16)
    return np.einsum(spec, lhs, rhs).astype(lhs.dtype)


def _broadcast_in_dim(x, shape, dims):
    expanded = [1] * len(shape)
    for i, d in enumerate(dims):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape).copy()


def _clamp_index(idx, n):
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, idx + n, idx)
    return np.clip(idx, 0, max(n - 1, 0))


def _take(x, idx, axis, batch_dims):
    if batch_dims == 0:
        if x.shape[axis] == 0:
            return np.zeros(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)
        return np.take(x, _clamp_index(idx, x.shape[axis]), axis=axis)
    out_shape = x.shape[:axis] + idx.shape[batch_dims:] + x.shape[axis + 1:]
    out = np.empty(out_shape, x.dtype)
    for b in np.ndindex(*x.shape[:batch_dims]):
        out[b] = _take(x[b], idx[b], axis - batch_dims, 0)
    return out


def _take_along_axis(x, idx, axis):
    shape = []
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        shape.append(b if i == axis or a == 1 else a)   # a size-1 dim of x stretches (to 0 too)
    xs = list(shape)
    xs[axis] = x.shape[axis]
    x = np.broadcast_to(x, xs)
    idx = np.broadcast_to(idx, shape)
    if x.shape[axis] == 0:
        return np.zeros(shape, x.dtype)
    return np.take_along_axis(x, _clamp_index(idx, x.shape[axis]), axis=axis)


def _dynamic_slice(x, *starts, sizes):
    idx = []
    for s, n, d in zip(starts, sizes, x.shape):
        s = int(np.clip(int(s), 0, d - n))
        idx.append(slice(s, s + n))
    return x[tuple(idx)].copy()


def _iota(shape, dimension, dtype):
    r = np.arange(shape[dimension]).reshape([-1 if i == dimension else 1 for i in range(len(shape))])
    return np.broadcast_to(r, shape).astype(dtype)


RULES = {}
for _n, _f in _UNARY.items():
    RULES[_n] = (lambda f: lambda x: f(x))(_f)
for _n, _f in _BINARY.items():
    RULES[_n] = (lambda f: lambda a, b: f(a, b))(_f)
RULES.update({
    "select": lambda c, a, b: np.where(c, a, b),
    "convert": lambda x, dtype: x.astype(dtype),
    "reduce_sum": lambda x, axes: np.sum(x, axis=axes, dtype=x.dtype),
    "reduce_prod": lambda x, axes: np.prod(x, axis=axes, dtype=x.dtype),
    "reduce_max": lambda x, axes: np.max(x, axis=axes) if axes else x.copy(),
    "reduce_min": lambda x, axes: np.min(x, axis=axes) if axes else x.copy(),
    "reduce_any": lambda x, axes: np.any(x, axis=axes),
    "reduce_all": lambda x, axes: np.all(x, axis=axes),
    "argmax": lambda x, axis: np.argmax(x, axis=axis).astype(np.int64),
    "argmin": lambda x, axis: np.argmin(x, axis=axis).astype(np.int64),
    "dot_general": _dot_general,
    "reshape": lambda x, shape: x.reshape(shape),
    "transpose": lambda x, perm: np.transpose(x, perm),
    "broadcast_in_dim": _broadcast_in_dim,
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "slice": lambda x, start, limit, step: x[tuple(slice(a, b, c) for a, b, c in zip(start, limit, step))],
    "rev": lambda x, axes: np.flip(x, axes) if axes else x,
    "pad": lambda x, v, lo, hi: np.pad(x, list(zip(lo, hi)), constant_values=v) if x.ndim else x.copy(),
    "take": _take,
    "take_along_axis": _take_along_axis,
    "dynamic_slice": _dynamic_slice,
    "iota": _iota,
    "constant": lambda value: value,
})


def _resolve_attr(v, bindings):
    if isinstance(v, Sym):
        return v.resolve(bindings)
    if isinstance(v, tuple):
        return tuple(_resolve_attr(x, bindings) for x in v)
    return v


def apply(e, operands, bindings=None) -> list:
    """The reference results of one equation on NumPy operands, one array per output
    with exactly the output's dtype and shape (symbolic dims resolved by `bindings`)."""
    bindings = bindings or {}
    attrs = {k: _resolve_attr(x, bindings) for k, x in e.attrs.items()}
    outs = RULES[e.op](*operands, **attrs)
    if not isinstance(outs, list):
        outs = [outs]
    results = []
    for v, o in zip(e.outputs, outs):
        o = np.asarray(o)
        want = resolve(v.shape, bindings)
        if o.shape != want or o.dtype != v.dtype:
            o = np.asarray(o, dtype=v.dtype)
            if o.shape != want:
                raise AssertionError(f"reference rule for {e.op} gave shape {o.shape}, expected {want}")
        results.append(o)
    return results


def evaluate(fn: Function, *args) -> list:
    """Run `fn` on NumPy arrays with the reference rules; returns the list of outputs.

    Arguments must have the dtypes of ``fn``'s inputs and matching shapes (a
    symbolic dim takes its size from the first argument that has it)."""
    if len(args) != len(fn.inputs):
        raise CallError(f"{fn.name} takes {len(fn.inputs)} arguments, got {len(args)}")
    bindings: dict = {}
    env = {}
    for i, (v, a) in enumerate(zip(fn.inputs, args)):
        a = np.asarray(a)
        if a.dtype != v.dtype:
            raise CallError(f"argument {i} has dtype {a.dtype}, expected {v.dtype}")
        if not bind(v.shape, a.shape, bindings):
            raise CallError(f"argument {i} has shape {a.shape}, expected {v.type}")
        env[v] = a
    with np.errstate(all="ignore"):
        for e in fn.eqns:
            for v, o in zip(e.outputs, apply(e, [env[v] for v in e.inputs], bindings)):
                env[v] = o
    return [env[v] for v in fn.outputs]
