"""Random numbers: vmapc.random against NumPy's Generator, jax.random under jit and torch.

From the repository root::

    python -m benchmarks.random_numbers              # the full run (12 minutes on 2 loaded cores)
    python -m benchmarks.random_numbers --quick      # every contender once at a small size, no timing

Workloads (float32 throughout):

``normals``      10**8 standard normal draws into one array
``uniforms``     10**8 uniform draws on [0, 1)
``monte_carlo``  Monte Carlo prices of 1000 European call options, 100,000 paths each (10**8
                 normals, an exp, a max, a sum and a sum of squares per path) with their
                 standard errors; every contender's prices must agree with the closed-form
                 Black-Scholes price (see ``check``)

Contenders (a missing optional one is skipped with a note):

``vmapc``        ``vmapc.compile`` on the CPU, driver ``local-task`` (its thread pool: both cores);
                 Monte Carlo as ``mc_price``: one option's function, batched with
                 ``randomness="different"`` from one key
``vmapc-loop``   Monte Carlo only: ``mc_price_chunked``, the paths drawn in chunks of 10,000
                 by ``vmapc.fori_loop`` with running sums, one key per option
``numpy``        ``np.random.default_rng(0)``: ``standard_normal``/``random`` (PCG64, ziggurat;
                 one thread), Monte Carlo vectorized over a (1000, 100000) array
``jax``          ``jax.jit`` of ``jax.random.normal``/``uniform`` (threefry, as vmapc), Monte
                 Carlo as ``jax.jit(jax.vmap(price))`` over split keys; results blocked on
``torch``        ``torch.randn``/``torch.rand`` with a seeded ``torch.Generator`` (mt19937 on the
                 CPU), Monte Carlo vectorized; ``torch.set_num_threads`` as the machine has cores

Each contender's answer is checked first (moments of the draws; Monte Carlo prices
against the closed form within 4.5 standard errors), then the contenders are timed in
interleaved rounds after a warm-up; reported: the median time of the rounds. Writes
``benchmarks/results/random.json`` (with the machine and the load average before and after).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import vmapc  # noqa: E402
import vmapc.random as vr  # noqa: E402

RATE = 0.03
CHUNK = 10_000      # Monte Carlo paths per loop step in vmapc's version


def note(msg):
    print(msg, file=sys.stderr, flush=True)


# --- the Monte Carlo workload, one option ----------------------------------------------------------

def mc_price(paths):
    """One option's price and standard error from `paths` paths: the function of
    ``examples/monte_carlo_options.py``, batched with ``randomness="different"``."""
    def price(spot, strike, vol, maturity, key):
        z = vr.normal(key, (paths,))
        s_t = spot * np.exp((RATE - 0.5 * vol * vol) * maturity + vol * np.sqrt(maturity) * z)
        payoff = np.exp(-RATE * maturity) * np.maximum(s_t - strike, 0.0)
        mean = payoff.mean()
        return mean, np.sqrt(((payoff - mean) ** 2).sum() / (paths - 1) / paths)
    return price


def mc_price_chunked(paths, chunk):
    """The same from `paths` paths drawn `chunk` at a time: a ``vmapc.fori_loop`` that
    keeps one chunk of draws alive (options x chunk floats once batched) and carries the sum
    and the sum of squares of the payoffs in float64. A shared key cannot be drawn inside a
    loop under ``randomness="different"``, so each option gets its own key (``split``
    outside, ``in_dims=0``). Before IREE's stack-allocation failure was retried without
    aggressive fusion (``vmapc.driver.STACK_BUG``), this was the only form that ran at
    1000 x 100,000; see docs/performance.md."""
    assert paths % chunk == 0, (paths, chunk)

    def price(spot, strike, vol, maturity, key):
        drift = (RATE - 0.5 * vol * vol) * maturity
        sd = vol * np.sqrt(maturity)
        disc = np.exp(-RATE * maturity)

        def body(i, sums):
            s1, s2 = sums
            z = vr.normal(vr.fold_in(key, i), (chunk,))
            payoff = disc * np.maximum(spot * np.exp(drift + sd * z) - strike, 0.0)
            return s1 + payoff.sum().astype(np.float64), s2 + (payoff * payoff).sum().astype(np.float64)
        s1, s2 = vmapc.fori_loop(0, paths // chunk, body, (np.float64(0), np.float64(0)))
        mean = s1 / paths
        se = np.sqrt((s2 - s1 * mean) / (paths - 1) / paths)
        return mean.astype(np.float32), se.astype(np.float32)
    return price


def black_scholes(spot, strike, vol, maturity):
    cdf = np.vectorize(lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))))
    d1 = (np.log(spot / strike) + (RATE + 0.5 * vol ** 2) * maturity) / (vol * np.sqrt(maturity))
    return spot * cdf(d1) - strike * np.exp(-RATE * maturity) * cdf(d1 - vol * np.sqrt(maturity))


def option_book(n):
    rng = np.random.default_rng(7)
    return [rng.uniform(lo, hi, n).astype(np.float32) for lo, hi in ((90, 110), (90, 110), (0.15, 0.4), (0.5, 2))]


# --- contenders -----------------------------------------------------------------------------------

def contenders(workload, n, paths, book, chunk=None):
    """{name: zero-argument callable returning the answer as NumPy arrays}."""
    out = {}
    key = vr.key(0)
    if workload == "normals":
        f = vmapc.compile(lambda k: vr.normal(k, (n,)), driver="local-task")
        out["vmapc"] = lambda: f(key)
        rng = np.random.default_rng(0)
        out["numpy"] = lambda: rng.standard_normal(n, dtype=np.float32)
    elif workload == "uniforms":
        f = vmapc.compile(lambda k: vr.uniform(k, (n,)), driver="local-task")
        out["vmapc"] = lambda: f(key)
        rng = np.random.default_rng(0)
        out["numpy"] = lambda: rng.random(n, dtype=np.float32)
    else:
        f = vmapc.compile(mc_price(paths), in_dims=(0, 0, 0, 0, None), randomness="different", driver="local-task")
        out["vmapc"] = lambda: f(*book, key)
        fc = vmapc.compile(mc_price_chunked(paths, chunk or CHUNK), in_dims=0, driver="local-task")
        keys = vr.split(key, len(book[0]))
        out["vmapc-loop"] = lambda: fc(*book, keys)
        rng = np.random.default_rng(0)

        def numpy_mc():
            spot, strike, vol, mat = (b[:, None] for b in book)
            z = rng.standard_normal((len(book[0]), paths), dtype=np.float32)
            payoff = np.exp(-RATE * mat) * np.maximum(spot * np.exp((RATE - 0.5 * vol * vol) * mat
                                                                     + vol * np.sqrt(mat) * z) - strike, 0)
            mean = payoff.mean(axis=1)
            return mean, np.sqrt(((payoff - mean[:, None]) ** 2).sum(axis=1) / (paths - 1) / paths)
        out["numpy"] = numpy_mc
    try:
        import jax
        import jax.numpy as jnp
        jkey = jax.random.PRNGKey(0)
        if workload == "normals":
            g = jax.jit(lambda k: jax.random.normal(k, (n,), jnp.float32))
            out["jax"] = lambda: np.asarray(g(jkey).block_until_ready())
        elif workload == "uniforms":
            g = jax.jit(lambda k: jax.random.uniform(k, (n,), jnp.float32))
            out["jax"] = lambda: np.asarray(g(jkey).block_until_ready())
        else:
            def jprice(spot, strike, vol, mat, k):
                z = jax.random.normal(k, (paths,), jnp.float32)
                payoff = jnp.exp(-RATE * mat) * jnp.maximum(
                    spot * jnp.exp((RATE - 0.5 * vol * vol) * mat + vol * jnp.sqrt(mat) * z) - strike, 0)
                mean = payoff.mean()
                return mean, jnp.sqrt(((payoff - mean) ** 2).sum() / (paths - 1) / paths)
            g = jax.jit(jax.vmap(jprice))
            keys = jax.random.split(jkey, len(book[0]))
            jbook = [jnp.asarray(b) for b in book]
            out["jax"] = lambda: tuple(np.asarray(r) for r in jax.block_until_ready(g(*jbook, keys)))
    except ImportError:
        note("jax is not installed: skipped")
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        gen = torch.Generator().manual_seed(0)
        if workload == "normals":
            out["torch"] = lambda: torch.randn(n, generator=gen).numpy()
        elif workload == "uniforms":
            out["torch"] = lambda: torch.rand(n, generator=gen).numpy()
        else:
            tbook = [torch.from_numpy(b)[:, None] for b in book]

            def torch_mc():
                spot, strike, vol, mat = tbook
                with torch.inference_mode():
                    z = torch.randn((len(book[0]), paths), generator=gen)
                    payoff = torch.exp(-RATE * mat) * torch.clamp(
                        spot * torch.exp((RATE - 0.5 * vol * vol) * mat + vol * torch.sqrt(mat) * z) - strike, min=0)
                    mean = payoff.mean(dim=1)
                    se = torch.sqrt(((payoff - mean[:, None]) ** 2).sum(dim=1) / (paths - 1) / paths)
                return mean.numpy(), se.numpy()
            out["torch"] = torch_mc
    except ImportError:
        note("torch is not installed: skipped")
    return out


def check(workload, name, result, book):
    """The answer is plausible: moments of the draws, or prices within 4.5 standard errors."""
    if workload in ("normals", "uniforms"):
        x = np.asarray(result)
        m, v = (0.0, 1.0) if workload == "normals" else (0.5, 1 / 12)
        n = x.size
        assert x.dtype == np.float32, (name, x.dtype)
        assert abs(x.mean() - m) < 6 * math.sqrt(v / n) and abs(x.var() - v) < 0.01 * v, (name, x.mean(), x.var())
    else:
        mean, se = (np.asarray(r, np.float64) for r in result)
        exact = black_scholes(*(b.astype(np.float64) for b in book))
        z = np.abs(mean - exact) / se
        assert z.max() < 5.5 and np.mean(z < 1.96) > 0.85, (name, z.max(), np.mean(z < 1.96))
        return {"inside_95": float(np.mean(z < 1.96)), "max_z": float(z.max()),
                "mean_abs_error": float(np.mean(np.abs(mean - exact))), "mean_se": float(se.mean())}


def run(workloads, quick, rounds):
    results = []
    for w in workloads:
        n = 10 ** 5 if quick else 10 ** 8
        options, paths, chunk = (16, 2000, 500) if quick else (1000, 100_000, CHUNK)
        book = option_book(options)
        fns = contenders(w, n, paths, book, chunk)
        answers, first = {}, {}
        for name, f in fns.items():
            t0 = time.perf_counter()
            answers[name] = check(w, name, f(), book)      # the first call compiles
            first[name] = time.perf_counter() - t0
            note(f"{w}: {name} checked (first call {first[name]:.1f} s) {answers[name] or ''}")
        cell = {"workload": w, "n": n if w != "monte_carlo" else options * paths, "checked": sorted(fns),
                "first_call": first, "timings": {}}
        if w == "monte_carlo":
            cell.update(options=options, paths=paths, answers=answers)
        if not quick:
            times = {name: [] for name in fns}
            for _ in range(rounds):
                for name, f in fns.items():
                    t0 = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - t0)
            cell["timings"] = {name: statistics.median(ts) for name, ts in times.items()}
            cell["rounds"] = rounds
            note(f"{w}: " + ", ".join(f"{k} {v:.3f} s" for k, v in cell["timings"].items()))
        results.append(cell)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every contender's answer at a small size, no timing")
    ap.add_argument("--workloads", default="normals,uniforms,monte_carlo")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args(argv)
    from .run import machine_info
    info = machine_info()
    load0 = os.getloadavg()
    cells = run(args.workloads.split(","), args.quick, args.rounds)
    out = {"machine": info, "load_before": load0, "load_after": os.getloadavg(), "cells": cells,
           "date": time.strftime("%Y-%m-%d")}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "random-quick.json" if args.quick else "random.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    for c in cells:
        if c["timings"]:
            best = min(c["timings"].values())
            print(f"{c['workload']:12s} " + "  ".join(f"{k} {v:.3f} s ({v / best:.2f}x)" for k, v in c["timings"].items()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
