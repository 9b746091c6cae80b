"""Per-example gradients: the spread of each contender's time per call, side by side.

From the repository root::

    python -m benchmarks.grads_spread --sizes 16,256
    python -m benchmarks.grads_spread --sizes 256 --contenders torch.compile --torch-threads 1

:mod:`benchmarks.grads` reports medians, which on a loaded machine mix two things: what
a contender's code costs, and how long its threads waited for a core. This script
builds the same contenders (:func:`benchmarks.grads.build`, each checked against the
hand-derived gradients first), calls each once per round in rotating order, and prints
the minimum, 10th percentile, median and 90th percentile per contender as one JSON line
per batch size. A contender whose median is far above its minimum was stalled, not slow.
docs/performance.md ("The torch.compile cell at B = 256, rerun") was measured with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/grads_spread.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

from vmapc.runtime import aligned  # noqa: E402

from .grads import CHUNK, ORDER, WORKLOADS, build, check  # noqa: E402
from .run import Peers  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,256", help="comma-separated batch sizes (default 16,256)")
    ap.add_argument("--workload", default="mlp", choices=sorted(WORKLOADS))
    ap.add_argument("--contenders", default="vmapc,jax,torch.vmap,torch.compile",
                    help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--torch-threads", type=int, help="torch.set_num_threads before building")
    args = ap.parse_args(argv)
    wanted = set(args.contenders.split(","))
    peers = Peers(wanted)
    if args.torch_threads and peers.torch is not None:
        peers.torch.set_num_threads(args.torch_threads)
    w = WORKLOADS[args.workload]
    for B in [int(b) for b in args.sizes.split(",")]:
        rng = np.random.default_rng(B)
        params = {k: aligned(v) for k, v in w.params(rng).items()}
        xs, ys = (aligned(a) for a in w.example(rng, B))
        fns, failed = build(w, B, params, xs, ys, wanted, peers, {"chunk": CHUNK})
        ok = check(w, fns, w.numpy_grads(params, xs, ys))
        names = [n for n in ORDER if n in fns and ok[n][0]]
        for n in names:
            fns[n]()
        times = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                t0 = time.perf_counter()
                fns[n]()
                times[n].append(time.perf_counter() - t0)
        row = {"B": B, "load": round(os.getloadavg()[0], 1),
               "failed": {**failed, **{n: ok[n][2] for n in fns if not ok[n][0]}}}
        for n in names:
            a = np.array(times[n]) * 1e3
            row[n] = {q: round(float(v), 3) for q, v in
                      (("min_ms", a.min()), ("p10_ms", np.percentile(a, 10)), ("median_ms", np.median(a)),
                       ("p90_ms", np.percentile(a, 90)))}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
