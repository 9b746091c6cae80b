"""Shared fixtures."""

import os

import pytest


@pytest.fixture(scope="session")
def vmapc_shared_cache(tmp_path_factory):
    """A compile cache shared by the xdist workers of this test session (and only this
    session), so a module compiled by one worker is reused by the others."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "vmapc-cache"
    path.mkdir(mode=0o700, exist_ok=True)      # private, or vmapc would not use it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VMAPC_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty disk cache (its path) and an empty memory cache, for this test only."""
    from vmapc import driver
    monkeypatch.setenv("VMAPC_CACHE_DIR", str(tmp_path / "cache"))
    driver.clear_memory_cache()
    yield tmp_path / "cache"
    driver.clear_memory_cache()


@pytest.fixture(scope="session")
def dask_client():
    """A dask.distributed Client of a LocalCluster of 2 worker processes (one thread
    each), started once per test process (session scope, so that tests which
    pytest-xdist interleaves with others' do not restart it) and the default Dask
    scheduler while it lives. Skips where dask.distributed is not installed."""
    import logging
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed (pip install 'vmapc[dask]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


# The scale-out tests' data (tests/scale_data.py): the README's MLP over N examples, its
# per-example answers, and the module compiled for every batch size. A test module may
# define its own `arrays` (test_ray.py uses fewer examples) or `expected`.

@pytest.fixture(scope="module")
def arrays():
    from scale_data import data
    return data()


@pytest.fixture(scope="module")
def expected(arrays):
    from scale_data import mlp, per_example
    return per_example(mlp, *arrays)


@pytest.fixture(scope="module")
def dynamic():
    import vmapc
    from scale_data import mlp
    return vmapc.compile(mlp, in_dims=(0, None, None), batch="dynamic")
