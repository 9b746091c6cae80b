"""Batching rules against the per-example loop, on the NumPy reference evaluator.

For every op's sample programs (every dtype the op accepts): all in_dims
combinations (all 0, then {-1, None}^n minus all None), batch sizes 2 and 3,
out_dims 0 and -1, double nesting with different batch sizes and the no-bdim
check (design.md section 8). The fallback is switched to "error", so an op
without a real rule fails here.
"""

import collections
import warnings

import numpy as np
import pytest

import vmapc
from vmapc import rules, testing
from vmapc.errors import BatchingError, PerformanceWarning
from vmapc.ops import OPS

SAMPLES = collections.defaultdict(list)
for _s in testing.op_samples("all"):
    SAMPLES[_s.fn.eqns[0].op].append(_s)


def test_samples_cover_every_op():
    assert set(SAMPLES) == set(OPS)


def test_every_op_has_a_real_rule():
    missing = [op for op in OPS if rules.rule_kind(op) == "fallback"]
    assert missing == [], f"ops without a native or family rule: {missing}"
    kinds = {row["op"]: row["rule"] for row in rules.report()}
    assert kinds["add"] == "family" and kinds["reduce_sum"] == "family"
    assert kinds["dot_general"] == "native" and kinds["take"] == "native"


@pytest.mark.parametrize("op", sorted(OPS))
def test_vmap_matches_per_example_loop(op):
    rng = np.random.default_rng(abs(hash(op)) % 2**32)
    n = 0
    with rules.fallback_mode("error"):
        for sample in SAMPLES[op]:
            for case in testing.vmap_cases(sample, rng):
                testing.assert_outputs_match(case, testing.run_reference(case))
                n += 1
    assert n > 0


def test_sweep_detects_a_wrong_rule(monkeypatch):
    """The oracle is not vacuous: a rule that forgets to shift its axes is caught."""
    monkeypatch.setitem(rules.BATCH_RULES, "rev",
                        lambda b, args, bdims, axes: ([b.emit("rev", args[0], axes=axes)], [bdims[0]]))
    rng = np.random.default_rng(0)
    failures = 0
    for sample in SAMPLES["rev"]:
        for case in testing.vmap_cases(sample, rng, nested=False):
            try:
                testing.assert_outputs_match(case, testing.run_reference(case))
            except AssertionError:
                failures += 1
    assert failures > 0


def test_rule_with_wrong_shape_is_reported(monkeypatch):
    monkeypatch.setitem(rules.BATCH_RULES, "exp", lambda b, args, bdims: ([b.emit("exp", args[0])], [None]))
    fn = testing.single_op("exp", [vmapc.ir.TensorType((3,), "float32")], {})
    with pytest.raises(AssertionError, match="batching rule for exp"):
        vmapc.vmap(fn, in_dims=0, axis_size=4)


# --- the fallback ----------------------------------------------------------------------------------

def _without_rule(monkeypatch, op):
    monkeypatch.delitem(rules.BATCH_RULES, op)
    monkeypatch.delitem(rules.RULE_KINDS, op)


def test_fallback_is_correct_and_warns(monkeypatch):
    _without_rule(monkeypatch, "dot_general")
    assert rules.rule_kind("dot_general") == "fallback"
    rng = np.random.default_rng(1)
    sample = next(s for s in SAMPLES["dot_general"] if "bmm_f32" in s.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cases = testing.vmap_cases(sample, rng, nested=False)
    assert any(issubclass(w.category, PerformanceWarning) and "dot_general" in str(w.message) for w in caught)
    for case in cases:
        testing.assert_outputs_match(case, testing.run_reference(case))


def test_fallback_modes(monkeypatch):
    _without_rule(monkeypatch, "tanh")
    fn = testing.single_op("tanh", [vmapc.ir.TensorType((3,), "float32")], {})
    with rules.fallback_mode("error"):
        with pytest.raises(BatchingError, match="op tanh has no batching rule"):
            vmapc.vmap(fn, in_dims=0, axis_size=2)
    with rules.fallback_mode("silent"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            vmapc.vmap(fn, in_dims=0, axis_size=2)
    with pytest.raises(BatchingError, match="static batch size"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vmapc.vmap(fn, in_dims=0, axis_size=vmapc.shapes.Sym("B"))
    with pytest.raises(ValueError, match="fallback mode"):
        rules.set_mode("loud")


def test_fallback_with_empty_batch(monkeypatch):
    _without_rule(monkeypatch, "tanh")
    fn = testing.single_op("tanh", [vmapc.ir.TensorType((3,), "float32")], {})
    with rules.fallback_mode("silent"):
        bf = vmapc.vmap(fn, in_dims=0, axis_size=0)
    (out,) = vmapc.eval(bf, np.zeros((0, 3), np.float32))
    assert out.shape == (0, 3)


# --- the batched IR -------------------------------------------------------------------------------

def test_unbatched_equations_pass_through():
    def f(x, w):
        return np.tanh(x @ (w * 2.0))
    fn = vmapc.trace(f, vmapc.f32[4], vmapc.f32[4, 3])
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=8)
    text = str(bf)
    # w * 2.0 does not depend on the batch: it stays unbatched (no @ annotation)
    mul_line = next(line for line in text.splitlines() if "multiply" in line)
    assert "@" not in mul_line.split("=")[0]
    assert "f32[8,4]@0" in text and "f32[8,3]@0" in text
    assert "broadcast_in_dim" not in text


def test_batched_ir_round_trips():
    fn = vmapc.trace(lambda x, w: np.tanh(x @ w).sum(-1), vmapc.f32[8, 4], vmapc.f32[4, 3])
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=16)
    back = vmapc.parse(str(bf))
    assert back == bf
    assert back.bdims[back.inputs[0]] == 0 and back.bdims.get(back.inputs[1]) is None


def test_one_side_batched_matmul_folds_into_m():
    """Shared weights never become a broadcast batch_matmul."""
    fn = vmapc.trace(lambda x, w: x @ w, vmapc.f32[8, 4], vmapc.f32[4, 3])
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=16)
    (eq,) = [e for e in bf.eqns if e.op == "dot_general"]
    assert eq.attrs["batch"] == ((), ())
    assert eq.inputs[1] is bf.inputs[1]
    assert all(e.op != "broadcast_in_dim" for e in bf.eqns)
