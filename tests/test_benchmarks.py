"""The benchmark's smoke variant: every available contender's answer, checked against
NumPy at a tiny batch (5, a prime, run in chunks of 2 with the last one padded). No
timing is asserted. JAX and PyTorch are optional (the ``bench`` extra); when missing,
the run says so and checks the others."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def quick(tmp_path_factory, vmapc_shared_cache):
    out = tmp_path_factory.mktemp("bench")
    p = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, VMAPC_CACHE_DIR=str(vmapc_shared_cache)))
    with open(out / "quick.json") as f:
        results = json.load(f)
    return p, results, out


def test_quick_benchmark_checks_every_contender(quick):
    p, results, out = quick
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    cells = results["cells"]
    assert {c["workload"] for c in cells} == {"mlp", "elementwise", "bmm", "attention", "layernorm"}
    always = {"vmapc", "vmapc-dynamic", "vmapc-chunked", "loop", "mlir", "numpy"}
    for c in cells:
        assert c["B"] == 5 and not c["failed"], c
        assert always <= set(c["checked"]), c
        assert c["timings"] == {}
    assert results["chunk_size"] == 2
    md = (out / "quick.md").read_text()
    assert "| mlp |" in md and "FAILED" not in md


def test_optional_peers_are_checked_or_skipped_with_a_note(quick):
    p, results, _ = quick
    for peer, module in (("jax", "jax"), ("torch.vmap", "torch"), ("torch.compile", "torch")):
        try:
            __import__(module)
            installed = True
        except Exception:
            installed = False
        checked = all(peer in c["checked"] for c in results["cells"])
        if installed:
            assert checked, f"{peer} is installed but was not checked"
        else:
            assert not checked and f"{module} skipped: not installed" in p.stderr
            print(f"{peer}: not installed here; the benchmark skipped it with a note")


def test_quick_per_example_gradient_benchmark_checks_its_contenders(tmp_path, vmapc_shared_cache):
    """benchmarks/grads.py --quick: vmapc's per-example gradients of both workloads (and the
    loop) against the gradients derived by hand. The peers (JAX, torch.func) are left out
    here to keep CI short (they added ~25 s to its ~90 s on the shared 2-core machine);
    every run of the benchmark itself checks every contender in every cell."""
    contenders = "vmapc,loop,numpy"
    p = subprocess.run([sys.executable, "-m", "benchmarks.grads", "--quick", "--out", str(tmp_path),
                        "--contenders", contenders], cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, VMAPC_CACHE_DIR=str(vmapc_shared_cache)))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    with open(tmp_path / "grads-quick.json") as f:
        results = json.load(f)
    assert {c["workload"] for c in results["cells"]} == {"mlp", "attention"}
    for c in results["cells"]:
        assert not c["failed"] and {"vmapc", "loop", "numpy"} <= set(c["checked"]), c
