"""The scale-out measurement reported in docs/performance.md ("Scaling out").

The README's MLP (examples/model.py: 64 -> 32 -> 10 per example, shared weights)
over ``--examples`` examples (default 10**7: a 2.4 GiB float32 input) read from an
on-disk ``.npy`` and written to one (0.37 GiB), run

* ``in-process call``: the compiled module on one chunk already in memory, timed
  alone: the floor of what a chunk costs;
* ``chunks, this process``: ``vmapc run --chunk-size`` (read a chunk from the file,
  run it, write it; one process, no Dask);
* ``dask, k workers``: :mod:`vmapc.dask` on a ``LocalCluster`` of k worker
  processes with one thread and ``--memory-limit`` each (default 1 GiB, so the input
  is bigger than the memory given to all the workers together): ``from_npy`` ->
  ``map_batches`` -> ``to_npy``.

For each: the wall time and throughput, the time per chunk (wall x processes /
chunks) and its overhead over the in-process call, the peak resident memory of each
process that ran chunks (VmHWM, which includes the ~150 MiB of an idle worker), and
for Dask the time the workers spent in tasks per chunk (from the task stream:
reading, running, writing), the rest of the time per chunk being scheduling and idling. Run from the repository root::

    pip install -e ".[dask]"
    python -m benchmarks.scaling                              # ~5 minutes on 2 cores
    python -m benchmarks.scaling --examples 1000000 --workers 1,2 --chunks 65536,262144

Writes ``--out`` (default ``benchmarks/results/scaling.json``) and prints a table.
The data goes in ``--dir`` (default: a temporary directory, removed afterwards;
a ``--dir`` that holds the input of an earlier run is reused).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from .run import machine_info, note


def make_data(work: str, n: int):
    from examples.model import mlp
    import vmapc
    r = np.random.default_rng(0)
    w1 = r.standard_normal((64, 32), dtype=np.float32)
    w2 = r.standard_normal((32, 10), dtype=np.float32)
    np.save(os.path.join(work, "w1.npy"), w1)
    np.save(os.path.join(work, "w2.npy"), w2)
    vmapc.export(mlp, os.path.join(work, "mlp_out"), args=(vmapc.f32[64], w1, w2), in_dims=(0, None, None),
                 batch="dynamic")
    path = os.path.join(work, "xs.npy")
    try:       # a --dir from an earlier run already holds the input
        if np.load(path, mmap_mode="r").shape == (n, 64):
            return w1, w2
    except (OSError, ValueError):
        pass
    x = np.lib.format.open_memmap(os.path.join(work, "xs.npy"), mode="w+", dtype=np.float32, shape=(n, 64))
    step = 1 << 20
    for s in range(0, n, step):
        x[s:s + step] = r.standard_normal((min(step, n - s), 64), dtype=np.float32)
    x.flush()
    del x
    return w1, w2


def check(work: str, out: str, w1, w2, samples=1000):
    """The output file against the per-example NumPy function at `samples` rows."""
    from examples.model import mlp
    xs = np.load(os.path.join(work, "xs.npy"), mmap_mode="r")
    ys = np.load(out, mmap_mode="r")
    rows = np.random.default_rng(1).choice(len(xs), size=min(samples, len(xs)), replace=False)
    want = np.stack([mlp(xs[i], w1, w2) for i in rows])
    return float(np.abs(ys[rows] - want).max())


def in_process_call(plan, chunk: int, repeats: int = 7) -> float:
    """Median seconds of the module on one in-memory chunk (local-sync, as on a worker)."""
    from vmapc.runtime import aligned
    from vmapc.runtime.chunked import function
    fn = function(plan.program)
    x = aligned(np.asarray(plan.leaves[0][:chunk]))
    w = [np.asarray(a) for a in plan.leaves[1:]]
    fn(x, *w)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x, *w)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# `vmapc run --chunk-size` in a fresh process, which reports its peak memory (VmHWM) at the end
PEAK = """
import sys
from vmapc.cli import main
rc = main(sys.argv[1:])
with open("/proc/self/status") as f:
    print("peak_kib=" + next(line.split()[1] for line in f if line.startswith("VmHWM:")))
sys.exit(rc)
"""


def run_this_process(work: str, chunk: int) -> dict:
    import re
    import subprocess
    import vmapc
    from vmapc.runtime.chunked import NpyFile
    from vmapc.scaleout import inputs, ranges
    model = vmapc.load(os.path.join(work, "mlp_out"))
    args = [NpyFile(os.path.join(work, "xs.npy")), np.load(os.path.join(work, "w1.npy")),
            np.load(os.path.join(work, "w2.npy"))]
    plan = inputs(model, args, what="benchmark").plan(chunk_len=chunk)
    call = in_process_call(plan, chunk)
    res = subprocess.run([sys.executable, "-c", PEAK, "run", "mlp_out", "--input", "x=xs.npy", "--input", "w1=w1.npy",
                          "--input", "w2=w2.npy", "--chunk-size", str(chunk), "--output-dir", "res_local"],
                         cwd=work, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"vmapc run failed: {res.stderr}")
    wall = float(re.search(r" in ([0-9.]+) s ", res.stdout).group(1))
    peak = int(re.search(r"peak_kib=(\d+)", res.stdout).group(1)) / 1024
    n_chunks = len(ranges(plan.size, chunk))
    return {"engine": "this process", "workers": 1, "chunk": chunk, "chunks": n_chunks, "wall_s": wall,
            "examples_per_s": plan.size / wall, "call_s": call, "per_chunk_s": wall / n_chunks,
            "overhead_per_chunk_s": wall / n_chunks - call, "peak_mib": [peak],
            "out": os.path.join(work, "res_local", "out.npy")}


def _worker_peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


def _worker_reset():
    """Reset the worker's VmHWM to its current memory (Linux: 5 > clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def run_dask(work: str, workers: int, chunk: int, memory_limit: str, call: float) -> dict:
    from distributed import Client, LocalCluster, get_task_stream
    import vmapc
    import vmapc.dask
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        model = vmapc.load(os.path.join(work, "mlp_out"))
        w1, w2 = np.load(os.path.join(work, "w1.npy")), np.load(os.path.join(work, "w2.npy"))
        client.run(_worker_reset)
        out_path = os.path.join(work, f"ys_dask{workers}.npy")
        xs = vmapc.dask.from_npy(os.path.join(work, "xs.npy"), chunks=chunk)
        ys = vmapc.dask.map_batches(model, xs, w1, w2)
        n_chunks = len(xs.chunks[0])
        with get_task_stream(client=client) as ts:
            t = time.perf_counter()
            vmapc.dask.to_npy(ys, out_path)
            wall = time.perf_counter() - t
        busy = sum(s["stop"] - s["start"] for task in ts.data for s in task.get("startstops", ())
                   if s["action"] == "compute")
        peaks = sorted(client.run(_worker_peak).values())
    finally:
        client.close()
        cluster.close()
    return {"engine": "dask", "workers": workers, "chunk": chunk, "chunks": n_chunks, "wall_s": wall,
            "examples_per_s": xs.shape[0] / wall, "call_s": call, "busy_per_chunk_s": busy / n_chunks,
            "per_chunk_s": wall * workers / n_chunks, "overhead_per_chunk_s": wall * workers / n_chunks - call,
            "memory_limit": memory_limit, "peak_mib": peaks, "out": out_path}


def table(rows) -> str:
    head = ("| engine | workers | chunk | wall (s) | examples/s | in-process call (ms) | per chunk (ms) "
            "| in tasks per chunk (ms) | overhead per chunk (ms) | peak RSS per process (MiB) | max error |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        busy = f"{r['busy_per_chunk_s'] * 1e3:.1f}" if "busy_per_chunk_s" in r else "-"
        cells = [r["engine"], r["workers"], r["chunk"], f"{r['wall_s']:.2f}", f"{r['examples_per_s']:,.0f}",
                 f"{r['call_s'] * 1e3:.1f}", f"{r['per_chunk_s'] * 1e3:.1f}", busy,
                 f"{r['overhead_per_chunk_s'] * 1e3:.1f}", ", ".join(f"{p:.0f}" for p in r["peak_mib"]),
                 f"{r.get('max_error', float('nan')):.1e}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=10_000_000)
    p.add_argument("--chunks", default="262144", help="comma-separated chunk sizes")
    p.add_argument("--workers", default="1,2", help="comma-separated numbers of Dask workers")
    p.add_argument("--memory-limit", default="1GiB", help="memory given to each Dask worker")
    p.add_argument("--dir", help="where the data goes (default: a temporary directory, removed)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results", "scaling.json"))
    a = p.parse_args(argv)
    work = a.dir or tempfile.mkdtemp(prefix="vmapc-scaling-")
    os.makedirs(work, exist_ok=True)
    results = {"machine": machine_info(), "examples": a.examples, "rows": []}
    try:
        note(f"writing {a.examples} examples ({a.examples * 256 / 2**30:.2f} GiB) to {work}")
        t = time.perf_counter()
        w1, w2 = make_data(work, a.examples)
        note(f"  {time.perf_counter() - t:.1f} s")
        for chunk in (int(c) for c in a.chunks.split(",")):
            r = run_this_process(work, chunk)
            r["max_error"] = check(work, r.pop("out"), w1, w2)
            note(f"this process, chunk {chunk}: {r['wall_s']:.2f} s")
            results["rows"].append(r)
            for k in (int(w) for w in a.workers.split(",")):
                d = run_dask(work, k, chunk, a.memory_limit, r["call_s"])
                d["max_error"] = check(work, d.pop("out"), w1, w2)
                note(f"dask, {k} workers, chunk {chunk}: {d['wall_s']:.2f} s")
                results["rows"].append(d)
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_after"] = list(os.getloadavg())
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results["rows"]))
    print(f"load average before {results['machine']['load_before']}, after {results['machine']['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
