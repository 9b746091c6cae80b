"""``vmapc.dask`` on ``dask.distributed``: a ``LocalCluster`` of 2 worker processes
(one thread each), started once for this module.

Checked against the in-process compiled call and the per-example NumPy loop: a
compiled function and an artifact run on the workers, which load each module once
and never import the IREE compiler (it is made unimportable there); shared
arguments travel once (no "large graph" warning); a failing chunk fails the
computation with its range; outputs are written by the workers; and a worker
killed mid-run has its chunks rerun elsewhere, the result complete and correct.
"""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
import pytest

try:
    import dask
    import dask.array as da
    import distributed  # noqa: F401
except ImportError as e:  # pragma: no cover - CI installs the dask extra
    pytest.skip(f"vmapc.dask on a cluster needs dask.distributed, which is not installed ({e}; "
                "pip install 'vmapc[dask]')", allow_module_level=True)

import vmapc
import vmapc.dask
from vmapc.errors import CallError
from scale_data import MLP_TOL, export_mlp, mlp

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")


def _block_the_compiler():
    """Run on each worker: make `import iree.compiler` fail there (as where only
    iree-base-runtime is installed) and forget the modules loaded so far."""
    import sys

    class BlockCompiler:
        def find_spec(self, name, path=None, target=None):
            if name == "iree.compiler" or name.startswith("iree.compiler."):
                raise ImportError(f"{name} is blocked on this worker")
            return None
    sys.meta_path.insert(0, BlockCompiler())
    from vmapc.runtime import chunked
    chunked.forget()


def _worker_state():
    import sys
    from vmapc.runtime import chunked, module
    return {"stats": chunked.stats(), "drivers": sorted(module._DEVICES),
            "compiler": sorted(m for m in sys.modules if m.startswith("iree.compiler"))}


@pytest.fixture(scope="module")
def client(dask_client):
    """The session's 2-worker cluster (conftest.py), the IREE compiler blocked on its workers."""
    dask_client.wait_for_workers(2, timeout=60)
    dask_client.run(_block_the_compiler)
    return dask_client


def test_compiled_function_and_artifact_on_two_worker_processes(client, tmp_path, arrays, expected, dynamic):
    xs, w1, w2 = arrays
    X = da.from_array(xs, chunks=150)                    # 7 chunks, a ragged last one
    got = vmapc.dask.map_batches(dynamic, X, w1, w2).compute()
    np.testing.assert_allclose(got, dynamic(xs, w1, w2), **MLP_TOL)     # the in-process call
    np.testing.assert_allclose(got, expected, **MLP_TOL)

    model = vmapc.load(export_mlp(tmp_path / "art", batch=64))          # static: chunks padded on the workers
    got = vmapc.dask.map_batches(model, X, w1, w2).compute()
    np.testing.assert_allclose(got[:64], model(xs[:64], w1, w2), **MLP_TOL)     # the in-process call
    np.testing.assert_allclose(got, expected, **MLP_TOL)

    states = client.run(_worker_state)
    assert len(states) == 2
    for s in states.values():
        assert s["compiler"] == []                        # the workers ran without the IREE compiler
        assert s["drivers"] == ["local-sync"]             # on the worker's own thread
        assert 1 <= s["stats"]["loads"] <= 2 < s["stats"]["chunks"]       # each module loaded once per worker
    assert sum(s["stats"]["chunks"] for s in states.values()) == 14


def test_shared_arguments_travel_once(client, arrays, expected):
    """A 4 MiB shared argument and 10 chunks: the graph sent to the scheduler holds it
    once, under distributed's "large graph" threshold set to 3x its size."""
    xs, w1, w2 = arrays
    table = np.random.default_rng(2).standard_normal((1 << 20,), dtype=np.float32)

    def f(x, w1, w2, table):
        return mlp(x, w1, w2) + table[:10]
    fn = vmapc.compile(f, in_dims=(0, None, None, None), batch="dynamic")
    ys = vmapc.dask.map_batches(fn, da.from_array(xs, chunks=100), w1, w2, table)
    threshold = f"{3 * table.nbytes}B"
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": threshold}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = ys.compute()
    assert not [w for w in caught if "large graph" in str(w.message).lower()], [str(w.message) for w in caught]
    np.testing.assert_allclose(got, expected + table[:10], **MLP_TOL)


def test_a_failing_chunk_fails_the_computation_with_its_range(client, arrays, dynamic):
    xs, w1, w2 = arrays

    def lie(b, block_info=None):        # block 3 is float64, though the array says float32
        return b.astype(np.float64) if block_info[0]["chunk-location"][0] == 3 else b
    X = da.from_array(xs, chunks=100).map_blocks(lie, dtype=np.float32)
    with pytest.raises(CallError) as info:
        vmapc.dask.map_batches(dynamic, X, w1, w2).compute()
    assert info.value.chunk == (300, 400)
    assert "examples [300:400)" in str(info.value) and "`x` has dtype float64" in str(info.value)


def test_outputs_written_by_the_workers(client, tmp_path, arrays, expected, dynamic):
    xs, w1, w2 = arrays
    np.save(tmp_path / "xs.npy", xs)
    X = vmapc.dask.from_npy(tmp_path / "xs.npy", chunks=200)      # read by the workers
    seen = []
    vmapc.dask.to_npy(vmapc.dask.map_batches(dynamic, X, w1, w2), tmp_path / "ys.npy",
                      progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5)
    np.testing.assert_allclose(np.load(tmp_path / "ys.npy"), expected, **MLP_TOL)
    assert sorted(os.listdir(tmp_path)) == ["xs.npy", "ys.npy"]


def test_a_killed_worker_is_replaced_and_the_result_is_complete(client, arrays, expected, dynamic):
    """Runs last: a worker process is killed (SIGKILL) while chunks are running; the
    scheduler reruns its chunks on the other worker and the nanny restarts it."""
    xs, w1, w2 = arrays

    def slow(b):                        # 20 chunks of 0.25 s: the run lasts a few seconds
        time.sleep(0.25)
        return b
    X = da.from_array(xs, chunks=(50, 64)).map_blocks(slow, dtype=np.float32)
    future = client.compute(vmapc.dask.map_batches(dynamic, X, w1, w2))
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    before = client.run(os.getpid)
    victim_addr, victim = sorted(before.items())[0]
    os.kill(victim, signal.SIGKILL)
    got = future.result(timeout=120)
    np.testing.assert_allclose(got, expected, **MLP_TOL)
    assert not future.cancelled()
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()      # it really died, and was replaced
