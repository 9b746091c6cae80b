"""NumPy code that writes into arrays, against NumPy: the values a function returns AND the
final contents of every argument it writes into (and every alias and view, through what
the functions return).

Each form is a plain NumPy function ``f(*args)``. NumPy runs it on copies of the arguments;
vmapc traces it (writes into arguments become extra outputs, see vmapc.writeback) and runs
it on the reference evaluator, then compiled (all forms merged into one module), then
batched: the in_dims sweep and nested vmap of design.md section 8 on the reference
evaluator, in_dims all 0 compiled, and through ``vmapc.compile`` with the write-back into
the caller's arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

import vmapc
from vmapc import pytree, testing
from vmapc.errors import BatchingError, CallError, ReadOnlyError, VmapcError

RNG = np.random.default_rng(14)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def i64(lo, hi, *shape):
    return RNG.integers(lo, hi, shape)


FORMS: dict = {}


def form(*args):
    """Register f(*args) as a write form (args: one example's arrays)."""
    def deco(f):
        FORMS[f.__name__] = (f, args)
        return f
    return deco


# --- basic indexing ------------------------------------------------------------------------------

@form(f32(4, 5), f32(5))
def int_and_negative(x, v):
    x[1] = v
    x[-1, 2] = 7.0
    x[0][3] = -1.0            # through the row view


@form(f32(6, 5), f32(3))
def slices_with_steps(x, v):
    x[::2, 0] = v
    x[1::2, 1] = v[::-1] * 2
    x[::-2, 4] = 9.0
    x[4:0:-3, 2:4] = 5.0


@form(f32(3, 4, 2), f32(2))
def ellipsis_and_none(x, v):
    x[..., 1] = v[0]
    x[1, ...] = v             # broadcast over the leading dim
    x[None, 2, :, None, 0] = 3.0
    return x[..., 0].sum()


@form(f32(4, 3), f32(3), f32(4, 1))
def broadcasting_rhs(x, row, col):
    x[1:3] = row
    x[:, :2] = col
    x[...] += 1


@form(np.arange(12, dtype=np.int32).reshape(3, 4), f32(4))
def casts_on_assignment(x, v):
    x[0] = v * 10             # float into int: truncated, as NumPy's unsafe cast
    x[1, 1] = 2.7
    x[2] //= 2


# --- integer arrays and masks --------------------------------------------------------------------

@form(f32(6, 3), f32(3, 3), i64(-6, 6, 5))
def fancy(x, v, idx):
    x[[0, 2, 5]] = v
    x[idx, 1] = 0.0           # repeated traced indices: the last write wins
    x[[1, 3], [2, 0]] = -2.0
    x[:, [2, 0]] = x[:, [0, 2]]   # a swap: the right side is a copy


@form(f32(3, 4, 5), f32(2, 4))
def fancy_not_adjacent(x, v):
    x[0, :, [1, 3]] = v       # the index dims go first (NumPy's rule)
    x[[0, 2], 1, [4, 0]] = 5.0


@form(f32(8), i64(0, 8, 6))
def augmented_fancy_is_buffered(x, idx):
    x[[0, 0, 1]] += 1.0       # once per element, as NumPy (read, add, write)
    x[idx] *= 2.0


@form(f32(4, 5), f32(4, 5))
def masks(x, y):
    x[x < 0] = 0.0
    x[y > 1] += 10.0
    x[:, np.array([True, False, True, False, True])] = -1.0   # a static mask
    m = y[:, 0] > 0
    x[m] = y[0] * 0       # a row value broadcast to every selected row
    x[y < -1] = y[y < -1]


# --- augmented assignment, aliases, views -------------------------------------------------------

@form(f32(5), f32(5))
def aliases(x, y):
    z = x
    z += y                    # x changes too
    w = x * 1
    x[0] = 100.0              # not w
    return w


@form(f32(6), f32(6))
def overlapping_views(x, y):
    x[1:] -= x[:-1]           # NumPy copies the overlapping input first
    y[::2], y[1::2] = y[1::2] * 1, y[::2] * 1


@form(f32(3, 4))
def views_see_writes(x):
    row = x[1]
    t = x.T
    r = x.reshape(12)
    row[0] = 10.0             # x and r change
    t[3, 2] = 20.0            # x[2, 3]
    r[-1] += 1.0
    x[1, 1] = 30.0            # row sees it
    return row * 1, t[3] * 1, r.reshape(3, 4) * 1


@form(f32(3, 4))
def copies_do_not_alias(x):
    c = x[[0, 1]]             # fancy: a copy
    c[0] = 100.0
    d = x.T.reshape(12)       # NumPy must copy here
    d[0] = 200.0
    e = x.copy()
    e += 1
    f = x.flatten()
    f[1] = 300.0
    return c, d, e


@form(f32(4, 6))
def view_chains(x):
    a = x[1:, ::2]            # (3, 3)
    b = a.T[::-1]             # a view of a view
    b[0] = 1.0                # column -1 of a: x[1:, 4]
    c = np.swapaxes(x, 0, 1)[2:4]
    c *= 2.0
    s = np.squeeze(x[None, :, 5:6])
    s[...] = -5.0
    return b.sum(), a * 1


@form(f32(2, 3), np.zeros((), np.float32))
def zero_d(x, s):
    s[...] = 5.0              # a 0-d array argument is written in place
    s += x.sum()
    v = x[0, 0]               # a NumPy scalar: += rebinds it
    v += 100.0
    return v


# --- traced scalar indices -----------------------------------------------------------------------

@form(f32(5, 3), f32(3), np.asarray(3), np.asarray(-1))
def traced_scalar_index(x, v, i, j):
    x[i] = v
    x[j, 1] += 5.0
    r = x[i]                  # a 0-d array index gives a copy, as in NumPy
    r[0] = 99.0
    return r


# --- ufunc.at, out=, NumPy's writing functions ---------------------------------------------------

@form(np.zeros(6, np.float32), i64(-6, 6, 20), f32(20), np.ones((3, 4), np.int64), i64(0, 4, 7))
def ufunc_at(h, idx, w, c, j):
    np.add.at(h, idx, w)          # repeats accumulate
    np.subtract.at(h, [0, 0], 1.0)
    np.multiply.at(c, (slice(None), j), 2)
    np.maximum.at(h, idx[:5], 3.0)
    np.minimum.at(c, (1, j), 0)


@form(f32(3, 4), f32(4), f32(3, 4), np.zeros(4, np.float64))
def outs(a, b, c, o):
    np.multiply(a, b, out=c)
    np.add(a[0], 1, out=a[1])             # a view as out
    np.sum(c, axis=0, out=o)              # cast to o's float64
    r = np.maximum(a, 0, out=a, where=b > 0)
    return r is a


@form(f32(3, 4), f32(4))
def writing_functions(x, v):
    np.copyto(x, v, where=v > 0)
    np.put(x, [0, 11, -1], [1.0, 2.0])    # the last write to 11 wins
    np.fill_diagonal(x, 7.0)
    np.putmask(x, x < -1, v)
    np.place(x, np.arange(12).reshape(3, 4) % 5 == 0, [4.0, 5.0])   # a static mask
    x.flat[5] = 6.0


@form(f32(3, 4))
def fill_and_nan_to_num(x):
    x[0] = np.nan
    np.nan_to_num(x, copy=False)
    x[2].fill(3.0)


# --- arrays the function allocates; loops; functions that return nothing --------------------------

@form(f32(6), f32(4, 4))
def allocations(x, m):
    out = np.zeros(6)
    for i in range(6):
        out[i] = x[i] * i
    e = np.empty_like(m)
    e[:] = m.T
    d = np.eye(4)
    d[0, 3] = x[0]
    f = np.full((2, 3), 2, dtype=np.int32)
    f[1] += 1
    return out, e, d, f, np.ones_like(x) + np.zeros(6, np.int8)


@form(f32(5, 4))
def row_loop(a):
    for i in range(1, 5):     # each row from the previous one (a DP table)
        a[i] = np.maximum(a[i], a[i - 1] + 1.0)


# --- running them --------------------------------------------------------------------------------

def run_numpy(f, args):
    args = [np.array(a, copy=True) for a in args]
    res = f(*args)
    return pytree.flatten(res)[0], args


def run_traced(fn, args):
    outs = vmapc.eval(fn, *args)
    n = len(outs) - len(fn.mutated)
    final = list(args)
    for i, w in zip(fn.mutated, outs[n:]):
        final[i] = w
    return outs[:n], final


def assert_close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=what)


def traced(name):
    f, args = FORMS[name]
    return vmapc.trace(f, *args)


@pytest.mark.parametrize("name", list(FORMS))
def test_traced_matches_numpy(name):
    f, args = FORMS[name]
    want, want_args = run_numpy(f, args)
    fn = traced(name)
    got, got_args = run_traced(fn, [np.array(a, copy=True) for a in args])
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, f"{name}: result {k}")
    for k, (g, w) in enumerate(zip(got_args, want_args)):
        assert_close(g, w, f"{name}: argument {k} after the call")


def _sample(name):
    f, args = FORMS[name]
    return testing.Sample(name, traced(name), lambda rng, args=args: [np.array(a, copy=True) for a in args])


def _jitter(sample, rng):
    """Per-example arguments that differ: floats get noise, integer indices stay valid."""
    _, args = FORMS[sample.name]

    def gen(rng):
        out = []
        for a in args:
            a = np.array(a, copy=True)
            if a.dtype.kind == "f":
                a = (a + rng.standard_normal(a.shape)).astype(a.dtype)
            out.append(a)
        return out
    return testing.Sample(sample.name, sample.fn, gen)


@pytest.mark.parametrize("name", list(FORMS))
def test_batched_matches_the_per_example_loop(name):
    """The in_dims sweep (all 0, then every {-1, None} mix), out_dims -1, double nesting and
    the no-bdim check, on the reference evaluator."""
    sample = _jitter(_sample(name), RNG)
    for case in testing.vmap_cases(sample, np.random.default_rng(1), sizes=(3,), out_dims=(-1,)):
        testing.assert_outputs_match(case, testing.run_reference(case), rtol=1e-5, atol=1e-5)


# compiled batched (in_dims all 0 and nested): a few forms that cover every write op's rule
COMPILED_BATCHED = ("slices_with_steps", "fancy", "masks", "traced_scalar_index", "ufunc_at", "views_see_writes",
                    "allocations")


def test_compiled_single_and_batched(vmapc_shared_cache):
    """Every form compiled on the CPU (simplified, as vmapc.compile does); some batched."""
    from vmapc.optimize import simplify
    cases = []
    rng = np.random.default_rng(2)
    for name in FORMS:
        sample = _jitter(_sample(name), rng)
        sample.fn = simplify(sample.fn)
        args = sample.gen(rng)
        cases.append(testing.Case(f"{name}_single", sample.fn, args, vmapc.eval(sample.fn, *args)))
        if name in COMPILED_BATCHED:
            vc = testing.vmap_cases(sample, rng, sizes=(3,), out_dims=(0,), nested=True, all_in_dims=False)
            cases += [c for c in vc if "nobdim" not in c.name and ("nested" not in c.name or name == "fancy")]
    outs = testing.run_compiled(cases, group=40, modules=1)
    for case in cases:
        testing.assert_outputs_match(case, outs[case.name], rtol=1e-5, atol=1e-5)


def test_a_subset_on_vulkan(vmapc_shared_cache):
    """Two forms (scatters with static and traced indices, update_slice, views) on Vulkan, single
    and batched (the backend corpus runs every op sample there too)."""
    t = {t["name"]: t for t in vmapc.targets()}["vulkan"]
    if not t["can_run"]:
        pytest.skip(f"Vulkan cannot run here: {t['reason']}")
    from vmapc.optimize import simplify
    rng = np.random.default_rng(3)
    cases = []
    # np.minimum.at/np.maximum.at are refused on Vulkan (IREE 3.13's SPIR-V scatter min/max is wrong)
    with pytest.raises(vmapc.errors.TargetError, match="scatter with mode=m"):
        vmapc.targets.get_target("vulkan").check([_sample("ufunc_at").fn])
    for name in ("fancy", "augmented_fancy_is_buffered", "views_see_writes"):
        sample = _jitter(_sample(name), rng)
        sample.fn = simplify(sample.fn)
        args = sample.gen(rng)
        cases.append(testing.Case(f"{name}_single", sample.fn, args, vmapc.eval(sample.fn, *args)))
        cases += testing.vmap_cases(sample, rng, sizes=(2,), out_dims=(0,), nested=False, all_in_dims=False)
    outs = testing.run_compiled(cases, target="vulkan", group=40, modules=1)
    for case in cases:
        testing.assert_outputs_match(case, outs[case.name], rtol=1e-5, atol=1e-5)


# --- through vmapc.compile: write-back into the caller's arrays ----------------------------------

def _per_example(f, batched_args, in_dims):
    """NumPy, one example at a time, writing into slices of copies of the batched arguments."""
    args = [np.array(a, copy=True) for a in batched_args]
    size = next(a.shape[d] for a, d in zip(args, in_dims) if d is not None)
    results = []
    for b in range(size):
        ex = [a if d is None else np.moveaxis(a, d, 0)[b] for a, d in zip(args, in_dims)]
        results.append(f(*ex))
    return results, args


def heat(u, alpha):
    """One explicit heat-diffusion step, in place, returning nothing."""
    u[1:-1] += alpha * (u[2:] - 2 * u[1:-1] + u[:-2])


def hist(h, idx, w):
    np.add.at(h, idx, w)
    return h.sum()


def test_compile_writes_back_single_batched_dynamic_and_chunked(vmapc_shared_cache):
    u = f32(16)
    want = u.copy()
    heat(want, 0.25)
    c = vmapc.compile(heat)
    got = u.copy()
    assert c(got, 0.25) is None
    np.testing.assert_allclose(got, want, rtol=1e-6)
    got2 = u.copy()
    c(got2, 0.25)                       # the fast path (a signature seen before)
    np.testing.assert_array_equal(got2, got)

    H, I, W = np.zeros((7, 5), np.float32), i64(0, 5, 7, 30), f32(7, 30)
    for kw in ({}, {"batch": "dynamic"}, {"chunk_size": 3}):
        cb = vmapc.compile(hist, in_dims=0, **kw)
        want_res, (want_h, _, _) = _per_example(hist, (H, I, W), (0, 0, 0))
        got_h = H.copy()
        res = cb(got_h, I, W)
        np.testing.assert_allclose(res, want_res, rtol=1e-5, err_msg=str(kw))
        np.testing.assert_allclose(got_h, want_h, rtol=1e-5, err_msg=str(kw))


def test_batched_argument_at_another_axis_and_a_shared_one(vmapc_shared_cache):
    def f(x, w, v):
        x[:, 0] += w @ v      # x: this example's (3, 2) slice; w shared and only read
    X, Wt, V = f32(3, 4, 2), f32(3, 5), f32(4, 5)
    cb = vmapc.compile(f, in_dims=(1, None, 0))
    _, want = _per_example(f, (X, Wt, V), (1, None, 0))
    got = X.copy()
    cb(got, Wt, V)
    np.testing.assert_allclose(got, want[0], rtol=1e-5)


def test_nested_vmap_writes_into_the_outer_slices(vmapc_shared_cache):
    def f(x, y):
        x[0] = y.sum()
        x[1:] *= 2.0
    X, Y = f32(2, 3, 4), f32(2, 3, 5)
    nested = vmapc.vmap(vmapc.vmap(f))
    got = X.copy()
    nested(got, Y)
    want = X.copy()
    for a in range(2):
        for b in range(3):
            f(want[a, b], Y[a, b])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_write_back_off_returns_the_new_values(vmapc_shared_cache):
    c = vmapc.compile(hist, write_back=False)
    h, idx, w = np.zeros(4, np.float32), np.array([0, 3, 3]), np.ones(3, np.float32)
    res, written = c(h, idx, w)
    assert res == 3.0 and set(written) == {"h"}
    np.testing.assert_array_equal(written["h"], [1, 0, 0, 2])
    np.testing.assert_array_equal(h, 0)


def test_returning_the_argument_returns_its_final_value(vmapc_shared_cache):
    def f(x):
        x += 1
        return x
    c = vmapc.compile(f)
    x = np.zeros(3, np.float32)
    r = c(x)
    np.testing.assert_array_equal(x, 1)
    np.testing.assert_array_equal(r, 1)


# --- what NumPy refuses, and what vmapc cannot do -----------------------------------------------

def test_read_only_argument_gives_numpys_error(vmapc_shared_cache):
    c = vmapc.compile(heat)
    u = f32(8)
    u.flags.writeable = False
    with pytest.raises(ReadOnlyError, match="assignment destination is read-only") as e:
        c(u, 0.1)
    assert isinstance(e.value, ValueError)
    np.testing.assert_array_equal(u, u.copy())


def test_example_dependent_write_into_unbatched_argument_names_it_and_the_line():
    def f(acc, x):
        acc += x     # <-- the write
    with pytest.raises(BatchingError, match="argument `acc` is not batched") as e:
        vmapc.compile(f, in_dims=(None, 0)).lower(np.zeros(3, np.float32), np.zeros((4, 3), np.float32))
    assert e.value.loc is not None and "<-- the write" in e.value.loc.source()


def test_unbatched_argument_written_with_a_shared_value_is_fine(vmapc_shared_cache):
    def f(table, x):
        table[0] = 1.0       # the same for every example
        return x * table[1]
    t = np.zeros(3, np.float32)
    out = vmapc.compile(f, in_dims=(None, 0))(t, np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(t, [1, 0, 0])
    np.testing.assert_array_equal(out, np.zeros((4, 3)))


def test_arguments_sharing_memory_are_refused(vmapc_shared_cache):
    c = vmapc.compile(lambda a, b: np.add(a, b, out=a))
    x = np.ones(4, np.float32)
    with pytest.raises(CallError, match="share memory"):
        c(x, x)


def test_global_numpy_arrays_are_never_written():
    table = np.zeros(3, np.float32)

    def f(x):
        table[0] = x[0]      # a traced value into a NumPy array from outside
        return x
    with pytest.raises(VmapcError):
        vmapc.trace(f, vmapc.f32[3])
    np.testing.assert_array_equal(table, 0)


# --- the write fuzzer (vmapc.fuzz_writes) --------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vmapc import fuzz_writes  # noqa: E402

_FUZZ = dict(deadline=None, database=None, derandomize=True, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@settings(max_examples=60, **_FUZZ)
@given(fuzz_writes.write_programs())
def test_fuzzed_write_programs_match_numpy(prog):
    """Random programs writing through views, fancy indices and masks, single and under two
    nested vmaps, on the reference evaluator against NumPy."""
    fuzz_writes.check_reference(prog)


@settings(max_examples=1, **_FUZZ)
@given(st.lists(fuzz_writes.write_programs(max_statements=8), min_size=4, max_size=4))
def test_fuzzed_write_programs_compiled(progs):
    """Four fuzzed programs, single and nested, compiled as one module."""
    fuzz_writes.check_compiled(progs)


# --- artifacts: a written argument is one more named output ---------------------------------------

def _bump(counts, idx):
    np.add.at(counts, idx, 1.0)
    return counts.sum()


def test_export_names_written_arguments_and_keeps_their_batch_dim(tmp_path, vmapc_shared_cache):
    m = vmapc.export(_bump, tmp_path / "exp", args=[vmapc.f32[5], vmapc.i32[4]], in_dims=(0, 0), batch=3)
    assert [o["name"] for o in m["outputs"]] == ["out", "counts"]   # the result, then the argument
    assert [o["out_dim"] for o in m["outputs"]] == [0, 0]
    rng = np.random.default_rng(0)
    counts = rng.random((3, 5), dtype=np.float32)
    idx = rng.integers(0, 5, (3, 4)).astype(np.int32)
    total, final = vmapc.load(tmp_path / "exp")(counts.copy(), idx)
    want = counts.copy()
    want_total = np.array([_bump(want[b], idx[b]) for b in range(3)])
    np.testing.assert_allclose(final, want, rtol=1e-6)
    np.testing.assert_allclose(total, want_total, rtol=1e-6)


def test_writes_inside_loop_bodies_batch_and_compile():
    """A kernel whose loop body writes into its carry (a heat-diffusion step written with
    slices, an np.add.at histogram filled one sample per step) runs as a fori_loop: the
    writes are functionalized inside the body, batched with it and compiled in one module."""
    def heat(u):
        def step(i, u):
            u[1:-1] = u[1:-1] + np.float32(0.1) * (u[2:] - 2 * u[1:-1] + u[:-2])
            return u
        return vmapc.fori_loop(0, 5, step, u.copy())

    def hist(x):
        def step(i, h):
            np.add.at(h, np.clip((x[i] * 4).astype(np.int32), 0, 3), 1.0)
            return h
        return vmapc.fori_loop(0, x.shape[0], step, np.zeros(4, np.float32))

    def heat_np(u):
        u = u.copy()
        for _ in range(5):
            u[1:-1] = u[1:-1] + np.float32(0.1) * (u[2:] - 2 * u[1:-1] + u[:-2])
        return u

    def hist_np(x):
        return np.bincount(np.clip((x * 4).astype(np.int32), 0, 3), minlength=4).astype(np.float32)

    rng = np.random.default_rng(0)
    u, x = rng.random((3, 16)).astype(np.float32), rng.random((3, 10)).astype(np.float32)
    want_u, want_h = np.stack([heat_np(r) for r in u]), np.stack([hist_np(r) for r in x])
    for fn, arg, want in ((heat, u, want_u), (hist, x, want_h)):
        one = vmapc.trace(fn, arg[0])
        np.testing.assert_allclose(vmapc.eval(one, arg[0])[0], want[0], rtol=1e-6)
        batched = vmapc.vmap(one, in_dims=0, axis_size=3)
        np.testing.assert_allclose(vmapc.eval(batched, arg)[0], want, rtol=1e-6)
    np.testing.assert_allclose(vmapc.compile(heat, in_dims=0)(u), want_u, rtol=1e-5)
    np.testing.assert_array_equal(vmapc.compile(hist, in_dims=0)(x), want_h)
