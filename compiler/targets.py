"""Compilation targets: what ``vmapc.compile(..., target=...)`` accepts.

A :class:`Target` describes one way of compiling and running a program: the
``iree-compile`` flags (and, where a flag cannot say it, an MLIR module
attribute), the IREE runtime driver that runs the result, the dtypes the
generated code can compute with, and the few lowering choices that depend on
the backend. Three families exist; each has defaults (``TARGETS``) and options::

    vmapc.target("cpu")                       # llvm-cpu for this machine's CPU
    vmapc.target("cpu", cpu="x86-64-v3")      # a portable artifact (any AVX2 x86-64)
    vmapc.target("cpu", cpu="generic")        # any x86-64 (SSE2 only)
    vmapc.target("vulkan")                    # SPIR-V with 8/16/64-bit types ("desktop" profile)
    vmapc.target("vulkan", profile="baseline")  # IREE's default profile: 32-bit types only
    vmapc.target("cuda")                      # NVPTX for sm_80 (Ampere; JIT-compiled on newer GPUs)
    vmapc.target("cuda", arch="sm_90a")       # Hopper, through an explicit #hal.executable.target

The strings ``"cpu"``, ``"vulkan"``, ``"cuda"`` mean the defaults, and
``"name:option"`` (``"cpu:generic"``, ``"vulkan:baseline"``, ``"cuda:sm_90a"``)
the main option of each family.

:func:`targets` reports, per family, whether it can compile and run here, its
devices, and why not when it cannot (``vmapc targets`` on the command line).

This module is callable (``vmapc.targets()`` is :func:`targets`): the package
exposes the function lazily under the same name as this module, and once the
module is imported Python finds the module first.

See ``docs/backends.md`` for the flags, the dtype table, tolerances and the
measurements behind the choices made here.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types

import numpy as np

from . import dtypes as dt
from .errors import TargetError

# IREE demotes float64 to float32 unless told not to: wrong numbers, silently.
_COMMON = ("--iree-input-demote-f64-to-f32=false",)

ALL_DTYPES = frozenset(np.dtype(d) for d in dt.ALL)

# float64 math that SPIR-V cannot do: GLSL.std.450's exp, log, sin, ... take 16/32-bit floats
# only (IREE 3.13 fails with "'spirv.GL.Exp' op operand #0 must be 16/32-bit float").
SPIRV_NO_F64 = frozenset({
    "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "sigmoid", "erf", "power", "arctan2"})
# and complex128 math, which IREE expands into float64 exp, log, sin, ... (sqrt through log)
SPIRV_NO_C128 = frozenset({"exp", "log", "sqrt", "sin", "cos", "power"})


@dataclasses.dataclass(frozen=True)
class Target:
    """A compilation target (make one with :func:`target`).

    ``name``: the family ("cpu", "vulkan", "cuda"); ``flags``: ``iree-compile`` flags;
    ``driver``: the IREE runtime driver by default; ``dtypes``: the dtypes programs may
    use; ``emulated``: those among them that IREE emulates (dtype -> how);
    ``unsupported_ops``: op names that cannot run in float64 here;
    ``unsupported_complex_ops``: those that cannot run in complex128;
    ``module_attrs``: ``(name, MLIR attribute text)`` set on the lowered module;
    ``output_storage``: results are written into caller-provided host-visible buffers
    (``{iree.abi.output = N}`` arguments), which is how Vulkan results are read back;
    ``f64_math``: compute float16/32 sin/cos/tan/power in float64 through libm (CPU);
    ``libm_flags``: flags for modules that call libm; ``options``: what it was made with.
    """
    name: str
    flags: tuple
    driver: str
    dtypes: frozenset = ALL_DTYPES
    emulated: tuple = ()
    unsupported_ops: frozenset = frozenset()
    unsupported_complex_ops: frozenset = frozenset()
    module_attrs: tuple = ()
    output_storage: bool = False
    f64_math: bool = False
    libm_flags: tuple = ()
    options: tuple = ()
    description: str = ""

    @property
    def label(self) -> str:
        """``name`` plus the main option when it is not the default, e.g. ``cuda:sm_90a``."""
        main = dict(self.options).get(_MAIN_OPTION[self.name])
        default = _DEFAULTS[self.name].get(_MAIN_OPTION[self.name])
        return self.name if main in (None, default) else f"{self.name}:{main}"

    @property
    def backend(self) -> str:
        return {"cpu": "llvm-cpu", "vulkan": "vulkan-spirv", "cuda": "cuda"}[self.name]

    @property
    def lowering_key(self) -> tuple:
        """What the lowering depends on: modules lowered for targets with equal keys are
        interchangeable."""
        return (self.output_storage, self.f64_math, self.module_attrs, self.name == "vulkan")

    @property
    def control_flow_flags(self) -> tuple:
        """Flags added for modules with branches or loops (see AGGRESSIVE_FUSION)."""
        return (AGGRESSIVE_FUSION + "=false",) if AGGRESSIVE_FUSION + "=true" in self.flags else ()

    def supports(self, dtype) -> bool:
        return np.dtype(dtype) in self.dtypes

    # -- checks -----------------------------------------------------------------------------------
    def check(self, functions) -> None:
        """Raise :class:`TargetError` at the first value or op this target cannot run,
        naming its type, the user's ``file:line`` and the target."""
        from .ir import Function, walk_eqns
        if isinstance(functions, Function):
            functions = [functions]
        for fn in functions:
            for v in fn.inputs:
                if v.dtype not in self.dtypes:
                    loc = next((e.loc for e in fn.eqns if v in e.inputs), None)
                    raise self._dtype_error(fn, f"input {fn.inputs.index(v)} ({v.type})", v.dtype, loc)
            for e in walk_eqns(fn):   # sub-programs (loop bodies, branches) included
                for v in list(e.inputs) + list(e.outputs):
                    if v.dtype not in self.dtypes:
                        raise self._dtype_error(fn, f"{e.op} on {v.type}", v.dtype, e.loc)
                why = self._refuses(e)
                if why is not None:
                    raise TargetError(f"{fn.name}: {why}", e.loc)
                if e.op in self.unsupported_ops and any(v.dtype == dt.FLOAT64 for v in e.inputs):
                    raise TargetError(
                        f"{fn.name}: float64 {e.op} is not available on target {self.label}: SPIR-V's "
                        f"GLSL.std.450 math functions take 16/32-bit floats only (compute it in float32 "
                        f"with .astype(np.float32), or use target 'cpu' or 'cuda')", e.loc)
                if e.op in self.unsupported_complex_ops and any(v.dtype == dt.COMPLEX128 for v in e.inputs):
                    raise TargetError(
                        f"{fn.name}: complex128 {e.op} is not available on target {self.label}: IREE computes it "
                        f"with float64 exp/log/sin/cos, and SPIR-V's GLSL.std.450 math functions take 16/32-bit "
                        f"floats only (compute it in complex64 with .astype(np.complex64), or use target 'cpu')",
                        e.loc)

    def _refuses(self, e):
        """Why this target refuses equation `e` (an IREE 3.13 limitation found by the backend
        corpus, tests/test_backends.py), or None."""
        if e.op != "scatter":
            return None
        if self.name == "cuda":
            return (f"scatter (a write at computed indices, mode={e.attrs['mode']}) is not available on target "
                    f"{self.label}: IREE 3.13's CUDA backend fails to compile it (\"failed to bufferize op\"); "
                    "use target 'cpu' or 'vulkan'")
        if self.name == "vulkan" and e.attrs["mode"] in ("min", "max"):
            return (f"scatter with mode={e.attrs['mode']} (np.minimum.at, np.maximum.at) is not available on "
                    f"target {self.label}: IREE 3.13's SPIR-V code for it gives wrong results; use target 'cpu'")
        return None

    def _dtype_error(self, fn, what, dtype, loc):
        supported = ", ".join(dt.short_name(d) for d in dt.ALL if d in self.dtypes)
        hint = ""
        if self.name == "vulkan" and dict(self.options).get("profile") == "baseline":
            hint = "; vmapc.target('vulkan') (the desktop profile) has it where the device supports it"
        return TargetError(f"{fn.name}: {what}: dtype {dtype} is not supported by target {self.label} "
                           f"(it supports {supported}{hint})", loc)

    # -- the runtime driver -----------------------------------------------------------------------
    def choose_driver(self, functions) -> str:
        """The runtime driver for these functions: the target's own, except on the CPU
        without an explicit ``driver`` option, where small programs run on ``local-sync``
        (on the calling thread: no wake-ups) and those with much arithmetic on working
        sets that stay in cache on ``local-task`` (a thread pool); see :func:`task_wins`
        and ``docs/performance.md`` for the measurements."""
        if self.name != "cpu" or dict(self.options).get("driver"):
            return self.driver
        from .ir import Function
        if isinstance(functions, Function):
            functions = [functions]
        flops, nbytes = 0, 0
        for fn in functions:
            f, b = estimate_work(fn)
            flops, nbytes = max(flops, f), max(nbytes, b)
        return "local-task" if task_wins(flops, nbytes) else "local-sync"

    def program_flags(self, functions) -> tuple:
        """``iree-compile`` flags chosen for these programs on top of ``flags``: on the CPU
        (unless the target fixes ``data_tiling``), data tiling for programs whose work is
        in plain GEMMs with many rows (a batch folded into M against shared weights),
        where it pays for packing the weights on every call; it slows batched matmuls
        and small GEMMs (measured in docs/performance.md)."""
        if self.name != "cpu" or dict(self.options).get("data_tiling") is not None:
            return ()
        from .ir import Function
        if isinstance(functions, Function):
            functions = [functions]
        return DATA_TILING_FLAGS if all(_wants_data_tiling(fn) for fn in functions) else ()

    def driver_switch(self, fn):
        """For a CPU program with a symbolic batch size ``B`` and no fixed driver:
        ``(argument index, axis, lo, hi)`` such that calls whose batch (that argument's
        axis) is in ``[lo, hi)`` should run on ``local-task`` and the others on
        ``local-sync`` (:func:`task_wins` evaluated at each call's batch size instead of
        a guess; ``hi`` is None for no upper end). None when that does not apply, or when
        local-sync wins at every size."""
        if self.name != "cpu" or dict(self.options).get("driver"):
            return None
        from .shapes import Sym
        where = next(((i, a) for i, v in enumerate(fn.inputs) for a, d in enumerate(v.shape)
                      if isinstance(d, Sym) and d.coef == 1 and len(d.names) == 1), None)
        if where is None:
            return None
        limit = 1 << 40

        def first(pred):
            """The smallest batch size >= 1 where the monotone `pred` holds (None: never)."""
            if pred(1):
                return 1
            hi = 2
            while not pred(hi):
                if hi >= limit:
                    return None
                hi *= 2
            lo = hi // 2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if pred(mid) else (mid, hi)
            return hi
        lo = first(lambda b: estimate_work(fn, b)[0] >= TASK_MIN_FLOPS)
        hi = first(lambda b: estimate_work(fn, b)[1] >= TASK_MAX_BYTES)
        if lo is None or (hi is not None and hi <= lo):
            return None
        return where[0], where[1], lo, hi

    def __str__(self):
        return self.label


# local-task pays 10-100 us per call in thread wake-ups and only has the other core(s) to win
# it back with. Measured twice a week apart with `python -m benchmarks.run --study drivers`
# on a 2-core VM (docs/performance.md has both runs): with the second core free it won from
# ~1e8 estimated flops; with other jobs on the host it lost below ~1e9 flops (by up to 2x:
# element-wise chains and layer norms at every size, bmm at B = 256) and past ~4e8 bytes
# (attention over 1024 and 4096 heads, far out of cache: 5-60% slower), and tied or won
# from 1e9 flops. The rule below is the one that loses little on both days.
TASK_MIN_FLOPS = 1_000_000_000
TASK_MAX_BYTES = 400_000_000
DYNAMIC_SIZE_GUESS = 64  # the value assumed for a symbolic batch size when estimating


def task_wins(flops, nbytes) -> bool:
    """Whether ``local-task`` beats ``local-sync`` for a call of this estimated work."""
    return flops >= TASK_MIN_FLOPS and nbytes < TASK_MAX_BYTES


DATA_TILING_FLAGS = ("--iree-opt-data-tiling=true",)
DATA_TILING_MIN_ROWS = 128  # M of a GEMM; a symbolic batch counts as DYNAMIC_SIZE_GUESS


def _wants_data_tiling(fn) -> bool:
    """Whether `fn` has a GEMM without batch dims and with at least DATA_TILING_MIN_ROWS
    rows (or a dynamic number), and no batched contraction (whose operands data tiling
    would pack per call too)."""
    from .ir import walk_eqns
    from .shapes import Sym
    gemm = False
    for e in walk_eqns(fn):
        if e.op != "dot_general":
            continue
        (lc, _), (lb, _) = e.attrs["contract"], e.attrs["batch"]
        if lb:
            return False
        free = tuple(d for i, d in enumerate(e.inputs[0].shape) if i not in lc)
        # a dynamic batch folded into M counts as many rows: IREE's GEMMs with a dynamic M
        # run 1.8x faster data-tiled at 256 rows, and lose ~25 us at one (docs/performance.md)
        gemm = gemm or _size(free) >= DATA_TILING_MIN_ROWS or any(isinstance(d, Sym) for d in free)
    return gemm


def _size(shape, sym_value=None) -> int:
    from .shapes import Sym
    n = 1
    for d in shape:
        if isinstance(d, Sym):
            d = d.coef * (DYNAMIC_SIZE_GUESS if sym_value is None else sym_value) ** len(d.names)
        n *= int(d)
    return n


def estimate_work(fn, sym_value=None):
    """(flops, bytes) of one call of `fn`: 2*M*N*K per contraction, one flop per element of
    every other equation's inputs and outputs, and the bytes of all values touched (a
    symbolic size counts as `sym_value`, by default ``DYNAMIC_SIZE_GUESS``)."""
    flops, nbytes = 0, 0
    for v in fn.inputs:
        nbytes += _size(v.shape, sym_value) * np.dtype(v.dtype).itemsize
    from .ir import walk_eqns
    for e in walk_eqns(fn):   # a loop body counts once: trip counts are not known here
        out = sum(_size(v.shape, sym_value) for v in e.outputs)
        if e.op == "dot_general":
            (lc, _), _ = e.attrs["contract"], e.attrs["batch"]
            k = 1
            for a in lc:
                k *= _size((e.inputs[0].shape[a],), sym_value)
            flops += 2 * out * k
        else:
            flops += out + sum(_size(v.shape, sym_value) for v in e.inputs)
        nbytes += sum(_size(v.shape, sym_value) * np.dtype(v.dtype).itemsize for v in e.outputs)
    return flops, nbytes


# --- the families --------------------------------------------------------------------------------

_MAIN_OPTION = {"cpu": "cpu", "vulkan": "profile", "cuda": "arch"}
_DEFAULTS = {"cpu": {"cpu": "host"}, "vulkan": {"profile": "desktop"}, "cuda": {"arch": "sm_80"}}
_CPU_DRIVERS = ("local-sync", "local-task")


# IREE 3.13's default (global opt level O0) leaves these off; O2 turns them on. Measured
# (docs/performance.md, `--study flags`): vectorized reductions (reassociating float sums,
# as NumPy's pairwise summation does too) and fusing a reduction with its consumers run
# layer norm 2x and attention 1.2-1.3x faster and change nothing measurable elsewhere.
# IREE 3.13 with aggressive fusion leaves a result buffer of some modules holding several
# scf.while loops unallocated ("ref is null" when the call returns; the strict xfail
# test_aggressive_fusion_with_several_while_loops in tests/test_regressions.py), so modules with
# control flow are compiled without it (Target.control_flow_flags).
AGGRESSIVE_FUSION = "--iree-dispatch-creation-enable-aggressive-fusion"
CPU_OPT_FLAGS = (AGGRESSIVE_FUSION + "=true",
                 "--iree-llvmcpu-reassociate-fp-reductions=true")


def _cpu(cpu="host", features=None, triple=None, driver=None, data_tiling=None):
    if driver is not None and driver not in _CPU_DRIVERS:
        raise TargetError(f"cpu: driver must be one of {', '.join(_CPU_DRIVERS)}, got {driver!r}")
    if not isinstance(cpu, str) or not cpu:
        raise TargetError(f"cpu: cpu must be an LLVM CPU name ('host', 'generic', 'x86-64-v3', ...), got {cpu!r}")
    flags = _COMMON + ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                       f"--iree-llvmcpu-target-cpu={cpu}") + CPU_OPT_FLAGS
    if features:
        flags += (f"--iree-llvmcpu-target-cpu-features={features}",)
    if triple:
        flags += (f"--iree-llvmcpu-target-triple={triple}",)
    if data_tiling is not None:
        flags += (f"--iree-opt-data-tiling={'true' if data_tiling else 'false'}",)
    opts = {"cpu": cpu, "features": features, "triple": triple, "driver": driver, "data_tiling": data_tiling}
    return Target(
        "cpu", flags, driver or "local-sync",
        f64_math=True,
        # sin, float64 fmod, ... are libm calls, which IREE's self-contained ELF lacks:
        # such modules are linked by the system linker and resolve libm when loaded.
        # IREE's compile-time evaluation of constant subexpressions JIT-compiles them
        # self-contained whatever the flags say ("undefined symbol: tanh" for tanh of a
        # constant): it is switched off for these modules.
        libm_flags=("--iree-llvmcpu-link-embedded=false", "--iree-opt-const-eval=false"),
        options=_opts(opts),
        description=f"llvm-cpu for {'this machine' if cpu == 'host' else cpu}")


# IREE's default Vulkan target is the Android baseline 2022 profile: SPIR-V 1.3 with
# fp32/int32 compute and 32-bit storage only. Lavapipe (and every desktop GPU driver)
# also has these; IREE trims them per kernel to what it uses, and the runtime checks the
# device has them when the module loads.
VULKAN_DESKTOP_FEATURES = ",".join([
    "spirv:v1.3", "cap:Shader", "cap:Float64", "cap:Float16", "cap:Int64", "cap:Int16", "cap:Int8",
    "cap:StorageBuffer16BitAccess", "cap:StorageBuffer8BitAccess",
    "ext:SPV_KHR_16bit_storage", "ext:SPV_KHR_8bit_storage"])
_VULKAN_FULL_ARCHS = ("ampere", "turing", "volta", "pascal", "sm_", "rtx", "a100", "rdna", "cdna", "gfx", "rx")


def _vulkan(profile="desktop", arch=None, features=None):
    if profile not in ("desktop", "baseline"):
        raise TargetError(f"vulkan: profile must be 'desktop' or 'baseline', got {profile!r}")
    flags = _COMMON + ("--iree-hal-target-device=vulkan",)
    no_f64 = frozenset(ALL_DTYPES - {np.dtype(dt.FLOAT64), np.dtype(dt.COMPLEX128)})
    if arch is not None:
        # one of IREE's named Vulkan targets (see `--iree-vulkan-target`)
        flags += (f"--iree-vulkan-target={arch}",)
        full = arch.lower().startswith(_VULKAN_FULL_ARCHS)
        dtypes = ALL_DTYPES if full else no_f64
        if arch.lower().startswith("adreno"):  # no 8-bit storage: packed into 32-bit words (racy)
            dtypes = frozenset(dtypes - {np.dtype(dt.INT8), np.dtype(dt.UINT8), np.dtype(dt.BOOL)})
        emulated = () if full else ((dt.INT64, "i64 emulated with i32 pairs (IREE)"),
                                    (dt.UINT64, "i64 emulated with i32 pairs (IREE)"))
    elif profile == "desktop":
        flags += (f"--iree-vulkan-target-features={features or VULKAN_DESKTOP_FEATURES}",)
        dtypes, emulated = ALL_DTYPES, ()
    else:
        if features:
            flags += (f"--iree-vulkan-target-features={features}",)
        # Only 32-bit storage: IREE packs 8/16-bit values (and bool) into 32-bit words, and
        # kernels writing neighbouring elements of one word race (measured on lavapipe:
        # wrong int8/int16/bool results); float16 storage gives wrong numbers outright and
        # float64 does not compile. 64-bit integers are emulated with i32 pairs and hold.
        dtypes = frozenset(np.dtype(d) for d in (dt.FLOAT32, dt.INT32, dt.UINT32, dt.INT64, dt.UINT64))
        emulated = ((dt.INT64, "emulated with pairs of i32 (IREE's SPIR-V i64 emulation)"),
                    (dt.UINT64, "emulated with pairs of i32 (IREE's SPIR-V i64 emulation)"))
    return Target(
        "vulkan", flags, "vulkan", dtypes=dtypes, emulated=tuple((np.dtype(d), how) for d, how in emulated),
        unsupported_ops=SPIRV_NO_F64, unsupported_complex_ops=SPIRV_NO_C128, output_storage=True,
        options=_opts({"profile": profile if arch is None else None, "arch": arch, "features": features}),
        description=f"SPIR-V ({arch or profile})")


# --iree-cuda-target knows sm_60 ... sm_89 in IREE 3.13; newer archs fail with "missing GPU
# target in #hal.executable.target" (iree-org/iree#22147), so they get an explicit target
# attribute on the module. The minimum PTX version of each arch is LLVM NVPTX's.
_CUDA_FLAG_ARCHS = ("sm_60", "sm_61", "sm_62", "sm_70", "sm_72", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89",
                    "pascal", "volta", "turing", "ampere", "a100")
_CUDA_EXPLICIT_PTX = {"sm_90": "+ptx80", "sm_90a": "+ptx80", "sm_100": "+ptx86", "sm_100a": "+ptx86",
                      "sm_120": "+ptx87", "sm_120a": "+ptx87"}
# What IREE 3.13 knows about Ampere (its target for sm_80), with Hopper's 227 KiB of shared
# memory per block; the wgp fields drive IREE's GPU codegen heuristics.
_CUDA_WGP = ("compute = fp64|fp32|fp16|int64|int32|int16|int8, storage = b64|b32|b16|b8, "
             "subgroup = shuffle|arithmetic, dot = dp4xi8toi32, mma = [<NV_MMA_SYNC_F32_16x8x16_F16>, "
             "<NV_MMA_SYNC_F16_16x8x16_F16>, <NV_MMA_SYNC_F32_16x8x16_BF16>, <NV_WMMA_F32_16x16x16_F16>, "
             "<NV_WMMA_F16_16x16x16_F16>], subgroup_size_choices = [32], max_workgroup_sizes = [1024, 1024, 1024], "
             "max_thread_count_per_workgroup = 1024, max_workgroup_memory_bytes = {smem}, "
             "max_workgroup_counts = [2147483647, 65535, 65535]")


def cuda_device_target(arch: str, features: str | None = None) -> str:
    """The ``#hal.device.target`` attribute text that selects CUDA `arch` explicitly."""
    ptx = features or _CUDA_EXPLICIT_PTX.get(arch, "+ptx80")
    smem = 232448 if arch.startswith(("sm_90", "sm_100")) else 166912
    wgp = _CUDA_WGP.replace("{smem}", str(smem))
    return (f'#hal.device.target<"cuda", [#hal.executable.target<"cuda", "cuda-nvptx-fb", '
            f'{{iree_codegen.target_info = #iree_gpu.target<arch = "{arch}", features = "{ptx}", '
            f'wgp = <{wgp}>>}}>]> : !hal.device')


def _cuda(arch="sm_80", features=None):
    if not isinstance(arch, str):
        raise TargetError(f"cuda: arch must be a string such as 'sm_80' or 'sm_90a', got {arch!r}")
    attrs = ()
    if arch in _CUDA_EXPLICIT_PTX:
        flags = _COMMON  # the module attribute names the device
        attrs = (("hal.device.targets", f"[{cuda_device_target(arch, features)}]"),)
    elif arch in _CUDA_FLAG_ARCHS:
        flags = _COMMON + ("--iree-hal-target-device=cuda", f"--iree-cuda-target={arch}")
        if features:
            flags += (f"--iree-cuda-target-features={features}",)
    else:
        known = ", ".join(list(_CUDA_FLAG_ARCHS) + list(_CUDA_EXPLICIT_PTX))
        raise TargetError(f"cuda: unknown arch {arch!r} (known: {known})")
    return Target("cuda", flags, "cuda", module_attrs=attrs,
                  options=_opts({"arch": arch, "features": features}),
                  description=f"NVPTX for {arch}" + (" (explicit #hal.executable.target)" if attrs else ""))


def _opts(d: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in d.items() if v is not None))


_FAMILIES = {"cpu": _cpu, "vulkan": _vulkan, "cuda": _cuda}


def target(name="cpu", **options) -> Target:
    """A :class:`Target`: ``target("cpu", cpu="generic")``, ``target("cuda", arch="sm_90a")``,
    ``target("vulkan", profile="baseline")``. See the module docstring for the options."""
    if isinstance(name, Target):
        if options:
            return target(name.name, **{**dict(name.options), **options})
        return name
    if not isinstance(name, str):
        raise TargetError(f"a target is a name or a vmapc Target, got {type(name).__name__}")
    base, sep, main = name.partition(":")
    make = _FAMILIES.get(base)
    if make is None:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(_FAMILIES)})")
    if sep:
        options = {_MAIN_OPTION[base]: main, **options}
    try:
        return make(**options)
    except TypeError as e:
        raise TargetError(f"{base}: {e}") from None


TARGETS = {name: target(name) for name in _FAMILIES}


def get_target(t) -> Target:
    """A Target for a Target, a family name or ``"name:option"``."""
    if isinstance(t, Target):
        return t
    if isinstance(t, str) and t in TARGETS:
        return TARGETS[t]
    if isinstance(t, str):
        return target(t)
    raise TargetError(f"unknown target {t!r} (known: {', '.join(TARGETS)})")


# --- what is available here ----------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def compile_backends() -> tuple:
    """The HAL target backends this ``iree-compile`` was built with (empty without
    iree-base-compiler)."""
    import subprocess
    try:
        from iree.compiler.tools.binaries import find_tool
        out = subprocess.run([find_tool("iree-compile"), "--iree-hal-list-target-backends"],
                             capture_output=True, text=True, timeout=60).stdout
    except Exception:  # not installed, or the tool cannot run
        return ()
    return tuple(ln.strip() for ln in out.splitlines()[1:] if ln.strip())


@functools.lru_cache(maxsize=None)
def runtime_devices(driver: str):
    """(device names, reason) for an IREE runtime driver; reason is None when it can run."""
    try:
        from iree import runtime as rt
    except ImportError as e:
        return [], f"iree-base-runtime is not installed ({e})"
    if driver not in rt.query_available_drivers():
        return [], f"this iree-base-runtime has no {driver!r} driver"
    try:
        infos = rt.get_driver(driver).query_available_devices()
    except Exception as e:  # the driver's library (libcuda, libvulkan) is missing or broken
        return [], f"the {driver} driver cannot start: {_first_line(e)}"
    names = [str(i.get("name") or i.get("path") or i.get("device_id")) for i in infos]
    if not names:
        return [], f"no {driver} device found"
    try:
        from .runtime.module import device
        device(driver)
    except Exception as e:
        return names, f"the {driver} device cannot be opened: {_first_line(e)}"
    return names, None


def _first_line(e) -> str:
    import re
    s = str(e).strip().splitlines()
    if not s:
        return type(e).__name__
    # "Error creating driver: c/runtime/src/...c:66: UNAVAILABLE; CUDA driver library ..." -> the message
    m = re.search(r"\b[A-Z_]{4,}; (.*)$", s[0])
    return (m.group(1) if m else s[0])[:240]


_NO_DEVICE = {"cuda": "no CUDA device", "vulkan": "no Vulkan device"}


def targets() -> list:
    """One dict per target family: ``name``, ``can_compile``, ``can_run``, ``devices``
    (names of the devices found) and ``reason`` (why it cannot compile or run here, else
    None)."""
    backends = compile_backends()
    rows = []
    for name, t in TARGETS.items():
        can_compile = t.backend in backends
        names, why = runtime_devices(t.driver)
        if t.name == "cpu":
            names = [f"{n} ({d})" for d in _CPU_DRIVERS for n in runtime_devices(d)[0]]
        reason = None
        if not can_compile:
            reason = ("iree-base-compiler is not installed" if not backends
                      else f"this iree-compile has no {t.backend} backend")
        if why is not None:
            why = f"{_NO_DEVICE[name]}: {why}" if name in _NO_DEVICE and not why.startswith("no ") else why
            reason = why if reason is None else f"{reason}; {why}"
        rows.append({"name": name, "can_compile": can_compile, "can_run": why is None,
                     "devices": names, "reason": reason, "flags": list(t.flags), "driver": t.driver,
                     "dtypes": [dt.short_name(d) for d in dt.ALL if d in t.dtypes]})
    return rows


class _CallableModule(types.ModuleType):
    """``vmapc.targets()`` works whether the name resolves to this module or the function."""

    def __call__(self, *args, **kwargs):
        return targets(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
