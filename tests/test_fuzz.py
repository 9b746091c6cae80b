"""Program fuzzing (``vmapc.fuzz``): random programs of every op family, batched by
random nested vmaps, against the per-example loop, on the reference evaluator and
compiled by IREE for the CPU.

This is the CI budget (well under a minute of CPU per test); ``scripts/soak.py``
runs the same checks for as long as you like (see ``docs/reliability.md``). The
examples are derandomized so CI is reproducible; set ``VMAPC_FUZZ_RANDOM=1`` for
new ones each run and ``VMAPC_FUZZ_SCALE=10`` for ten times as many.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmapc import fuzz, rules
from vmapc.fuzz import Mismatch

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

SCALE = float(os.environ.get("VMAPC_FUZZ_SCALE", "1"))


def budget(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    derandomize=os.environ.get("VMAPC_FUZZ_RANDOM") != "1", print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@budget(300)
@given(fuzz.programs())
def test_batched_programs_match_the_per_example_loop(prog):
    """The batched program (and its simplified form, and its text round-trip) on the
    reference evaluator: no compiler, so many programs."""
    fuzz.check_reference(prog)


@budget(12)
@given(st.lists(fuzz.programs(), min_size=1, max_size=8))
def test_compiled_programs_match_the_per_example_loop(progs):
    """Up to 8 programs per IREE module (compiling costs ~60 ms per program)."""
    exps = [fuzz.check_reference(p) for p in progs]
    fuzz.check_compiled(progs, expected=exps)


@budget(10)
@given(st.lists(fuzz.programs(max_eqns=8, max_depth=3, dtypes=(fuzz.dt.FLOAT16, fuzz.dt.FLOAT64, fuzz.dt.UINT64,
                                                               fuzz.dt.INT8, fuzz.dt.BOOL, fuzz.dt.UINT16)),
                min_size=1, max_size=8))
def test_compiled_short_programs_of_unusual_dtypes(progs):
    """Short programs over float16/float64/bool and narrow or unsigned 64-bit integers."""
    exps = [fuzz.check_reference(p) for p in progs]
    fuzz.check_compiled(progs, expected=exps)


@budget(40)
@given(fuzz.programs(max_eqns=15, control=0.5))
def test_control_flow_programs_match_the_per_example_loop(prog):
    """Programs with cond, while_loop and scan (bodies drawn from every family, nested up
    to fuzz.CONTROL_DEPTH), batched by random nested vmaps, on the reference evaluator."""
    fuzz.check_reference(prog)


@budget(3)
@given(st.lists(fuzz.programs(max_eqns=12, control=0.5), min_size=4, max_size=4))
def test_compiled_control_flow_programs_match_the_per_example_loop(progs):
    """Programs with cond, while_loop and scan, four per IREE module, compiled for the CPU."""
    exps = [fuzz.check_reference(p) for p in progs]
    fuzz.check_compiled(progs, expected=exps)


def test_a_failure_shrinks_to_a_small_program_printed_as_ir(monkeypatch):
    """Break one batching rule on purpose: the fuzzer must find it, and its message
    must show the shrunk program's IR and its vmap levels."""
    from vmapc.rules import elementwise

    def broken(b, args, bdims):      # `negative` batched as abs: wrong for negative inputs
        return elementwise.elementwise_rule(b, args, bdims, op="abs")
    monkeypatch.setitem(rules.BATCH_RULES, "negative", broken)

    @settings(max_examples=400, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.programs(max_eqns=6))
    def search(prog):
        fuzz.check_reference(prog)

    with pytest.raises(Mismatch) as info:
        search()
    text = str(info.value)
    assert "= negative" in text and "vmap(in_dims=" in text and "{ lambda" in text
    eqns = [ln for ln in text.splitlines() if " = " in ln and ln.startswith("    ")]
    assert len(eqns) <= 3, text          # shrunk: the negative and little else


def test_the_oracle_tolerates_only_rounding():
    """The tolerance comes from perturbing inexact ops: exact programs get none."""
    from vmapc import parse
    prog = fuzz.Program(parse("""{ lambda a:f32[3] b:f32[3] .
        c:f32[3] = add a b
        d:f32[3] = exp c
      in (c, d) }"""), ["any", "any"], [fuzz.Level((0, None), (0, 0), 2)], seed=5)
    exp = fuzz.Expected(prog, prog.args())
    exact, rounded = exp.tolerance
    assert np.all(exact <= 2 * fuzz.EPS[np.dtype("float32")] * np.abs(exp.outputs[0]) + fuzz.TINY[np.dtype("float32")])
    assert np.all(rounded > 0) and np.all(rounded < 1e-4 * np.abs(exp.outputs[1]))
    got = [exp.outputs[0], exp.outputs[1] * (1 + 1e-3)]
    with pytest.raises(Mismatch, match=r"output 1 differs"):
        fuzz.compare(prog, exp, got, "test")


# The issue-16 ops (sort, top_k, cumulative, bitcast, copysign) on their own, so that each is
# drawn often: the whole-family tests above draw them about one step in twenty.
SORTING_FAMILIES = ("sort", "top_k", "cumulative", "bitcast", "binary", "iota", "convert")
SORTING_OPS = {"sort", "top_k", "cumulative", "bitcast", "copysign"}


def test_the_generator_draws_sorts_scans_bitcasts_and_copysign_and_they_batch():
    """Programs over just these steps: each op appears, and every program's batched form
    matches the per-example loop on the reference evaluator."""
    seen = set()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.programs(max_eqns=6, families=SORTING_FAMILIES, binary_ops=("copysign", "add")))
    def search(prog):
        seen.update(e.op for e in prog.fn.eqns)
        fuzz.check_reference(prog)

    search()
    assert SORTING_OPS <= seen, SORTING_OPS - seen


@budget(2)
@given(st.lists(fuzz.programs(max_eqns=6, families=SORTING_FAMILIES, binary_ops=("copysign",)),
                min_size=1, max_size=6))
def test_compiled_sorts_scans_bitcasts_and_copysign(progs):
    """The same programs compiled by IREE for the CPU."""
    exps = [fuzz.check_reference(p) for p in progs]
    fuzz.check_compiled(progs, expected=exps)
