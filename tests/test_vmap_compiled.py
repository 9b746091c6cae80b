"""Batched programs compiled by IREE for the CPU against the per-example loop.

For every op, one sample program runs the sweep of design.md section 8: every
in_dims combination, batch sizes 2 and 3, out_dims 0 and -1, double nesting with
different batch sizes and the no-bdim check, each of them once rather than every
combination of them (``vmap_cases(cross=False)``; the cross product runs on the
reference evaluator in tests/test_rules.py, where it costs no compile). Every
other sample program of ``op_samples("few")`` (other dtypes, shapes and
attributes) runs with in_dims all 0 at batch size 3. Cases are merged into a few
Functions per module (``vmapc.testing.run_compiled``) so the whole file compiles
in well under a minute per worker.
"""

import collections

import numpy as np
import pytest

import vmapc
from vmapc import rules, testing
from vmapc.ops import OPS

N_SHARDS = 4


def _cases():
    rng = np.random.default_rng(7)
    by_op = collections.defaultdict(list)
    for s in testing.op_samples("few"):
        by_op[s.fn.eqns[0].op].append(s)
    cases = []
    with rules.fallback_mode("error"):
        for op in sorted(by_op):
            first, *rest = by_op[op]
            cases += testing.vmap_cases(first, rng, cross=False)
            for s in rest:
                cases += testing.vmap_cases(s, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)
    return cases, set(by_op)


CASES, SWEPT_OPS = _cases()


def test_every_op_is_swept():
    # (a collective's cases hold no collective once batched: the vmap that binds its axis replaces
    # it; nor does key_use of a batched key, a marker whose batching rule returns the key)
    assert set(OPS) <= SWEPT_OPS
    assert {op for op in OPS if OPS[op].family != "collective" and op != "key_use"} <= \
        {e.op for c in CASES for e in c.fn.eqns}


@pytest.mark.parametrize("shard", range(N_SHARDS))
def test_compiled_vmap_matches_per_example_loop(shard, vmapc_shared_cache):
    mine = CASES[shard::N_SHARDS]
    outs = testing.run_compiled(mine, target="cpu", group=24, modules=1)
    for case in mine:
        testing.assert_outputs_match(case, outs[case.name])


# --- the MLP: no broadcast weights, one GEMM per layer with M = batch * rows ------------------------

def mlp(x, w1, w2):
    """x: [8, 64] (a few rows per example), shared weights."""
    return np.tanh(np.maximum(x @ w1, 0) @ w2)


def test_mlp_lowering_folds_batch_into_m():
    compiled = vmapc.compile(mlp, in_dims=(0, None, None))
    x = np.zeros((16, 8, 64), np.float32)
    w1, w2 = np.zeros((64, 32), np.float32), np.zeros((32, 10), np.float32)
    lowered = compiled.lower(x, w1, w2)
    mlir = lowered.mlir
    assert "linalg.batch_matmul" not in mlir
    assert "linalg.broadcast" not in mlir
    matmuls = [ln for ln in mlir.splitlines() if "linalg.matmul" in ln]
    assert len(matmuls) == 2, mlir
    # M = batch (16) x rows (8) = 128 for both layers
    assert "tensor<128x64xf32>, tensor<64x32xf32>" in matmuls[0]
    assert "tensor<128x32xf32>, tensor<32x10xf32>" in matmuls[1]
    # the batched IR keeps the weights unbatched: no broadcast_in_dim of w1/w2
    batched = lowered.batched
    assert all(e.op != "broadcast_in_dim" for e in batched.eqns)
    dots = [e for e in batched.eqns if e.op == "dot_general"]
    assert [e.inputs[1] for e in dots] == [batched.inputs[1], batched.inputs[2]]


def test_mlp_vector_input_is_one_gemm():
    """One example is a vector (the common case): the batch alone is M."""
    compiled = vmapc.compile(lambda x, w: x @ w, in_dims=(0, None))
    mlir = compiled.lower(np.zeros((256, 784), np.float32), np.zeros((784, 10), np.float32)).mlir
    matmuls = [ln for ln in mlir.splitlines() if "linalg.matmul" in ln]
    assert len(matmuls) == 1 and "tensor<256x784xf32>, tensor<784x10xf32>" in matmuls[0]


def test_mlp_dynamic_batch_is_one_gemm_per_layer():
    compiled = vmapc.compile(mlp, in_dims=(0, None, None), batch="dynamic")
    mlir = compiled.lower(np.zeros((16, 8, 64), np.float32), np.zeros((64, 32), np.float32),
                          np.zeros((32, 10), np.float32)).mlir
    matmuls = [ln for ln in mlir.splitlines() if "linalg.matmul" in ln]
    assert len(matmuls) == 2 and "tensor<?x64xf32>, tensor<64x32xf32>" in matmuls[0]
    assert "linalg.broadcast" not in mlir
