"""The write ops ``scatter`` and ``update_slice`` compiled by IREE, beyond the generic sweep of
tests/test_vmap_compiled.py (whose tiny samples all take the generic scatter lowering): every
sample again through ``iree_linalg_ext.scatter``, repeated indices, sizes where each lowering
is chosen, and clamped starts of every integer dtype."""

import numpy as np
import vmapc
from vmapc import rules, testing
from vmapc.ir import TensorType as T
from vmapc.driver import compile_functions
from vmapc.lowering import indexing as lowering


def _samples(op):
    return [s for s in testing.op_samples("all") if s.fn.eqns[0].op == op]


def test_linalg_ext_matches_the_reference(monkeypatch, vmapc_shared_cache):
    """Through linalg_ext (tests/test_vmap_compiled.py runs every sample through the generic),
    single and batched with in_dims all 0: every shape/axis/batch_dims sample with `set`, every
    mode on float32 and int32, and bool."""
    monkeypatch.setattr(lowering, "SCATTER_GENERIC_LIMIT", 0)
    rng = np.random.default_rng(3)
    samples = []
    for s in _samples("scatter"):
        e = s.fn.eqns[0]
        shape, mode, d = e.inputs[0].shape, e.attrs["mode"], e.inputs[0].dtype
        if (d == np.float32 and mode == "set") or (shape == (5, 3) and d != np.bool_) \
                or (d == np.bool_ and shape == (3, 5)):
            samples.append(s)
    cases = []
    with rules.fallback_mode("error"):
        for s in samples:
            cases += testing.vmap_cases(s, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)
            args = s.gen(rng)
            cases.append(testing.Case(s.name + "_single", s.fn, args, vmapc.eval(s.fn, *args)))
    assert {lowering.scatter_lowering(e) for c in cases for e in c.fn.eqns if e.op == "scatter"} == {"linalg_ext"}
    outs = testing.run_compiled(cases, group=128, modules=1)
    for case in cases:
        testing.assert_outputs_match(case, outs[case.name])


def test_sweep_through_linalg_ext(monkeypatch, vmapc_shared_cache):
    """The full in_dims sweep (with nesting) of a scatter with batch_dims, through linalg_ext."""
    monkeypatch.setattr(lowering, "SCATTER_GENERIC_LIMIT", 0)
    rng = np.random.default_rng(4)
    (sample,) = [s for s in _samples("scatter") if s.name == "scatter_set_(2, 5, 3)_(2, 4)_1_1_f32"]
    cases = testing.vmap_cases(sample, rng, sizes=(2,), out_dims=(0,))
    outs = testing.run_compiled(cases, group=64, modules=1)
    for case in cases:
        testing.assert_outputs_match(case, outs[case.name])


def _scatter_fn(xs, is_, axis, bd, mode, dtype="float32", name="s"):
    us = xs[:axis] + is_[bd:] + xs[axis + 1:]
    return testing.single_op("scatter", [T(xs, dtype), T(is_, "int64"), T(us, dtype)],
                             {"axis": axis, "batch_dims": bd, "mode": mode}, name=name)


def test_repeated_indices_are_deterministic(vmapc_shared_cache):
    """set: the last update wins; add: every update counts (np.add.at), on big inputs where
    linalg_ext is chosen, and the same results on every call."""
    rng = np.random.default_rng(5)
    fs = [_scatter_fn((64, 8), (5000,), 0, 0, "set", name="last"),
          _scatter_fn((300,), (20000,), 0, 0, "add", "int32", name="hist"),
          _scatter_fn((50,), (4000,), 0, 0, "max", name="mx")]
    assert {lowering.scatter_lowering(f.eqns[0]) for f in fs} == {"linalg_ext"}
    compiled = compile_functions(fs)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    idx = rng.integers(-64, 64, 5000)
    upd = rng.standard_normal((5000, 8)).astype(np.float32)
    want = x.copy()
    for i, row in zip(idx, upd):      # NumPy, one assignment at a time
        want[i] = row
    for _ in range(3):
        np.testing.assert_array_equal(compiled["last"](x, idx, upd)[0], want)
    h = np.zeros(300, np.int32)
    idx = rng.integers(0, 300, 20000)
    want = h.copy()
    np.add.at(want, idx, np.ones(20000, np.int32))
    np.testing.assert_array_equal(compiled["hist"](h, idx, np.ones(20000, np.int32))[0], want)
    m = np.full(50, -np.inf, np.float32)
    idx = rng.integers(0, 50, 4000)
    upd = rng.standard_normal(4000).astype(np.float32)
    upd[7] = np.nan
    want = m.copy()
    with np.errstate(invalid="ignore"):
        np.maximum.at(want, idx, upd)
    np.testing.assert_array_equal(compiled["mx"](m, idx, upd)[0], want)


def test_out_of_range_indices_clamp(vmapc_shared_cache):
    f = _scatter_fn((6,), (4,), 0, 0, "add", "int32")
    idx = np.array([-100, 100, -1, 2])
    x = np.zeros(6, np.int32)
    upd = np.array([1, 10, 100, 1000], np.int32)
    want = np.array([1, 0, 1000, 0, 0, 110], np.int32)
    np.testing.assert_array_equal(vmapc.eval(f, x, idx, upd)[0], want)
    np.testing.assert_array_equal(compile_functions([f])["s"](x, idx, upd)[0], want)


def test_update_slice_clamps_starts_of_every_int_dtype(vmapc_shared_cache):
    dtypes = ["int8", "uint8", "int16", "int64"]
    fns = [testing.single_op("update_slice", [T((6, 5), "float32"), T((2, 3), "float32"), T((), d), T((), d)], {},
                             name=f"u_{d}") for d in dtypes]
    compiled = compile_functions(fns)
    x = np.arange(30, dtype=np.float32).reshape(6, 5)
    upd = -np.ones((2, 3), np.float32)
    for fn, d in zip(fns, dtypes):
        info = np.iinfo(d)
        for s0, s1 in [(0, 0), (5, 4), (max(info.min, -3), 1), (min(info.max, 100), 2)]:
            a, b = np.asarray(s0, d), np.asarray(s1, d)
            want = x.copy()
            r, c = min(max(int(s0), 0), 4), min(max(int(s1), 0), 2)
            want[r:r + 2, c:c + 3] = upd
            np.testing.assert_array_equal(vmapc.eval(fn, x, upd, a, b)[0], want)
            np.testing.assert_array_equal(compiled[fn.name](x, upd, a, b)[0], want)
