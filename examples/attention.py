"""Batched single-head attention.

Written for one sequence (q, k, v of shape [tokens, dim]); vmap runs it over a
batch of sequences. Both operands of each matrix multiply are batched, so they
become batched matmuls.

Run:  python examples/attention.py
"""

import numpy as np

import vmapc
import vmapc.numpy as vnp


def attention(q, k, v):
    scores = q @ k.T / np.sqrt(q.shape[-1])
    return vnp.softmax(scores, axis=-1) @ v


def main():
    rng = np.random.default_rng(3)
    batch, tokens, dim = 32, 128, 64
    q, k, v = (rng.normal(size=(batch, tokens, dim)).astype(np.float32) for _ in range(3))

    out = vmapc.vmap(attention)(q, k, v)

    def reference(q, k, v):
        s = q @ k.T / np.sqrt(dim)
        e = np.exp(s - s.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)) @ v
    expected = np.stack([reference(*args) for args in zip(q, k, v)])
    err = np.max(np.abs(out - expected))
    print(f"attention output {out.shape}, max |error| vs per-sequence NumPy: {err:.2e}")
    assert out.shape == (batch, tokens, dim) and err < 1e-4
    print("OK")


if __name__ == "__main__":
    main()
