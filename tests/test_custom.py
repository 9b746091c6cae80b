"""Custom ops (``vmapc.custom_op``): the op in the IR, its body as the default in every
interpretation, the user's batching rules (three flavours), derivatives and lowering,
``.vir`` files read where the op is not defined, and ``vmapc.testing.check_batching_rule``.

Expected values come from NumPy per example (or the body on the reference evaluator, which
the tests check against NumPy first), never from the rules under test.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import vmapc
from vmapc import custom, rules, testing
from vmapc.errors import CustomOpError, CustomOpWarning

RNG = np.random.default_rng(19)


def np_lse(x):
    m = x.max(-1, keepdims=True)
    return (np.log(np.exp(x - m).sum(-1)) + m[..., 0]).astype(x.dtype)


def _lse_op(name):
    """A fresh logsumexp-over-the-last-axis op with no rules."""
    @vmapc.custom_op(name)
    def lse(x):
        m = np.max(x, axis=-1, keepdims=True)
        return np.log(np.sum(np.exp(x - m), axis=-1)) + m[..., 0]
    return lse


def test_the_op_is_one_equation_that_carries_its_body_and_round_trips_as_text():
    lse = _lse_op("t.lse_text")
    f = vmapc.trace(lambda x: lse(x) * 2, vmapc.f32[2, 5])
    (e, *_) = f.eqns
    assert e.op == "custom" and e.attrs["name"] == "t.lse_text" and isinstance(e.attrs["body"], vmapc.Function)
    text = f.text(locations=True)
    assert 'custom[name="t.lse_text", body={ lambda' in text
    g = vmapc.parse(text).verify()
    assert g == f
    x = RNG.normal(size=(2, 5)).astype(np.float32)
    np.testing.assert_allclose(vmapc.eval(g, x)[0], 2 * np_lse(x), rtol=1e-6)


def test_called_on_arrays_it_compiles_and_runs(vmapc_shared_cache):
    lse = _lse_op("t.lse_eager")
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(lse(x), np_lse(x), rtol=1e-6)


def test_without_a_rule_it_batches_as_its_body_in_the_full_sweep():
    lse = _lse_op("t.lse_body")
    with rules.fallback_mode("error"):
        n = testing.check_batching_rule(lse, RNG.normal(size=(2, 3)).astype(np.float32))
    assert n >= 10


def test_a_body_with_random_draws_follows_the_vmaps_randomness():
    @vmapc.custom_op("t.noisy")
    def noisy(key, x):
        return x + vmapc.random.normal(key, x.shape, x.dtype)

    key = vmapc.random.key(0)
    f = vmapc.trace(noisy, key, vmapc.f32[3])
    xs = np.zeros((4, 3), np.float32)
    bf = vmapc.vmap(f, in_dims=(None, 0), axis_size=4, randomness="different")
    (out,) = vmapc.eval(bf, key, xs, np.uint32(0))     # and example_offset
    assert len({tuple(r) for r in out}) == 4          # each example its own numbers
    (same,) = vmapc.eval(vmapc.vmap(f, in_dims=(None, 0), axis_size=4, randomness="same"), key, xs)
    np.testing.assert_array_equal(same, np.broadcast_to(same[0], same.shape))
    with pytest.raises(vmapc.BatchingError, match="draws from a key that is the same for every example"):
        vmapc.vmap(f, in_dims=(None, 0), axis_size=4)


# --- the user's batching rules ------------------------------------------------------------------------

def _with_rule(name, flavour):
    lse = _lse_op(name)
    calls = []
    if flavour == "dims":
        @lse.def_vmap
        def _(axis_size, in_dims, x):
            calls.append(in_dims)
            d = in_dims[0]
            if d == x.ndim - 1:
                x, d = np.moveaxis(x, d, 0), 0
            return lse(x), d
    elif flavour == "front":
        @lse.def_vmap(front=True)
        def _(axis_size, in_batched, x):
            calls.append(in_batched)
            return lse(x), True        # the batch arrives first and stays first
    else:
        from vmapc.rules.helpers import move_bdim_to_front

        @lse.def_vmap(ir=True)
        def _(b, args, bdims):
            calls.append(tuple(bdims))
            x = move_bdim_to_front(b, args[0], bdims[0])
            return b.emit_multi("custom", [x], {"name": lse.name, "body": _body_at(lse, x)}), [0]
    return lse, calls


def _body_at(op, x):
    """op's body traced at x's type (for an IR-level rule that re-emits the op)."""
    return vmapc.trace(lambda v: op(v), vmapc.ShapeDtype(x.shape, x.dtype)).eqns[0].attrs["body"]


@pytest.mark.parametrize("flavour", ["dims", "front", "ir"])
def test_user_rule_is_used_and_passes_the_sweep(flavour):
    lse, calls = _with_rule(f"t.lse_rule_{flavour}", flavour)
    n = testing.check_batching_rule(lse, RNG.normal(size=(2, 3)).astype(np.float32))
    assert n >= 10 and calls, "the rule was never called"
    if flavour == "dims":
        assert {c for c in calls} >= {(0,), (2,)}       # it saw the batch at 0 and at -1
    if flavour == "front":
        assert all(c == (True,) for c in calls)


def test_check_batching_rule_finds_a_rule_that_mixes_examples():
    lse = _lse_op("t.lse_broken")

    @lse.def_vmap
    def _(axis_size, in_dims, x):
        d = in_dims[0]
        if d == x.ndim - 1:     # a reshape is not a transpose: right shape, examples mixed up
            x, d = x.reshape((axis_size,) + x.shape[:-1]), 0
        return lse(x), d
    with pytest.raises(AssertionError, match="t.lse_broken"):
        testing.check_batching_rule(lse, RNG.normal(size=(2, 3)).astype(np.float32))


def test_check_batching_rule_finds_a_rule_with_a_wrong_value_but_right_type():
    @vmapc.custom_op("t.scale")
    def scale(x, s):
        return x * s

    @scale.def_vmap(front=True)
    def _(axis_size, in_batched, x, s):
        if in_batched[1] and not in_batched[0]:
            return x * s[0], False         # uses example 0's s for every example: wrong
        return x * (s[:, None] if in_batched[1] else s), any(in_batched)
    with pytest.raises(AssertionError):
        testing.check_batching_rule(scale, np.ones(3, np.float32), np.float32(2))


@pytest.mark.parametrize("bad, message", [
    (lambda axis_size, in_dims, x: (np.sum(x, axis=(-1, -2)), in_dims[0]),
     r"custom op t\.lse_bad: its batching rule returned f32\[4\] with batch dim 0 for output 0; for a batch of 4 "
     r"that output must be f32\[4,2\]"),
    (lambda axis_size, in_dims, x: ((x, x), (0, 0)), r"custom op t\.lse_bad: its batching rule returned 2 output"),
    (lambda axis_size, in_dims, x: (x[..., 0], 5), r"custom op t\.lse_bad: its batching rule gave output 0 the "
                                                   r"batch dim 5"),
    (lambda axis_size, in_dims, x: x, r"custom op t\.lse_bad: its batching rule must return a pair"),
])
def test_a_rule_with_wrong_results_is_a_clear_error_naming_the_op(bad, message):
    lse = _lse_op("t.lse_bad")
    lse.def_vmap(bad)
    with pytest.raises(CustomOpError, match=message):
        vmapc.vmap(lambda x: lse(x))(np.zeros((4, 2, 3), np.float32))


def test_check_batching_rule_passes_every_internal_rule():
    """The public tool is vmapc's own sweep: every op's first sample passes it (the
    collectives need a named axis, which the sweep of tests/test_rules.py gives them)."""
    rng = np.random.default_rng(5)
    seen = set()
    with rules.fallback_mode("error"):
        for s in testing.op_samples("few"):
            op = s.fn.eqns[0].op
            if op in seen or "collective" in s.tags or not s.fn.inputs:
                continue
            seen.add(op)
            assert testing.check_batching_rule(s.fn, *s.gen(rng), rng=rng) > 0
    from vmapc.ops import OPS
    # every op with operands (iota and constant have none: nothing to batch) was checked
    assert {o for o in OPS if OPS[o].family != "collective"} - seen <= {"iota", "constant"}


def test_check_batching_rule_takes_an_internal_op_by_name():
    x = RNG.normal(size=(2, 3)).astype(np.float32)
    assert testing.check_batching_rule("reduce_sum", x, axes=(1,)) > 0
    assert testing.check_batching_rule(lambda a: np.cumsum(a, axis=0), x) > 0


# --- derivatives ------------------------------------------------------------------------------------------

def _softplus(name, jvp=False, vjp=False):
    """log(1 + exp(x)): its body overflows for x > ~88 in float32 (inf / inf = NaN in the
    derived derivative); the rules use the sigmoid, which does not."""
    @vmapc.custom_op(name)
    def softplus(x):
        return np.log(1 + np.exp(x))
    if jvp:
        @softplus.def_jvp
        def _(primals, tangents):
            (x,), (t,) = primals, tangents
            return softplus(x), t / (1 + np.exp(-x))
    if vjp:
        @softplus.def_vjp
        def _(primals, out, ct):
            (x,) = primals
            return (ct / (1 + np.exp(-x)),)
    return softplus


def test_derivatives_of_the_body_by_default():
    sp = _softplus("t.sp_plain")
    x = np.linspace(-3, 3, 5).astype(np.float32)
    testing.check_grads(lambda v: sp(v), [x], order=2)
    g = vmapc.eval(vmapc.autodiff.vjp_function(vmapc.trace(lambda v: sp(v).sum(), x)), x, np.float32(1))[1]
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-x)), rtol=1e-6)
    big = np.array([100.0], np.float32)
    assert np.isnan(vmapc.eval(vmapc.autodiff.vjp_function(vmapc.trace(lambda v: sp(v).sum(), big)),
                               big, np.float32(1))[1][0])    # why the rules below exist


def test_user_jvp_and_vjp_are_used_and_checked_by_check_grads():
    sp = _softplus("t.sp_rules", jvp=True, vjp=True)
    x = np.array([-2.0, 0.5, 100.0], np.float32)
    f = vmapc.trace(lambda v: sp(v).sum(), x)
    g = vmapc.eval(vmapc.autodiff.vjp_function(f), x, np.float32(1))[1]
    t = vmapc.eval(vmapc.autodiff.jvp_function(f), x, np.ones(3, np.float32))[1]
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(g, want, rtol=1e-6)
    np.testing.assert_allclose(t, want.sum(), rtol=1e-6)
    testing.check_grads(lambda v: sp(v), [x[:2]], order=2)
    # per-example gradients, compiled: grad inside vmap uses the rule
    pe = vmapc.compile(vmapc.vmap(vmapc.grad(lambda v: sp(v).sum())))(np.stack([x, -x]))
    np.testing.assert_allclose(pe, np.stack([want, 1 - want]), rtol=1e-6)


def test_the_op_samples_derivatives_match_finite_differences():
    """The custom samples of op_samples (one differentiated through its body, one through its
    own jvp and vjp rules), to second order (tests/test_autodiff_rules.py runs them too)."""
    rng = np.random.default_rng(2)
    for s in testing.custom_samples():
        testing.check_grads(s.fn, s.gen(rng), order=2, rng=rng, name=s.name)


def test_check_grads_finds_a_wrong_user_derivative():
    sp = _softplus("t.sp_wrong")

    @sp.def_vjp
    def _(primals, out, ct):
        return (ct * np.exp(-primals[0]),)       # wrong
    x = np.array([-1.0, 0.5], np.float32)
    with pytest.raises(AssertionError, match="reverse mode"):
        testing.check_grads(lambda v: sp(v), [x], modes=("rev",))


def test_a_derivative_rule_of_the_wrong_type_is_a_clear_error():
    sp = _softplus("t.sp_badtype")

    @sp.def_jvp
    def _(primals, tangents):
        return primals[0], np.sum(tangents[0])
    with pytest.raises(CustomOpError, match=r"custom op t\.sp_badtype: its jvp rule returned a tangent f32\[\] for "
                                            r"output 0, which is f32\[3\]"):
        vmapc.autodiff.jvp_function(vmapc.trace(lambda v: sp(v), vmapc.f32[3]))


# --- lowering ---------------------------------------------------------------------------------------------

def test_user_lowering_is_used_and_the_body_is_the_default(vmapc_shared_cache):
    from iree.compiler.dialects import arith

    @vmapc.custom_op("t.double")
    def double(x):
        return x * 2

    f = vmapc.trace(lambda v: double(v) + 1, vmapc.f32[4])
    assert "mulf" in vmapc.lowering.lower([f]).text

    @double.def_lowering
    def _(lctx, eqn, xs):
        t = eqn.outputs[0].type
        return [lctx.map_scalars(xs, [t], t, lambda a: arith.addf(a, a))]
    text = vmapc.lowering.lower([f]).text
    assert "mulf" not in text and "addf" in text
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(vmapc.compile(vmapc.vmap(lambda v: double(v) + 1))(x), 2 * x + 1)


# --- a program read where the op is not defined -------------------------------------------------------------

def test_a_vir_file_falls_back_to_the_body_and_says_so_once(monkeypatch, vmapc_shared_cache):
    lse, calls = _with_rule("t.lse_vir", "dims")
    text = vmapc.trace(lambda x: lse(x) * 2, vmapc.f32[2, 5]).text(locations=True)
    monkeypatch.delitem(custom.REGISTRY, "t.lse_vir")       # as in a process that never defined it
    g = vmapc.parse(text)
    x = RNG.normal(size=(3, 2, 5)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf = vmapc.vmap(g, in_dims=0, axis_size=3)
        from vmapc.driver import compile_functions
        (out,) = compile_functions([bf], target="cpu")[bf.name](x)
        vmapc.vmap(g, in_dims=1, axis_size=2)
    mine = [w for w in caught if issubclass(w.category, CustomOpWarning)]
    assert len(mine) == 1 and "'t.lse_vir' is not defined in this process" in str(mine[0].message)
    assert calls == []
    np.testing.assert_allclose(out, 2 * np_lse(x), rtol=1e-5)


def test_the_cli_compiles_and_runs_a_vir_with_a_custom_op(tmp_path, vmapc_shared_cache):
    model = tmp_path / "cmodel.py"
    model.write_text("import numpy as np\nimport vmapc\n\n"
                     "@vmapc.custom_op('cli.lse')\n"
                     "def lse(x):\n    m = np.max(x)\n    return m + np.log(np.sum(np.exp(x - m)))\n\n"
                     "def f(x):\n    return lse(x) * 2\n")
    cli = [sys.executable, "-m", "vmapc.cli"]

    def run(*args):
        res = subprocess.run([*cli, *args], cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        return res
    run("trace", "cmodel.py:f", "--arg", "x=f32[5]", "-o", "m.vir")
    assert 'custom[name="cli.lse"' in (tmp_path / "m.vir").read_text()
    res = run("compile", "m.vir", "--in-dims", "0", "--batch", "dynamic", "-o", "art")
    assert "CustomOpWarning" in res.stderr and "cli.lse" in res.stderr     # this process never imported cmodel
    xs = RNG.normal(size=(4, 5)).astype(np.float32)
    np.save(tmp_path / "xs.npy", xs)
    run("run", "art", "--input", "x=xs.npy", "--output-dir", "res")
    (out,) = [np.load(p) for p in (tmp_path / "res").glob("*.npy")]
    np.testing.assert_allclose(out, 2 * np_lse(xs), rtol=1e-5)


# --- mistakes in defining and calling ---------------------------------------------------------------------

def test_mistakes_are_clear_errors():
    lse = _lse_op("t.lse_mistakes")
    with pytest.raises(CustomOpError, match="positional array arguments only"):
        vmapc.trace(lambda x: lse(x=x), vmapc.f32[3])
    with pytest.raises(CustomOpError, match="argument 0 is .*; a custom op takes arrays"):
        vmapc.trace(lambda x: lse((x, x)), vmapc.f32[3])
    with pytest.raises(CustomOpError, match="expects a function"):
        lse.def_vmap(3)
    with pytest.raises(CustomOpError, match="the name must be"):
        vmapc.custom_op('bad"name')(lambda x: x)

    def outer(x, y):
        @vmapc.custom_op("t.closure")
        def g(v):
            return v * y                  # y is a traced value of outer
        return g(x)
    with pytest.raises(CustomOpError, match=r"custom op t\.closure: its function uses 1 traced value"):
        vmapc.trace(outer, vmapc.f32[3], vmapc.f32[3])
