"""``vmapc.numpy.linalg`` checked batched against NumPy's LAPACK.

Each function is vmapped over a batch of matrices: random Gaussian ones and ill-conditioned
ones built with a chosen condition number (random orthogonal factors around geometrically
spaced singular values). Every example's result is compared with ``np.linalg`` run on the
same matrix in float64, within a tolerance derived from that matrix's condition number:
``TOL * n * eps * cond`` (the forward-error bound of a backward-stable algorithm, which
both vmapc's and LAPACK's are). float32 matrices go up to cond 1e4, float64 ones up to 1e10.

The batches run on the reference evaluator (every size, both the unrolled and the looped
form of the algorithms) and, in one module, through IREE on the CPU. The vmap sweep of
design.md section 8 (every in_dims mix, both out_dims, nesting) runs over traced linalg
programs the same way the op samples' sweep does.
"""

from __future__ import annotations

import numpy as np
import pytest

import vmapc
import vmapc.numpy as vnp
from vmapc import pytree, testing
from vmapc.numpy import _factor

TOL = 20
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}
MAX_COND = {np.float32: 1e4, np.float64: 1e10}


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diagonal(r))


def general(rng, n, dtype, count=12):
    """``count`` matrices: half Gaussian, half with condition numbers up to MAX_COND."""
    out = [rng.standard_normal((n, n)) for _ in range(count // 2)]
    for c in np.geomspace(10, MAX_COND[dtype], count - count // 2):
        s = np.geomspace(1, 1 / c, n) * rng.choice([-1, 1], n)
        out.append(_orthogonal(rng, n) @ np.diag(s) @ _orthogonal(rng, n))
    return np.asarray(out, dtype)


def spd(rng, n, dtype, count=12):
    """Symmetric positive definite matrices, condition numbers 1 to MAX_COND."""
    out = []
    for c in np.geomspace(1, MAX_COND[dtype], count):
        q = _orthogonal(rng, n)
        out.append(q @ np.diag(np.geomspace(1, 1 / c, n)) @ q.T)
    a = np.asarray(out)
    return np.asarray((a + a.transpose(0, 2, 1)) / 2, dtype)


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), np.finfo(np.float64).tiny)


def _bound(a, dtype):
    n = a.shape[-1]
    return TOL * n * EPS[dtype] * np.linalg.cond(np.asarray(a, np.float64))


def reference_vmap(f, *args):
    """f vmapped over axis 0 of every argument, run by the reference evaluator."""
    fn = vmapc.trace(f, *[x[0] for x in args])
    outs = vmapc.eval(vmapc.vmap(fn, in_dims=0, axis_size=len(args[0])), *args)
    return pytree.unflatten(fn.out_tree, outs)


def _program(a, b, s):
    """Everything at once, so one compiled module checks every function."""
    lower = np.linalg.cholesky(s)
    q, r = np.linalg.qr(a)
    return (np.linalg.solve(a, b), np.linalg.inv(a), np.linalg.det(a), np.linalg.slogdet(a), lower,
            vnp.linalg.solve_triangular(lower, b, lower=True), vnp.linalg.solve_triangular(lower, b, trans="T",
                                                                                          lower=True), q, r)


def _inputs(rng, n, dtype):
    a, s = general(rng, n, dtype), spd(rng, n, dtype)
    b = np.asarray(rng.standard_normal((len(a), n)), dtype)
    return a, b, s


def _check(a, b, s, outs, dtype):
    """Compare each example's outputs with NumPy's float64 LAPACK."""
    x, ainv, det, (sign, logdet), lower, y, yt, q, r = outs
    for name, v in zip("x inv det sign logdet chol trsv trsv_t q r".split(),
                       (x, ainv, det, sign, logdet, lower, y, yt, q, r)):
        assert v.dtype == dtype, f"{name}: dtype {v.dtype}"
    a64, b64, s64 = (np.asarray(v, np.float64) for v in (a, b, s))
    for i in range(len(a)):
        ka, ks = _bound(a64[i], dtype), _bound(s64[i], dtype)
        what = f"{dtype.__name__} example {i} (cond {np.linalg.cond(a64[i]):.1e} / {np.linalg.cond(s64[i]):.1e})"
        assert _rel(x[i], np.linalg.solve(a64[i], b64[i])) <= ka, f"solve, {what}"
        assert _rel(ainv[i], np.linalg.inv(a64[i])) <= ka, f"inv, {what}"
        assert _rel(det[i], np.linalg.det(a64[i])) <= ka, f"det, {what}"
        s_np, l_np = np.linalg.slogdet(a64[i])
        assert sign[i] == s_np and abs(logdet[i] - l_np) <= ka, f"slogdet, {what}"
        l64 = np.linalg.cholesky(s64[i])
        assert _rel(lower[i], l64) <= ks, f"cholesky, {what}"
        mine = np.tril(np.asarray(lower[i], np.float64))       # the triangle solve_triangular was given
        kl = _bound(mine, dtype)
        assert _rel(y[i], np.linalg.solve(mine, b64[i])) <= kl, f"solve_triangular, {what}"
        assert _rel(yt[i], np.linalg.solve(mine.T, b64[i])) <= kl, f"solve_triangular trans, {what}"
        q_np, r_np = np.linalg.qr(a64[i])
        assert _rel(q[i], q_np) <= ka and _rel(r[i], r_np) <= ka, f"qr, {what}"
        # backward stability: the residuals are small whatever the condition number
        n = a.shape[-1]
        assert _rel(q[i] @ r[i], a64[i]) <= TOL * n * EPS[dtype], f"qr residual, {what}"
        assert _rel(lower[i] @ lower[i].T, s64[i]) <= TOL * n * EPS[dtype], f"cholesky residual, {what}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, unroll", [(1, 16), (3, 16), (6, 16), (5, 2)], ids=["1", "3", "6", "5-loop"])
def test_batched_against_numpy_reference(dtype, n, unroll, monkeypatch):
    """vmap over a batch of random and ill-conditioned matrices, on the reference evaluator
    (``unroll=2``: the looped form, with traced step indices)."""
    monkeypatch.setattr(_factor, "UNROLL", unroll)
    rng = np.random.default_rng(n)
    a, b, s = _inputs(rng, n, dtype)
    outs = reference_vmap(_program, a, b, s)
    _check(a, b, s, outs, dtype)


def _sweep_samples():
    """Traced linalg programs as sweep samples (a well-conditioned generator each)."""
    def gen_general(n, dtype):
        return lambda rng: [general(rng, n, dtype, count=2)[0]]

    def gen_pair(n, m, dtype):
        return lambda rng: [general(rng, n, dtype, count=2)[0], np.asarray(rng.standard_normal((n, m)), dtype)]

    def gen_spd(n, dtype):
        return lambda rng: [spd(rng, n, dtype, count=2)[0]]
    f32, f64 = np.float32, np.float64
    progs = [("solve", lambda a, b: np.linalg.solve(a, b), [(3, 3, f32), (2, 2, f64)], gen_pair),
             ("inv_det", lambda a: (np.linalg.inv(a), np.linalg.det(a)), [(3, 3, f32)], gen_general),
             ("slogdet", lambda a: np.linalg.slogdet(a), [(3, 3, f64)], gen_general),
             ("cholesky", lambda a: np.linalg.cholesky(a), [(3, 3, f32)], gen_spd),
             ("solve_triangular", lambda a, b: vnp.linalg.solve_triangular(a, b, lower=True, unit_diagonal=True),
              [(3, 3, f64)], gen_pair),
             ("qr", lambda a: np.linalg.qr(a, "complete"), [(3, 3, f64)], gen_general),
             ("eigvalsh_norm2", lambda a: (np.linalg.eigvalsh(a), np.linalg.norm(a, 2)), [(3, 3, f64)], gen_spd),
             ("svd", lambda a: np.linalg.svd(a), [(3, 3, f32)], gen_general)]
    out = []
    for name, f, shapes, gen in progs:
        for n, m, d in shapes:
            g = gen(n, m, d) if gen is gen_pair else gen(n, d)
            args = g(np.random.default_rng(0))
            fn = vmapc.trace(f, *args)
            out.append(testing.Sample(f"linalg_{name}_{n}_{np.dtype(d).name}", fn, g))
    return out


def _sweep_cases(compiled=False):
    """The full sweep, or (``compiled``) one batched case per program."""
    rng = np.random.default_rng(16)
    if compiled:
        return [c for s in _sweep_samples()
                for c in testing.vmap_cases(s, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)]
    return [c for s in _sweep_samples() for c in testing.vmap_cases(s, rng)]


def test_vmap_sweep_reference():
    """Every in_dims mix, both out_dims and nesting, against the per-example loop."""
    for case in _sweep_cases():
        testing.assert_outputs_match(case, testing.run_reference(case), rtol=1e-4, atol=1e-4)


def test_compiled_against_numpy(vmapc_shared_cache, monkeypatch):
    """Through IREE on the CPU, in one module: the batched checks in float32 (the unrolled
    form) and float64 (the looped form), the eigh and svd checks, and one batched case of each
    sweep program."""
    rng = np.random.default_rng(4)
    cases, data = [], {}
    for dtype, n, unroll in ((np.float32, 3, 16), (np.float64, 3, 2)):
        monkeypatch.setattr(_factor, "UNROLL", unroll)
        a, b, s = _inputs(rng, n, dtype)
        fn = vmapc.vmap(vmapc.trace(_program, a[0], b[0], s[0]), in_dims=0, axis_size=len(a))
        name = f"{dtype.__name__}_{n}_{unroll}"
        cases.append(testing.Case(name, fn, [a, b, s], []))
        data[name] = (a, b, s, dtype)
    monkeypatch.setattr(_factor, "UNROLL", 16)
    sym = symmetric(rng, 3, np.float32)
    cases.append(testing.Case("eigh", vmapc.vmap(vmapc.trace(_eig_program, sym[0]), in_dims=0, axis_size=len(sym)),
                              [sym], []))
    svd_data = {}
    for dtype, shape in ((np.float32, (3, 3)), (np.float64, (4, 3))):
        a = rectangular(rng, shape, dtype)
        name = f"svd_{dtype.__name__}_{shape[0]}x{shape[1]}"
        prog = vmapc.trace(lambda a: _svd_program(a, derived=False), a[0])
        cases.append(testing.Case(name, vmapc.vmap(prog, in_dims=0, axis_size=len(a)), [a], []))
        svd_data[name] = (a, dtype)
    sweep = _sweep_cases(compiled=True)
    outs = testing.run_compiled(cases + sweep, target="cpu", group=64, modules=1)
    for name, (a, b, s, dtype) in data.items():
        flat = outs[name]
        x, ainv, det, sign, logdet, lower, y, yt, q, r = flat
        _check(a, b, s, (x, ainv, det, (sign, logdet), lower, y, yt, q, r), dtype)
    _check_eigh(sym, *outs["eigh"], np.float32)
    for name, (a, dtype) in svd_data.items():
        _check_svd(a, outs[name], dtype)
    for case in sweep:
        testing.assert_outputs_match(case, outs[case.name], rtol=1e-4, atol=1e-4)


def symmetric(rng, n, dtype, count=12):
    """Symmetric matrices: half Gaussian, half with eigenvalues spread over MAX_COND (signs mixed)."""
    out = []
    for i, c in enumerate(np.geomspace(10, MAX_COND[dtype], count)):
        if i % 2:
            x = rng.standard_normal((n, n))
            out.append(x + x.T)
        else:
            q = _orthogonal(rng, n)
            out.append(q @ np.diag(np.geomspace(1, 1 / c, n) * rng.choice([-1, 1], n)) @ q.T)
    a = np.asarray(out)
    return np.asarray((a + a.transpose(0, 2, 1)) / 2, dtype)


def _check_eigh(a, w, v, norm2, dtype):
    """Eigenvalues within TOL * n * eps * ||a|| of LAPACK's (Weyl: what a backward-stable
    method guarantees), eigenvectors orthonormal with a small residual, 2-norms close."""
    n = a.shape[-1]
    a64 = np.asarray(a, np.float64)
    for i in range(len(a)):
        scale = np.linalg.norm(a64[i], 2)
        tol = TOL * n * EPS[dtype] * scale
        assert np.abs(w[i] - np.linalg.eigvalsh(a64[i])).max() <= tol, f"eigvalsh {i}"
        assert np.abs(a64[i] @ v[i] - v[i] * w[i]).max() <= tol, f"eigh residual {i}"
        assert np.abs(v[i].T.astype(np.float64) @ v[i] - np.eye(n)).max() <= TOL * n * EPS[dtype], f"eigh orthogonality {i}"
        assert abs(norm2[i] - scale) <= tol, f"norm 2 {i}"


def _eig_program(a):
    w, v = np.linalg.eigh(a)
    return w, v, np.linalg.norm(a, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_eigh_batched_against_numpy_reference(dtype, n):
    a = symmetric(np.random.default_rng(n), n, dtype)
    w, v, norm2 = reference_vmap(_eig_program, a)
    assert w.dtype == v.dtype == norm2.dtype == dtype
    _check_eigh(a, w, v, norm2, dtype)


def test_singular_and_edge_cases():
    """Exactly singular matrices: det 0 and slogdet (0, -inf), as NumPy; solve and inv give
    non-finite values where NumPy raises LinAlgError; a matrix that is not positive definite
    gives NaN in cholesky. 0x0 determinants are 1."""
    sing = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]], [[0.0] * 3] * 3])
    det = reference_vmap(lambda a: np.linalg.det(a), sing)
    np.testing.assert_array_equal(det, [0.0, 0.0])
    sign, logdet = reference_vmap(lambda a: np.linalg.slogdet(a), sing)
    np.testing.assert_array_equal(sign, [0.0, 0.0])
    np.testing.assert_array_equal(logdet, [-np.inf, -np.inf])
    x = reference_vmap(lambda a: np.linalg.inv(a), sing)
    assert not np.isfinite(x).all(axis=(1, 2)).any()
    not_pd = np.array([[1.0, 2.0], [2.0, 1.0]])
    lower = reference_vmap(lambda a: np.linalg.cholesky(a), not_pd[None])
    assert np.isnan(lower[0, 1, 1]) and lower[0, 0, 0] == 1.0
    assert reference_vmap(lambda a: np.linalg.det(a), np.zeros((2, 0, 0))).tolist() == [1.0, 1.0]
    # columns already zero below the diagonal get no reflection (LAPACK's convention), so
    # an upper triangular matrix is its own R, even with a negative or zero diagonal entry
    # (NumPy's Q has -0.0 below the diagonal here, vmapc's +0.0)
    upper = np.array([[[2.0, 1.0, 2.0], [0.0, -3.0, 1.0], [0.0, 0.0, 5.0]], [[0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0]]])
    q, r = reference_vmap(lambda a: np.linalg.qr(a), upper)
    for i in range(2):
        q_np, r_np = np.linalg.qr(upper[i])
        np.testing.assert_array_equal(q[i], q_np)
        np.testing.assert_array_equal(r[i], r_np)


def test_derivatives_through_the_factorizations():
    """The functions are built from differentiable ops, so they differentiate: checked
    against finite differences (forward and reverse), and det's gradient against
    det(a) * inv(a).T. (eigh differentiates through its Jacobi sweeps too; its derivative
    is not checked here.)"""
    rng = np.random.default_rng(5)
    a = general(rng, 3, np.float64, count=2)[0]
    b = rng.standard_normal(3)
    s = a @ a.T + 3 * np.eye(3)
    g = vmapc.grad(lambda a: np.linalg.det(a))(a)
    np.testing.assert_allclose(g, np.linalg.det(a) * np.linalg.inv(a).T, rtol=1e-10, atol=1e-12)
    for f, args in ((lambda a, b: np.linalg.solve(a, b), (a, b)), (lambda a: np.linalg.inv(a), (a,)),
                    (lambda a: np.linalg.slogdet(a)[1], (a,)), (lambda s: np.linalg.cholesky(s), (s,)),
                    (lambda a: np.linalg.qr(a), (a,)),
                    (lambda a, b: vnp.linalg.solve_triangular(a, b, lower=True), (np.tril(a) + 3 * np.eye(3), b))):
        testing.check_grads(f, args, rtol=1e-6, atol=1e-7, rng=rng)


def rectangular(rng, shape, dtype, count=12):
    """(m, n) matrices: half Gaussian, half with condition numbers up to MAX_COND, one of
    them of rank min(m, n) - 1 (a zero singular value)."""
    m, n = shape
    k = min(m, n)
    out = [rng.standard_normal(shape) for _ in range(count // 2)]
    for c in np.geomspace(10, MAX_COND[dtype], count - count // 2):
        s = np.geomspace(1, 1 / c, k)
        out.append(_orthogonal(rng, m)[:, :k] @ np.diag(s) @ _orthogonal(rng, n)[:k])
    if k > 1:
        out[-1] = _orthogonal(rng, m)[:, :k] @ np.diag(np.r_[np.ones(k - 1), 0.0]) @ _orthogonal(rng, n)[:k]
    return np.asarray(out, dtype)


def _svd_program(a, derived=True):
    """Every singular-value function at once (``derived=False``: svd's three forms only; each
    function computes its own SVD, and compiling them all costs too much)."""
    u, s, vh = np.linalg.svd(a)
    ur, _, vhr = np.linalg.svd(a, full_matrices=False)
    out = (u, s, vh, ur, vhr, np.linalg.svd(a, compute_uv=False))
    if derived:
        out += (np.linalg.norm(a, 2), np.linalg.norm(a, -2), np.linalg.norm(a, "nuc"), np.linalg.pinv(a),
                np.linalg.matrix_rank(a), np.linalg.cond(a))
    return out


def _check_svd(a, outs, dtype):
    """Singular values within TOL * k * eps * ||a||_2 of LAPACK's (Weyl: what a backward-stable
    method guarantees) and descending; U and V checked through the reconstruction and their
    orthogonality (their signs are not unique); pinv within TOL * k * eps * cond of NumPy's
    (its forward error bound) for matrices of full rank; the rank exact; cond within
    TOL * k * eps * cond relative."""
    u, s, vh, ur, vhr, s_only = outs[:6]
    derived = len(outs) > 6
    m, n = a.shape[-2:]
    k = min(m, n)
    assert u.shape == (len(a), m, m) and vh.shape == (len(a), n, n) and ur.shape == (len(a), m, k)
    assert vhr.shape == (len(a), k, n) and s.shape == (len(a), k)
    for name, v in zip("u s vh ur vhr s_only n2 nm2 nuc pinv".split(), outs[:10]):
        assert v.dtype == dtype, f"{name}: dtype {v.dtype}"
    eps = EPS[dtype]
    for i in range(len(a)):
        a64 = np.asarray(a[i], np.float64)
        s_np = np.linalg.svd(a64, compute_uv=False)
        scale = s_np[0]
        tol = TOL * k * eps * scale
        what = f"{dtype.__name__} example {i} (cond {s_np[0] / max(s_np[-1], 1e-300):.1e})"
        for v in (s[i], s_only[i]):
            assert np.abs(v - s_np).max() <= tol, f"singular values, {what}"
            assert (np.diff(v) <= 0).all(), f"singular values not descending, {what}"
        for uu, vv in ((u[i], vh[i]), (ur[i], vhr[i])):
            uu, vv = uu.astype(np.float64), vv.astype(np.float64)
            assert np.linalg.norm((uu[:, :k] * s[i]) @ vv[:k] - a64) <= TOL * k * eps * np.linalg.norm(a64), f"reconstruction, {what}"
            assert np.abs(uu.T @ uu - np.eye(uu.shape[1])).max() <= TOL * k * eps, f"U orthogonality, {what}"
            assert np.abs(vv @ vv.T - np.eye(vv.shape[0])).max() <= TOL * k * eps, f"V orthogonality, {what}"
        if derived:
            _check_svd_derived(a64, s_np, outs[6:], i, tol, dtype, what)


def _check_svd_derived(a64, s_np, outs, i, tol, dtype, what):
    n2, nm2, nuc, pinv, rank, cond = outs
    m, n = a64.shape
    k, eps = min(m, n), EPS[dtype]
    assert cond.dtype == dtype and rank.dtype == np.int64
    assert abs(n2[i] - s_np[0]) <= tol and abs(nm2[i] - s_np[-1]) <= tol, f"norm 2/-2, {what}"
    assert abs(nuc[i] - s_np.sum()) <= k * tol, f"norm nuc, {what}"
    rank_np = np.linalg.matrix_rank(a64.astype(dtype))
    assert rank[i] == rank_np, f"matrix_rank {rank[i]} != {rank_np}, {what}"
    if s_np[-1] > s_np[0] * max(m, n) * eps * 10:        # full rank, with a margin over rank's cut
        c = s_np[0] / s_np[-1]
        assert _rel(pinv[i], np.linalg.pinv(a64)) <= TOL * k * eps * c, f"pinv, {what}"
        assert abs(cond[i] - c) <= TOL * k * eps * c * c, f"cond, {what}"
    else:
        assert cond[i] > 1 / (TOL * k * eps), f"cond of a singular matrix, {what}"


@pytest.mark.parametrize("shape, dtype", [((1, 1), np.float32), ((3, 3), np.float32), ((3, 3), np.float64),
                                          ((6, 6), np.float64), ((5, 3), np.float64), ((2, 4), np.float32)],
                         ids=["1x1-f32", "3x3-f32", "3x3-f64", "6x6-f64", "5x3-f64", "2x4-f32"])
def test_svd_batched_against_numpy_reference(dtype, shape):
    """svd, the 2, -2 and nuclear norms, pinv, matrix_rank and cond, vmapped over random,
    ill-conditioned and rank-deficient matrices, on the reference evaluator."""
    a = rectangular(np.random.default_rng(sum(shape)), shape, dtype)
    _check_svd(a, reference_vmap(_svd_program, a), dtype)


def test_svd_graded_matrix_small_singular_values_to_high_relative_accuracy():
    """One-sided Jacobi computes the small singular values of a matrix whose columns are
    badly scaled (a = B D with B well conditioned) to high relative accuracy (Demmel and
    Veselic): within TOL * n * eps * cond(B with unit columns) of LAPACK's, relative to each
    value, for singular values spread over 1e-12 in float64 (the usual bound, relative to the
    largest value, would allow errors of 1e-4 in the smallest)."""
    rng = np.random.default_rng(7)
    b = rng.standard_normal((4, 5, 5)) + 5 * np.eye(5)
    a = b * np.geomspace(1, 1e-12, 5)
    s = reference_vmap(lambda a: np.linalg.svd(a, compute_uv=False), a)
    for i in range(len(a)):
        s_np = np.linalg.svd(a[i], compute_uv=False)
        bound = TOL * 5 * EPS[np.float64] * np.linalg.cond(b[i] / np.linalg.norm(b[i], axis=0))
        assert (np.abs(s[i] - s_np) / s_np).max() <= bound, f"example {i}"


def test_svd_derivatives():
    """svd differentiates through its Jacobi rotations: forward and reverse checked against
    finite differences at a (3, 2) matrix with distinct singular values (where U, S, V are
    smooth), and the nuclear norm's gradient of a 3x3 matrix against U @ Vh."""
    rng = np.random.default_rng(3)
    a = general(rng, 3, np.float64, count=2)[0]
    testing.check_grads(lambda a: np.linalg.svd(a, full_matrices=False), (a[:, :2],), rtol=1e-6, atol=1e-7, rng=rng)
    u, _, vh = np.linalg.svd(a)
    grad = vmapc.trace(vmapc.grad(lambda a: np.linalg.norm(a, "nuc")), a)       # on the reference evaluator
    np.testing.assert_allclose(vmapc.eval(grad, a)[0], u @ vh, rtol=1e-10, atol=1e-12)
    # a singular matrix: the largest value's gradient is still u0 v0^T (the zero value's
    # square root does not turn it into NaN)
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    u, _, vh = np.linalg.svd(sing)
    grad = vmapc.trace(vmapc.grad(lambda a: np.linalg.svd(a, compute_uv=False)[0]), sing)
    np.testing.assert_allclose(vmapc.eval(grad, sing)[0], np.outer(u[:, 0], vh[0]), rtol=1e-12, atol=1e-14)


def test_svd_of_degenerate_matrices():
    """Zero, repeated and exactly rank-deficient cases: the singular values match NumPy's
    (exact zeros where the matrix is zero), U and V stay orthogonal and reconstruct."""
    a = np.array([np.zeros((3, 3)), np.eye(3), np.ones((3, 3)), np.diag([2.0, -2.0, 0.0]),
                  [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    u, s, vh = reference_vmap(lambda a: np.linalg.svd(a), a)
    np.testing.assert_array_equal(s[0], 0.0)
    for i in range(len(a)):
        np.testing.assert_allclose(s[i], np.linalg.svd(a[i], compute_uv=False), atol=1e-15)
        np.testing.assert_allclose((u[i] * s[i]) @ vh[i], a[i], atol=1e-15)
        np.testing.assert_allclose(u[i].T @ u[i], np.eye(3), atol=1e-15)
        np.testing.assert_allclose(vh[i] @ vh[i].T, np.eye(3), atol=1e-15)
