"""Concurrency and cache safety of ``vmapc.compile``.

* one compiled function called from 8 threads at once gives the per-example
  answers, compiles each signature once, also when the first calls of several
  signatures race;
* two processes compiling the same function at once with a shared disk cache both
  succeed, and the cache ends up with one whole entry;
* a damaged disk-cache entry is detected, discarded with a ``CacheWarning`` and
  rebuilt, through the public API. (``tests/test_driver.py`` covers the driver
  itself: torn writes under concurrent writers, damaged entries read directly.)
"""

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import vmapc
from vmapc import driver
from vmapc.errors import CacheWarning

N_THREADS = 8


def in_threads(work, n=N_THREADS):
    """Run work(i) in n threads that start together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    failures = []

    def run(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def count_lowerings(compiled):
    """Wrap compiled.lower to count how often a signature is traced and compiled."""
    calls = []
    lower = compiled.lower
    lock = threading.Lock()

    def counting(*args, **kwargs):
        with lock:
            calls.append(1)
        return lower(*args, **kwargs)
    compiled.lower = counting
    return calls


def model(x, w, scale):
    h = np.tanh(x @ w) * scale
    return h - h.mean(axis=-1, keepdims=True), np.argmax(h, axis=-1)


def expected(x, w, scale):
    h = np.tanh(x.astype(np.float64) @ w) * scale
    return h - h.mean(axis=-1, keepdims=True), np.argmax(h, axis=-1)


W = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)


def check(got, x, w, scale):
    want = expected(x, w, scale)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-5, atol=2e-5)
    # argmax: exact where the maximum is not a near-tie
    h = np.sort(np.tanh(x.astype(np.float64) @ w), axis=-1)
    clear = (h[..., -1] - h[..., -2]) > 1e-5
    np.testing.assert_array_equal(got[1][clear], want[1][clear])


def test_one_signature_from_eight_threads(vmapc_shared_cache):
    c = vmapc.compile(model, in_dims=(0, None, None))
    lowerings = count_lowerings(c)

    def work(i):
        rng = np.random.default_rng(100 + i)
        for _ in range(25):
            x = rng.normal(size=(6, 16)).astype(np.float32)
            check(c(x, W, 1.5), x, W, 1.5)
    in_threads(work)
    assert len(lowerings) == 1 and len(c._cache) == 1


def test_first_calls_of_many_signatures_race(vmapc_shared_cache):
    """Eight threads, four batch sizes, all first calls at once: each signature is
    compiled once and every thread gets its own answers."""
    c = vmapc.compile(model, in_dims=(0, None, None))
    lowerings = count_lowerings(c)

    def work(i):
        rng = np.random.default_rng(200 + i)
        size = 1 + i % 4
        for _ in range(10):
            x = rng.normal(size=(size, 16)).astype(np.float32)
            check(c(x, W, 0.5), x, W, 0.5)
    in_threads(work)
    assert len(lowerings) == 4 and len(c._cache) == 4


def test_dynamic_batch_from_eight_threads(vmapc_shared_cache):
    """One module for every batch size, called with different sizes at once."""
    c = vmapc.compile(model, in_dims=(0, None, None), batch="dynamic")
    lowerings = count_lowerings(c)

    def work(i):
        rng = np.random.default_rng(300 + i)
        for k in range(15):
            x = rng.normal(size=(1 + (i + k) % 7, 16)).astype(np.float32)
            check(c(x, W, 2.0), x, W, 2.0)
    in_threads(work)
    assert len(lowerings) == 1


def test_threads_calling_different_compiled_functions(vmapc_shared_cache):
    fns = [vmapc.compile(lambda x, k=k: np.sin(x) * k + x.sum()) for k in range(4)]

    def work(i):
        rng = np.random.default_rng(400 + i)
        f, k = fns[i % 4], i % 4
        for _ in range(20):
            x = rng.normal(size=(5,)).astype(np.float32)
            np.testing.assert_allclose(f(x), np.sin(x) * k + x.sum(), rtol=1e-5, atol=1e-5)
    in_threads(work)


# --- processes sharing a disk cache ---------------------------------------------------------------

_WORKER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import vmapc
    from vmapc import driver

    start = sys.argv[1]
    while not os.path.exists(start):     # both processes begin compiling together
        time.sleep(0.005)

    def f(x, w):
        return np.tanh(x @ w) * 3.25 - x.sum(axis=-1, keepdims=True)

    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    w = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
    r = vmapc.compile(f, in_dims=(0, None))(x, w)
    want = np.tanh(x @ w) * 3.25 - x.sum(axis=-1, keepdims=True)
    assert np.allclose(r, want, atol=1e-5), (r, want)
    print(driver.stats["compiles"], driver.stats["disk_hits"])
""")


def test_two_processes_compile_the_same_function_with_a_shared_cache(tmp_path):
    cache = tmp_path / "cache"
    start = tmp_path / "go"
    env = dict(os.environ, VMAPC_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(start)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    start.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    counts = sorted(tuple(map(int, out.split())) for out, _ in outs)
    assert counts == [(0, 1), (1, 0)]      # one compiled; the other waited for it and read its entry
    entries = list(cache.glob("*.vmfb"))
    assert len(entries) == 1
    assert _entry_is_whole(entries[0])
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def _entry_is_whole(path):
    """The entry's header (magic, key material, SHA-256 of the payload) matches its payload."""
    return driver.parse_entry(path.read_bytes()) is not None


# --- damaged cache entries, through the API ---------------------------------------------------------

def cached_model(x):
    return np.exp(-x * x) * 0.75


X = np.linspace(-2, 2, 7, dtype=np.float32)


@pytest.mark.parametrize("damage", ["empty file", "truncated payload", "flipped payload byte",
                                    "truncated header"])
def test_damaged_entry_is_discarded_and_rebuilt(empty_cache, damage):
    want = np.exp(-X * X) * 0.75
    np.testing.assert_allclose(vmapc.compile(cached_model)(X), want, rtol=1e-6)
    (entry,) = empty_cache.glob("*.vmfb")
    good = entry.read_bytes()
    if damage == "empty file":
        entry.write_bytes(b"")
    elif damage == "truncated payload":
        entry.write_bytes(good[: len(good) - 1000])
    elif damage == "flipped payload byte":
        i = len(good) // 2
        entry.write_bytes(good[:i] + bytes([good[i] ^ 0x01]) + good[i + 1:])
    else:
        entry.write_bytes(good[:20])
    driver.clear_memory_cache()                      # as a new process would start
    compiles = driver.stats["compiles"]
    with pytest.warns(CacheWarning, match="discarding corrupt cache entry"):
        got = vmapc.compile(cached_model)(X)         # a new Compiled: no per-signature cache
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert driver.stats["compiles"] == compiles + 1
    assert _entry_is_whole(entry) and entry.read_bytes() == good
    driver.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # now whole: read without a warning
        np.testing.assert_allclose(vmapc.compile(cached_model)(X), want, rtol=1e-6)


def test_leftovers_of_a_killed_writer_do_not_matter(empty_cache):
    """A writer killed mid-write leaves a temporary file (never a partial entry, the
    entry appears by rename) and perhaps its lock file: both are ignored."""
    empty_cache.mkdir(parents=True)
    (empty_cache / ".0123456789abcdef.junk.tmp").write_bytes(b"half a module")
    (empty_cache / "locks").mkdir()
    want = np.exp(-X * X) * 0.75
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(vmapc.compile(cached_model)(X), want, rtol=1e-6)
    (entry,) = empty_cache.glob("*.vmfb")
    (empty_cache / "locks" / f"{entry.stem}.lock").touch()   # a stale lock file: flock is per process
    driver.clear_memory_cache()
    np.testing.assert_allclose(vmapc.compile(cached_model)(X), want, rtol=1e-6)
