"""``vmapc.ray``: a compiled function or an artifact over a Ray Data ``Dataset`` on
actors that load the module once, checked against the in-process compiled call and
the per-example NumPy loop. Skipped where Ray is not installed (CI installs the
``test`` and ``dask`` extras only: Ray takes tens of seconds to start on 2 cores).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

try:
    import ray
    import ray.data
except ImportError as e:
    pytest.skip(f"vmapc.ray needs Ray Data, which is not installed ({e}; pip install 'vmapc[ray]')",
                allow_module_level=True)

import vmapc
import vmapc.ray
from vmapc.errors import BatchingError, CallError
from scale_data import MLP_TOL, data, export_mlp, mlp, per_example, two_outputs

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")


@pytest.fixture(scope="module")
def session():
    ray.init(num_cpus=2, object_store_memory=128 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def arrays():
    return data(700)


def _column(ds, name):
    return np.concatenate([b[name] for b in ds.iter_batches(batch_size=None, batch_format="numpy")])


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, vmapc_shared_cache):
    d = tmp_path_factory.mktemp("ray_art")
    return {b: vmapc.load(export_mlp(d / f"art{b}", batch=b)) for b in ("dynamic", 64)}


def test_artifacts_over_a_dataset(session, artifacts, arrays):
    xs, w1, w2 = arrays
    ds = ray.data.from_numpy(xs)                     # one column, "data": a row per example
    expected = per_example(mlp, xs, w1, w2)
    for batch, model in artifacts.items():           # batches of 300: 300, 300, 100 (padded to 64s)
        out = vmapc.ray.map_batches(model, ds, "data", w1, w2, batch_size=300, actors=2)
        got = _column(out, "out")
        assert got.shape == (700, 10) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, **MLP_TOL, err_msg=str(batch))
        if batch == "dynamic":
            np.testing.assert_allclose(got, model(xs, w1, w2), **MLP_TOL)     # the in-process call


def test_compiled_function_with_named_outputs(session, arrays):
    xs, w1, w2 = arrays
    f = vmapc.compile(two_outputs, in_dims=(0, None, None), batch="dynamic",
                      out_dims={"hidden": 1, "scores": 0, "w_norm": None})
    ds = ray.data.from_items([{"x": x} for x in xs])
    out = vmapc.ray.map_batches(f, ds, "x", w1, w2, batch_size=256)
    want = per_example(two_outputs, xs, w1, w2)
    # rows are examples: every output has the batch on axis 0, a shared one repeated per row
    np.testing.assert_allclose(_column(out, "hidden"), want["hidden"], **MLP_TOL)
    np.testing.assert_allclose(_column(out, "scores"), want["scores"], **MLP_TOL)
    np.testing.assert_allclose(_column(out, "w_norm"), np.full(700, (w1 * w1).sum()), rtol=1e-5)


def test_bad_arguments_before_anything_runs(session, artifacts, arrays):
    xs, w1, w2 = arrays
    ds = ray.data.from_numpy(xs)
    model = artifacts["dynamic"]
    with pytest.raises(CallError, match="names the column 'x', which the dataset does not have"):
        vmapc.ray.map_batches(model, ds, "x", w1, w2)
    with pytest.raises(BatchingError, match="argument `w1` is the column 'data', but the function shares it"):
        vmapc.ray.map_batches(model, ds, "data", "data", w2)
    with pytest.raises(CallError, match="argument `x` has dtype float64, but mlp takes x: f32"):
        vmapc.ray.map_batches(model, ray.data.from_numpy(xs.astype(np.float64)), "data", w1, w2)
    with pytest.raises(BatchingError, match="batch_size must be a positive int"):
        vmapc.ray.map_batches(model, ds, "data", w1, w2, batch_size=0)
