"""The matrix factorizations behind ``vmapc.numpy.linalg``, written as array programs.

IREE has no LAPACK, and vmap wants every example's matrix to take the same path anyway, so
each factorization here is the textbook algorithm written with whole-matrix operations:
step ``k`` of an ``n``-step algorithm reads row or column ``k`` through a mask
(``np.arange(n) == k``), updates the whole matrix with a masked rank-one correction, and
never branches on data. The code is plain NumPy: on tracers it records existing IR ops
(``where``, ``sum``, ``argmax``, elementwise arithmetic, ``matmul``), so these functions
batch, lower and differentiate through the rules those ops already have, and on NumPy arrays
they simply run (the tests use that to check the algorithm itself).

A step ``k`` may be a Python int or a traced integer. :func:`steps` unrolls the loop for
matrices of at most :data:`UNROLL` rows (the masks are then constants and IREE fuses the
steps freely) and otherwise emits one :func:`vmapc.fori_loop`, whose body is traced once.
Every step costs O(n^2) work per matrix, so a factorization is O(n^3): the right cost for
the small per-example matrices vmap is used for.

What the algorithms are:

* **LU with partial pivoting** (:func:`eliminate`): Gaussian elimination applied to the
  augmented system ``[a | b]``, the pivot being the first entry of largest magnitude on or
  below the diagonal (LAPACK's ``getrf`` choice). It returns ``U``, ``L^-1 P b`` and the
  permutation's sign; ``solve``, ``inv``, ``det`` and ``slogdet`` are built on it. A zero
  pivot column is skipped, as ``getrf`` does, so a singular matrix has a zero on ``U``'s
  diagonal rather than NaNs.
* **Triangular solves** (:func:`triangular_solve`): forward or back substitution, one row
  of the solution per step.
* **Cholesky** (:func:`cholesky_lower`): the right-looking algorithm, reading only the
  lower triangle, as ``potrf`` does.
* **QR** (:func:`householder_qr`): Householder reflections with LAPACK's sign convention
  (``R[k, k] = -sign(a_kk) * ||a_k||``, no reflection where the column is already zero below
  the diagonal), so ``Q`` and ``R`` agree with NumPy's, not just up to signs.
* **Symmetric eigenproblems** (:func:`jacobi_eigh`): cyclic two-sided Jacobi rotations.
* **SVD** (:func:`jacobi_svd`): one-sided Jacobi, rotating pairs of columns until they are
  orthogonal; the singular values are the columns' norms.
"""

from __future__ import annotations

import numpy as np

#: Matrices with at most this many rows are factorized by unrolled steps; larger ones by a loop.
UNROLL = 16


def steps(n, body, state, reverse=False):
    """``for k in range(n): state = body(k, state)`` (``reverse``: k from n - 1 down),
    unrolled for ``n <= UNROLL``, else a :func:`vmapc.fori_loop`."""
    if n <= UNROLL:
        for k in (range(n - 1, -1, -1) if reverse else range(n)):
            state = body(k, state)
        return state
    from ..control import fori_loop
    if reverse:
        return fori_loop(0, n, lambda i, s: body(n - 1 - i, s), state)
    return fori_loop(0, n, body, state)


def _row(a, mask, k=None):
    """Row ``mask`` (a one-hot over the second-to-last axis, batched or not) of a: a static
    slice where the step ``k`` is a Python int, else a masked sum."""
    if isinstance(k, int):
        return a[..., k, :]
    return np.sum(np.where(np.expand_dims(mask, -1), a, 0), axis=-2)


def _col(a, mask, k=None):
    """Column ``mask`` (a one-hot over the last axis) of a."""
    if isinstance(k, int):
        return a[..., :, k]
    return np.sum(np.where(mask, a, 0), axis=-1)


def _at(v, mask, k):
    """Entry ``k`` of the vectors v (..., n), keeping a trailing axis of 1."""
    if isinstance(k, int):
        return v[..., k:k + 1]
    return np.sum(np.where(mask, v, 0), axis=-1, keepdims=True)


def _outer(u, v):
    return np.expand_dims(u, -1) * np.expand_dims(v, -2)


def eliminate(a, b=None):
    """Gaussian elimination with partial pivoting of the stack ``a`` (..., n, n), applied to
    ``b`` (..., n, m) too. Returns ``(u, y, sign)``: ``u`` is upper triangular above its
    diagonal (what is below is rounding noise, never read), ``y = L^-1 P b`` (None without
    b) and ``sign`` is the determinant of ``P``."""
    n = a.shape[-1]
    idx = np.arange(n)

    def body(k, state):
        a, b, sign = state
        ek = idx == k
        col = _col(a, ek, k)
        p = np.argmax(np.where(idx >= k, np.abs(col), -1), axis=-1)
        ep = idx == np.expand_dims(p, -1)
        a, rk = _swap(a, ek, ep, k)
        if b is not None:
            b, bk = _swap(b, ek, ep, k)
        sign = np.where(p == k, sign, -sign)
        col = _col(a, ek, k)
        pivot = _at(col, ek, k)
        mult = np.where(idx > k, col / np.where(pivot == 0, 1, pivot), 0)
        a = a - _outer(mult, rk)
        if b is not None:
            b = b - _outer(mult, bk)
        return a, b, sign
    sign = np.ones(a.shape[:-2], a.dtype)
    return steps(n, body, (a, b, sign))


def _swap(a, ek, ep, k):
    """Swap rows ``ek`` and ``ep`` (one-hot masks) of a; returns the new matrix and its row k."""
    rk, rp = _row(a, ek, k), _row(a, ep)
    a = np.where(np.expand_dims(ek, -1), np.expand_dims(rp, -2),
                 np.where(np.expand_dims(ep, -1), np.expand_dims(rk, -2), a))
    return a, rp


def triangular_solve(t, b, lower, unit_diagonal=False):
    """Solve ``t x = b`` for ``x`` (..., n, m), reading only the lower (or upper) triangle of
    ``t`` (..., n, n), and not its diagonal where ``unit_diagonal``."""
    n = t.shape[-1]
    idx = np.arange(n)

    def body(k, x):
        ek = idx == k
        tk = _row(t, ek, k)
        off = np.where(idx < k, tk, 0) if lower else np.where(idx > k, tk, 0)
        s = np.sum(np.expand_dims(off, -1) * x, axis=-2)     # off @ x, fusable with its producers
        xk = _row(b, ek, k) - s
        if not unit_diagonal:
            xk = xk / _at(tk, ek, k)
        return np.where(np.expand_dims(ek, -1), np.expand_dims(xk, -2), x)
    x0 = np.zeros(np.broadcast_shapes(t.shape[:-2], b.shape[:-2]) + b.shape[-2:], b.dtype)
    return steps(n, body, x0, reverse=not lower)


def cholesky_lower(a):
    """The lower Cholesky factor of the stack ``a``, reading only its lower triangle. A matrix
    that is not positive definite gives NaN from the first failing column on."""
    n = a.shape[-1]
    idx = np.arange(n)

    def body(k, state):
        s, l = state
        ek = idx == k
        col = _col(s, ek, k)
        d = np.sqrt(_at(col, ek, k))
        lk = np.where(idx > k, col / d, np.where(ek, d, 0))
        l = np.where(ek, np.expand_dims(lk, -1), l)
        s = s - _outer(lk, lk)
        return s, l
    return steps(n, body, (a, np.zeros_like(a)))[1]


def householder_qr(a, complete):
    """Householder QR of the stack ``a`` (..., m, n): returns ``(q, r)`` with ``q`` (..., m, m)
    and ``r`` (..., m, n) upper triangular (``complete``), or their leading k = min(m, n)
    columns and rows."""
    m, n = a.shape[-2:]
    kk = min(m, n)
    rows, cols = np.arange(m), np.arange(n)
    q0 = np.broadcast_to(np.eye(m, dtype=a.dtype), a.shape[:-2] + (m, m)) * np.ones((), a.dtype)

    def body(j, state):
        r, q = state
        ej = rows == j
        x = np.where(rows >= j, _col(r, cols == j, j), 0)
        alpha = _at(x, ej, j)
        sigma = np.sum(np.where(rows > j, x * x, 0), axis=-1, keepdims=True)
        norm = np.sqrt(alpha * alpha + sigma)
        beta = np.where(alpha < 0, norm, -norm)
        v = x - np.where(ej, beta, 0)
        vtv = np.sum(v * v, axis=-1, keepdims=True)
        scale = np.where(sigma == 0, 0, 2 / np.where(sigma == 0, 1, vtv))
        sv = scale * v
        r = r - _outer(sv, np.sum(np.expand_dims(v, -1) * r, axis=-2))       # v @ r
        q = q - _outer(np.sum(q * np.expand_dims(v, -2), axis=-1), sv)        # q @ v
        return r, q
    r, q = steps(kk, body, (a, q0))
    r = np.where(np.expand_dims(rows, -1) <= cols, r, 0)      # exact zeros below the diagonal
    if not complete:
        q, r = q[..., :, :kk], r[..., :kk, :]
    return q, r


#: Cyclic Jacobi sweeps of :func:`jacobi_eigh` (each rotates every off-diagonal pair once;
#: convergence is quadratic, and 12 sweeps take any symmetric matrix of up to 32 rows to
#: diagonal in float64).
SWEEPS = 12


def jacobi_eigh(a):
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric stack ``a``, by
    cyclic Jacobi rotations (Golub and Van Loan's ``sym.schur2``): a fixed number of sweeps
    in a :func:`vmapc.fori_loop`, each sweep's rotations unrolled (their pairs are static, so
    rows and columns are static slices)."""
    n = a.shape[-1]
    rows = np.arange(n)
    v0 = np.broadcast_to(np.eye(n, dtype=a.dtype), a.shape) * np.ones((), a.dtype)

    def rotate(p, q, a, v):
        app, aqq, apq = a[..., p, p:p + 1], a[..., q, q:q + 1], a[..., p, q:q + 1]
        zero = apq == 0
        tau = (aqq - app) / (2 * np.where(zero, 1, apq))
        t = 1 / (np.abs(tau) + np.sqrt(1 + tau * tau))
        t = np.where(tau >= 0, t, -t)
        t = np.where(zero, 0, t)
        c = 1 / np.sqrt(1 + t * t)
        s = t * c
        rp, rq = a[..., p, :], a[..., q, :]
        a = np.where(np.expand_dims(rows == p, -1), np.expand_dims(c * rp - s * rq, -2),
                     np.where(np.expand_dims(rows == q, -1), np.expand_dims(s * rp + c * rq, -2), a))
        cs, ss = np.expand_dims(c, -1), np.expand_dims(s, -1)
        out = []
        for m in (a, v):
            cp, cq = m[..., :, p:p + 1], m[..., :, q:q + 1]
            out.append(np.where(rows == p, cs * cp - ss * cq, np.where(rows == q, ss * cp + cs * cq, m)))
        return out

    def sweep(_, state):
        a, v = state
        for p in range(n - 1):
            for q in range(p + 1, n):
                a, v = rotate(p, q, a, v)
        return a, v
    if n > 1:
        from ..control import fori_loop
        a, v = fori_loop(0, SWEEPS, sweep, (a, v0))
    else:
        v = v0
    w = np.diagonal(a, axis1=-2, axis2=-1)
    order = np.argsort(w, axis=-1)
    return np.take_along_axis(w, order, axis=-1), np.take_along_axis(v, np.expand_dims(order, -2), axis=-1)


def svd_sweeps(n):
    """The cyclic sweeps :func:`jacobi_svd` makes for ``n`` columns (each sweep rotates every
    pair of columns once). One-sided Jacobi converges quadratically once the columns are
    nearly orthogonal, but getting there takes more sweeps for more columns: measured on
    Gaussian and ill-conditioned float64 matrices, 6 sweeps for 6 columns, 10 for 16, 12
    for 24, 14 for 32; this gives two more than that."""
    return 8 + n // 4


def _rotate_columns(wp, wq, vp, vq):
    """One Jacobi rotation of the columns ``wp``, ``wq`` (..., m) making them orthogonal
    (Hestenes' one-sided method: the two-sided rotation of their Gram matrix, its entries
    computed afresh from the columns), applied to ``vp``, ``vq`` too (None: not tracked).

    With ``d = |wq|^2 - |wp|^2`` and ``g = wp . wq`` the tangent of the angle is
    ``t = sign(d) 2g / (|d| + sqrt(d^2 + 4g^2))``: the usual ``sign(z) / (|z| + sqrt(1 + z^2))``
    with ``z = d / 2g`` multiplied through by ``2|g|``, so that nothing divides by a tiny
    ``g`` and no branch is needed when ``g == 0`` (then ``t == 0``)."""
    alpha = np.sum(wp * wp, axis=-1, keepdims=True)
    beta = np.sum(wq * wq, axis=-1, keepdims=True)
    gamma = np.sum(wp * wq, axis=-1, keepdims=True)
    d = beta - alpha
    h = d * d + 4 * gamma * gamma
    r = np.sqrt(np.where(h == 0, 1, h))         # (no infinite derivative at h == 0)
    t = 2 * gamma / (np.abs(d) + r)
    t = np.where(d < 0, -t, t)
    c = 1 / np.sqrt(1 + t * t)
    s = c * t
    wp, wq = c * wp - s * wq, s * wp + c * wq
    if vp is not None:
        vp, vq = c * vp - s * vq, s * vp + c * vq
    return wp, wq, vp, vq


def jacobi_svd(a, compute_uv=True, full=False):
    """The singular value decomposition of the stack ``a`` (..., m, n) with ``m >= n``, by
    one-sided Jacobi (Hestenes; Demmel and Veselic showed it computes even the small
    singular values to high relative accuracy, which going through the eigenvalues of
    ``a.T @ a`` does not). Returns ``(u, s, v)``: ``s`` (..., n) descending, ``v`` (..., n, n)
    orthogonal with ``a @ v = u * s``, ``u`` (..., m, n), or (..., m, m) where ``full``; only
    ``s`` (u and v None) without ``compute_uv``.

    The columns of ``w = a @ v`` are rotated in pairs until they are orthogonal: a fixed
    number of sweeps (:func:`svd_sweeps`) in a :func:`vmapc.fori_loop`, each sweep's
    ``n(n-1)/2`` rotations unrolled, with the columns held as separate vectors so that a
    rotation costs O(m). The singular values are then the column norms; ``u`` comes from
    a Householder QR of the sorted ``w`` (its columns are orthogonal already, so ``R`` is
    diagonal up to rounding): that also gives orthonormal columns for zero singular values
    and the complement that ``full`` asks for. The matrix is scaled by its largest entry
    first, so that squared norms neither overflow nor underflow needlessly."""
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    big = np.max(np.abs(a), axis=(-2, -1), keepdims=True)
    scale = np.where(big == 0, 1, big)
    wt = np.swapaxes(a / scale, -1, -2)                          # (..., n, m): w's columns as rows
    vt = np.broadcast_to(np.eye(n, dtype=a.dtype), batch + (n, n)) * np.ones((), a.dtype) if compute_uv else None

    def sweep(_, state):
        wt, vt = state
        w = [wt[..., j, :] for j in range(n)]
        v = [vt[..., j, :] for j in range(n)] if compute_uv else [None] * n
        for p in range(n - 1):
            for q in range(p + 1, n):
                w[p], w[q], v[p], v[q] = _rotate_columns(w[p], w[q], v[p], v[q])
        return np.stack(w, axis=-2), (np.stack(v, axis=-2) if compute_uv else None)
    if n > 1:
        from ..control import fori_loop
        if compute_uv:
            wt, vt = fori_loop(0, svd_sweeps(n), sweep, (wt, vt))
        else:
            wt = fori_loop(0, svd_sweeps(n), lambda i, wt: sweep(i, (wt, None))[0], wt)
    sq = np.sum(wt * wt, axis=-1)
    norms = np.where(sq == 0, 0, np.sqrt(np.where(sq == 0, 1, sq)))   # (a zero norm's derivative is 0, not NaN)
    order = np.argsort(-norms, axis=-1)                         # descending (stable on ties)
    s = np.take_along_axis(norms, order, axis=-1) * scale[..., 0]
    if not compute_uv:
        return None, s, None
    idx = np.expand_dims(order, -1)
    w = np.swapaxes(np.take_along_axis(wt, idx, axis=-2), -1, -2)
    v = np.swapaxes(np.take_along_axis(vt, idx, axis=-2), -1, -2)
    q, r = householder_qr(w, complete=full)
    sign = np.where(np.diagonal(r, axis1=-2, axis2=-1)[..., :n] < 0, -1, 1).astype(a.dtype)
    if full and m > n:
        u = np.concatenate([q[..., :, :n] * np.expand_dims(sign, -2), q[..., :, n:]], axis=-1)
    else:
        u = q * np.expand_dims(sign, -2)
    return u, s, v
