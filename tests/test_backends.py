"""One corpus of programs on every backend, compared with NumPy; targets and their options.

The corpus is ``scripts/backend_corpus.py``: every op family (``op_samples("few")``)
batched by vmap with in_dims cycling through all 0 and every {-1, None} mix, nested
vmap for every op, and the programs of ``examples/`` (quickstart MLP, MLP with
log-softmax, ensemble, attention, pairwise distances) at small shapes. Expected
values are NumPy's: the per-example loop over the reference evaluator, or the
examples' own NumPy formulas.

Backends and what runs where:

* ``cpu-local-sync`` and ``cpu-local-task``: llvm-cpu for the host, both runtime
  drivers, on the same compiled modules;
* ``vulkan``: SPIR-V (the "desktop" profile) on whatever Vulkan device is present
  (Mesa's lavapipe in CI);
* ``cuda-sm_80`` (and the first module for ``cuda-sm_90a``): every module is compiled and its reflection
  (function names and signatures) loaded with ``iree.runtime.VmModule`` on a bare
  VmInstance; the programs also run where a CUDA device exists, and the test that runs
  them is skipped with the reason otherwise.

A backend that cannot run here is skipped with the reason (``pytest -ra`` shows it).

Tolerances (``backend_corpus.TOLERANCES``): integers and bools exactly; floats
elementwise ``|got - want| <= tol * (1 + |want|)`` (NaN equals NaN), with tol by the
kind of program and the target:

==========================  ==========  ==========  ==========
kind / dtype                float16     float32     float64
==========================  ==========  ==========  ==========
base (one rounding)         1e-3        1e-6        1e-15
math, cpu                   2e-3        2e-6        1e-13
math, vulkan                4e-3        1e-4        (no f64 math)
math, cuda                  2e-3        8e-6        1e-13
acc (sums, contractions)    1e-2        1e-5        1e-12
==========================  ==========  ==========  ==========

"math" is any program with a transcendental function (or sqrt/divide), "acc" any
with a sum, product or contraction. Vulkan's float32 math is GLSL.std.450's, whose
precision the Vulkan spec leaves loose (lavapipe measured: 2.5e-5 worst, tan); see
``docs/backends.md``.

Compiling is the slow part: cases are merged into functions of 24 and those into two
modules per target (IREE deduplicates identical kernels within a module, so big
modules compile fastest), each module one test per backend, so the two xdist workers
compile different modules and share them through the session's disk cache.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vmapc
from vmapc import dtypes as dt
from vmapc import driver, lowering, targets
from vmapc.errors import CallError, TargetError
from vmapc.ir import Builder, TensorType, Var
from vmapc.shapes import Sym

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import backend_corpus as bc  # noqa: E402

CORPUS = bc.build()
HERE = Path(__file__).name


def _reason(driver_name):
    return targets.runtime_devices(driver_name)[1]


BACKENDS = {  # name -> (target, runtime driver)
    "cpu-local-sync": (targets.target("cpu"), "local-sync"),
    "cpu-local-task": (targets.target("cpu"), "local-task"),
    "vulkan": (targets.target("vulkan"), "vulkan"),
}
CUDA_ARCHS = ("sm_80", "sm_90a")


# scripts/cuda_matrix.py groups the corpus exactly like this file, so the compile cache serves both
import cuda_matrix  # noqa: E402

PLANS = {}  # target label -> (groups per module, skipped {name: reason})
for _t in [t for t, _ in BACKENDS.values()] + [targets.target("cuda", arch=a) for a in CUDA_ARCHS]:
    if _t.label not in PLANS:
        _ok, _skipped = bc.split(CORPUS, _t)
        PLANS[_t.label] = (bc.modules(_ok, n_modules=cuda_matrix.module_count(_ok)), _skipped)


def _interleaved(names):
    """(backend, module index) pairs, modules interleaved across backends so that both
    xdist workers compile different modules from the start."""
    n = max(len(PLANS[BACKENDS[b][0].label if b in BACKENDS else b][0]) for b in names)
    out = []
    for i in range(n):
        for b in names:
            label = BACKENDS[b][0].label if b in BACKENDS else b
            if i < len(PLANS[label][0]):
                out.append((b, i))
    return out


def _check_group(results, group, family):
    failures = []
    for _, spans in group:
        for e, _, _ in spans:
            try:
                bc.compare(e, results[e.name], family)
            except AssertionError as err:
                failures.append(str(err))
    assert not failures, f"{len(failures)} programs differ from NumPy:\n" + "\n".join(failures)


# --- the corpus on every backend that runs here --------------------------------------------------

@pytest.mark.parametrize("backend,index", _interleaved(list(BACKENDS)),
                         ids=[f"{b}-m{i}" for b, i in _interleaved(list(BACKENDS))])
def test_corpus(backend, index, vmapc_shared_cache):
    t, drv = BACKENDS[backend]
    reason = _reason(drv)
    if reason is not None:
        pytest.skip(f"{backend} cannot run here: {reason}")
    group = PLANS[t.label][0][index]
    vmfb = bc.compile_module(group, t)
    _check_group(bc.run_module(vmfb, group, drv), group, t.name)


# sm_80 compiles the whole corpus; sm_90a its first module only, which checks that the arch
# is selected and reflects (the NVPTX code generation is the same; scripts/cuda_matrix.py
# compiles, and on a GPU runs, the whole corpus for both).
@pytest.mark.parametrize("arch,index", [("sm_80", i) for i in range(len(PLANS["cuda"][0]))] + [("sm_90a", 0)],
                         ids=lambda v: str(v))
def test_cuda_corpus_compiles_and_reflects(arch, index, vmapc_shared_cache):
    t = targets.target("cuda", arch=arch)
    group = PLANS[t.label][0][index]
    vmfb = bc.compile_module(group, t)
    bc.check_reflection(vmfb, group)
    if arch != "sm_80":  # the explicit target really selects the arch
        assert f".target {arch}".encode() in vmfb
    if _reason("cuda") is None:  # a CUDA device: run the programs too
        try:
            results = bc.run_module(vmfb, group, "cuda")
        except Exception as e:  # e.g. sm_90a code on a pre-Hopper GPU
            pytest.skip(f"the CUDA device cannot run {arch} code: {e}")
        _check_group(results, group, "cuda")


def test_cuda_runs_here():
    reason = _reason("cuda")
    if reason is not None:
        pytest.skip(f"CUDA cannot run here ({reason}); the corpus was compiled for it, "
                    "run scripts/cuda_matrix.py on a machine with an NVIDIA GPU")
    fn = _fn("f", [((3,), dt.FLOAT32)], lambda b, x: [b.emit("exp", x)])
    (r,) = driver.compile_functions([fn], "cuda")["f"](np.array([0, 1, 2], np.float32))
    np.testing.assert_allclose(r, np.exp(np.array([0, 1, 2], np.float32)), rtol=1e-6)


def test_corpus_covers_every_op_family_and_example():
    from vmapc.ops import OPS
    s = bc.summary(CORPUS)
    # (the loops run on every backend in a module of their own: tests/test_control.py)
    assert set(OPS) - {"cond", "while_loop", "scan"} <= set(s["families"])
    assert {"quickstart", "mlp_inference", "ensemble", "attention", "pairwise_distances"} <= set(s["families"])
    assert s["kinds"]["nested"] >= 50 and s["kinds"]["op"] >= 200
    in_dims = {e.name.split("_in", 1)[1].split("_out")[0] for e in CORPUS if e.kind == "op" and "_in(" in e.name}
    assert {"(0,)", "(-1,)", "(0, 0)", "(-1, None)", "(None, -1)", "(-1, -1)"} <= in_dims


@pytest.mark.parametrize("label", sorted(PLANS))
def test_programs_a_target_cannot_run_raise_target_error(label):
    """What a target leaves out of the corpus is rejected at compile time, with the
    user's file:line, never compiled into a wrong answer."""
    t = targets.get_target(label)
    skipped = PLANS[label][1]
    by_name = {e.name: e for e in CORPUS}
    for name, reason in skipped.items():
        with pytest.raises(TargetError) as err:
            lowering.lower([by_name[name].fn], target=t)
        # (the op samples are built without source lines; the examples have theirs)
        assert t.label in str(err.value) and (err.value.loc is not None or by_name[name].kind != "example"), reason
    # scatters IREE 3.13 cannot compile (CUDA) or computes wrongly (Vulkan min/max) are refused
    scatters = {n for n, r in skipped.items() if r.split(": ", 1)[1].startswith("scatter")}
    if label.startswith("cuda"):
        assert scatters
    if label == "vulkan":  # attention's float64 exp (NumPy promotes q @ k.T / np.sqrt(d) to float64)
        assert scatters and sorted(set(skipped) - scatters) == ["example_attention"]
        with pytest.raises(TargetError, match="float64 exp") as err:
            lowering.lower([by_name["example_attention"].fn], target=t)
        assert err.value.loc.file.endswith("attention.py")
    else:
        assert not set(skipped) - scatters


# --- helpers for the targeted tests --------------------------------------------------------------

def _fn(name, in_types, body, loc=None):
    from vmapc.errors import Loc
    b = Builder(loc=loc or Loc(__file__, 1))
    ins = [Var(TensorType(s, d)) for s, d in in_types]
    return b.build(ins, list(body(b, *ins)), name=name)


def _need(drv):
    reason = _reason(drv)
    if reason is not None:
        pytest.skip(f"the {drv} driver cannot run here: {reason}")


# --- Vulkan: reading results back, every dtype ----------------------------------------------------

def _readback_cases():
    rng = np.random.default_rng(7)
    B = Sym("B")
    fns, args = [], []
    for d in [d for d in dt.ALL if not dt.is_complex(d)]:    # complex: tests/test_complex.py
        for shape in ((), (5, 7), (0, 3)):
            sn = dt.short_name(d)
            name = f"rb_{sn}_{len(shape)}d_{shape[0] if shape else 1}"
            red = "reduce_any" if d == dt.BOOL else "reduce_max"
            fns.append(_fn(name, [(shape, d), (shape, d)], lambda b, x, y, red=red, d=d: [
                b.emit("logical_xor" if d == dt.BOOL else "add", x, y),
                b.emit(red, x, axes=tuple(range(len(x.shape)))) if x.shape and 0 not in x.shape else x,
                b.emit("convert", x, dtype=dt.INT32) if d != dt.FLOAT16 else b.emit("negative", x),
                x]))                                          # an input returned as is
            if d == dt.BOOL:
                a = [rng.random(shape) < 0.5 for _ in range(2)]
            elif dt.is_float(d):
                a = [rng.normal(size=shape).astype(d) for _ in range(2)]
            else:
                info = np.iinfo(d)
                a = [rng.integers(max(info.min, -100), min(info.max, 100), size=shape, endpoint=True).astype(d)
                     for _ in range(2)]
                if shape == (5, 7):
                    a[0][0, :2] = [info.min, info.max]
            args.append(a)
    fns.append(_fn("rb_dynamic", [((B, 3), dt.FLOAT32), ((3,), dt.FLOAT32)],
                   lambda b, x, y: [b.emit("add", x, b.emit("broadcast_in_dim", y, shape=(B, 3), dims=(1,))),
                                    b.emit("reduce_sum", x, axes=(1,))]))
    args.append(None)
    fns.append(_fn("rb_constants", [], lambda b: [b.constant(np.arange(6, dtype=np.int64).reshape(2, 3)),
                                                  b.constant(np.float64(2.5))]))
    args.append([])
    return fns, args


READBACK = _readback_cases()


@pytest.mark.parametrize("storage", [True, False], ids=["output-storage", "staging-copy"])
def test_vulkan_results_are_read_back_for_every_dtype(storage, vmapc_shared_cache):
    """Vulkan results are device-local buffers IREE 3.13 cannot map; vmapc's lowering gives
    each result a caller-provided host-visible buffer (the default), and any result that
    still is not mappable is copied through a staging buffer (as CUDA results are)."""
    _need("vulkan")
    from vmapc.reference import evaluate
    t = targets.target("vulkan")
    if not storage:
        t = dataclasses.replace(t, output_storage=False)
    fns, argsets = READBACK
    if not storage:  # the generic path needs only a few dtypes
        keep = [i for i, f in enumerate(fns) if f.name.endswith("_2d_5") and f.name.split("_")[1] in
                ("bool", "u8", "f16", "i64", "f64")]
        fns, argsets = [fns[i] for i in keep], [argsets[i] for i in keep]
    compiled = driver.compile_functions(fns, t)
    assert all(bool(compiled[f.name].storage_outputs) == storage for f in fns)
    checked = 0
    for f, args in zip(fns, argsets):
        runs = [args] if args is not None else [[np.random.default_rng(n).random((n, 3)).astype(np.float32),
                                                 np.arange(3, dtype=np.float32)] for n in (1, 4, 2)]
        for a in runs:
            got, want = compiled[f.name](*a), evaluate(f, *a)
            for j, (g, w) in enumerate(zip(got, want)):
                assert g.dtype == w.dtype and g.shape == w.shape, (f.name, j)
                if dt.is_float(w.dtype) and f.name == "rb_dynamic":
                    np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"{f.name} output {j}")
                else:
                    np.testing.assert_array_equal(g, w, err_msg=f"{f.name} output {j}")
                checked += 1
    assert checked > (100 if storage else 15)


def test_vulkan_output_storage_is_in_the_abi():
    fn = _fn("f", [((3,), dt.FLOAT32)], lambda b, x: [b.emit("exp", x), x])
    text = lowering.lower([fn], target="vulkan").text
    assert "!hal.buffer {iree.abi.output = 0 : index}" in text
    assert "!hal.buffer {iree.abi.output = 1 : index}" in text
    assert "iree.abi.output" not in lowering.lower([fn], target="cpu").text


def test_module_without_signatures_sizes_static_output_storage(vmapc_shared_cache):
    _need("vulkan")
    from vmapc.runtime import Module
    fn = _fn("f", [((2, 3), dt.FLOAT32)], lambda b, x: [b.emit("reduce_sum", x, axes=(1,)), x])
    vmfb = driver.compile_mlir(lowering.lower([fn], target="vulkan"), "vulkan")
    m = Module(vmfb, driver="vulkan")  # no signatures: the declaration gives the result types
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    s, same = m["f"](x)
    np.testing.assert_array_equal(s, x.sum(1))
    np.testing.assert_array_equal(same, x)
    dyn = _fn("g", [((Sym("B"),), dt.FLOAT32)], lambda b, x: [b.emit("negative", x)])
    m2 = Module(driver.compile_mlir(lowering.lower([dyn], target="vulkan"), "vulkan"), driver="vulkan")
    with pytest.raises(CallError, match="signatures"):
        m2["g"](np.ones(3, np.float32))


# --- what each target rejects, and what it emulates ----------------------------------------------

def _traced(fn, *specs, target):
    """A vmapc.compile of `fn` at `specs`, lowered for `target` (raises at lower)."""
    return vmapc.compile(fn, target=target).lower(*specs).lowered_module


def test_float64_math_on_vulkan_is_a_target_error_naming_the_line():
    def f(x):
        return np.exp(x) + 1.0  # the line the error must name
    line = f.__code__.co_firstlineno + 1
    with pytest.raises(TargetError) as err:
        _traced(f, np.zeros(3), target="vulkan")
    e = err.value
    assert "float64 exp" in e.message and "vulkan" in e.message and "SPIR-V" in e.message
    assert e.loc is not None and e.loc.file == __file__ and e.loc.line == line
    assert f"{HERE}:{line}" in str(e)
    # float32 exp compiles, and float64 arithmetic and sqrt are fine on the desktop profile
    _traced(f, np.zeros(3, np.float32), target="vulkan")
    _traced(lambda x: np.sqrt(x * x + 1.0), np.zeros(3), target="vulkan")


@pytest.mark.parametrize("dtype", ["float64", "float16", "bool", "int8", "uint16"])
def test_vulkan_baseline_rejects_what_it_cannot_store(dtype):
    """IREE's default Vulkan profile has 32-bit storage only: float16 comes back wrong,
    8/16-bit integers and bools race in packed 32-bit words, float64 does not compile.
    vmapc refuses them at compile time, naming the value and the user's line."""
    def f(x):
        return x == x  # bool result (and x itself has the dtype under test)
    line = f.__code__.co_firstlineno + 1
    with pytest.raises(TargetError) as err:
        _traced(f, np.zeros(3, dtype), target="vulkan:baseline")
    e = err.value
    assert f"dtype {dtype} is not supported" in e.message
    assert "vulkan:baseline" in e.message and e.loc.file == __file__ and e.loc.line == line
    assert "f32" in e.message  # lists what it does support


def test_vulkan_baseline_emulates_int64(vmapc_shared_cache):
    """64-bit integers on the baseline profile run through IREE's i32-pair emulation:
    exact, including values beyond 32 bits and wrap-around."""
    _need("vulkan")
    def f(x, y):
        s = x + y
        p = x * np.int64(3)
        return s, p, np.maximum(x, y) - y, (x ^ y) & np.int64(0x7FFF_FFFF_FFFF), x.sum()
    rng = np.random.default_rng(3)
    x = rng.integers(-2**62, 2**62, size=7, dtype=np.int64)
    y = rng.integers(-2**40, 2**40, size=7, dtype=np.int64)
    x[0], y[0] = np.iinfo(np.int64).max, 1                      # wraps
    got = vmapc.compile(f, target="vulkan:baseline")(x, y)
    with np.errstate(over="ignore"):
        want = f(x, y)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_vulkan_baseline_runs_float32(vmapc_shared_cache):
    _need("vulkan")
    x = np.linspace(-3, 3, 11, dtype=np.float32)
    got = vmapc.compile(lambda x: np.tanh(x) * 2.0 + x, target="vulkan:baseline")(x)
    np.testing.assert_allclose(got, np.tanh(x) * 2.0 + x, rtol=1e-4, atol=1e-6)


# --- target-aware lowering -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["sin", "cos", "tan", "power"])
def test_float64_libm_trick_is_cpu_only(op):
    ins = [((4,), dt.FLOAT32)] * (2 if op == "power" else 1)
    fn = _fn("f", ins, lambda b, *xs: [b.emit(op, *xs)])
    assert "f64" in lowering.lower([fn], target="cpu").text
    for t in ("vulkan", "cuda", "cuda:sm_90a"):
        lm = lowering.lower([fn], target=t)
        assert "f64" not in lm.text, t
        assert not lm.needs_libm
    assert lowering.lower([fn], target="cpu").needs_libm == (op != "power")


def test_vulkan_float64_round_is_floor_based(vmapc_shared_cache):
    """math.roundeven on float64 does not lower to SPIR-V (a 64-bit bitcast): Vulkan
    gets an exact floor-based expansion, NumPy's half-to-even with signed zeros."""
    _need("vulkan")
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.4, -0.4, 2.6, -2.6, 1e300, -0.0, np.inf, -np.inf, np.nan,
                  4503599627370495.5, 123456.5])
    got = vmapc.compile(np.round, target="vulkan")(x)
    want = np.round(x)
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want)).all()


def test_cuda_sm90a_is_an_explicit_module_target(vmapc_shared_cache):
    t = targets.target("cuda", arch="sm_90a")
    assert not any(f.startswith(("--iree-cuda-target", "--iree-hal-target-device")) for f in t.flags)
    fn = _fn("f", [((4,), dt.FLOAT32)], lambda b, x: [b.emit("sin", x)])
    text = lowering.lower([fn], target=t).text
    assert "hal.device.targets" in text and 'arch = "sm_90a"' in text and "+ptx80" in text
    vmfb = driver.compile_mlir(lowering.lower([fn], target=t), t)
    assert b".target sm_90a" in vmfb
    vmfb80 = driver.compile_mlir(lowering.lower([fn], target="cuda"), "cuda")
    assert b".target sm_80" in vmfb80


def test_a_module_lowered_for_one_target_is_not_compiled_for_another():
    fn = _fn("f", [((4,), dt.FLOAT32)], lambda b, x: [b.emit("exp", x)])
    with pytest.raises(TargetError, match="lowered for target cpu, not vulkan"):
        driver.compile_mlir(lowering.lower([fn]), "vulkan")


# --- the target model ----------------------------------------------------------------------------

def test_target_constructor_and_strings():
    assert targets.get_target("cpu") is targets.TARGETS["cpu"]
    assert vmapc.driver.get_target("cuda").flags[-1] == "--iree-cuda-target=sm_80"
    assert targets.get_target("cuda:sm_90a") == targets.target("cuda", arch="sm_90a")
    assert targets.get_target("cpu:generic") == targets.target("cpu", cpu="generic")
    assert "--iree-llvmcpu-target-cpu=generic" in targets.target("cpu", cpu="generic").flags
    assert "--iree-llvmcpu-target-cpu=x86-64-v3" in targets.target("cpu", cpu="x86-64-v3").flags
    assert targets.target("cpu", cpu="generic").label == "cpu:generic"
    assert targets.target("cuda", arch="sm_80").label == "cuda"
    assert targets.target("vulkan", profile="baseline").label == "vulkan:baseline"
    assert "--iree-cuda-target=sm_89" in targets.target("cuda", arch="sm_89").flags
    assert targets.target("cuda", arch="sm_100").module_attrs
    assert targets.target("vulkan").output_storage and not targets.target("cpu").output_storage
    assert targets.target(targets.target("cpu"), driver="local-task").driver == "local-task"
    for bad, msg in ((("tpu",), {}), (("cuda",), {"arch": "sm_99"}), (("vulkan",), {"profile": "mobile"}),
                     (("cpu",), {"driver": "cuda"}), (("cpu",), {"bogus": 1})):
        with pytest.raises(TargetError):
            targets.target(*bad, **msg)


def test_vmapc_targets_reports_every_target():
    rows = vmapc.targets()
    assert [r["name"] for r in rows] == ["cpu", "vulkan", "cuda"]
    for r in rows:
        assert set(r) >= {"name", "can_compile", "can_run", "devices", "reason"}
        assert isinstance(r["can_compile"], bool) and isinstance(r["can_run"], bool)
        assert isinstance(r["devices"], list) and all(isinstance(d, str) for d in r["devices"])
        assert (r["reason"] is None) == (r["can_compile"] and r["can_run"])
        assert r["can_compile"]  # iree-base-compiler ships all three backends
    cpu, vulkan, cuda = rows
    assert cpu["can_run"] and cpu["devices"]
    assert vulkan["can_run"] == (_reason("vulkan") is None)
    if not cuda["can_run"]:
        assert cuda["reason"].startswith("no CUDA device")
    # the module is callable too (vmapc.targets may resolve to it)
    assert targets() == rows


def test_cpu_driver_choice_by_estimated_work():
    small = _fn("s", [((8, 4), dt.FLOAT32), ((4, 3), dt.FLOAT32)],
                lambda b, x, w: [b.emit("dot_general", x, w, contract=((1,), (0,)), batch=((), ()))])
    big = _fn("g", [((1024, 1024), dt.FLOAT32), ((1024, 1024), dt.FLOAT32)],
              lambda b, x, w: [b.emit("dot_general", x, w, contract=((1,), (0,)), batch=((), ()))])
    wide = _fn("w", [((1 << 19,), dt.FLOAT32)], lambda b, x: [b.emit("tanh", x)])
    cpu = targets.target("cpu")
    assert cpu.choose_driver([small]) == "local-sync"
    assert cpu.choose_driver([big]) == "local-task"
    assert cpu.choose_driver([wide]) == "local-sync"   # memory-bound: the thread pool does not pay
    assert targets.target("cpu", driver="local-sync").choose_driver([big]) == "local-sync"
    assert targets.target("vulkan").choose_driver([big]) == "vulkan"
    flops, nbytes = targets.estimate_work(big)
    assert flops == 2 * 1024 ** 3 and nbytes == 3 * 1024 * 1024 * 4


def test_compile_picks_and_overrides_the_driver(vmapc_shared_cache):
    f = vmapc.compile(lambda x: x * 2.0, in_dims=0)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(f(x), 2 * x)
    exe = f.lower(x).compile()
    assert exe.fn.module.driver == "local-sync"
    g = vmapc.compile(lambda x: x * 2.0, in_dims=0, driver="local-task")
    assert g.lower(x).compile().fn.module.driver == "local-task"
    np.testing.assert_array_equal(g(x), 2 * x)


@pytest.mark.parametrize("cpu", ["generic", "x86-64-v2"])
def test_portable_cpu_targets_run_here(cpu, vmapc_shared_cache):
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"{cpu} is an x86-64 CPU; this machine is {platform.machine()}")
    if cpu == "x86-64-v2" and "sse4_2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU lacks x86-64-v2 (SSE4.2)")
    f = vmapc.compile(lambda x, w: np.tanh(x @ w), target=vmapc.target("cpu", cpu=cpu), in_dims=(0, None))
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(f(x, w), np.tanh(x @ w), rtol=1e-5, atol=1e-6)


def test_host_cpu_code_is_cached_per_cpu():
    flags = targets.TARGETS["cpu"].flags
    assert driver.cache_key(b"m", flags) != driver.cache_key(b"m", flags[:-1] + ("--iree-llvmcpu-target-cpu=generic",))
    assert driver._host_cpu() in driver._host_cpu()  # stable
    generic = targets.target("cpu", cpu="generic").flags
    assert driver.cache_key(b"m", generic) == driver.cache_key(b"m", generic)


# --- scripts/cuda_matrix.py ----------------------------------------------------------------------

def test_cuda_matrix_fails_clearly_without_a_gpu():
    if _reason("cuda") is None:
        pytest.skip("a CUDA device is present: the script would run for real")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "cuda_matrix.py")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr and "--compile-only" in out.stderr


def test_cuda_matrix_compile_only(vmapc_shared_cache):
    """The script's compile-only path (what it does without a GPU), on the first 12
    programs of the corpus for sm_80 and sm_90a: compiled, reflection checked, tabled.
    (The whole corpus is compiled for both archs by the tests above.)"""
    env = dict(os.environ, VMAPC_CACHE_DIR=str(vmapc_shared_cache))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "cuda_matrix.py"), "--compile-only",
                          "--limit", "12"], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("corpus: 12 programs")
    header = next(ln for ln in lines if ln.startswith("family"))
    assert header.split()[2:] == ["sm_80", "sm_90a"]
    rows = {ln.split()[0]: ln.split()[2:] for ln in lines[lines.index(header) + 1:-1]}
    assert rows["negative"] == ["ok", "ok"] and rows["abs"] == ["ok", "ok"]
    assert lines[-1] == "24 passed, 0 failed (compile only)"
    assert "module 0: 12 programs compiled" in out.stderr
