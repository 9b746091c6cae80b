"""Hostile and edge inputs (issue 12): answers that must not depend on the host CPU or on
IREE's fusion, untrusted artifacts, IR and .npy files, the disk cache, compile limits,
and the user's files. Cases that could crash or hang the process run in a subprocess.

Host independence is checked by compiling one module of edge-case programs for two
``--iree-llvmcpu-target-cpu`` values (this machine's CPU and a generic x86-64 without
AVX) and requiring both to give exactly the reference evaluator's integers."""

import contextlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import vmapc
from vmapc import driver
from vmapc.errors import ArtifactError, CacheWarning, CallError, CompileError, ExecutionError, IRParseError
from vmapc.runtime.artifact import load

PY = sys.executable
INT_DTYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)


def _named(fn, *args, name):
    ir = vmapc.trace(fn, *args)
    ir.name = name
    return ir


# --- one defined answer on every host ----------------------------------------------------------------------

HOSTILE_FLOATS = np.array([130.0, 300.0, -200.0, 1e10, np.nan, 127.6, np.inf, -np.inf, 3e9 + 1, -3e9 - 1,
                           2.0 ** 63, -2.0 ** 63, 1e19, 2.0 ** 64 + 4096, -1.0, 1e30, -0.7, 2.0 ** 64, 0.0,
                           65504.0, -65504.0])


ROUND_DECIMALS = (-1, -2, -19, -20)
OVERFLOW_OPS = ("abs", "negative", "square", "floor_divide", "remainder", "multiply", "add", "subtract",
                "power", "sum")
BOOL_FNS = {"sum": lambda b: b.sum(), "where": lambda b: np.where(b, 10, 20),
            "not": lambda b: np.logical_not(b), "astype": lambda b: b.astype(np.int32),
            "and": lambda b: b & b[::-1], "invert": lambda b: ~b}
WEIRD_BOOL = np.array([0, 1, 2, 255, 4, 128, 1, 0], np.uint8).view(bool)


def _overflow(a, b):
    # (power of 64-bit ints unrolls 63 squarings: checked for 8 and 32 bits, which wrap alike)
    p = np.power(a, b % 64) if a.dtype.itemsize < 8 else np.multiply(a, a)
    return (np.abs(a), np.negative(a), np.square(a), np.floor_divide(a, b), np.remainder(a, b),
            np.multiply(a, b), np.add(a, b), np.subtract(a, b), p, a.sum(dtype=a.dtype))


def _edge_cases():
    """(Function, args) pairs whose compiled integers could depend on the host or on fusion
    (few functions with many outputs: one compile per target)."""
    cases = []
    with np.errstate(over="ignore"):
        for src in (np.float16, np.float32, np.float64):
            x = HOSTILE_FLOATS.astype(src)
            cases.append((_named(lambda a: tuple(a.astype(d) for d in INT_DTYPES), x,
                                 name=f"cvt_{np.dtype(src).name}"), [x]))
    # the two arrays: the same values, two sizes (and a long one: another tiling)
    for n, vals in (("4", [130.0, 300.0, -200.0, 127.6]), ("6", [130.0, 300.0, -200.0, 1e10, np.nan, 127.6])):
        x = np.array(vals)
        cases.append((_named(lambda a: a.astype(np.int8), x, name=f"issue_{n}"), [x]))
    x = np.tile(HOSTILE_FLOATS, 200)
    cases.append((_named(lambda a: a.astype(np.int8), x, name="long_int8"), [x]))
    # integer round with negative decimals (NumPy: float64 rint(x / 10**d) * 10**d, then cast)
    for d in (np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64):
        info = np.iinfo(d)
        x = np.array([info.min, info.max, info.min + 5, info.max - 5, 0, 5, 15, 25, 35, 45], object).astype(d)
        cases.append((_named(lambda a: tuple(np.round(a, dec) for dec in ROUND_DECIMALS), x,
                             name=f"round_{np.dtype(d).name}"), [x]))
    # integer overflow, INT_MIN, division by zero
    for d in (np.int8, np.int32, np.int64, np.uint8, np.uint64):
        info = np.iinfo(d)
        a = np.array([info.min, info.max, -1 if info.min else 3, 0, 7, 3], d)
        b = np.array([-1 if info.min else 1, 0, 0, 0, 5, 3], d)
        cases.append((_named(_overflow, a, b, name=f"ovf_{np.dtype(d).name}"), [a, b]))
    for d in (np.float32, np.float64):
        a = np.array([1.0, -1.0, 0.0, np.nan, np.inf, -0.0], d)
        b = np.zeros(6, d)
        cases.append((_named(lambda p, q: (p / q, p // q, p % q), a, b, name=f"fzero_{np.dtype(d).name}"), [a, b]))
    # bool arrays whose bytes are not 0/1: any nonzero byte is True, as in NumPy
    cases.append((_named(lambda b: tuple(fn(b) for fn in BOOL_FNS.values()), WEIRD_BOOL, name="bools"),
                  [WEIRD_BOOL]))
    return cases


@pytest.fixture(scope="module")
def edge_results(vmapc_shared_cache):
    """Each edge case's outputs compiled for this CPU and for a generic x86-64, and on the reference."""
    cases = _edge_cases()
    fns = [f for f, _ in cases]
    got = {}
    for target in ("cpu", "cpu:generic"):
        compiled = driver.compile_functions(fns, target=target)
        got[target] = {f.name: compiled[f.name](*args) for f, args in cases}
    ref = {f.name: vmapc.eval(f, *args) for f, args in cases}
    return cases, got, ref


def test_compiled_integers_are_the_same_on_two_cpus_and_the_reference(edge_results):
    cases, got, ref = edge_results
    for f, _ in cases:
        for target in ("cpu", "cpu:generic"):
            for g, r in zip(got[target][f.name], ref[f.name]):
                assert g.dtype == r.dtype, (target, f.name)
                if g.dtype.kind in "iub":
                    np.testing.assert_array_equal(g, r, err_msg=f"{f.name} on {target}")
                else:
                    np.testing.assert_allclose(g, r, rtol=1e-6, err_msg=f"{f.name} on {target}")


def test_float_to_int_is_numpys_x86_answer(edge_results):
    """Through int64, then wrap; NaN, infinities and values beyond int64 give int64's
    minimum (then wrap). The expected values are NumPy's on x86 (issue 12)."""
    _, got, ref = edge_results
    for target in ("cpu", "cpu:generic"):
        np.testing.assert_array_equal(got[target]["issue_4"][0], [-126, 44, 56, 127])
        np.testing.assert_array_equal(got[target]["issue_6"][0], [-126, 44, 56, 0, 0, 127])
    x = HOSTILE_FLOATS
    cvt = dict(zip(INT_DTYPES, ref["cvt_float64"]))
    i64 = cvt[np.int64]
    np.testing.assert_array_equal(i64[[4, 6, 7, 10, 11, 12, 13]], [-2 ** 63] * 7)   # NaN, inf, beyond int64
    np.testing.assert_array_equal(i64[[0, 1, 2, 3, 5, 14, 16]], [130, 300, -200, 10 ** 10, 127, -1, 0])
    u64 = cvt[np.uint64]
    assert u64[12] == 10 ** 19 and u64[10] == 2 ** 63 and u64[14] == 2 ** 64 - 1 and u64[4] == 2 ** 63
    assert cvt[np.int8][8] == (3 * 10 ** 9 + 1) % 256             # beyond int32: wrapped through int64
    # where NumPy's conversion is defined (finite, within int32), the rule is NumPy's
    ok = np.isfinite(x) & (np.abs(x) < 2 ** 31)
    for src in ("float32", "float64"):
        for d, r in zip(INT_DTYPES, ref[f"cvt_{src}"]):
            with np.errstate(invalid="ignore", over="ignore"):
                want = x.astype(src).astype(d)
            np.testing.assert_array_equal(r[ok], want[ok], err_msg=f"{src} -> {np.dtype(d).name}")
    # the same element converts the same in an array of any size
    np.testing.assert_array_equal(got["cpu"]["long_int8"][0][:len(x)], cvt[np.int8])


def test_integer_round_with_negative_decimals_is_numpys(edge_results):
    cases, got, _ = edge_results
    for f, args in cases:
        if not f.name.startswith("round_"):
            continue
        (x,) = args
        for dec, r in zip(ROUND_DECIMALS, got["cpu"][f.name]):
            with np.errstate(all="ignore"):
                exact = np.rint(x.astype(np.float64) / 10.0 ** -dec) * 10.0 ** -dec
                want = np.round(x, dec)
            info = np.iinfo(x.dtype)
            # NumPy rounds through float64 (exact below 2**53) and casts back; where that
            # cast overflows, vmapc applies its conversion rule (through int64, then wrap)
            ok = (np.abs(x.astype(np.float64)) < 2 ** 52) & (exact >= info.min) & (exact <= info.max)
            np.testing.assert_array_equal(r[ok], want[ok], err_msg=f"{f.name} decimals={dec}")
            wrapped = ~ok & (np.abs(exact) < 2 ** 62)
            np.testing.assert_array_equal(r[wrapped], exact[wrapped].astype(np.int64).astype(x.dtype))
    r = got["cpu"]["round_int64"][0]            # 9223372036854775807 rounds past int64: its minimum
    assert r[1] == np.iinfo(np.int64).min and r[0] == np.iinfo(np.int64).min
    assert list(got["cpu"]["round_int8"][0][:2]) == [126, -126]      # -130 and 130, wrapped as NumPy does


def test_overflow_and_division_by_zero_are_numpys(edge_results):
    cases, got, _ = edge_results
    for f, args in cases:
        if not f.name.startswith("ovf_"):
            continue
        a, b = args
        with np.errstate(all="ignore"):    # NumPy warns, then gives 0 for x // 0 and x % 0, MIN for MIN // -1
            want = _overflow(a, b)
        for op, g, w in zip(OVERFLOW_OPS, got["cpu"][f.name], want):
            np.testing.assert_array_equal(g, w, err_msg=f"{f.name} {op}")
    assert got["cpu"]["ovf_int8"][0][0] == -128            # abs(INT_MIN) wraps
    with np.errstate(all="ignore"):
        x = np.array([1.0, -1.0, 0.0, np.nan, np.inf, -0.0])
        for g, w in zip(got["cpu"]["fzero_float64"], (x / 0.0, x // 0.0, x % 0.0)):
            np.testing.assert_array_equal(g, w)


def test_bool_bytes_other_than_0_1_are_true(edge_results):
    _, got, ref = edge_results
    want = {"sum": 6, "where": [20, 10, 10, 10, 10, 10, 10, 20], "not": [1, 0, 0, 0, 0, 0, 0, 1],
            "astype": [0, 1, 1, 1, 1, 1, 1, 0], "and": [0, 1, 1, 1, 1, 1, 1, 0], "invert": [1, 0, 0, 0, 0, 0, 0, 1]}
    for target in ("cpu", "cpu:generic"):
        for k, g in zip(BOOL_FNS, got[target]["bools"]):
            np.testing.assert_array_equal(g, want[k], err_msg=k)
            np.testing.assert_array_equal(BOOL_FNS[k](WEIRD_BOOL), want[k], err_msg=f"NumPy {k}")
    for k, r in zip(BOOL_FNS, ref["bools"]):
        np.testing.assert_array_equal(r, want[k], err_msg=k)
    # and through vmapc.compile's own call path, batched
    out = vmapc.compile(lambda b: np.where(b, 1, 0), in_dims=0)(WEIRD_BOOL[None])
    np.testing.assert_array_equal(out[0], [0, 1, 1, 1, 1, 1, 1, 0])


# --- every iree-compile is bounded ---------------------------------------------------------------------

def _fresh_module(tag):
    """A lowered module no cache has seen (its constant is new)."""
    from vmapc import lowering
    f = vmapc.trace(lambda x: np.tanh(x) * float(hash((tag, time.time())) % 1000), vmapc.f32[4])
    f.name = "limited"
    return lowering.lower([f])


@pytest.mark.parametrize("env, pattern", [
    ({"VMAPC_COMPILE_TIMEOUT": "0.001"}, r"did not finish within 0\.001 s \(VMAPC_COMPILE_TIMEOUT\) compiling limited"),
    ({"VMAPC_COMPILE_MEMORY": "1M"}, r"used more than 1 MiB of memory \(VMAPC_COMPILE_MEMORY\) compiling limited"),
    ({"VMAPC_COMPILE_TIMEOUT": "soon"}, r"VMAPC_COMPILE_TIMEOUT must be a number of seconds"),
    ({"VMAPC_COMPILE_MEMORY": "lots"}, r"VMAPC_COMPILE_MEMORY: not a size"),
])
def test_a_runaway_compile_is_stopped(empty_cache, monkeypatch, env, pattern):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    lm = _fresh_module(pattern)
    with pytest.raises(CompileError, match=pattern):
        driver.compile_mlir(lm)
    assert not list(empty_cache.glob("*.vmfb"))


def test_long_compiles_show_progress_on_a_terminal(tmp_path):
    import pty
    script = textwrap.dedent("""
        import numpy as np, vmapc
        from vmapc import driver
        driver.PROGRESS_AFTER_S = 0.0
        f = vmapc.trace(lambda x: np.tanh(x) * 3.25, vmapc.f32[4]); f.name = "shown"
        driver.compile_functions([f], cache=False)
    """)
    main, sub = pty.openpty()
    proc = subprocess.Popen([PY, "-c", script], stderr=sub, stdout=subprocess.PIPE, cwd=tmp_path)
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=300) == 0
    os.close(main)
    assert b"vmapc: compiling shown with IREE" in out and b"MiB" in out, out


# --- the disk cache ----------------------------------------------------------------------------------------

def _lowered(scale):
    from vmapc import lowering
    f = vmapc.trace(lambda x: x * scale + 1.0, vmapc.f32[3])
    f.name = "cached"
    return lowering.lower([f])


def test_an_entry_of_another_module_is_never_used(empty_cache):
    """Copying module A's entry over module B's key (a poisoned shared cache) must not make
    B run A's code: the entry's key material says which module it is."""
    from vmapc.runtime import Module
    la, lb = _lowered(2.0), _lowered(3.0)
    driver.compile_mlir(la)
    vmfb_b = driver.compile_mlir(lb)
    entries = {p.stat().st_mtime_ns: p for p in empty_cache.glob("*.vmfb")}
    path_a, path_b = (entries[k] for k in sorted(entries))
    shutil.copy(path_a, path_b)                       # B's key now holds A's module
    driver.clear_memory_cache()
    with pytest.warns(CacheWarning, match="written for another module"):
        got = driver.compile_mlir(lb)
    assert got == vmfb_b
    fn = Module(got).function("cached")
    np.testing.assert_allclose(fn(np.ones(3, np.float32))[0], [4.0, 4.0, 4.0])


def test_the_cache_directory_is_private(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    driver._checked_cache_dir.cache_clear()
    monkeypatch.setenv("VMAPC_CACHE_DIR", str(tmp_path / "new" / "cache"))
    d = driver.usable_cache_dir()
    assert d == tmp_path / "new" / "cache" and stat.S_IMODE(d.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("VMAPC_CACHE_DIR", str(shared))
    with pytest.warns(CacheWarning, match=r"not using the compile cache .*shared: it is writable by others"):
        d = driver.usable_cache_dir()
    assert d == tmp_path / "tmp" / f"vmapc-cache-{os.getuid()}"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    driver.clear_memory_cache()
    vmfb = driver.compile_mlir(_lowered(5.0))     # compiles into the private fallback, not the shared one
    assert not list(shared.iterdir()) and list(d.glob("*.vmfb")) and vmfb
    if os.getuid() == 0:
        other = tmp_path / "other"
        other.mkdir(mode=0o700)
        os.chown(other, 12345, -1)
        monkeypatch.setenv("VMAPC_CACHE_DIR", str(other))
        with pytest.warns(CacheWarning, match=r"owned by another user \(uid 12345\)"):
            assert driver.usable_cache_dir() == tmp_path / "tmp" / f"vmapc-cache-{os.getuid()}"
    driver._checked_cache_dir.cache_clear()
    driver.clear_memory_cache()


def test_a_planted_lock_symlink_is_not_followed(empty_cache):
    lm = _lowered(7.0)
    key = driver._key_of(driver.key_material(lm.compiler_input.encode() if isinstance(lm.compiler_input, str)
                                             else lm.compiler_input,
                                             tuple(lm.target.flags)))
    victim = empty_cache.parent / "victim.txt"
    victim.write_text("precious")
    (empty_cache / "locks").mkdir(parents=True)
    (empty_cache / "locks" / f"{key}.lock").symlink_to(victim)
    assert driver.compile_mlir(lm)
    assert victim.read_text() == "precious"


_HOLDER = textwrap.dedent("""
    import fcntl, os, signal, sys
    from vmapc import driver
    sys.path.insert(0, sys.argv[1])
    import test_hardening as th
    lm = th._lowered(9.0)
    data = lm.compiler_input.encode() if isinstance(lm.compiler_input, str) else lm.compiler_input
    key = driver._key_of(driver.key_material(data, tuple(lm.target.flags)))
    d = driver.usable_cache_dir() / "locks"
    d.mkdir(exist_ok=True)
    fd = os.open(d / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\\n".encode())
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
""")


def test_a_stopped_lock_holder_does_not_block_others(empty_cache):
    holder = subprocess.Popen([PY, "-c", _HOLDER, str(Path(__file__).parent)], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, VMAPC_CACHE_DIR=str(empty_cache)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.warns(CacheWarning, match=r"process \d+ holding it is stopped; compiling here"):
            vmfb = driver.compile_mlir(_lowered(9.0))
        assert vmfb and time.monotonic() - start < 120
    finally:
        holder.kill()
        holder.wait()


# --- artifacts are untrusted input -----------------------------------------------------------------------

def mlp(x, w):
    return np.tanh(x @ w)


X5 = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
W = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
KEY = b"0123456789abcdef-team-key"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, vmapc_shared_cache):
    root = tmp_path_factory.mktemp("art")
    vmapc.export(mlp, root / "art", args=[vmapc.f32[4], vmapc.f32[4, 3]], in_dims=[0, None], batch="dynamic")
    vmapc.export(mlp, root / "signed", args=[vmapc.f32[4], vmapc.f32[4, 3]], in_dims=[0, None],
                 batch="dynamic", sign_key=KEY)
    np.save(root / "xs.npy", X5)
    np.save(root / "w.npy", W)
    return root


def _copy(artifact, tmp_path, edit=None, name="art"):
    d = tmp_path / f"edited-{name}"
    shutil.copytree(artifact / name, d)
    if edit is not None:
        m = json.loads((d / "manifest.json").read_text())
        text = edit(m)
        (d / "manifest.json").write_text(text if isinstance(text, str) else json.dumps(m))
    return d


HOSTILE_MANIFESTS = {
    "deeply nested JSON": (lambda m: "[" * 100000 + "]" * 100000, "nested too deeply"),
    "nested JSON in a field": (lambda m: json.dumps(m)[:-1] + ', "x": ' + "[" * 50000 + "]" * 50000 + "}",
                               "nested too deeply"),
    "output name with ..": (lambda m: m["outputs"][0].update(name="../../evil"), r"'\.\./\.\./evil' is not a plain"),
    "absolute output name": (lambda m: m["outputs"][0].update(name="/tmp/evil"), "is not a plain identifier"),
    "control characters": (lambda m: m["outputs"][0].update(name="a\x1b[31m"), r"'a\\x1b\[31m' is not a plain"),
    "names that collide": (lambda m: m["outputs"].append(dict(m["outputs"][0], name="OUT")), "used twice"),
    "name of the wrong type": (lambda m: m["inputs"][0].update(name=5), "the name 5 is not a plain"),
    "no sha256": (lambda m: m["targets"]["cpu"].pop("sha256") and None, "sha256 is missing"),
    "sha256 of the wrong type": (lambda m: m["targets"]["cpu"].update(sha256=5), "sha256 is missing or not"),
    "bytes as a string": (lambda m: m["targets"]["cpu"].update(bytes="5"), "bytes must be the size"),
    "a file outside": (lambda m: m["targets"]["cpu"].update(file="../art/cpu.vmfb"), "must be a file name in"),
    "an absolute file": (lambda m: m["targets"]["cpu"].update(file="/etc/passwd"), "must be a file name in"),
    "driver of the wrong type": (lambda m: m["targets"]["cpu"].update(driver=5), "must name an IREE driver"),
    "targets as a list": (lambda m: m.update(targets=[1]), "'targets' must map"),
    "inputs as a dict": (lambda m: m.update(inputs={"x": 1}), "'inputs' must be a list"),
    "in_dim as a string": (lambda m: m["inputs"][0].update(in_dim="0"), "in_dim must be null or an axis"),
    "in_dims of the wrong type": (lambda m: m.update(in_dims="x"), "'in_dims' must list"),
    "a type too big": (lambda m: m["inputs"][0].update(type="f32[9223372036854775807,B]"), "2\\*\\*63 - 1 bytes"),
    "a type of the wrong type": (lambda m: m["inputs"][0].update(type=7), "bad type 7"),
    "batch as a float": (lambda m: m.update(batch=1.5), "'batch' must be"),
    "a function name with control characters": (lambda m: m.update(function="f\x1b[2J"), "must be a name"),
    "an entry that is a path": (lambda m: m.update(entry="../x"), "'entry' must name"),
    "flags as a string": (lambda m: m["targets"]["cpu"].update(flags="-O3"), "flags must be a list of strings"),
    "a huge number": (lambda m: json.dumps(m)[:-1] + ', "x": ' + "9" * 100000 + "}", "cannot read the manifest"),
    "a bad signature": (lambda m: m.update(signature={"algorithm": "none"}), "'signature' must be"),
}


@pytest.mark.parametrize("case", list(HOSTILE_MANIFESTS))
def test_hostile_manifests_are_artifact_errors(artifact, tmp_path, case):
    edit, pattern = HOSTILE_MANIFESTS[case]
    d = _copy(artifact, tmp_path, edit)
    with pytest.raises(ArtifactError, match=pattern) as info:
        load(d)
    assert "\x1b" not in str(info.value)


def test_an_artifact_loads_and_runs(artifact):
    model = load(artifact / "art")
    np.testing.assert_allclose(model(X5, W), np.tanh(X5 @ W), rtol=1e-5)
    np.testing.assert_allclose(model(X5.astype(">f4"), W), np.tanh(X5 @ W), rtol=1e-5)   # big-endian input


def test_signed_artifacts(artifact, tmp_path):
    """HMAC-SHA256 over the canonical manifest, which holds each module's SHA-256."""
    model = load(artifact / "signed", trusted_keys=[b"another key of 16+ bytes", KEY])
    np.testing.assert_allclose(model(X5, W), np.tanh(X5 @ W), rtol=1e-5)
    with pytest.raises(ArtifactError, match="does not match any trusted key"):
        load(artifact / "signed", trusted_keys=[b"another key of 16+ bytes"])
    with pytest.raises(ArtifactError, match="not signed"):
        load(artifact / "art", trusted_keys=[KEY])
    tampered = _copy(artifact, tmp_path, lambda m: m["outputs"][0].update(name="other"), name="signed")
    with pytest.raises(ArtifactError, match="changed after signing"):
        load(tampered, trusted_keys=[KEY])
    with pytest.raises(ArtifactError, match="at least 16 bytes"):
        load(artifact / "signed", trusted_keys=[b"short"])
    assert load(tampered).output_names == ["other"]    # without trusted keys no signature is required


def test_artifact_files_follow_the_umask(tmp_path, vmapc_shared_cache):
    old = os.umask(0o027)
    try:
        vmapc.export(mlp, tmp_path / "a", args=[vmapc.f32[4], vmapc.f32[4, 3]], in_dims=[0, None], batch=5)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    for f in (tmp_path / "a").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f


def test_out_of_memory_at_run_time_is_an_execution_error(tmp_path, vmapc_shared_cache):
    vmapc.export(lambda x: np.broadcast_to(x, (2 ** 57,)), tmp_path / "big", args=[vmapc.f32[1]],
                 in_dims=[0], batch="dynamic")
    model = load(tmp_path / "big")
    with pytest.raises(ExecutionError, match="failed while running"):
        model(np.ones((1, 1), np.float32))
    np.save(tmp_path / "one.npy", np.ones((1, 1), np.float32))
    (res,) = cli(tmp_path, ["run", "big", "--input", "x=one.npy"])
    one_line_error(res, 1, "ExecutionError", "failed while running", "RESOURCE_EXHAUSTED")


def test_a_user_dim_named_like_the_batch_is_not_the_batch(tmp_path, vmapc_shared_cache):
    fn = vmapc.parse("""{ lambda x:f32[B] .
        y:f32[] = reduce_sum[axes=(0,)] x
      in (y) }""")
    m = vmapc.export(fn, tmp_path / "sym", in_dims=[0], batch="dynamic")
    assert m["batch_symbol"] == "B1" and m["inputs"][0]["type"] == "f32[B1,B]"
    x = np.arange(15, dtype=np.float32).reshape(3, 5)     # a batch of 3 examples of 5 elements
    np.testing.assert_allclose(load(tmp_path / "sym")(x), x.sum(1))


_LIBM_LOADS = textwrap.dedent("""
    import os, sys, numpy as np, vmapc
    art = sys.argv[1]
    for _ in range(3):
        np.testing.assert_allclose(vmapc.load(art)(np.arange(3.0)), np.sin(np.arange(3.0)))
    fds = []
    for n in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{n}"))
        except OSError:
            pass
    print(sorted(os.listdir(os.environ["TMPDIR"])), [f for f in fds if "iree_dylib" in f])
""")


def test_modules_that_call_libm_leave_nothing_behind_and_say_why_they_fail(tmp_path, vmapc_shared_cache):
    """IREE 3.13 links such modules as shared libraries, written to $TMPDIR and dlopen()ed;
    its loader also left an empty iree_dylib_* file (and its descriptor) per load."""
    vmapc.export(lambda x: np.sin(x), tmp_path / "sin", args=[vmapc.f64[3]])
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    proc = subprocess.run([PY, "-c", _LIBM_LOADS, str(tmp_path / "sin")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] []"
    env["TMPDIR"] = str(tmp_path / "missing")
    proc = subprocess.run([PY, "-m", "vmapc", "run", str(tmp_path / "sin"), "--input", "x=" + str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path) \
        if np.save(tmp_path / "x.npy", np.arange(3.0)) is None else None
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "ArtifactError" in line and "C math library" in line and "set TMPDIR" in line, line


# --- the command line: hostile files, and no user file lost ----------------------------------------------

_CLI = textwrap.dedent("""
    import contextlib, io, json, resource, signal, sys
    from vmapc.cli import main
    commands = json.loads(sys.argv[1])
    if len(sys.argv) > 2:                  # a full disk: files may not grow past this many bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
    results = []
    for argv in commands:
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code
        results.append([rc, err.getvalue(), out.getvalue()])
    print(json.dumps(results))
""")


def cli(cwd, *commands, fsize=None):
    """Run vmapc commands (lists of arguments) in one subprocess; [(exit status, stderr, stdout)]."""
    args = [PY, "-c", _CLI, json.dumps([list(map(str, c)) for c in commands])] + ([str(fsize)] if fsize else [])
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def one_line_error(res, rc, *fragments):
    code, err, _ = res
    lines = err.strip().splitlines()
    assert code == rc and len(lines) == 1, (code, err)
    assert "internal error" not in lines[0] and "Traceback" not in err
    assert all(32 <= ord(c) < 127 or c.isprintable() for c in lines[0]), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])


MODEL = "import numpy as np\n\ndef mlp(x, w):\n    return np.tanh(x @ w)\n"


def test_compile_and_trace_never_lose_user_files(tmp_path, vmapc_shared_cache):
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "train.py").write_text("mine")
    (tmp_path / "own").mkdir()
    spec = ["--arg", "x=f32[4]", "--arg", "w=f32[4,3]"]
    np.save(tmp_path / "xs.npy", X5)
    np.save(tmp_path / "w.npy", W)
    run = ["run", "art", "--input", "x=xs.npy", "--input", "w=w.npy"]
    res = cli(tmp_path,
              ["trace", "model.py:mlp", *spec, "-o", "own/mlp.vir"],
              ["compile", "model.py:mlp", *spec, "-o", "user"],                      # 1: a user directory
              ["compile", "own/mlp.vir", "-o", "own"],                                # 2: the model is inside
              ["trace", "model.py:mlp", *spec, "-o", "model.py"],                     # 3: its own source
              ["trace", "model.py:mlp", *spec, "-o", "notes.txt"],                    # 4: not a .vir
              ["compile", "own/mlp.vir", "--in-dims", "0,None", "--batch", "dynamic", "-o", "art"],   # 5
              ["compile", "own/mlp.vir", "--in-dims", "0,None", "--batch", "3", "-o", "art",
               "--compile-timeout", "0.001"],                                        # 6: fails: art stays
              run,                                                                     # 7
              ["compile", "model.py:mlp", "--arg", "x=f32[9223372036854775807]", "--arg", "w=f32[4,3]",
               "-o", "huge"],                                                          # 8
              ["trace", "model.py:mlp", *spec, "-o", "notes.txt", "--force"])         # 9
    assert res[0][0] == 0
    one_line_error(res[1], 2, "-o user", "files vmapc did not write", "train.py")
    one_line_error(res[2], 2, "holds the model being compiled")
    one_line_error(res[3], 2, "own source file", "--force")
    one_line_error(res[4], 2, "not a .vir file", "--force")
    assert res[5][0] == 0, res[5]
    one_line_error(res[6], 1, "CompileError", "did not finish within")
    assert res[7][0] == 0 and "out: float32[5, 3]" in res[7][2], res[7]
    one_line_error(res[8], 2, "2**63 - 1 bytes")
    assert res[9][0] == 0 and (tmp_path / "notes.txt").read_text().startswith("# vmapc IR")
    assert (tmp_path / "model.py").read_text() == MODEL
    assert (tmp_path / "user" / "train.py").read_text() == "mine" and len(list((tmp_path / "user").iterdir())) == 1
    assert not (tmp_path / "huge").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())
    # a full disk: one line, no partial artifact, the previous one still works
    res = cli(tmp_path, ["compile", "own/mlp.vir", "--in-dims", "0,None", "--batch", "dynamic", "-o", "art2"],
              fsize=4096)
    one_line_error(res[0], 1, "ArtifactError", "cannot write the artifact art2")
    assert not (tmp_path / "art2").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    res = cli(tmp_path, ["compile", "own/mlp.vir", "--in-dims", "0,None", "--batch", "dynamic", "-o", "art"],
              run, fsize=4096)
    one_line_error(res[0], 1, "ArtifactError", "cannot write the artifact art")
    assert res[1][0] == 0 and "ran mlp on cpu" in res[1][2]


def _npy(path, header, data=b""):
    h = header.encode()
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + data)


def test_run_refuses_hostile_files_in_one_line(artifact, tmp_path):
    d = tmp_path
    _npy(d / "tb.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", b"\0" * 16)
    _npy(d / "obj.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8)
    _npy(d / "deep.npy", "{'descr': " + "[" * 2000 + "]" * 2000 + ", 'fortran_order': False, 'shape': (1,), }")
    _npy(d / "code.npy", "{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, "
                         "'shape': (1,), }")
    (d / "garbage.npy").write_bytes(b"hello")
    shutil.copytree(artifact / "art", d / "art")
    named = _copy(artifact, tmp_path, lambda m: m.update(function="f\x1b[2J\x07"))
    (d / "res").mkdir()
    victim = d / "victim.npy"
    victim.write_bytes(b"precious")
    (d / "res" / "out.npy").symlink_to(victim)              # a planted link where a result goes
    w = ["--input", f"w={artifact / 'w.npy'}"]
    res = cli(d, *[["run", "art", "--input", f"x={f}", *w] for f in
                   ("tb.npy", "obj.npy", "deep.npy", "code.npy", "garbage.npy", "/dev/zero")],
              ["trace", "nothere.py:f", "--arg", "x=tb.npy"],
              ["run", "art", "--input", f"x={artifact / 'xs.npy'}", *w, "--output-dir", "res"],
              ["run", named, "--input", f"x={artifact / 'xs.npy'}", *w],
              ["run", artifact / "signed", "--input", f"x={artifact / 'xs.npy'}", *w, "--trusted-key", "key"],
              ["run", artifact / "art", "--input", f"x={artifact / 'xs.npy'}", *w, "--trusted-key", "key"])
    one_line_error(res[0], 1, "tb.npy is not a valid .npy file", "1000000000000", "holds 16 bytes")
    one_line_error(res[1], 2, "dtype object")
    one_line_error(res[2], 1, "not a valid .npy file")
    one_line_error(res[3], 1, "not a valid .npy file")
    one_line_error(res[4], 1, "not a valid .npy file")
    one_line_error(res[5], 1, "not a valid .npy file")
    one_line_error(res[6], 1, "no such file")
    one_line_error(res[7], 1, "res/out.npy is a symbolic link")
    assert victim.read_bytes() == b"precious"
    one_line_error(res[8], 1, "'function' must be a name", "f\\x1b[2J\\x07")      # escaped, never raw
    one_line_error(res[9], 1, "cannot read the key file key")
    assert not (d / "PWNED").exists()
    (d / "key").write_bytes(KEY + b"\n")
    res = cli(d, ["run", artifact / "signed", "--input", f"x={artifact / 'xs.npy'}", *w, "--trusted-key", "key"],
              ["run", artifact / "art", "--input", f"x={artifact / 'xs.npy'}", *w, "--trusted-key", "key"],
              ["compile", artifact / "art" / "model.vir", "--in-dims", "0,None", "--batch", "2", "-o", "s",
               "--sign", "key"],
              ["run", "s", "--input", f"x={artifact / 'xs.npy'}", *w, "--trusted-key", "key"])
    assert res[0][0] == 0, res[0]
    one_line_error(res[1], 1, "ArtifactError", "not signed")
    assert res[2][0] == 0, res[2]
    one_line_error(res[3], 1, "CallError", "(5, 4)")         # signed and verified; batch 2 is the wrong size


HOSTILE_IR = {
    "attributes nested 100000 deep": "{ lambda a:f32[2] .\n    b:f32[2] = transpose[perm="
                                     + "(" * 100000 + ")" * 100000 + "] a\n  in (b) }",
    "a constant nested 5000 deep": "{ lambda .\n    b:f32[1] = constant[value=" + "[" * 5000 + "1"
                                   + "]" * 5000 + "]\n  in (b) }",
    "bad base64": '{ lambda .\n    b:f32[40] = constant[value=b64"!!!!"]\n  in (b) }',
    "truncated base64": '{ lambda .\n    b:f32[40] = constant[value=b64"AAA"]\n  in (b) }',
    "loc with a float line": '{ lambda a:f32[2] .\n    b:f32[2] = negative a  loc("x.py":1.5)\n  in (b) }',
    "loc with a huge line": '{ lambda a:f32[2] .\n    b:f32[2] = negative a  loc("x.py":' + "9" * 5000 + ")\n  in (b) }",
    "loc with a lone surrogate": '{ lambda a:f32[2] .\n    b:f32[2] = negative a  loc("\\ud800":3)\n  in (b) }',
    "f32[2**63-1]": "{ lambda a:f32[9223372036854775807] .\n  in (a) }",
    "elements overflowing int64": "{ lambda a:f32[4294967296,4294967296] .\n  in (a) }",
    "a 5000-digit dim": "{ lambda a:f32[" + "9" * 5000 + "] .\n  in (a) }",
    "a huge symbolic coefficient": "{ lambda a:f32[99999999999999999999*B] .\n  in (a) }",
    "a 5000-digit attribute": "{ lambda a:f32[2] .\n    b:f32[2] = transpose[perm=(" + "9" * 5000 + ",)] a\n  in (b) }",
    "a string where a dtype goes": '{ lambda a:f32[2] .\n    b:f32[2] = convert[dtype="\\u00e9"] a\n  in (b) }',
    "a NUL byte": "{ lambda a:f32[2] .\x00\n  in (a) }",
    "a huge iota": "{ lambda .\n    b:i64[4611686018427387904] = iota[shape=(4611686018427387904,), dimension=0]\n"
                   "  in (b) }",
}


@pytest.mark.parametrize("case", list(HOSTILE_IR))
def test_hostile_ir_text_is_a_parse_error(case):
    with pytest.raises(IRParseError, match=r"line \d+, column \d+"):
        vmapc.parse(HOSTILE_IR[case])


def test_a_huge_broadcast_input_is_not_materialized(tmp_path):
    """A stride-0 view whose dense copy cannot fit in memory is refused with its broadcast
    size (in a subprocess: were it materialized, the machine would run out of memory)."""
    script = textwrap.dedent("""
        import numpy as np, vmapc
        from vmapc.errors import CallError
        f = vmapc.compile(lambda x: x[0, :3] * 2)
        x = np.broadcast_to(np.float32(1.5), (2 ** 22, 2 ** 22))
        try:
            f(x)
        except CallError as e:
            print(str(e).splitlines()[0])
        np.testing.assert_array_equal(f(np.broadcast_to(np.float32(1.5), (4, 5))), [3.0, 3.0, 3.0])
    """)
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "broadcast view (a stride of 0) of shape (4194304, 4194304)" in proc.stdout
    assert "64.0 TiB" in proc.stdout or "GiB" in proc.stdout
