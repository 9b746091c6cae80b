"""Sorting, top-k and scans: vmapc's lowerings against the alternatives it did not choose,
NumPy, JAX and PyTorch (``python -m benchmarks.run --study sorting``).

Each cell is a batch of B rows of n float32s, one row per example:

``argsort`` / ``sort``   along the row (stable). vmapc (a bitonic network in a loop, one
                         packed int64 per element), the same network unrolled, IREE's own
                         ``iree_linalg_ext.sort`` (a bubble sort, with a comparator that
                         breaks ties by position so that it is stable), NumPy
                         ``kind='stable'``, ``jax.vmap(jnp.argsort)``, ``torch.sort(stable=True)``.
``top_k``                the 4 largest and their positions. vmapc (``iree_linalg_ext.topk``),
                         vmapc's argsort sliced, NumPy (``argpartition`` then a sort of the k),
                         ``jax.lax.top_k``, ``torch.topk``.
``cumsum``               along the row. vmapc (``iree_linalg_ext.scan``), a log-step
                         (Hillis-Steele) scan of generics and a masked triangular reduction
                         written in MLIR, NumPy, ``jax.vmap(jnp.cumsum)``, ``torch.cumsum``.

Every contender's answer is checked against NumPy first; times are medians of
interleaved rounds (:func:`benchmarks.run.time_interleaved`). Results:
``sorting.json`` (docs/performance.md does not quote them yet).
"""

from __future__ import annotations

import contextlib

import numpy as np

import vmapc
from vmapc.runtime import aligned

CELLS = ((4096, 8), (4096, 64), (256, 1024))
K = 4


def _bubble_mlir(B, n):
    """Stable argsort with iree_linalg_ext.sort: (key, position) pairs, ties by position."""
    t, ti = f"tensor<{B}x{n}xf32>", f"tensor<{B}x{n}xi64>"
    return f"""
func.func @main(%a: {t}) -> {ti} {{
  %e = tensor.empty() : {ti}
  %iota = linalg.generic {{indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}} outs(%e : {ti}) {{
  ^bb0(%o: i64):
    %i = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i64
    linalg.yield %ii : i64
  }} -> {ti}
  %s:2 = iree_linalg_ext.sort dimension(1) outs(%a, %iota : {t}, {ti}) {{
  ^bb0(%x: f32, %y: f32, %i: i64, %j: i64):
    %lt = arith.cmpf olt, %x, %y : f32
    %eq = arith.cmpf oeq, %x, %y : f32
    %ilt = arith.cmpi slt, %i, %j : i64
    %tie = arith.andi %eq, %ilt : i1
    %c = arith.ori %lt, %tie : i1
    iree_linalg_ext.yield %c : i1
  }} -> {t}, {ti}
  return %s#1 : {ti}
}}"""


def _logstep_mlir(B, n):
    """cumsum as log2(n) generics, each adding the element `s` places back."""
    t = f"tensor<{B}x{n}xf32>"
    lines, cur, s, k = [f"func.func @main(%a: {t}) -> {t} {{"], "%a", 1, 0
    while s < n:
        k += 1
        lines.append(f"""  %e{k} = tensor.empty() : {t}
  %r{k} = linalg.generic {{indexing_maps = [affine_map<(b, i) -> (b, i)>, affine_map<(b, i) -> (b, i)>], iterator_types = ["parallel", "parallel"]}} ins({cur} : {t}) outs(%e{k} : {t}) {{
  ^bb0(%x: f32, %o: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %cs = arith.constant {s} : index
    %c0 = arith.constant 0 : index
    %ge = arith.cmpi uge, %i, %cs : index
    %j0 = arith.subi %i, %cs : index
    %j = arith.select %ge, %j0, %c0 : index
    %y = tensor.extract {cur}[%b, %j] : {t}
    %sum = arith.addf %y, %x : f32
    %v = arith.select %ge, %sum, %x : f32
    linalg.yield %v : f32
  }} -> {t}""")
        cur, s = f"%r{k}", s * 2
    lines.append(f"  return {cur} : {t}\n}}")
    return "\n".join(lines)


def _triangular_mlir(B, n):
    """cumsum as one reduction over k <= i (O(n^2) work, fully parallel)."""
    t = f"tensor<{B}x{n}xf32>"
    return f"""
func.func @main(%a: {t}) -> {t} {{
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : {t}
  %zf = linalg.fill ins(%z : f32) outs(%e : {t}) -> {t}
  %r = linalg.generic {{indexing_maps = [affine_map<(b, i, k) -> (b, k)>, affine_map<(b, i, k) -> (b, i)>], iterator_types = ["parallel", "parallel", "reduction"]}} ins(%a : {t}) outs(%zf : {t}) {{
  ^bb0(%x: f32, %acc: f32):
    %i = linalg.index 1 : index
    %k = linalg.index 2 : index
    %le = arith.cmpi ule, %k, %i : index
    %s = arith.addf %acc, %x : f32
    %v = arith.select %le, %s, %acc : f32
    linalg.yield %v : f32
  }} -> {t}
  return %r : {t}
}}"""


def _hand(mlir, B, n, out_dtype):
    """A hand-written alternative compiled for the CPU, or None where IREE cannot compile it
    (iree_linalg_ext.sort of 1024 elements exceeds IREE's 32 KiB stack limit)."""
    from vmapc.driver import compile_mlir
    from vmapc.errors import CompileError
    from vmapc.ir import TensorType
    from vmapc.runtime import Module
    sig = {"main": ([TensorType((B, n), np.float32)], [TensorType((B, n), out_dtype)])}
    try:
        return Module(compile_mlir(mlir, "cpu"), signatures=sig).function("main")
    except CompileError as e:
        print(f"  (a hand-written contender for B={B} n={n} does not compile: {str(e).splitlines()[0][:160]})")
        return None


def _drop_missing(out, **hands):
    """out without the contenders whose hand-written module did not compile."""
    return {k: v for k, v in out.items() if hands.get(k, True) is not None}


@contextlib.contextmanager
def _unrolled():
    from vmapc.lowering import sorting
    old = sorting.UNROLL_STAGES
    sorting.UNROLL_STAGES = 10 ** 6
    try:
        yield
    finally:
        sorting.UNROLL_STAGES = old


def _compiled(f, x):
    """f, written for one example (a row), batched over the rows."""
    c = vmapc.compile(f, in_dims=0)
    c(x)
    return c


def contenders(task, B, n, x, peers):
    """{name: zero-argument callable returning the answer as NumPy} for one cell."""
    jax, jnp, torch = peers.jax, peers.jnp, peers.torch
    out = {}
    if task == "argsort":
        c = _compiled(lambda r: np.argsort(r), x)
        with _unrolled():
            u = _compiled(lambda r: np.argsort(r, kind="stable"), x)
        bubble = _hand(_bubble_mlir(B, n), B, n, np.int64)
        out = _drop_missing({"vmapc": lambda: c(x), "vmapc-unrolled": lambda: u(x),
                             "linalg_ext.sort": lambda: bubble(x), "numpy": lambda: np.argsort(x, axis=-1, kind="stable")},
                            **{"linalg_ext.sort": bubble})
        if jax is not None:
            xj, fj = jnp.asarray(x), jax.jit(jax.vmap(lambda r: jnp.argsort(r, stable=True)))
            out["jax"] = lambda: np.asarray(fj(xj).block_until_ready())
        if torch is not None:
            xt = torch.from_numpy(x)
            out["torch"] = lambda: torch.sort(xt, dim=-1, stable=True)[1].numpy()
    elif task == "sort":
        c = _compiled(lambda r: np.sort(r), x)
        out = {"vmapc": lambda: c(x), "numpy": lambda: np.sort(x, axis=-1, kind="stable")}
        if jax is not None:
            xj, fj = jnp.asarray(x), jax.jit(jax.vmap(jnp.sort))
            out["jax"] = lambda: np.asarray(fj(xj).block_until_ready())
        if torch is not None:
            xt = torch.from_numpy(x)
            out["torch"] = lambda: torch.sort(xt, dim=-1, stable=True)[0].numpy()
    elif task == "top_k":
        c = _compiled(lambda r: vmapc.numpy.top_k(r, K)[1], x)
        s = _compiled(lambda r: np.argsort(-r)[:K], x)

        def numpy_top_k():
            part = np.argpartition(-x, K - 1, axis=-1)[:, :K]
            order = np.argsort(np.take_along_axis(-x, part, -1), axis=-1, kind="stable")
            return np.take_along_axis(part, order, -1)
        out = {"vmapc": lambda: c(x), "vmapc-argsort": lambda: s(x), "numpy": numpy_top_k}
        if jax is not None:
            xj, fj = jnp.asarray(x), jax.jit(lambda v: jax.lax.top_k(v, K)[1])
            out["jax"] = lambda: np.asarray(fj(xj).block_until_ready())
        if torch is not None:
            xt = torch.from_numpy(x)
            out["torch"] = lambda: torch.topk(xt, K, dim=-1)[1].numpy()
    elif task == "cumsum":
        c = _compiled(lambda r: np.cumsum(r), x)
        log = _hand(_logstep_mlir(B, n), B, n, np.float32)
        tri = _hand(_triangular_mlir(B, n), B, n, np.float32)
        out = _drop_missing({"vmapc": lambda: c(x), "log-step": lambda: log(x), "triangular": lambda: tri(x),
                             "numpy": lambda: np.cumsum(x, axis=-1)}, **{"log-step": log, "triangular": tri})
        if jax is not None:
            xj, fj = jnp.asarray(x), jax.jit(jax.vmap(jnp.cumsum))
            out["jax"] = lambda: np.asarray(fj(xj).block_until_ready())
        if torch is not None:
            xt = torch.from_numpy(x)
            out["torch"] = lambda: torch.cumsum(xt, dim=-1).numpy()
    return out


def _answer_ok(task, got, x):
    got = np.asarray(got[0] if isinstance(got, (list, tuple)) and task != "sort" else got)
    if isinstance(got, np.ndarray) and got.dtype == object:
        return False
    if task == "argsort":
        return np.array_equal(got, np.argsort(x, axis=-1, kind="stable"))
    if task == "sort":
        return np.array_equal(np.asarray(got).reshape(x.shape), np.sort(x, axis=-1))
    if task == "top_k":
        want = np.argsort(-x, axis=-1, kind="stable")[:, :K]
        return np.array_equal(np.take_along_axis(x, got, -1), np.take_along_axis(x, want, -1))
    return np.allclose(got, np.cumsum(x, axis=-1), rtol=1e-4, atol=1e-3)


def study_sorting(budget, cells=CELLS, tasks=("argsort", "sort", "top_k", "cumsum")) -> list:
    from .run import Peers, note, time_interleaved
    peers = Peers(("jax", "torch.vmap"))
    rows = []
    for B, n in cells:
        x = aligned(np.random.default_rng(0).standard_normal((B, n), dtype=np.float32))
        for task in tasks:
            fns = contenders(task, B, n, x, peers)
            for name in list(fns):
                got = fns[name]()
                if isinstance(got, list):
                    got = got[0]
                if not _answer_ok(task, got, x):
                    note(f"  {task} B={B} n={n}: {name} gives a wrong answer; not timed")
                    del fns[name]
            res = time_interleaved(fns, budget)
            for name, r in res.items():
                rows.append({"task": task, "B": B, "n": n, "contender": name, "median_us": r["median_us"],
                             "q1_us": r["q1_us"], "q3_us": r["q3_us"]})
            note(f"  {task} B={B} n={n}: " + ", ".join(f"{k} {res[k]['median_us'] / 1e3:.2f} ms" for k in res))
    return rows


def markdown(rows) -> str:
    """One table per task: contenders across, cells down, milliseconds."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        names = list(dict.fromkeys(r["contender"] for r in mine))
        out.append(f"**{task}** (ms per call, median)\n")
        out.append("| B x n | " + " | ".join(names) + " |")
        out.append("| --- |" + " ---: |" * len(names))
        for cell in dict.fromkeys((r["B"], r["n"]) for r in mine):
            vals = {r["contender"]: r["median_us"] / 1e3 for r in mine if (r["B"], r["n"]) == cell}
            out.append(f"| {cell[0]} x {cell[1]} | " + " | ".join(
                f"{vals[n]:.2f}" if n in vals else "-" for n in names) + " |")
        out.append("")
    return "\n".join(out)
