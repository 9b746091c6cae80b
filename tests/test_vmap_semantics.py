"""vmap semantics after the peers' own test suites (JAX's tests/batching_test.py and the
vmap parts of tests/api_test.py, torch's test/functorch/test_vmap.py), ported to NumPy:
static and traced arguments, objects passed through, closures in nested vmap,
compiled functions inside traces, pytrees, named axes and collectives, and the
errors both peers raise. Expected values come from NumPy over the whole batch or a
per-example Python loop; most checks run the batched program on the reference
evaluator, a few compile (small functions, so the file stays cheap).
"""

import collections
import dataclasses
import functools
import warnings

import numpy as np
import pytest

import vmapc
from vmapc import pytree
from vmapc.errors import BatchingError, CallError, PerformanceWarning

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

RNG = np.random.default_rng(15)


def rand(*shape, dtype=np.float32):
    return RNG.normal(size=shape).astype(dtype)


def run_ref(vm, *args, **kwargs):
    """Batch `vm` (a Vmapped) for these arguments and run it on the reference evaluator."""
    bf, _, out_tree, leaves = vm.trace_batched(args, kwargs)
    flat = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, bf.inputs)]
    return pytree.unflatten(out_tree, vmapc.eval(bf, *flat))


def close(a, b, tol=2e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# --- arguments that are not batched reach the function as they are ---------------------------------

def test_static_axis_argument():
    """jax: vmap(jnp.sum, in_axes=(0, None))(x, 0); torch: vmap(torch.sum, (0, None))(x, 0)."""
    x = rand(5, 3, 4)
    for axis in (0, 1, -1):
        close(run_ref(vmapc.vmap(np.sum, in_dims=(0, None)), x, axis), x.sum(axis=axis % 2 + 1))


def test_function_argument_passes_through():
    """jax issue 183: vmap(lambda f, x: f(x), (None, 0))."""
    x = rand(4, 3)
    apply = vmapc.vmap(lambda f, x: f(x), in_dims=(None, 0))
    close(run_ref(apply, lambda v: v + 1, x), x + 1)
    close(run_ref(apply, np.tanh, x), np.tanh(x))
    close(run_ref(apply, functools.partial(np.multiply, 3.0), x), 3 * x)


def test_strings_tuples_and_objects_pass_through():
    class Config:
        scale = 2.5
        mode = "neg"

    def f(x, mode, shape, shift, cfg):
        y = x.reshape(shape) * cfg.scale
        y = np.roll(y, shift, axis=0)
        return -y if mode == "neg" else y
    x = rand(6, 2, 3)
    got = run_ref(vmapc.vmap(f, in_dims=(0, None, None, None, None)), x, "neg", (3, 2), 1, Config())
    close(got, np.stack([-np.roll(r.reshape(3, 2) * 2.5, 1, axis=0) for r in x]))


def test_python_number_with_none_in_dim():
    """torch: vmap(torch.mul, (0, None))(x, 2); the number stays weak (float32 result)."""
    x = rand(3, 4)
    for s in (2, 2.0, True):
        got = run_ref(vmapc.vmap(np.multiply, in_dims=(0, None)), x, s)
        assert got.dtype == np.float32
        close(got, x * s)


def test_inner_vmap_passes_unbatched_values_through():
    """Inside a trace every unbatched argument reaches the function as it is: an outer
    tracer keeps its weak type, an int stays an int usable as an axis."""
    def outer(x, axis):
        return vmapc.vmap(lambda r, a, s: np.sum(r, axis=a) * s, in_dims=(0, None, None))(x, axis, 0.5)
    x = rand(3, 4, 5)
    close(run_ref(vmapc.vmap(outer, in_dims=(0, None)), rand(2, 3, 4, 5) * 0 + x, 1),
          np.stack([x.sum(axis=2) * 0.5] * 2))


def test_unbatched_traced_float_stays_weak_in_an_inner_vmap():
    """compile traces a Python float weakly; handed unbatched to an inner vmap it stays
    weak there (x * s keeps float32), as a Python float would."""
    def outer(x, s):
        return vmapc.vmap(lambda r, t: r * t + t, in_dims=(0, None))(x, s)
    fn = vmapc.trace(outer, vmapc.f32[4, 3], 2.0)
    assert fn.out_types[0].dtype == np.float32 and fn.in_types[1].dtype == np.float64
    x = rand(4, 3)
    close(vmapc.eval(fn, x, np.float64(2.0))[0], x * 2 + 2)


def test_traced_floats_and_static_ints_in_the_cache():
    """The rules of docs/vmap.md: a Python float is traced (one module for every value),
    a Python int is static (one module per value), np.int64 is traced."""
    seen = []

    def f(x, s):
        seen.append(type(s).__name__)
        return x * s
    c = vmapc.compile(f)
    x = rand(3)
    key = c.cache_key
    assert key(x, 2.0) == key(x, 3.0) and key(x, 2) != key(x, 3) and key(x, 2) != key(x, 2.0)
    assert key(x, np.int64(4)) == key(x, np.int64(5)) != key(x, 4)
    close(c(x, 2.0), x * 2.0)
    close(c(x, 3.0), x * 3.0)
    close(c(x, 3), x * 3)
    assert len(c._cache) == 2 and seen == ["Tracer", "int"]
    c.lower(x, np.int64(4))
    assert seen[2:] == ["Tracer"]


def test_static_int_kernel_compiles_unchanged_and_batches_over_arrays():
    """A kernel written as NumPy kernels are (npbench): sizes and step counts are Python
    ints used in range(), shapes and slices."""
    def kernel(TSTEPS, N, A, B):
        acc = np.zeros((N, N), dtype=A.dtype)
        for t in range(TSTEPS):
            inner = 0.25 * (A[:-2, 1:-1] + A[2:, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:])
            A = np.pad(inner, 1) + B * (t + 1)
            acc = acc + A[:N, :N]
        return acc / TSTEPS

    def reference(TSTEPS, N, A, B):       # the same kernel, run by NumPy
        acc = np.zeros((N, N), dtype=A.dtype)
        for t in range(TSTEPS):
            inner = 0.25 * (A[:-2, 1:-1] + A[2:, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:])
            A = np.pad(inner, 1) + B * (t + 1)
            acc = acc + A[:N, :N]
        return acc / TSTEPS

    A, B = rand(4, 8, 8), rand(4, 8, 8) * 0.1
    batched = vmapc.compile(kernel, in_dims=(None, None, 0, 0))
    for tsteps, n in ((3, 6), (2, 8)):
        close(batched(tsteps, n, A, B), np.stack([reference(tsteps, n, a, b) for a, b in zip(A, B)]), 1e-4)
    assert len(batched._cache) == 2          # one module per (TSTEPS, N)
    assert len(batched.lower(3, 6, A, B).batched.inputs) == 2     # A and B; the ints are not inputs
    for tsteps, n in ((3, 6), (2, 8), (3, 6)):  # again: the fast path, keyed by the ints too
        close(batched(tsteps, n, A, B), np.stack([reference(tsteps, n, a, b) for a, b in zip(A, B)]), 1e-4)
    assert len(batched._fast) == 2 and len(batched._cache) == 2
    chunked = vmapc.compile(kernel, in_dims=(None, None, 0, 0), chunk_size=3)
    for _ in range(2):                       # 4 examples: a full chunk and a padded one
        close(chunked(2, 8, A, B), np.stack([reference(2, 8, a, b) for a, b in zip(A, B)]), 1e-4)


def test_many_static_values_warn_once():
    c = vmapc.compile(lambda x, tag: x + len(tag))
    x = rand(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(vmapc.arguments.MANY_VALUES + 3):
            close(c(x, "t" * (i % 2) + str(i)), x + len("t" * (i % 2) + str(i)))
    perf = [w for w in caught if issubclass(w.category, PerformanceWarning)]
    assert len(perf) == 1
    assert "compiled for 9 different values of its static arguments (now tag='8')" in str(perf[0].message)


# --- compile(static_argnums=, static_argnames=), as jax.jit ----------------------------------------

def test_static_argnums_are_part_of_the_cache_key():
    """jax test_static_args: a new static value traces again, the same one does not."""
    side = []

    def f(x, y, z, flag=False, flag2=False):
        side.append((flag, flag2))
        assert flag
        return 100 * x + 10 * y + z
    one, two, three = (np.float32(v) for v in (1, 2, 3))
    f1 = vmapc.compile(f, static_argnums=(3, 4))
    assert f1(one, two, three, True, False) == 123
    assert f1(two, one, three, True, False) == 213 and len(side) == 1
    assert f1(two, one, three, True, True) == 213 and len(side) == 2
    side.clear()
    f2 = vmapc.compile(f, static_argnums=(0, 2, 3, 4))
    assert f2(1.0, two, 3.0, True, False) == 123 and len(side) == 1
    assert f2(1.0, np.float32(3), 3.0, True, False) == 133 and len(side) == 1
    assert f2(2.0, two, 3.0, True, False) == 223 and len(side) == 2


def test_static_argnums_and_argnames_name_each_other():
    """jax test_jit_with_static_argnames: static_argnums=0 also covers x=..., and back."""
    def f(x, y):
        assert x == "foo"
        return y * 2
    y = rand(3)
    for c in (vmapc.compile(f, static_argnums=0), vmapc.compile(f, static_argnames="x")):
        close(c("foo", y), y * 2)
        close(c(x="foo", y=y), y * 2)
    g = vmapc.compile(lambda x, y: x * y, static_argnums=-1)       # negative, as jax
    close(g(y, 3.0), y * 3)
    assert isinstance(g.lower(y, 3.0).ir, vmapc.Function) and len(g.lower(y, 3.0).ir.inputs) == 1


def test_static_values_compare_by_type_and_value():
    """jax test_jit_static_argnums_requires_type_equality: 1, True and 1.0 are different
    keys; equal objects share one (test_static_args_equality)."""
    traced = []

    def f(x, k):
        traced.append(k)
        return x * 2
    c = vmapc.compile(f, static_argnums=1)
    x = rand(2)
    for k in (1, True, 1.0, 1, True, 1.0):
        c(x, k)
    assert [type(k) for k in traced] == [int, bool, float]

    class A:
        def __hash__(self):
            return 1

        def __eq__(self, other):
            return isinstance(other, A)
    c(x, A())
    c(x, A())
    assert len(traced) == 4


def test_declared_static_array_needs_a_hashable_value():
    c = vmapc.compile(lambda x, y: x + 3, static_argnums=1)
    with pytest.raises(CallError, match=r"argument `y` is static .* must be hashable"):
        c(rand(2), np.asarray(1))


def test_static_argnums_validation():
    def f(a, b, c):
        return a
    vmapc.compile(f, static_argnums=(0, 1, -3))
    for bad in (3, -4):
        with pytest.raises(CallError, match="out of range"):
            vmapc.compile(f, static_argnums=bad)
    vmapc.compile(lambda a, *args: a, static_argnums=(0, 999))        # *args: any index
    with pytest.raises(CallError, match="not a parameter"):
        vmapc.compile(f, static_argnames=("b", "not_defined"))
    vmapc.compile(lambda a, **kw: a, static_argnames="not_defined")   # **kwargs: any name
    with pytest.raises(CallError, match="must be an int or a sequence"):
        vmapc.compile(f, static_argnums="a")


def test_static_argnums_with_in_dims():
    """A declared static argument is not batched; an int in_dims skips it."""
    f = vmapc.compile(lambda x, n: np.sum(x[:n]), in_dims=0, static_argnums=1)
    x = rand(4, 6)
    close(f(x, 3), x[:, :3].sum(1))
    g = vmapc.compile(lambda x, eps, scale=1.0: x * eps * scale, in_dims=(0, None), static_argnums=1,
                      static_argnames="scale")
    lowered = g.lower(x, 0.5, scale=2.0)       # floats, but declared static: no inputs for them
    assert len(lowered.batched.inputs) == 1
    assert len(g.lower(x, 0.5).batched.inputs) == 1


# --- closures and nesting --------------------------------------------------------------------------

def test_outer_product_closure_two_and_three_levels():
    """torch test_nested_with_different_map_dim: the inner vmap closes over the outer
    vmap's value whatever its own arguments are (here a NumPy array)."""
    x, y, z = rand(2, 3), rand(5, 3), rand(7, 3)
    got = run_ref(vmapc.vmap(lambda a: vmapc.vmap(lambda b: a * b)(y)), x)
    assert got.shape == (2, 5, 3)
    close(got, x[:, None] * y)
    got = run_ref(vmapc.vmap(lambda a: vmapc.vmap(lambda b: vmapc.vmap(lambda c: a * b * c)(z))(y)), x)
    assert got.shape == (2, 5, 7, 3)
    close(got, x[:, None, None] * y[None, :, None] * z)


def test_noop_in_inner_vmap():
    """torch: vmap(lambda x: vmap(lambda y: x)(y))(x) broadcasts x along the inner batch."""
    x, y = rand(3), rand(5)
    close(run_ref(vmapc.vmap(lambda a: vmapc.vmap(lambda b: a)(y)), x), np.broadcast_to(x[:, None], (3, 5)))


def test_inner_vmap_closure_under_compile():
    """The outer-product pattern compiled: vmap over ys inside a compiled function of x."""
    ys = rand(4, 3)
    f = vmapc.compile(lambda x: vmapc.vmap(lambda b: np.dot(x, b))(ys))
    x = rand(3)
    close(f(x), ys @ x)


def test_batch_rule_does_not_need_a_batched_input():
    """torch: an inner vmap whose operands are unbatched in the outer one."""
    def f(x, y):
        return x + np.dot(y, np.ones(2, np.float32))
    x, y = rand(7, 5), rand(3, 2)
    got = run_ref(vmapc.vmap(vmapc.vmap(f, in_dims=(0, None)), in_dims=(None, 0)), x, y)
    close(got, (y @ np.ones(2, np.float32))[:, None, None] + x)


def test_compiled_function_inside_vmap_traces_once():
    """jax testBatchOfCompile: compile(vmap(compiled f)) inlines f's program; f is traced
    once, and again only for a new signature."""
    side = []

    @vmapc.compile
    def f(x):
        side.append(None)
        return x + x
    g = vmapc.compile(vmapc.vmap(f))
    close(g(np.ones(2, np.float32)), 2 * np.ones(2))
    assert len(side) == 1
    close(g(2 * np.ones(2, np.float32)), 4 * np.ones(2))
    assert len(side) == 1
    close(run_ref(vmapc.vmap(lambda x: f(x) * 3), rand(2, 3) * 0 + 1), np.full((2, 3), 6.0))


def test_compiled_function_with_in_dims_inside_compile():
    inner = vmapc.compile(lambda r, w: np.tanh(r @ w), in_dims=(0, None))
    outer = vmapc.compile(lambda x, w: inner(x, w).sum())
    x, w = rand(5, 4), rand(4, 3)
    close(outer(x, w), np.tanh(x @ w).sum(), 1e-4)


def test_make_trace_closing_over_a_batched_value():
    """jax test_vmap_make_jaxpr_close_over_tracer: tracing inside vmap over a closure."""
    def run(inp):
        fn = vmapc.trace(lambda x: x + inp, vmapc.f32[()])
        return fn.outputs[0].rank
    assert run(np.float32(1)) == 0
    xs = rand(2)
    close(run_ref(vmapc.vmap(lambda v: vmapc.vmap(lambda x: x + v, in_dims=None, axis_size=3)(np.float32(1))), xs),
          np.broadcast_to((xs + 1)[:, None], (2, 3)))


# --- pytrees ---------------------------------------------------------------------------------------

Point = collections.namedtuple("Point", ["x", "y"])


def test_structured_in_dims_with_namedtuple_and_ordered_dict():
    """jax test_vmap_structured_in_axes."""
    K, A, B, C, D = 6, 2, 3, 4, 5
    x, y, z = np.ones((K, A, B), np.float32), rand(B, K, C), rand(C, D, K)

    def foo(tree):
        a, (b, c) = tree
        return np.dot(a, np.dot(b, c))

    def want(y, z):
        return np.stack([np.ones((A, B)) @ (y[:, k] @ z[..., k]) for k in range(K)])
    close(run_ref(vmapc.vmap(foo, in_dims=((0, (1, 2)),)), (x, (y, z))), want(y, z), 1e-4)
    close(run_ref(vmapc.vmap(foo, in_dims=((0, Point(1, 2)),)), (x, Point(y, z))), want(y, z), 1e-4)

    def bar(tree):
        a, d = tree
        return np.dot(a, np.dot(d["a"], d["b"]))
    close(run_ref(vmapc.vmap(bar, in_dims=((0, {"a": 1, "b": 2}),)), (x, {"a": y, "b": z})), want(y, z), 1e-4)
    od = collections.OrderedDict([("a", y), ("b", z)])
    close(run_ref(vmapc.vmap(bar, in_dims=((0, collections.OrderedDict([("a", 1), ("b", 2)])),)), (x, od)),
          want(y, z), 1e-4)


def test_namedtuple_round_trip():
    def f(p):
        return Point(p.x * 2, p.x + p.y)
    p = Point(rand(4, 3), rand(4, 3))
    got = run_ref(vmapc.vmap(f), p)
    assert type(got) is Point
    close(got.x, p.x * 2)
    close(got.y, p.x + p.y)
    got = run_ref(vmapc.vmap(f, in_dims=(Point(0, None),), out_dims=Point(1, 0)), Point(p.x, p.y[0]))
    close(got.x, (p.x * 2).T)
    close(got.y, p.x + p.y[0])


def test_ordered_dict_returns():
    """torch test_pytree_odict_returns: an OrderedDict comes back as one, in its order."""
    x = rand(2, 3)

    def f(t):
        return collections.OrderedDict([("sin", np.sin(t)), ("cos", np.cos(t))])
    out = run_ref(vmapc.vmap(f), x)
    assert type(out) is collections.OrderedDict and list(out) == ["sin", "cos"]
    close(out["sin"], np.sin(x))
    close(out["cos"], np.cos(x))
    out = vmapc.vmap(f)(x)                                    # compiled too
    assert type(out) is collections.OrderedDict and list(out) == ["sin", "cos"]
    close(out["cos"], np.cos(x))


def test_nested_pytree_returns_and_out_dims_prefixes():
    """torch test_pytree_returns, _returns_outdims, _broadcast_simple/_nested."""
    x = rand(2, 3)

    def f(t):
        y = np.sin(t)
        return y, (y, y), [y, (y, y)]
    y0, (y1, y2), (y3, (y4, y5)) = run_ref(vmapc.vmap(f), x)
    for y in (y0, y1, y2, y3, y4, y5):
        close(y, np.sin(x))

    def g(t):
        y = np.sin(t)
        return y, (y, y)
    y0, (y1, y2) = run_ref(vmapc.vmap(g, out_dims=(0, (0, 1))), x)
    close(y0, np.sin(x)), close(y1, np.sin(x)), close(y2, np.sin(x).T)
    y0, (y1, y2) = run_ref(vmapc.vmap(g, out_dims=1), x)
    close(y0, np.sin(x).T), close(y2, np.sin(x).T)
    y0, (y1, y2) = run_ref(vmapc.vmap(g, out_dims=(0, 1)), x)
    close(y0, np.sin(x)), close(y1, np.sin(x).T), close(y2, np.sin(x).T)


def test_out_dims_edge_cases():
    """torch: out_dims=(1,) for one output; non-array outputs with out_dims None come
    back as they are (test_out_dims_none_tuple); an unbatched array output with
    out_dims None is returned once (test_out_dims_normal_tensor)."""
    x = rand(2, 3)
    close(run_ref(vmapc.vmap(lambda t: t, out_dims=(1,)), x), x.T)
    a, b = run_ref(vmapc.vmap(lambda t: (t, "hello world"), out_dims=(0, None)), x)
    close(a, x)
    assert b == "hello world"
    assert run_ref(vmapc.vmap(lambda t: (None, "hello world"), out_dims=(None, None)), x) == (None, "hello world")
    assert run_ref(vmapc.vmap(lambda t: "hello world", out_dims=None), x) == "hello world"
    got = run_ref(vmapc.vmap(lambda t: np.arange(3), out_dims=None), x)
    np.testing.assert_array_equal(got, np.arange(3))
    a, b = vmapc.vmap(lambda t: (t * 2, "hello"), out_dims=(0, None))(x)     # compiled
    close(a, x * 2)
    assert b == "hello"


def test_none_leaves():
    def f(x, nothing, pair):
        assert nothing is None and pair[1] is None
        return {"y": x + pair[0], "none": None}
    x, b = rand(3, 2), rand(2)
    out = run_ref(vmapc.vmap(f, in_dims=(0, None, (None, None))), x, None, (b, None))
    assert out["none"] is None
    close(out["y"], x + b)


@vmapc.pytree.register_dataclass
@dataclasses.dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray
    activation: str = dataclasses.field(default="tanh", metadata={"static": True})


class Pair:
    """A user class registered with vmapc.pytree.register."""

    def __init__(self, a, b):
        self.a, self.b = a, b


pytree.register(Pair, lambda p: ([p.a, p.b], None), lambda aux, kids: Pair(*kids), names=("a", "b"))


def test_registered_dataclass_round_trip():
    def f(layer, x):
        act = np.tanh if layer.activation == "tanh" else (lambda v: v)
        return Layer(act(x @ layer.w + layer.b), layer.b * 2, layer.activation)
    layer = Layer(rand(3, 2), rand(2), "tanh")
    xs = rand(5, 3)
    out = run_ref(vmapc.vmap(f, in_dims=(None, 0), out_dims=Layer(0, None)), layer, xs)
    assert type(out) is Layer and out.activation == "tanh"
    close(out.w, np.tanh(xs @ layer.w + layer.b))
    close(out.b, layer.b * 2)
    stacked = Layer(rand(4, 3, 2), rand(4, 2), "linear")                 # an ensemble of layers
    out = vmapc.vmap(f, in_dims=(Layer(0, 0), None))(stacked, xs[0])      # compiled
    assert out.activation == "linear"
    close(out.w, np.stack([xs[0] @ w + b for w, b in zip(stacked.w, stacked.b)]), 1e-4)
    assert pytree.flatten(stacked)[1] != pytree.flatten(Layer(stacked.w, stacked.b, "tanh"))[1]


def test_registered_class_in_dims_and_outputs():
    p = Pair(rand(4, 3), rand(3))
    out = run_ref(vmapc.vmap(lambda q: Pair(q.a * q.b, q.b + 1), in_dims=(Pair(0, None),), out_dims=Pair(0, None)), p)
    assert type(out) is Pair
    close(out.a, p.a * p.b)
    close(out.b, p.b + 1)
    with pytest.raises(BatchingError, match=r"out_dims for output 1 is None, but that output depends"):
        run_ref(vmapc.vmap(lambda q: Pair(q.a, q.a), in_dims=(Pair(0, None),), out_dims=Pair(0, None)), p)


@pytest.mark.parametrize("in_dims,arg,message", [
    (((0, 0),), [1, 2], r"in_dims\[0\] at argument `z` is a tuple, but argument `z` is a list of 2"),
    (([0, 0],), (1, 2), r"in_dims\[0\] at argument `z` is a list, but argument `z` is a tuple of 2"),
    (([0],), [1, 2], r"in_dims\[0\] at argument `z` has 1 entries but the value there is a list of 2"),
    (((0, 0),), Point(1, 2), r"is a tuple, but argument `z` is a Point \(namedtuple\)"),
    (([0],), 1, r"in_dims\[0\] at argument `z` is a list, but argument `z` is an array, not a container"),
    (({"x": 0, "y": 0},), {"x": 1, "z": 2}, r"has keys \['x', 'y'\] but the value there is a dict with keys"),
])
def test_strict_prefix_checks(in_dims, arg, message):
    """Both peers raise for a container of another kind than the value's."""
    x = rand(3)
    value = pytree.unflatten(pytree.flatten(arg)[1], [x] * len(pytree.flatten(arg)[0]))
    with pytest.raises(BatchingError, match=message):
        vmapc.vmap(lambda z: z, in_dims=in_dims).trace_batched((value,), {})


def test_top_level_in_dims_list_is_a_tuple():
    """jax test_vmap_in_axes_list: a list of per-argument in_dims works like a tuple."""
    d = {"a": 5.0, "b": np.ones(2, np.float32)}
    x, y = np.zeros(3, np.float32), np.arange(3, dtype=np.float32)

    def f(dct, x, y):
        return dct["a"] + dct["b"] + x[..., None] + y[..., None]
    close(run_ref(vmapc.vmap(f, [None, 0, 0]), d, x, y), run_ref(vmapc.vmap(f, (None, 0, 0)), d, x, y))


def test_pytree_flatten_order_and_paths():
    tree = {"b": Point(1, [2, 3]), "a": collections.OrderedDict([("z", 4), ("y", None)]), "c": Pair(5, 6)}
    leaves, td = pytree.flatten(tree)
    assert leaves == [4, 1, 2, 3, 5, 6]          # dicts by sorted key, OrderedDict by insertion
    assert pytree.leaf_paths(td, "t") == ["t['a']['z']", "t['b'].x", "t['b'].y[0]", "t['b'].y[1]", "t['c'].a",
                                          "t['c'].b"]
    back = pytree.unflatten(td, leaves)
    assert type(back["b"]) is Point and type(back["a"]) is collections.OrderedDict and back["a"]["y"] is None
    assert type(back["c"]) is Pair and back["c"].b == 6


# --- named axes and collectives --------------------------------------------------------------------

@pytest.mark.parametrize("collective,bulk", [(vmapc.psum, np.sum), (vmapc.pmax, np.max), (vmapc.pmin, np.min)])
@pytest.mark.parametrize("names,reduce_over", [
    (("i",), ("i",)), (("i", "j"), ("j",)), (("i", "j"), ("j", "i")), (("i", "j", "k"), ("k", "i")),
    (("i", "j", "k"), ("j", "k", "i"))])
def test_commutative_collectives_over_nested_names(collective, bulk, names, reduce_over):
    """jax testCommAssocCollective: vmaps applied in the order of `names`, each with
    in_dims = out_dims = its position, and a collective over a subset of them."""
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2) * np.float32(1.5) - 3
    f = lambda v: v - collective(v, reduce_over)  # noqa: E731
    for i, name in enumerate(names):
        f = vmapc.vmap(f, axis_name=name, in_dims=i, out_dims=i)
    axes = tuple(i for i, n in enumerate(names) if n in reduce_over)
    close(run_ref(f, x), x - bulk(x, axis=axes, keepdims=True))


def test_axis_index_and_axis_size():
    """jax testAxisIndex; psum(1, name) is the axis size (a Python number)."""
    x = np.arange(10, dtype=np.int32)
    got = run_ref(vmapc.vmap(lambda v: v - vmapc.axis_index("i"), axis_name="i"), x)
    np.testing.assert_array_equal(got, x - np.arange(10, dtype=np.int32))
    assert got.dtype == np.int32
    sizes = []
    run_ref(vmapc.vmap(lambda v: sizes.append((vmapc.psum(1, "i"), vmapc.axis_size("i"))) or v, axis_name="i"), x)
    assert sizes == [(10, 10)]


def test_all_gather_to_unmapped_and_nested():
    """jax testAllGatherToUnmapped, testBatchedAllGather, testAllGatherTiled, testAllGatherOfConst."""
    x = np.arange(15, dtype=np.float32).reshape(3, 5)
    f = lambda v: vmapc.all_gather(v, "i")  # noqa: E731
    np.testing.assert_array_equal(run_ref(vmapc.vmap(f, axis_name="i", in_dims=1, out_dims=None), x), x.T)
    np.testing.assert_array_equal(run_ref(vmapc.vmap(vmapc.vmap(f, axis_name="i", out_dims=None), axis_name="j"), x), x)
    np.testing.assert_array_equal(run_ref(vmapc.vmap(vmapc.vmap(f, axis_name="j"), axis_name="i", out_dims=None), x),
                                  x.T)
    y = np.arange(60, dtype=np.float32).reshape(4, 3, 5)
    tiled = lambda v: vmapc.all_gather(v, "i", tiled=True)  # noqa: E731
    np.testing.assert_array_equal(run_ref(vmapc.vmap(tiled, axis_name="i", in_dims=1, out_dims=None), y),
                                  y.transpose(1, 0, 2).reshape(-1, 5))
    a, b = run_ref(vmapc.vmap(lambda v: (vmapc.all_gather(np.ones_like(v), "i"), vmapc.all_gather(1, "i")),
                              axis_name="i", in_dims=1, out_dims=None), x)
    np.testing.assert_array_equal(a, np.ones((5, 3)))
    np.testing.assert_array_equal(b, np.ones(5))
    g = run_ref(vmapc.vmap(lambda v: vmapc.all_gather(v, "i", axis=1), axis_name="i", out_dims=None), x)
    np.testing.assert_array_equal(g, x.T)


def test_batch_statistics_against_numpy():
    """Per-example normalization against the batch (batch norm), on the reference
    evaluator and compiled, against NumPy over the whole batch."""
    def normalize(x):
        mean = vmapc.pmean(x, "batch")
        var = vmapc.pmean((x - mean) ** 2, "batch")
        return (x - mean) / np.sqrt(var + 1e-5), vmapc.pmax(np.abs(x), "batch")
    xs = rand(16, 8) * 3 + 1
    want = (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5)
    vm = vmapc.vmap(normalize, axis_name="batch", out_dims=(0, None))
    y, m = run_ref(vm, xs)
    close(y, want, 1e-4)
    close(m, np.abs(xs).max(0))
    dyn = vmapc.compile(normalize, in_dims=0, out_dims=(0, None), axis_name="batch", batch="dynamic")
    for n in (16, 5):
        y, m = dyn(xs[:n])
        close(y, (xs[:n] - xs[:n].mean(0)) / np.sqrt(xs[:n].var(0) + 1e-5), 1e-4)
        close(m, np.abs(xs[:n]).max(0))


def test_pmean_of_ints_is_float64_like_np_mean():
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    got = run_ref(vmapc.vmap(lambda v: vmapc.pmean(v, "i"), axis_name="i", out_dims=None), x)
    assert got.dtype == np.float64
    close(got, x.mean(0))


def test_collective_of_an_outer_axis_inside_an_unnamed_vmap():
    """A collective over the outer axis from inside an unnamed inner vmap stays in the
    inner program, batched, until the outer vmap that binds the name reduces it."""
    x = rand(3, 4)

    def row(r):
        return vmapc.vmap(lambda v: v - vmapc.psum(v, "rows"))(r)
    close(run_ref(vmapc.vmap(row, axis_name="rows"), x), x - x.sum(0))


def test_collective_errors():
    x = rand(4, 3)
    with pytest.raises(BatchingError, match=r"axis name 'b' is not bound .*bound here: none"):
        vmapc.trace(lambda v: vmapc.psum(v, "b"), vmapc.f32[3])
    with pytest.raises(BatchingError, match=r"axis name 'b' is not bound"):
        vmapc.psum(x, "b")
    with pytest.raises(BatchingError, match=r"all_gather: give one axis name"):
        run_ref(vmapc.vmap(vmapc.vmap(lambda v: vmapc.all_gather(v, ("i", "j")), axis_name="j"), axis_name="i"),
                rand(2, 2, 3))
    with pytest.raises(BatchingError, match=r"out_dims for output 0 is None, but that output depends"):
        run_ref(vmapc.vmap(lambda v: v, out_dims=None, axis_name="foo"), x)
    fn = vmapc.trace(lambda v: v * 2, vmapc.f32[3])
    unbound = vmapc.ir.Function(fn.inputs, [vmapc.ir.Eqn("psum", fn.inputs, [vmapc.ir.Var(fn.inputs[0].type)],
                                                       {"axis_name": "z"})], [], name="unbound")
    unbound.outputs = unbound.eqns[0].outputs
    with pytest.raises(BatchingError, match=r"psum\[axis_name='z'\]: the axis name 'z' is not bound"):
        vmapc.eval(unbound, np.ones(3, np.float32))
    with pytest.raises(vmapc.errors.LoweringError, match=r"psum\[axis_name='z'\]: the axis name 'z' is not bound"):
        vmapc.lowering.lower([unbound])
    batched = vmapc.vmap(unbound, in_dims=0, axis_size=4, axis_name="z")      # binding it gives it a meaning
    close(vmapc.eval(batched, x)[0], np.broadcast_to(x.sum(0), (4, 3)))


def test_a_wrong_collective_rule_is_caught_by_the_sweep(monkeypatch):
    """The collective oracle is not vacuous: a psum rule that forgets to reduce fails."""
    from vmapc import rules, testing
    monkeypatch.setitem(rules.BATCH_RULES, "psum", lambda b, args, bdims, axis_name: ([args[0]], [bdims[0]]))
    sample = next(s for s in testing.op_samples("few") if s.fn.eqns[0].op == "psum")
    failures = 0
    for case in testing.vmap_cases(sample, np.random.default_rng(0), out_dims=(0,), nested=False,
                                   all_in_dims=False):
        try:
            testing.assert_outputs_match(case, testing.run_reference(case))
        except AssertionError:
            failures += 1
    assert failures > 0


# --- messages both peers give ------------------------------------------------------------------------

def test_inconsistent_sizes_with_a_function_argument():
    """jax test_vmap_inconsistent_sizes_constructs_proper_error_message: the sizes, not
    the ufunc passed along, are the problem."""
    def f(x1, x2, g):
        return g(x1, x2)
    with pytest.raises(BatchingError, match=r"batch sizes disagree: argument `x1` has size 2 at axis 0, "
                                            r"argument `x2` has size 3 at axis 0"):
        vmapc.vmap(f, (0, 0, None))(np.ones(2, np.float32), np.ones(3, np.float32), np.add)
    with pytest.raises(BatchingError, match=r"argument `x1` has size 2 at axis 0, argument `x2` has size 3"):
        vmapc.vmap(np.add)(np.ones(2, np.float32), np.ones(3, np.float32))
    with pytest.raises(BatchingError, match=r"argument `x` has size 1 at axis 0, keyword argument|"
                                            r"argument `x` has size 1 at axis 0, argument `y` has size 2"):
        vmapc.vmap(lambda x, y: x + y)(np.ones(1, np.int32), y=np.ones(2, np.int32))


def test_vmap_keyword_arguments():
    """jax testVmapKwargs (issue 912)."""
    def f(a, b):
        return 2 * a, 3 * b
    x = run_ref(vmapc.vmap(f), np.array([1]), np.array([2]))
    y = run_ref(vmapc.vmap(f), a=np.array([1]), b=np.array([2]))
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("in_dims,message", [
    ({"a": 0}, r"in_dims must be an int, None, or a tuple with one entry per positional argument, got a dict"),
    (False, r"in_dims must be an int, None, or a tuple .* got a Python bool False"),
    ("lol", r"got a str 'lol'"),
    ((np.array([1.0, 2.0]),), r"in_dims\[0\] must be an int or None, got array"),
])
def test_in_dims_leaf_types(in_dims, message):
    with pytest.raises(BatchingError, match=message):
        vmapc.vmap(lambda x: x, in_dims=in_dims)(np.ones(2, np.float32))


@pytest.mark.parametrize("out_dims,message", [
    ("lol", r"out_dims for output 0 must be an int or None, got 'lol' \(a str\)"),
    (("lol",), r"out_dims for output 0 must be an int or None, got 'lol'"),
    ((np.array([1.0, 2.0]),), r"out_dims for output 0 must be an int or None"),
    ((0, 0), r"out_dims at the output is a tuple, but the output is an array"),
])
def test_out_dims_leaf_types(out_dims, message):
    with pytest.raises(BatchingError, match=message):
        run_ref(vmapc.vmap(lambda x: x, out_dims=out_dims), np.ones(2, np.float32))


def test_missing_and_empty_arguments():
    """torch test_func_with_no_inputs, jax test_vmap_empty_arguments."""
    with pytest.raises(BatchingError, match=r"missing a required argument: 'x'"):
        vmapc.vmap(lambda x: x)()
    with pytest.raises(BatchingError, match=r"called with no array arguments \(args=\(\{\},\)"):
        vmapc.vmap(lambda x: x)({})
    with pytest.raises(BatchingError, match=r"called with no array arguments"):
        vmapc.vmap(lambda: np.ones(3))()
    close(run_ref(vmapc.vmap(lambda: np.ones(3, np.float32), axis_size=2)), np.ones((2, 3)))
    with pytest.raises(BatchingError, match=r"in_dims is 0 but argument `axis` is a Python int, not an array"):
        vmapc.vmap(np.sum)(np.ones((2, 3)), 0)


def test_non_array_output_with_an_int_out_dim():
    """jax testNonJaxTypedOutput, torch test_non_tensor_output_raises."""
    with pytest.raises(BatchingError, match=r"out_dims at the output is 0, but the function returned a str"):
        run_ref(vmapc.vmap(lambda x: "hello"), np.arange(5.0))
    close(run_ref(vmapc.vmap(lambda x: 3.0), np.arange(5.0)), np.full(5, 3.0))   # a number is an array (jax)


def test_docs_vmap_md_examples_run():
    """Every ``python`` block of docs/vmap.md runs as written (each in a fresh
    namespace) and its asserts hold: the page's examples stay true."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "vmap.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 4, "docs/vmap.md lost its examples"
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/vmap.md[python block {i}]", "exec"), {"__name__": f"vmap_md_{i}"})
