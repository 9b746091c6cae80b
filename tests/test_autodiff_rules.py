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
import zlib

import numpy as np
import pytest

import vmapc
from vmapc import dtypes as dt
from vmapc import rules, testing
from vmapc.autodiff import NON_DIFFERENTIABLE, jvp_function, vjp_function
from vmapc.autodiff.reverse import NO_REVERSE
from vmapc.ir import Function
from vmapc.ops import OPS
from vmapc.vmap import vmap

# ops whose derivative is defined as something other than the limit of the difference
# quotient: stop_gradient (0 by definition) is checked on its own below
NOT_BY_DIFFERENCES = {"stop_gradient"}
# remainder jumps where x / y crosses an integer: keep the divisor away from 0, so the
# finite difference never straddles a jump
DOMAINS = {"remainder": ["any", "positive"]}
# sorts and running extremes are not differentiable where elements tie (the samples'
# "ties" values): check them at distinct values, a shuffled grid of step 0.25 (exact in
# float16 too) (the rules' choice at ties is pinned in test_autodiff_integration.py)
DISTINCT = {"sort", "top_k", "cumulative"}


def _distinct_gen(types):
    def gen(rng):
        def one(t):
            if not dt.is_float(t.dtype):
                return testing.random_array(rng, t)
            n = int(np.prod(t.shape))
            return ((rng.permutation(n) - n / 2) * 0.25).reshape(t.shape).astype(t.dtype)
        return [one(t) for t in types]
    return gen


def _samples(dtypes):
    out = []
    for s in testing.differentiable_samples(dtypes):
        e = s.fn.eqns[0]
        if e.op in NOT_BY_DIFFERENCES or "collective" in s.tags:
            continue
        if e.op in DOMAINS:
            s = testing.Sample(s.name, s.fn, testing._gen(s.fn.in_types, DOMAINS[e.op]))
        if e.op in DISTINCT:
            s = testing.Sample(s.name, s.fn, _distinct_gen(s.fn.in_types))
        out.append(s)
    return out


SAMPLES = _samples("all")
BY_OP = collections.defaultdict(list)
for _s in SAMPLES:
    BY_OP[_s.fn.eqns[0].op].append(_s)
SECOND_ORDER_FAMILIES = {"elementwise", "reduction", "contraction"}
# the collectives only mean something under the vmap that binds their axis: checked on
# their own (test_collective_rules_match_finite_differences_under_vmap)
COLLECTIVE_SAMPLES = [s for s in testing.differentiable_samples("all") if "collective" in s.tags]
COLLECTIVE_OPS = {s.fn.eqns[0].op for s in COLLECTIVE_SAMPLES}


def test_every_differentiable_op_is_sampled():
    have = set(BY_OP) | NOT_BY_DIFFERENCES | COLLECTIVE_OPS
    assert sorted(set(OPS) - NON_DIFFERENTIABLE - have) == []


@pytest.mark.parametrize("op", sorted(COLLECTIVE_OPS))
def test_collective_rules_match_finite_differences_under_vmap(op):
    """A collective's derivative couples the examples: the JVP and VJP programs of the
    per-example program, batched by the vmap that binds the axis, must be the derivative
    of the batched program (central differences in float64; reverse mode by the
    dot-product test). This is where psum's transpose being psum is checked."""
    from vmapc.testing import _collective_program
    rng = np.random.default_rng(5)
    eps, B = 1e-6, 3
    for s in COLLECTIVE_SAMPLES:
        if s.fn.eqns[0].op != op:
            continue
        fn = testing.to_float64(_collective_program(s, B))

        def batched(p):
            return vmap(p, in_dims=(0,) * len(p.inputs), out_dims=0, axis_size=B, axis_name="i")
        f, jf, vf = batched(fn), batched(jvp_function(fn)), batched(vjp_function(fn))
        x = rng.normal(size=(B,) + fn.inputs[0].shape)
        if op in ("pmax", "pmin"):
            x[1] = x[0]          # a tie between two examples (not at the extreme of every element)
            x[0] += 5.0          # ... broken at the extreme
        t = rng.normal(size=x.shape)
        (fp,), (fm,) = testing.evaluate(f, x + eps * t), testing.evaluate(f, x - eps * t)
        fd = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(testing.evaluate(jf, x, t)[1], fd, rtol=1e-5, atol=1e-5, err_msg=s.name)
        ct = rng.normal(size=fd.shape)
        g = testing.evaluate(vf, x, ct)[1]
        np.testing.assert_allclose(np.sum(g * t), np.sum(ct * fd), rtol=1e-5, atol=1e-5, err_msg=s.name)


def test_pmax_splits_the_derivative_between_tied_examples():
    """Where examples tie for the maximum, each gets an equal share (reduce_max's rule)."""
    s = next(s for s in COLLECTIVE_SAMPLES if s.name.startswith("pmax_f64_0d"))
    jf = vmap(jvp_function(s.fn), in_dims=(0, 0), out_dims=0, axis_size=3, axis_name="i")
    _, tan = testing.evaluate(jf, np.array([2.0, 2.0, 1.0]), np.array([1.0, 3.0, 100.0]))
    np.testing.assert_allclose(tan, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("op", sorted(BY_OP))
def test_rules_match_finite_differences(op):
    """First order for every sample of the op (every dtype, shape, broadcasting and
    attribute the samples have); second order too for the elementwise ops, the
    reductions and the contraction."""
    rng = np.random.default_rng(zlib.crc32(op.encode()))     # the same samples in every run
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

SECOND_ORDER_COMPILED = {"power", "maximum", "reduce_prod", "dot_general"}
COMPILE_ALWAYS = {"cond", "scan", "while_loop", "sort", "top_k", "scatter", "update_slice", "take",
                  "take_along_axis", "dynamic_slice", "cumulative", "reduce_max", "psum", "pmax", "pmin",
                  "all_gather"}


def _derivative_cases():
    """For one sample of each differentiable op (its first in op_samples("few")): its JVP
    program and its VJP program with random tangents/cotangents, and the expected
    outputs from the reference evaluator; the second-order programs (JVP of VJP) of a few
    ops; and each collective's JVP and VJP programs batched by the vmap that binds the
    axis."""
    rng = np.random.default_rng(3)
    first = {}
    for s in _samples("few") + [s for s in testing.differentiable_samples("few")
                                if s.fn.eqns[0].op in NOT_BY_DIFFERENCES]:
        first.setdefault(s.fn.eqns[0].op, s)
    for op, attr in (("cumulative", "combine"), ("scatter", "mode")):   # each combine's rule is different
        if op in first:
            s = first.pop(op)
            first[(op, s.fn.eqns[0].attrs[attr])] = s
        for s in BY_OP[op]:
            if s.fn.inputs[0].dtype == dt.FLOAT32:
                first.setdefault((op, s.fn.eqns[0].attrs[attr]), s)
    cases = []

    def add(name, p, args, op):
        # the first inputs are the sample's own (in its domain); the rest are tangents
        # and cotangents
        full = list(args) + [testing.random_array(rng, v.type) for v in p.inputs[len(args):]]
        p = Function(p.inputs, p.eqns, p.outputs, name=name)
        cases.append((op, testing.Case(name, p, full, testing.evaluate(p, *full))))
    for key, s in sorted(first.items(), key=lambda kv: str(kv[0])):
        op = s.fn.eqns[0].op
        args = s.gen(rng)
        progs = [("jvp", jvp_function(s.fn))] + ([] if op in NO_REVERSE else [("vjp", vjp_function(s.fn))])
        if op in SECOND_ORDER_COMPILED:
            progs.append(("jvp_of_vjp", jvp_function(vjp_function(s.fn))))
        for tag, p in progs:
            add(f"{s.name}_{tag}", p, args, op)
    from vmapc.testing import _collective_program
    for op in sorted(COLLECTIVE_OPS):
        s = next(s for s in COLLECTIVE_SAMPLES if s.fn.eqns[0].op == op and s.fn.inputs[0].rank)
        fn = _collective_program(s, 3)
        for tag, p in (("jvp", jvp_function(fn)), ("vjp", vjp_function(fn))):
            p = vmap(p, in_dims=(0,) * len(p.inputs), out_dims=0, axis_size=3, axis_name="i")
            add(f"{s.name}_{tag}_vmapped", p, [], op)
    return cases


# Which derivative programs are compiled here (IREE takes ~0.5-3 s per program on the CI
# machine, so not all: every one is checked on the reference evaluator above, and every
# op's lowering is compiled by test_vmap_compiled.py). Compiled: the programs of the ops
# whose rules build something other than the op itself or elementwise arithmetic (loops,
# branches, sorts, gathers, scatters, scans, extremes, collectives), and the second-order
# programs, whose elementwise partials chain most of the elementwise ops. Left out, by
# the sample-name prefixes below:
# * JVP programs of linear ops: the JVP is the op itself applied to the tangents;
JVP_IS_THE_OP = ("take_", "dynamic_slice_", "update_slice_", "scatter_set_", "scatter_add_",
                 "cumulative_add_", "psum_", "all_gather_")
# * programs that another test compiles end to end, through the front end: the reverse
#   programs in test_autodiff_integration.py's module (np.sort, top_k, np.cumsum,
#   np.cumprod, np.maximum.accumulate, y[i] = v, np.add.at, slice assignment, a scan,
#   pmean, pmax, all_gather under grad) and in test_autodiff_control.py's (cond, scans,
#   fori_loop), and while_loop's JVP there.
COMPILED_END_TO_END = {"vjp": ("sort_", "top_k_", "cumulative_add_", "cumulative_multiply_", "cumulative_maximum_",
                               "scatter_set_", "scatter_add_", "update_slice_", "cond_", "scan_", "psum_", "pmax_",
                               "all_gather_"),
                       "jvp": ("while_",)}
COMPILED_END_TO_END_OPS = {"sort", "top_k", "cumulative", "scatter", "update_slice", "cond", "scan", "psum", "pmax",
                           "all_gather", "while_loop"}
# * the min twins of max rules: the same code with the comparison reversed (the lowering
#   of the min ops themselves is compiled by test_vmap_compiled.py).
MIN_TWINS = ("pmin_", "cumulative_minimum_", "scatter_min_")
MIN_TWIN_OPS = {"pmin"}


def _compiled_cases(cases):
    def keep(op, name):
        if name.endswith("_jvp_of_vjp"):
            return True
        mode = "vjp" if name.endswith(("_vjp", "_vjp_vmapped")) else "jvp"
        if op not in COMPILE_ALWAYS or name.startswith(MIN_TWINS):
            return False
        if mode == "jvp" and name.startswith(JVP_IS_THE_OP):
            return False
        return not name.startswith(COMPILED_END_TO_END[mode])
    return [c for op, c in cases if keep(op, c.name)]


DERIVATIVE_CASES = _derivative_cases()
COMPILED = _compiled_cases(DERIVATIVE_CASES)


def test_compiled_cases_cover_every_rule_that_is_not_elementwise_arithmetic():
    names = {c.name for c in COMPILED}
    compiled = {op for op, c in DERIVATIVE_CASES if c.name in names}
    others = {op for op in OPS if OPS[op].family in ("elementwise", "shape", "contraction")
              or op in ("reduce_sum", "reduce_prod", "reduce_min")
              or op == "custom"}     # (a custom op's derivatives are its user's: tests/test_custom.py)
    assert sorted(set(OPS) - NON_DIFFERENTIABLE - others - compiled - COMPILED_END_TO_END_OPS - MIN_TWIN_OPS) == []


def _program_cases():
    """The end-to-end programs of the other autodiff test files (their ``compiled_program()``):
    gradients through the front end, control flow, Hessians and Jacobians. Compiled in the
    same module as the rules' programs, since IREE's cost per module is seconds."""
    import test_autodiff
    import test_autodiff_control
    import test_autodiff_integration
    cases, tol = [], {}
    for module in (test_autodiff, test_autodiff_control, test_autodiff_integration):
        f, args, rtol, atol = module.compiled_program()
        prog = vmapc.trace(f, *args)
        name = f"{module.__name__}:{f.__name__}"
        cases.append(testing.Case(name, prog, list(args), vmapc.eval(prog, *args)))
        tol[name] = (rtol, atol)
    return cases, tol


def test_compiled_derivatives_match_reference(vmapc_shared_cache):
    """The one compiled module of the autodiff tests: the rules' programs (COMPILED) in
    one function, and the end-to-end programs of the other files in another."""
    programs, tol = _program_cases()
    outs = testing.run_compiled(COMPILED + programs, target="cpu", group=len(COMPILED), modules=1)
    for case in COMPILED + programs:
        rtol, atol = tol.get(case.name, (1e-4, 1e-4))
        for j, (g, e) in enumerate(zip(outs[case.name], case.expected)):
            assert g.shape == e.shape and g.dtype == e.dtype, case.name
            if dt.is_float(e.dtype):
                np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, equal_nan=True,
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
            # {-1, None}^n grows fast: programs of more than 3 inputs (the JVPs of binary ops)
            # sweep in_dims all 0; every op's own batching rule is swept in test_rules.py
            all_dims = len(p.inputs) <= 3
            # one batch size: the batching rules of every op are swept over sizes in test_rules.py
            for case in testing.vmap_cases(sample, rng, sizes=(3,), all_in_dims=all_dims):
                testing.assert_outputs_match(case, testing.run_reference(case), rtol=1e-4, atol=1e-5)
                n += 1
    assert n > 100
