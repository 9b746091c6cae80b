"""Training an ensemble with batched gradients.

Eight small regression models, each with its own initial weights, train together:
the parameters carry the ensemble axis, the data is shared, and one compiled call
computes every model's loss and gradient, ``vmap(value_and_grad(loss), in_dims=(0,
None, None))``. The gradients are checked against a loop over the models, and after
training every model fits the data better than it did at the start.

Run:  python examples/ensemble_training.py
"""

import numpy as np

import vmapc

MODELS, LR, STEPS = 8, 0.1, 300


def loss(params, xs, ys):
    """Mean squared error of ONE model on the whole (shared) data set."""
    h = np.tanh(xs @ params["w"] + params["b"])
    pred = h @ params["v"]
    return np.mean((pred - ys) ** 2)


def main():
    rng = np.random.default_rng(3)
    xs = rng.uniform(-2, 2, size=(128, 1)).astype(np.float32)
    ys = (np.sin(2 * xs) + 0.05 * rng.normal(size=xs.shape)).astype(np.float32)
    params = {"w": rng.normal(size=(MODELS, 1, 16)).astype(np.float32),
              "b": rng.normal(size=(MODELS, 16)).astype(np.float32),
              "v": (rng.normal(size=(MODELS, 16, 1)) / 4).astype(np.float32)}

    step = vmapc.compile(vmapc.vmap(vmapc.value_and_grad(loss), in_dims=(0, None, None)))
    values, grads = step(params, xs, ys)                        # (8,) and stacked gradients
    one = vmapc.value_and_grad(loss)
    for m in range(MODELS):
        v, g = one({k: p[m] for k, p in params.items()}, xs, ys)
        assert np.allclose(values[m], v, rtol=1e-5) and all(np.allclose(grads[k][m], g[k], atol=1e-5) for k in g)
    print(f"{MODELS} models: batched losses and gradients match a loop over the models")

    first = values
    for _ in range(STEPS):
        values, grads = step(params, xs, ys)
        params = {k: params[k] - LR * grads[k] for k in params}
    print("loss per model before:", np.round(first, 3))
    print("loss per model after: ", np.round(values, 3))
    assert np.all(values < first) and np.median(values) < 0.1
    print("OK")


if __name__ == "__main__":
    main()
