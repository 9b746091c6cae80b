"""A custom op with a batching rule that beats the derived one: squared distances.

`sqdists(x, ys)` is the squared distance from one point `x` (d,) to each of the points
`ys` (m, d). Batched over `x` by its body, it becomes a broadcast difference of shape
(B, m, d), squared and summed: B*m*d elementwise work. Its batching rule sees the whole
batch of points at once and uses |x|^2 + |y|^2 - 2 x.y instead, where the cross term is
one matrix product (B, d) @ (d, m), the fused kernel a BLAS-minded person would write.

The rule is the simple flavour (``front=True``): every batched argument arrives with its
batch first, and the rule says which outputs are batched. `vmapc.testing.check_batching_rule`
runs it through the sweep vmapc's own rules pass (every in_dims, nested vmaps).

Run:  python examples/custom_distance.py
(`python -m benchmarks.custom_ops` times the two against each other.)
"""

import numpy as np

import vmapc
from vmapc import testing


@vmapc.custom_op("examples.sqdists")
def sqdists(x, ys):
    d = ys - x
    return np.sum(d * d, axis=-1)


@sqdists.def_vmap(front=True)
def _(axis_size, in_batched, x, ys):
    if in_batched[1]:              # a batch of point sets: nothing to share, batch the body
        return vmapc.vmap(sqdists.fn, in_dims=(0 if in_batched[0] else None, 0))(x, ys), True
    # a batch of points against one point set: |x|^2 + |y|^2 - 2 x.y, one matrix product
    xx = np.sum(x * x, axis=-1, keepdims=True)
    yy = np.sum(ys * ys, axis=-1)
    return np.maximum(xx + yy - 2 * (x @ ys.T), 0), True


def main():
    rng = np.random.default_rng(19)
    xs = rng.normal(size=(200, 16)).astype(np.float32)
    ys = rng.normal(size=(300, 16)).astype(np.float32)

    out = vmapc.vmap(sqdists, in_dims=(0, None))(xs, ys)             # compiled, with the rule
    expected = ((xs[:, None, :] - ys[None]) ** 2).sum(-1)
    err = np.max(np.abs(out - expected)) / np.max(expected)
    print(f"squared distances {out.shape} {out.dtype}, max relative error vs NumPy: {err:.1e}")
    assert out.shape == (200, 300) and err < 1e-5

    # the rule is what runs: the batched program holds a matrix product, no (B, m, d) value
    batched = vmapc.vmap(vmapc.trace(sqdists, vmapc.f32[16], vmapc.f32[300, 16]), in_dims=(0, None), axis_size=200)
    assert any(e.op == "dot_general" for e in batched.eqns)
    assert all(v.shape != (200, 300, 16) for e in batched.eqns for v in e.outputs)

    n = testing.check_batching_rule(sqdists, xs[0], ys[:5])
    print(f"check_batching_rule: {n} cases pass")
    print("OK")


if __name__ == "__main__":
    main()
