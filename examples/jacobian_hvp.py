"""Jacobians and a Hessian-vector product.

A Jacobian is ``vmap`` of a derivative pass: ``jacrev`` batches the reverse pass over
the rows of the identity (one per output element), ``jacfwd`` the forward pass over
its columns (one per input element). A Hessian-vector product needs no Hessian:
forward mode over the gradient, ``jvp(grad(f), (x,), (v,))``, costs a few gradient
evaluations whatever the dimension. Each answer is checked against central finite
differences in float64, and the HVP against the full Hessian.

Run:  python examples/jacobian_hvp.py
"""

import numpy as np

import vmapc


def flow(x, w):
    """A small map R^6 -> R^4 (float64): a tanh layer scaled by a softplus."""
    return np.tanh(x @ w) * np.log1p(np.exp(np.sum(x) / 6))


def energy(x):
    """A scalar function of 50 variables: a chain of coupled springs."""
    return np.sum((x[1:] - x[:-1]) ** 2 * (1 + 0.1 * np.cos(x[1:]))) + np.sum(x ** 4) / 4


def finite_jacobian(f, x, eps=1e-6):
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))
    return np.stack(cols, axis=-1)


def main():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=6), rng.normal(size=(6, 4))

    jr = vmapc.jacrev(flow)(x, w)                 # (4, 6): output dims, then input dims
    jf = vmapc.jacfwd(flow)(x, w)
    fd = finite_jacobian(lambda x: flow(x, w), x)
    print(f"Jacobian {jr.shape}: |jacrev - fd| = {np.max(np.abs(jr - fd)):.1e}, "
          f"|jacfwd - jacrev| = {np.max(np.abs(jf - jr)):.1e}")
    assert np.allclose(jr, fd, atol=1e-7) and np.allclose(jf, jr, atol=1e-12)
    jw = vmapc.jacrev(flow, argnums=1)(x, w)      # with respect to the weights: (4, 6, 4)
    fdw = finite_jacobian(lambda w: flow(x, w), w)
    assert jw.shape == (4, 6, 4) and np.allclose(jw, fdw.reshape(4, 6, 4), atol=1e-7)

    y, v = rng.normal(size=50), rng.normal(size=50)
    hvp = vmapc.compile(lambda y, v: vmapc.jvp(vmapc.grad(energy), (y,), (v,))[1])
    hv = hvp(y, v)
    h = vmapc.hessian(energy)(y)                  # (50, 50), to check against
    fd_h = finite_jacobian(vmapc.grad(energy), y)
    print(f"Hessian-vector product: |hvp - H v| = {np.max(np.abs(hv - h @ v)):.1e}, "
          f"|H - fd| = {np.max(np.abs(h - fd_h)):.1e}")
    assert np.allclose(hv, h @ v, atol=1e-10) and np.allclose(h, fd_h, atol=1e-6)
    assert np.allclose(h, h.T, atol=1e-12)
    print("OK")


if __name__ == "__main__":
    main()
