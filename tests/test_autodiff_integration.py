"""Differentiating the ops that came with the other families, through the front end:
scans (np.cumsum, np.cumprod with zeros, np.maximum.accumulate), sorts and top_k,
writes (``y[i] = v``, ``np.add.at``, slice assignment; ``np.multiply.at``,
``np.maximum.at`` and ``np.minimum.at`` with duplicate indices, zeros and ties),
collectives under a named vmap,
and control flow (an RK4 integrator with fori_loop, an RNN with scan, per-example
gradients through a scan). Checked against float64 central finite differences
(``vmapc.testing.check_grads``, on the reference evaluator), the per-example loop, JAX
where it is installed, and once compiled (``compiled_program()``, in the one compiled
module of test_autodiff_rules.py). The choices at ties (which
element a derivative goes to) are pinned here, each against a value worked out by
hand."""

import numpy as np
import pytest

import vmapc
from vmapc import testing

RNG = np.random.default_rng(17)


def _eval(f, *args):
    prog = vmapc.trace(f, *args)
    return vmapc.pytree.unflatten(prog.out_tree, vmapc.eval(prog, *args))


# --- functions written with the new ops ------------------------------------------------------------------

def scans(x):
    return np.sum(np.cumsum(x, axis=1) * np.cumprod(x, axis=1)) + np.sum(np.maximum.accumulate(x, axis=0) ** 2)


def sorts(x):
    s = np.sort(x, axis=-1)
    vals, _ = vmapc.numpy.top_k(x, 2)
    return np.sum(s * np.arange(1.0, x.shape[-1] + 1)) + np.sum(vals ** 2)


def writes(x, v):
    y = x.copy()
    y[np.array([2, 0, 2])] = v               # a scatter (set) with a duplicate index: the last write wins
    y[1:3, 1:] = v[:2, :2] * 2.0             # an update_slice
    z = np.zeros_like(x)
    np.add.at(z, np.array([0, 0, 3]), v)     # a scatter-add
    return np.sum(np.sin(y) * z) + np.sum(y ** 2)


def combines(x, v):
    """np.multiply.at / np.maximum.at / np.minimum.at with duplicate indices (rows 0 and 2
    are written several times, row 1 never)."""
    i = np.array([0, 2, 0, 3, 0])
    a, m, n = x.copy(), x.copy(), x.copy()
    np.multiply.at(a, i, v)
    np.maximum.at(m, i, v)
    np.minimum.at(n, i, v)
    return np.sum(np.sin(a)) + np.sum(m ** 2) + np.sum(n * np.arange(1.0, 4.0))


def signs(x, y):
    return np.sum(np.copysign(x, y) * x)


def rk4(y0, k):
    """y' = -k * y + sin(y), 20 RK4 steps of 0.05 in a fori_loop with static bounds."""
    h = 0.05

    def f(y):
        return -k * y + np.sin(y)

    def step(i, y):
        a = f(y)
        b = f(y + h / 2 * a)
        c = f(y + h / 2 * b)
        d = f(y + h * c)
        return y + h / 6 * (a + 2 * b + 2 * c + d)
    return np.sum(vmapc.fori_loop(0, 20, step, y0) ** 2)


def rnn_loss(w, xs):
    def cell(h, x):
        h = np.tanh(w @ h + x)
        return h, np.sum(h)
    h, ys = vmapc.scan(cell, np.zeros(xs.shape[1], xs.dtype), xs)
    return np.sum(ys) + np.sum(h ** 2)


def pick(x, w):
    return vmapc.cond(np.sum(x) > 0, lambda a: np.sum(np.cumsum(a) * w), lambda a: np.sum(np.sort(a) * w), x)


X = RNG.normal(size=(3, 4))
X_ZEROS = X.copy()
X_ZEROS[1, 2] = 0.0                          # cumprod through an exact zero
CASES = [
    ("scans", scans, [X], 2),
    ("scans_with_a_zero", scans, [X_ZEROS], 2),
    ("sorts", sorts, [(RNG.permutation(12).reshape(3, 4) - 6) * 0.5], 1),
    ("writes", writes, [RNG.normal(size=(4, 3)), RNG.normal(size=(3, 3))], 1),
    ("scatter_combines", combines, [RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))], 2),
    ("scatter_multiply_with_zeros", combines, [RNG.normal(size=(4, 3)),
                                               RNG.normal(size=(5, 3)) * np.array([[0], [1], [0], [1], [1]])], 1),
    ("copysign", signs, [RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))], 2),
    ("rk4", rk4, [RNG.normal(size=3), np.array([0.7, 1.2, 0.3])], 1),
    ("rnn", rnn_loss, [RNG.normal(size=(3, 3)) * 0.5, RNG.normal(size=(5, 3))], 1),
    ("cond_true", pick, [np.abs(RNG.normal(size=4)) + 0.1, RNG.normal(size=4)], 1),
    ("cond_false", pick, [-np.abs(RNG.normal(size=4)) - 0.1, RNG.normal(size=4)], 1),
]


@pytest.mark.parametrize("name,f,args,order", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_finite_differences(name, f, args, order):
    testing.check_grads(f, args, order=order, rng=np.random.default_rng(2), name=name)


def test_per_example_gradients_through_a_scan_are_the_per_example_loop():
    w = RNG.normal(size=(3, 3)) * 0.5
    xs = RNG.normal(size=(6, 5, 3))
    got = _eval(vmapc.vmap(vmapc.grad(rnn_loss), in_dims=(None, 0)), w, xs)
    want = np.stack([_eval(vmapc.grad(rnn_loss), w, x) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    ks = np.abs(RNG.normal(size=(4, 3))) + 0.2
    got = _eval(vmapc.vmap(vmapc.grad(rk4, argnums=(0, 1)), in_dims=(None, 0)), X[0, :3], ks)
    for k, g0, g1 in zip(ks, *got):
        w0, w1 = _eval(vmapc.grad(rk4, argnums=(0, 1)), X[0, :3], k)
        np.testing.assert_allclose(g0, w0, rtol=1e-12)
        np.testing.assert_allclose(g1, w1, rtol=1e-12)


# --- collectives: gradients inside a named vmap ---------------------------------------------------------

def centred(x):
    return np.sum((x - vmapc.pmean(x, "i")) ** 2 * vmapc.pmax(x, "i"))


def gathered(x):
    g = vmapc.all_gather(x, "i")
    return np.sum(g[0] * x) + np.sum(np.sin(g))


@pytest.mark.parametrize("f", [centred, gathered], ids=["psum_pmax", "all_gather"])
def test_grad_inside_a_named_vmap_is_the_gradient_of_the_batch_total(f):
    """Under ``vmap(grad(f), axis_name=...)`` a collective's transpose sums over the
    examples (psum's transpose is psum, as in JAX), so example j's gradient is the
    derivative of the sum of every example's loss with respect to x_j: checked by
    central differences of that total."""
    xs = RNG.normal(size=(4, 3))
    got = _eval(vmapc.vmap(vmapc.grad(f), axis_name="i"), xs)

    def total(v):
        return float(np.sum(_eval(vmapc.vmap(f, axis_name="i"), v)))
    eps, fd = 1e-6, np.zeros_like(xs)
    for idx in np.ndindex(xs.shape):
        d = np.zeros_like(xs)
        d[idx] = eps
        fd[idx] = (total(xs + d) - total(xs - d)) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)


def test_gradients_agree_with_jax():
    """psum and all_gather against jax.vmap(jax.grad(f), axis_name=...) (JAX has no
    derivative rule for pmax/pmin; those are checked by differences above), and the
    split of np.maximum.at's derivative at ties against JAX's scatter_max (one test, so
    JAX is imported once)."""
    jax = pytest.importorskip("jax", reason="JAX is the independent oracle here")
    jax.config.update("jax_enable_x64", True)
    jnp, lax = jax.numpy, jax.lax

    def mine(x):
        g = vmapc.all_gather(x, "i")
        return np.sum((x - vmapc.pmean(x, "i")) ** 2 * vmapc.psum(np.sin(x), "i")) + np.sum(g[1] * x * g[2])

    def theirs(x):
        g = lax.all_gather(x, "i")
        return jnp.sum((x - lax.pmean(x, "i")) ** 2 * lax.psum(jnp.sin(x), "i")) + jnp.sum(g[1] * x * g[2])
    xs = RNG.normal(size=(4, 3))
    want = np.asarray(jax.jit(jax.vmap(jax.grad(theirs), axis_name="i"))(xs))     # jit: one XLA compile
    np.testing.assert_allclose(_eval(vmapc.vmap(vmapc.grad(mine), axis_name="i"), xs), want,
                               rtol=1e-10, atol=1e-12)

    idx, c = np.array([1, 1, 3, 0]), np.array([1.0, 2.0, 3.0, 4.0])

    def top(x, u):
        m = x.copy()
        np.maximum.at(m, idx, u)
        return np.sum(m * c)
    x, u = np.array([1.0, 5.0, 0.0, 2.0]), np.array([5.0, 3.0, 2.0, 7.0])      # two ties
    got = _eval(vmapc.grad(top, argnums=(0, 1)), x, u)
    want = jax.jit(jax.grad(lambda x, u: jnp.sum(x.at[idx].max(u) * c), argnums=(0, 1)))(x, u)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# --- the choices at ties, pinned ------------------------------------------------------------------------

def test_choices_at_ties():
    t = np.array([10.0, 20.0, 30.0, 40.0])
    # np.sort is stable: tied elements keep their order, and so do their tangents
    _, tan = _eval(lambda x, t: vmapc.jvp(np.sort, (x,), (t,)), np.array([1.0, 0.0, 1.0, 0.0]), t)
    np.testing.assert_array_equal(tan, [20.0, 40.0, 10.0, 30.0])
    # a running maximum takes the tangent of the first element to reach it
    _, tan = _eval(lambda x, t: vmapc.jvp(np.maximum.accumulate, (x,), (t,)), np.array([1.0, 3.0, 3.0, 2.0]), t)
    np.testing.assert_array_equal(tan, [10.0, 20.0, 20.0, 20.0])
    # top_k of ties: the first positions, in order
    _, tan = _eval(lambda x, t: vmapc.jvp(lambda a: vmapc.numpy.top_k(a, 2)[0], (x,), (t,)),
                   np.array([5.0, 1.0, 5.0, 5.0]), t)
    np.testing.assert_array_equal(tan, [10.0, 30.0])

    # y[idx] = v with a duplicate index: the last write is the one that counts, so only it
    # gets a gradient; the overwritten elements of y get none
    def f(x, v):
        y = x.copy()
        y[np.array([1, 1, 2])] = v
        return np.sum(y * np.array([1.0, 2.0, 3.0, 4.0]))
    gx, gv = _eval(vmapc.grad(f, argnums=(0, 1)), np.ones(4), np.array([7.0, 8.0, 9.0]))
    np.testing.assert_array_equal(gx, [1.0, 0.0, 0.0, 4.0])
    np.testing.assert_array_equal(gv, [0.0, 2.0, 3.0])


def test_scatter_combines_at_zeros_and_ties():
    """np.multiply.at with zero updates: update k's derivative is x times the product of
    the *other* updates to its element (no division by its own zero); np.maximum.at at
    ties: the derivative is split evenly between the operand's element and the updates
    that equal the result (JAX's convention for scatter_max)."""
    def prod(x, u):
        a = x.copy()
        np.multiply.at(a, np.array([0, 0, 1, 1, 1, 3, 3]), u)
        return np.sum(a)
    gx, gu = _eval(vmapc.grad(prod, argnums=(0, 1)), np.array([2.0, 3.0, 4.0, 1.5]),
                   np.array([0.0, 5.0, 0.0, 2.0, 6.0, 0.0, 0.0]))
    # element 0: 2 * 0 * 5 (one zero); element 1: 3 * 0 * 2 * 6 (one zero); 2: untouched;
    # 3: 1.5 * 0 * 0 (two zeros: every partial is 0)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(gu, [10.0, 0.0, 36.0, 0.0, 0.0, 0.0, 0.0])

    idx, c = np.array([1, 1, 3, 0]), np.array([1.0, 2.0, 3.0, 4.0])

    def top(x, u):
        m = x.copy()
        np.maximum.at(m, idx, u)
        return np.sum(m * c)
    x, u = np.array([1.0, 5.0, 0.0, 2.0]), np.array([5.0, 3.0, 2.0, 7.0])
    gx, gu = _eval(vmapc.grad(top, argnums=(0, 1)), x, u)
    # 0: update 3 (7) wins; 1: x (5) ties update 0 (5), a half each; 2: untouched;
    # 3: x (2) ties update 2 (2), a half each
    np.testing.assert_array_equal(gx, [0.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(gu, [1.0, 0.0, 2.0, 1.0])      # (JAX agrees: test_gradients_agree_with_jax)


def test_gather_gradients_are_scatter_adds_of_the_cotangent_size():
    """The reverse rules of take and take_along_axis add the cotangent at the indices (a
    scatter add): no value in the gradient program is larger than the table or the
    cotangent (a one-hot contraction would build cotangent x rows), and repeated indices
    sum, as np.add.at does."""
    table, rows = RNG.normal(size=(5000, 4)), np.array([3, 4999, 3, -1, 17])
    cols = np.array([[0], [3], [2], [1], [0]])

    def lookup(t, i, j):
        e = t[i]                                           # take
        return np.sum(np.sin(e)) + np.sum(np.take_along_axis(e, j, axis=1) ** 2)
    prog = vmapc.trace(vmapc.grad(lookup), table, rows, cols)
    sizes = [int(np.prod(v.shape)) for e in vmapc.ir.walk_eqns(prog) for v in e.outputs]
    assert max(sizes) <= table.size and any(e.op == "scatter" for e in prog.eqns)
    assert not any(e.op == "dot_general" for e in prog.eqns)
    want = np.zeros_like(table)
    e = table[rows]
    np.add.at(want, rows, np.cos(e))
    np.add.at(want, (rows[:, None], cols), 2 * np.take_along_axis(e, cols, axis=1))
    np.testing.assert_allclose(vmapc.eval(prog, table, rows, cols)[0], want, rtol=1e-12)


def test_per_example_gradients_through_scatter_combines_are_the_loop():
    xs, vs = RNG.normal(size=(3, 4, 3)), RNG.normal(size=(5, 3))
    got = _eval(vmapc.vmap(vmapc.grad(combines, argnums=(0, 1)), in_dims=(0, None)), xs, vs)
    for x, g0, g1 in zip(xs, *got):
        w0, w1 = _eval(vmapc.grad(combines, argnums=(0, 1)), x, vs)
        np.testing.assert_allclose(g0, w0, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g1, w1, rtol=1e-12, atol=1e-12)


# --- compiled: everything above in one module --------------------------------------------------------------

def compiled_program():
    """(function, arguments, rtol, atol) of the gradients above, float32, for the one
    compiled module of the autodiff tests (test_autodiff_rules.py::
    test_compiled_derivatives_match_reference, which checks it against the reference
    evaluator). Each program once: copysign is compiled there as a rule; gradients
    through cond and fori_loop in test_autodiff_control.py's program, so rk4 and pick
    are not compiled again."""
    rng, f32 = np.random.default_rng(23), np.float32
    xz = X_ZEROS.astype(f32)
    s = ((rng.permutation(12).reshape(3, 4) - 6) * 0.5).astype(f32)
    wx, wv = rng.normal(size=(4, 3)).astype(f32), rng.normal(size=(3, 3)).astype(f32)
    w, xs = (rng.normal(size=(3, 3)) * 0.5).astype(f32), rng.normal(size=(6, 5, 3)).astype(f32)

    def integration(xz, s, wx, wv, w, xs):
        return (vmapc.grad(scans)(xz), vmapc.grad(sorts)(s), vmapc.grad(writes, argnums=(0, 1))(wx, wv),
                vmapc.vmap(vmapc.grad(rnn_loss), in_dims=(None, 0))(w, xs),
                vmapc.vmap(vmapc.grad(centred), axis_name="i")(xz), vmapc.vmap(vmapc.grad(gathered), axis_name="i")(xz))
    return integration, (xz, s, wx, wv, w, xs), 1e-4, 1e-4
