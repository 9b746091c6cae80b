"""docs/scaling.md's walk-through, executed as written: its ``sh`` block runs as one
bash script in a temporary directory (``vmapc`` and ``python`` meaning this
interpreter), its ``text`` block is what the two ``vmapc run`` commands must print
(times aside), and its first ``python`` block runs afterwards. The results are
checked against the model's Python function called per example.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the walk-through's --workers run needs Dask (pip install 'vmapc[dask]')")

from scale_data import MLP_TOL, mlp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def section() -> str:
    text = (ROOT / "docs" / "scaling.md").read_text()
    start = text.index("\n## Walk-through\n")
    return text[start:text.index("\n## ", start + 1)]


def blocks(text: str, lang: str) -> list:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def test_scaling_walkthrough(tmp_path, vmapc_shared_cache):
    text = section()
    (script,) = blocks(text, "sh")
    (expected_output,) = blocks(text, "text")
    python_block = blocks(text, "python")[0]
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
    assert res.stderr == "", res.stderr
    for want in expected_output.strip().splitlines():
        pattern = re.escape(want).replace(re.escape("0.412"), r"\d+\.\d+").replace(re.escape("970,874"), r"[\d,]+")
        assert re.search(f"^{pattern}$", res.stdout, re.M), f"{want!r} not in:\n{res.stdout}"

    xs = np.load(tmp_path / "big.npy", mmap_mode="r")
    w1, w2 = np.load(tmp_path / "w1.npy"), np.load(tmp_path / "w2.npy")
    rows = np.random.default_rng(0).choice(len(xs), 300, replace=False)
    want = np.stack([mlp(xs[i], w1, w2) for i in rows])
    for out in ("res_local", "res_dask"):
        got = np.load(tmp_path / out / "out.npy", mmap_mode="r")
        assert got.shape == (400_000, 10) and os.listdir(tmp_path / out) == ["out.npy"]
        np.testing.assert_allclose(got[rows], want, **MLP_TOL, err_msg=out)

    res = subprocess.run([sys.executable, "-c", python_block], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines == ["(400000, 10) float32 (50000, 50000, 50000)", "0.0"], lines
    np.testing.assert_allclose(np.load(tmp_path / "ys.npy")[rows], want, **MLP_TOL)
