"""Data, models and expected answers shared by the scale-out tests (test_dask.py,
test_dask_cluster.py, test_ray.py, test_run_chunked.py).

The model is the README's MLP (examples/model.py); the expected answers are its
Python function called on one example at a time (NumPy), and the in-process
compiled call of the same module.
"""

from __future__ import annotations

import numpy as np

import vmapc

# float32 sums of 64 and 32 products in the compiled code's order vs NumPy's: ~1e-5 apart
MLP_TOL = dict(rtol=1e-5, atol=1e-4)
N = 1000          # examples; chunks of 150 leave a ragged last chunk of 100


def mlp(x, w1, w2):
    h = np.maximum(x @ w1, 0.0)
    return np.tanh(h @ w2)


def two_outputs(x, w1, w2):
    """A dict of outputs: one batched (a matrix per example), one shared by every example."""
    h = np.maximum(x @ w1, 0.0)
    return {"hidden": h, "scores": np.tanh(h @ w2), "w_norm": (w1 * w1).sum()}


def data(n=N, seed=0):
    """(xs, w1, w2): n examples, and weights that do not depend on n."""
    r = np.random.default_rng(seed)
    w1, w2 = r.standard_normal((64, 32), dtype=np.float32), r.standard_normal((32, 10), dtype=np.float32)
    return r.standard_normal((n, 64), dtype=np.float32), w1, w2


def per_example(fn, xs, *shared):
    """`fn` called on each example, the results stacked (dicts stacked per key)."""
    outs = [fn(x, *shared) for x in xs]
    if isinstance(outs[0], dict):
        return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
    return np.stack(outs)


def export_mlp(path, batch="dynamic"):
    _, w1, w2 = data(1)
    vmapc.export(mlp, path, args=(vmapc.f32[64], w1, w2), in_dims=(0, None, None), batch=batch)
    return path
