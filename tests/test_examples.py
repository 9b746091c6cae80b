"""Every example runs and checks its own answer (each asserts against NumPy)."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted(p for p in (pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, vmapc_shared_cache):
    env = dict(os.environ, VMAPC_CACHE_DIR=str(vmapc_shared_cache))
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "mlp_inference", "ensemble", "attention", "pairwise_distances"} <= names
