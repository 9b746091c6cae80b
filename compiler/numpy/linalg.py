"""``vmapc.numpy.linalg``: NumPy's ``np.linalg`` for the small per-example matrices vmap is
used for.

``eigh``/``eigvalsh`` are cyclic Jacobi (a fixed number of sweeps); ``svd`` is one-sided
Jacobi, and the functions of the singular values (the matrix 2, -2 and nuclear norms,
``pinv``, ``matrix_rank``, ``cond``) are built on it. ``eig``/``eigvals`` (complex results)
and ``lstsq`` (residuals whose shape depends on the computed rank) are not provided.

Solving, inverting, determinants, Cholesky and QR are the array programs of
:mod:`vmapc.numpy._factor` (LU with partial pivoting, substitution, right-looking Cholesky,
Householder QR), traced from plain NumPy operations: they batch, lower and differentiate
like any other traced code. ``solve_triangular`` (SciPy's ``scipy.linalg.solve_triangular``,
which NumPy lacks) lives here too. Every function accepts stacks of matrices (``..., n, n``)
as NumPy's do; integer and bool inputs compute in float64, float16 is refused as NumPy
refuses it.

Where NumPy raises ``LinAlgError`` on the data (a singular matrix, a matrix that is not
positive definite) a compiled program cannot: the result holds infinities or NaNs instead
(docs/numpy.md). Norms follow NumPy in every order.
"""

from __future__ import annotations

import builtins as _builtins

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, UnsupportedError
from ..tracing import user_loc

from ._core import _HANDLED, _axes, _is_tracer
from . import _factor as _f
from .matrices import diagonal, tril, triu
from .ufuncs import (absolute, astype, isnan, log, logical_and, logical_not, multiply, not_equal, power, sqrt,
                     where)
from .reductions import max, min, prod, sum
from .shape import broadcast_to, expand_dims, moveaxis, reshape, swapaxes

_SlogdetResult = type(_np.linalg.slogdet(_np.eye(1)))
_QRResult = type(_np.linalg.qr(_np.eye(1)))
_EighResult = type(_np.linalg.eigh(_np.eye(1)))
_SVDResult = type(_np.linalg.svd(_np.eye(1)))

def _float_type(fname, *xs):
    """NumPy's linalg result dtype: float32 or float64 (integers and bools compute in float64)."""
    d = _np.result_type(*[x.dtype for x in xs])
    if d == _np.float16 or d.kind not in "biuf":
        raise DTypeError(f"{fname}: array type {d} is unsupported in linalg", user_loc())
    return dt.FLOAT64 if d.kind in "biu" else d


def _matrices(fname, *xs, square=True, like=None):
    """The operands as arrays of the common float dtype (with ``like``'s too), each checked to
    be a stack of (square) matrices."""
    xs = [x if _is_tracer(x) else _np.asarray(x) for x in xs]
    d = _float_type(fname, *xs, *([] if like is None else [like]))
    out = []
    for x in xs:
        if x.ndim < 2:
            raise ShapeError(f"{fname}: {x.ndim}-dimensional array given. Array must be at least "
                             "two-dimensional", user_loc())
        if square and x.shape[-1] != x.shape[-2]:
            raise ShapeError(f"{fname}: last 2 dimensions of the array must be square, got shape "
                             f"{tuple(x.shape)}", user_loc())
        out.append(astype(x, d) if x.dtype != d else x)
    return out


def _batch_broadcast(fname, a, b):
    """Broadcast the stack dimensions of a (..., n, n) and b (..., n, m)."""
    try:
        batch = _np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ValueError:
        raise ShapeError(f"{fname}: the stack shapes {tuple(a.shape[:-2])} and {tuple(b.shape[:-2])} "
                         "do not broadcast", user_loc()) from None
    return broadcast_to(a, batch + tuple(a.shape[-2:])), broadcast_to(b, batch + tuple(b.shape[-2:]))


def solve(a, b):
    """NumPy's solve: ``a @ x = b`` by LU with partial pivoting. ``b`` is a vector only when it
    is 1-d (NumPy 2); otherwise a stack of (n, m) right-hand sides."""
    if not (_is_tracer(a) or _is_tracer(b)):
        return _np.linalg.solve(a, b)
    b = b if _is_tracer(b) else _np.asarray(b)
    (a,) = _matrices("numpy.linalg.solve", a, like=b)
    vector = b.ndim == 1
    b = astype(b, a.dtype) if b.dtype != a.dtype else b
    if vector:
        b = expand_dims(b, -1)
    if b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"numpy.linalg.solve: b has {b.shape[-2]} rows where a has {a.shape[-1]} "
                         f"(a {tuple(a.shape)}, b {tuple(b.shape)})", user_loc())
    a, b = _batch_broadcast("numpy.linalg.solve", a, b)
    u, y, _ = _f.eliminate(a, b)
    x = _f.triangular_solve(u, y, lower=False)
    return x[..., 0] if vector else x


def inv(a):
    """NumPy's inv, as ``solve(a, I)``."""
    if not _is_tracer(a):
        return _np.linalg.inv(a)
    (a,) = _matrices("numpy.linalg.inv", a)
    n = a.shape[-1]
    return solve(a, broadcast_to(_np.eye(n, dtype=a.dtype), tuple(a.shape)))


def _lu_diagonal(a):
    u, _, sign = _f.eliminate(a)
    return diagonal(u, axis1=-2, axis2=-1), sign


def det(a):
    """NumPy's det: the product of the LU pivots and the permutation's sign."""
    if not _is_tracer(a):
        return _np.linalg.det(a)
    (a,) = _matrices("numpy.linalg.det", a)
    if a.shape[-1] == 0:
        return _np.ones(a.shape[:-2], a.dtype)
    d, sign = _lu_diagonal(a)
    r = sign * prod(d, axis=-1)
    return where(r == 0, 0, r)         # NumPy's singular determinant is +0.0


def slogdet(a):
    """NumPy's slogdet: ``(sign, log|det|)`` from the LU pivots; a singular matrix gives
    ``(0, -inf)``."""
    if not _is_tracer(a):
        return _np.linalg.slogdet(a)
    (a,) = _matrices("numpy.linalg.slogdet", a)
    if a.shape[-1] == 0:
        return _SlogdetResult(_np.ones(a.shape[:-2], a.dtype), _np.zeros(a.shape[:-2], a.dtype))
    d, sign = _lu_diagonal(a)
    sign = sign * prod(_np.sign(d), axis=-1)
    return _SlogdetResult(where(sign == 0, 0, sign), sum(log(absolute(d)), axis=-1))


def cholesky(a, /, *, upper=False):
    """NumPy's cholesky: the lower factor (``upper=True``: the upper one, computed from the
    upper triangle), reading only that triangle of ``a`` as LAPACK does."""
    if not _is_tracer(a):
        return _np.linalg.cholesky(a, upper=upper)
    (a,) = _matrices("numpy.linalg.cholesky", a)
    if upper:
        return swapaxes(_f.cholesky_lower(swapaxes(a, -1, -2)), -1, -2)
    return _f.cholesky_lower(a)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """SciPy's ``scipy.linalg.solve_triangular``: ``a @ x = b`` (``trans`` 1 or "T", and 2 or
    "C" for real arrays: ``a.T @ x = b``) reading only the lower or upper triangle of ``a``
    (and not its diagonal where ``unit_diagonal``). ``b`` is (n,) or (n, m), and, unlike
    SciPy, both may be stacks (``..., n, n`` and ``..., n, m``). ``overwrite_b`` and
    ``check_finite`` are accepted and ignored."""
    fname = "vmapc.numpy.linalg.solve_triangular"
    if trans not in (0, 1, 2, "N", "T", "C"):
        raise ShapeError(f"{fname}: invalid trans {trans!r} (0, 1, 2, 'N', 'T' or 'C')", user_loc())
    if not (_is_tracer(a) or _is_tracer(b)):
        a, b = _np.asarray(a), _np.asarray(b)
        d = _float_type(fname, a, b)
        t = (_np.tril if lower else _np.triu)(a).astype(d)
        if unit_diagonal:
            t = t - _np.eye(a.shape[-1], dtype=d) * _np.diagonal(t, axis1=-2, axis2=-1)[..., None, :] \
                + _np.eye(a.shape[-1], dtype=d)
        if trans in (1, 2, "T", "C"):
            t = _np.swapaxes(t, -1, -2)
        return _np.linalg.solve(t, b[..., None] if b.ndim == 1 else b)[..., 0] if b.ndim == 1 \
            else _np.linalg.solve(t, b)
    b = b if _is_tracer(b) else _np.asarray(b)
    (a,) = _matrices(fname, a, like=b)
    b = astype(b, a.dtype) if b.dtype != a.dtype else b
    vector = b.ndim == 1
    if vector:
        b = expand_dims(b, -1)
    if b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"{fname}: shapes of a {tuple(a.shape)} and b {tuple(b.shape)} are "
                         "incompatible", user_loc())
    if trans in (1, 2, "T", "C"):
        a, lower = swapaxes(a, -1, -2), not lower
    x = _f.triangular_solve(a, b, lower=lower, unit_diagonal=unit_diagonal)
    return x[..., 0] if vector else x


def qr(a, mode="reduced"):
    """NumPy's qr by Householder reflections, in modes "reduced", "complete" and "r"
    (LAPACK's sign convention, so Q and R match NumPy's). Mode "raw" is not supported."""
    if not _is_tracer(a):
        return _np.linalg.qr(a, mode)
    if mode == "raw":
        raise UnsupportedError("numpy.linalg.qr: mode='raw' (LAPACK's Householder vectors) is not "
                               "supported", user_loc())
    if mode not in ("reduced", "complete", "r"):
        raise ShapeError(f"numpy.linalg.qr: unrecognized mode {mode!r}", user_loc())
    (a,) = _matrices("numpy.linalg.qr", a, square=False)
    q, r = _f.householder_qr(a, complete=mode == "complete")
    return r if mode == "r" else _QRResult(q, r)


def _symmetric(fname, a, UPLO):
    if UPLO not in ("L", "U"):
        raise ShapeError(f"{fname}: UPLO argument must be 'L' or 'U', got {UPLO!r}", user_loc())
    (a,) = _matrices(fname, a)
    if UPLO == "L":
        return tril(a) + swapaxes(tril(a, -1), -1, -2)
    return triu(a) + swapaxes(triu(a, 1), -1, -2)


def eigh(a, UPLO="L"):
    """NumPy's eigh by cyclic Jacobi rotations, reading the ``UPLO`` triangle: eigenvalues
    ascending, eigenvectors as columns (an ``EighResult``). Each eigenvector's sign, and the
    basis of a repeated eigenvalue's space, may differ from LAPACK's."""
    if not _is_tracer(a):
        return _np.linalg.eigh(a, UPLO)
    w, v = _f.jacobi_eigh(_symmetric("numpy.linalg.eigh", a, UPLO))
    return _EighResult(w, v)


def eigvalsh(a, UPLO="L"):
    """NumPy's eigvalsh: the eigenvalues of :func:`eigh`, ascending."""
    if not _is_tracer(a):
        return _np.linalg.eigvalsh(a, UPLO)
    return _f.jacobi_eigh(_symmetric("numpy.linalg.eigvalsh", a, UPLO))[0]


def _singular_values(x, row, col, keepdims, reduce):
    """``reduce`` (max, min or sum) of the singular values of the matrices on axes (row, col)."""
    m = moveaxis(x, (row, col), (-2, -1))
    r = reduce(svd(m, compute_uv=False), axis=-1)
    if keepdims:
        r = reshape(r, tuple(1 if i in (row, col) else d for i, d in enumerate(x.shape)))
    return r


def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's norm: vector norms of any order, and matrix norms of every order (2, -2 and
    the nuclear norm through :func:`svd`'s singular values)."""
    if not _is_tracer(x):
        return _np.linalg.norm(x, ord, axis, keepdims)
    if dt.is_complex(x.dtype):
        # The vector norms and the matrix 1, inf and Frobenius norms are norms of the
        # magnitudes; 2, -2 and the nuclear norm need a complex SVD, which is not provided.
        if ord in (2, -2, "nuc") and (x.ndim == 2 if axis is None else _np.ndim(axis) == 1 and len(axis) == 2):
            raise DTypeError(f"numpy.linalg.norm: ord={ord!r} of a complex matrix needs a complex SVD, "
                             "which vmapc does not provide", user_loc())
        x = absolute(x)
    if not dt.is_float(x.dtype):
        x = astype(x, dt.FLOAT64)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and x.ndim == 2) or (ord == 2 and x.ndim == 1):
            r = sqrt(sum(multiply(x, x)))
            return reshape(r, (1,) * x.ndim) if keepdims else r
        if x.ndim not in (1, 2):
            raise ShapeError("Improper number of dimensions to norm.", user_loc())
        axis = tuple(range(x.ndim))
    axes = _axes(axis, x.ndim, "numpy.linalg.norm")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) != 2:
        raise ShapeError("Improper number of dimensions to norm.", user_loc())
    row, col = axes
    if ord in (None, "f", "fro"):
        return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))
    if ord in (1, -1, _np.inf, -_np.inf):
        inner, outer = (row, col) if ord in (1, -1) else (col, row)
        outer -= outer > inner  # the inner axis is gone
        extreme = max if ord in (1, _np.inf) else min
        r = extreme(sum(absolute(x), axis=inner), axis=outer)
        if keepdims:
            r = reshape(r, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
        return r
    if ord in (2, -2, "nuc"):
        return _singular_values(x, row, col, keepdims, {2: max, -2: min, "nuc": sum}[ord])
    raise ShapeError("Invalid norm order for matrices.", user_loc())

def _vector_norm(x, ord, axes, keepdims):
    if ord is None or ord == 2:
        return sqrt(sum(multiply(x, x), axis=axes, keepdims=keepdims))
    if isinstance(ord, str):
        raise ShapeError(f"Invalid norm order '{ord}' for vectors", user_loc())
    if ord == _np.inf:
        return max(absolute(x), axis=axes, keepdims=keepdims)
    if ord == -_np.inf:
        return min(absolute(x), axis=axes, keepdims=keepdims)
    if ord == 0:
        return sum(astype(not_equal(x, 0), x.dtype), axis=axes, keepdims=keepdims)
    if ord == 1:
        return sum(absolute(x), axis=axes, keepdims=keepdims)
    r = sum(power(absolute(x), ord), axis=axes, keepdims=keepdims)
    return power(r, astype(_np.reciprocal(float(ord)), r.dtype))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """NumPy's svd by one-sided Jacobi (:func:`vmapc.numpy._factor.jacobi_svd`): an
    ``SVDResult`` ``(U, S, Vh)`` with ``a = (U[..., :k] * S) @ Vh[..., :k, :]`` and the
    singular values ``S`` descending, or ``S`` alone without ``compute_uv``. Each singular
    vector's sign (and the basis of a repeated singular value's spaces, and of the
    complements ``full_matrices`` adds) may differ from LAPACK's. ``hermitian=True`` reads
    the lower triangle only, as NumPy's (which uses eigh) does; the factorization is then
    the general one."""
    if not _is_tracer(a):
        return _np.linalg.svd(a, full_matrices, compute_uv, hermitian)
    fname = "numpy.linalg.svd"
    a = _symmetric(fname, a, "L") if hermitian else _matrices(fname, a, square=False)[0]
    m, n = a.shape[-2:]
    batch = tuple(a.shape[:-2])
    k = _builtins.min(m, n)
    if k == 0:
        s = _np.zeros(batch + (0,), a.dtype)
        if not compute_uv:
            return s
        eye = lambda d, cols: _np.broadcast_to(_np.eye(d, cols, dtype=a.dtype), batch + (d, cols)).copy()
        return _SVDResult(eye(m, m if full_matrices else k), s, eye(n if full_matrices else k, n))
    wide = m < n
    u, s, v = _f.jacobi_svd(swapaxes(a, -1, -2) if wide else a, compute_uv, full_matrices)
    if not compute_uv:
        return s
    if wide:                      # a.T = u s v.T, so a = v s u.T
        u, v = v, u
    return _SVDResult(u, s, swapaxes(v, -1, -2))


_NO_VALUE = object()


def _last_axis(x, dtype):
    """A per-matrix tolerance (a number, or an array over the stack) with a trailing axis to
    broadcast against the singular values."""
    x = x if _is_tracer(x) else _np.asarray(x)
    return expand_dims(astype(x, dtype) if x.dtype != dtype else x, -1)


def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
    """NumPy's pinv: ``V diag(1/S) U^T`` over the singular values above ``rcond`` (or
    ``rtol``) times the largest (NumPy's defaults: ``rcond`` 1e-15, ``rtol=None``
    ``max(m, n) * eps``)."""
    if not _is_tracer(a):
        kw = {} if rtol is _NO_VALUE else {"rtol": rtol}
        return _np.linalg.pinv(a, rcond, hermitian, **kw)
    fname = "numpy.linalg.pinv"
    (a,) = _matrices(fname, a, square=False)
    m, n = a.shape[-2:]
    if rcond is None:
        rcond = 1e-15 if rtol is _NO_VALUE else _builtins.max(m, n) * _np.finfo(a.dtype).eps if rtol is None else rtol
    elif rtol is not _NO_VALUE:
        raise ShapeError(f"{fname}: `rtol` and `rcond` can't be both set.", user_loc())
    if _builtins.min(m, n) == 0:
        return _np.zeros(tuple(a.shape[:-2]) + (n, m), a.dtype)
    u, s, vh = svd(a, full_matrices=False, hermitian=hermitian)
    large = s > _last_axis(rcond, a.dtype) * max(s, axis=-1, keepdims=True)
    inv_s = where(large, 1 / where(large, s, 1), 0)
    return swapaxes(vh, -1, -2) @ (expand_dims(inv_s, -1) * swapaxes(u, -1, -2))


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """NumPy's matrix_rank: the number of singular values above ``tol`` (default: the
    largest times ``max(m, n) * eps``, or times ``rtol``)."""
    if not _is_tracer(A):
        return _np.linalg.matrix_rank(A, tol, hermitian, rtol=rtol)
    fname = "numpy.linalg.matrix_rank"
    if rtol is not None and tol is not None:
        raise ShapeError(f"{fname}: `tol` and `rtol` can't be both set.", user_loc())
    if A.ndim < 2:         # a vector: rank 1 unless it is all zeros
        return astype(sum(astype(not_equal(A, 0), dt.INT64)) > 0, dt.INT64)
    s = svd(A, compute_uv=False, hermitian=hermitian)
    if tol is None:
        r = _builtins.max(A.shape[-2:]) * _np.finfo(s.dtype).eps if rtol is None else _last_axis(rtol, s.dtype)
        tol = (max(s, axis=-1, keepdims=True) if s.shape[-1] else 0) * r
    else:
        tol = _last_axis(tol, s.dtype)
    return sum(astype(s > tol, dt.INT64), axis=-1)


def cond(x, p=None):
    """NumPy's cond: ``S[0] / S[-1]`` for ``p`` None or 2 (``p=-2``: the inverse), else
    ``norm(x, p) * norm(inv(x), p)``; NaN results become inf unless ``x`` holds a NaN, as
    NumPy's do."""
    if not _is_tracer(x):
        return _np.linalg.cond(x, p)
    fname = "numpy.linalg.cond"
    (x,) = _matrices(fname, x, square=p not in (None, 2, -2))
    if _builtins.min(x.shape[-2:]) == 0:
        raise ShapeError(f"{fname}: arrays cannot be empty", user_loc())
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        r = s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    else:
        r = norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))
    x_nan = max(astype(isnan(x), dt.INT64), axis=(-2, -1)) > 0
    return where(logical_and(isnan(r), logical_not(x_nan)), _np.inf, r)


_HANDLED[_np.linalg.norm] = norm
for _name in ("solve", "inv", "det", "slogdet", "cholesky", "qr", "eigh", "eigvalsh", "svd", "pinv",
              "matrix_rank", "cond"):
    _HANDLED[getattr(_np.linalg, _name)] = globals()[_name]
