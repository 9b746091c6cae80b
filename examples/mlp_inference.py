"""Per-example MLP inference with shared weights.

The model is written for one input vector. vmap batches the input and shares the
weights: each layer becomes ONE matrix multiply of the whole batch (the batch is
folded into the rows), never a copy of the weights per example.

Run:  python examples/mlp_inference.py
"""

import numpy as np

import vmapc


def mlp(x, params):
    """784 -> 256 -> 10, ReLU, log-softmax; x is one flattened image."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0)
    logits = h @ params["w2"] + params["b2"]
    return logits - vmapc.numpy.logsumexp(logits)


def main():
    rng = np.random.default_rng(1)
    params = {
        "w1": (rng.normal(size=(784, 256)) / 28).astype(np.float32), "b1": np.zeros(256, np.float32),
        "w2": (rng.normal(size=(256, 10)) / 16).astype(np.float32), "b2": np.zeros(10, np.float32),
    }
    images = rng.random(size=(512, 784)).astype(np.float32)

    # in_dims: images batched along axis 0; every leaf of params shared (None)
    predict = vmapc.vmap(mlp, in_dims=(0, None))
    out = predict(images, params)

    def reference(x):
        h = np.maximum(x @ params["w1"] + params["b1"], 0)
        z = h @ params["w2"] + params["b2"]
        m = z.max()
        return z - (m + np.log(np.exp(z - m).sum()))
    expected = np.stack([reference(x) for x in images])
    err = np.max(np.abs(out - expected))
    print(f"log-probabilities {out.shape}, max |error| vs per-example NumPy: {err:.2e}")
    assert out.shape == (512, 10) and err < 1e-4
    print("OK")


if __name__ == "__main__":
    main()
