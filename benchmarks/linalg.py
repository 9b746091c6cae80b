"""Small batched linear algebra: B = 4096 solves, Cholesky factorizations and SVDs of 3x3 and
16x16 matrices (``python -m benchmarks.linalg``; ``--kinds svd`` for one kind).

Contenders: vmapc (``vmapc.compile(np.linalg.solve, in_dims=0)``: the traced LU / Cholesky
programs of ``vmapc.numpy._factor``, unrolled at these sizes, on IREE's CPU backend; the SVD
is one-sided Jacobi sweeps in a loop), NumPy's batched ``np.linalg`` (LAPACK per matrix),
``jax.jit(jax.vmap(jnp.linalg.solve))`` and ``torch.linalg.solve``/``cholesky``/``svd`` on a
batch, where installed. Every answer is checked against NumPy first (the SVD's singular
values: its vectors' signs are not unique). Times are medians of interleaved rounds
(:func:`benchmarks.run.time_interleaved`); the compile time of vmapc's module is printed too.
Writes ``linalg.json`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import vmapc

from .run import time_interleaved

B = 4096


def _problem(n, rng):
    a = rng.standard_normal((B, n, n)).astype(np.float32)
    a += 2 * n ** 0.5 * np.eye(n, dtype=np.float32)
    spd = (a @ a.transpose(0, 2, 1) + n * np.eye(n, dtype=np.float32)).astype(np.float32)
    b = rng.standard_normal((B, n)).astype(np.float32)
    return a, b, spd


def _contenders(kind, a, b, spd):
    out = {}
    t0 = time.perf_counter()
    if kind == "solve":
        f = vmapc.compile(lambda a, b: np.linalg.solve(a, b), in_dims=0)
        f(a, b)
        out["vmapc"] = lambda: f(a, b)
        out["numpy"] = lambda: np.linalg.solve(a, b[..., None])[..., 0]
    elif kind == "svd":
        f = vmapc.compile(lambda a: np.linalg.svd(a), in_dims=0)
        f(a)
        out["vmapc"] = lambda: f(a)
        out["numpy"] = lambda: np.linalg.svd(a)
    else:
        f = vmapc.compile(lambda s: np.linalg.cholesky(s), in_dims=0)
        f(spd)
        out["vmapc"] = lambda: f(spd)
        out["numpy"] = lambda: np.linalg.cholesky(spd)
    compile_s = time.perf_counter() - t0
    try:
        import jax
        import jax.numpy as jnp
        if kind == "solve":
            g = jax.jit(jax.vmap(jnp.linalg.solve))
            ja, jb = jnp.asarray(a), jnp.asarray(b)
            out["jax"] = lambda: np.asarray(g(ja, jb))
        elif kind == "svd":
            g = jax.jit(jax.vmap(jnp.linalg.svd))
            ja = jnp.asarray(a)
            out["jax"] = lambda: [np.asarray(x) for x in g(ja)]
        else:
            g = jax.jit(jax.vmap(jnp.linalg.cholesky))
            js = jnp.asarray(spd)
            out["jax"] = lambda: np.asarray(g(js))
    except ImportError:
        print("jax not installed: skipped")
    try:
        import torch
        ta, tb, ts = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(spd)
        if kind == "solve":
            out["torch"] = lambda: torch.linalg.solve(ta, tb).numpy()
        elif kind == "svd":
            out["torch"] = lambda: [x.numpy() for x in torch.linalg.svd(ta)]
        else:
            out["torch"] = lambda: torch.linalg.cholesky(ts).numpy()
    except ImportError:
        print("torch not installed: skipped")
    return out, compile_s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="3,16")
    p.add_argument("--kinds", default="solve,cholesky,svd")
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    results = {"load_before": os.getloadavg()}
    for n in [int(s) for s in args.sizes.split(",")]:
        a, b, spd = _problem(n, rng)
        for kind in args.kinds.split(","):
            fns, compile_s = _contenders(kind, a, b, spd)
            check = (lambda r: np.asarray(r[1])) if kind == "svd" else np.asarray     # the singular values
            want = check(fns["numpy"]())
            for name, f in fns.items():
                np.testing.assert_allclose(check(f()), want, rtol=2e-3, atol=2e-3, err_msg=name)
            times = time_interleaved(fns, args.budget)
            results[f"{kind}_{n}"] = {"compile_s": compile_s, **times}
            print(f"B={B} {kind} {n}x{n}: vmapc compile {compile_s:.1f} s; "
                  + ", ".join(f"{k} {v['median_us'] / 1e3:.3f} ms" for k, v in times.items()), flush=True)
    results["load_after"] = os.getloadavg()
    os.makedirs(args.out, exist_ok=True)
    name = "linalg.json" if args.kinds == p.get_default("kinds") else f"linalg-{args.kinds.replace(',', '-')}.json"
    with open(os.path.join(args.out, name), "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
