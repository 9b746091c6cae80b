"""vmapc.vmap on Python functions: in_dims/out_dims, pytrees, nesting, closures, errors.

Most checks run the batched program on the NumPy reference evaluator (no
compiler); a few call the compiled path that ``vmap(f)(arrays)`` takes.
"""

import numpy as np
import pytest

import vmapc
import vmapc.numpy as vnp
from vmapc import pytree
from vmapc.errors import BatchingError

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.normal(size=shape).astype(dtype)


def run_ref(vm, *args, **kwargs):
    """Batch `vm` (a Vmapped) for these arguments and run it on the reference evaluator."""
    bf, _, out_tree, leaves = vm.trace_batched(args, kwargs)
    flat = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, bf.inputs)]
    return pytree.unflatten(out_tree, vmapc.eval(bf, *flat))


def loop(f, n, *args, in_dims):
    """The per-example oracle: slice each batched argument, call f, stack."""
    outs = []
    for i in range(n):
        ex = [a if d is None else np.take(a, i, axis=d) for a, d in zip(args, in_dims)]
        outs.append(f(*ex))
    return outs


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


# --- behaviour ---------------------------------------------------------------------------------------

def mlp(x, w, b):
    return np.tanh(x @ w + b)


@pytest.mark.parametrize("in_dims", [(0, None, None), (1, None, None), (-1, None, None), (0, 0, None),
                                     (None, 0, 0), (0, 2, 0)])
def test_in_dims_variants(in_dims):
    n = 5
    shapes = [(4,), (4, 3), (3,)]
    norm = [None if d is None else d % (len(s) + 1) for d, s in zip(in_dims, shapes)]
    args = [rand(*s) if d is None else rand(*s[:d], n, *s[d:]) for s, d in zip(shapes, norm)]
    got = run_ref(vmapc.vmap(mlp, in_dims=in_dims), *args)
    close(got, np.stack(loop(mlp, n, *args, in_dims=norm)))


@pytest.mark.parametrize("out_dims", [0, 1, -1])
def test_out_dims(out_dims):
    x = rand(6, 4)
    w = rand(4, 3)
    got = run_ref(vmapc.vmap(lambda x, w: x @ w, in_dims=(0, None), out_dims=out_dims), x, w)
    close(got, np.stack([xi @ w for xi in x], axis=out_dims))


def test_unbatched_output_is_broadcast_and_none_keeps_it():
    def f(x, w):
        return x * 2.0, w.sum()
    x, w = rand(5, 3), rand(4)
    a, b = run_ref(vmapc.vmap(f, in_dims=(0, None)), x, w)
    close(a, x * 2.0)
    close(b, np.full(5, w.sum()))                      # int out_dim: broadcast along the batch
    a, b = run_ref(vmapc.vmap(f, in_dims=(0, None), out_dims=(0, None)), x, w)
    assert b.shape == () and np.allclose(b, w.sum())


def test_axis_size_without_batched_inputs():
    got = run_ref(vmapc.vmap(lambda w: np.tanh(w), in_dims=None, axis_size=3), rand(4))
    assert got.shape == (3, 4)


def test_pytree_in_dims_and_outputs():
    def f(params, x):
        h = x @ params["w"] + params["b"]
        return {"h": h, "pair": (h.sum(), params["b"] * 1.0)}
    n = 4
    params = {"w": rand(n, 3, 2), "b": rand(2)}
    x = rand(3)
    got = run_ref(vmapc.vmap(f, in_dims=({"w": 0, "b": None}, None)), params, x)
    want = [f({"w": params["w"][i], "b": params["b"]}, x) for i in range(n)]
    close(got["h"], np.stack([w["h"] for w in want]))
    close(got["pair"][0], np.stack([w["pair"][0] for w in want]))
    close(got["pair"][1], np.stack([w["pair"][1] for w in want]))


def test_list_argument_with_per_leaf_in_dims():
    def f(xs):
        return xs[0] + xs[1]
    a, b = rand(3, 4), rand(4, 3)
    got = run_ref(vmapc.vmap(f, in_dims=([0, 1],)), [a, b])
    close(got, a + b.T)


def test_keyword_arguments_are_batched_along_zero():
    def f(x, *, scale):
        return x * scale
    x, s = rand(5, 2), rand(5)
    got = run_ref(vmapc.vmap(f, in_dims=(0,)), x, scale=s)
    close(got, x * s[:, None])


def test_python_scalar_argument_with_none_in_dim():
    got = run_ref(vmapc.vmap(lambda x, s: x * s, in_dims=(0, None)), rand(3, 2).astype(np.float32), 2.0)
    assert got.dtype == np.float32     # a Python float stays weak (NEP 50)


def test_nested_vmap_with_different_sizes():
    def dist(a, b):
        return np.sqrt(np.sum((a - b) ** 2))
    xs, ys = rand(4, 3), rand(6, 3)
    m = vmapc.vmap(vmapc.vmap(dist, in_dims=(None, 0)), in_dims=(0, None))
    got = run_ref(m, xs, ys)
    close(got, np.array([[dist(x, y) for y in ys] for x in xs]))


def test_triple_nesting():
    f = lambda a, b, c: a * b + c  # noqa: E731
    a, b, c = rand(2), rand(3), rand(4)
    m = vmapc.vmap(vmapc.vmap(vmapc.vmap(f, in_dims=(None, None, 0)), in_dims=(None, 0, None)),
                   in_dims=(0, None, None))
    got = run_ref(m, a, b, c)
    close(got, a[:, None, None] * b[None, :, None] + c[None, None, :])


def test_inner_vmap_captures_outer_tracer():
    """A closure over a value of the enclosing trace becomes an unbatched input."""
    def outer(x, w):
        return vmapc.vmap(lambda row: np.tanh(row @ w))(x)
    x, w = rand(5, 4), rand(4, 3)
    fn = vmapc.trace(outer, x, w)
    (got,) = vmapc.eval(fn, x, w)
    close(got, np.tanh(x @ w))
    # and inside another vmap (the captured w is batched by the outer one)
    xs, ws = rand(2, 5, 4), rand(2, 4, 3)
    got = run_ref(vmapc.vmap(outer), xs, ws)
    close(got, np.stack([np.tanh(a @ b) for a, b in zip(xs, ws)]))


def test_vmap_of_function_using_vmapc_numpy_and_indexing():
    def f(x, i):
        return vnp.softmax(x)[i] + x[::-1][0]
    x = rand(4, 6)
    i = np.array([0, 3, 5, 1], dtype=np.int64)
    got = run_ref(vmapc.vmap(f), x, i)
    want = [np.exp(r - r.max())[k] / np.exp(r - r.max()).sum() + r[::-1][0] for r, k in zip(x, i)]
    close(got, np.array(want))


def test_vmap_on_ir_function():
    fn = vmapc.trace(lambda x, w: x @ w, vmapc.f32[3], vmapc.f32[3, 2])
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=4)
    assert isinstance(bf, vmapc.Function) and bf.in_types[0] == vmapc.TensorType((4, 3), "float32")
    with pytest.raises(BatchingError, match="needs axis_size"):
        vmapc.vmap(fn, in_dims=0)


# --- the compiled path ---------------------------------------------------------------------------------

def test_vmap_called_on_arrays_compiles_and_caches(vmapc_shared_cache):
    vm = vmapc.vmap(mlp, in_dims=(0, None, None))
    x, w, b = rand(8, 4), rand(4, 3), rand(3)
    close(vm(x, w, b), np.tanh(x @ w + b))
    close(vm(x[:5], w, b), np.tanh(x[:5] @ w + b))
    assert len(vm._compiled._cache) == 2          # one module per batch size (static)


def test_compile_short_form_equals_vmap(vmapc_shared_cache):
    x, w, b = rand(8, 4), rand(4, 3), rand(3)
    c = vmapc.compile(mlp, in_dims=(0, None, None))
    close(c(x, w, b), vmapc.vmap(mlp, in_dims=(0, None, None))(x, w, b))


# --- errors ----------------------------------------------------------------------------------------------

def f2(x, w):
    return x @ w


@pytest.mark.parametrize("in_dims,args,message", [
    ((0, 2), (rand(5, 3), rand(3, 2)), r"vmap: in_dims\[1\] is 2 but argument `w` has rank 2 \(valid: -2\.\.1\)"),
    ((0, -3), (rand(5, 3), rand(3, 2)), r"in_dims\[1\] is -3 but argument `w` has rank 2"),
    ((0, 0), (rand(5, 3), 2.0), r"in_dims\[1\] is 0 but argument `w` is a Python float, not an array"),
    ((0,), (rand(5, 3), rand(3, 2)), r"in_dims has 1 entries but the function was called with 2 positional"),
    ((0, (0, None)), (rand(5, 3), rand(3, 2)), r"in_dims\[1\] at argument `w` is a tuple, but argument `w` is an array, not a container"),
    ((0, "0"), (rand(5, 3), rand(3, 2)), r"in_dims\[1\] must be an int or None, got '0'"),
    ((0, 1.5), (rand(5, 3), rand(3, 2)), r"must be an int or None, got 1\.5"),
    ((0, 0), (rand(5, 3), rand(4, 3, 2)), r"batch sizes disagree: argument `x` has size 5 at axis 0, "
                                          r"argument `w` has size 4 at axis 0"),
    ((None, None), (rand(3), rand(3, 2)), r"no argument is batched .* pass axis_size=N"),
    ((0, 0), (rand(5, 3), np.float32(2.0)), r"argument `w` has rank 0 \(a 0-d array cannot be batched\)"),
])
def test_in_dims_errors(in_dims, args, message):
    with pytest.raises(BatchingError, match=message):
        vmapc.vmap(f2, in_dims=in_dims).trace_batched(args, {})


def test_dict_in_dims_key_mismatch():
    def f(p):
        return p["a"] + p["b"]
    with pytest.raises(BatchingError, match=r"has keys \['a'\] but the value there is a dict with keys \['a', 'b'\]"):
        vmapc.vmap(f, in_dims=({"a": 0},)).trace_batched(({"a": rand(3), "b": rand(3)},), {})


def test_axis_size_errors():
    with pytest.raises(BatchingError, match=r"axis_size is 4 but the batched arguments have size 5"):
        vmapc.vmap(f2, in_dims=(0, None), axis_size=4).trace_batched((rand(5, 3), rand(3, 2)), {})
    with pytest.raises(BatchingError, match=r"axis_size must be a non-negative int"):
        vmapc.vmap(f2, in_dims=(None, None), axis_size=-1).trace_batched((rand(3), rand(3, 2)), {})


@pytest.mark.parametrize("out_dims,message", [
    (None, r"out_dims for output 0 is None, but that output depends on the batched inputs"),
    (3, r"out_dims for output 0 is 3 but the batched output has rank 2 \(valid: -2\.\.1\)"),
    ((0, 0), r"out_dims at the output is a tuple, but the output is an array, not a container"),
    ("x", r"out_dims for output 0 must be an int or None"),
])
def test_out_dims_errors(out_dims, message):
    with pytest.raises(BatchingError, match=message):
        vmapc.vmap(f2, in_dims=(0, None), out_dims=out_dims).trace_batched((rand(5, 3), rand(3, 2)), {})


def test_errors_are_raised_before_compiling():
    """vmap(f)(arrays) reports in_dims mistakes without invoking IREE."""
    with pytest.raises(BatchingError, match="in_dims\\[1\\] is 2"):
        vmapc.vmap(f2, in_dims=(0, 2))(rand(5, 3), rand(3, 2))


def test_vmap_needs_a_function():
    with pytest.raises(vmapc.errors.NotCallableError, match="expected a function"):
        vmapc.vmap(3)
