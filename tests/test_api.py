"""vmapc.compile: per-signature caching, lower() stages, fixed-signature executables,
batch="dynamic" and chunk_size, and call errors."""

import numpy as np
import pytest

import vmapc
from vmapc.errors import BatchingError, CallError, TargetError

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")
RNG = np.random.default_rng(3)


def rand(*shape, dtype=np.float32):
    return RNG.normal(size=shape).astype(dtype)


def plain_numpy(x, w):
    """Only np. calls and operators: no vmapc inside."""
    h = np.maximum(x @ w, 0.0)
    z = h - np.max(h, axis=-1, keepdims=True)
    return np.exp(z) / np.sum(np.exp(z), axis=-1, keepdims=True), np.linalg.norm(h, axis=-1)


def test_plain_numpy_function_compiles_and_matches_numpy():
    x, w = rand(6, 5), rand(5, 4)
    got = vmapc.compile(plain_numpy)(x, w)
    want = plain_numpy(x, w)
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_one_compile_per_signature():
    c = vmapc.compile(lambda x: np.tanh(x) * 2)
    c(rand(3))
    c(rand(3))
    assert len(c._cache) == 1
    c(rand(4))                       # new shape: new signature
    c(rand(3).astype(np.float64))    # new dtype: new signature
    assert len(c._cache) == 3


def test_python_scalars_and_pytrees():
    def f(params, x, scale):
        return {"y": (x @ params["w"]) * scale, "n": params["b"].sum()}
    params = {"w": rand(3, 2), "b": rand(2)}
    x = rand(3)
    out = vmapc.compile(f)(params, x, 0.5)
    np.testing.assert_allclose(out["y"], (x @ params["w"]) * 0.5, rtol=1e-6)
    assert out["y"].dtype == np.float32          # the Python float is weak
    np.testing.assert_allclose(out["n"], params["b"].sum(), rtol=1e-6)


def test_decorator_form_and_lower_stages():
    @vmapc.compile(in_dims=(0, None))
    def predict(x, w):
        return np.tanh(x @ w)
    x, w = rand(16, 4), rand(4, 3)
    lowered = predict.lower(x, w)
    assert lowered.ir.in_types == [vmapc.TensorType((4,), "float32"), vmapc.TensorType((4, 3), "float32")]
    assert lowered.batched.in_types[0] == vmapc.TensorType((16, 4), "float32")
    assert "@0" in str(lowered.batched)
    assert "func.func @predict" in lowered.mlir and "linalg.matmul" in lowered.mlir
    np.testing.assert_allclose(predict(x, w), np.tanh(x @ w), rtol=1e-5, atol=1e-6)


def test_executable_rejects_other_signatures():
    exe = vmapc.compile(lambda x, w: x @ w).lower(rand(2, 3), rand(3, 4)).compile()
    np.testing.assert_allclose(exe(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)), np.full((2, 4), 3.0))
    with pytest.raises(CallError, match=r"argument 0 has shape \(3, 3\), expected \(2, 3\)"):
        exe(np.ones((3, 3), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(CallError, match=r"argument 1 has dtype float64, expected float32"):
        exe(np.ones((2, 3), np.float32), np.ones((3, 4)))
    with pytest.raises(CallError, match=r"expected 2 array arguments, got 1"):
        exe(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("bad,message", [
    ({1, 2}, r"argument `x` is static \(a set: .*must be hashable"),
    (np.array(["a"], dtype=object), r"argument 0 is a NumPy array of dtype object"),
    (np.array([1 + 2j], np.clongdouble), r"argument 0 has dtype complex256, which vmapc does not support"),
])
def test_compile_rejects_non_arrays(bad, message):
    with pytest.raises(CallError, match=message):
        vmapc.compile(lambda x: x)(bad)


def test_unknown_target():
    with pytest.raises(TargetError, match=r"unknown target 'tpu'"):
        vmapc.compile(lambda x: x, target="tpu")


def mlp(x, w1, w2):
    return np.tanh(np.maximum(x @ w1, 0) @ w2)


W1, W2 = rand(8, 16), rand(16, 3)


def per_example(xs):
    return np.stack([mlp(x, W1, W2) for x in xs]) if len(xs) else np.zeros((0, 3), np.float32)


@pytest.mark.parametrize("size", [1, 2, 7, 13, 64])
def test_dynamic_batch_serves_every_size_with_one_module(size):
    c = _dynamic()
    xs = rand(size, 8)
    np.testing.assert_allclose(c(xs, W1, W2), per_example(xs), rtol=1e-5, atol=1e-5)
    assert len(c._cache) == 1


_DYN = []


def _dynamic():
    if not _DYN:
        _DYN.append(vmapc.compile(mlp, in_dims=(0, None, None), batch="dynamic"))
    return _DYN[0]


def test_dynamic_batch_ir_is_symbolic():
    lowered = _dynamic().lower(rand(5, 8), W1, W2)
    assert str(lowered.batched.in_types[0]) == "f32[B,8]"
    assert "tensor<?x8xf32>" in lowered.mlir


@pytest.mark.parametrize("size", [1, 3, 8, 11, 17])
def test_chunked_batches_match_per_example(size):
    c = _chunked()
    xs = rand(size, 8)
    np.testing.assert_allclose(c(xs, W1, W2), per_example(xs), rtol=1e-5, atol=1e-5)
    assert len(c._cache) == 1          # one module, compiled for chunks of 4


_CHUNKED = []


def _chunked():
    if not _CHUNKED:
        _CHUNKED.append(vmapc.compile(mlp, in_dims=(0, None, None), chunk_size=4))
    return _CHUNKED[0]


def test_chunked_with_out_dims_and_unbatched_output():
    def f(x, w):
        return x @ w, w.sum()
    c = vmapc.compile(f, in_dims=(0, None), out_dims=(1, None), chunk_size=3)
    xs, w = rand(7, 4), rand(4, 2)
    a, b = c(xs, w)
    np.testing.assert_allclose(a, (xs @ w).T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, w.sum(), rtol=1e-5)


def test_batch_options_need_in_dims():
    with pytest.raises(BatchingError, match="need in_dims"):
        vmapc.compile(mlp, batch="dynamic")
    with pytest.raises(BatchingError, match="need in_dims"):
        vmapc.compile(mlp, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        vmapc.compile(mlp, in_dims=0, chunk_size=0)
    with pytest.raises(ValueError, match="batch must be 'static' or 'dynamic'"):
        vmapc.compile(mlp, in_dims=0, batch="big")


def test_compile_of_vmap_uses_its_in_dims():
    c = vmapc.compile(vmapc.vmap(mlp, in_dims=(0, None, None)), batch="dynamic")
    xs = rand(5, 8)
    np.testing.assert_allclose(c(xs, W1, W2), per_example(xs), rtol=1e-5, atol=1e-5)
