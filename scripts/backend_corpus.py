"""The cross-backend corpus: one set of programs run on every backend and compared with NumPy.

Used by ``tests/test_backends.py`` (every backend that runs here) and by
``scripts/cuda_matrix.py`` (CUDA on a machine with an NVIDIA GPU). It needs only
vmapc (``pip install -e .``) and the repository's ``examples/``.

The corpus (built deterministically by :func:`build`):

* **ops**: every sample program of ``vmapc.testing.op_samples("few")`` (every op, one
  float and one integer dtype each), batched by ``vmap`` at batch size 3 with one
  combination of ``in_dims`` per sample, cycling through the combinations of
  ``vmapc.testing.in_dim_combos`` (all 0, then every {-1, None} mix) and ``out_dims``
  0 / -1, so the sweep covers every in_dims pattern across the library;
* **nested**: for the first sample of each op, ``vmap(vmap(f))`` (inner over all 0,
  outer over a {-1, None} mix at another batch size);
* **examples**: the programs of ``examples/`` at small shapes: the quickstart MLP,
  the MNIST-style MLP with log-softmax, the model ensemble (nested vmap over
  parameters and inputs), attention (batched matmuls, softmax) and pairwise
  distances (nested vmap, float64).

Every expected value comes from NumPy: the per-example loop of
``vmapc.testing.vmap_cases`` over the reference evaluator for the ops, and the
examples' own plain-NumPy formulas for the examples.

To compile fast, cases are inlined side by side into merged functions of
:data:`MERGE` cases each (IREE compiles one merged function about 2.5x faster than
its cases as separate functions) and the merged functions into a few modules.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from pathlib import Path

import numpy as np

import vmapc
from vmapc import dtypes as dt
from vmapc import pytree
from vmapc.errors import TargetError
from vmapc.ir import Builder, Var
from vmapc.testing import Case, _batch_args, _loop, in_dim_combos, nested_cases, op_samples, vmap_cases
from vmapc.vmap import vmap

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MERGE = 24      # cases per merged function
SEED = 20240611


@dataclasses.dataclass
class Entry:
    """One program of the corpus: a Function (batched), its arguments, NumPy's outputs."""
    name: str
    kind: str            # "op", "nested" or "example"
    family: str          # the op (or example) it exercises
    fn: object
    args: list
    expected: list


# --- tolerances ----------------------------------------------------------------------------------
#
# Integers and bools must match exactly everywhere. Floats: |got - want| <= tol * (1 + |want|)
# elementwise (NaN equal to NaN). One table per target family; "math" applies to outputs of
# programs that contain a transcendental function (exp, log, sin, tanh, erf, power, ...), "acc"
# to programs with a sum, product or contraction (rounding depends on the order of
# accumulation), "base" to all others (one correctly rounded operation or a piecewise
# definition, so any difference is a bug; the tolerance only absorbs float16's rounding of
# float32 intermediates).

TOLERANCES = {
    "cpu": {"base": {"float16": 1e-3, "float32": 1e-6, "float64": 1e-15},
            "math": {"float16": 2e-3, "float32": 2e-6, "float64": 1e-13},
            "acc": {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}},
    # Vulkan: GLSL.std.450's float32 exp/log/sin/pow have no precision guarantee beyond a few
    # ulp near 1 (lavapipe measured; see docs/backends.md), so "math" is looser.
    "vulkan": {"base": {"float16": 1e-3, "float32": 1e-6, "float64": 1e-15},
               "math": {"float16": 4e-3, "float32": 1e-4, "float64": 1e-13},
               "acc": {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}},
    # CUDA: libdevice's float32 functions are within 2-4 ulp; the GPU may contract a*b+c to an fma.
    "cuda": {"base": {"float16": 1e-3, "float32": 1e-6, "float64": 1e-15},
             "math": {"float16": 2e-3, "float32": 8e-6, "float64": 1e-13},
             "acc": {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}},
}
MATH_OPS = {"exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "arcsin", "arccos", "arctan",
            "sinh", "cosh", "sigmoid", "erf", "power", "arctan2", "rsqrt", "sqrt", "divide", "reciprocal"}
ACC_OPS = {"reduce_sum", "reduce_prod", "dot_general"}


def tolerance(entry: Entry, target_name: str, dtype) -> float:
    ops = {e.op for e in entry.fn.eqns}
    kind = "acc" if ops & ACC_OPS else "math" if ops & MATH_OPS else "base"
    return TOLERANCES[target_name][kind][np.dtype(dtype).name]


def compare(entry: Entry, got, target_name: str) -> None:
    """Raise AssertionError unless `got` matches the entry's NumPy outputs."""
    assert len(got) == len(entry.expected), f"{entry.name}: {len(got)} outputs, expected {len(entry.expected)}"
    for j, (g, w) in enumerate(zip(got, entry.expected)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{entry.name}: output {j} has shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"{entry.name}: output {j} has dtype {g.dtype}, expected {w.dtype}"
        if not dt.is_float(w.dtype):
            bad = g != w
        else:
            tol = tolerance(entry, target_name, w.dtype)
            gw, ww = g.astype(np.float64), w.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                bad = ~((gw == ww) | (np.isnan(gw) & np.isnan(ww))
                        | (np.abs(gw - ww) <= tol * (1 + np.abs(ww))))
        if np.any(bad):
            idx = [tuple(int(i) for i in k) for k in np.argwhere(np.asarray(bad))[:4]]
            detail = "; ".join(f"at {k} got {g[k]!r} want {w[k]!r}" for k in idx)
            raise AssertionError(f"{entry.name} on {target_name}: output {j}: {int(np.sum(bad))} of {bad.size} "
                                 f"elements differ: {detail}")


# --- building the corpus -------------------------------------------------------------------------

def _op_entries(rng) -> list:
    out = []
    seen_ops = set()
    for i, s in enumerate(op_samples("few")):
        n = len(s.fn.inputs)
        op = s.fn.eqns[0].op if s.fn.eqns else s.name
        if s.fn.eqns and s.fn.eqns[0].op in ("cond", "while_loop", "scan"):
            # IREE 3.13's runtime fails a module that mixes these loops with the corpus's many other
            # programs ("transient buffer has not been committed" in queue.dealloca, local-task and
            # Vulkan); they run in a module of their own in tests/test_control.py
            continue
        if n == 0 or "collective" in s.tags:    # (a collective's expected values come from the whole batch)
            cases = vmap_cases(s, rng, sizes=(3,), out_dims=((0, -1)[i % 2],), nested=False, all_in_dims=False)
        else:
            # vmap_cases' sweep for one in_dims combination (cycling over the samples)
            combos = in_dim_combos(n)
            combo = combos[i % len(combos)]
            od = (0, -1)[i % 2]
            examples = [s.gen(rng) for _ in range(3)]
            shared = [[ex[k] if combo[k] is not None else examples[0][k] for k in range(n)] for ex in examples]
            per = _loop(s.fn, shared)
            bf = vmap(s.fn, in_dims=combo, out_dims=od, axis_size=3)
            expected = [np.stack([p[j] for p in per], axis=od % (s.fn.outputs[j].rank + 1))
                        for j in range(len(s.fn.outputs))]
            cases = [Case(f"{s.name}_B3_in{combo}_out{od}", bf, _batch_args(examples, combo, s.fn.in_types),
                          expected)]
        for c in cases:
            out.append(Entry(c.name, "op", op, c.fn, c.args, c.expected))
        if n and op not in seen_ops and "collective" not in s.tags:
            seen_ops.add(op)
            c = nested_cases(s, rng, sizes=(2, 3))[0]
            out.append(Entry(c.name, "nested", op, c.fn, c.args, c.expected))
    return out


def _load_example(name: str):
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_vmapc_corpus_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _program(fn, in_dims, args, name):
    """(batched Function, flat argument leaves) of vmapc.compile(fn, in_dims) at `args`."""
    lowered = vmapc.compile(fn, in_dims=in_dims).lower(*args)
    program = lowered.program
    program.name = name
    leaves, _ = pytree.flatten((args, {}))
    return program, [np.asarray(x) for x in leaves]


def _logsumexp(z):
    m = z.max()
    return m + np.log(np.exp(z - m).sum())


def _example_entries(rng) -> list:
    out = []
    f32 = np.float32

    # quickstart: a two-layer MLP for one input vector, batch of 5
    qs = _load_example("quickstart")
    w1 = (rng.normal(size=(8, 16)) / 3).astype(f32)
    b1 = rng.normal(size=16).astype(f32)
    w2 = (rng.normal(size=(16, 4)) / 4).astype(f32)
    xs = rng.normal(size=(5, 8)).astype(f32)
    fn, args = _program(qs.predict, (0, None, None, None), (xs, w1, b1, w2), "quickstart")
    want = np.stack([np.tanh(np.maximum(x @ w1 + b1, 0.0) @ w2) for x in xs])
    out.append(Entry("example_quickstart", "example", "quickstart", fn, args, [want]))

    # mlp_inference: ReLU layer, logits, log-softmax (vmapc.numpy.logsumexp)
    mlp = _load_example("mlp_inference")
    params = {"w1": (rng.normal(size=(12, 8)) / 4).astype(f32), "b1": rng.normal(size=8).astype(f32),
              "w2": (rng.normal(size=(8, 3)) / 3).astype(f32), "b2": rng.normal(size=3).astype(f32)}
    images = rng.random(size=(6, 12)).astype(f32)
    fn, args = _program(mlp.mlp, (0, None), (images, params), "mlp_inference")

    def mlp_ref(x):
        h = np.maximum(x @ params["w1"] + params["b1"], 0)
        z = h @ params["w2"] + params["b2"]
        return z - _logsumexp(z)
    out.append(Entry("example_mlp_inference", "example", "mlp_inference", fn, args,
                     [np.stack([mlp_ref(x) for x in images])]))

    # ensemble: vmap over stacked parameters of a vmap over inputs (nested)
    ens = _load_example("ensemble")
    stacked = {"w": rng.normal(size=(3, 4, 6)).astype(f32), "b": rng.normal(size=(3, 6)).astype(f32),
               "v": rng.normal(size=(3, 6, 2)).astype(f32)}
    inputs = rng.normal(size=(5, 4)).astype(f32)
    over_inputs = vmapc.vmap(ens.model, in_dims=(None, 0))
    fn, args = _program(over_inputs, (0, None), (stacked, inputs), "ensemble")
    want = np.stack([np.stack([np.tanh(x @ stacked["w"][m] + stacked["b"][m]) @ stacked["v"][m] for x in inputs])
                     for m in range(3)])
    out.append(Entry("example_ensemble", "example", "ensemble", fn, args, [want]))

    # attention: q @ k.T / sqrt(d), softmax, @ v, over a batch of 3 sequences
    att = _load_example("attention")
    q, k, v = (rng.normal(size=(3, 5, 4)).astype(f32) for _ in range(3))
    fn, args = _program(att.attention, 0, (q, k, v), "attention")

    def att_ref(q, k, v):
        s = q @ k.T / np.sqrt(q.shape[-1])  # NumPy 2: np.float64 scalar promotes to float64
        e = np.exp(s - s.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)) @ v
    out.append(Entry("example_attention", "example", "attention", fn, args,
                     [np.stack([att_ref(*a) for a in zip(q, k, v)])]))

    # pairwise distances: nested vmap, float64
    pw = _load_example("pairwise_distances")
    a = rng.normal(size=(4, 3))
    b = rng.normal(size=(5, 3))
    row = vmapc.vmap(pw.distance, in_dims=(None, 0))
    fn, args = _program(row, (0, None), (a, b), "pairwise_distances")
    want = np.array([[np.sqrt(np.sum((x - y) * (x - y))) for y in b] for x in a])
    out.append(Entry("example_pairwise_distances", "example", "pairwise_distances", fn, args, [want]))
    return out


_CORPUS = None


def build() -> list:
    """The corpus (built once per process, deterministically)."""
    global _CORPUS
    if _CORPUS is None:
        rng = np.random.default_rng(SEED)
        entries = _op_entries(rng) + _example_entries(rng)
        names = [e.name for e in entries]
        assert len(set(names)) == len(names), "corpus names must be unique"
        _CORPUS = entries
    return _CORPUS


# --- compiling and running -----------------------------------------------------------------------

def split(entries, target) -> tuple:
    """(entries the target can run, {name: reason} for the others), by Target.check."""
    ok, skipped = [], {}
    for e in entries:
        try:
            target.check([e.fn])
        except TargetError as err:
            skipped[e.name] = err.message
        else:
            ok.append(e)
    return ok, skipped


def merge(name, entries):
    """One Function running `entries` side by side, and (entry, first output, n outputs) spans."""
    b = Builder()
    ins, outs, spans = [], [], []
    for e in entries:
        args = [Var(v.type) for v in e.fn.inputs]
        res = b.inline(e.fn, args)
        ins += args
        spans.append((e, len(outs), len(res)))
        outs += res
    return b.build(ins, outs, name=name), spans


def modules(entries, n_modules: int = 2) -> list:
    """`entries` merged into functions of MERGE cases, dealt into `n_modules` lists."""
    groups = [merge(f"m{i}", entries[k:k + MERGE]) for i, k in enumerate(range(0, len(entries), MERGE))]
    return [groups[i::n_modules] for i in range(n_modules) if groups[i::n_modules]]


def compile_module(group, target) -> bytes:
    """The .vmfb of one list of merged functions for `target`."""
    from vmapc.driver import compile_mlir
    from vmapc.lowering import lower
    return compile_mlir(lower([f for f, _ in group], target=target), target)


def run_module(vmfb: bytes, group, driver: str) -> dict:
    """{entry name: outputs} of one compiled module of merged functions."""
    from vmapc.runtime import Module
    module = Module(vmfb, driver=driver, signatures={f.name: (f.in_types, f.out_types) for f, _ in group})
    out = {}
    for f, spans in group:
        res = module.function(f.name)(*[a for e, _, _ in spans for a in e.args])
        for e, start, n in spans:
            out[e.name] = res[start:start + n]
    return out


def check_reflection(vmfb: bytes, group) -> None:
    """Load a module's reflection without a device (iree.runtime.VmModule on a bare
    VmInstance) and check each merged function's name and signature."""
    from iree import runtime as rt
    module = rt.VmModule.copy_buffer(rt.VmInstance(), vmfb)
    names = {n for n in module.function_names if not n.startswith("__")}
    want = {f.name for f, _ in group}
    assert want <= names, f"missing functions {sorted(want - names)} (module has {sorted(names)})"
    for f, _ in group:
        decl = dict(module.lookup_function(f.name).reflection).get("iree.abi.declaration", "")
        assert decl.startswith("sync func @" + f.name + "("), decl[:200]
        head, _, tail = decl.partition("->")
        for i, v in enumerate(f.inputs):
            assert f"%input{i}: tensor<{_mlir_type(v.type)}>" in head, (f.name, i, decl[:300])
        for j, v in enumerate(f.outputs):
            assert f"%output{j}: tensor<{_mlir_type(v.type)}>" in tail, (f.name, j, decl[-300:])


_MLIR_ELEM = {"bool": "i1", "int8": "i8", "uint8": "i8", "int16": "i16", "uint16": "i16", "int32": "i32",
              "uint32": "i32", "int64": "i64", "uint64": "i64", "float16": "f16", "float32": "f32",
              "float64": "f64", "complex64": "complex<f32>", "complex128": "complex<f64>"}


def _mlir_type(t) -> str:
    dims = ["?" if not isinstance(d, int) else str(d) for d in t.shape]
    return "x".join(dims + [_MLIR_ELEM[np.dtype(t.dtype).name]])


def summary(entries) -> dict:
    """Counts by kind and the op families covered."""
    kinds = {}
    for e in entries:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return {"entries": len(entries), "kinds": kinds, "families": sorted({e.family for e in entries})}


if __name__ == "__main__":  # a quick look at the corpus
    es = build()
    print(summary(es))
    print(f"{math.ceil(len(es) / MERGE)} merged functions; cache dir {os.environ.get('VMAPC_CACHE_DIR', '~/.cache/vmapc')}")
