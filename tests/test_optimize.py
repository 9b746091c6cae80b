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


def test_small_constant_subexpressions_fold_into_literals():
    # (NumPy on concrete arrays runs while tracing; constant subgraphs come from
    # vmapc.numpy creation functions, batching rules and IR written by hand)
    fn = vmapc.parse("""{ lambda x:f32[4] .
        a:f32[4] = iota[shape=(4,), dimension=0, dtype=f32]
        b:f32[] = reduce_sum[axes=(0,)] a
        c:f32[] = constant[value=2.0]
        d:f32[] = multiply b c
        e:f32[4] = broadcast_in_dim[shape=(4,), dims=()] d
        f:f32[4] = add x e
        g:f32[2048] = iota[shape=(2048,), dimension=0, dtype=f32]
        h:f32[2048] = multiply g g
        i:f32[] = reduce_max[axes=(0,)] h
      in (f, h, i) }""")
    s = simplify(fn)
    ops = [e.op for e in s.eqns]
    # the sum, the product and the max fold; the broadcast and the big product stay
    assert "reduce_sum" not in ops and "reduce_max" not in ops and ops.count("multiply") == 1
    assert "broadcast_in_dim" in ops and ops.count("add") == 1
    x = np.arange(4, dtype=np.float32)
    for got, want in zip(vmapc.eval(s, x), vmapc.eval(fn, x)):
        np.testing.assert_array_equal(got, want)
    assert s.out_types == fn.out_types


def test_folding_keeps_batch_annotations():
    fn = vmapc.parse("""{ lambda x:f32[3] .
        a:f32[3] = iota[shape=(3,), dimension=0, dtype=f32]
        b:f32[] = reduce_sum[axes=(0,)] a
        c:f32[3] = broadcast_in_dim[shape=(3,), dims=()] b
        d:f32[3] = multiply x c
      in (d) }""")
    bf = vmapc.vmap(fn, in_dims=0, axis_size=5)
    s = simplify(bf)
    assert "reduce_sum" not in [e.op for e in s.eqns]
    assert s.bdims is not None and s.bdims.get(s.outputs[0]) == bf.bdims.get(bf.outputs[0]) == 0
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(vmapc.eval(s, x)[0], x * 3)
