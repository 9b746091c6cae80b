"""IR simplification preserves every program's results and removes the noise."""

import numpy as np
import pytest

import vmapc
from vmapc import testing
from vmapc.optimize import simplify


def _all_cases():
    rng = np.random.default_rng(11)
    return [c for s in testing.op_samples("few") for c in testing.vmap_cases(s, rng)]


@pytest.mark.parametrize("shard", range(4))
def test_simplify_preserves_results(shard):
    for case in _all_cases()[shard::4]:
        fn = simplify(case.fn)
        assert fn.in_types == case.fn.in_types and fn.out_types == case.fn.out_types
        fn.verify()
        testing.assert_outputs_match(case, vmapc.eval(fn, *case.args))


def test_transpose_folds_into_contraction():
    fn = vmapc.trace(lambda q, k: q @ k.T, vmapc.f32[8, 4], vmapc.f32[6, 4])
    s = simplify(fn)
    assert [e.op for e in s.eqns] == ["dot_general"]
    assert s.eqns[0].attrs["contract"] == ((1,), (1,))
    q, k = np.ones((8, 4), np.float32), np.arange(24, dtype=np.float32).reshape(6, 4)
    np.testing.assert_array_equal(vmapc.eval(s, q, k)[0], q @ k.T)


def test_transpose_that_reorders_free_dims_stays():
    fn = vmapc.trace(lambda a, b: np.einsum("ij,jk->ik", a.T, b), vmapc.f32[3, 2], vmapc.f32[3, 5])
    s = simplify(fn)
    a, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((3, 5), np.float32)
    np.testing.assert_array_equal(vmapc.eval(s, a, b)[0], a.T @ b)


def test_chains_cse_and_dead_code():
    def f(x):
        y = x.reshape(6).reshape(2, 3).T.T           # reshape chain, cancelling transposes
        unused = np.exp(x)                            # dead
        return y * 2.0 + y * 2.0                      # common subexpression
    fn = vmapc.trace(f, vmapc.f32[3, 2])
    s = simplify(fn)
    ops = [e.op for e in s.eqns]
    assert "exp" not in ops and "transpose" not in ops
    assert ops.count("reshape") <= 2 and ops.count("multiply") == 1
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(vmapc.eval(s, x)[0], f(x))


def test_batched_annotations_survive():
    fn = vmapc.trace(lambda x, w: np.tanh(x @ w.T), vmapc.f32[4], vmapc.f32[3, 4])
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=5)
    s = simplify(bf)
    assert s.bdims[s.inputs[0]] == 0 and s.bdims[s.outputs[0]] == 0
    assert "@0" in str(s)
