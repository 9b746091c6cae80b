"""The IREE compile driver (targets, caches, error reports) and the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from vmapc import driver, lowering
from vmapc import dtypes as dt
from vmapc.errors import CacheWarning, CallError, CompileError, Loc, TargetError
from vmapc.ir import Builder, TensorType, Var

F32 = dt.FLOAT32


def make(name, in_types, body, loc=None):
    b = Builder(loc=loc or Loc(__file__, 1))
    ins = [Var(TensorType(s, d)) for s, d in in_types]
    return b.build(ins, list(body(b, *ins)), name=name)


def small_fns(tag=""):
    """Two tiny functions; `tag` changes a constant so each test gets its own module."""
    value = np.float32(len(tag) + 1)
    return [make("axpy", [((3,), F32), ((3,), F32)],
                 lambda b, x, y: [b.emit("add", b.emit("multiply", x, b.full((3,), value, F32)), y)]),
            make("stats", [((2, 3), F32)],
                 lambda b, x: [b.emit("reduce_sum", x, axes=(1,)), b.emit("greater", x, b.full((2, 3), 0, F32))])]


def entries(cache):
    return sorted(p for p in cache.glob("*.vmfb"))


def test_compile_functions_runs_many_functions_from_one_module(empty_cache):
    fns = driver.compile_functions(small_fns("run"))  # the constant is len("run") + 1 = 4
    x, y = np.array([1, 2, 3], np.float32), np.array([10, 20, 30], np.float32)
    (r,) = fns["axpy"](x, y)
    np.testing.assert_array_equal(r, 4 * x + y)
    total, pos = fns["stats"](np.array([[1, -2, 3], [-1, -1, 5]], np.float32))
    np.testing.assert_array_equal(total, [2, 3])
    assert pos.dtype == np.bool_ and pos.tolist() == [[True, False, True], [False, False, True]]
    assert len(entries(empty_cache)) == 1


def test_calls_are_checked(empty_cache):
    f = driver.compile_functions(small_fns("check"))["axpy"]
    x = np.zeros(3, np.float32)
    with pytest.raises(CallError, match="takes 2 arguments, got 1"):
        f(x)
    with pytest.raises(CallError, match="argument 1 has dtype float64"):
        f(x, np.zeros(3))
    with pytest.raises(CallError, match=r"argument 0 has shape \(4,\)"):
        f(np.zeros(4, np.float32), x)
    # non-contiguous arrays are fine (copied); the constant is len("check") + 1
    (r,) = f(np.arange(6, dtype=np.float32)[::2], x)
    np.testing.assert_array_equal(r, 6 * np.array([0, 2, 4], np.float32))


def test_memory_and_disk_cache(empty_cache, monkeypatch):
    lm = lowering.lower(small_fns("disk"))
    before = dict(driver.stats)
    vmfb = driver.compile_mlir(lm)
    assert driver.stats["compiles"] == before["compiles"] + 1
    assert driver.compile_mlir(lm) == vmfb
    assert driver.stats["memory_hits"] == before["memory_hits"] + 1
    # a fresh process (no memory cache) reads the disk, and does not compile
    driver.clear_memory_cache()

    def no_compile(*a, **k):
        raise AssertionError("compiled although the disk cache has the module")
    monkeypatch.setattr(driver, "_run_iree_compile", no_compile)
    assert driver.compile_mlir(lm) == vmfb
    assert driver.stats["disk_hits"] == before["disk_hits"] + 1
    # another flag set is another entry
    monkeypatch.undo()
    monkeypatch.setenv("VMAPC_CACHE_DIR", str(empty_cache))
    driver.compile_mlir(lm, flags=("--iree-opt-level=O1",))
    assert len(entries(empty_cache)) == 2
    assert not list(empty_cache.glob("*.tmp")) and not list(empty_cache.glob(".*"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_entry_is_discarded_and_rebuilt(empty_cache, damage):
    lm = lowering.lower(small_fns("corrupt-" + damage))
    vmfb = driver.compile_mlir(lm)
    (path,) = entries(empty_cache)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        i = len(data) - 100
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    else:
        path.write_bytes(b"not a cache entry")
    driver.clear_memory_cache()
    compiles = driver.stats["compiles"]
    with pytest.warns(CacheWarning, match="corrupt"):
        again = driver.compile_mlir(lm)
    assert again == vmfb
    assert driver.stats["compiles"] == compiles + 1
    assert path.read_bytes() == data  # rebuilt in place
    driver.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert driver.compile_mlir(lm) == vmfb


_WORKER = textwrap.dedent("""
    import sys, numpy as np
    from vmapc import driver, lowering
    from vmapc import dtypes as dt
    from vmapc.ir import Builder, TensorType, Var
    b = Builder()
    x = Var(TensorType((5,), dt.FLOAT32))
    f = b.build([x], [b.emit("tanh", b.emit("multiply", x, x))], name="f")
    mode = sys.argv[1]
    if mode == "compile":
        fns = driver.compile_functions([f])
        (r,) = fns["f"](np.arange(5, dtype=np.float32))
        assert np.allclose(r, np.tanh(np.arange(5.0) ** 2), atol=1e-6), r
        print(driver.stats["compiles"], driver.stats["disk_hits"])
    else:  # hammer the writer: every entry any reader sees must be whole
        import warnings
        warnings.simplefilter("error")
        key = "f" * 64
        for i in range(60):
            payload = bytes([i % 251]) * (200_000 + 1000 * (i % 7))
            driver._write_disk(key, payload)
            got = driver._read_disk(key)
            assert got is not None and len(set(got)) == 1, "torn entry"
        print("ok")
""")


def _spawn(cache, mode):
    env = dict(os.environ, VMAPC_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", _WORKER, mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_processes_share_one_entry(empty_cache):
    procs = [_spawn(empty_cache, "compile") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    counts = sorted(tuple(map(int, out.split())) for out, _ in outs)
    assert counts == [(0, 1), (1, 0)]  # one compiled, the other waited and read it
    (path,) = entries(empty_cache)
    assert driver.parse_entry(path.read_bytes()) is not None
    assert not list(empty_cache.glob("*.tmp")) and not list(empty_cache.glob(".*"))


def test_concurrent_writers_never_tear_an_entry(empty_cache):
    procs = [_spawn(empty_cache, "hammer") for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err
    assert not list(empty_cache.glob(".*"))


def test_compile_error_names_the_op_and_line(empty_cache, monkeypatch):
    """IREE cannot lower math.ipowi; the error must point at the equation."""
    from iree.compiler.dialects import math as mathd

    def ipowi_rule(lctx, eqn, xs):
        return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type, mathd.ipowi)]
    monkeypatch.setitem(lowering.LOWERINGS, "power", ipowi_rule)
    loc = Loc("/home/user/model.py", 37)
    fn = make("f", [((4,), dt.INT32), ((4,), dt.INT32)], lambda b, x, y: [b.emit("power", x, y)], loc=loc)
    with pytest.raises(CompileError) as e:
        driver.compile_functions([fn])
    err = e.value
    assert err.loc == loc
    assert "power" in err.message and "math.ipowi" in err.message
    assert len(err.message) < 300 and "\n" not in err.message
    assert "/home/user/model.py:37" in str(err)
    assert "failed to legalize" in err.details and len(err.details) > len(err.message)
    assert not entries(empty_cache)  # failures are not cached


def test_unknown_target():
    with pytest.raises(TargetError, match="unknown target 'tpu'"):
        driver.get_target("tpu")
    assert driver.get_target("cuda").flags[-1] == "--iree-cuda-target=sm_80"
    assert "--iree-hal-target-device=vulkan" in driver.get_target("vulkan").flags


def test_driver_reexports_the_target_model():
    from vmapc import targets
    assert driver.TARGETS is targets.TARGETS and driver.get_target is targets.get_target
    assert driver.get_target(driver.TARGETS["cpu"]) is driver.TARGETS["cpu"]
    assert driver.get_target("cuda:sm_90a").label == "cuda:sm_90a"
    with pytest.raises(TargetError, match="unknown target 'tpu:x'"):
        driver.get_target("tpu:x")


def test_compile_functions_picks_the_cpu_driver_by_work(empty_cache):
    fns = driver.compile_functions(small_fns("drv"))
    assert fns["axpy"].module.driver == "local-sync"  # tiny: no thread wake-ups
    fns = driver.compile_functions(small_fns("drv"), driver="local-task")
    assert fns["axpy"].module.driver == "local-task"


def test_float64_is_not_demoted(empty_cache):
    fn = make("f", [((2,), dt.FLOAT64)], lambda b, x: [b.emit("add", x, x)])
    x = np.array([1 + 2.0 ** -40, 1e300])
    (r,) = driver.compile_functions([fn])["f"](x)
    assert r.dtype == np.float64 and r.tolist() == (2 * x).tolist()


def test_runtime_module_from_file_and_without_the_compiler(empty_cache, tmp_path):
    fns = small_fns("file")
    vmfb = driver.compile_mlir(lowering.lower(fns))
    path = tmp_path / "m.vmfb"
    path.write_bytes(vmfb)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["iree.compiler"] = None  # importing it now fails
        import numpy as np
        from vmapc.runtime import Module
        from vmapc.ir import TensorType
        for driver in ("local-sync", "local-task"):
            m = Module({str(path)!r}, driver=driver)
            assert set(m.names) == {{"axpy", "stats"}}, m.names
            (r,) = m["axpy"](np.ones(3, np.float32), np.ones(3, np.float32))
            assert r.tolist() == [6.0, 6.0, 6.0], r
        checked = Module({str(path)!r}, signatures={{"axpy": ([TensorType((3,), "f32")] * 2,
                                                                [TensorType((3,), "f32")])}})
        try:
            checked["axpy"](np.ones(3, np.float32))
        except TypeError as e:
            print("CallError:", e)
        assert not any(k.startswith("iree.compiler.") for k in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "CallError: axpy takes 2 arguments, got 1" in out.stdout


def test_runtime_rejects_a_bad_artifact():
    from vmapc.errors import ArtifactError
    from vmapc.runtime import Module
    with pytest.raises(ArtifactError):
        Module(b"definitely not a vmfb")
