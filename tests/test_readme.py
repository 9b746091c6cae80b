"""The README's "Command line" walk-through, executed as written.

The section's ``sh`` block runs as one bash script in a temporary directory (with
``vmapc`` and ``python`` on PATH meaning this interpreter), its ``text`` block is
the output ``vmapc run`` must print, and its ``python`` block runs afterwards.
The results are checked against the model's Python function called per example.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# float32 sums of 64 and 32 products, maybe in another order than NumPy's: ~1e-5 apart at most
MLP_TOL = dict(rtol=1e-5, atol=1e-4)


def cli_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Command line\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def blocks(section: str, lang: str) -> list:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.S | re.M)


def _mlp():
    spec = importlib.util.spec_from_file_location("_readme_model", ROOT / "examples" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mlp


def test_readme_command_line_walkthrough(tmp_path, vmapc_shared_cache):
    section = cli_section()
    (script,) = blocks(section, "sh")
    (expected_output,) = blocks(section, "text")
    (python_block,) = blocks(section, "python")
    for command in ("vmapc trace", "vmapc show", "vmapc compile", "vmapc run"):
        assert command in script, f"the walk-through lost `{command}`"

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in (("vmapc", f'"{sys.executable}" -m vmapc.cli'), ("python", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"the walk-through failed:\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr and res.stderr == "", res.stderr

    # step 2 printed the batched IR: x carries the (dynamic) batch on axis 0
    assert "x:f32[B,64]@0" in res.stdout
    # step 4 printed what the README says it prints (the time varies)
    for want in expected_output.strip().splitlines():
        pattern = re.escape(want).replace(re.escape("0.412"), r"\d+\.\d+")
        assert re.search(f"^{pattern}$", res.stdout, re.M), f"{want!r} not in:\n{res.stdout}"

    mlp = _mlp()
    xs, w1, w2 = (np.load(tmp_path / f"{n}.npy") for n in ("xs", "w1", "w2"))
    expected = np.stack([mlp(x, w1, w2) for x in xs])
    got = np.load(tmp_path / "results" / "out.npy")
    assert got.shape == expected.shape == (256, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, **MLP_TOL)

    # the Python block: vmapc.load on the same artifact
    code = python_block + "\nnp.save('ys_python.npy', ys)\n"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "ys_python.npy"), expected, **MLP_TOL)


def test_quick_start_is_two_commands_that_ci_runs():
    """The README opens with two commands: one installs and runs the demo, one installs
    and runs the tests; .ci/run runs the second one (with python3 spelled out)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Quick start\n")
    section = text[start:text.index("\n## ", start + 1)]
    demo, tests = (b.strip() for b in re.findall(r"^```\n(.*?)^```", section, re.S | re.M))
    assert "\n" not in demo and "\n" not in tests
    script = demo.split("&&")[1].split()[-1]
    assert (ROOT / script).is_file(), f"the quick start runs {script}, which does not exist"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    normalize = lambda cmd: cmd.replace("python3 -m pip", "pip").replace("python3", "python")
    assert normalize(ci) == normalize(tests), (ci, tests)
