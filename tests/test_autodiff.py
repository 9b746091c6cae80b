"""The autodiff transforms (docs/autodiff.md): grad, value_and_grad, vjp, jvp, jacrev,
jacfwd, hessian and stop_gradient on Python functions, against closed forms and
finite differences; composed with vmap (both orders, nested) and compile; pytrees of
parameters; the numerics at kinks, ties and unselected branches.

Most checks run on the reference evaluator (``vmapc.eval`` of the traced program),
which is what compiled code is checked against elsewhere; the compiled checks are
gathered in a few functions so that they cost few IREE compiles (the Hessian and
Jacobians of ``compiled_program()`` are compiled in test_autodiff_rules.py's module).
"""

import numpy as np
import pytest

import vmapc
from vmapc import testing

F32, F64 = vmapc.f32, vmapc.f64


def ref(fn, *args):
    """Run `fn` (a transform of a Python function) on the reference evaluator: trace it
    at the arguments, evaluate, and give back its pytree of NumPy results."""
    f = vmapc.trace(fn, *args)
    leaves = [np.asarray(x) if not isinstance(x, (int, float)) else x
              for x in vmapc.pytree.flatten((args, {}))[0]]
    ins = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, f.inputs)]
    return vmapc.pytree.unflatten(f.out_tree, vmapc.eval(f, *ins))


def fd_grad(f, x, eps=1e-6):
    """Central finite-difference gradient of a scalar NumPy function, in float64."""
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4))
W = RNG.normal(size=(4, 2))


# --- grad and value_and_grad ---------------------------------------------------------------------------

def test_grad_closed_form():
    g = ref(vmapc.grad(lambda x: np.sum(np.sin(x) * x)), X)
    np.testing.assert_allclose(g, np.cos(X) * X + np.sin(X), rtol=1e-12)


def test_grad_argnums_and_value():
    def f(x, w, k):
        return np.sum(np.tanh(x @ w)) * k
    (v, (gx, gw)) = ref(vmapc.value_and_grad(f, argnums=(0, 1)), X, W, 2.0)
    assert v.shape == () and np.isclose(v, np.sum(np.tanh(X @ W)) * 2)
    s = 1 - np.tanh(X @ W) ** 2
    np.testing.assert_allclose(gx, 2 * s @ W.T, rtol=1e-12)
    np.testing.assert_allclose(gw, 2 * X.T @ s, rtol=1e-12)
    gw2 = ref(vmapc.grad(f, argnums=-2), X, W, 2.0)
    np.testing.assert_allclose(gw2, gw, rtol=1e-12)


def test_grad_of_dict_of_parameters_keeps_structure_and_dtypes():
    params = {"w": W.astype(np.float32), "b": np.zeros(2, np.float32), "nested": [np.float32(0.5)]}

    def loss(p, x):
        return np.sum((x @ p["w"] + p["b"]) ** 2) * p["nested"][0]
    g = ref(vmapc.grad(loss), params, X.astype(np.float32))
    assert set(g) == {"w", "b", "nested"} and isinstance(g["nested"], list)
    assert g["w"].dtype == np.float32 and g["w"].shape == (4, 2) and g["b"].shape == (2,)
    r = X @ W
    np.testing.assert_allclose(g["w"], X.T @ (2 * r) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(g["b"], np.sum(2 * r, 0) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(g["nested"][0], np.sum(r ** 2), rtol=1e-5)


def test_grad_has_aux():
    def f(x):
        y = np.sin(x)
        return np.sum(y), {"y": y, "n": np.argmax(x)}
    g, aux = ref(vmapc.grad(f, has_aux=True), X)
    np.testing.assert_allclose(g, np.cos(X), rtol=1e-12)
    np.testing.assert_allclose(aux["y"], np.sin(X))
    assert aux["n"] == np.argmax(X)
    (v, aux2), g2 = ref(vmapc.value_and_grad(f, has_aux=True), X)
    assert np.isclose(v, np.sum(np.sin(X))) and np.allclose(g2, g)


def test_grad_with_integer_arguments_not_differentiated():
    def f(x, idx):
        return np.sum(x[idx] ** 3)
    idx = np.array([0, 2, 2])
    g = ref(vmapc.grad(f), X, idx)
    want = np.zeros_like(X)
    np.add.at(want, idx, 3 * X[idx] ** 2)
    np.testing.assert_allclose(g, want, rtol=1e-12)


def test_grad_on_arrays_compiles():
    """Called on arrays, grad compiles itself for the CPU (and matches the reference)."""
    f = vmapc.grad(lambda x, w: np.sum(np.tanh(x @ w) ** 2), argnums=1)
    x, w = X.astype(np.float32), W.astype(np.float32)
    np.testing.assert_allclose(f(x, w), ref(f, x, w), rtol=1e-5, atol=1e-6)


def test_grad_of_grad():
    d2 = vmapc.grad(vmapc.grad(lambda x: np.sin(x) * x ** 2))
    for x in (0.3, -1.7):
        want = -np.sin(x) * x ** 2 + 4 * x * np.cos(x) + 2 * np.sin(x)
        assert np.isclose(ref(d2, np.float64(x)), want, rtol=1e-12)


# --- jvp and vjp -----------------------------------------------------------------------------------------

def test_jvp_and_vjp_of_pytrees():
    def f(p):
        return {"a": np.tanh(p[0] @ p[1]), "b": np.sum(p[0] ** 2)}
    t = (RNG.normal(size=X.shape), RNG.normal(size=W.shape))
    out, tout = ref(lambda p, t: vmapc.jvp(f, (p,), (t,)), (X, W), t)
    s = 1 - np.tanh(X @ W) ** 2
    np.testing.assert_allclose(out["a"], np.tanh(X @ W))
    np.testing.assert_allclose(tout["a"], s * (t[0] @ W + X @ t[1]), rtol=1e-12)
    np.testing.assert_allclose(tout["b"], np.sum(2 * X * t[0]), rtol=1e-12)
    ct = {"a": RNG.normal(size=(3, 2)), "b": np.float64(1.5)}

    def pull(p, c):
        out, vjp_fn = vmapc.vjp(f, p)
        return out, vjp_fn(c)
    out2, (g,) = ref(pull, (X, W), ct)
    np.testing.assert_allclose(g[0], (ct["a"] * s) @ W.T + 1.5 * 2 * X, rtol=1e-12)
    np.testing.assert_allclose(g[1], X.T @ (ct["a"] * s), rtol=1e-12)
    # the dot-product identity: <ct, J t> == <ct J, t>
    lhs = np.sum(ct["a"] * tout["a"]) + ct["b"] * tout["b"]
    rhs = np.sum(g[0] * t[0]) + np.sum(g[1] * t[1])
    assert np.isclose(lhs, rhs, rtol=1e-12)


def test_vjp_and_jvp_on_arrays():
    """On arrays, vjp (here with has_aux) and jvp compile themselves for the CPU."""
    def f(x):
        return np.sin(x), np.sum(x)
    x = X.astype(np.float32)
    out, vjp_fn, aux = vmapc.vjp(f, x, has_aux=True)
    np.testing.assert_allclose(out, np.sin(x), rtol=1e-6)
    np.testing.assert_allclose(aux, np.sum(x), rtol=1e-5)
    (g,) = vjp_fn(np.full_like(x, 2.0))
    np.testing.assert_allclose(g, 2 * np.cos(x), rtol=1e-5)
    y, t = vmapc.jvp(np.exp, (x,), (np.full_like(x, 2.0),))
    np.testing.assert_allclose(t, 2 * np.exp(x), rtol=1e-5)


# --- Jacobians and Hessians ------------------------------------------------------------------------------

def vector_fn(x, w):
    return np.tanh(x @ w).ravel() * np.sum(x)


def test_jacrev_and_jacfwd_match_finite_differences():
    jr = ref(vmapc.jacrev(vector_fn), X, W)
    jf = ref(vmapc.jacfwd(vector_fn), X, W)
    assert jr.shape == jf.shape == (6, 3, 4)
    for i in range(6):
        np.testing.assert_allclose(jr[i], fd_grad(lambda x: vector_fn(x, W)[i], X), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)
    jw = ref(vmapc.jacrev(vector_fn, argnums=(0, 1)), X, W)
    assert isinstance(jw, tuple) and jw[1].shape == (6, 4, 2)
    np.testing.assert_allclose(jw[0], jr, rtol=1e-12)
    np.testing.assert_allclose(ref(vmapc.jacfwd(vector_fn, argnums=1), X, W), jw[1], rtol=1e-12, atol=1e-14)


def test_jacobian_of_pytree_output_and_input():
    def f(p):
        return {"s": np.sum(p["a"] * p["b"]), "v": p["a"] * 3.0}
    p = {"a": RNG.normal(size=3), "b": RNG.normal(size=3)}
    for jac in (vmapc.jacrev, vmapc.jacfwd):
        j = ref(jac(f), p)
        np.testing.assert_allclose(j["s"]["a"], p["b"], rtol=1e-12)
        np.testing.assert_allclose(j["s"]["b"], p["a"], rtol=1e-12)
        np.testing.assert_allclose(j["v"]["a"], 3 * np.eye(3), rtol=1e-12)
        np.testing.assert_allclose(j["v"]["b"], np.zeros((3, 3)))


def test_hessian_of_quadratic_and_of_softplus():
    A = RNG.normal(size=(4, 4))
    x = RNG.normal(size=4)
    h = ref(vmapc.hessian(lambda x: x @ A @ x), x)
    np.testing.assert_allclose(h, A + A.T, rtol=1e-12)
    h2 = ref(vmapc.hessian(lambda m: np.sum(np.log1p(np.exp(m @ W)))), X)
    assert h2.shape == (3, 4, 3, 4)
    g = lambda m: (1 / (1 + np.exp(-(m @ W)))) @ W.T        # noqa: E731  the gradient in closed form
    for i in np.ndindex(3, 4):
        np.testing.assert_allclose(h2[i], fd_grad(lambda m: g(m)[i], X), rtol=1e-6, atol=1e-8)
    # jacfwd(jacrev) == jacrev(jacrev) == jacrev(jacfwd)
    f = lambda x: np.sum(np.sin(x) * np.cos(x[::-1]))        # noqa: E731
    hs = [ref(t(s(f)), x) for t, s in ((vmapc.jacfwd, vmapc.jacrev), (vmapc.jacrev, vmapc.jacrev),
                                       (vmapc.jacrev, vmapc.jacfwd))]
    np.testing.assert_allclose(hs[1], hs[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hs[2], hs[0], rtol=1e-12, atol=1e-14)


def test_hessian_vector_product_forward_over_reverse():
    f = lambda x: np.sum(np.exp(x) * x[::-1])               # noqa: E731
    x, v = RNG.normal(size=5), RNG.normal(size=5)
    hvp = ref(lambda x, v: vmapc.jvp(vmapc.grad(f), (x,), (v,))[1], x, v)
    np.testing.assert_allclose(hvp, ref(vmapc.hessian(f), x) @ v, rtol=1e-12)


# --- composition with vmap ---------------------------------------------------------------------------------

def loss(w, x, y):
    return (np.tanh(x @ w["a"]) @ w["b"] - y) ** 2


PARAMS = {"a": RNG.normal(size=(4, 3)), "b": RNG.normal(size=3)}
XS, YS = RNG.normal(size=(5, 4)), RNG.normal(size=5)


def per_example(params, xs, ys):
    return [ref(vmapc.grad(loss), params, x, y) for x, y in zip(xs, ys)]


def test_vmap_of_grad_is_the_per_example_loop_under_in_dims():
    loop = per_example(PARAMS, XS, YS)
    g = ref(vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0)), PARAMS, XS, YS)
    for k in PARAMS:
        np.testing.assert_allclose(g[k], np.stack([l[k] for l in loop]), rtol=1e-12)
    # batch along the last axis of x, and out_dims -1
    g = ref(vmapc.vmap(vmapc.grad(loss), in_dims=(None, -1, 0), out_dims=-1), PARAMS, XS.T, YS)
    for k in PARAMS:
        np.testing.assert_allclose(g[k], np.stack([l[k] for l in loop], axis=-1), rtol=1e-12)
    # per-example parameters (an ensemble) with shared data
    ens = {k: np.stack([v * (i + 1) for i in range(5)]) for k, v in PARAMS.items()}
    g = ref(vmapc.vmap(vmapc.grad(loss), in_dims=(0, None, None)), ens, XS[0], YS[0])
    for i in range(5):
        gi = ref(vmapc.grad(loss), {k: v[i] for k, v in ens.items()}, XS[0], YS[0])
        for k in PARAMS:
            np.testing.assert_allclose(g[k][i], gi[k], rtol=1e-12)


def test_nested_vmap_of_grad():
    xs, ys = RNG.normal(size=(2, 5, 4)), RNG.normal(size=(2, 5))
    g = ref(vmapc.vmap(vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0)), in_dims=(None, 0, 0)),
            PARAMS, xs, ys)
    for j in range(2):
        loop = per_example(PARAMS, xs[j], ys[j])
        for k in PARAMS:
            np.testing.assert_allclose(g[k][j], np.stack([l[k] for l in loop]), rtol=1e-12)


def test_grad_of_vmapped_sum_is_the_sum_of_per_example_gradients():
    def total(w, xs, ys):
        return np.sum(vmapc.vmap(loss, in_dims=(None, 0, 0))(w, xs, ys))
    g = ref(vmapc.grad(total), PARAMS, XS, YS)
    loop = per_example(PARAMS, XS, YS)
    for k in PARAMS:
        np.testing.assert_allclose(g[k], sum(l[k] for l in loop), rtol=1e-12)


def test_jacrev_of_vmap_and_vmap_of_jacrev():
    f = lambda x: np.sin(x) * np.sum(x)                     # noqa: E731
    xs = RNG.normal(size=(3, 4))
    per = [ref(vmapc.jacrev(f), x) for x in xs]
    np.testing.assert_allclose(ref(vmapc.vmap(vmapc.jacrev(f)), xs), np.stack(per), rtol=1e-12)
    big = ref(vmapc.jacrev(vmapc.vmap(f)), xs)            # (3, 4, 3, 4): block diagonal
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(big[i, :, j, :], per[i] if i == j else 0, rtol=1e-12, atol=0)


def test_grad_through_closure_over_vmap_tracer():
    """The function closes over a value of the enclosing vmap's trace: that value is an
    input of the differentiated program that is not differentiated."""
    def per(x, y):
        return vmapc.grad(lambda w: loss(w, x, y))(PARAMS)
    g = ref(vmapc.vmap(per), XS, YS)
    loop = per_example(PARAMS, XS, YS)
    for k in PARAMS:
        np.testing.assert_allclose(g[k], np.stack([l[k] for l in loop]), rtol=1e-12)


# --- compiled ---------------------------------------------------------------------------------------------

def test_compiled_per_example_gradients_static_and_chunked(vmapc_shared_cache):
    """compile(vmap(grad(loss))) is one module; with chunk_size it gives the same
    per-example gradients as the loop. (batch="dynamic" is compiled and checked by
    test_cli_compiles_a_gradient_function_to_an_artifact.)"""
    p32 = {k: v.astype(np.float32) for k, v in PARAMS.items()}
    xs, ys = RNG.normal(size=(7, 4)).astype(np.float32), RNG.normal(size=7).astype(np.float32)
    loop = per_example(p32, xs, ys)
    pe = vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0))
    for c in (vmapc.compile(pe), vmapc.compile(pe, chunk_size=3)):
        g = c(p32, xs, ys)
        for k in PARAMS:
            np.testing.assert_allclose(g[k], np.stack([l[k] for l in loop]), rtol=1e-4, atol=1e-5)


def compiled_program():
    """(function, arguments, rtol, atol): a Hessian, jacfwd and jacrev in float32, for the
    one compiled module of the autodiff tests (test_autodiff_rules.py::
    test_compiled_derivatives_match_reference, which checks it against the reference
    evaluator)."""
    x = np.random.default_rng(31).normal(size=(3, 4)).astype(np.float32)
    w = W.astype(np.float32)

    def f(x):
        return np.sum(np.log1p(np.exp(x @ w)) * x[:, :2])

    def second_order(x):
        return vmapc.hessian(f)(x), vmapc.jacfwd(vector_fn)(x, w), vmapc.jacrev(vector_fn)(x, w)
    return second_order, (x,), 1e-4, 1e-5


# --- stop_gradient -----------------------------------------------------------------------------------------

def test_stop_gradient():
    g = ref(vmapc.grad(lambda x: np.sum(x * vmapc.stop_gradient(x))), X)
    np.testing.assert_allclose(g, X)
    # on arrays and pytrees outside a trace it is the identity
    p = {"a": X}
    assert vmapc.stop_gradient(p)["a"] is X
    # a stabilized softmax: the max is a constant to differentiation, which does not change
    # the gradient
    def lse(x, stop):
        m = np.max(x)
        m = vmapc.stop_gradient(m) if stop else m
        return m + np.log(np.sum(np.exp(x - m)))
    v = RNG.normal(size=6)
    np.testing.assert_allclose(ref(vmapc.grad(lambda x: lse(x, True)), v),
                               ref(vmapc.grad(lambda x: lse(x, False)), v), rtol=1e-12)


# --- numerics: kinks, ties, unselected branches ---------------------------------------------------------------

def test_kinks_and_ties():
    d = lambda f, x: ref(vmapc.grad(lambda x: np.sum(f(x))), x)     # noqa: E731
    z = np.zeros(3)
    np.testing.assert_array_equal(d(np.abs, z), 0)                 # abs at 0: 0
    assert np.all(np.isinf(d(np.sqrt, z)))                         # sqrt at 0: inf
    assert np.all(np.isinf(d(np.log, z)))                          # log at 0: inf
    np.testing.assert_array_equal(d(lambda x: np.maximum(x, 0), z), 0.5)   # a tie: half each
    g = ref(vmapc.grad(lambda x, y: np.sum(np.maximum(x, y)), argnums=(0, 1)), np.ones(2), np.ones(2))
    np.testing.assert_array_equal(g[0], 0.5)
    np.testing.assert_array_equal(g[1], 0.5)
    # reduce_max: split evenly among the elements that tie for the maximum
    np.testing.assert_array_equal(d(np.max, np.array([1.0, 3.0, 3.0, 2.0])), [0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(d(np.min, np.array([1.0, 1.0, 1.0, 2.0])), [1 / 3, 1 / 3, 1 / 3, 0])
    # a NaN maximum: no element compares equal to it, the gradient is 0
    np.testing.assert_array_equal(d(np.max, np.array([1.0, np.nan])), [0, 0])
    # prod with zeros
    np.testing.assert_array_equal(d(np.prod, np.array([2.0, 0.0, 3.0])), [0, 6, 0])
    np.testing.assert_array_equal(d(np.prod, np.array([2.0, 0.0, 0.0])), [0, 0, 0])


def test_where_with_an_undefined_branch_needs_the_double_where():
    """np.where(x > 0, np.sqrt(x), 0): the unselected branch's derivative (inf or NaN at
    x <= 0) times a zero cotangent is NaN, as in JAX and PyTorch. The double-where pattern
    of docs/autodiff.md keeps it finite: make the branch's input safe first."""
    x = np.array([-1.0, 0.0, 4.0])
    naive = ref(vmapc.grad(lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0))), x)
    assert np.isnan(naive[0]) and np.isnan(naive[1]) and naive[2] == 0.25

    def safe_sqrt(x):
        pos = x > 0
        return np.where(pos, np.sqrt(np.where(pos, x, 1.0)), 0.0)
    g = ref(vmapc.grad(lambda x: np.sum(safe_sqrt(x))), x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.25])


# --- the command line ----------------------------------------------------------------------------------

def test_cli_compiles_a_gradient_function_to_an_artifact(tmp_path, vmapc_shared_cache, monkeypatch, capsys):
    """docs/cli.md, "Gradients": examples/model.py:mlp_grad (vmapc.grad of a loss) traced,
    compiled with the batch over the examples, and run: per-example gradients, checked
    against the gradient derived by hand in NumPy. The commands run in this process
    (``vmapc.cli.main``, what the ``vmapc`` script calls): three interpreters importing
    vmapc cost more than the compile."""
    import os
    from vmapc import cli as vmapc_cli
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = os.path.join(root, "examples", "model.py")
    r = np.random.default_rng(0)
    data = {"x": r.standard_normal((6, 64)), "y": r.standard_normal((6, 10)),
            "w1": r.standard_normal((64, 32)) / 8, "w2": r.standard_normal((32, 10)) / 6}
    for k, v in data.items():
        np.save(tmp_path / f"{k}.npy", v.astype(np.float32))
    monkeypatch.chdir(tmp_path)

    def cli(*args):
        capsys.readouterr()
        rc = vmapc_cli.main(list(args))
        out, err = capsys.readouterr()
        assert rc == 0, err
        return out
    cli("trace", f"{model}:mlp_grad", "--arg", "x=f32[64]", "--arg", "y=f32[10]", "--arg", "w1=f32[64,32]",
        "--arg", "w2=f32[32,10]", "-o", "mlp_grad.vir")
    cli("compile", "mlp_grad.vir", "--in-dims", "0,0,None,None", "--batch", "dynamic", "-o", "grad_out")
    out = cli("run", "grad_out", *[f"--input={k}={k}.npy" for k in data], "--output-dir", "grads")
    assert "out0: float32[6, 64, 32]" in out and "out1: float32[6, 32, 10]" in out
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in data.items()}
    pre = d["x"] @ d["w1"]
    h = np.maximum(pre, 0)
    o = np.tanh(h @ d["w2"])
    dz2 = 2 * (o - d["y"]) * (1 - o ** 2)
    dz1 = (dz2 @ d["w2"].T) * (pre > 0)
    np.testing.assert_allclose(np.load(tmp_path / "grads" / "out0.npy"), np.einsum("ni,nj->nij", d["x"], dz1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "grads" / "out1.npy"), np.einsum("ni,nj->nij", h, dz2),
                               rtol=1e-4, atol=1e-5)


def test_the_program_shown_in_the_docs():
    """docs/autodiff.md prints the simplified gradient program of a one-layer loss."""
    import os
    import re
    from vmapc.optimize import simplify
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "autodiff.md")).read()
    shown = re.search(r">>> print\(simplify\(f\)\)\n(\{.*?\})\n```", doc, re.S).group(1)
    f = vmapc.trace(vmapc.grad(lambda w, x: np.sum(np.tanh(x @ w))), F32[3, 2], F32[3])
    assert str(simplify(f)) == shown


# --- the compiled per-example MLP gradient: the batch folded into the GEMMs ------------------------------

def mlp_loss(w1, w2, x, y):
    """x: [8, 64] (a few rows per example), shared weights; as tests/test_vmap_compiled.py's MLP."""
    return np.sum((np.tanh(np.maximum(x @ w1, 0) @ w2) - y) ** 2)


def test_per_example_mlp_gradients_fold_the_batch_into_gemms():
    """Forward: one GEMM per layer with M = batch x rows (linalg.matmul). Backward: the
    cotangent of the second layer's input is one contraction against the shared w2 with
    the batch folded into its rows too (no batch dim, no broadcast weights); each weight
    gradient is one contraction over the example's rows with the batch as a batch dim.
    The first layer's input cotangent, which nobody asked for, is not computed."""
    compiled = vmapc.compile(vmapc.vmap(vmapc.grad(mlp_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0)))
    w1, w2 = np.zeros((64, 32), np.float32), np.zeros((32, 10), np.float32)
    x, y = np.zeros((16, 8, 64), np.float32), np.zeros((16, 8, 10), np.float32)
    lowered = compiled.lower(w1, w2, x, y)
    p = lowered.program
    w1v, w2v, xv = p.inputs[:3]
    assert all(e.op != "broadcast_in_dim" or e.inputs[0] not in (w1v, w2v) for e in p.eqns)
    dots = [e for e in p.eqns if e.op == "dot_general"]
    with_weights = [e for e in dots if e.inputs[1] in (w1v, w2v)]
    per_example = [e for e in dots if e.inputs[1] not in (w1v, w2v)]
    # forward x @ w1, h @ w2 and backward ct @ w2.T: no batch dims, the batch is a free dim of the lhs
    assert len(with_weights) == 3, p
    for e in with_weights:
        assert e.attrs["batch"] == ((), ()) and p.bdims[e.inputs[0]] == 0, e
    assert [e.attrs["contract"] for e in with_weights].count(((2,), (1,))) == 1      # ct @ w2.T
    # the weight gradients: one per layer, contracting the 8 rows, batched over the examples
    assert len(per_example) == 2, p
    for e in per_example:
        assert e.attrs["batch"] == ((0,), (0,)) and e.attrs["contract"] == ((1,), (1,)), e
    assert {e.outputs[0].shape for e in per_example} == {(16, 64, 32), (16, 32, 10)}
    mlir = lowered.mlir
    matmuls = [ln for ln in mlir.splitlines() if "linalg.matmul" in ln]
    assert len(matmuls) == 2 and "tensor<128x64xf32>, tensor<64x32xf32>" in matmuls[0], mlir
    assert "tensor<128x32xf32>, tensor<32x10xf32>" in matmuls[1]
    assert "linalg.broadcast" not in mlir
