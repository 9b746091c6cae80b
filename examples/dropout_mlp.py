"""Dropout in a per-example MLP: every example gets its own dropout mask.

The model is written for ONE input vector and draws its dropout mask from a key.
Compiled over a batch with ``randomness="different"`` and ONE shared key, example i
draws from ``vmapc.random.fold_in(key, i)``: the masks differ between examples, and a
plain Python loop that calls the model with those keys gives the same masks and
(up to float rounding) the same outputs. With the default ``randomness="error"`` the
shared key is refused, because every example would silently get the same mask.

Run:  python examples/dropout_mlp.py
"""

import numpy as np

import vmapc
import vmapc.random as vr

KEEP = 0.8


def mlp(x, w1, w2, key):
    """One example: a hidden layer with inverted dropout, then the output layer."""
    h = np.maximum(x @ w1, 0.0)
    mask = vr.bernoulli(key, KEEP, h.shape)
    h = np.where(mask, h / KEEP, 0.0)
    return h @ w2, mask


def main():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(256, 32)).astype(np.float32)
    w1 = rng.normal(size=(32, 64)).astype(np.float32) / 6
    w2 = rng.normal(size=(64, 10)).astype(np.float32) / 8
    key = vr.key(42)

    try:
        vmapc.compile(mlp, in_dims=(0, None, None, None))(xs, w1, w2, key)
        raise AssertionError("a shared key must be refused by default")
    except vmapc.BatchingError as err:
        print("randomness='error' (the default):", str(err).splitlines()[0][:90], "...")

    batched = vmapc.compile(mlp, in_dims=(0, None, None, None), randomness="different")
    ys, masks = batched(xs, w1, w2, key)

    loop = [mlp(x, w1, w2, vr.fold_in(key, i)) for i, x in enumerate(xs)]   # eager, one example at a time
    loop_ys = np.stack([y for y, _ in loop])
    loop_masks = np.stack([m for _, m in loop])
    assert (masks == loop_masks).all(), "the same masks as the loop with folded keys"
    err = np.max(np.abs(ys - loop_ys))
    assert err < 1e-4, err
    kept = masks.mean()
    distinct = len({m.tobytes() for m in masks})
    print(f"{len(xs)} examples: {distinct} distinct masks, {kept:.3f} of the units kept (p = {KEEP}), "
          f"max |batched - loop| = {err:.1e}")
    assert distinct == len(xs) and abs(kept - KEEP) < 0.01
    print("OK")


if __name__ == "__main__":
    main()
