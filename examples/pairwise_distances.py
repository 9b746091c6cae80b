"""Pairwise distances by nesting vmap.

`distance` compares two points. vmapping it over the first argument and then over
the second gives the full distance matrix between two point sets, without
writing any broadcasting by hand.

Run:  python examples/pairwise_distances.py
"""

import numpy as np

import vmapc


def distance(a, b):
    d = a - b
    return np.sqrt(np.sum(d * d))


def main():
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(100, 3))
    ys = rng.normal(size=(70, 3))

    row = vmapc.vmap(distance, in_dims=(None, 0))       # one x against every y
    matrix = vmapc.vmap(row, in_dims=(0, None))         # every x
    out = matrix(xs, ys)

    expected = np.array([[np.linalg.norm(x - y) for y in ys] for x in xs])
    err = np.max(np.abs(out - expected))
    print(f"distance matrix {out.shape} {out.dtype}, max |error| vs loops: {err:.2e}")
    assert out.shape == (100, 70) and err < 1e-12
    print("OK")


if __name__ == "__main__":
    main()
