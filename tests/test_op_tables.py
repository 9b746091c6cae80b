"""Every op has an entry in every interpretation's table (design.md section 3)."""

from vmapc import lowering, reference, rules
from vmapc.ops import OPS


def test_every_op_has_a_reference_rule():
    assert sorted(set(OPS) - set(reference.RULES)) == []


def test_every_op_has_a_lowering():
    assert sorted(set(OPS) - set(lowering.LOWERINGS)) == []


def test_every_op_has_a_batching_rule():
    assert sorted(op for op in OPS if rules.rule_kind(op) == "fallback") == []
    assert sorted(set(OPS) - set(rules.BATCH_RULES)) == []


def test_tables_have_no_strays():
    for table in (reference.RULES, lowering.LOWERINGS, rules.BATCH_RULES):
        assert sorted(set(table) - set(OPS)) == []


def test_every_op_is_differentiable_or_listed_as_a_constant():
    from vmapc.autodiff import JVP_RULES, NON_DIFFERENTIABLE, VJP_RULES
    assert sorted(set(OPS) - set(JVP_RULES) - NON_DIFFERENTIABLE) == []
    # reverse mode refuses while_loop with a clear error (vmapc.autodiff.reverse.NO_REVERSE)
    from vmapc.autodiff.reverse import NO_REVERSE
    assert sorted(set(OPS) - set(VJP_RULES) - NON_DIFFERENTIABLE - set(NO_REVERSE)) == []
    assert sorted(NON_DIFFERENTIABLE & (set(JVP_RULES) | set(VJP_RULES))) == []
    for table in (JVP_RULES, VJP_RULES, NON_DIFFERENTIABLE):
        assert sorted(set(table) - set(OPS)) == []
