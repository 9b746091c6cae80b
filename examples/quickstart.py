"""vmapc in one page: write NumPy for one example, run it over a batch.

Run:  python examples/quickstart.py
"""

import time

import numpy as np

import vmapc


def predict(x, w1, b1, w2):
    """A two-layer MLP for ONE input vector x (plain NumPy, no vmapc inside)."""
    h = np.maximum(x @ w1 + b1, 0.0)
    return np.tanh(h @ w2)


def main():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(64, 128)).astype(np.float32) / 8
    b1 = np.zeros(128, np.float32)
    w2 = rng.normal(size=(128, 10)).astype(np.float32) / 11
    xs = rng.normal(size=(256, 64)).astype(np.float32)      # a batch of 256 inputs

    # 1. Trace one example into vmapc's IR.
    print("traced (one example):")
    print(vmapc.trace(predict, xs[0], w1, b1, w2))

    # 2. Batch it: in_dims says which arguments carry the batch (x) and which are shared.
    batched = vmapc.compile(predict, in_dims=(0, None, None, None))
    print("\nbatched (each value's batch dim after @):")
    print(batched.lower(xs, w1, b1, w2).batched)

    # 3. Compile (once per input signature) and run on the CPU through IREE.
    t0 = time.perf_counter()
    ys = batched(xs, w1, b1, w2)
    t1 = time.perf_counter()
    ys = batched(xs, w1, b1, w2)
    t2 = time.perf_counter()

    # 4. Check against the per-example loop in NumPy.
    expected = np.stack([predict(x, w1, b1, w2) for x in xs])
    err = float(np.max(np.abs(ys - expected)))
    print(f"\nbatch of {len(xs)}: output {ys.shape} {ys.dtype}, max |error| vs per-example NumPy = {err:.2e}")
    print(f"first call (trace + compile + run): {(t1 - t0) * 1e3:.0f} ms; second call: {(t2 - t1) * 1e6:.0f} us")
    assert err < 1e-4, "vmapc disagrees with NumPy"
    print("OK")


if __name__ == "__main__":
    main()
