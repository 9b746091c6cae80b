"""A Runge-Kutta (RK4) integrator over a batch of initial conditions with fori_loop.

`integrate` advances ONE damped pendulum (angle, angular velocity) by `steps` RK4 steps
of size `dt`. The loop is a vmapc.fori_loop: traced once, it stays one loop in the
compiled code however many steps it runs (a Python `for` would unroll into an IR that
grows with the step count). vmap runs it for 1,000 pendulums at once.

Run:  python examples/rk4.py
"""

import numpy as np

import vmapc

DT = 0.01
DAMPING = 0.1


def pendulum(y):
    theta, omega = y[0], y[1]
    return np.stack([omega, -np.sin(theta) - DAMPING * omega])


def rk4_step(y):
    k1 = pendulum(y)
    k2 = pendulum(y + 0.5 * DT * k1)
    k3 = pendulum(y + 0.5 * DT * k2)
    k4 = pendulum(y + DT * k3)
    return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate(y0, steps=1000):
    return vmapc.fori_loop(0, steps, lambda i, y: rk4_step(y), y0)


def main():
    rng = np.random.default_rng(1)
    y0 = np.stack([rng.uniform(-3.0, 3.0, 1000), rng.uniform(-1.0, 1.0, 1000)], axis=1)
    batched = vmapc.compile(integrate, in_dims=0)
    y = batched(y0)

    want = y0.copy()                      # the same integrator in NumPy, all pendulums at once
    for _ in range(1000):
        th, om = want[:, 0], want[:, 1]

        def f(th, om):
            return om, -np.sin(th) - DAMPING * om
        k1 = f(th, om)
        k2 = f(th + 0.5 * DT * k1[0], om + 0.5 * DT * k1[1])
        k3 = f(th + 0.5 * DT * k2[0], om + 0.5 * DT * k2[1])
        k4 = f(th + DT * k3[0], om + DT * k3[1])
        want = want + DT / 6 * np.stack([k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0],
                                         k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]], axis=1)
    err = np.max(np.abs(y - want))
    ir = batched.lower(y0).program
    print(f"{len(y0)} pendulums, 1000 RK4 steps: max |error| vs NumPy {err:.1e}; "
          f"the program has {len(ir.eqns)} top-level equation(s)")
    assert err < 1e-9 and len(ir.eqns) == 1
    print("OK")


if __name__ == "__main__":
    main()
