"""Per-example root finding: Newton's method and bisection with while_loop.

`newton` solves x**3 - a = 0 for ONE number `a`, iterating until the step is tiny;
`bisect` finds the root of cos(x) - c * x in [0, 2] for ONE `c`, halving the bracket
until it is narrower than a tolerance. How many steps each example needs depends on
its data, which a Python `while` over a traced value cannot express: vmapc.while_loop
can. Under vmap the loop runs until the slowest example is done, and each example's
result stops changing at its own last step (its step count is returned to show it).

Run:  python examples/root_finding.py
"""

import numpy as np

import vmapc


def newton(a):
    """The cube root of a > 0, and the number of Newton steps it took."""
    def not_done(state):
        x, step, n = state
        return (np.abs(step) > 1e-12 * np.abs(x)) & (n < 100)

    def update(state):
        x, _, n = state
        step = (x ** 3 - a) / (3 * x ** 2)
        return x - step, step, n + 1
    x0 = np.maximum(a, 1.0)
    x, _, n = vmapc.while_loop(not_done, update, (x0, x0, 0))
    return x, n


def bisect(c):
    """The root of cos(x) - c x in [0, 2] (c in [0.5, 4]), to 1e-9, and the steps taken."""
    def f(x):
        return np.cos(x) - c * x

    def wide(state):
        lo, hi, n = state
        return hi - lo > 1e-9

    def halve(state):
        lo, hi, n = state
        mid = 0.5 * (lo + hi)
        left = f(lo) * f(mid) <= 0
        return np.where(left, lo, mid), np.where(left, mid, hi), n + 1
    # a bracket whose width depends on c: examples need different numbers of halvings
    lo, hi, n = vmapc.while_loop(wide, halve, (np.float64(0.0), np.minimum(2.0, 1.5 / c), 0))
    return 0.5 * (lo + hi), n


def main():
    rng = np.random.default_rng(0)
    a = np.concatenate([[1.0, 8.0, 1e-6, 1e12], rng.uniform(0.1, 1000.0, size=252)])
    roots, steps = vmapc.vmap(newton)(a)
    err = np.max(np.abs(roots - np.cbrt(a)) / np.cbrt(a))
    print(f"newton: {a.size} cube roots, max relative error {err:.1e}, "
          f"steps per example from {steps.min()} to {steps.max()}")
    assert err < 1e-12
    assert len(set(steps.tolist())) > 5, "examples should need different step counts"
    for i in range(4):        # each example took exactly the steps its own loop takes
        x = step = max(a[i], 1.0)
        n = 0
        while abs(step) > 1e-12 * abs(x) and n < 100:
            step = (x ** 3 - a[i]) / (3 * x ** 2)
            x, n = x - step, n + 1
        assert steps[i] == n and np.isclose(roots[i], x, rtol=1e-15), (i, steps[i], n)

    c = rng.uniform(0.5, 4.0, size=64)
    roots, steps = vmapc.vmap(bisect)(c)
    resid = np.max(np.abs(np.cos(roots) - c * roots))
    print(f"bisection: {c.size} roots, max |residual| {resid:.1e}, steps from {steps.min()} to {steps.max()}")
    assert resid < 1e-8 and steps.min() < steps.max()
    print("OK")


if __name__ == "__main__":
    main()
