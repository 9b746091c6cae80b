"""A custom op's batching rule against the one vmapc derives from its body.

From the repository root::

    python -m benchmarks.custom_ops             # time it
    python -m benchmarks.custom_ops --quick     # every contender's answer, no timing

Workload: ``examples/custom_distance.py: sqdists``, the squared distances from a point
(d = 64) to m = 1024 shared points, float32, batched over the point (``in_dims=(0, None)``)
at B = 256 and 4096.

Contenders:

``vmapc-rule``      ``vmapc.compile(vmap(sqdists))``: the op's rule, |x|^2 + |y|^2 - 2 x.y
                    with the cross term one matrix product
``vmapc-derived``   the same function without the rule (the body batched by vmapc: a
                    broadcast difference, squared and summed, which IREE fuses)
``numpy-broadcast`` NumPy, ``((xs[:, None] - ys[None]) ** 2).sum(-1)``
``numpy-gemm``      NumPy, the expansion with ``xs @ ys.T`` (OpenBLAS)

Results: ``custom_ops.json`` in ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/custom_ops.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import vmapc  # noqa: E402

from .run import machine_info, note, time_interleaved  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
from custom_distance import sqdists  # noqa: E402

M, D = 1024, 64


def derived(x, ys):
    d = ys - x
    return np.sum(d * d, axis=-1)


def contenders(xs, ys):
    rule = vmapc.compile(sqdists, in_dims=(0, None))
    plain = vmapc.compile(derived, in_dims=(0, None))
    return {
        "vmapc-rule": lambda: rule(xs, ys),
        "vmapc-derived": lambda: plain(xs, ys),
        "numpy-broadcast": lambda: ((xs[:, None, :] - ys[None]) ** 2).sum(-1),
        "numpy-gemm": lambda: np.maximum((xs * xs).sum(-1, keepdims=True) + (ys * ys).sum(-1) - 2 * (xs @ ys.T), 0),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", default="256,4096")
    p.add_argument("--budget", type=float, default=3.0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args(argv)
    sizes = [5] if a.quick else [int(s) for s in a.sizes.split(",")]
    rng = np.random.default_rng(0)
    ys = rng.normal(size=(M, D)).astype(np.float32)
    rows = []
    for B in sizes:
        xs = rng.normal(size=(B, D)).astype(np.float32)
        fns = contenders(xs, ys)
        want = ((xs[:, None, :].astype(np.float64) - ys[None]) ** 2).sum(-1)
        for name, f in fns.items():
            got = np.asarray(f())
            err = float(np.max(np.abs(got - want)) / np.max(want))
            assert got.shape == want.shape and err < 1e-5, (name, err)
        if a.quick:
            rows.append({"B": B, "checked": list(fns)})
            continue
        note(f"B={B}: timing {', '.join(fns)}")
        t = time_interleaved(fns, a.budget)
        rows.append({"B": B, "timings": t})
        med = {k: v["median_us"] / 1e3 for k, v in t.items()}
        print(f"B={B:5d} " + "  ".join(f"{k} {v:8.3f} ms" for k, v in med.items())
              + f"  (derived / rule: {med['vmapc-derived'] / med['vmapc-rule']:.1f}x)")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "custom_ops.json"), "w") as f:
        json.dump({"machine": machine_info(), "m": M, "d": D, "rows": rows}, f, indent=1)
    print("OK")


if __name__ == "__main__":
    main()
