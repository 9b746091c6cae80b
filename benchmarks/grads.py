"""Per-example gradients: vmapc against JAX, PyTorch and a Python loop.

From the repository root::

    python -m benchmarks.grads                    # B = 1, 16, 256, 4096; writes benchmarks/results/grads.*
    python -m benchmarks.grads --quick            # every contender's answer at B = 5, no timing (CI)
    python -m benchmarks.run --study grads        # the same, from the main entry point

Each workload is a loss written for ONE example in NumPy, with its parameters shared by
the batch (a dict of arrays). The per-example gradients of the whole batch (one
gradient per parameter per example: ``B x |params|`` numbers) are computed by:

``vmapc``          ``vmapc.compile(vmapc.vmap(vmapc.grad(loss), in_dims=(None, 0, 0)))``
``vmapc-chunked``  the same with ``chunk_size=64`` (bounded memory: one chunk's gradients at a time)
``loop``           a Python loop over ``vmapc.compile(vmapc.grad(loss))``, one example per call
``numpy``          the per-example gradients derived by hand and vectorized with einsum (as
                   Opacus' hand-written samplers do); also the oracle every contender is checked
                   against (in float64)
``jax``            ``jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))``
``torch.vmap``     ``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))``
``torch.compile``  ``torch.compile`` of the above

Timing is the main benchmark's (:func:`benchmarks.run.time_interleaved`): interleaved
rounds, medians. Results: ``grads.json`` and ``grads.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/grads.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import vmapc  # noqa: E402
from vmapc.runtime import aligned  # noqa: E402

from .run import Peers, _fmt_us, _loadavg, machine_info, note, time_interleaved  # noqa: E402

SIZES = (1, 16, 256, 4096)
CHUNK = 64
ORDER = ("vmapc", "vmapc-chunked", "loop", "numpy", "jax", "torch.vmap", "torch.compile")
PEERS = ("numpy", "jax", "torch.vmap", "torch.compile")


@dataclasses.dataclass
class GradWorkload:
    name: str
    title: str
    loss: object            # (params, x, y) -> scalar, NumPy, one example
    params: object          # rng -> dict of float32 arrays
    example: object         # (rng, B) -> (xs, ys), the batch
    numpy_grads: object     # (params, xs, ys) -> dict of per-example gradients, float64
    jax_loss: object        # jnp -> (params, x, y) -> scalar
    torch_loss: object      # torch -> (params, x, y) -> scalar
    rtol: float = 1e-3
    atol: float = 1e-5


# --- an MLP classifier: 64 -> 128 (ReLU) -> 10, cross-entropy ------------------------------------------

def mlp_loss(p, x, y):
    h = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    z = h @ p["w2"] + p["b2"]
    z = z - vmapc.stop_gradient(np.max(z))
    return np.log(np.sum(np.exp(z))) - np.sum(z * y)      # y: one-hot


def mlp_params(rng):
    return {"w1": (rng.standard_normal((64, 128)) / 8).astype(np.float32), "b1": np.zeros(128, np.float32),
            "w2": (rng.standard_normal((128, 10)) / 11).astype(np.float32), "b2": np.zeros(10, np.float32)}


def one_hot_batch(rng, B, features, classes):
    xs = rng.standard_normal((B, features)).astype(np.float32)
    ys = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, B)]
    return xs, ys


def mlp_numpy_grads(p, xs, ys):
    p = {k: v.astype(np.float64) for k, v in p.items()}
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    pre = xs @ p["w1"] + p["b1"]
    h = np.maximum(pre, 0)
    z = h @ p["w2"] + p["b2"]
    s = np.exp(z - z.max(1, keepdims=True))
    dz = s / s.sum(1, keepdims=True) - ys                  # (B, 10)
    dh = (dz @ p["w2"].T) * (pre > 0)                      # (B, 128)
    return {"w1": np.einsum("ni,nj->nij", xs, dh), "b1": dh,
            "w2": np.einsum("ni,nj->nij", h, dz), "b2": dz}


def mlp_jax(jnp):
    import jax

    def loss(p, x, y):
        h = jnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        z = h @ p["w2"] + p["b2"]
        z = z - jax.lax.stop_gradient(jnp.max(z))
        return jnp.log(jnp.sum(jnp.exp(z))) - jnp.sum(z * y)
    return loss


def mlp_torch(torch):
    def loss(p, x, y):
        h = torch.clamp(x @ p["w1"] + p["b1"], min=0.0)
        z = h @ p["w2"] + p["b2"]
        z = z - torch.max(z).detach()
        return torch.log(torch.sum(torch.exp(z))) - torch.sum(z * y)
    return loss


# --- a small attention model: 16 tokens of 32 features, one head, mean-pooled, linear read-out ----------

def attn_loss(p, x, y):
    q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
    s = q @ k.T / np.sqrt(np.float32(32))
    s = s - vmapc.stop_gradient(np.max(s, axis=1, keepdims=True))
    a = np.exp(s)
    a = a / np.sum(a, axis=1, keepdims=True)
    out = np.mean(a @ v, axis=0) @ p["wo"]
    return np.sum((out - y) ** 2)


def attn_params(rng):
    return {k: (rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32)
            for k, s in (("wq", (32, 32)), ("wk", (32, 32)), ("wv", (32, 32)), ("wo", (32, 4)))}


def attn_batch(rng, B):
    return (rng.standard_normal((B, 16, 32)).astype(np.float32), rng.standard_normal((B, 4)).astype(np.float32))


def attn_numpy_grads(p, xs, ys):
    p = {k: v.astype(np.float64) for k, v in p.items()}
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    q, k, v = xs @ p["wq"], xs @ p["wk"], xs @ p["wv"]
    s = np.einsum("nid,njd->nij", q, k) / np.sqrt(32)
    a = np.exp(s - s.max(2, keepdims=True))
    a /= a.sum(2, keepdims=True)
    av = a @ v                                             # (B, 16, 32)
    pooled = av.mean(1)                                    # (B, 32)
    out = pooled @ p["wo"]
    dout = 2 * (out - ys)                                  # (B, 4)
    g = {"wo": np.einsum("ni,nj->nij", pooled, dout)}
    dav = np.repeat((dout @ p["wo"].T)[:, None, :] / 16, 16, axis=1)
    da = dav @ v.transpose(0, 2, 1)
    dv = a.transpose(0, 2, 1) @ dav
    ds = a * (da - np.sum(da * a, axis=2, keepdims=True)) / np.sqrt(32)
    dq = ds @ k
    dk = ds.transpose(0, 2, 1) @ q
    for name, d in (("wq", dq), ("wk", dk), ("wv", dv)):
        g[name] = np.einsum("nti,ntj->nij", xs, d)
    return g


def attn_jax(jnp):
    import jax

    def loss(p, x, y):
        q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
        s = q @ k.T / jnp.sqrt(32.0)
        s = s - jax.lax.stop_gradient(jnp.max(s, axis=1, keepdims=True))
        a = jnp.exp(s)
        a = a / jnp.sum(a, axis=1, keepdims=True)
        out = jnp.mean(a @ v, axis=0) @ p["wo"]
        return jnp.sum((out - y) ** 2)
    return loss


def attn_torch(torch):
    def loss(p, x, y):
        q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
        s = q @ k.T / 32.0 ** 0.5
        s = s - torch.amax(s, dim=1, keepdim=True).detach()
        a = torch.exp(s)
        a = a / torch.sum(a, dim=1, keepdim=True)
        out = torch.mean(a @ v, dim=0) @ p["wo"]
        return torch.sum((out - y) ** 2)
    return loss


WORKLOADS = {w.name: w for w in (
    GradWorkload("mlp", "MLP 64-128-10, cross-entropy", mlp_loss, mlp_params,
                 lambda rng, B: one_hot_batch(rng, B, 64, 10), mlp_numpy_grads, mlp_jax, mlp_torch),
    GradWorkload("attention", "1-head attention, 16x32 tokens", attn_loss, attn_params, attn_batch,
                 attn_numpy_grads, attn_jax, attn_torch),
)}


# --- contenders --------------------------------------------------------------------------------------------

def build(w, B, params, xs, ys, wanted, peers, cache):
    """{name: zero-argument callable returning the dict of per-example gradients}, {name: why not}."""
    fns, notes = {}, {}

    def attempt(name, make):
        if name not in wanted:
            return
        try:
            fns[name] = make()
        except Exception as e:
            notes[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            note(f"  {w.name} B={B} {name}: could not build: {notes[name]}")

    per_example = vmapc.vmap(vmapc.grad(w.loss), in_dims=(None, 0, 0))

    def static():
        c = vmapc.compile(per_example)
        c(params, xs, ys)
        return lambda: c(params, xs, ys)
    attempt("vmapc", static)

    def chunked():
        key = ("chunked", w.name)
        if key not in cache:
            cache[key] = vmapc.compile(per_example, chunk_size=cache["chunk"])
        c = cache[key]
        c(params, xs, ys)
        return lambda: c(params, xs, ys)
    attempt("vmapc-chunked", chunked)

    def loop():
        key = ("loop", w.name)
        if key not in cache:
            cache[key] = vmapc.compile(vmapc.grad(w.loss))
        c = cache[key]
        c(params, xs[0], ys[0])

        def run():
            gs = [c(params, xs[i], ys[i]) for i in range(B)]
            return {k: np.stack([g[k] for g in gs]) for k in params}
        return run
    attempt("loop", loop)
    attempt("numpy", lambda: (lambda: w.numpy_grads(params, xs, ys)))
    if peers.jax is not None:
        def jax_():
            jax = peers.jax
            f = jax.jit(jax.vmap(jax.grad(w.jax_loss(peers.jnp)), in_axes=(None, 0, 0)))
            p, x, y = jax.device_put(params), jax.device_put(xs), jax.device_put(ys)
            return lambda: jax.block_until_ready(f(p, x, y))
        attempt("jax", jax_)
    if peers.torch is not None:
        torch = peers.torch
        tp = {k: torch.from_numpy(v) for k, v in params.items()}
        tx, ty = torch.from_numpy(xs), torch.from_numpy(ys)
        tf = torch.func.vmap(torch.func.grad(w.torch_loss(torch)), in_dims=(None, 0, 0))
        attempt("torch.vmap", lambda: (lambda: tf(tp, tx, ty)))

        def tc():
            f = torch.compile(tf, dynamic=False)
            f(tp, tx, ty)
            return lambda: f(tp, tx, ty)
        attempt("torch.compile", tc)
    return fns, notes


def _np(x):
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


def check(w, fns, ref):
    out = {}
    for name, f in fns.items():
        try:
            got = f()
            err = 0.0
            ok = set(got) == set(ref)
            for k in ref:
                g = _np(got[k]).astype(np.float64)
                ok = ok and g.shape == ref[k].shape and np.allclose(g, ref[k], rtol=w.rtol, atol=w.atol)
                if g.shape == ref[k].shape and g.size:
                    err = max(err, float(np.max(np.abs(g - ref[k]))))
            out[name] = (bool(ok), err, None if ok else f"wrong answer: max error {err:.3g}")
        except Exception as e:
            out[name] = (False, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return out


def run(args) -> dict:
    quick = args.quick
    sizes = [5] if quick and not args.sizes else [int(s) for s in (args.sizes or ",".join(map(str, SIZES))).split(",")]
    names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    wanted = set(args.contenders.split(",")) if args.contenders else set(ORDER)
    peers = Peers(wanted)
    cache = {"chunk": args.chunk or (2 if quick else CHUNK)}
    results = {"quick": quick, "machine": machine_info(), "sizes": sizes, "chunk_size": cache["chunk"],
               "notes": list(peers.notes), "cells": []}
    for wname in names:
        w = WORKLOADS[wname]
        for B in sizes:
            note(f"{w.name} B={B}")
            rng = np.random.default_rng(B)
            params = {k: aligned(v) for k, v in w.params(rng).items()}
            xs, ys = (aligned(a) for a in w.example(rng, B))
            ref = w.numpy_grads(params, xs, ys)
            fns, failed = build(w, B, params, xs, ys, wanted, peers, cache)
            fns = {n: fns[n] for n in ORDER if n in fns}
            checks = check(w, fns, ref)
            for n, (ok, _, why) in checks.items():
                if not ok:
                    failed[n] = why
                    note(f"  {n}: {why}")
            good = {n: f for n, f in fns.items() if checks[n][0]}
            cell = {"workload": w.name, "B": B, "failed": failed, "checked": sorted(good),
                    "max_abs_error": {n: checks[n][1] for n in fns}, "timings": {}}
            if not quick:
                t = time_interleaved(good, args.budget)
                cell["timings"] = t
                note("  " + ", ".join(f"{n} {_fmt_us(r['median_us'])}" for n, r in t.items()))
                peer_t = {n: t[n]["median_us"] for n in t if n in PEERS}
                if peer_t and "vmapc" in t:
                    fastest = min(peer_t, key=peer_t.get)
                    cell["fastest_peer"] = fastest
                    cell["vmapc_over_fastest_peer"] = t["vmapc"]["median_us"] / peer_t[fastest]
            results["cells"].append(cell)
            del fns, good
            gc.collect()
    results["machine"]["load_after"] = _loadavg()
    return results


def markdown(results) -> str:
    info = results["machine"]
    lines = [f"# Per-example gradients ({'quick' if results['quick'] else 'full'} run)", "",
             f"{info['date']} · {info['cpu']} ({info['cores']} cores) · IREE {info['iree']} · "
             f"JAX {info.get('jax') or 'not installed'} · PyTorch {info.get('torch') or 'not installed'}", "",
             f"Load average before: {info.get('load_before')}, after: {info.get('load_after')}.", ""]
    names = [n for n in ORDER if any(n in c["checked"] or n in c["failed"] for c in results["cells"])]
    lines += ["| workload | B | " + " | ".join(names) + " | vmapc / fastest peer |",
              "|---" * (len(names) + 3) + "|"]
    for c in results["cells"]:
        row = []
        for n in names:
            if n in c["timings"]:
                row.append(_fmt_us(c["timings"][n]["median_us"]))
            elif n in c["failed"]:
                row.append("FAILED")
            elif n in c["checked"]:
                err = c["max_abs_error"].get(n)
                row.append("ok" + (f" ({err:.1e})" if err is not None else ""))
            else:
                row.append("–")
        r = c.get("vmapc_over_fastest_peer")
        lines.append(f"| {c['workload']} | {c['B']} | " + " | ".join(row) + " | "
                     + (f"{r:.2f} ({c['fastest_peer']})" if r else "–") + " |")
    if results["notes"]:
        lines += ["", "Notes:"] + [f"* {n}" for n in results["notes"]]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.grads", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="correctness only, at B=5 with chunks of 2")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results"))
    ap.add_argument("--sizes", help="comma-separated batch sizes (default 1,16,256,4096)")
    ap.add_argument("--workloads", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--contenders", help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--chunk", type=int, help=f"chunk_size of vmapc-chunked (default {CHUNK})")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timing per cell (default 2)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = run(args)
    stem = "grads-quick" if args.quick else "grads"
    with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = markdown(results)
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    return 1 if any(c["failed"] for c in results["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
