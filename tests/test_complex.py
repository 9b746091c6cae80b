"""Complex numbers (complex64, complex128) against NumPy.

Every supported NumPy function on complex operands is checked per example on the
reference evaluator for both dtypes, then all of them run in ONE compiled CPU module
together with batched cases of the complex op samples (``vmapc.testing.op_samples``;
tests/test_rules.py sweeps every in_dims combination of those on the reference).
Vulkan (lavapipe) runs complex64 and complex128 arithmetic and refuses complex128
math with a TargetError; CUDA is compile-checked. Autodiff and ordering refuse complex
values with documented errors.
"""

import warnings

import numpy as np
import pytest

import vmapc
from vmapc import dtypes as dt
from vmapc import lowering, testing
from vmapc.errors import AutodiffError, DTypeError, TargetError

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

C64, C128 = np.complex64, np.complex128


def _z(rng, shape, d):
    return (rng.normal(0, 1.5, shape) + 1j * rng.normal(0, 1.5, shape)).astype(d)


def _r(rng, shape, d):
    return rng.normal(0, 1.5, shape).astype(dt.component(np.dtype(d)))


def _setitem(z, w):
    z = z.copy()
    z[0, 1] = 2 - 1j
    z[1] += w[0] * 1j
    z[:, 2] = w[:, 0].real
    return z


# name: (function of (z, w, r): two complex (2, 3) arrays and a real one of the parts' dtype)
CASES = {
    "add": lambda z, w, r: z + w,
    "sub": lambda z, w, r: z - w,
    "mul": lambda z, w, r: z * w,
    "div": lambda z, w, r: z / w,
    "neg": lambda z, w, r: -z,
    "square": lambda z, w, r: np.square(z),
    "reciprocal": lambda z, w, r: np.reciprocal(z),
    "power_int": lambda z, w, r: z ** 3,
    "power_complex": lambda z, w, r: np.power(z, w * 0.5),
    "power_zero": lambda z, w, r: np.power(z * 0, w.real * 0 + 2) + np.power(z, w * 0),
    "equal": lambda z, w, r: (z == w, z == z, z != w, np.not_equal(z, z.conj())),
    "where": lambda z, w, r: np.where(r > 0, z, w),
    "real_imag": lambda z, w, r: (z.real, z.imag, np.real(w), np.imag(w), np.real(r), np.imag(r)),
    "conj": lambda z, w, r: (np.conj(z), z.conj(), np.conjugate(w)),
    "abs": lambda z, w, r: (np.abs(z), abs(w)),
    "abs_extremes": lambda z, w, r: np.abs(z * np.asarray(1e30, z.real.dtype)),
    "angle": lambda z, w, r: (np.angle(z), np.angle(w, deg=True), np.angle(r)),
    "exp_log": lambda z, w, r: (np.exp(z), np.log(w)),
    "sqrt": lambda z, w, r: np.sqrt(z),
    "sin_cos": lambda z, w, r: (np.sin(z), np.cos(w)),
    "log10_exp2": lambda z, w, r: (np.log10(z), np.exp2(w)),
    "round": lambda z, w, r: (np.round(z * 3), np.rint(w * 3), np.round(z, 1), np.round(w * 100, -1)),
    "isnan": lambda z, w, r: (np.isnan(z), np.isinf(z), np.isfinite(z)),
    "sum": lambda z, w, r: (z.sum(), np.sum(w, axis=0)),
    "prod": lambda z, w, r: np.prod(z, axis=1),
    "mean": lambda z, w, r: (np.mean(z), z.mean(axis=1)),
    "var_std": lambda z, w, r: (np.var(z), np.std(w, axis=1)),
    "cumsum": lambda z, w, r: (np.cumsum(z, axis=1), np.cumprod(w, axis=0)),
    "matmul": lambda z, w, r: z @ w.T,
    "dot_vdot": lambda z, w, r: (np.dot(z[0], w[1]), np.vdot(z, w)),
    "einsum": lambda z, w, r: np.einsum("ij,kj->ik", z, w),
    "norm": lambda z, w, r: (np.linalg.norm(z), np.linalg.norm(z, axis=1), np.linalg.norm(z, 1),
                             np.linalg.norm(w[0], 3), np.linalg.norm(w, np.inf)),
    "mixed_real": lambda z, w, r: (z * r, r - z, r @ z.T),
    "imag_unit": lambda z, w, r: (1j * r, r + 2.5j, z * (1 - 1j)),
    "constant": lambda z, w, r: z + np.array([1 + 2j, -3j, 0.5], z.dtype),
    "astype": lambda z, w, r: (z.astype(r.dtype), r.astype(z.dtype), z.astype(np.int32),
                               z.astype(bool), (r > 0).astype(z.dtype)),
    "widen": lambda z, w, r: z.astype(C128) * 2 if z.dtype == C64 else z.astype(C64),
    "cov_linspace": lambda z, w, r: (np.cov(z), np.cov(z, w), np.linspace(z[0, 1], w[1, 2], 4)),
    "nan_to_num": lambda z, w, r: np.nan_to_num(np.where(r > 0, z, np.nan + 1j * np.inf), posinf=5.0),
    "setitem": lambda z, w, r: _setitem(z, w),
    "shape_ops": lambda z, w, r: (z.T[::-1], np.concatenate([z, w]), z[:, 1], np.stack([z, w], -1)),
}


def _args(d, seed=0):
    rng = np.random.default_rng(seed)
    z, w = _z(rng, (2, 3), d), _z(rng, (2, 3), d)
    z[0, 0] = 0.0 if d == C64 else 0.5j   # a zero (power_zero) and a pure imaginary
    return [z, w, _r(rng, (2, 3), d)]


def _flat(x):
    return list(x) if isinstance(x, tuple) else [x]


def _expect(f, args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return [np.asarray(v) for v in _flat(f(*args))]


def _check(name, got, want, d):
    tol = 5e-6 if d == C64 else 1e-13
    assert len(got) == len(want), name
    for g, e in zip(got, want):
        g = np.asarray(g)
        assert g.shape == e.shape and g.dtype == e.dtype, f"{name}: {g.dtype}{g.shape}, NumPy {e.dtype}{e.shape}"
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=tol, atol=tol * 10, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, e, err_msg=name)


def _cases(dtypes=(C64, C128), names=CASES):
    """testing.Cases of the NumPy functions: traced, with NumPy's results as expected."""
    out = []
    for d in dtypes:
        args = _args(d)
        for name in names:
            f = CASES[name]
            fn = vmapc.trace(f, *args)
            fn.name = f"{name}_{np.dtype(d).name}"
            out.append(testing.Case(fn.name, fn, args, _expect(f, args)))
    return out


@pytest.mark.parametrize("d", [C64, C128], ids=["c64", "c128"])
def test_reference_matches_numpy(d):
    for case in _cases((d,)):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            got = vmapc.eval(case.fn, *case.args)
        _check(case.name, got, case.expected, d)


def _complex_samples():
    """The op samples that take or make complex values, one shape each."""
    keep = []
    for s in testing.op_samples("all"):
        ts = [v.type for v in list(s.fn.inputs) + list(s.fn.outputs)]
        if any(dt.is_complex(t.dtype) for t in ts) and s.fn.eqns[0].op not in ("cumulative",):
            if s.name.endswith("_0d") or "_()_" in s.name or "((), ())" in s.name:
                continue
            keep.append(s)
    return keep


def test_samples_cover_complex_ops():
    ops = {s.fn.eqns[0].op for s in _complex_samples()}
    assert {"real", "imag", "conj", "complex", "abs", "exp", "log", "sqrt", "sin", "cos", "add", "subtract",
            "multiply", "divide", "power", "equal", "not_equal", "negative", "reciprocal", "square",
            "logical_not", "convert", "reduce_sum", "reduce_prod", "dot_general"} <= ops, ops


def _batched_cases(rng):
    """One vmap (in_dims all 0, batch 3) of the first complex sample of each op."""
    out, seen = [], set()
    for s in _complex_samples():
        if s.fn.eqns[0].op not in seen:
            seen.add(s.fn.eqns[0].op)
            out += testing.vmap_cases(s, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)
    return out


@pytest.mark.parametrize("d", [C64, C128], ids=["c64", "c128"])
def test_complex_math_alone_links_libm(d):
    """A module whose only libm user is complex math (log's atan2, complex128 exp's sin)
    is linked against libm (the merged module below has other users)."""
    z = np.array([1.25 + 2.5j, -0.5 + 1.5j, 0j], d)
    with np.errstate(all="ignore"):
        got = vmapc.compile(lambda z: (np.exp(z), np.log(z)))(z)
        want = (np.exp(z), np.log(z))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5)


C128_COMPILED = ("div", "power_complex", "abs", "exp_log", "sin_cos", "sqrt", "matmul", "sum", "astype",
                 "constant", "imag_unit", "round")


def test_one_compiled_cpu_module_matches_numpy():
    """Every NumPy case in complex64, a subset in complex128 (the reference test has all),
    and the batched op samples, in one CPU module."""
    cases = _cases((C64,)) + _cases((C128,), C128_COMPILED)
    batched = _batched_cases(np.random.default_rng(1))
    assert len(batched) > 25
    res = testing.run_compiled(cases + batched, "cpu", group=len(cases) + len(batched), modules=1)
    for case in cases:
        _check(case.name, res[case.name], case.expected, C64 if "complex64" in case.name else C128)
    for case in batched:
        testing.assert_outputs_match(case, res[case.name])


def test_batched_in_dims_sweep_on_the_reference():
    """vmap of a complex program over every in_dims combination matches the per-example loop."""
    def f(z, w, r):
        return np.exp(1j * r) * z.conj() + (z @ w.T).sum(1, keepdims=True), np.abs(z - w).sum()
    d = C64
    rng = np.random.default_rng(2)
    zs, ws, rs = _z(rng, (3, 2, 3), d), _z(rng, (3, 2, 3), d), _r(rng, (3, 2, 3), d)
    fn = vmapc.trace(f, zs[0], ws[0], rs[0])
    for in_dims in testing.in_dim_combos(3):
        batched = [np.moveaxis(x, 0, i) if i is not None else x[0] for x, i in zip((zs, ws, rs), in_dims)]
        got = vmapc.eval(vmapc.vmap(fn, in_dims=in_dims, axis_size=3), *batched)
        per = [f(*[x[k] if i is not None else x[0] for x, i in zip((zs, ws, rs), in_dims)]) for k in range(3)]
        for j in range(2):
            np.testing.assert_allclose(got[j], np.stack([p[j] for p in per]), rtol=1e-5, atol=1e-5)


# --- other targets -------------------------------------------------------------------------------------

VULKAN_CASES = ("mul", "div", "exp_log", "sqrt", "sin_cos", "abs", "angle", "matmul", "sum", "power_complex",
                "constant", "where", "astype")
VULKAN_C128 = ("div", "abs", "matmul", "constant", "where")


def test_vulkan_runs_complex64_and_complex128_arithmetic():
    t = vmapc.target("vulkan")
    if not t.supports(C64):
        pytest.fail("the desktop Vulkan profile should accept complex64")
    cases = _cases((C64,), VULKAN_CASES) + _cases((C128,), VULKAN_C128)
    try:
        res = testing.run_compiled(cases, "vulkan", group=len(cases), modules=1)
    except TargetError as err:
        if "cannot open IREE driver" in str(err):
            pytest.skip(f"no Vulkan device here: {err}")
        raise
    for case in cases:
        _check(case.name, res[case.name], case.expected, C64 if "complex64" in case.name else C128)


@pytest.mark.parametrize("f", [np.exp, np.log, np.sqrt, np.sin, lambda z: z ** z], ids=["exp", "log", "sqrt", "sin", "power"])
def test_vulkan_refuses_complex128_math(f):
    with pytest.raises(TargetError, match=r"complex128 \w+ is not available on target vulkan"):
        lowering.lower([vmapc.trace(f, vmapc.c128[3])], target="vulkan")


def test_vulkan_baseline_refuses_complex_dtypes():
    for spec in (vmapc.c64[3], vmapc.c128[3]):
        with pytest.raises(TargetError, match=r"is not supported by target vulkan:baseline"):
            lowering.lower([vmapc.trace(lambda z: z + z, spec)], target="vulkan:baseline")


def test_cuda_compiles_complex():
    """No GPU here: the module compiles for CUDA (sm_80) and its reflection lists complex types."""
    from vmapc import driver
    fns = [c.fn for c in _cases(names=("div", "exp_log", "abs", "matmul"))]
    vmfb = driver.compile_mlir(lowering.lower(fns, target="cuda"), "cuda")
    assert len(vmfb) > 1000


# --- refusals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("f", [
    lambda z: np.maximum(z, z), lambda z: z < z, lambda z: np.sort(z), lambda z: np.argmax(z), lambda z: z.max(),
    lambda z: np.floor(z), lambda z: np.sign(z), lambda z: np.maximum.accumulate(z),
    lambda z: np.tanh(z), lambda z: np.clip(z, 0, 1), lambda z: z // z, lambda z: z % z, lambda z: np.arctan2(z, z),
], ids=["maximum", "less", "sort", "argmax", "max", "floor", "sign", "cummax", "tanh", "clip", "floordiv",
        "mod", "arctan2"])
def test_unsupported_ops_refuse_complex(f):
    with pytest.raises(DTypeError):
        vmapc.trace(f, vmapc.c128[4])


def test_bitcast_refuses_complex():
    for src, dst in ((C128, np.int64), (np.int64, C64), (C64, np.float64)):
        with pytest.raises(DTypeError, match="not complex"):
            testing.single_op("bitcast", [vmapc.ir.TensorType((2,), np.dtype(src))], {"dtype": np.dtype(dst)})


@pytest.mark.parametrize("transform", ["grad", "jvp", "vjp", "jacfwd"])
def test_autodiff_refuses_complex_values(transform):
    x = np.linspace(0, 1, 4).astype(np.float32)

    def f(x):
        return np.abs(np.exp(1j * x)).sum()
    with pytest.raises(AutodiffError, match="does not differentiate complex values"):
        if transform == "grad":
            vmapc.grad(f)(x)
        elif transform == "jvp":
            vmapc.trace(lambda x: vmapc.jvp(f, (x,), (x,))[1], x)
        elif transform == "vjp":
            vmapc.vjp(f, x)
        else:
            vmapc.jacfwd(lambda x: np.exp(1j * x).real)(x)


# --- text form, artifacts, CLI ------------------------------------------------------------------------

def test_ir_text_roundtrips_complex_constants():
    f = vmapc.trace(lambda z: z * np.array([1 + 2j, np.nan - np.inf * 1j], C64) + 3j, vmapc.c64[2])
    text = str(f)
    assert "(1.0, 2.0), (nan, -inf)" in text and "(0.0, 3.0)" in text
    assert vmapc.parse(text) == f


def test_cli_traces_compiles_and_runs_a_complex_artifact(tmp_path, monkeypatch):
    from vmapc.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cf.py").write_text("import numpy as np\n\ndef f(z, r):\n    return np.exp(1j * r) * z.conj() + z @ z\n")
    rng = np.random.default_rng(3)
    zs, r = _z(rng, (4, 3), C64), _r(rng, (3,), C64)
    np.save("zs.npy", zs)
    np.save("r.npy", r)
    assert main(["trace", "cf.py:f", "--arg", "z=c64[3]", "--arg", "r=f32[3]", "-o", "f.vir"]) == 0
    assert main(["compile", "f.vir", "--in-dims", "0,None", "--batch", "4", "-o", "art"]) == 0
    assert main(["run", "art", "--input", "z=zs.npy", "--input", "r=r.npy", "--output-dir", "out"]) == 0
    got = np.load("out/out.npy")
    want = np.stack([np.exp(1j * r) * z.conj() + z @ z for z in zs])
    assert got.dtype == C64
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
