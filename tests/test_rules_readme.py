"""The code blocks of rules/README.md run, in order, in one namespace."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "rules" / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), ns)
    text = out.getvalue()
    assert "@0" in text and "cases pass" in text and "family" in text
    # the printed batched program keeps the weights' transform unbatched
    mul = next(line for line in text.splitlines() if "multiply" in line)
    assert "@" not in mul.split("=")[0]
