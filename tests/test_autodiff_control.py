"""Differentiating control flow (docs/autodiff.md, "Control flow"): cond, scan and
fori_loop with static bounds in both modes, while_loop in forward mode, against float64
finite differences (first and second order); under vmap against the per-example loop;
compiled against the reference evaluator (``compiled_program()``, in the one compiled
module of test_autodiff_rules.py); and the error for reverse mode through
while_loop."""

import numpy as np
import pytest

import vmapc
from vmapc import testing
from vmapc.errors import AutodiffError

RNG = np.random.default_rng(5)


def branchy(x, w):
    return np.sum(vmapc.cond(np.sum(x) > 0, lambda a, b: np.sin(a) * b, lambda a, b: np.cos(a) + b ** 2, x, w))


def switchy(x, w):
    k = np.argmax(x)                        # an integer index: 0, 1 or 2
    return np.sum(vmapc.switch(k, [lambda a: a * w, lambda a: np.exp(a) * w, lambda a: a ** 3], x))


def recurrent(xs, w):
    def step(c, x):
        c = np.tanh(c * w + x)
        return c, c ** 2
    c, ys = vmapc.scan(step, np.zeros_like(xs[0]), xs)
    return np.sum(c) + np.sum(ys)


def recurrent_reversed(xs, w):
    def step(c, x):
        c = np.tanh(c * w + x)
        return c, c * x
    c, ys = vmapc.scan(step, xs[0], xs, reverse=True)
    return np.sum(c) + np.sum(ys)


def counted(x, w):
    # the carry holds an integer counter next to the float state
    return np.sum(vmapc.fori_loop(0, 5, lambda i, c: np.sin(c) * w + i, x))


def newton_sqrt(a, x0):
    """while_loop: a fixed number of Newton steps driven by a counter in the carry."""
    def body(c):
        i, x = c
        return i + 1, 0.5 * (x + a / x)
    _, x = vmapc.while_loop(lambda c: c[0] < 6, body, (np.int32(0), x0))
    return np.sum(x)


CASES = [
    ("cond_true", branchy, lambda: [np.abs(RNG.normal(size=3)) + 0.1, RNG.normal(size=3)], ("fwd", "rev")),
    ("cond_false", branchy, lambda: [-np.abs(RNG.normal(size=3)) - 0.1, RNG.normal(size=3)], ("fwd", "rev")),
    ("switch", switchy, lambda: [np.array([0.1, 0.9, 0.3]), RNG.normal(size=3)], ("fwd", "rev")),
    ("scan", recurrent, lambda: [RNG.normal(size=(4, 3)), RNG.normal(size=3)], ("fwd", "rev")),
    ("scan_reversed", recurrent_reversed, lambda: [RNG.normal(size=(4, 3)), RNG.normal(size=3)], ("fwd", "rev")),
    ("fori_loop", counted, lambda: [RNG.normal(size=3), RNG.normal(size=3)], ("fwd", "rev")),
    ("while_loop", newton_sqrt, lambda: [np.abs(RNG.normal(size=3)) + 1, np.full(3, 2.0)], ("fwd",)),
]


@pytest.mark.parametrize("name,f,args,modes", CASES, ids=[c[0] for c in CASES])
def test_control_flow_derivatives_match_finite_differences(name, f, args, modes):
    testing.check_grads(f, args(), order=2, modes=modes, rng=np.random.default_rng(1), name=name)


def test_reverse_mode_through_while_loop_is_refused():
    with pytest.raises(AutodiffError, match="reverse-mode differentiation .* of while_loop: the number of steps "
                       "is only known at run time") as info:
        vmapc.grad(newton_sqrt)(np.ones(3), np.ones(3))
    assert info.value.loc is not None and "while_loop" in info.value.loc.source()


def test_vmap_of_grad_through_control_flow_is_the_per_example_loop():
    """vmap(grad(f)) over examples that take different branches and run scans of their
    own, against the loop of grad(f) (reference evaluator)."""
    for f, xs, w in ((branchy, RNG.normal(size=(6, 3)), RNG.normal(size=3)),
                     (recurrent, RNG.normal(size=(5, 4, 3)), RNG.normal(size=3)),
                     (counted, RNG.normal(size=(5, 3)), RNG.normal(size=3))):
        prog = vmapc.trace(vmapc.vmap(vmapc.grad(f, argnums=(0, 1)), in_dims=(0, None)), xs, w)
        got = vmapc.eval(prog, xs, w)
        one = vmapc.trace(vmapc.grad(f, argnums=(0, 1)), xs[0], w)
        loop = [vmapc.eval(one, x, w) for x in xs]
        np.testing.assert_allclose(got[0], np.stack([l[0] for l in loop]), rtol=1e-12)
        np.testing.assert_allclose(got[1], np.stack([l[1] for l in loop]), rtol=1e-12)


def compiled_program():
    """(function, arguments, rtol, atol) of gradients through every control-flow form,
    float32, for the one compiled module of the autodiff tests (test_autodiff_rules.py::
    test_compiled_derivatives_match_reference, which checks it against the reference
    evaluator)."""
    rng = np.random.default_rng(29)
    x3, w3 = np.abs(rng.normal(size=3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    xs = rng.normal(size=(4, 3)).astype(np.float32)

    def control(x, xs, w):
        return (vmapc.grad(branchy, argnums=(0, 1))(x, w), vmapc.grad(branchy, argnums=(0, 1))(-x, w),
                vmapc.grad(recurrent, argnums=(0, 1))(xs, w), vmapc.grad(recurrent_reversed)(xs, w),
                vmapc.grad(counted, argnums=(0, 1))(x, w),
                vmapc.jvp(lambda a: newton_sqrt(a, np.full(3, 2.0, np.float32)), (x + 1,), (w,))[1])
    return control, (x3, xs, w3), 2e-5, 1e-6
