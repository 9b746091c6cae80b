"""An RNN over a batch of sequences with scan.

`rnn` runs an Elman RNN cell over ONE sequence (time x features) with vmapc.scan: the
hidden state is the carry, the outputs are stacked along time. vmap runs it over a batch
of sequences sharing the weights; the weights stay unbatched, so each step is one
matrix product for the whole batch.

Run:  python examples/rnn_scan.py
"""

import numpy as np

import vmapc


def rnn(xs, w_in, w_h, b):
    def cell(h, x):
        h = np.tanh(x @ w_in + h @ w_h + b)
        return h, h
    h0 = np.zeros(w_h.shape[0], xs.dtype)
    last, hs = vmapc.scan(cell, h0, xs)
    return last, hs


def main():
    rng = np.random.default_rng(2)
    batch, time, features, hidden = 32, 50, 8, 16
    xs = rng.normal(size=(batch, time, features)).astype(np.float32)
    w_in = (rng.normal(size=(features, hidden)) / 3).astype(np.float32)
    w_h = (rng.normal(size=(hidden, hidden)) / 4).astype(np.float32)
    b = rng.normal(size=hidden).astype(np.float32) * 0.1

    last, hs = vmapc.vmap(rnn, in_dims=(0, None, None, None))(xs, w_in, w_h, b)

    h = np.zeros((batch, hidden), np.float32)     # the same RNN in NumPy, a loop over time
    want = []
    for t in range(time):
        h = np.tanh(xs[:, t] @ w_in + h @ w_h + b)
        want.append(h)
    want = np.stack(want, axis=1)
    err = max(np.max(np.abs(hs - want)), np.max(np.abs(last - h)))
    print(f"RNN over {batch} sequences of {time} steps: outputs {hs.shape}, max |error| vs NumPy {err:.1e}")
    assert hs.shape == (batch, time, hidden) and err < 1e-4
    print("OK")


if __name__ == "__main__":
    main()
