"""``vmapc run ARTIFACT --input x=big.npy ... --chunk-size N [--workers N | --scheduler ADDRESS]``:
a batch read from its files chunk by chunk and written by chunks, driven as a user
would (subprocesses, a temporary directory).

Expected values: the README model's Python function called per example, and the
plain ``vmapc run`` of the same artifact on the whole batch.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from scale_data import MLP_TOL, data, export_mlp, mlp, per_example

VMAPC = [sys.executable, "-m", "vmapc.cli"]


def cli(*args, cwd):
    return subprocess.run([*VMAPC, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}; stderr:\n{res.stderr}"
    assert res.stderr == "", res.stderr
    return res


def assert_error(res, rc, *fragments):
    lines = res.stderr.strip().splitlines()
    assert res.returncode == rc and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"


INPUTS = ["--input", "x=xs.npy", "--input", "w1=w1.npy", "--input", "w2=w2.npy"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, vmapc_shared_cache):
    d = tmp_path_factory.mktemp("run_chunked")
    xs, w1, w2 = data()
    for name, a in (("xs", xs), ("w1", w1), ("w2", w2)):
        np.save(d / f"{name}.npy", a)
    export_mlp(d / "dyn")
    export_mlp(d / "s64", batch=64)
    return d


@pytest.fixture(scope="module")
def expected():
    return per_example(mlp, *data())


@pytest.mark.parametrize("art", ["dyn", "s64"])
def test_chunks_in_this_process(work, expected, art):
    out = f"res_{art}"
    res = ok(cli("run", art, *INPUTS, "--chunk-size", 300, "--output-dir", out, cwd=work))
    lines = res.stdout.splitlines()
    assert lines[0] == f"out: float32[1000, 10] -> {os.path.join(out, 'out.npy')}"
    assert lines[1].startswith("ran mlp on cpu (local-sync) over 1000 examples in 4 chunks of 300 on this process")
    got = np.load(work / out / "out.npy")
    np.testing.assert_allclose(got, expected, **MLP_TOL)
    assert os.listdir(work / out) == ["out.npy"]          # no temporary file left
    if art == "dyn":       # the same module on the whole batch at once
        ok(cli("run", art, *INPUTS, "--output-dir", "res_whole", cwd=work))
        np.testing.assert_allclose(got, np.load(work / "res_whole" / "out.npy"), **MLP_TOL)


def test_chunks_on_a_dask_cluster_by_its_address(work, expected, dask_client):
    """--scheduler ADDRESS (the walk-through in docs/scaling.md runs --workers 2)."""
    dask_client.wait_for_workers(2, timeout=60)
    address = dask_client.scheduler.address
    res = ok(cli("run", "s64", *INPUTS, "--chunk-size", 250, "--scheduler", address, "--output-dir", "res_sched",
                 cwd=work))
    assert f"over 1000 examples in 4 chunks of 250 on the Dask scheduler at {address}" in res.stdout
    np.testing.assert_allclose(np.load(work / "res_sched" / "out.npy"), expected, **MLP_TOL)
    assert os.listdir(work / "res_sched") == ["out.npy"]


def test_progress_bar_on_a_terminal(work):
    leader, follower = pty.openpty()
    proc = subprocess.run([*VMAPC, "run", "dyn", *INPUTS, "--chunk-size", "100", "--output-dir", "res_tty"],
                          cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    err = b""
    try:
        while chunk := os.read(leader, 4096):
            err += chunk
    except OSError:          # the pty closes when the child exits
        pass
    os.close(leader)
    assert proc.returncode == 0, err
    text = err.decode()
    assert "\r" in text and "10/10 chunks" in text and "[" + "#" * 30 + "] 100%" in text, text
    assert "chunks" not in proc.stdout.decode().splitlines()[0]      # the bar is on stderr only


def test_usage_errors(work):
    assert_error(cli("run", "dyn", *INPUTS, "--workers", 2, "--output-dir", "never", cwd=work), 2,
                 "give --chunk-size N")
    assert_error(cli("run", "dyn", *INPUTS, "--chunk-size", 0, "--output-dir", "never", cwd=work), 2,
                 "--chunk-size must be a positive number")
    assert_error(cli("run", "dyn", *INPUTS, "--chunk-size", 10, cwd=work), 2, "give --output-dir DIR")
    assert_error(cli("run", "dyn", *INPUTS, "--chunk-size", 10, "--workers", 2, "--scheduler", "tcp://x:1",
                     "--output-dir", "never", cwd=work), 2, "not allowed with argument")
    assert_error(cli("run", "dyn", "--input", "x=xs.npy", "--input", "w1=w1.npy", "--input", "w2=w1.npy",
                     "--chunk-size", 10, "--output-dir", "never", cwd=work), 1,
                 "CallError", "argument `w2` has shape (64, 32), but mlp takes w2: f32[32,10]")
    assert_error(cli("run", "dyn", "--input", "x=nope.npy", "--input", "w1=w1.npy", "--input", "w2=w2.npy",
                     "--chunk-size", 10, "--output-dir", "never", cwd=work), 1, "nope.npy: no such file")
    assert not (work / "never").exists()


PEAK = textwrap.dedent('''
    import sys
    from vmapc.cli import main
    rc = main(sys.argv[1:])
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(f"peak_kib={peak}")
    sys.exit(rc)
''')


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status (Linux) for the peak RSS")
def test_memory_stays_at_a_few_chunks_whatever_the_input_size(work):
    """The process's peak memory (VmHWM) with a 16 MiB and a 256 MiB input, in chunks of
    4096 examples (1 MiB): the bigger input adds far less than its 240 MiB difference."""
    r = np.random.default_rng(3)
    peaks = {}
    for n in (1 << 16, 1 << 20):                  # 16 MiB and 256 MiB of float32[64] examples
        path = work / f"big{n}.npy"
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 64))
        for s in range(0, n, 1 << 16):
            x[s:s + (1 << 16)] = r.standard_normal((min(1 << 16, n - s), 64), dtype=np.float32)
        del x
        res = subprocess.run([sys.executable, "-c", PEAK, "run", "dyn", "--input", f"x={path.name}",
                              "--input", "w1=w1.npy", "--input", "w2=w2.npy", "--chunk-size", "4096",
                              "--output-dir", f"res_big{n}"], cwd=work, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        peaks[n] = int(res.stdout.strip().splitlines()[-1].split("=")[1]) / 1024
        if n == 1 << 20:    # spot-check the result against the per-example function
            got = np.load(work / f"res_big{n}" / "out.npy", mmap_mode="r")
            xs = np.load(path, mmap_mode="r")
            w1, w2 = np.load(work / "w1.npy"), np.load(work / "w2.npy")
            for i in (0, 123_457, n - 1):
                np.testing.assert_allclose(got[i], mlp(xs[i], w1, w2), **MLP_TOL)
        os.unlink(path)
    print("peaks (MiB):", peaks)
    assert peaks[1 << 20] - peaks[1 << 16] < 48, peaks     # MiB
