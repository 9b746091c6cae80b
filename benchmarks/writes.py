"""Kernels that write into arrays: vmapc against NumPy and JAX, and the write studies.

From the repository root::

    python -m benchmarks.writes                 # the kernels at B = 1, 16, 256, and the studies
    python -m benchmarks.writes --quick         # every contender's answer, no timing (CI)

Workloads (per example, float32; every argument batched along axis 0):

``jacobi``     ``examples/kernels.py: jacobi_2d``, 10 steps on a 64x64 grid, written in place
``histogram``  ``examples/kernels.py: histogram``, 4096 weighted samples into 64 bins with ``np.add.at``
               (samples mid-bin, so every contender bins them alike)

Contenders:

``vmapc``         ``vmapc.compile(kernel, in_dims=0)``: the batch in one call, the results written
                  back into the caller's arrays (that copy is in the time)
``numpy-loop``    the NumPy kernel called on each example in a Python loop (what the kernel's
                  author runs today)
``numpy``         the batch in vectorized NumPy, written by hand (``A[:, 1:-1, 1:-1] = ...``;
                  the histogram as one ``np.add.at`` with batch indices)
``jax``           ``jax.jit(jax.vmap(f))`` of the functional rewrite JAX needs
                  (``A.at[1:-1, 1:-1].set(...)``, ``counts.at[idx].add(w)``), inputs on the device

Studies:

``loop``     a Python ``for`` over a static range writing one row per step
             (``out[i] = out[i - 1] * 0.5 + x[i]``), N rows of 64: time per call against N
             (linear when each row's write updates the array in place, quadratic if every
             step copied it) and compile time
``scatter``  the two lowerings of ``scatter`` (``iree_linalg_ext.scatter`` and the generic over
             the output) on histograms and row scatters of several sizes

Results: ``writes.json`` and ``writes.md`` in ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/writes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import vmapc  # noqa: E402

from .run import machine_info, note, time_interleaved  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
from kernels import histogram, jacobi_2d  # noqa: E402

SIZES = (1, 16, 256)
STEPS, GRID, SAMPLES, BINS = 10, 64, 4096, 64


# --- the workloads -------------------------------------------------------------------------------

def jacobi_inputs(B, rng):
    return [rng.standard_normal((B, GRID, GRID), dtype=np.float32) for _ in range(2)]


def jacobi_numpy_batched(A, B):
    for _ in range(1, STEPS):
        B[:, 1:-1, 1:-1] = 0.2 * (A[:, 1:-1, 1:-1] + A[:, 1:-1, :-2] + A[:, 1:-1, 2:] + A[:, 2:, 1:-1] + A[:, :-2, 1:-1])
        A[:, 1:-1, 1:-1] = 0.2 * (B[:, 1:-1, 1:-1] + B[:, 1:-1, :-2] + B[:, 1:-1, 2:] + B[:, 2:, 1:-1] + B[:, :-2, 1:-1])


def jacobi_jax(jnp):
    def f(A, B):
        for _ in range(1, STEPS):
            B = B.at[1:-1, 1:-1].set(0.2 * (A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1] + A[:-2, 1:-1]))
            A = A.at[1:-1, 1:-1].set(0.2 * (B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1] + B[:-2, 1:-1]))
        return A, B
    return f


def hist_inputs(B, rng):
    # samples sit mid-bin (a few outside the range, clamped): float32 rounding of the bin
    # arithmetic, which differs between contenders, then cannot move a sample across a bin edge
    bins = rng.integers(-4, BINS + 4, (B, SAMPLES)) + rng.uniform(0.25, 0.75, (B, SAMPLES))
    x = (bins * (6.0 / BINS) - 3.0).astype(np.float32)
    return [x, rng.random((B, SAMPLES), dtype=np.float32), np.zeros((B, BINS), np.float32)]


def hist_numpy_batched(x, weights, counts):
    idx = np.clip(((x + 3.0) / 6.0 * BINS).astype(np.int64), 0, BINS - 1)
    np.add.at(counts, (np.arange(x.shape[0])[:, None], idx), weights)
    return counts.sum(axis=1)


def hist_jax(jnp):
    def f(x, weights, counts):
        idx = jnp.clip(((x + 3.0) / 6.0 * BINS).astype(jnp.int32), 0, BINS - 1)
        counts = counts.at[idx].add(weights)
        return counts.sum(), counts
    return f


WORKLOADS = {
    "jacobi": (functools.partial(jacobi_2d, STEPS), jacobi_inputs, jacobi_numpy_batched, jacobi_jax, (0, 1)),
    "histogram": (histogram, hist_inputs, hist_numpy_batched, hist_jax, (2,)),
}


def contenders(name, B, rng, peers):
    """name -> (fresh inputs -> run and return the written arrays) for one workload at B."""
    kernel, make, batched, jaxf, written = WORKLOADS[name]
    base = make(B, rng)
    compiled = vmapc.compile(kernel, in_dims=0)
    out = {}

    def fresh():
        return [a.copy() for a in base]

    def run_vmapc(args):
        compiled(*args)
        return [args[i] for i in written]

    def run_loop(args):
        for b in range(B):
            kernel(*[a[b] for a in args])
        return [args[i] for i in written]

    def run_numpy(args):
        batched(*args)
        return [args[i] for i in written]
    out = {"vmapc": run_vmapc, "numpy-loop": run_loop, "numpy": run_numpy}
    if peers.get("jax"):
        jax, jnp = peers["jax"]
        jf = jax.jit(jax.vmap(jaxf(jnp)))

        def run_jax(args, dev={}):
            key = id(args)
            if key not in dev:
                dev.clear()
                dev[key] = [jax.device_put(a) for a in args]
            res = jf(*dev[key])
            jax.block_until_ready(res)
            res = res if isinstance(res, tuple) else (res,)
            return [np.asarray(r) for r in res[-len(written):]]
        out["jax"] = run_jax
    return out, fresh


def bench_kernels(sizes, budget, quick, peers):
    rows = []
    rng = np.random.default_rng(0)
    for name in WORKLOADS:
        for B in sizes:
            fns, fresh = contenders(name, B, rng, peers)
            want = fns["numpy-loop"](fresh())
            for n, f in fns.items():
                got = f(fresh())
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4, err_msg=f"{name} B={B} {n}")
            row = {"workload": name, "B": B, "checked": sorted(fns)}
            if not quick:
                # every call writes into its arguments: each contender keeps its own copy, and the
                # state it leaves (a few more steps, a fuller histogram) does not change the work
                state = {n: fresh() for n in fns}
                timed = time_interleaved({n: functools.partial(f, state[n]) for n, f in fns.items()}, budget)
                row["median_us"] = {n: round(t["median_us"], 1) for n, t in timed.items()}
                note(f"{name} B={B}: " + ", ".join(f"{n} {t:.0f} us" for n, t in row["median_us"].items()))
            rows.append(row)
    return rows


# --- studies -------------------------------------------------------------------------------------

def row_loop(out, x):
    for i in range(1, out.shape[0]):
        out[i] = out[i - 1] * 0.5 + x[i]


def study_loop(ns, budget):
    """Time per call and compile time of the unrolled row loop against its length."""
    rows = []
    for n in ns:
        rng = np.random.default_rng(n)
        out, x = np.zeros((n, 64), np.float32), rng.standard_normal((n, 64), dtype=np.float32)
        c = vmapc.compile(row_loop)
        t0 = time.perf_counter()
        c(out.copy(), x)
        first = time.perf_counter() - t0
        want = out.copy()
        row_loop(want, x)
        got = out.copy()
        c(got, x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        t = time_interleaved({"vmapc": lambda: c(got, x)}, budget)["vmapc"]["median_us"]
        dispatches = c.lower(out, x).mlir.count("tensor.insert_slice")
        rows.append({"rows": n, "median_us": round(t, 1), "us_per_row": round(t / n, 3),
                     "trace_and_compile_s": round(first, 2), "insert_slices": dispatches})
        note(f"loop n={n}: {t:.0f} us ({t / n:.2f} us/row), first call {first:.1f} s")
    return rows


def study_scatter(budget):
    """iree_linalg_ext.scatter against the generic over the output, on the same scatters."""
    from vmapc import testing
    from vmapc.driver import compile_functions
    from vmapc.ir import TensorType
    from vmapc.lowering import indexing
    cases = [("hist 8 bins, 8 updates", (8,), (8,), 0, 0, "add"),
             ("hist 64 bins, 100 updates", (64,), (100,), 0, 0, "add"),
             ("hist 256 bins, 10^4 updates", (256,), (10000,), 0, 0, "add"),
             ("hist 16 bins, 10^5 updates", (16,), (100000,), 0, 0, "add"),
             ("batched hist 16x64, 1000 each", (16, 64), (16, 1000), 1, 1, "add"),
             ("rows 1000x64, set 10", (1000, 64), (10,), 0, 0, "set"),
             ("rows 1000x64, set 1000", (1000, 64), (1000,), 0, 0, "set"),
             ("rows 100x64, add 4", (100, 64), (4,), 0, 0, "add")]
    rows = []
    saved = indexing.scatter_lowering
    try:
        for label, xs, is_, axis, bd, mode in cases:
            us = xs[:axis] + is_[bd:] + xs[axis + 1:]
            fn = testing.single_op("scatter", [TensorType(xs, "float32"), TensorType(is_, "int64"),
                                               TensorType(us, "float32")],
                                   {"axis": axis, "batch_dims": bd, "mode": mode}, name="s")
            rng = np.random.default_rng(0)
            args = [rng.standard_normal(xs).astype(np.float32), rng.integers(0, xs[axis], is_),
                    rng.standard_normal(us).astype(np.float32)]
            want = vmapc.eval(fn, *args)[0]
            row = {"case": label, "chosen": saved(fn.eqns[0])}
            for kind in ("linalg_ext", "generic"):
                indexing.scatter_lowering = lambda eqn, kind=kind: kind
                try:
                    f = compile_functions([fn])["s"]
                except vmapc.errors.CompileError as e:
                    row[kind] = f"fails: {e.message.splitlines()[0][:80]}"
                    continue
                np.testing.assert_allclose(f(*args)[0], want, rtol=1e-4, atol=1e-4)
                row[kind] = round(time_interleaved({"f": lambda: f(*args)}, budget)["f"]["median_us"], 1)
            note(f"scatter {label}: " + ", ".join(f"{k} {row[k]}" for k in ("linalg_ext", "generic")))
            rows.append(row)
    finally:
        indexing.scatter_lowering = saved
    return rows


# --- report --------------------------------------------------------------------------------------

def markdown(res) -> str:
    out = ["## Kernels that write (median us per call)", "",
           "| workload | B | vmapc | numpy-loop | numpy | jax |", "| --- | --- | --- | --- | --- | --- |"]
    for r in res["kernels"]:
        t = r.get("median_us", {})
        out.append(f"| {r['workload']} | {r['B']} | " + " | ".join(str(t.get(n, "-")) for n in
                                                                    ("vmapc", "numpy-loop", "numpy", "jax")) + " |")
    if res.get("loop"):
        out += ["", "## Row loop (out[i] = out[i-1] * 0.5 + x[i], rows of 64)", "",
                "| rows | us per call | us per row | first call (s) |", "| --- | --- | --- | --- |"]
        out += [f"| {r['rows']} | {r['median_us']} | {r['us_per_row']} | {r['trace_and_compile_s']} |"
                for r in res["loop"]]
    if res.get("scatter"):
        out += ["", "## Scatter lowering (us per call)", "", "| case | linalg_ext | generic | chosen |",
                "| --- | --- | --- | --- |"]
        out += [f"| {r['case']} | {r['linalg_ext']} | {r['generic']} | {r['chosen']} |" for r in res["scatter"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.writes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="check every contender's answer at B=3, no timing")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes of the kernels (or none)")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timing per cell")
    ap.add_argument("--studies", default="loop,scatter", help="comma-separated: loop, scatter (or none)")
    args = ap.parse_args(argv)
    peers = {}
    try:
        import jax
        import jax.numpy as jnp
        peers["jax"] = (jax, jnp)
    except Exception as e:  # optional
        note(f"jax skipped: not installed ({type(e).__name__})")
    sizes = [3] if args.quick else [] if args.sizes == "none" else [int(s) for s in args.sizes.split(",")]
    res = {"machine": machine_info(), "kernels": bench_kernels(sizes, args.budget, args.quick, peers)}
    studies = [] if args.quick or args.studies == "none" else args.studies.split(",")
    if "loop" in studies:
        res["loop"] = study_loop((16, 32, 64, 128, 256), args.budget)
    if "scatter" in studies:
        res["scatter"] = study_scatter(args.budget)
    os.makedirs(args.out, exist_ok=True)
    name = "writes-quick" if args.quick else "writes"
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
