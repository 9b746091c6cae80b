"""vmapc against hand-written MLIR, a per-example loop, NumPy, JAX and PyTorch.

From the repository root::

    python -m benchmarks.run                  # everything; writes benchmarks/results/
    python -m benchmarks.run --quick          # every contender's answer at a tiny size (CI)
    python -m benchmarks.run --sizes 256 --workloads mlp,attention
    python -m benchmarks.run --study flags    # compiler flags and runtime drivers
    python -m benchmarks.run --study sorting  # sorts, top-k and scans (benchmarks/sorting.py)
    python -m benchmarks.run --study control  # loops: RK4 steps, a batched while loop, scan

For each workload of :mod:`benchmarks.workloads` and batch size B, every contender's
answer is checked against NumPy, then all contenders are timed in one process,
interleaved round by round (so drift and the neighbours' load hit all of them alike),
after a warm-up. Reported: the median time per call over the rounds, and ratios.

Contenders (a missing optional one is skipped with a note):

``vmapc``          ``vmapc.compile(vmapc.vmap(f))``, compiled for B
``vmapc-dynamic``  the same with ``batch="dynamic"``: one module for every B
``vmapc-chunked``  the same with ``chunk_size`` (64): B runs as chunks of 64, the last padded
``loop``           a Python loop calling ``vmapc.compile(f)`` (one example) B times, then ``np.stack``
``mlir``           the batched program written by hand in MLIR linalg, compiled with the same
                   flags, run by the same runtime on the same driver: the ceiling
``numpy``          the batch in vectorized NumPy
``jax``            ``jax.jit(jax.vmap(f))`` (inputs already on the device, ``block_until_ready``)
``torch.vmap``     ``torch.func.vmap(f)`` (eager, under ``torch.inference_mode``)
``torch.compile``  ``torch.compile(torch.func.vmap(f))``

Inputs are float32 and 64-byte aligned (``vmapc.runtime.aligned``) so vmapc and the
hand-written MLIR read them in place; the peers get the same arrays (JAX on its device).

Also measured: the per-call overhead of a tiny function (vmapc against IREE's raw
``VmContext.invoke``) and the time from ``vmapc.compile()`` to the first result, with a
cold and a warm disk cache. Results: ``results.json``, ``results.md``, ``speedup.png``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import vmapc  # noqa: E402
from vmapc.runtime import aligned  # noqa: E402

from .workloads import WORKLOADS  # noqa: E402

SIZES = (1, 16, 256, 4096)
CHUNK = 64
QUICK_SIZE = 5          # a prime, and more than one chunk of QUICK_CHUNK (the last one padded)
QUICK_CHUNK = 2
MEMORY_LIMIT = 6 << 30  # skip a cell whose inputs and results would pass this
# also the order of each timing round: vmapc and the hand-written MLIR (equal kernels) run
# back to back, so their ratio sees the least drift
ORDER = ("vmapc", "mlir", "vmapc-dynamic", "vmapc-chunked", "loop", "numpy", "jax", "torch.vmap",
         "torch.compile")
PEERS = ("numpy", "jax", "torch.vmap", "torch.compile")
VMAPC = ("vmapc", "vmapc-dynamic", "vmapc-chunked")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from iree.compiler import version as iv
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.system()} {platform.release()})",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "iree": iv.VERSION,
        "vmapc_cpu_flags": list(vmapc.target("cpu").flags),
        "load_before": _loadavg(),
    }
    from importlib import metadata
    for mod in ("jax", "jaxlib", "torch", "matplotlib"):
        try:
            info[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            info[mod] = None
    return info


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# --- timing ----------------------------------------------------------------------------------------

GAP = 0.12  # seconds of rest before each contender's turn (see time_interleaved)


def time_interleaved(fns: dict, budget: float, min_rounds: int = 5, max_rounds: int = 21,
                     round_target: float = 0.02, gap: float | None = None, with_samples: bool = False) -> dict:
    """Median seconds per call of each zero-argument callable in `fns`, timed in rounds:
    each round runs every contender (in a rotating order) for about `round_target`
    seconds. Warm-up first; the rounds stop at `max_rounds` or when `budget` is spent
    (but never before `min_rounds`).

    Before each turn the process rests for `gap` seconds and makes one untimed call:
    thread pools (OpenBLAS's, PyTorch's OpenMP, XLA's, IREE's local-task) keep spinning
    for a while after their last job (OpenBLAS for ~2^28 cycles), and on a small machine
    that would bill one contender for the previous one's idle threads."""
    gap = GAP if gap is None else gap
    names = list(fns)
    est = {}
    for name in names:           # warm-up, and an estimate of each call's time
        fns[name]()
        t0 = time.perf_counter()
        fns[name]()
        est[name] = max(time.perf_counter() - t0, 1e-7)
    reps = {n: max(1, int(round_target / est[n])) for n in names}
    per_round = sum(reps[n] * est[n] for n in names)
    rounds = int(min(max_rounds, max(min_rounds, budget / max(per_round, 1e-9))))
    samples = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            f, k = fns[n], reps[n]
            if gap:
                time.sleep(gap)
                f()
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            samples[n].append((time.perf_counter() - t0) / k)
    out = {"_samples": samples} if with_samples else {}
    for n in names:
        s = sorted(samples[n])
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
        out[n] = {"median_us": statistics.median(s) * 1e6, "min_us": s[0] * 1e6, "q1_us": q[0] * 1e6,
                  "q3_us": q[2] * 1e6, "rounds": len(s), "calls_per_round": reps[n]}
    return out


# --- contenders ------------------------------------------------------------------------------------

class Peers:
    """The optional peers, imported once (a missing one gives a note and None)."""

    def __init__(self, wanted):
        self.jax = self.jnp = self.torch = None
        self.notes = []
        if "jax" in wanted:
            try:
                import jax
                import jax.numpy as jnp
                self.jax, self.jnp = jax, jnp
            except Exception as e:
                self.notes.append(f"jax skipped: not installed ({type(e).__name__}: {e}); pip install 'vmapc[bench]'")
        if "torch.vmap" in wanted or "torch.compile" in wanted:
            try:
                import torch
                import torch.func  # noqa: F401
                self.torch = torch
                try:
                    torch._dynamo.config.cache_size_limit = 256
                except Exception:
                    pass
            except Exception as e:
                self.notes.append(f"torch skipped: not installed ({type(e).__name__}: {e}); pip install 'vmapc[bench]'")
        for n in self.notes:
            note(n)


def hand_module(w, B, driver, flags=()):
    """The hand-written batched MLIR for `w` at batch B, compiled with vmapc's CPU flags
    (plus `flags`: those vmapc chose for its own program of the same workload) and loaded
    by vmapc's runtime on `driver`; returns a runtime Function."""
    from vmapc.driver import compile_mlir
    from vmapc.ir import TensorType
    from vmapc.runtime import Module
    vmfb = compile_mlir(w.mlir(B), "cpu", flags=tuple(flags))
    ins = [TensorType(tuple(s), np.float32) for s in w.batched_shapes(B)]
    outs = [TensorType(tuple(_out_shape(w, B)), np.float32)]
    return Module(vmfb, driver=driver, signatures={"main": (ins, outs)}).function("main")


def _out_shape(w, B):
    args = w.inputs(1)
    one = w.numpy_batched(*args)
    return (B, *one.shape[1:])


def make_shared(w, chunk, cache):
    """The vmapc contenders that serve every batch size of a workload, made once."""
    v = vmapc.vmap(w.fn, in_dims=w.in_dims)
    cache[("dynamic", w.name)] = vmapc.compile(v, batch="dynamic")
    cache[("chunked", w.name)] = vmapc.compile(v, chunk_size=chunk)
    cache[("loop", w.name)] = vmapc.compile(w.fn)


def _attempt(w, B, wanted, fns, notes):
    def attempt(name, make):
        if name not in wanted:
            return
        try:
            fns[name] = make()
        except Exception as e:
            notes[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            note(f"  {w.name} B={B} {name}: could not build: {notes[name]}")
    return attempt


def build_vmapc(w, B, args, wanted, chunk, cache) -> tuple:
    """vmapc's contenders and the hand-written MLIR: ({name: zero-arg callable returning
    the result}, {name: why it could not be built}, {"driver", "flags"} vmapc chose for
    its static module, which the hand-written MLIR shares). Safe to
    run for several cells at once (each compiles in its own iree-compile process)."""
    fns, notes = {}, {}
    in_dims = w.in_dims
    driver = None
    attempt = _attempt(w, B, wanted, fns, notes)

    # vmapc, static: compiled for B (the one whose driver the hand-written MLIR shares)
    flags = ()

    def static():
        nonlocal driver, flags
        c = vmapc.compile(vmapc.vmap(w.fn, in_dims=in_dims))
        c(*args)
        exe = next(iter(c._cache.values()))
        driver = exe.fn.module.driver
        flags = c.target.program_flags([exe.lowered.program])
        return lambda: c(*args)
    attempt("vmapc", static)

    if ("dynamic", w.name) not in cache:
        make_shared(w, chunk, cache)

    def dynamic():
        c = cache[("dynamic", w.name)]
        c(*args)
        return lambda: c(*args)
    attempt("vmapc-dynamic", dynamic)

    def chunked():
        c = cache[("chunked", w.name)]
        c(*args)
        return lambda: c(*args)
    attempt("vmapc-chunked", chunked)

    def loop():
        c = cache[("loop", w.name)]
        batched = [d == 0 for d in in_dims]
        c(*[a[0] if b else a for a, b in zip(args, batched)])

        def run():
            return np.stack([c(*[a[i] if b else a for a, b in zip(args, batched)]) for i in range(B)])
        return run
    attempt("loop", loop)

    def mlir():
        fn = hand_module(w, B, driver or vmapc.target("cpu").driver, flags)
        return lambda: fn(*args)[0]
    attempt("mlir", mlir)

    return fns, notes, {"driver": driver, "flags": list(flags)}


def build_peers(w, B, args, wanted, peers) -> tuple:
    """NumPy, JAX and PyTorch: ({name: zero-arg callable}, {name: why not})."""
    fns, notes = {}, {}
    in_dims = w.in_dims
    attempt = _attempt(w, B, wanted, fns, notes)
    attempt("numpy", lambda: (lambda: w.numpy_batched(*args)))

    if peers.jax is not None:
        def jax_():
            jf = peers.jax.jit(peers.jax.vmap(w.jax_fn(peers.jnp), in_axes=in_dims))
            xs = [peers.jax.device_put(a) for a in args]
            return lambda: jf(*xs).block_until_ready()
        attempt("jax", jax_)
    if peers.torch is not None:
        torch = peers.torch
        ts = [torch.from_numpy(a) for a in args]

        def tv():
            f = torch.func.vmap(w.torch_fn(torch), in_dims=in_dims)

            def run():
                with torch.inference_mode():
                    return f(*ts)
            return run
        attempt("torch.vmap", tv)

        def tc():
            f = torch.compile(torch.func.vmap(w.torch_fn(torch), in_dims=in_dims), dynamic=False)

            def run():
                with torch.inference_mode():
                    return f(*ts)
            run()
            return run
        attempt("torch.compile", tc)
    return fns, notes


def _as_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().numpy()
    return np.asarray(x)


def check(w, fns, ref) -> dict:
    """Each contender's answer against the reference: {name: (ok, max abs error, note)}."""
    out = {}
    for name, f in fns.items():
        try:
            got = _as_numpy(f())
            ok = got.shape == ref.shape and np.allclose(got, ref, rtol=w.rtol, atol=w.atol)
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.shape == ref.shape and got.size else 0.0
            out[name] = (bool(ok), err, None if ok else f"wrong answer: shape {got.shape}, max error {err:.3g}")
        except Exception as e:
            out[name] = (False, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return out


def reference(w, args, B):
    """NumPy's batched answer, itself checked against a per-example NumPy loop."""
    ref = np.asarray(w.numpy_batched(*args), dtype=np.float64)
    idx = sorted({0, B // 2, B - 1})
    for i in idx:
        one = w.fn(*[a[i] if d == 0 else a for a, d in zip(args, w.in_dims)])
        np.testing.assert_allclose(ref[i], one, rtol=w.rtol, atol=w.atol)
    return ref


def cell_bytes(w, B):
    n = sum(int(np.prod(s)) for s in w.batched_shapes(B)) + int(np.prod(_out_shape(w, B)))
    return 4 * n * (6 if w.name == "attention" else 3)  # intermediates (attention: B x 128 x 128 scores)


# --- per-call overhead and compile time -------------------------------------------------------------

def call_overhead(budget: float) -> dict:
    """A tiny function (x + 1 on float32[4]) on local-sync: vmapc's call against IREE's raw
    invoke with a prebuilt argument list (the floor), and a minimal hand-written wrapper."""
    from iree import runtime as rt
    x = np.arange(4, dtype=np.float32)
    c = vmapc.compile(lambda x: x + 1.0, driver="local-sync")
    c(x)
    exe = next(iter(c._cache.values()))
    fn, mod = exe.fn, exe.fn.module
    args = rt.VmVariantList(1)
    args.push_ref(mod.upload(x))
    HBV = rt.HalBufferView

    def raw():
        ret = rt.VmVariantList(1)
        mod.context.invoke(fn.vm_fn, args, ret)

    def raw_io():    # upload, invoke, read back: what any wrapper must do at least
        a = rt.VmVariantList(1)
        a.push_ref(mod.upload(x))
        ret = rt.VmVariantList(1)
        mod.context.invoke(fn.vm_fn, a, ret)
        return np.frombuffer(ret.get_as_object(0, HBV).map(), np.float32).copy()

    res = time_interleaved({"iree raw invoke": raw, "iree invoke + copy in/out": raw_io,
                            "runtime Function": lambda: fn(x), "vmapc compiled": lambda: c(x)},
                           budget, min_rounds=15, max_rounds=41, round_target=0.005, gap=0.01)
    out = {k: v["median_us"] for k, v in res.items()}
    out["overhead_us"] = out["vmapc compiled"] - out["iree raw invoke"]
    try:     # the same on local-task (thread wake-ups)
        ct = vmapc.compile(lambda x: x + 1.0, driver="local-task")
        ct(x)
        out["vmapc compiled (local-task)"] = time_interleaved({"t": lambda: ct(x)}, budget / 4, min_rounds=9)["t"]["median_us"]
    except Exception as e:
        note(f"local-task overhead not measured: {e}")
    return out


def first_result(workloads, B: int) -> dict:
    """Seconds from vmapc.compile() to the first result: with an empty disk cache (cold),
    with the module on disk (warm: a new process would see this), and in memory."""
    from vmapc import driver as drv
    out = {}
    old = os.environ.get("VMAPC_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="vmapc-bench-cache-") as tmp:
        os.environ["VMAPC_CACHE_DIR"] = tmp
        try:
            for w in workloads:
                args = w.inputs(B, align=aligned)
                row = {}
                for label in ("cold", "warm_disk", "warm_memory"):
                    if label != "warm_memory":
                        drv.clear_memory_cache()
                    t0 = time.perf_counter()
                    c = vmapc.compile(vmapc.vmap(w.fn, in_dims=w.in_dims))
                    c(*args)
                    row[label + "_s"] = time.perf_counter() - t0
                out[w.name] = row
        finally:
            if old is None:
                os.environ.pop("VMAPC_CACHE_DIR", None)
            else:
                os.environ["VMAPC_CACHE_DIR"] = old
    return out


# --- reports ---------------------------------------------------------------------------------------

def _fmt_us(us):
    if us is None:
        return "–"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} µs"


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def summarize(cell: dict) -> dict:
    t = {n: r["median_us"] for n, r in cell["timings"].items()}
    peers = {n: v for n, v in t.items() if n in PEERS}
    fastest = min(peers, key=peers.get) if peers else None
    v = t.get("vmapc")
    return {
        "vmapc_over_mlir": _ratio(v, t.get("mlir")),
        "loop_over_vmapc": _ratio(t.get("loop"), v),
        "fastest_peer": fastest,
        "vmapc_over_fastest_peer": _ratio(v, peers.get(fastest)) if fastest else None,
    }


def markdown(results: dict) -> str:
    info = results["machine"]
    lines = [f"# vmapc benchmark ({'quick' if results['quick'] else 'full'} run)", "",
             f"{info['date']} · {info['cpu']} ({info['cores']} cores) · IREE {info['iree']} · "
             f"NumPy {info['numpy']} · JAX {info.get('jax') or 'not installed'} · "
             f"PyTorch {info.get('torch') or 'not installed'} · Python {info['python']}", "",
             f"Load average (1, 5, 15 min) before: {info.get('load_before')}, after: {info.get('load_after')}.",
             ("Each contender's answer checked against NumPy (max abs error in parentheses); nothing timed."
              if results["quick"] else "Times are medians over interleaved rounds; ratios divide medians "
              "(in parentheses: the median of the round-by-round ratios, vmapc and mlir running back to "
              "back). 'fastest peer' is the fastest of NumPy, JAX and PyTorch."), ""]
    cells = results["cells"]
    names = [n for n in ORDER if any(n in c["timings"] or n in c.get("failed", {}) or n in c.get("checked", ())
                                     for c in cells)]
    quick = results["quick"]
    sizes = sorted({c["B"] for c in cells})
    for B in sizes:
        ratios = "" if quick else " vmapc / mlir | loop / vmapc | vmapc / fastest peer |"
        lines += [f"## B = {B}", "",
                  "| workload | " + " | ".join(names) + " |" + ratios,
                  "|---" * (len(names) + 1 + (0 if quick else 3)) + "|"]
        for c in cells:
            if c["B"] != B:
                continue
            row = []
            for n in names:
                if results["quick"] and n in c.get("checked", ()):
                    err = c["max_abs_error"].get(n)
                    row.append("ok" + (f" ({err:.1e})" if err is not None else ""))
                elif n in c["timings"]:
                    row.append(_fmt_us(c["timings"][n]["median_us"]))
                elif n in c.get("failed", {}):
                    row.append("FAILED")
                else:
                    row.append("–")
            s = c["summary"]
            fp = (f"{s['vmapc_over_fastest_peer']:.2f} ({s['fastest_peer']})" if s["vmapc_over_fastest_peer"]
                  else "–")
            tax = _r(s["vmapc_over_mlir"])
            if c.get("vmapc_over_mlir_paired") is not None:
                tax += f" ({c['vmapc_over_mlir_paired']:.2f})"
            lines.append(f"| {c['workload']} | " + " | ".join(row) + " |"
                         + ("" if quick else f" {tax} | {_r(s['loop_over_vmapc'])} | {fp} |"))
        lines.append("")
    fails = [(c["workload"], c["B"], n, why) for c in cells for n, why in c.get("failed", {}).items()]
    if fails:
        lines += ["## Failures", ""] + [f"* {w} B={B} {n}: {why}" for w, B, n, why in fails] + [""]
    skipped = [(c["workload"], c["B"], why) for c in results.get("skipped_cells", []) for why in [c["why"]]]
    if skipped:
        lines += ["## Skipped", ""] + [f"* {w} B={B}: {why}" for w, B, why in skipped] + [""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"* {n}" for n in results["notes"]] + [""]
    ov = results.get("call_overhead")
    if ov:
        lines += ["## Per-call overhead (x + 1 on float32[4], local-sync)", "", "| path | median |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} µs |" for k, v in ov.items() if k != "overhead_us"]
        lines += ["", f"vmapc's overhead above IREE's raw invoke: **{ov['overhead_us']:.2f} µs**.", ""]
    fr = results.get("first_result")
    if fr:
        lines += [f"## From compile() to the first result (B = {results.get('first_result_B')})", "",
                  "| workload | cold disk cache | warm disk cache | warm memory cache |", "|---|---|---|---|"]
        lines += [f"| {w} | {r['cold_s']:.2f} s | {r['warm_disk_s'] * 1e3:.1f} ms | {r['warm_memory_s'] * 1e3:.1f} ms |"
                  for w, r in fr.items()]
        lines.append("")
    return "\n".join(lines)


def _r(x):
    return "–" if x is None else f"{x:.2f}"


def plot(results: dict, path: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        return f"plot skipped: matplotlib is not installed ({e}); pip install 'vmapc[bench]'"
    cells = results["cells"]
    workloads = [w for w in WORKLOADS if any(c["workload"] == w for c in cells)]
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.8), squeeze=False)
    for ax, wname in zip(axes[0], workloads):
        mine = sorted((c for c in cells if c["workload"] == wname), key=lambda c: c["B"])
        for n in ORDER:
            if n == "loop":
                continue
            xs, ys = [], []
            for c in mine:
                t = c["timings"]
                if n in t and "loop" in t:
                    xs.append(c["B"])
                    ys.append(t["loop"]["median_us"] / t[n]["median_us"])
            if xs:
                ax.plot(xs, ys, marker="o", label=n, linestyle="--" if n in PEERS else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(WORKLOADS[wname].title, fontsize=9)
        ax.set_xlabel("batch size B")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("speed-up over the per-example vmapc loop")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"vmapc benchmark, {results['machine']['cpu']}, {results['machine']['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --- the studies behind the compiler choices -------------------------------------------------------

def _flag_sets():
    """name -> the whole flag list, from IREE's defaults (vmapc's CPU flags without its
    optimization choices) up."""
    from vmapc import targets
    base = tuple(f for f in vmapc.target("cpu").flags if f not in targets.CPU_OPT_FLAGS)
    opt = targets.CPU_OPT_FLAGS
    dt = ("--iree-opt-data-tiling=true",)
    return {
        "iree-default": base,
        "O2": base + ("--iree-opt-level=O2",),
        "O3": base + ("--iree-opt-level=O3",),
        "aggressive-fusion": base + opt[:1],
        "reassociate": base + opt[1:],
        "vmapc": base + opt,                       # fusion + reassociate: vmapc's CPU default
        "vmapc+data-tiling": base + opt + dt,
        "vmapc+data-tiling+ukernels": base + opt + dt + ("--iree-llvmcpu-enable-ukernels=all",),
    }


def study_flags(workloads, sizes, budget, sets=None) -> list:
    """vmapc's own MLIR compiled with each flag set and run on both CPU drivers."""
    import dataclasses
    from vmapc.driver import compile_mlir
    from vmapc.runtime import Module
    rows = []
    cpu = vmapc.target("cpu")
    for w in workloads:
        for B in sizes:
            args = w.inputs(B, align=aligned)
            lo = vmapc.compile(vmapc.vmap(w.fn, in_dims=w.in_dims)).lower(*args)
            p = lo.program
            ref = np.asarray(w.numpy_batched(*args), np.float64)
            fns = {}
            for fname, flags in _flag_sets().items():
                if sets and fname not in sets:
                    continue
                try:
                    vmfb = compile_mlir(lo.lowered_module, dataclasses.replace(cpu, flags=flags))
                except Exception as e:
                    note(f"  {w.name} B={B} {fname}: {e}")
                    continue
                for drv in ("local-sync", "local-task"):
                    f = Module(vmfb, driver=drv, signatures={p.name: (p.in_types, p.out_types)}).function(p.name)
                    got = f(*args)[0]
                    if not np.allclose(got, ref, rtol=w.rtol, atol=w.atol):
                        note(f"  {w.name} B={B} {fname} {drv}: wrong answer")
                        continue
                    fns[f"{fname}|{drv}"] = (lambda f=f: f(*args))
            # generic vs named contractions: the hand-written MLIR with its named ops, for reference
            res = time_interleaved(fns, budget)
            chosen = vmapc.target("cpu").choose_driver([p])
            for k, r in res.items():
                fname, drv = k.split("|")
                rows.append({"workload": w.name, "B": B, "flags": fname, "driver": drv,
                             "median_us": r["median_us"], "vmapc_default_driver": chosen})
            best = min(res, key=lambda k: res[k]["median_us"])
            note(f"  {w.name} B={B}: " + ", ".join(f"{k} {res[k]['median_us']:.0f}" for k in res) + f"  best {best}")
    return rows


def study_drivers(workloads, sizes, budget) -> list:
    """Each workload's dynamic-batch module on local-sync and on local-task, over batch
    sizes: where local-task starts to win, against vmapc's work estimate."""
    from vmapc.driver import compile_mlir
    from vmapc.runtime import Module
    from vmapc.targets import estimate_work
    rows = []
    for w in workloads:
        lo = vmapc.compile(vmapc.vmap(w.fn, in_dims=w.in_dims), batch="dynamic").lower(*w.inputs(2))
        p = lo.program
        vmfb = compile_mlir(lo.lowered_module, "cpu")
        fs = {d: Module(vmfb, driver=d, signatures={p.name: (p.in_types, p.out_types)}).function(p.name)
              for d in ("local-sync", "local-task")}
        for B in sizes:
            args = w.inputs(B, align=aligned)
            res = time_interleaved({d: (lambda f=f: f(*args)) for d, f in fs.items()}, budget, min_rounds=7)
            flops, nbytes = estimate_work(p, B)
            for d, r in res.items():
                rows.append({"workload": w.name, "B": B, "driver": d, "median_us": r["median_us"],
                             "est_flops": flops, "est_bytes": nbytes})
            note(f"  {w.name} B={B}: sync {res['local-sync']['median_us']:.0f} us, task "
                 f"{res['local-task']['median_us']:.0f} us (est. {flops:.2g} flops, {nbytes:.2g} bytes)")
    return rows


def study_named_vs_generic(sizes, budget) -> list:
    """The MLP's two GEMMs as linalg.matmul (named) and as an equivalent linalg.generic."""
    import re as _re
    from vmapc.driver import compile_mlir
    from vmapc.ir import TensorType
    from vmapc.runtime import Module
    w = WORKLOADS["mlp"]
    rows = []
    generic_matmul = (
        "linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (k, n)>, "
        "affine_map<(m, n, k) -> (m, n)>], iterator_types = [\"parallel\", \"parallel\", \"reduction\"]} "
        "ins(\\1) outs(\\2) {\n ^bb0(%ga: f32, %gb: f32, %gc: f32):\n %gm = arith.mulf %ga, %gb : f32\n"
        " %gs = arith.addf %gc, %gm : f32\n linalg.yield %gs : f32\n }")
    for B in sizes:
        args = w.inputs(B, align=aligned)
        named = w.mlir(B)
        generic = _re.sub(r"linalg\.matmul ins\(([^)]*)\)\s*outs\(([^)]*)\)", generic_matmul, named)
        ins = [TensorType(tuple(s), np.float32) for s in w.batched_shapes(B)]
        outs = [TensorType((B, 10), np.float32)]
        fns = {}
        for label, text in (("named", named), ("generic", generic)):
            for drv in ("local-sync", "local-task"):
                f = Module(compile_mlir(text, "cpu"), driver=drv, signatures={"main": (ins, outs)}).function("main")
                fns[f"{label}|{drv}"] = (lambda f=f: f(*args))
        res = time_interleaved(fns, budget)
        for k, r in res.items():
            label, drv = k.split("|")
            rows.append({"workload": "mlp", "B": B, "form": label, "driver": drv, "median_us": r["median_us"]})
        note(f"  mlp B={B}: " + ", ".join(f"{k} {res[k]['median_us']:.0f}" for k in res))
    return rows


# --- main ------------------------------------------------------------------------------------------

def run(args) -> dict:
    quick = args.quick
    sizes = [QUICK_SIZE] if quick and not args.sizes else [int(s) for s in (args.sizes or ",".join(map(str, SIZES))).split(",")]
    names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            raise SystemExit(f"unknown workload {n!r} (known: {', '.join(WORKLOADS)})")
    wanted = set(args.contenders.split(",")) if args.contenders else set(ORDER)
    chunk = args.chunk or (QUICK_CHUNK if quick else CHUNK)
    peers = Peers(wanted)
    results = {"quick": quick, "machine": machine_info(), "sizes": sizes, "chunk_size": chunk,
               "notes": list(peers.notes), "cells": [], "skipped_cells": []}
    cells = []
    for wname in names:
        for B in sizes:
            if cell_bytes(WORKLOADS[wname], B) > MEMORY_LIMIT:
                results["skipped_cells"].append({"workload": wname, "B": B, "why": "does not fit the memory limit"})
            else:
                cells.append((WORKLOADS[wname], B))
    cache: dict = {}
    for w, _ in cells:   # the Compiled objects shared by every B of a workload
        make_shared(w, chunk, cache)
    if args.jobs > 1:
        # compile every cell's modules at once (each iree-compile is a subprocess); the cells
        # below then find them in vmapc's memory cache
        from concurrent.futures import ThreadPoolExecutor

        def one(cell):
            w, B = cell
            build_vmapc(w, B, w.inputs(B, align=aligned), wanted, chunk, cache)
        with ThreadPoolExecutor(args.jobs) as ex:
            list(ex.map(one, cells))
    for w, B in cells:
        note(f"{w.name} B={B}")
        a = w.inputs(B, align=aligned)
        ref = reference(w, a, B)
        fns, build_notes, chosen = build_vmapc(w, B, a, wanted, chunk, cache)
        pf, pn = build_peers(w, B, a, wanted, peers)
        fns.update(pf)
        build_notes.update(pn)
        fns = {n: fns[n] for n in ORDER if n in fns}
        checks = check(w, fns, ref)
        failed = dict(build_notes)
        for n, (ok, err, why) in checks.items():
            if not ok:
                failed[n] = why
                note(f"  {n}: {why}")
        good = {n: f for n, f in fns.items() if checks[n][0]}
        cell = {"workload": w.name, "B": B, "driver": chosen["driver"], "flags": chosen["flags"], "failed": failed,
                "max_abs_error": {n: checks[n][1] for n in fns}, "checked": sorted(good), "timings": {}}
        if not quick:
            timings = time_interleaved(good, args.budget, with_samples=True)
            samples = timings.pop("_samples")
            cell["timings"] = timings
            if "vmapc" in samples and "mlir" in samples:   # the tax, round by round
                cell["vmapc_over_mlir_paired"] = statistics.median(
                    a / b for a, b in zip(samples["vmapc"], samples["mlir"]))
            note("  " + ", ".join(f"{n} {_fmt_us(r['median_us'])}" for n, r in cell["timings"].items()))
        cell["summary"] = summarize(cell)
        results["cells"].append(cell)
        del fns, good
        gc.collect()
    if not quick:
        note("per-call overhead")
        results["call_overhead"] = call_overhead(args.budget * 4)
        note("compile to first result")
        fb = 256 if 256 in sizes else sizes[0]
        results["first_result_B"] = fb
        results["first_result"] = first_result([WORKLOADS[n] for n in names], fb)
    results["machine"]["load_after"] = _loadavg()
    return results


def _cpu_us(fn, budget: float, rounds: int = 15) -> float:
    """Median CPU time of this process per call of `fn`, in µs, over `rounds` rounds
    (host-side Python work only: on a shared machine the neighbours' load, which wall
    time would count, does not)."""
    fn()
    t0 = time.process_time()
    fn()
    n = max(1, int(budget / rounds / max(time.process_time() - t0, 1e-6)))
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        times.append((time.process_time() - t0) / n * 1e6)
    return statistics.median(times)


def study_calls(budget) -> dict:
    """What a call's arguments cost on the host (CPU time of this process): flattening
    and rebuilding the pytrees of typical arguments with vmapc.pytree and with optree
    (when installed), and a compiled call with positional arrays (the fast path), with a
    static int among them (the fast path too), with a Python float (traced: the pytree
    path) and with a dict of arrays (the pytree path)."""
    import collections
    from vmapc import pytree
    x = np.ones(4, np.float32)
    Point = collections.namedtuple("Point", "x y")
    trees = {
        "3 positional arrays": ((x, x, x), {}),
        "kernel(TSTEPS, N, A, B)": ((10, 64, x, x), {}),
        "params dict of 8 + x": (({f"w{i}": x for i in range(8)}, x), {}),
        "nested (list, namedtuple, dict) of 12": (([x, (x, x)], Point(x, [x, x]), {"a": x, "b": {"c": x, "d": x}},
                                                   [x, x, x, x]), {}),
    }
    share = budget / (2 * len(trees) + 4)
    flat = {}
    for name, tree in trees.items():
        flat[f"vmapc.pytree {name}"] = _cpu_us(lambda t=tree: pytree.unflatten(*pytree.flatten(t)[::-1]), share)
    try:
        import optree
        for name, tree in trees.items():
            flat[f"optree {name}"] = _cpu_us(lambda t=tree: optree.tree_unflatten(*optree.tree_flatten(t)[::-1]),
                                             share)
        optree_version = optree.__version__
    except ImportError:
        optree_version = None
        note("optree is not installed: only vmapc.pytree is timed")
    c_arrays = vmapc.compile(lambda a, b: a + b, driver="local-sync")
    c_int = vmapc.compile(lambda n, a, b: a * n + b, driver="local-sync")
    c_float = vmapc.compile(lambda s, a, b: a * s + b, driver="local-sync")
    c_dict = vmapc.compile(lambda p: p["a"] + p["b"], driver="local-sync")
    calls = {"positional arrays (fast path)": _cpu_us(lambda: c_arrays(x, x), share),
             "static int + arrays (fast path)": _cpu_us(lambda: c_int(3, x, x), share),
             "traced float + arrays": _cpu_us(lambda: c_float(0.5, x, x), share),
             "dict of arrays": _cpu_us(lambda: c_dict({"a": x, "b": x}), share)}
    return {"optree": optree_version, "flatten_unflatten_cpu_us": flat, "compiled_call_cpu_us": calls}


def _write_study(out_dir: str, name: str, out: dict) -> int:
    """Write a study's results (with the load average now) as JSON; the exit status."""
    out["machine"]["load_after"] = _loadavg()
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"correctness only, at B={QUICK_SIZE} with chunks of {QUICK_CHUNK} (no timing)")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"), help="where to write results")
    ap.add_argument("--sizes", help="comma-separated batch sizes (default 1,16,256,4096)")
    ap.add_argument("--workloads", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--contenders", help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--chunk", type=int, help=f"chunk_size of vmapc-chunked (default {CHUNK})")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timing per cell (default 2)")
    ap.add_argument("--study", choices=("flags", "drivers", "sorting", "calls", "control"),
                    help="flags: compiler flags x drivers, named vs generic ops; drivers: local-sync vs "
                    "local-task over batch sizes; sorting: sorts, top-k and scans against their "
                    "alternative lowerings and the peers (benchmarks/sorting.py); calls: the host cost "
                    "of a call's arguments (pytrees, static ints); control: RK4 with fori_loop vs an "
                    "unrolled loop, a batched while loop against JAX and the per-example loop, scan "
                    "with ys (benchmarks/control.py)")
    ap.add_argument("--unrolled-limit", type=float, default=120.0,
                    help="--study control: seconds the unrolled RK4 may take to compile (default 120)")
    ap.add_argument("--jobs", type=int, help="compile this many modules at once (default: the number "
                    "of cores with --quick, else 1)")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    if args.jobs is None:
        args.jobs = (os.cpu_count() or 1) if args.quick else 1
    os.makedirs(args.out, exist_ok=True)
    if args.study == "drivers":
        sizes = [int(s) for s in (args.sizes or ",".join(str(1 << k) for k in range(0, 13, 2))).split(",")]
        names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
        return _write_study(args.out, "drivers.json", {"machine": machine_info(), "drivers": study_drivers(
            [WORKLOADS[n] for n in names], sizes, args.budget)})
    if args.study == "sorting":
        from .sorting import markdown as sorting_markdown, study_sorting
        rows = study_sorting(args.budget)
        print(sorting_markdown(rows))
        return _write_study(args.out, "sorting.json", {"machine": machine_info(), "sorting": rows})
    if args.study == "calls":
        return _write_study(args.out, "calls.json", {"machine": machine_info(), "calls": study_calls(args.budget)})
    if args.study == "control":
        from . import control
        out = {"machine": machine_info(), **control.study(args.budget, Peers({"jax"}), args.unrolled_limit)}
        print(control.markdown(out))
        return _write_study(args.out, "control.json", out)
    if args.study == "flags":
        sizes = [int(s) for s in (args.sizes or "16,256,4096").split(",")]
        names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
        return _write_study(args.out, "flags.json", {
            "machine": machine_info(),
            "flags": study_flags([WORKLOADS[n] for n in names], sizes, args.budget),
            "named_vs_generic": study_named_vs_generic(sizes, args.budget)})
    try:
        results = run(args)
    except Exception:
        traceback.print_exc()
        return 2
    stem = "quick" if args.quick else "results"
    with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
        json.dump(results, f, indent=1)
    if not args.quick and not args.no_plot:
        why = plot(results, os.path.join(args.out, "speedup.png"))
        if why:
            note(why)
            results["notes"].append(why)
    md = markdown(results)
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    failed = [(c["workload"], c["B"], n) for c in results["cells"] for n in c["failed"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
