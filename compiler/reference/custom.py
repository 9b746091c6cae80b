"""Reference rule of ``custom``: run the body. A custom op's registered rules (batching,
derivatives, lowering) change how the op is transformed or compiled, never what it
computes, so the body is the oracle they are checked against."""

from __future__ import annotations

from .control import run_sub


def _custom(*operands, name, body):
    return run_sub(body, operands)


RULES = {"custom": _custom}
