"""Control-flow workloads: ``python -m benchmarks.run --study control``.

Three measurements, written to ``control.json`` and printed as tables:

* **RK4 with fori_loop**: a batch of 1,000 damped pendulums (float64) integrated by
  ``vmapc.fori_loop`` at 100 and 10,000 steps, beside the same integrator written as a
  Python ``for`` loop (unrolled at trace time). For each: the time from ``vmapc.compile()``
  to the first result with an empty compile cache, the equations traced, and the time of
  a call. The unrolled loop is only run up to the step count whose compile fits the
  ``--unrolled-limit`` (seconds); ``jax.jit(jax.vmap(f))`` with ``jax.lax.fori_loop``
  gives the peer's numbers.
* **A batched while loop**: Newton's method for the cube root of one float32 number,
  iterating until its step is tiny (5 to 30 steps depending on the number), over B = 1,
  16, 256 and 4,096 numbers: ``vmapc.compile(f, in_dims=0)``, ``jax.jit(jax.vmap(f))``
  with ``jax.lax.while_loop``, and a Python loop calling the compiled one-number function
  B times (the per-example loop).
* **scan with stacked ys**: one row of 256 float32 written per step, at 100, 1,000 and
  4,000 steps: the time per call shows what IREE 3.13's copy of the loop-carried ``ys``
  per step costs (docs/control-flow.md).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

DT, DAMPING = 0.01, 0.1


# --- RK4 -------------------------------------------------------------------------------------------

def _pendulum(y, xp):
    return xp.stack([y[1], -xp.sin(y[0]) - DAMPING * y[1]])


def _rk4_step(y, xp=np):
    k1 = _pendulum(y, xp)
    k2 = _pendulum(y + 0.5 * DT * k1, xp)
    k3 = _pendulum(y + 0.5 * DT * k2, xp)
    k4 = _pendulum(y + DT * k3, xp)
    return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_fori(steps):
    import vmapc
    return lambda y: vmapc.fori_loop(0, steps, lambda i, y: _rk4_step(y), y)


def rk4_unrolled(steps):
    def f(y):
        for _ in range(steps):
            y = _rk4_step(y)
        return y
    return f


def rk4_numpy(y0, steps):
    y = y0.T.copy()
    for _ in range(steps):
        y = _rk4_step(y)
    return y.T


def _fresh_cache():
    """Point vmapc's disk cache at an empty directory (compile times with nothing cached)."""
    from vmapc import driver
    os.environ["VMAPC_CACHE_DIR"] = tempfile.mkdtemp(prefix="vmapc-bench-control-")
    driver.clear_memory_cache()


def _compile_and_time(fn, args, budget, label):
    import vmapc
    from .run import time_interleaved
    _fresh_cache()
    t0 = time.perf_counter()
    c = vmapc.compile(fn, in_dims=0)
    lowered = c.lower(*args)
    n_eqns = sum(1 for _ in vmapc.ir.walk_eqns(lowered.ir))
    out = c(*args)
    first = time.perf_counter() - t0
    run = time_interleaved({label: lambda: c(*args)}, budget)[label]
    return out, {"compile_to_first_result_s": first, "traced_equations": n_eqns, "call_us": run["median_us"]}


def study_rk4(budget, batch=1000, steps=(100, 10000), unrolled_steps=(10, 100, 1000), unrolled_limit=120.0,
              peers=None):
    rng = np.random.default_rng(1)
    y0 = np.stack([rng.uniform(-3.0, 3.0, batch), rng.uniform(-1.0, 1.0, batch)], axis=1)
    rows = []
    for n in steps:
        out, r = _compile_and_time(rk4_fori(n), (y0,), budget, "fori")
        r.update(contender="vmapc fori_loop", steps=n,
                 max_abs_error=float(np.max(np.abs(out - rk4_numpy(y0, n)))))
        rows.append(r)
    for n in unrolled_steps:
        t0 = time.perf_counter()
        out, r = _compile_and_time(rk4_unrolled(n), (y0,), budget, "unrolled")
        r.update(contender="vmapc, Python for loop (unrolled)", steps=n,
                 max_abs_error=float(np.max(np.abs(out - rk4_numpy(y0, n)))))
        rows.append(r)
        if time.perf_counter() - t0 > unrolled_limit / 10:     # the next (10x) step count would not fit
            rows.append({"contender": "vmapc, Python for loop (unrolled)", "steps": n * 10,
                         "skipped": f"compiling {n} steps took {time.perf_counter() - t0:.0f} s; "
                                    f"{n * 10} steps would exceed the {unrolled_limit:.0f} s limit"})
            break
    if peers is not None and peers.jax is not None:
        rows += _jax_rk4(peers, y0, steps, budget)
    return rows


def _jax_rk4(peers, y0, steps, budget):
    from .run import time_interleaved
    jax, jnp = peers.jax, peers.jnp
    jax.config.update("jax_enable_x64", True)
    rows = []
    for n in steps:
        def f(y, n=n):
            return jax.lax.fori_loop(0, n, lambda i, y: _rk4_step(y, jnp), y)
        yd = jax.device_put(y0)
        t0 = time.perf_counter()
        g = jax.jit(jax.vmap(f))
        out = np.asarray(g(yd).block_until_ready())
        first = time.perf_counter() - t0
        run = time_interleaved({"jax": lambda: g(yd).block_until_ready()}, budget)["jax"]
        rows.append({"contender": "jax.jit(jax.vmap(f)), lax.fori_loop", "steps": n,
                     "compile_to_first_result_s": first, "call_us": run["median_us"],
                     "max_abs_error": float(np.max(np.abs(out - rk4_numpy(y0, n))))})
    return rows


# --- a batched while loop --------------------------------------------------------------------------

def newton(a, xp=np, while_loop=None):
    """The cube root of a > 0 by Newton's method (float32), and its step count."""
    def not_done(s):
        x, step, n = s
        return (xp.abs(step) > 1e-6 * xp.abs(x)) & (n < 100)

    def update(s):
        x, _, n = s
        step = (x * x * x - a) / (3 * x * x)
        return x - step, step, n + 1
    x0 = xp.maximum(a, xp.float32(1.0))
    return while_loop(not_done, update, (x0, x0, xp.int32(0)))


def newton_inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    return np.exp(rng.uniform(np.log(1e-3), np.log(1e6), batch)).astype(np.float32)


def study_while(budget, sizes=(1, 16, 256, 4096), peers=None):
    import vmapc
    from .run import time_interleaved

    def f(a):
        x, _, n = newton(a, np, vmapc.while_loop)
        return x, n
    batched = vmapc.compile(f, in_dims=0)
    single = vmapc.compile(f)
    g = None
    if peers is not None and peers.jax is not None:
        jax, jnp = peers.jax, peers.jnp

        def fj(a):
            x, _, n = newton(a, jnp, jax.lax.while_loop)
            return x, n
        g = jax.jit(jax.vmap(fj))
    rows = []
    for B in sizes:
        a = newton_inputs(B)
        x, n = batched(a)
        err = float(np.max(np.abs(x.astype(np.float64) ** 3 - a) / a))
        per = [single(v) for v in a]
        assert all(int(p[1]) == int(k) for p, k in zip(per, n)), "per-example step counts differ"
        fns = {"vmapc": lambda: batched(a),
               "loop": lambda: [single(v) for v in a]}
        if g is not None:
            ad = jax.device_put(a)
            xj, nj = g(ad)
            assert np.array_equal(np.asarray(nj), n), "JAX's step counts differ"
            fns["jax"] = lambda: jax.block_until_ready(g(ad))
        t = time_interleaved(fns, budget)
        rows.append({"B": B, "steps_min": int(n.min()), "steps_max": int(n.max()),
                     "steps_mean": float(n.mean()), "max_rel_error": err,
                     **{k: v["median_us"] for k, v in t.items()}})
    return rows


# --- scan with ys -----------------------------------------------------------------------------------

def study_scan_ys(budget, steps=(100, 1000, 4000), width=256):
    import vmapc
    from .run import time_interleaved
    rows = []
    for n in steps:
        x = np.random.default_rng(0).standard_normal((n, width), dtype=np.float32)
        c = vmapc.compile(lambda xs: vmapc.scan(lambda h, r: (h * 0.5 + r, h * r), np.zeros(width, np.float32), xs))
        h, ys = c(x)
        t = time_interleaved({"scan": lambda: c(x)}, budget)["scan"]
        rows.append({"steps": n, "ys_bytes": n * width * 4, "call_us": t["median_us"],
                     "us_per_step": t["median_us"] / n})
    return rows


# --- the study ---------------------------------------------------------------------------------------

def study(budget, peers=None, unrolled_limit=120.0) -> dict:
    return {"rk4": study_rk4(budget, peers=peers, unrolled_limit=unrolled_limit),
            "while": study_while(budget, peers=peers),
            "scan_ys": study_scan_ys(budget)}


def markdown(res: dict) -> str:
    lines = ["RK4, 1,000 pendulums (float64):", "",
             "| contender | steps | traced equations | compile to first result | time per call | max error |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["rk4"]:
        if "skipped" in r:
            lines.append(f"| {r['contender']} | {r['steps']} | | not run: {r['skipped']} | | |")
            continue
        eq = r.get("traced_equations", "")
        lines.append(f"| {r['contender']} | {r['steps']} | {eq} | {r['compile_to_first_result_s']:.2f} s | "
                     f"{r['call_us'] / 1e3:.2f} ms | {r['max_abs_error']:.1e} |")
    lines += ["", "Newton's cube root, a batched while loop (float32):", "",
              "| B | steps (min-max) | vmapc | jax.jit(jax.vmap) | per-example loop | vmapc vs loop |",
              "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in res["while"]:
        jx = f"{r['jax']:.0f} µs" if "jax" in r else "-"
        lines.append(f"| {r['B']} | {r['steps_min']}-{r['steps_max']} | {r['vmapc']:.0f} µs | {jx} | "
                     f"{r['loop']:.0f} µs | {r['loop'] / r['vmapc']:.1f}x |")
    lines += ["", "scan with stacked ys (256 float32 per step):", "",
              "| steps | ys | time per call | per step |", "| ---: | ---: | ---: | ---: |"]
    for r in res["scan_ys"]:
        lines.append(f"| {r['steps']} | {r['ys_bytes'] / 1e6:.2f} MB | {r['call_us'] / 1e3:.2f} ms | "
                     f"{r['us_per_step']:.1f} µs |")
    return "\n".join(lines)
