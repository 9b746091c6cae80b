"""Differentially private SGD: per-example gradients, clipped and noised.

DP-SGD (Abadi et al., 2016) bounds each example's influence on a training step: it
computes the gradient of every example separately, scales each down to an L2 norm
of at most C, sums them, adds Gaussian noise of standard deviation sigma * C and
averages. The per-example gradients are what is expensive elsewhere; here they are
``vmap(grad(loss))``, one compiled module for the batch. The step is checked against
a Python loop of single-example gradients, and a few steps train the model.

Run:  python examples/dp_sgd.py
"""

import numpy as np

import vmapc

CLIP, SIGMA, LR = 1.0, 0.8, 0.5


def loss(params, x, y):
    """Cross-entropy of a small MLP on ONE example (y: the class as a one-hot vector)."""
    h = np.tanh(x @ params["w1"] + params["b1"])
    z = h @ params["w2"] + params["b2"]
    z = z - vmapc.stop_gradient(np.max(z))
    return np.log(np.sum(np.exp(z))) - np.sum(z * y)


def clip_and_sum(grads):
    """Each example's gradient (every parameter together) scaled to an L2 norm of at most
    CLIP, then summed over the batch. `grads` holds per-example gradients (batch first).
    Plain NumPy: it runs on arrays, and traces inside a compiled function too."""
    norms = np.sqrt(sum(np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in grads.values()))
    scale = np.minimum(1.0, CLIP / np.maximum(norms, 1e-12))
    return {k: np.tensordot(scale, g, axes=1) for k, g in grads.items()}


def clipped_sum(params, xs, ys):
    """Per-example gradients, clipped and summed, in ONE compiled module: the per-example
    gradients never leave it (only the sums, the size of the parameters, come back)."""
    return clip_and_sum(vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0))(params, xs, ys))


def dp_step(params, xs, ys, noise, per_example):
    """One DP-SGD step; `noise` holds a standard normal array per parameter."""
    summed = clip_and_sum(per_example(params, xs, ys))
    return {k: params[k] - LR * (summed[k] + SIGMA * CLIP * noise[k]) / len(xs) for k in params}


def main():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(20, 32)).astype(np.float32) / 4, "b1": np.zeros(32, np.float32),
              "w2": rng.normal(size=(32, 3)).astype(np.float32) / 6, "b2": np.zeros(3, np.float32)}
    centers = rng.normal(size=(3, 20)).astype(np.float32) * 2
    labels = rng.integers(0, 3, size=256)
    xs = (centers[labels] + rng.normal(size=(256, 20))).astype(np.float32)
    ys = np.eye(3, dtype=np.float32)[labels]

    # per-example gradients: one compiled module for the whole batch
    per_example = vmapc.compile(vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0)))
    one = vmapc.compile(vmapc.grad(loss))           # the same gradient, one example at a time

    noise = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    batched = per_example(params, xs, ys)
    looped = {k: np.stack([one(params, x, y)[k] for x, y in zip(xs, ys)]) for k in params}
    err = max(float(np.max(np.abs(batched[k] - looped[k]))) for k in params)
    print(f"per-example gradients {batched['w1'].shape} for w1; max |batched - loop| = {err:.2e}")
    assert err < 1e-5

    step_batched = dp_step(params, xs, ys, noise, per_example)
    step_looped = dp_step(params, xs, ys, noise, lambda p, x, y: looped)
    step_err = max(float(np.max(np.abs(step_batched[k] - step_looped[k]))) for k in params)
    print(f"one DP-SGD step: max |batched - loop| = {step_err:.2e}")
    assert step_err < 1e-6

    fused = vmapc.compile(clipped_sum)
    sums, want = fused(params, xs, ys), clip_and_sum(looped)
    fused_err = max(float(np.max(np.abs(sums[k] - want[k]) / (1 + np.abs(want[k])))) for k in params)
    print(f"clipping and summing inside the compiled module: max relative difference {fused_err:.2e}")
    assert fused_err < 1e-5

    mean_loss = vmapc.compile(vmapc.vmap(loss, in_dims=(None, 0, 0)))
    before = float(np.mean(mean_loss(params, xs, ys)))
    for _ in range(20):
        noise = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        params = dp_step(params, xs, ys, noise, per_example)
    after = float(np.mean(mean_loss(params, xs, ys)))
    print(f"mean loss: {before:.3f} before, {after:.3f} after 20 private steps")
    assert after < before
    print("OK")


if __name__ == "__main__":
    main()
