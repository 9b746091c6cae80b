"""Every op's forward and reverse rules against float64 central finite differences
(``vmapc.testing.check_grads``), on the reference evaluator and compiled for the CPU;
second order; and the derivative programs under vmap against the per-example loop.

Tolerances (stated once, here): finite differences use eps = 1e-6 in float64, and a
derivative must match within 1e-5 + 1e-5 * (largest magnitude compared). Compiled
derivative programs in float32 must match the reference evaluator's float32 result
within 1e-4 (relative and absolute): the derivative programs chain several
transcendental ops, each a few ulps off in IREE.
"""

import collections

import numpy as np
import pytest

from vmapc import dtypes as dt
from vmapc import rules, testing
from vmapc.autodiff import NON_DIFFERENTIABLE, jvp_function, vjp_function
from vmapc.autodiff.reverse import NO_REVERSE
from vmapc.ir import Function
from vmapc.ops import OPS

# ops whose derivative is defined as something other than the limit of the difference
# quotient: stop_gradient (0 by definition) is checked on its own below
NOT_BY_DIFFERENCES = {"stop_gradient"}
# remainder jumps where x / y crosses an integer: keep the divisor away from 0, so the
# finite difference never straddles a jump
DOMAINS = {"remainder": ["any", "positive"]}


def _samples(dtypes):
    out = []
    for s in testing.differentiable_samples(dtypes):
        op = s.fn.eqns[0].op
        if op in NOT_BY_DIFFERENCES:
            continue
        if op in DOMAINS:
            s = testing.Sample(s.name, s.fn, testing._gen(s.fn.in_types, DOMAINS[op]))
        out.append(s)
    return out


SAMPLES = _samples("all")
BY_OP = collections.defaultdict(list)
for _s in SAMPLES:
    BY_OP[_s.fn.eqns[0].op].append(_s)
SECOND_ORDER_FAMILIES = {"elementwise", "reduction", "contraction"}


def test_every_differentiable_op_is_sampled():
    have = set(BY_OP) | NOT_BY_DIFFERENCES
    assert sorted(set(OPS) - NON_DIFFERENTIABLE - have) == []


@pytest.mark.parametrize("op", sorted(BY_OP))
def test_rules_match_finite_differences(op):
    """First order for every sample of the op (every dtype, shape, broadcasting and
    attribute the samples have); second order too for the elementwise ops, the
    reductions and the contraction."""
    rng = np.random.default_rng(abs(hash(op)) % 2**32)
    order = 2 if OPS[op].family in SECOND_ORDER_FAMILIES else 1
    # ops in NO_REVERSE (while_loop) have forward mode only; reverse mode refuses them
    modes = ("fwd",) if op in NO_REVERSE else ("fwd", "rev")
    for s in BY_OP[op]:
        testing.check_grads(s.fn, s.gen(rng), order=order, modes=modes, rng=rng, name=s.name)


def test_stop_gradient_has_zero_derivative():
    s = next(s for s in testing.op_samples() if s.name == "stop_gradient_f32_2d")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y, t = testing.evaluate(jvp_function(s.fn), x, np.ones_like(x))
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(t, 0)
    y, g = testing.evaluate(vjp_function(s.fn), x, np.ones_like(x))
    np.testing.assert_array_equal(g, 0)


def test_check_grads_catches_a_wrong_rule(monkeypatch):
    """The oracle is not vacuous: a sign error in one partial derivative is caught in
    both modes."""
    from vmapc.autodiff import forward, reverse
    monkeypatch.setitem(forward.elementwise.UNARY_PARTIALS, "sin",
                        lambda b, x, out: b.emit("negative", b.emit("cos", x)))
    monkeypatch.setitem(forward.JVP_RULES, "sin", forward.elementwise._unary_rule("sin"))
    monkeypatch.setitem(reverse.VJP_RULES, "sin", reverse.elementwise._unary_rule("sin"))
    s = BY_OP["sin"][0]
    for mode in ("fwd", "rev"):
        with pytest.raises(AssertionError, match="sin"):
            testing.check_grads(s.fn, s.gen(np.random.default_rng(0)), modes=(mode,))


# --- compiled for the CPU ------------------------------------------------------------------------------

SECOND_ORDER_COMPILED = {"tanh", "power", "maximum", "divide", "reduce_max", "reduce_prod", "dot_general"}


def _compiled_cases():
    """For one sample of each differentiable op (its first in op_samples("few")): its JVP
    program and its VJP program with random tangents/cotangents, and the expected
    outputs from the reference evaluator; plus the second-order programs (JVP of VJP)
    of a few elementwise ops, reductions and the contraction. (The reference evaluator
    checks every sample and every second-order program above; here the point is that
    the derivative programs lower and compile to the same numbers.)"""
    rng = np.random.default_rng(3)
    first = {}
    for s in _samples("few") + [s for s in testing.differentiable_samples("few")
                                if s.fn.eqns[0].op in NOT_BY_DIFFERENCES]:
        first.setdefault(s.fn.eqns[0].op, s)
    cases = []
    for op, s in sorted(first.items()):
        args = s.gen(rng)
        progs = [("jvp", jvp_function(s.fn))] + ([] if op in NO_REVERSE else [("vjp", vjp_function(s.fn))])
        if op in SECOND_ORDER_COMPILED:
            progs.append(("jvp_of_vjp", jvp_function(vjp_function(s.fn))))
        for tag, p in progs:
            # the first inputs are the sample's own (in its domain); the rest are tangents
            # and cotangents
            full = list(args) + [testing.random_array(rng, v.type) for v in p.inputs[len(args):]]
            p = Function(p.inputs, p.eqns, p.outputs, name=f"{s.name}_{tag}")
            cases.append(testing.Case(f"{s.name}_{tag}", p, full, testing.evaluate(p, *full)))
    return cases


COMPILED = _compiled_cases()
N_SHARDS = 2


def test_compiled_cases_cover_every_differentiable_op():
    ops = {e.op for c in COMPILED for e in c.fn.eqns}
    assert sorted(set(OPS) - NON_DIFFERENTIABLE - ops) == []


@pytest.mark.parametrize("shard", range(N_SHARDS))
def test_compiled_derivatives_match_reference(shard, vmapc_shared_cache):
    mine = COMPILED[shard::N_SHARDS]
    outs = testing.run_compiled(mine, target="cpu", group=40, modules=1)
    for case in mine:
        for j, (g, e) in enumerate(zip(outs[case.name], case.expected)):
            assert g.shape == e.shape and g.dtype == e.dtype, case.name
            if dt.is_float(e.dtype):
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, equal_nan=True,
                                           err_msg=f"{case.name}: output {j}")
            else:
                np.testing.assert_array_equal(g, e, err_msg=f"{case.name}: output {j}")


# --- derivative programs under vmap -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["jvp", "vjp"])
def test_derivative_programs_batch_like_the_per_example_loop(mode):
    """vmap of each op's JVP / VJP program (the program ``vmap(grad(f))`` batches) equals
    the loop over examples, under the in_dims sweep (all in_dims combinations, two batch
    sizes, out_dims 0 and -1) and double nesting."""
    rng = np.random.default_rng(11)
    transform = jvp_function if mode == "jvp" else vjp_function
    n = 0
    with rules.fallback_mode("error"):
        for op in sorted(BY_OP):
            if mode == "vjp" and op in NO_REVERSE:
                continue
            s = BY_OP[op][0]
            p = transform(s.fn)
            k = len(s.fn.inputs)

            def gen(r, s=s, p=p, k=k):
                return s.gen(r) + [testing.random_array(r, v.type) for v in p.inputs[k:]]
            sample = testing.Sample(f"{s.name}_{mode}", p, gen)
            all_dims = len(p.inputs) <= 4       # {-1, None}^n grows fast: the rest sweep in_dims all 0
            for case in testing.vmap_cases(sample, rng, sizes=(2, 3), all_in_dims=all_dims):
                testing.assert_outputs_match(case, testing.run_reference(case), rtol=1e-4, atol=1e-5)
                n += 1
    assert n > 100
