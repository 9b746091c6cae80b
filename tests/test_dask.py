"""``vmapc.dask`` on Dask's threaded scheduler: a compiled function or an artifact
over Dask arrays chunked along the batch axis, checked against the in-process
compiled call and the per-example NumPy loop.

(A 2-worker ``LocalCluster`` of processes is in test_dask_cluster.py; the bad-input
errors are in the catalogue of test_errors.py.)
"""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - CI installs the dask extra
    pytest.skip(f"vmapc.dask needs Dask, which is not installed ({e}; pip install 'vmapc[dask]')",
                allow_module_level=True)

import vmapc
import vmapc.dask
from vmapc.errors import CallError
from vmapc.runtime import chunked
from scale_data import MLP_TOL, N, export_mlp, mlp, per_example, two_outputs

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture(scope="module")
def multi():
    """A dict of outputs: the batch on axis 1 of one, none on another."""
    return vmapc.compile(two_outputs, in_dims=(0, None, None), batch="dynamic",
                         out_dims={"hidden": 1, "scores": 0, "w_norm": None})


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, vmapc_shared_cache):
    d = tmp_path_factory.mktemp("dask_art")
    return {"dynamic": vmapc.load(export_mlp(d / "dyn")), "static64": vmapc.load(export_mlp(d / "s64", batch=64))}


def test_compiled_dynamic_matches_the_in_process_call(arrays, expected, dynamic):
    xs, w1, w2 = arrays
    X = da.from_array(xs, chunks=150)                  # 7 chunks, the last one of 100
    ys = vmapc.dask.map_batches(dynamic, X, w1, w2)
    # known before computing
    assert ys.shape == (N, 10) and ys.dtype == np.float32
    assert ys.chunks == ((150,) * 6 + (100,), (10,))
    chunked.forget()
    got = ys.compute()
    assert chunked.stats()["loads"] == 1 and chunked.stats()["chunks"] == 7    # one module, reused
    np.testing.assert_allclose(got, dynamic(xs, w1, w2), **MLP_TOL)
    np.testing.assert_allclose(got, expected, **MLP_TOL)


@pytest.mark.parametrize("how", ["static", "chunk_size"])
def test_static_modules_pad_the_ragged_last_chunk(arrays, expected, how):
    xs, w1, w2 = arrays
    if how == "static":     # compiled for the chunk length (150), the last chunk padded
        f = vmapc.compile(mlp, in_dims=(0, None, None))
    else:                   # compiled for 64 examples: each chunk runs in pieces of 64
        f = vmapc.compile(mlp, in_dims=(0, None, None), chunk_size=64)
    ys = vmapc.dask.map_batches(f, da.from_array(xs, chunks=150), w1, w2)
    assert ys.chunks[0] == (150,) * 6 + (100,)
    np.testing.assert_allclose(ys.compute(), expected, **MLP_TOL)


def test_artifacts_dynamic_and_static(arrays, expected, artifacts):
    xs, w1, w2 = arrays
    X = da.from_array(xs, chunks=150)
    for name, model in artifacts.items():       # static64: chunks of 150 run as 64 + 64 + 22 padded
        ys = vmapc.dask.map_batches(model, X, w1, w2)
        assert ys.shape == (N, 10) and ys.dtype == np.float32, name
        np.testing.assert_allclose(ys.compute(), expected, **MLP_TOL, err_msg=name)
    ys = vmapc.dask.map_batches(artifacts["dynamic"].path, X, w1, w2)   # or the artifact's path
    np.testing.assert_allclose(ys.compute(), expected, **MLP_TOL)


def test_pytree_outputs_and_a_shared_output_run_each_chunk_once(arrays, multi):
    xs, w1, w2 = arrays
    f = multi
    out = vmapc.dask.map_batches(f, da.from_array(xs, chunks=300), w1, w2)
    assert set(out) == {"hidden", "scores", "w_norm"}
    assert out["hidden"].shape == (32, N) and out["hidden"].chunks == ((32,), (300, 300, 300, 100))
    assert out["scores"].shape == (N, 10) and out["w_norm"].shape == ()
    chunked.forget()
    got = dask.compute(out)[0]
    assert chunked.stats()["chunks"] == 4           # four chunks, each run once for all three outputs
    want = per_example(two_outputs, xs, w1, w2)
    np.testing.assert_allclose(got["hidden"], want["hidden"].T, **MLP_TOL)
    np.testing.assert_allclose(got["scores"], want["scores"], **MLP_TOL)
    np.testing.assert_allclose(got["w_norm"], (w1 * w1).sum(), rtol=1e-5)
    ref = f(xs, w1, w2)                             # the in-process call
    np.testing.assert_allclose(got["scores"], ref["scores"], **MLP_TOL)


def test_batch_axis_not_first_and_a_python_function_with_in_dims(arrays, expected):
    xs, w1, w2 = arrays
    XT = da.from_array(np.ascontiguousarray(xs.T), chunks=(64, 128))     # examples along axis 1
    ys = vmapc.dask.map_batches(mlp, XT, w1, w2, in_dims=(1, None, None), out_dims=1)
    assert ys.shape == (10, N) and ys.chunks == ((10,), (128,) * 7 + (104,))
    np.testing.assert_allclose(ys.compute(), expected.T, **MLP_TOL)


def test_shared_arguments_are_one_key_not_embedded_in_tasks(arrays, dynamic):
    """A big shared argument is one key of the graph, which each worker fetches once;
    no task carries it (each task pickles to a few KB, whatever the argument's size)."""
    xs, _, w2 = arrays
    w1 = np.random.default_rng(1).standard_normal((64, 32), dtype=np.float32)
    big = np.random.default_rng(2).standard_normal((1 << 20,), dtype=np.float32)    # 4 MiB

    def f(x, w1, w2, table):
        return mlp(x, w1, w2) + table[:10]
    fn = vmapc.compile(f, in_dims=(0, None, None, None), batch="dynamic")
    ys = vmapc.dask.map_batches(fn, da.from_array(xs, chunks=100), w1, w2, big)
    graph = dict(ys.__dask_graph__())
    sizes = {k: len(pickle.dumps(v)) for k, v in graph.items()}
    holders = [k for k, s in sizes.items() if s > big.nbytes // 2]
    assert len(holders) == 1, holders
    vmapc_tasks = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("vmapc-f-")]
    program = [k for k in graph if str(k[0] if isinstance(k, tuple) else k).startswith("vmapc-program-")]
    assert len(program) == 1           # the module's bytes: one key too
    assert len(vmapc_tasks) >= 10 and max(sizes[k] for k in vmapc_tasks) < 16 * 1024
    np.testing.assert_allclose(ys.compute(), per_example(f, xs, w1, w2, big), **MLP_TOL)


def test_numpy_and_npy_inputs_with_chunk_size(tmp_path, arrays, expected, dynamic):
    xs, w1, w2 = arrays
    ys = vmapc.dask.map_batches(dynamic, xs, w1, w2, chunk_size=400)
    assert ys.chunks[0] == (400, 400, 200)
    np.testing.assert_allclose(ys.compute(), expected, **MLP_TOL)
    np.save(tmp_path / "xs.npy", xs)
    X = vmapc.dask.from_npy(tmp_path / "xs.npy", chunks=250)
    assert X.shape == xs.shape and X.chunks == ((250,) * 4, (64,))
    # the graph holds the file's path, not its data
    assert max(len(pickle.dumps(v)) for v in dict(X.__dask_graph__()).values()) < 4096
    np.testing.assert_allclose(vmapc.dask.map_batches(dynamic, X, w1, w2).compute(), expected, **MLP_TOL)
    # shared weights read from a file by a task, as a one-chunk Dask array
    np.save(tmp_path / "w1.npy", w1)
    W1 = vmapc.dask.from_npy(tmp_path / "w1.npy", chunks=-1)
    np.testing.assert_allclose(vmapc.dask.map_batches(dynamic, X, W1, w2).compute(), expected, **MLP_TOL)


def test_empty_batch(dynamic, arrays):
    _, w1, w2 = arrays
    ys = vmapc.dask.map_batches(dynamic, da.zeros((0, 64), np.float32, chunks=(10, 64)), w1, w2)
    assert ys.shape == (0, 10)
    assert ys.compute().shape == (0, 10)


def _lying_input(xs, bad_block):
    """xs chunked by 100, whose block `bad_block` is float64 though the array says float32."""
    def lie(b, block_info=None):
        return b.astype(np.float64) if block_info[0]["chunk-location"][0] == bad_block else b
    return da.from_array(xs, chunks=100).map_blocks(lie, dtype=np.float32)


def test_a_failing_chunk_fails_the_computation_with_its_range(arrays, dynamic):
    xs, w1, w2 = arrays
    ys = vmapc.dask.map_batches(dynamic, _lying_input(xs, 2), w1, w2)
    with pytest.raises(CallError) as info:
        ys.compute()
    err = info.value
    assert err.chunk == (200, 300)
    assert "examples [200:300)" in err.message and "`x` has dtype float64, expected float32" in err.message


def test_to_npy_writes_by_chunks_and_renames_at_the_end(tmp_path, arrays, expected, dynamic, multi):
    xs, w1, w2 = arrays
    out = vmapc.dask.map_batches(multi, da.from_array(xs, chunks=300), w1, w2)
    seen = []
    vmapc.dask.to_npy([out["scores"], out["hidden"]], [tmp_path / "s.npy", tmp_path / "h.npy"],
                      progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (8, 8)
    want = per_example(two_outputs, xs, w1, w2)
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), want["scores"], **MLP_TOL)
    np.testing.assert_allclose(np.load(tmp_path / "h.npy"), want["hidden"].T, **MLP_TOL)
    assert sorted(os.listdir(tmp_path)) == ["h.npy", "s.npy"]

    # a failing chunk: the error, and nothing written (an old file stays as it was)
    np.save(tmp_path / "old.npy", np.arange(3))
    ys = vmapc.dask.map_batches(dynamic, _lying_input(xs, 5), w1, w2)
    with pytest.raises(CallError, match=r"examples \[500:600\)"):
        vmapc.dask.to_npy([ys, ys + 1], [tmp_path / "new.npy", tmp_path / "old.npy"])
    assert sorted(os.listdir(tmp_path)) == ["h.npy", "old.npy", "s.npy"]
    assert np.load(tmp_path / "old.npy").tolist() == [0, 1, 2]


def test_to_zarr(tmp_path, arrays, expected, dynamic):
    zarr = pytest.importorskip("zarr", reason="zarr is not installed (pip install zarr)")
    xs, w1, w2 = arrays
    ys = vmapc.dask.map_batches(dynamic, da.from_array(xs, chunks=200), w1, w2)
    vmapc.dask.to_zarr(ys, tmp_path / "ys.zarr")
    assert sorted(os.listdir(tmp_path)) == ["ys.zarr"]
    np.testing.assert_allclose(zarr.open_array(str(tmp_path / "ys.zarr"), mode="r")[...], expected, **MLP_TOL)
    with pytest.raises(FileExistsError):
        vmapc.dask.to_zarr(ys, tmp_path / "ys.zarr")
    vmapc.dask.to_zarr(ys * 0, tmp_path / "ys.zarr", overwrite=True)
    assert not zarr.open_array(str(tmp_path / "ys.zarr"), mode="r")[...].any()
    # Zarr in: a Dask array chunked by the store's chunks, read by the workers
    da.from_array(xs, chunks=(250, 64)).to_zarr(str(tmp_path / "xs.zarr"))
    X = da.from_zarr(str(tmp_path / "xs.zarr"))
    np.testing.assert_allclose(vmapc.dask.map_batches(dynamic, X, w1, w2).compute(), expected, **MLP_TOL)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(in_dims=[1, None, None]), "in_dims puts the batch of `x` (f32[B,64]) on axis 1"),
    (lambda m: m.update(out_dims=[7]), "'out_dims' must give each output's batch axis"),
    (lambda m: m.update(batch="huge"), "'batch' must be a size, \"dynamic\" or null"),
])
def test_a_tampered_manifest_is_refused_before_anything_runs(tmp_path, artifacts, arrays, edit, message):
    """The runtime checks the types of a manifest against the module; the batch axes
    and size, which only a run over chunks relies on, are checked there."""
    import json
    import shutil
    from vmapc.errors import ArtifactError
    xs, w1, w2 = arrays
    art = tmp_path / "art"
    shutil.copytree(artifacts["dynamic"].path, art)
    manifest = json.loads((art / "manifest.json").read_text())
    edit(manifest)
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=re.escape(message)):
        vmapc.dask.map_batches(vmapc.load(art), da.from_array(xs, chunks=150), w1, w2)


ARRAY_EXPR = """
import dask, dask.array as da, numpy as np
assert da.array_expr_enabled()
import vmapc, vmapc.dask
from scale_data import data, per_example, two_outputs
xs, w1, w2 = data()
f = vmapc.compile(two_outputs, in_dims=(0, None, None), batch="dynamic",
                  out_dims={"hidden": 1, "scores": 0, "w_norm": None})
out = vmapc.dask.map_batches(f, da.from_array(xs, chunks=(300, 64)), w1, da.from_array(w2, chunks=(16, 5)))
got = dask.compute(out, scheduler="threads")[0]
want = per_example(two_outputs, xs, w1, w2)
for k in got:
    np.testing.assert_allclose(got[k], want[k].T if k == "hidden" else want[k], rtol=1e-5, atol=1e-4)
print("ok")
"""


def test_dask_array_expression_mode():
    """Dask's opt-in array-expr mode (array.query-planning, to become its default) builds
    the same computation."""
    import subprocess
    import sys
    env = dict(os.environ, DASK_ARRAY__QUERY_PLANNING="True",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", ARRAY_EXPR], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


def test_the_core_package_imports_no_engine():
    """vmapc, its runtime, the chunk runner and the planner import no Dask or Ray; only
    vmapc.dask and vmapc.ray do, when imported."""
    import subprocess
    import sys
    code = ("import sys, vmapc, vmapc.runtime, vmapc.runtime.chunked, vmapc.scaleout, vmapc.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'ray', 'zarr'}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
