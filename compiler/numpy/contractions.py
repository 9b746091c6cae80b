"""Contractions: ``matmul``, ``dot``, ``vdot``, ``inner``, ``outer``, ``tensordot`` and
``einsum``, all as ``dot_general`` (a batch folded into the rows stays one GEMM)."""

from __future__ import annotations

import builtins
import string

import numpy as _np

from .. import dtypes as dt
from ..errors import ShapeError, UnsupportedError
from ..shapes import broadcast_shapes
from ..tracing import user_loc

from ._core import _axes, _b, _c, _e, _has_tracer, _implements, _reject, _strong_dtype, _var, _wrap
from .ufuncs import multiply
from .shape import ravel, reshape
from .writes import with_out

# --- contractions --------------------------------------------------------------------------------

def _dot_general(a, b, contract, batch=((), ())):
    """dot_general on two vars of one numeric dtype (bool is computed in int32)."""
    bld = _b()
    if a.dtype == dt.BOOL:
        r = bld.emit("dot_general", bld.convert(a, dt.INT32), bld.convert(b, dt.INT32),
                     contract=contract, batch=batch)
        return _e("not_equal", r, _c(r, 0))
    return bld.emit("dot_general", a, b, contract=contract, batch=batch)


def _contract_operands(x1, x2):
    d = _strong_dtype(x1, x2)
    return _var(x1, d), _var(x2, d)


@_implements(_np.matmul)
@with_out("numpy.matmul", "same_kind")
def matmul(x1, x2, /, out=None, **kwargs):
    """NumPy's matmul: 1-D operands gain and lose a dim; leading dims broadcast."""
    _reject("numpy.matmul", kwargs, out=out)
    if not _has_tracer((x1, x2)):
        return _np.matmul(x1, x2)
    a, b = _contract_operands(x1, x2)
    if a.rank == 0 or b.rank == 0:
        raise ShapeError("matmul: Input operand does not have enough dimensions (0-d)", user_loc())
    bld = _b()
    if a.rank == 1 or b.rank == 1:
        # a vector operand is contracted directly (no reshape to a 1-row matrix), so that a
        # batched vector @ shared matrix stays one plain GEMM after vmap
        ka, kb = a.rank - 1, (0 if b.rank == 1 else b.rank - 2)
        if a.shape[ka] != b.shape[kb]:
            raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                             f"(size {b.shape[kb]} is different from {a.shape[ka]})", user_loc())
        return _wrap(_dot_general(a, b, ((ka,), (kb,))))
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                         f"(size {b.shape[-2]} is different from {a.shape[-1]})", user_loc())
    if b.rank == 2:
        # (..., M, K) @ (K, N): contract directly, the leading dims of a are free dims
        r = _dot_general(a, b, ((a.rank - 1,), (0,)))
    elif a.rank == 2:
        # (M, K) @ (..., K, N): result dims are M, ..., N; move M next to N
        r = _dot_general(a, b, ((1,), (b.rank - 2,)))
        nb = b.rank - 2
        r = bld.transpose(r, tuple(range(1, nb + 1)) + (0, nb + 1))
    else:
        try:
            bshape = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError as err:
            raise ShapeError(f"matmul: {err}", user_loc()) from None
        nb = len(bshape)
        a = bld.broadcast_in_dim(a, bshape + a.shape[-2:], tuple(range(nb - a.rank + 2, nb + 2)))
        b = bld.broadcast_in_dim(b, bshape + b.shape[-2:], tuple(range(nb - b.rank + 2, nb + 2)))
        r = _dot_general(a, b, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    return _wrap(r)


@_implements(_np.dot)
def dot(a, b, out=None):
    """NumPy's dot: products for 0-d, inner product for 1-D, otherwise the last axis of a
    with the second-to-last of b (the last, if b is 1-D)."""
    _reject("numpy.dot", out=out)
    if not _has_tracer((a, b)):
        return _np.dot(a, b)
    x, y = _contract_operands(a, b)
    if x.rank == 0 or y.rank == 0:
        return _wrap(_e("multiply", x, y))
    ka = x.rank - 1
    kb = 0 if y.rank == 1 else y.rank - 2
    if x.shape[ka] != y.shape[kb]:
        raise ShapeError(f"shapes {tuple(x.shape)} and {tuple(y.shape)} not aligned: "
                         f"{x.shape[ka]} (dim {ka}) != {y.shape[kb]} (dim {kb})", user_loc())
    return _wrap(_dot_general(x, y, ((ka,), (kb,))))


@_implements(_np.vdot)
def vdot(a, b):
    """Dot product of the flattened arrays, the first one conjugated."""
    if not _has_tracer((a, b)):
        return _np.vdot(a, b)
    from .ufuncs import _conj_method
    return dot(_conj_method(ravel(a)), ravel(b))


@_implements(_np.inner)
def inner(a, b):
    """Sum of products over the last axes."""
    if not _has_tracer((a, b)):
        return _np.inner(a, b)
    x, y = _contract_operands(a, b)
    if x.rank == 0 or y.rank == 0:
        return _wrap(_e("multiply", x, y))
    if x.shape[-1] != y.shape[-1]:
        raise ShapeError(f"inner: shapes {tuple(x.shape)} and {tuple(y.shape)} not aligned", user_loc())
    return _wrap(_dot_general(x, y, ((x.rank - 1,), (y.rank - 1,))))


@_implements(_np.outer)
def outer(a, b, out=None):
    """Outer product of the flattened arrays."""
    _reject("numpy.outer", out=out)
    if not _has_tracer((a, b)):
        return _np.outer(a, b)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


@_implements(_np.tensordot)
def tensordot(a, b, axes=2):
    """Sum of products over ``axes`` (an int N: the last N of a with the first N of b; or a
    pair of axis lists)."""
    if not _has_tracer((a, b)):
        return _np.tensordot(a, b, axes)
    x, y = _contract_operands(a, b)
    if isinstance(axes, (int, _np.integer)):
        n = int(axes)
        if n < 0 or n > x.rank or n > y.rank:
            raise ShapeError(f"tensordot: axes={n} does not fit ranks {x.rank} and {y.rank}", user_loc())
        ax_a, ax_b = tuple(range(x.rank - n, x.rank)), tuple(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = (ax_a,) if isinstance(ax_a, (int, _np.integer)) else tuple(ax_a)
        ax_b = (ax_b,) if isinstance(ax_b, (int, _np.integer)) else tuple(ax_b)
        if len(ax_a) != len(ax_b):
            raise ShapeError("tensordot: shape-mismatch for sum (axes lists differ in length)", user_loc())
        ax_a = _axes(ax_a, x.rank, "numpy.tensordot")
        ax_b = _axes(ax_b, y.rank, "numpy.tensordot")
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise ShapeError(f"tensordot: shape-mismatch for sum: dim {i} of a is {x.shape[i]}, "
                             f"dim {j} of b is {y.shape[j]}", user_loc())
    return _wrap(_dot_general(x, y, (tuple(ax_a), tuple(ax_b))))


@_implements(_np.einsum)
def einsum(subscripts, *operands, out=None, optimize=False, dtype=None, **kw):
    """Einstein summation for contractions, transposes and reductions, with ``...``.
    A repeated index within one operand (a diagonal or trace) is not supported."""
    _reject("numpy.einsum", kw, out=out)
    if not isinstance(subscripts, str):
        raise UnsupportedError("numpy.einsum: only the string form of subscripts is supported", user_loc())
    if not _has_tracer(operands):
        return _np.einsum(subscripts, *operands, optimize=optimize)
    d = dt.canonical(dtype) if dtype is not None else _strong_dtype(*operands)
    vars_ = [_var(o, d) for o in operands]
    return _wrap(_einsum(subscripts.replace(" ", ""), vars_))


def _einsum(subs, vars_):
    bld = _b()
    if "->" in subs:
        lhs, out = subs.split("->")
        explicit = True
    else:
        lhs, out, explicit = subs, None, False
    specs = lhs.split(",")
    if len(specs) != len(vars_):
        raise ShapeError(f"einsum: {len(specs)} operand subscripts for {len(vars_)} operands", user_loc())
    used = set(subs) - set(",->.")
    spare = [c for c in string.ascii_letters if c not in used]
    # expand "..." into fresh letters, right-aligned across operands (they broadcast)
    ell_rank = 0
    for s, v in zip(specs, vars_):
        if "..." in s:
            ell_rank = builtins.max(ell_rank, v.rank - (len(s) - 3))
    ell = "".join(spare[:ell_rank])
    terms = []
    for s, v in zip(specs, vars_):
        if "..." in s:
            k = v.rank - (len(s) - 3)
            s = s.replace("...", ell[ell_rank - k:] if k else "")
        if len(s) != v.rank:
            raise ShapeError(f"einsum: subscripts {s!r} do not match an operand of rank {v.rank}", user_loc())
        if len(set(s)) != len(s):
            raise UnsupportedError(f"einsum: the repeated index in {s!r} (a diagonal or trace) is not "
                                   "supported", user_loc())
        terms.append(s)
    if explicit:
        out = out.replace("...", ell)
    else:
        counts = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes = {}
    for t, v in zip(terms, vars_):
        for c, n in zip(t, v.shape):
            if c in sizes and sizes[c] != n and n != 1 and sizes[c] != 1:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {n}", user_loc())
            if c not in sizes or sizes[c] == 1:
                sizes[c] = n
    for c in out:
        if c not in sizes:
            raise ShapeError(f"einsum: output index {c!r} does not appear in any operand", user_loc())

    def stretch(v, t):
        shape = tuple(sizes[c] for c in t)
        return bld.broadcast_in_dim(v, shape, tuple(range(v.rank))) if v.shape != shape else v

    def sum_out(v, t, keep):
        axes = tuple(i for i, c in enumerate(t) if c not in keep)
        if axes:
            v = bld.emit("reduce_sum", v, axes=axes)
            t = "".join(c for c in t if c in keep)
        return v, t

    v, t = vars_[0], terms[0]
    for k in range(1, len(vars_)):
        later = set(out).union(*terms[k + 1:])
        w, u = vars_[k], terms[k]
        v, t = sum_out(stretch(v, t), t, later | set(u))
        w, u = sum_out(stretch(w, u), u, later | set(t))
        batch = [c for c in t if c in u and c in later]
        contract = [c for c in t if c in u and c not in later]
        v = _dot_general(v, w, (tuple(t.index(c) for c in contract), tuple(u.index(c) for c in contract)),
                         (tuple(t.index(c) for c in batch), tuple(u.index(c) for c in batch)))
        t = "".join(batch) + "".join(c for c in t if c not in u) + "".join(c for c in u if c not in t)
    v, t = sum_out(stretch(v, t), t, set(out))
    return bld.transpose(v, tuple(t.index(c) for c in out))
