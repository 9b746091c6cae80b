"""``vmapc.random`` and the random family of ops.

* **Known answers.** Threefry-2x32 (20 rounds) against the published test vectors of
  Random123 (``kat_vectors``: zero key and counter, all ones, the digits of pi) on the
  reference evaluator, the CPU and Vulkan; CUDA compiles the same module.
* **JAX's bits.** ``key``, ``split``, ``fold_in``, ``bits``, ``uniform`` and ``randint``
  equal ``jax.random``'s (threefry, partitionable) bit for bit, float64/int64 included.
* **The same bits everywhere.** One program with a draw of every distribution gives the
  same bits compiled for the CPU and Vulkan as on the reference evaluator; a vmap with
  ``randomness="different"`` gives the per-example loop's bits with a static batch, a
  dynamic one, chunks (the last one padded) and an artifact run in two parts.
* **Statistics.** Kolmogorov-Smirnov tests (uniform, normal, exponential, Gumbel,
  truncated normal) and chi-squared tests (bernoulli, randint, categorical, permutation,
  bit balance, independence of streams from split keys and of examples under
  ``randomness="different"``). Seeds are fixed, so each test passes or fails the same way
  every run; each states its false-alarm rate, the chance that a correct generator fails
  it for a seed picked at random: ``ALPHA`` per test. ``test_the_tests_have_power`` checks
  they reject slightly wrong distributions.
* **Randomness modes** on the reference evaluator: error at the user's line, "same",
  "different" (== the loop with ``fold_in(key, i)``), nested vmaps, batched keys.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import vmapc
import vmapc.random as vr
from vmapc import driver, targets, testing
from vmapc.errors import BatchingError, DTypeError, ShapeError, UnsupportedError
from vmapc.ir import TensorType
from vmapc.tracing import Tracer, current, to_var

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

ALPHA = 1e-4      # false-alarm rate of each statistical test

# Random123's known-answer vectors for threefry2x32_20: (key, counter, result)
KAT = [((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
       ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
       ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]


def _kat_program():
    return testing.single_op("threefry2x32", [TensorType((len(KAT),), "uint32")] * 4, {}, name="threefry")


def _kat_args():
    return [np.array([k[0] for k, _, _ in KAT], np.uint32), np.array([k[1] for k, _, _ in KAT], np.uint32),
            np.array([c[0] for _, c, _ in KAT], np.uint32), np.array([c[1] for _, c, _ in KAT], np.uint32)]


def _kat_check(y0, y1):
    assert [hex(v) for v in y0] == [hex(r[0]) for _, _, r in KAT]
    assert [hex(v) for v in y1] == [hex(r[1]) for _, _, r in KAT]


def test_threefry_known_answers_on_the_reference_evaluator():
    _kat_check(*vmapc.eval(_kat_program(), *_kat_args()))


def _reason(drv):
    return targets.runtime_devices(drv)[1]


# --- one program with every draw, on every backend ---------------------------------------------------

LOGITS = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
ROWS = np.arange(12, dtype=np.float32).reshape(3, 4)


def corpus(key, seed, data, p, hi, full=True):
    """A draw of every kind (and every code path: float16/64, traced parameters, the
    normal's far tail through truncated_normal(5, 6)). ``full=False`` (for Vulkan, whose
    compiles are slow) keeps one draw of each distribution, float16/float64 uniforms and
    float16 normals, and leaves out randint of int64, which needs 64-bit integer division
    (IREE's Vulkan backend has none)."""
    ks = vr.split(key, 20)
    out = {
        "key": vr.key(seed), "fold_in": vr.fold_in(key, data), "split": ks,
        "bits32": vr.bits(ks[0], (64,)), "bits64": vr.bits(ks[0], (7,), np.uint64),
        "uniform": vr.uniform(ks[1], (256,)), "uniform16": vr.uniform(ks[1], (64,), np.float16),
        "uniform64": vr.uniform(ks[1], (64,), np.float64),
        "uniform_range": vr.uniform(ks[2], (256,), minval=-1.5, maxval=hi),
        "uniform64_range": vr.uniform(ks[2], (256,), np.float64, minval=-2.0, maxval=hi.astype(np.float64)),
        "normal": vr.normal(ks[3], (4096,)), "normal16": vr.normal(ks[4], (512,), np.float16),
        "exponential": vr.exponential(ks[5], (1024,)), "gumbel": vr.gumbel(ks[6], (1024,)),
        "bernoulli": vr.bernoulli(ks[7], p, (64, 3)),
        "randint": vr.randint(ks[8], (256,), -7, 1000),
        "categorical": vr.categorical(ks[10], LOGITS, shape=(256,)),
        "permutation": vr.permutation(ks[11], 33),
        "truncated_tail": vr.truncated_normal(ks[14], 5.0, 6.0, (64,)),
    }
    if full:
        out.update({
            "bits8": vr.bits(ks[0], (5,), np.uint8),
            "uniform16_range": vr.uniform(ks[2], (64,), np.float16, minval=1.0, maxval=3.0),
            "bernoulli_half": vr.bernoulli(ks[7], 0.5, (64,)),
            "randint_u8": vr.randint(ks[8], (64,), 0, 256, np.uint8),
            "randint_traced": vr.randint(ks[9], (64,), data, data + 5, np.int16),
            "randint64": vr.randint(ks[9], (16,), -2 ** 40, 2 ** 40, np.int64),
            "shuffle_rows": vr.permutation(ks[12], ROWS, axis=1, independent=True),
            "shuffle": vr.shuffle(ks[12], ROWS),
            "truncated": vr.truncated_normal(ks[13], -0.5, 2.0, (512,)),
            "truncated16": vr.truncated_normal(ks[15], -1.0, 1.0, (64,), np.float16),
        })
    return out


CORPUS_ARGS = (vr.key(2024), np.int32(-7), np.int32(123456), np.array([0.1, 0.5, 0.9], np.float32),
               np.float32(3.0))


def _same_bits(name, want, got):
    want, got = np.asarray(want), np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, name
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        np.testing.assert_array_equal(got.view(f"u{want.dtype.itemsize}"), want.view(f"u{want.dtype.itemsize}"),
                                      err_msg=f"{name}: not the same bits")


@pytest.fixture(scope="module")
def reference_corpus():
    return corpus(*CORPUS_ARGS)    # eagerly: each draw traced and run on the reference evaluator


def _batched_programs():
    """noisy under vmap(randomness="different") as programs with an example_offset input:
    the whole batch of 7, and chunks of 3 (what chunk_size runs, the last chunk padded)."""
    from vmapc.optimize import simplify
    fn = vmapc.trace(noisy, XS[0], KEY)
    out = []
    for name, size in (("batch7", 7), ("chunk3", 3)):
        p = simplify(vmapc.vmap(fn, in_dims=(0, None), axis_size=size, randomness="different"))
        p.name = name
        out.append(p)
    return out


def _check_batched(fns, target):
    want = _loop(XS, KEY)
    for j, got in enumerate(fns["batch7"](XS, KEY, np.uint32(0))):
        _same_bits(f"{target} static", want[j], got)
    parts = []
    for start in (0, 3, 6):
        x = XS[np.minimum(np.arange(start, start + 3), 6)]       # the last chunk padded
        parts.append([o[:min(3, 7 - start)] for o in fns["chunk3"](x, KEY, np.uint32(start))])
    for j in range(3):
        _same_bits(f"{target} chunked", want[j], np.concatenate([p[j] for p in parts]))


@pytest.mark.parametrize("target", ["cpu", "vulkan"])
def test_every_draw_has_the_same_bits_compiled(target, reference_corpus):
    """One module per target: the known-answer vectors, the corpus, and vmap(randomness=
    "different") over a static batch and over chunks with their offsets."""
    t = targets.target(target)
    reason = _reason(t.driver) if target != "cpu" else None
    if reason is not None:
        pytest.skip(f"{target} cannot run here: {reason}")
    full = target != "vulkan"
    prog = vmapc.compile(lambda *a: corpus(*a, full=full), target=target).lower(*CORPUS_ARGS).program
    fns = driver.compile_functions([prog, _kat_program(), *_batched_programs()], target=target)
    _kat_check(*fns["threefry"](*_kat_args()))
    outs = fns[prog.name](*CORPUS_ARGS)
    names = vmapc.pytree.unflatten(prog.out_tree, list(range(len(outs))))
    for name, i in names.items():
        _same_bits(f"{target} {name}", reference_corpus[name], outs[i])
    _check_batched(fns, target)


def small_corpus(key):
    ks = vr.split(key, 4)
    return vr.bits(ks[0], (8,)), vr.normal(ks[1], (8,)), vr.randint(ks[2], (8,), 0, 10), vr.uniform(ks[3], (8,))


def test_cuda_compiles_draws():
    """CUDA compiles the known-answer program and normal, uniform, bits and randint draws
    (they run where a GPU is; scripts/backend_corpus.py compiles the threefry2x32 samples
    for CUDA too)."""
    t = targets.target("cuda")
    prog = vmapc.compile(small_corpus, target="cuda").lower(vr.key(1)).program
    from vmapc.lowering import lower
    vmfb = driver.compile_mlir(lower([prog, _kat_program()], target=t), t)
    assert len(vmfb) > 1000
    if _reason("cuda") is None:     # a GPU: the same bits as the reference evaluator
        fns = driver.compile_functions([prog, _kat_program()], target="cuda")
        _kat_check(*fns["threefry"](*_kat_args()))
        for i, (w, g) in enumerate(zip(small_corpus(vr.key(1)), fns[prog.name](vr.key(1)))):
            _same_bits(f"cuda {i}", w, g)


# --- JAX's bits ---------------------------------------------------------------------------------------

def test_keys_split_fold_in_bits_uniform_randint_are_jaxs():
    jax = pytest.importorskip("jax", reason="jax is not installed (pip install -e '.[bench]')")
    import jax.numpy as jnp
    k, jk = vr.key(2 ** 32 - 1), jax.random.PRNGKey(2 ** 32 - 1)
    np.testing.assert_array_equal(k, np.asarray(jk))
    np.testing.assert_array_equal(vr.split(k, (2, 3)), np.asarray(jax.random.split(jk, (2, 3))))
    np.testing.assert_array_equal(vr.fold_in(k, 7), np.asarray(jax.random.fold_in(jk, 7)))
    for d in (np.uint8, np.uint32):
        np.testing.assert_array_equal(vr.bits(k, (4, 5), d), np.asarray(jax.random.bits(jk, (4, 5), d)))
    for d in (np.float16, np.float32):
        _same_bits("uniform", np.asarray(jax.random.uniform(jk, (50,), d)), vr.uniform(k, (50,), d))
    for lo, hi, d in ((-5, 2 ** 31 - 1, np.int32), (-100, 100, np.int8)):
        np.testing.assert_array_equal(vr.randint(k, (40,), lo, hi, d),
                                      np.asarray(jax.random.randint(jk, (40,), lo, hi, d)), err_msg=f"{lo} {hi} {d}")
    with jax.enable_x64(True):      # 64-bit keys, bits, floats and ints
        for seed in (-1, 2 ** 40 + 5):
            np.testing.assert_array_equal(vr.key(seed), np.asarray(jax.random.PRNGKey(seed)))
        jk, k = jax.random.PRNGKey(5), vr.key(5)
        np.testing.assert_array_equal(vr.bits(k, (9,), np.uint64), np.asarray(jax.random.bits(jk, (9,), jnp.uint64)))
        _same_bits("uniform64", np.asarray(jax.random.uniform(jk, (50,), jnp.float64)), vr.uniform(k, (50,), np.float64))
        np.testing.assert_array_equal(vr.randint(k, (9,), -2 ** 40, 2 ** 40, np.int64),
                                      np.asarray(jax.random.randint(jk, (9,), -2 ** 40, 2 ** 40, jnp.int64)))


def test_traced_seeds_and_data_give_the_keys_of_python_ints():
    seeds = np.array([0, 1, -1, -7, 2 ** 31 - 1, -2 ** 31], np.int32)
    f = vmapc.vmap(lambda s: vr.key(s))
    np.testing.assert_array_equal(vmapc.eval(vmapc.trace(lambda s: f(s), seeds), seeds)[0],
                                  np.stack([vr.key(int(s)) for s in seeds]))
    k = vr.key(3)
    for d in (np.uint8(200), np.int64(-5), np.uint64(2 ** 63 + 9), np.int16(-300)):
        np.testing.assert_array_equal(vr.fold_in(k, np.asarray(d)), vr.fold_in(k, int(d)), err_msg=repr(d))
    np.testing.assert_array_equal(vr.split(k, 4)[2], vr.fold_in(k, 2))   # split's keys are fold_in's


# --- statistics -----------------------------------------------------------------------------------

def ks_statistic(sample, cdf):
    x = np.sort(np.asarray(sample, np.float64))
    n = len(x)
    f = cdf(x)
    i = np.arange(1, n + 1)
    return max(np.max(i / n - f), np.max(f - (i - 1) / n))


def ks_limit(n, alpha=ALPHA):
    """The asymptotic Kolmogorov critical value: D > this with probability alpha."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) / math.sqrt(n)


def chi2_pvalue(stat, dof):
    """Upper tail of chi-squared (Wilson-Hilferty's normal approximation)."""
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_pvalue_counts(counts, probs):
    counts = np.asarray(counts, np.float64).ravel()
    exp = np.asarray(probs, np.float64).ravel() * counts.sum()
    assert exp.min() >= 5, "too few expected counts for the chi-squared approximation"
    return chi2_pvalue(float(((counts - exp) ** 2 / exp).sum()), len(counts) - 1)


_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(x):
    return 0.5 * (1 + np.asarray(_erf(np.asarray(x) / math.sqrt(2)), dtype=np.float64))


N = 100_000
KEY = vr.key(20260801)


@pytest.mark.parametrize("name,draw,cdf", [
    ("uniform", lambda k: vr.uniform(k, (N,)), lambda x: x),
    ("uniform_range", lambda k: vr.uniform(k, (N,), minval=-2.0, maxval=5.0), lambda x: (x + 2) / 7),
    ("uniform64", lambda k: vr.uniform(k, (N,), np.float64, -1.0, 1.0), lambda x: (x + 1) / 2),
    ("normal", lambda k: vr.normal(k, (N,)), normal_cdf),
    ("exponential", lambda k: vr.exponential(k, (N,)), lambda x: 1 - np.exp(-x)),
    ("gumbel", lambda k: vr.gumbel(k, (N,)), lambda x: np.exp(-np.exp(-x))),
    ("truncated_normal", lambda k: vr.truncated_normal(k, -0.3, 1.7, (N,)),
     lambda x: (normal_cdf(x) - normal_cdf(-0.3)) / (normal_cdf(1.7) - normal_cdf(-0.3))),
])
def test_continuous_distributions_pass_kolmogorov_smirnov(name, draw, cdf):
    """KS at false-alarm rate ALPHA against the exact CDF, n = 1e5."""
    d = ks_statistic(draw(vr.fold_in(KEY, hash(name) % 1000)), cdf)
    assert d < ks_limit(N), f"{name}: D = {d:.5f}, limit {ks_limit(N):.5f}"


def test_truncated_normal_far_tail_and_float16():
    """Bounds 5..6 standard deviations out keep their resolution (KS against the truncated
    CDF computed from erfc), and every draw is inside the bounds."""
    x = vr.truncated_normal(KEY, 5.0, 6.0, (20000,))
    assert x.min() > 5.0 and x.max() < 6.0
    sf = np.frompyfunc(lambda z: 0.5 * math.erfc(z / math.sqrt(2)), 1, 1)
    cdf = lambda z: ((sf(5.0) - sf(z)) / (sf(5.0) - sf(6.0))).astype(np.float64)  # noqa: E731
    assert ks_statistic(x, cdf) < ks_limit(len(x))
    h = vr.truncated_normal(KEY, -1.0, 1.0, (1000,), np.float16)
    assert h.dtype == np.float16 and h.min() >= -1 and h.max() <= 1


def test_normal_moments_tails_and_symmetry():
    z = vr.normal(KEY, (N,))
    assert abs(z.mean()) < 4.5 / math.sqrt(N) and abs(z.var() - 1) < 4.5 * math.sqrt(2 / N)
    assert np.isfinite(z).all() and 3.5 < np.abs(z).max() < 6.5
    # the quantile transform reaches 6.2 sd: Phi(-6.2) ~ 2.8e-10 > 2**-33
    n16 = vr.normal(KEY, (4096,), np.float16)
    assert n16.dtype == np.float16 and np.isfinite(n16).all()


def _ndtri64(s):
    """-Phi^-1(s) in float64 by bisection on erfc (to 1e-15)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > s:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _builder_fn(f, *args):
    """Run a builder-level helper of vmapc.random on arrays through the reference evaluator."""
    def traced(*xs):
        ctx = current()
        return Tracer(f(ctx.builder, *[to_var(ctx, x, "x") for x in xs]), ctx)
    return vmapc.eval(vmapc.trace(traced, *args), *args)[0]


def test_the_float32_functions_are_accurate():
    """log within 2 ulps over 2**-126..2**127; the normal quantile within 3e-7 relative
    from the centre to 2**-33 (float32's rounding is 6e-8)."""
    x = np.concatenate([np.geomspace(1.2e-38, 3e38, 20000), np.linspace(0.5, 2, 20001)]).astype(np.float32)
    got = _builder_fn(vr._log32, x).astype(np.float64)
    want = np.log(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - want) / ulp) <= 2.0
    s = np.geomspace(2.0 ** -33, 0.5, 3000)
    got = _builder_fn(vr._ndtri_tail, 2 * s).astype(np.float64)
    want = np.array([_ndtri64(v) for v in s])
    rel = np.abs(got - want) / np.maximum(want, 1e-3)
    assert rel.max() < 3e-7, rel.max()


def test_one_horner_pass_over_the_pieces_gives_each_pieces_bits():
    """normal's quantile evaluates its three erfinv polynomials as one Horner pass whose
    coefficients are selected per element (vr._horner_pieces). Its bits must be those of
    evaluating every polynomial and selecting, the form the draws were defined with."""
    rng = np.random.default_rng(3)
    t = np.concatenate([rng.uniform(-3, 12, 30000), [0.0, -0.0, 1e-30, -2.5, 11.0]]).astype(np.float32)
    pick = rng.integers(0, 3, t.size)
    central, tail = pick == 0, pick == 1
    polys = (vr._ERFINV_CENTRAL, vr._ERFINV_TAIL, vr._ERFINV_FAR)

    def merged(b, tv, c0, c1):
        return vr._horner_pieces(b, [(c0, polys[0]), (c1, polys[1])], polys[2], tv)

    def each(b, tv, c0, c1):
        a, m, f = (vr._horner(b, cs, tv) for cs in polys)
        return b.emit("select", c0, a, b.emit("select", c1, m, f))
    got, want = _builder_fn(merged, t, central, tail), _builder_fn(each, t, central, tail)
    assert got.dtype == want.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_discrete_distributions_pass_chi_squared():
    """Chi-squared at ALPHA for bernoulli (scalar and per-element p), randint (a span that is
    not a power of two; full uint8 range), categorical and the positions of a permutation."""
    b = vr.bernoulli(KEY, 0.3, (N,))
    assert chi2_pvalue_counts([b.sum(), N - b.sum()], [0.3, 0.7]) > ALPHA
    p = np.array([0.01, 0.5, 0.97], np.float32)
    bp = vr.bernoulli(vr.fold_in(KEY, 1), p, (N // 3, 3))
    for j in range(3):
        assert chi2_pvalue_counts([bp[:, j].sum(), len(bp) - bp[:, j].sum()], [p[j], 1 - p[j]]) > ALPHA
    assert not vr.bernoulli(KEY, 0.0, (1000,)).any() and vr.bernoulli(KEY, 1.0, (1000,)).all()
    r = vr.randint(vr.fold_in(KEY, 2), (N,), -3, 14)
    assert r.min() == -3 and r.max() == 13
    assert chi2_pvalue_counts(np.bincount(r + 3, minlength=17), np.full(17, 1 / 17)) > ALPHA
    u8 = vr.randint(vr.fold_in(KEY, 3), (N,), 0, 256, np.uint8)
    assert chi2_pvalue_counts(np.bincount(u8, minlength=256), np.full(256, 1 / 256)) > ALPHA
    probs = np.array([0.05, 0.15, 0.3, 0.5])
    c = vr.categorical(vr.fold_in(KEY, 4), np.log(probs).astype(np.float32), shape=(N,))
    assert c.dtype == np.int32 and chi2_pvalue_counts(np.bincount(c, minlength=4), probs) > ALPHA
    never = vr.categorical(vr.fold_in(KEY, 5), np.array([0.0, -np.inf, 1.0], np.float32), shape=(5000,))
    assert 1 not in never
    # where element 0 of a permutation of 6 lands, over 3000 permutations from split keys
    keys = vr.split(vr.fold_in(KEY, 6), 3000)
    perms = _ref(lambda ks: vmapc.vmap(lambda k: vr.permutation(k, 6))(ks), keys)[0]
    pos = np.argmax(perms == 0, axis=1)
    assert chi2_pvalue_counts(np.bincount(pos, minlength=6), np.full(6, 1 / 6)) > ALPHA


def test_permutations_are_permutations():
    for n in (0, 1, 2, 17, 300):
        assert sorted(vr.permutation(KEY, n)) == list(range(n))
    x = np.arange(20).reshape(4, 5)
    s = vr.permutation(KEY, x, axis=1)
    assert all(sorted(row) == list(r) for row, r in zip(s, x)) and (s - s[:1] == x - x[:1]).all()   # one order
    ind = vr.permutation(KEY, x, axis=1, independent=True)
    assert all(sorted(row) == list(r) for row, r in zip(ind, x))
    np.testing.assert_array_equal(vr.shuffle(KEY, x), vr.permutation(KEY, x))
    assert sorted(vr.permutation(KEY, x, axis=0)[:, 0]) == [0, 5, 10, 15]


def test_bits_are_balanced():
    """Each of the 32 bit positions is 1 in half the draws: a two-sided binomial test per
    bit at ALPHA / 32 (Bonferroni)."""
    b = vr.bits(KEY, (N,))
    ones = np.array([((b >> np.uint32(i)) & np.uint32(1)).sum() for i in range(32)], np.float64)
    z = np.abs(ones - N / 2) / math.sqrt(N / 4)
    assert z.max() < math.sqrt(2) * _erfcinv(ALPHA / 32)


def _erfcinv(p):
    return _ndtri64(p / 2) / math.sqrt(2)


def _pairs_independent(a, b, bins=10):
    """chi-squared p-value of the independence of two uniform samples (a bins x bins table)."""
    ia, ib = np.minimum((a * bins).astype(int), bins - 1), np.minimum((b * bins).astype(int), bins - 1)
    table = np.bincount(ia * bins + ib, minlength=bins * bins)
    return chi2_pvalue_counts(table, np.full(bins * bins, 1 / bins ** 2))


def test_streams_of_split_keys_are_independent():
    """Uniform streams of neighbouring split keys: their pairs fill a 10x10 table evenly
    (chi-squared at ALPHA), and the correlation is within 4.5 standard errors."""
    keys = vr.split(KEY, 1000)
    u = _ref(lambda ks: vmapc.vmap(lambda k: vr.uniform(k, (64,)))(ks), keys)[0]
    a, b = u[:-1].ravel(), u[1:].ravel()
    assert _pairs_independent(a, b) > ALPHA
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.5 / math.sqrt(len(a))
    assert len({row.tobytes() for row in u}) == len(u)


def test_examples_are_independent_under_randomness_different():
    f = vmapc.vmap(lambda x, k: x + vr.uniform(k, (64,)), in_dims=(0, None), randomness="different")
    xs = np.zeros((1000, 64), np.float32)
    u = vmapc.eval(vmapc.trace(lambda xs, k: f(xs, k), xs, KEY), xs, KEY)[0]
    a, b = u[:-1].ravel(), u[1:].ravel()
    assert _pairs_independent(a, b) > ALPHA
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.5 / math.sqrt(len(a))
    assert _pairs_independent(u[:, 0], u[:, 1]) > ALPHA


def test_the_tests_have_power():
    """The same tests reject slightly wrong generators: a normal with sd 1.05, uniforms
    cubed with exponent 1.02, a 51% coin, and a stream paired with itself shifted by 1%."""
    z = vr.normal(KEY, (N,))
    assert ks_statistic(z * 1.05, normal_cdf) > ks_limit(N)
    u = vr.uniform(KEY, (N,))
    assert ks_statistic(u ** 1.02, lambda x: x) > ks_limit(N)
    b = vr.bernoulli(KEY, 0.51, (N,))
    assert chi2_pvalue_counts([b.sum(), N - b.sum()], [0.5, 0.5]) < ALPHA
    assert _pairs_independent(u, np.clip(u + 0.01 * vr.uniform(vr.fold_in(KEY, 1), (N,)), 0, 0.9999)) < ALPHA


# --- randomness modes (reference evaluator) -------------------------------------------------------

def _ref(fn, *args):
    return vmapc.eval(vmapc.trace(fn, *args), *args)


def noisy(x, key):
    """Draws from a key split inside: the loop passes fold_in(key, i) as `key`. (No float
    product feeding an add of the user's own: IREE's CPU code would fuse it, see
    docs/randomness.md; the draws themselves are the same everywhere.)"""
    k1, k2 = vr.split(key)
    return x + vr.uniform(k1, x.shape), vr.normal(k2, x.shape), vr.randint(k2, (), 0, 100)


XS = np.arange(35, dtype=np.float32).reshape(7, 5)


def _loop(xs, key, offset=0):
    outs = [noisy(x, vr.fold_in(key, offset + i)) for i, x in enumerate(xs)]
    return [np.stack([o[j] for o in outs]) for j in range(3)]


def test_randomness_different_is_the_loop_with_folded_keys():
    f = vmapc.vmap(noisy, in_dims=(0, None), randomness="different")
    for got, want in zip(_ref(lambda xs, k: f(xs, k), XS, KEY), _loop(XS, KEY)):
        _same_bits("different", want, got)


def test_randomness_same_shares_one_draw():
    """Every example draws what the unbatched function draws from the shared key."""
    f = vmapc.vmap(noisy, in_dims=(0, None), randomness="same")
    want = [np.stack(z) for z in zip(*[noisy(x, KEY) for x in XS])]
    for got, w in zip(_ref(lambda xs, k: f(xs, k), XS, KEY), want):
        _same_bits("same", w, got)


def test_randomness_error_names_the_draw():
    with pytest.raises(BatchingError, match=r"vmapc\.random\.split draws from a key that is the same for every"):
        _ref(lambda xs, k: vmapc.vmap(noisy, in_dims=(0, None))(xs, k), XS, KEY)


def test_batched_keys_give_each_example_its_stream_in_every_mode():
    keys = vr.split(KEY, 7)
    want = [np.stack(z) for z in zip(*[noisy(x, k) for x, k in zip(XS, keys)])]
    for mode in ("error", "same", "different"):
        f = vmapc.vmap(noisy, in_dims=(0, 0), randomness=mode)
        for got, w in zip(_ref(lambda xs, k: f(xs, k), XS, keys), want):
            _same_bits(mode, w, got)


def test_a_key_made_inside_from_a_constant_seed():
    def f(x):
        return x + vr.normal(vr.key(7), x.shape)
    with pytest.raises(BatchingError, match="same for every example"):
        _ref(lambda xs: vmapc.vmap(f)(xs), XS)
    got = _ref(lambda xs: vmapc.vmap(f, randomness="different")(xs), XS)[0]
    want = np.stack([x + vr.normal(vr.fold_in(vr.key(7), i), x.shape) for i, x in enumerate(XS)])
    _same_bits("constant seed", want, got)


def test_fold_in_of_batched_data_is_per_example_already():
    """fold_in(shared key, example data) differs per example: no error in "error" mode."""
    f = vmapc.vmap(lambda i, k: vr.normal(vr.fold_in(k, i), (3,)), in_dims=(0, None))
    idx = np.arange(5, dtype=np.int32)
    got = _ref(lambda i, k: f(i, k), idx, KEY)[0]
    _same_bits("fold_in", np.stack([vr.normal(vr.fold_in(KEY, i), (3,)) for i in range(5)]), got)


def test_nested_vmaps_fold_in_both_indices_outer_first():
    inner = vmapc.vmap(noisy, in_dims=(0, None), randomness="different")
    outer = vmapc.vmap(inner, in_dims=(0, None), randomness="different")
    xs = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    got = _ref(lambda xs, k: outer(xs, k), xs, KEY)
    for i in range(2):
        for j in range(3):
            want = noisy(xs[i, j], vr.fold_in(vr.fold_in(KEY, i), j))
            for w, g in zip(want, got):
                _same_bits("nested", w, g[i, j])
    mixed = vmapc.vmap(vmapc.vmap(noisy, in_dims=(0, None), randomness="same"), in_dims=(0, None),
                       randomness="different")
    got = _ref(lambda xs, k: mixed(xs, k), xs, KEY)[2]
    assert (got == got[:, :1]).all() and len(set(got[:, 0])) > 1   # the same across j, different across i


def test_a_subprogram_cannot_number_examples():
    """Inside the body of a cond/loop (a closed sub-program) "different" has no example
    index: a clear error (keys split outside work)."""
    from vmapc.vmap import Randomness, _CURRENT, batch_subfunction
    fn = testing.single_op("key_use", [TensorType((2,), "uint32")], {"what": "normal"})
    token = _CURRENT.set(Randomness("different"))
    try:
        with pytest.raises(BatchingError, match="inside the body of a cond, loop or scan"):
            batch_subfunction(fn, [None], 4, [0])
    finally:
        _CURRENT.reset(token)


def test_ir_vmap_with_different_takes_example_offset():
    fn = vmapc.trace(noisy, XS[0], KEY)
    bf = vmapc.vmap(fn, in_dims=(0, None), axis_size=7, randomness="different")
    assert bf.arg_names[-1] == "example_offset" and bf.offset_input == len(bf.inputs) - 1
    assert "example_offset:u32[]" in str(bf)
    part = vmapc.vmap(fn, in_dims=(0, None), axis_size=4, randomness="different")
    got = vmapc.eval(part, XS[3:], KEY, np.uint32(3))
    for g, w in zip(got, _loop(XS[3:], KEY, offset=3)):
        _same_bits("offset", w, g)
    assert "example_offset" not in str(vmapc.vmap(fn, in_dims=(0, 0), axis_size=7))


# --- compiled batch modes ----------------------------------------------------------------------------

def test_compile_with_chunk_size_passes_each_chunks_offset():
    """vmapc.compile(..., chunk_size=3) over 7 examples (the last chunk padded) gives the
    loop's bits; the static and chunk programs themselves run on CPU and Vulkan in
    test_every_draw_has_the_same_bits_compiled, the dynamic batch in the artifact test."""
    f = vmapc.compile(noisy, in_dims=(0, None), randomness="different", chunk_size=3)
    for got, w in zip(f(XS, KEY), _loop(XS, KEY)):
        _same_bits("chunk_size", w, got)


def test_artifact_with_a_dynamic_batch_runs_in_parts_with_example_offset(tmp_path):
    fn = vmapc.trace(noisy, XS[0], KEY)
    m = vmapc.export(fn, tmp_path / "art", in_dims=(0, None), batch="dynamic", randomness="different")
    assert m["inputs"][-1] == {"name": "example_offset", "type": "u32[]", "example_type": "u32[]", "in_dim": None,
                               "default": 0}
    art = vmapc.load(tmp_path / "art")
    want = _loop(XS, KEY)
    whole = art(XS, KEY)
    parts = [art(x=XS[:3], key=KEY), art(XS[3:], KEY, np.uint32(3)), art(x=XS[3:], key=KEY, example_offset=3)]
    for j in range(3):
        _same_bits("artifact", want[j], whole[j])
        _same_bits("parts", want[j], np.concatenate([parts[0][j], parts[1][j]]))
        _same_bits("named offset", want[j][3:], parts[2][j])


# --- checks on arguments ---------------------------------------------------------------------------

def test_bad_arguments_are_clear_errors():
    with pytest.raises(DTypeError, match="key must be a uint32 array"):
        vr.normal(np.zeros(2, np.int32))
    with pytest.raises(DTypeError, match="got a Python int; make one with|Python int"):
        vr.normal(0)
    with pytest.raises(ShapeError, match=r"key must have shape \(2,\), got shape \(3, 2\) \(an array of keys"):
        vr.uniform(vr.split(KEY, 3))
    with pytest.raises(ShapeError, match="must be static"):
        vmapc.trace(lambda k, n: vr.normal(k, (n,)), KEY, np.int32(3))
    with pytest.raises(ShapeError, match="negative"):
        vr.normal(KEY, (-1,))
    with pytest.raises(ShapeError, match="at most 2\\*\\*32"):
        vr.bits(KEY, (2 ** 17, 2 ** 16))
    with pytest.raises(DTypeError, match="float64 draws"):
        vr.normal(KEY, (3,), np.float64)
    with pytest.raises(DTypeError, match="not an integer dtype"):
        vr.randint(KEY, (3,), 0, 5, np.float32)
    with pytest.raises(ShapeError, match="every pair"):
        vr.permutation(KEY, 2 ** 17)
    with pytest.raises(UnsupportedError, match="known when tracing"):
        vmapc.trace(lambda k, lo: vr.truncated_normal(k, lo, 2.0, (3,)), KEY, np.float32(0))
    with pytest.raises(ShapeError, match="must end with"):
        vr.categorical(KEY, np.zeros((3, 4), np.float32), shape=(5, 2))
    with pytest.raises(BatchingError, match="randomness must be"):
        vmapc.vmap(noisy, randomness="diff")
    with pytest.raises(BatchingError, match="randomness needs in_dims"):
        vmapc.compile(noisy, randomness="different")


def test_simplify_keeps_a_constant_keys_draw_visible_to_vmap():
    """A draw from a key made of constants is not folded into a literal before vmap sees it."""
    from vmapc.optimize import simplify
    fn = simplify(vmapc.trace(lambda x: x + vr.normal(vr.key(7), (3,)), XS[0, :3]))
    assert any(e.op == "key_use" for e in fn.eqns)
    with pytest.raises(BatchingError, match="same for every example"):
        vmapc.vmap(fn, in_dims=0, axis_size=2)


def test_numpy_random_guards_only_the_tracing_thread_and_go_away():
    """While a trace runs, another thread's np.random calls work; afterwards the functions
    are NumPy's own again."""
    import random
    import threading
    original = np.random.normal, random.random
    seen = {}

    def f(x):
        t = threading.Thread(target=lambda: seen.setdefault("other", np.random.normal(size=2)))
        t.start()
        t.join()
        return x
    vmapc.trace(f, vmapc.f32[3])
    assert seen["other"].shape == (2,)
    assert (np.random.normal, random.random) == original
    with pytest.raises(UnsupportedError, match=r"random\.random inside a traced function"):
        vmapc.trace(lambda x: x * random.random(), vmapc.f32[3])
    assert np.random.normal is original[0]


def test_keys_cross_scan_and_cond_like_the_python_loop():
    """A key carried through a scan (split every step) and a draw inside a cond's branch give
    the numbers of the same steps run by a Python loop (on arrays); batched over per-example
    keys, each example gets its own loop's numbers; a shared key drawn inside a loop body
    under randomness="different" is the documented error (split outside and pass the keys)."""
    def walk(key, x0):
        def step(carry, _):
            key, x = carry
            key, sub = vmapc.random.split(key)
            x = x + vmapc.random.normal(sub, ())
            return (key, x), x
        (_, x), xs = vmapc.scan(step, (key, x0), None, length=5)
        return xs

    def pick(key, flag):
        return vmapc.cond(flag, lambda k: vmapc.random.uniform(k, (3,)), lambda k: -vmapc.random.uniform(k, (3,)), key)

    def walk_loop(key, x0):
        out = []
        for _ in range(5):
            key, sub = vmapc.random.split(key)
            x0 = x0 + vmapc.random.normal(sub, ())
            out.append(x0)
        return np.stack(out)

    key = vmapc.random.key(3)
    x0 = np.float32(0.5)
    want = walk_loop(key, x0)
    fn = vmapc.trace(walk, key, x0)
    np.testing.assert_array_equal(vmapc.eval(fn, key, x0)[0], want)
    u = vmapc.random.uniform(key, (3,))
    np.testing.assert_array_equal(vmapc.eval(vmapc.trace(pick, key, np.bool_(True)), key, np.bool_(True))[0], u)
    np.testing.assert_array_equal(vmapc.eval(vmapc.trace(pick, key, np.bool_(False)), key, np.bool_(False))[0], -u)
    keys = vmapc.random.split(key, 4)
    batched = vmapc.vmap(fn, in_dims=(0, None), axis_size=4)
    np.testing.assert_array_equal(vmapc.eval(batched, keys, x0)[0], np.stack([walk_loop(k, x0) for k in keys]))
    with pytest.raises(BatchingError, match="inside the body of a cond, loop or scan"):
        vmapc.vmap(vmapc.trace(walk, key, x0), in_dims=(None, 0), axis_size=3, randomness="different")
