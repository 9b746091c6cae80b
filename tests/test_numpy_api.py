"""vmapc.numpy and the tracer's methods and operators, checked against NumPy itself.

Every test function here is plain NumPy: only ``np.`` calls, operators and methods.
Each is traced with ``vmapc.trace``, run by the reference evaluator, and compared
with the same function run by NumPy directly: same dtype, same shape, equal values
for bools and integers, close values for floats (NaN where NumPy has NaN, the same
infinities, the same sign of zero).

Most checks are *cases*: ``(function, example arguments)`` pairs registered in
``CASES`` when this module is imported. ``tests/test_ir_text.py`` reuses the corpus
to round-trip every traced function through the IR text form.

Where NumPy raises, vmapc must raise a :class:`vmapc.errors.VmapcError` at trace time
that derives from the same built-in class (``TypeError``, ``ValueError``...).

vmapc differs from NumPy on purpose in two places (documented in ``docs/numpy.md``):
out-of-range *traced* indices are clamped instead of raising, and an integer raised to
a negative traced power truncates (NumPy raises). Clamping is tested separately, with
NumPy computing the expected values from the clamped indices.
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmapc
import vmapc.numpy as vnp
from vmapc import pytree
from vmapc.errors import DTypeError, UnsupportedError, VmapcError

# --- helpers ---------------------------------------------------------------------------------

BOOL = ["bool"]
SIGNED = ["int8", "int16", "int32", "int64"]
UNSIGNED = ["uint8", "uint16", "uint32", "uint64"]
INTS = SIGNED + UNSIGNED
FLOATS = ["float16", "float32", "float64"]
ALL = BOOL + INTS + FLOATS

# float16: NumPy rounds to float16 after each step of some reductions (depending on memory
# layout) where vmapc accumulates in float32, so allow a few ulps.
RTOL = {np.dtype("float16"): 4e-3, np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-10}

_rng = np.random.default_rng(20240611)


def arr(shape, dtype, lo=None, hi=None):
    """A deterministic random array: bools, small integers (negative ones for signed
    types), or normally distributed floats."""
    d = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if d == np.bool_:
        return _rng.random(shape) < 0.5
    if d.kind in "iu":
        lo = (0 if d.kind == "u" else -9) if lo is None else lo
        hi = 10 if hi is None else hi
        return np.asarray(_rng.integers(lo, hi, shape), dtype=d)
    x = _rng.standard_normal(shape) * 3
    if lo is not None:
        x = lo + (hi - lo) * _rng.random(shape)
    return np.asarray(x, dtype=d)


@pytest.fixture(autouse=True)
def _deterministic_data(request):
    """Arrays made inside a test do not depend on which tests ran before (xdist)."""
    global _rng
    _rng = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _leaves(tree):
    """The traced leaves of arguments: Python ints and bools are static (docs/vmap.md)."""
    return pytree.flatten(tree, static=vmapc.arguments.compile_static)[0]


def assert_same(got, want, rtol=None, atol=None, what="result", signed_zeros=True):
    """got (from vmapc) equals want (from NumPy) in dtype, shape and value."""
    want = np.asarray(want)
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, NumPy gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NumPy gives {want.shape}"
    if want.dtype.kind == "c":      # each part as a float array
        for part in (np.real, np.imag):
            assert_same(part(got), part(want), rtol, atol, what, signed_zeros=False)
    elif want.dtype.kind == "f":
        r = RTOL[want.dtype] if rtol is None else rtol
        a = (r if atol is None else atol)
        g, w = got.astype(np.float64), want.astype(np.float64)
        np.testing.assert_allclose(g, w, rtol=r, atol=a, equal_nan=True, err_msg=what)
        if signed_zeros:
            zero = (w == 0) & (g == 0)
            np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(w[zero]),
                                          err_msg=f"{what}: sign of zero")
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def run_vmapc(f, *args):
    """Trace f at args and run the trace with the reference evaluator on the same args."""
    fn = vmapc.trace(f, *args)
    flat = [np.asarray(x) for x in _leaves(tuple(args))]
    outs = vmapc.eval(fn, *flat)
    return fn, pytree.unflatten(fn.out_tree, outs[:len(outs) - len(fn.mutated)])   # not the written args


def run_numpy(f, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args)


def check(f, *args, rtol=None, atol=None, signed_zeros=True):
    """Trace f, evaluate it, and compare with NumPy running f."""
    want = run_numpy(f, *args)
    fn, got = run_vmapc(f, *args)
    w_leaves, w_tree = pytree.flatten(want)
    g_leaves, g_tree = pytree.flatten(got)
    assert g_tree == w_tree, f"outputs are structured as {g_tree}, NumPy's as {w_tree}"
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        assert_same(g, w, rtol, atol, what=f"output {i}", signed_zeros=signed_zeros)
    return fn


def check_raises(f, *args, same_builtin=True, match=None):
    """NumPy raises for f(*args); vmapc must raise a VmapcError while tracing, of the same
    built-in kind (TypeError, ValueError, IndexError) unless same_builtin is False."""
    with pytest.raises(Exception) as np_err:
        run_numpy(f, *args)
    with pytest.raises(VmapcError, match=match) as v_err:
        vmapc.trace(f, *args)
    if same_builtin:
        kinds = [k for k in (TypeError, ValueError, IndexError, OverflowError) if isinstance(np_err.value, k)]
        assert kinds and any(isinstance(v_err.value, k) for k in kinds), (
            f"NumPy raised {type(np_err.value).__mro__}, vmapc {type(v_err.value).__mro__}")
    return v_err.value


# The corpus: name -> (function, args, tolerances). Registered at import time so that
# test_ir_text.py can reuse it.
CASES: dict = {}


def case(name, f, *args, rtol=None, atol=None):
    assert name not in CASES, name
    CASES[name] = (f, args, {"rtol": rtol, "atol": atol})


def numpy_raises(f, *args):
    try:
        run_numpy(f, *args)
    except Exception:
        return True
    return False


# --- elementwise: every ufunc, every dtype ----------------------------------------------------

UNARY_UFUNCS = [n for n in sorted(vnp._SUPPORTED_UFUNCS) if getattr(np, n).nin == 1]
BINARY_UFUNCS = [n for n in sorted(vnp._SUPPORTED_UFUNCS) if getattr(np, n).nin == 2]
SHAPES_1 = [(2, 3), (), (4,), (1, 3), (0, 2), (2, 1, 3)]
# (shape of a, shape of b) pairs that broadcast
SHAPES_2 = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((0, 3), (1, 3)),
            ((4,), ())]


def _unary_input(name, d, shape):
    x = arr(shape, d)
    if name in ("arccosh",) and np.dtype(d).kind == "f":
        x = np.asarray(np.abs(x) + 1, dtype=d)
    if name in ("arcsin", "arccos", "arctanh") and np.dtype(d).kind == "f":
        x = np.asarray(np.clip(x / 4, -0.99, 0.99), dtype=d)
    if name == "reciprocal" and np.dtype(d).kind in "iu":
        x = np.where(x == 0, np.asarray(1, dtype=d), x)  # NumPy's integer 1/0 is undefined
    return x


def _binary_inputs(name, da, db, sa, sb):
    a, b = arr(sa, da), arr(sb, db)
    if name in ("floor_divide", "remainder", "mod", "divide", "true_divide") and np.dtype(db).kind in "iub":
        b = np.where(b == 0, np.asarray(1, dtype=db), b).astype(db)
    if name in ("power", "float_power") and np.dtype(db).kind == "i":
        b = np.abs(b).astype(db)
    if name in ("power",) and np.dtype(db).kind in "iu":
        b = np.minimum(b, 5).astype(db)
    return a, b


for _n in UNARY_UFUNCS:
    _u = getattr(np, _n)
    for _i, _d in enumerate(ALL):
        _x = _unary_input(_n, _d, SHAPES_1[_i % len(SHAPES_1)])
        _f = (lambda u: lambda x: u(x))(_u)
        if not numpy_raises(_f, _x):
            case(f"ufunc-{_n}-{_d}", _f, _x)

for _n in BINARY_UFUNCS:
    if _n == "matmul":
        continue
    _u = getattr(np, _n)
    for _i, _d in enumerate(ALL):
        _sa, _sb = SHAPES_2[_i % len(SHAPES_2)]
        _a, _b = _binary_inputs(_n, _d, _d, _sa, _sb)
        _f = (lambda u: lambda a, b: u(a, b))(_u)
        if not numpy_raises(_f, _a, _b):
            case(f"ufunc-{_n}-{_d}", _f, _a, _b)


def _rejected(name, dtypes):
    u = getattr(np, name)
    args = [arr((2,), d) for d in dtypes] if u.nin == 1 else list(_binary_inputs(name, *dtypes, (2,), (2,)))
    return numpy_raises(lambda *a: u(*a), *args), args


@pytest.mark.parametrize("name,d", [(n, d) for n in UNARY_UFUNCS + BINARY_UFUNCS for d in ALL
                                    if n != "matmul" and _rejected(n, [d] * getattr(np, n).nin)[0]])
def test_ufunc_rejects_what_numpy_rejects(name, d):
    u = getattr(np, name)
    _, args = _rejected(name, [d] * u.nin)
    check_raises(lambda *a: u(*a), *args)


with np.errstate(over="ignore"):  # 1e5 is inf in float16
    SPECIAL = {d: np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-3, -1e-3, 1e-6, 2.0, 10.0, 100.0, -100.0,
                            np.finfo(d).max, -np.finfo(d).max, np.finfo(d).tiny, np.inf, -np.inf, np.nan,
                            3.7, -3.7, 2.5, -2.5, 0.49999997, 88.0, -88.0, 1e5, -1e5], dtype=d)
               for d in FLOATS}


@pytest.mark.parametrize("name", [n for n in UNARY_UFUNCS if n not in ("invert", "bitwise_not")])
@pytest.mark.parametrize("d", FLOATS)
def test_unary_ufunc_special_values(name, d):
    u = getattr(np, name)
    check(lambda x: u(x), SPECIAL[d])


@pytest.mark.parametrize("name", [n for n in BINARY_UFUNCS
                                  if n not in ("matmul", "bitwise_and", "bitwise_or", "bitwise_xor",
                                               "left_shift", "right_shift")])
@pytest.mark.parametrize("d", FLOATS)
def test_binary_ufunc_special_values(name, d):
    u = getattr(np, name)
    a, b = np.meshgrid(SPECIAL[d], SPECIAL[d])
    # IEEE 754 leaves open which zero max(-0.0, +0.0) returns, and NumPy's loops differ.
    check(lambda a, b: u(a, b), a, b, signed_zeros=name not in ("fmax", "fmin", "maximum", "minimum"))


# --- promotion, weak and strong scalars ----------------------------------------------------

PROMOTION_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "pow": lambda a, b: a ** b, "lt": lambda a, b: a < b, "eq": lambda a, b: a == b,
    "and": lambda a, b: a & b, "maximum": np.maximum, "arctan2": np.arctan2,
    "logical_xor": np.logical_xor, "where": lambda a, b: np.where(a > b, a, b),
}


def _operands(da, db, op):
    a, b = arr((2, 3), da), arr((3,), db)
    if op in ("truediv", "floordiv", "mod") and np.dtype(db).kind in "iub":
        b = np.where(b == 0, np.asarray(1, dtype=db), b).astype(db)
    if op == "pow":
        a, b = arr((2, 3), da, 0, 4), arr((3,), db, 0, 4)
    return a, b


@pytest.mark.parametrize("op", list(PROMOTION_OPS))
@pytest.mark.parametrize("da", ALL)
def test_promotion_all_dtype_pairs(op, da):
    """Every pair of dtypes: NumPy's promotion (or its TypeError) is reproduced."""
    f = PROMOTION_OPS[op]
    for db in ALL:
        a, b = _operands(da, db, op)
        if numpy_raises(f, a, b):
            check_raises(f, a, b)
        else:
            check(f, a, b)


WEAK = [0, 1, -1, 3, 2.5, -0.5, 1e10, True, False]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lt", "eq",
                                "maximum", "where"])
@pytest.mark.parametrize("d", ALL)
def test_python_scalar_literals_are_weak(op, d):
    """x <op> 2.5 and 2.5 <op> x: a Python number takes the array's dtype (NEP 50), and
    raises where NumPy raises (e.g. an out-of-range Python int)."""
    f = PROMOTION_OPS[op]
    x = arr((2, 3), d, 0, 4) if op in ("pow",) else arr((2, 3), d)
    if op in ("floordiv", "mod", "truediv"):
        x = np.where(x == 0, np.asarray(1, dtype=d), x).astype(d)
    for s in WEAK:
        for g in ((lambda x, s=s: f(x, s)), (lambda x, s=s: f(s, x))):
            if numpy_raises(g, x):
                check_raises(g, x, same_builtin=False)
            else:
                check(g, x)


@pytest.mark.parametrize("d", ALL)
@pytest.mark.parametrize("s", [2, 2.5, True])
def test_traced_python_scalar_arguments_are_weak(d, s):
    """A Python number passed as an argument takes part weakly, as in NumPy: f(x, 2.5) has
    the dtype NumPy gives x * 2.5 (a float is traced as a weak 0-d value; an int or a bool
    is static, the number itself)."""
    x = arr((2, 3), d, 1, 4)
    for f in (lambda x, s: x * s, lambda x, s: s + x, lambda x, s: np.maximum(x, s) - x,
              lambda x, s: (s * 3 - 1) * x, lambda x, s: np.where(x > 2, x, s)):
        if numpy_raises(f, x, s):
            with pytest.raises(VmapcError):
                vmapc.trace(f, x, s)
        else:
            check(f, x, s)


@pytest.mark.parametrize("d", ALL)
@pytest.mark.parametrize("sd", ALL)
def test_numpy_scalars_and_0d_arrays_are_strong(d, sd):
    """np.float64(2) and np.array(2.0) take part in promotion with their dtype (NEP 50),
    as arguments and as captured constants."""
    x = arr((2, 3), d)
    s = np.asarray(1, dtype=sd)[()]
    z = np.asarray(1, dtype=sd)
    for f in (lambda x, s: x + s, lambda x, s: s * x, lambda x, s: np.maximum(s, x)):
        if numpy_raises(f, x, s):
            check_raises(f, x, s)
            continue
        check(f, x, s)
        check(f, x, z)
        check(lambda x: f(x, s), x)
        check(lambda x: f(x, z), x)


for _d in ALL:
    _c = arr((3,), _d)
    case(f"closure-array-{_d}", (lambda c: lambda x: np.maximum(x, c) if x.dtype == np.bool_ else x * c)(_c),
         arr((2, 3), _d))
    case(f"closure-splat-{_d}", (lambda c: lambda x: np.maximum(x, c))(np.full((2, 3), arr((), _d))),
         arr((2, 3), _d))
case("closure-nan-inf", (lambda c: lambda x: x + c)(np.array([np.nan, np.inf, -np.inf, -0.0])), arr((4,), "float64"))
case("closure-used-twice", (lambda c: lambda x: x * c + c)(arr((4,), "float32")), arr((4,), "float32"))
case("closure-only", (lambda c: lambda x: c)(arr((2,), "int16")), arr((2,), "float32"))
case("closure-python-list", lambda x: x + np.asarray([1, 2, 3], dtype=np.int8), arr((3,), "int8"))
case("return-python-number", lambda x: (x, 2.0, 3, True), arr((2,), "float32"))
case("return-numpy-scalar", lambda x: (x, np.float32(2)), arr((2,), "float32"))
case("weak-chain", lambda x: x * (2 * 3.0) + (1 - True), arr((2,), "float16"))
case("weak-int-uint8", lambda x: x * 3 + 250, arr((2,), "uint8"))
case("weak-float-int8", lambda x: x * 0.5, arr((2,), "int8"))
case("weak-int-bool", lambda x: x + 1, arr((2,), "bool"))
case("weak-float-bool", lambda x: x * 1.5, arr((2,), "bool"))
case("weak-bool-int", lambda x: x + True, arr((2,), "int16"))


# --- operators and methods -----------------------------------------------------------------

OPERATORS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "//": lambda a, b: a // b, "%": lambda a, b: a % b, "**": lambda a, b: a ** b,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
for _name, _f in OPERATORS.items():
    for _d in ("int32", "uint8", "float32", "bool"):
        _a, _b = _operands(_d, _d, {"/": "truediv", "//": "floordiv", "%": "mod", "**": "pow"}.get(_name))
        if not numpy_raises(_f, _a, _b):
            case(f"op{_name}-{_d}", _f, _a, _b)
            # the reflected form: a NumPy array on the left, a tracer on the right
            case(f"op{_name}-{_d}-reflected", (lambda f, a: lambda b: f(a, b))(_f, _a), _b)
            case(f"op{_name}-{_d}-inplace", (lambda f: lambda a, b: f(a + 0 if a.dtype != np.bool_ else a, b))(_f),
                 _a, _b)

for _d in INTS:
    # integer division by zero gives 0 (NumPy too, with a warning); MIN // -1 wraps
    _info = np.iinfo(_d)
    _a = np.array([7, -7, 0, _info.min, _info.max, 5], dtype=_d) if _d in SIGNED else \
        np.array([7, 0, _info.max, 5], dtype=_d)
    _b = np.array([0, 0, 0, -1, 0, 2], dtype=_d) if _d in SIGNED else np.array([0, 0, 0, 2], dtype=_d)
    case(f"int-division-by-zero-{_d}", lambda a, b: (a // b, a % b, np.floor_divide(a, b), np.remainder(a, b)),
         _a, _b)
case("op-neg", lambda x: -x, arr((3,), "int8"))
case("op-pos", lambda x: +x, arr((3,), "float32"))
case("op-abs", lambda x: abs(x), arr((3,), "int16"))
case("op-invert-int", lambda x: ~x, arr((3,), "int8"))
case("op-invert-uint", lambda x: ~x, arr((3,), "uint16"))
case("op-invert-bool", lambda x: ~x, arr((3,), "bool"))
case("op-matmul", lambda a, b: a @ b, arr((2, 3), "float32"), arr((3, 4), "float32"))
case("op-rmatmul", (lambda w: lambda b: w @ b)(arr((2, 3), "float32")), arr((3, 4), "float32"))
case("op-iadd", lambda a, b: _iadd(a, b), arr((2, 3), "float32"), arr((3,), "float32"))
case("op-imul-weak", lambda a: _imul(a, 2), arr((2, 3), "int8"))
case("op-T", lambda x: x.T, arr((2, 3, 4), "float32"))
case("op-mT", lambda x: x.mT, arr((2, 3, 4), "float32"))
case("op-chain-compare", lambda x: (x > 0) & (x < 2), arr((5,), "float32"))


def _iadd(a, b):
    a = a * 1
    a += b
    return a


def _imul(a, s):
    a = a * 1
    a *= s
    return a


METHODS = {
    "sum": lambda x: x.sum(axis=1), "sum-dtype": lambda x: x.sum(dtype=np.float32),
    "prod": lambda x: x.prod(-1, keepdims=True), "mean": lambda x: x.mean(axis=(0, 1)),
    "max": lambda x: x.max(0), "min": lambda x: x.min(), "argmax": lambda x: x.argmax(),
    "argmin": lambda x: x.argmin(axis=-1), "any": lambda x: x.any(axis=0), "all": lambda x: x.all(),
    "var": lambda x: x.var(ddof=1), "std": lambda x: x.std(axis=1, keepdims=True),
    "ptp": lambda x: x.ptp(axis=0) if hasattr(np.ndarray, "ptp") else np.ptp(x, axis=0),
    "clip": lambda x: x.clip(-1, 1), "round": lambda x: x.round(1), "dot": lambda x: x.dot(x.T),
    "squeeze": lambda x: x[None].squeeze(0), "swapaxes": lambda x: x.swapaxes(0, 1),
    "take": lambda x: x.take([0, 2], axis=1), "repeat": lambda x: x.repeat(2, axis=0),
    "ravel": lambda x: x.ravel(), "flatten": lambda x: x.flatten(), "conj": lambda x: x.conj(),
    "copy": lambda x: x.copy(), "reshape-tuple": lambda x: x.reshape((3, 2)),
    "reshape-args": lambda x: x.reshape(-1, 2), "transpose-none": lambda x: x.transpose(),
    "transpose-args": lambda x: x.transpose(1, 0), "transpose-tuple": lambda x: x.transpose((1, 0)),
    "astype": lambda x: x.astype(np.int16), "astype-str": lambda x: x.astype("float16"),
    "astype-bool": lambda x: x.astype(bool), "astype-float": lambda x: x.astype(float),
    "shape-attrs": lambda x: np.zeros((x.ndim, x.size, x.itemsize, x.nbytes, len(x)), x.dtype) + x.shape[0],
    "iter": lambda x: sum(row for row in x),
}
for _name, _f in METHODS.items():
    for _d in ("float32", "int8", "bool"):
        _x = arr((2, 3), _d)
        if not numpy_raises(_f, _x):
            case(f"method-{_name}-{_d}", _f, _x)


# --- reductions ----------------------------------------------------------------------------

REDUCTIONS = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "var": np.var, "std": np.std,
              "max": np.max, "min": np.min, "any": np.any, "all": np.all, "ptp": np.ptp,
              "amax": np.amax, "amin": np.amin}
REDUCE_AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (), (0, 1, 2)]
REDUCE_0D_ERRORS = []

for _name, _r in REDUCTIONS.items():
    for _i, _d in enumerate(ALL):
        _x = arr((2, 3, 4), _d)
        _ax = REDUCE_AXES[_i % len(REDUCE_AXES)]
        for _kd in (False, True):
            _f = (lambda r, ax, kd: lambda x: r(x, axis=ax, keepdims=kd))(_r, _ax, _kd)
            if not numpy_raises(_f, _x):
                case(f"reduce-{_name}-{_d}-axis{_ax}-keepdims{_kd}", _f, _x)
    for _ax in REDUCE_AXES:
        _f = (lambda r, ax: lambda x: r(x, axis=ax))(_r, _ax)
        case(f"reduce-{_name}-axis{_ax}", _f, arr((2, 3, 4), "float32"))
    case(f"reduce-{_name}-0d", (lambda r: lambda x: r(x))(_r), arr((), "float64"))
    for _ax in (0, -1):  # NumPy's ufunc reductions accept these on 0-d arrays, mean/var/std do not
        _f = (lambda r, ax: lambda x: r(x, axis=ax))(_r, _ax)
        if numpy_raises(_f, arr((), "int32")):
            REDUCE_0D_ERRORS.append((_name, _f))
        else:
            case(f"reduce-{_name}-0d-axis{_ax}", _f, arr((), "int32"))
    case(f"reduce-{_name}-size1", (lambda r: lambda x: r(x, axis=1))(_r), arr((3, 1), "int16"))
    if hasattr(np.ndarray, _name):
        case(f"reduce-{_name}-method-default", (lambda n: lambda x: getattr(x, n)())(_name), arr((2, 3), "float32"))
    _empty = (lambda r: lambda x: r(x, axis=0))(_r)
    if numpy_raises(_empty, arr((0, 3), "float32")):
        continue
    case(f"reduce-{_name}-empty-axis", _empty, arr((0, 3), "float32"))
    case(f"reduce-{_name}-empty-other-axis", (lambda r: lambda x: r(x, axis=1))(_r), arr((0, 3), "int8"))
    case(f"reduce-{_name}-empty-all", (lambda r: lambda x: r(x))(_r), arr((2, 0), "float64"))


@pytest.mark.parametrize("name,f", REDUCE_0D_ERRORS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REDUCE_0D_ERRORS)])
def test_reductions_reject_axis_on_0d_where_numpy_does(name, f):
    check_raises(f, arr((), "float32"))


@pytest.mark.parametrize("name", ["max", "min", "ptp", "amax", "argmax", "argmin"])
def test_reductions_without_identity_reject_empty(name):
    f = getattr(np, name)
    for args in [(lambda x: f(x, axis=0), arr((0, 3), "float32")), (lambda x: f(x), arr((2, 0), "int8"))]:
        check_raises(*args, match="empty|zero-size")


@pytest.mark.parametrize("name", list(REDUCTIONS) + ["argmax", "argmin"])
def test_reductions_reject_bad_axes(name):
    f = getattr(np, name)
    x = arr((2, 3), "float32")
    check_raises(lambda x: f(x, axis=2), x)
    check_raises(lambda x: f(x, axis=-3), x)
    check_raises(lambda x: f(x, axis=2.0), x, same_builtin=False)
    if name not in ("argmax", "argmin"):
        check_raises(lambda x: f(x, axis=(0, 0)), x)
        check_raises(lambda x: f(x, axis=(1, -1)), x)
    else:
        check_raises(lambda x: f(x, axis=(0, 1)), x, same_builtin=False)


for _d in ALL:
    for _dd in ("int8", "uint64", "float16", "float32", "float64", "bool"):
        _x = arr((3, 4), _d)
        for _n in ("sum", "prod", "mean"):
            _f = (lambda n, dd: lambda x: getattr(np, n)(x, axis=0, dtype=dd))(_n, _dd)
            if not numpy_raises(_f, _x):
                case(f"reduce-{_n}-{_d}-dtype-{_dd}", _f, _x)
for _d in ("int8", "uint8", "float16", "float32", "bool"):
    for _ddof in (0, 1, 2, 3):
        case(f"var-ddof{_ddof}-{_d}", (lambda k: lambda x: np.var(x, axis=-1, ddof=k))(_ddof), arr((2, 3), _d))
        case(f"std-ddof{_ddof}-{_d}", (lambda k: lambda x: np.std(x, ddof=k, keepdims=True))(_ddof), arr((3,), _d))
    case(f"var-dtype-{_d}", lambda x: np.var(x, dtype=np.float32), arr((3, 4), _d))
    case(f"std-dtype-{_d}", lambda x: np.std(x, axis=0, dtype=np.float64), arr((3, 4), _d))
    case(f"var-correction-{_d}", lambda x: np.var(x, correction=1), arr((3, 4), _d))

for _name in ("argmax", "argmin"):
    _r = getattr(np, _name)
    for _i, _d in enumerate(ALL):
        for _ax in (None, 0, 1, -1):
            for _kd in (False, True):
                _f = (lambda r, ax, kd: lambda x: r(x, axis=ax, keepdims=kd))(_r, _ax, _kd)
                case(f"{_name}-{_d}-axis{_ax}-keepdims{_kd}", _f, arr((3, 4), _d, 0, 3))
    _nan = np.array([[1.0, np.nan, 3.0, np.nan], [np.inf, 2.0, -np.inf, 0.0], [0.0, 0.0, -0.0, 0.0]])
    case(f"{_name}-nan-rows", (lambda r: lambda x: r(x, axis=1))(_r), _nan)
    case(f"{_name}-nan-cols", (lambda r: lambda x: r(x, axis=0))(_r), _nan.astype(np.float32))
    case(f"{_name}-nan-flat", (lambda r: lambda x: r(x))(_r), _nan.astype(np.float16))
    case(f"{_name}-ties", (lambda r: lambda x: r(x, axis=-1))(_r), np.array([[2, 2, 1, 2], [0, 0, 0, 0]], np.int8))
    case(f"{_name}-method", (lambda n: lambda x: getattr(x, n)(axis=0))(_name), arr((3, 2), "uint16"))

_NAN = np.array([[1.0, np.nan, 3.0], [np.inf, 2.0, -np.inf], [-0.0, 0.0, 5.0]], np.float32)
for _name in ("max", "min", "sum", "prod", "mean", "ptp", "var"):
    case(f"reduce-{_name}-nan-inf", (lambda r: lambda x: (r(x, axis=0), r(x, axis=1), r(x)))(getattr(np, _name)), _NAN)

for _u, _m in [(np.add, "add"), (np.multiply, "multiply"), (np.maximum, "maximum"), (np.minimum, "minimum"),
               (np.logical_and, "logical_and"), (np.logical_or, "logical_or")]:
    for _d in ("int8", "float32", "bool"):
        case(f"ufunc-reduce-{_m}-{_d}", (lambda u: lambda x: (u.reduce(x), u.reduce(x, axis=1),
                                                               u.reduce(x, axis=None, keepdims=True)))(_u),
             arr((2, 3), _d))


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)


@pytest.mark.parametrize("d", ["float16", "float32", "float64", "int32", "bool"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)])
def test_logsumexp_softmax_log_softmax(d, axis):
    """The vmapc extensions against NumPy formulas (SciPy's definitions)."""
    x = arr((3, 4), d)
    xf = x if x.dtype.kind == "f" else x.astype(np.float64)
    for keepdims in (False, True):
        fn, got = run_vmapc(lambda x: vnp.logsumexp(x, axis=axis, keepdims=keepdims), x)
        assert_same(got, run_numpy(_logsumexp, xf, axis, keepdims))
    big = np.array([[1000.0, 1000.0, -np.inf], [-1000.0, -1001.0, 0.0]], dtype=xf.dtype) if d == "float64" else xf
    fn, got = run_vmapc(lambda x: vnp.logsumexp(x, axis=axis), big)
    assert_same(got, run_numpy(_logsumexp, big, axis))
    if axis is not None:
        want = np.exp(xf - np.max(xf, axis=axis, keepdims=True))
        want = want / np.sum(want, axis=axis, keepdims=True)
        fn, got = run_vmapc(lambda x: vnp.softmax(x, axis=axis), x)
        assert_same(got, want)
        fn, got = run_vmapc(lambda x: vnp.log_softmax(x, axis=axis), x)
        assert_same(got, run_numpy(lambda x: x - _logsumexp(x, axis=axis, keepdims=True), xf))
    # the same functions on concrete arrays, without tracing
    assert_same(vnp.logsumexp(xf, axis=axis), run_numpy(_logsumexp, xf, axis))


def test_logsumexp_all_minus_inf():
    x = np.full((2, 3), -np.inf, np.float32)
    fn, got = run_vmapc(lambda x: vnp.logsumexp(x, axis=1), x)
    assert_same(got, run_numpy(_logsumexp, x, 1))


# --- contractions --------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((1, 2, 3), (6, 3, 4)),
                 ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 0), (0, 3)), ((0, 2, 3), (3, 4)), ((1, 3), (3, 1))]
for _i, (_sa, _sb) in enumerate(MATMUL_SHAPES):
    case(f"matmul-{_sa}-{_sb}", lambda a, b: a @ b, arr(_sa, "float32"), arr(_sb, "float32"))
    case(f"np.matmul-{_sa}-{_sb}", lambda a, b: np.matmul(a, b), arr(_sa, ALL[_i % 12]), arr(_sb, ALL[_i % 12]))
for _da, _db in [("int8", "int8"), ("uint8", "int8"), ("bool", "bool"), ("float16", "float16"),
                 ("int32", "float32"), ("bool", "float64"), ("uint64", "uint64"), ("int64", "float16")]:
    case(f"matmul-{_da}-{_db}", lambda a, b: a @ b, arr((2, 3), _da), arr((3, 4), _db))
    case(f"dot-{_da}-{_db}", lambda a, b: np.dot(a, b), arr((2, 3), _da), arr((3,), _db))
    case(f"einsum-{_da}-{_db}", lambda a, b: np.einsum("ij,jk->ik", a, b), arr((2, 3), _da), arr((3, 4), _db))

DOT_SHAPES = [(), (3,), (2, 3), (4, 2, 3)]
for _sa in DOT_SHAPES:
    for _sb in [(), (3,), (3, 2), (4, 3, 2)]:
        _a, _b = arr(_sa, "float64"), arr(_sb, "float64")
        if not numpy_raises(np.dot, _a, _b):
            case(f"dot-{_sa}-{_sb}", lambda a, b: np.dot(a, b), _a, _b)
            case(f"dot-method-{_sa}-{_sb}", lambda a, b: a.dot(b), arr(_sa, "int16"), arr(_sb, "int16"))
        _b = arr(_sb[:-1] + (3,) if _sb else (), "float32")
        if not numpy_raises(np.inner, _a, _b):
            case(f"inner-{_sa}-{_sb}", lambda a, b: np.inner(a, b), _a, _b)
    case(f"outer-{_sa}", lambda a, b: np.outer(a, b), arr(_sa, "int8"), arr((2, 2), "int8"))
    case(f"vdot-{_sa}", lambda a, b: np.vdot(a, b), arr(_sa, "float32"), arr(_sa, "float32"))
case("dot-scalar-python", lambda a: np.dot(a, 2.5), arr((2, 3), "float32"))
case("dot-empty", lambda a, b: np.dot(a, b), arr((2, 0), "float32"), arr((0,), "float32"))
case("inner-0d", lambda a, b: np.inner(a, b), arr((), "float32"), arr((2,), "int8"))
case("outer-bool", lambda a, b: np.outer(a, b), arr((3,), "bool"), arr((2,), "bool"))
case("vdot-bool", lambda a, b: np.vdot(a, b), arr((2, 3), "bool"), arr((6,), "bool"))
case("vdot-mixed", lambda a, b: np.vdot(a, b), arr((2, 3), "int8"), arr((3, 2), "float16"))

TENSORDOT = [((3, 4), (4, 5), 1), ((2, 3, 4), (3, 4, 5), 2), ((2, 3), (4, 5), 0), ((2, 3), (2, 3), ([0, 1], [0, 1])),
             ((2, 3, 4), (4, 2), ([0, 2], [1, 0])), ((2, 3, 4), (4, 3), ((-1, -2), (0, 1))), ((3, 4), (5, 4), (1, 1)),
             ((3, 4), (4, 3), ([1], [0])), ((2, 3), (2, 3), 2)]
for _sa, _sb, _ax in TENSORDOT:
    case(f"tensordot-{_sa}-{_sb}-{_ax}", (lambda ax: lambda a, b: np.tensordot(a, b, ax))(_ax),
         arr(_sa, "float32"), arr(_sb, "float32"))
case("tensordot-default", lambda a, b: np.tensordot(a, b), arr((2, 3, 4), "int32"), arr((3, 4, 2), "int32"))
case("tensordot-axes-kw", lambda a, b: np.tensordot(a, b, axes=([1], [0])), arr((2, 3), "bool"), arr((3, 2), "bool"))

EINSUM = [
    ("ij->ji", [(2, 3)]), ("ij", [(2, 3)]), ("ji", [(2, 3)]), ("ij->", [(2, 3)]), ("ij->i", [(2, 3)]),
    ("ijk->kij", [(2, 3, 4)]), ("i,i->", [(3,), (3,)]), ("i,i", [(3,), (3,)]), ("i,j->ij", [(3,), (2,)]),
    ("i,j", [(3,), (2,)]), ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]), ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]), ("bij,bjk->bki", [(5, 2, 3), (5, 3, 4)]),
    ("bij,jk->bik", [(5, 2, 3), (3, 4)]), ("ij,ij->ij", [(2, 3), (2, 3)]), ("ij,ij->", [(2, 3), (2, 3)]),
    ("ij,ij", [(2, 3), (2, 3)]), ("ij,j->i", [(2, 3), (3,)]), ("...ij,...jk->...ik", [(5, 2, 3), (5, 3, 4)]),
    ("...ij,...jk", [(5, 2, 3), (3, 4)]), ("...i,...i->...", [(2, 5, 3), (5, 3)]), ("i...->...", [(3, 2, 4)]),
    ("...->...", [(2, 3)]), ("ij...,jk...->ik...", [(2, 3, 5), (3, 4, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk,kl", [(2, 3), (3, 4), (4, 5)]), ("i,j,k->ijk", [(2,), (3,), (4,)]), ("ab,bc,ca->", [(2, 3), (3, 4), (4, 2)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]), ("ij,->ij", [(2, 3), ()]), (",->", [(), ()]),
    ("i,i->i", [(1,), (3,)]), ("ij,jk->ik", [(2, 1), (3, 4)]), ("bi,bj->bij", [(4, 2), (4, 3)]),
    ("ij,kl->", [(2, 3), (4, 5)]), ("ij , jk -> ik", [(2, 3), (3, 4)]), ("Ab,bC->CA", [(2, 3), (3, 4)]),
    ("ij,jk->ik", [(2, 0), (0, 3)]), ("b...i,b...i->b...", [(2, 3, 4), (2, 1, 4)]),
]
for _spec, _shapes in EINSUM:
    _args = [arr(sh, "float32") for sh in _shapes]
    case(f"einsum-{_spec}-{_shapes}", (lambda sp: lambda *a: np.einsum(sp, *a))(_spec), *_args)
case("einsum-int", lambda a, b: np.einsum("ij,jk->ik", a, b), arr((2, 3), "int16"), arr((3, 4), "int16"))
case("einsum-dtype", lambda a, b: np.einsum("ij,jk->ik", a, b, dtype=np.float64), arr((2, 3), "float32"),
     arr((3, 4), "float32"))
case("einsum-weak", lambda a: np.einsum("ij,->ij", a, 2.5), arr((2, 3), "float16"))
case("einsum-const", lambda a: np.einsum("ij,j->i", a, np.arange(3.0)), arr((2, 3), "float32"))


CONTRACTION_ERRORS = {
    "matmul-core": (lambda a, b: a @ b, (2, 3), (4, 5)),
    "matmul-0d": (lambda a, b: a @ b, (), (3,)),
    "matmul-batch": (lambda a, b: a @ b, (3, 2, 3), (4, 3, 2)),
    "matmul-vectors": (lambda a, b: a @ b, (3,), (4,)),
    "dot": (lambda a, b: np.dot(a, b), (2, 3), (2, 3)),
    "inner": (lambda a, b: np.inner(a, b), (2, 3), (2,)),
    "vdot": (lambda a, b: np.vdot(a, b), (2, 3), (5,)),
    "tensordot-size": (lambda a, b: np.tensordot(a, b, 1), (2, 3), (2, 3)),
    "tensordot-lists": (lambda a, b: np.tensordot(a, b, ([0], [0, 1])), (2, 3), (2, 3)),
    "einsum-sizes": (lambda a, b: np.einsum("ij,jk->ik", a, b), (2, 3), (4, 5)),
    "einsum-rank": (lambda a, b: np.einsum("ijk,jk->ik", a, b), (2, 3), (3, 4)),
    "einsum-output": (lambda a, b: np.einsum("ij,jk->iz", a, b), (2, 3), (3, 4)),
    "einsum-output-twice": (lambda a, b: np.einsum("ij,jk->ii", a, b), (2, 3), (3, 4)),
    "einsum-operands": (lambda a, b: np.einsum("ij->ij", a, b), (2, 3), (3, 4)),
}


@pytest.mark.parametrize("name", list(CONTRACTION_ERRORS))
def test_contractions_reject_what_numpy_rejects(name):
    f, sa, sb = CONTRACTION_ERRORS[name]
    check_raises(f, arr(sa, "float32"), arr(sb, "float32"))


def test_tensordot_too_many_axes():
    # NumPy raises IndexError here; vmapc's ShapeError is a ValueError
    check_raises(lambda a, b: np.tensordot(a, b, 3), arr((2, 3), "float32"), arr((2, 3), "float32"),
                 same_builtin=False)


@pytest.mark.parametrize("spec", ["ii->i", "ii", "ij,jj->i"])
def test_einsum_repeated_index_is_unsupported(spec):
    args = [arr((3, 3), "float32")] * (spec.split("->")[0].count(",") + 1)
    with pytest.raises(UnsupportedError, match="repeated index"):
        vmapc.trace(lambda *a: np.einsum(spec, *a), *args)


# --- shape functions -------------------------------------------------------------------------

SHAPE_FUNCS = {
    "reshape": lambda x: np.reshape(x, (4, 6)), "reshape-neg1": lambda x: np.reshape(x, (-1, 3)),
    "reshape-int": lambda x: np.reshape(x, 24), "reshape-neg1-only": lambda x: np.reshape(x, -1),
    "reshape-kw": lambda x: np.reshape(x, shape=(2, 12)), "reshape-ones": lambda x: x.reshape(1, 2, 1, 12, 1),
    "ravel": np.ravel, "transpose": np.transpose, "transpose-axes": lambda x: np.transpose(x, (1, 2, 0)),
    "transpose-neg": lambda x: np.transpose(x, (-1, 0, -2)), "permute_dims": lambda x: np.permute_dims(x, (2, 0, 1)),
    "moveaxis": lambda x: np.moveaxis(x, 0, -1), "moveaxis-neg": lambda x: np.moveaxis(x, -1, 1),
    "moveaxis-lists": lambda x: np.moveaxis(x, [0, 1], [-1, 0]), "moveaxis-tuple": lambda x: np.moveaxis(x, (2, 0), (0, 1)),
    "swapaxes": lambda x: np.swapaxes(x, 0, 2), "swapaxes-neg": lambda x: np.swapaxes(x, -1, 1),
    "expand_dims": lambda x: np.expand_dims(x, 0), "expand_dims-end": lambda x: np.expand_dims(x, 3),
    "expand_dims-neg": lambda x: np.expand_dims(x, -1), "expand_dims-tuple": lambda x: np.expand_dims(x, (0, -1, 2)),
    "squeeze": lambda x: np.squeeze(x[:, :1, None]), "squeeze-axis": lambda x: np.squeeze(x[:1, :, None], 0),
    "squeeze-neg": lambda x: np.squeeze(x[..., :1], -1), "squeeze-tuple": lambda x: np.squeeze(x[:1, :1], (0, 1)),
    "broadcast_to": lambda x: np.broadcast_to(x, (5, 2, 3, 4)), "broadcast_to-ones": lambda x: np.broadcast_to(x[:, :1], (2, 7, 4)),
    "broadcast_arrays": lambda x: np.broadcast_arrays(x, x[0, :, :1], np.ones((5, 1, 1, 1), np.int8)),
    "newaxis": lambda x: x[None, :, np.newaxis],
    "atleast_1d": lambda x: np.atleast_1d(x), "atleast_2d": lambda x: np.atleast_2d(x),
    "flip": np.flip, "flip-axis": lambda x: np.flip(x, 1), "flip-neg": lambda x: np.flip(x, -1),
    "flip-tuple": lambda x: np.flip(x, (0, 2)), "fliplr": np.fliplr, "flipud": np.flipud,
    "roll": lambda x: np.roll(x, 5), "roll-neg": lambda x: np.roll(x, -7), "roll-axis": lambda x: np.roll(x, 1, axis=1),
    "roll-big": lambda x: np.roll(x, 13, axis=-1), "roll-tuple": lambda x: np.roll(x, (1, -2), axis=(0, 2)),
    "roll-one-shift-many-axes": lambda x: np.roll(x, 2, axis=(1, 2)), "roll-zero": lambda x: np.roll(x, 0, 0),
    "roll-same-axis-twice": lambda x: np.roll(x, (1, 1), axis=(2, 2)),
    "tile": lambda x: np.tile(x, 2), "tile-tuple": lambda x: np.tile(x, (2, 1, 3)),
    "tile-longer": lambda x: np.tile(x, (2, 1, 1, 2)), "tile-shorter": lambda x: np.tile(x, (3, 1)),
    "tile-zero": lambda x: np.tile(x, (1, 0, 1)),
    "repeat": lambda x: np.repeat(x, 2), "repeat-axis": lambda x: np.repeat(x, 3, axis=1),
    "repeat-neg-axis": lambda x: np.repeat(x, 2, axis=-1), "repeat-counts": lambda x: np.repeat(x, [1, 0, 2], axis=1),
    "repeat-counts-array": lambda x: np.repeat(x, np.array([2, 1]), axis=0), "repeat-zero": lambda x: np.repeat(x, 0, axis=2),
    "repeat-one-count": lambda x: np.repeat(x, [3], axis=2),
    "pad": lambda x: np.pad(x, 1), "pad-pairs": lambda x: np.pad(x, ((0, 1), (2, 0), (1, 1))),
    "pad-pair": lambda x: np.pad(x, (1, 2)), "pad-value": lambda x: np.pad(x, 1, constant_values=7),
    "pad-mode": lambda x: np.pad(x, [(1, 1)], mode="constant"), "pad-zero": lambda x: np.pad(x, 0),
    "pad-per-axis-values": lambda x: np.pad(x, 1, constant_values=((1, 2), (3, 4), (5, 6))),
    "pad-before-after-values": lambda x: np.pad(x, ((1, 0), (0, 2), (1, 1)), constant_values=(-1, 100)),
    "pad-traced-value": lambda x: np.pad(x, 2, constant_values=x[0, 0, 0]),
    "split": lambda x: np.split(x, 2), "split-axis": lambda x: np.split(x, 3, axis=1),
    "split-indices": lambda x: np.split(x, [1, 3], axis=-1), "split-neg-indices": lambda x: np.split(x, [-1], axis=2),
    "split-out-of-range": lambda x: np.split(x, [2, 10, 1], axis=1),
    "array_split": lambda x: np.array_split(x, 3, axis=2), "array_split-even": lambda x: np.array_split(x, 2),
    "array_split-indices": lambda x: np.array_split(x, [1], axis=1), "array_split-more": lambda x: np.array_split(x, 5, 1),
    "concatenate": lambda x: np.concatenate([x, x[:1]]), "concatenate-axis": lambda x: np.concatenate((x, x), axis=-1),
    "concatenate-none": lambda x: np.concatenate([x, x[0]], axis=None),
    "concatenate-numpy": lambda x: np.concatenate([np.zeros((1, 3, 4), np.float16), x, np.ones((1, 3, 4), np.int64)]),
    "concatenate-one": lambda x: np.concatenate([x]), "concat": lambda x: np.concat([x, x], axis=1),
    "concatenate-dtype": lambda x: np.concatenate([x, x], dtype=np.float32),
    "stack": lambda x: np.stack([x, x]), "stack-axis": lambda x: np.stack([x, x, x], axis=2),
    "stack-neg": lambda x: np.stack((x, x), axis=-1), "stack-numpy": lambda x: np.stack([x[0, 0], np.arange(4)]),
    "stack-dtype": lambda x: np.stack([x, x], dtype=np.float64),
    "hstack": lambda x: np.hstack([x, x]), "hstack-1d": lambda x: np.hstack([x[0, 0], x[1, 1], x[0, 0, 0]]),
    "hstack-0d": lambda x: np.hstack([x[0, 0, 0], x[1, 1, 1]]),
    "vstack": lambda x: np.vstack([x, x]), "vstack-1d": lambda x: np.vstack([x[0, 0], x[1, 1]]),
    "vstack-0d": lambda x: np.vstack([x[0, 0, 0], x[1, 1, 1]]),
    "shape": lambda x: np.zeros(np.shape(x)) + np.ndim(x) + np.size(x) + np.size(x, 1),
    "copy": lambda x: np.copy(x),
}
for _name, _f in SHAPE_FUNCS.items():
    for _d in ("float32", "int8", "bool"):
        _x = arr((2, 3, 4), _d)
        case(f"shape-{_name}-{_d}", _f, _x)
for _d in ALL:
    case(f"concatenate-mixed-{_d}", lambda x, y: np.concatenate([x, y, x]), arr((2,), _d), arr((3,), "int16"))
    case(f"stack-mixed-{_d}", lambda x, y: np.stack([x, y]), arr((2,), _d), arr((2,), "float16"))
for _name, _f in [("ravel", np.ravel), ("transpose", np.transpose), ("flip", np.flip), ("atleast_1d", np.atleast_1d),
                  ("atleast_2d", np.atleast_2d), ("expand_dims", lambda x: np.expand_dims(x, 0)),
                  ("squeeze", np.squeeze), ("reshape", lambda x: x.reshape(1, 1)), ("tile", lambda x: np.tile(x, 3)),
                  ("repeat", lambda x: np.repeat(x, 2)), ("broadcast_to", lambda x: np.broadcast_to(x, (2, 3))),
                  ("pad", lambda x: np.pad(x, 0)), ("roll", lambda x: np.roll(x, 1))]:
    case(f"shape-0d-{_name}", _f, arr((), "float32"))
    if not numpy_raises(_f, arr((0, 3), "int8")):
        case(f"shape-empty-{_name}", _f, arr((0, 3), "int8"))
case("shape-weak-stays-weak", lambda x, s: np.reshape(s, (1,)) * x + np.broadcast_to(s, (3,)), arr((3,), "float16"), 2.0)
case("stack-weak-is-strong", lambda x, s: np.stack([x, s]), arr((), "float32"), 2.0)
case("concatenate-list-operand", lambda x: np.concatenate([x, [1, 2]]), arr((2,), "float32"))

SHAPE_ERRORS = {
    "reshape-size": lambda x: np.reshape(x, (5, 5)), "reshape-two-neg1": lambda x: np.reshape(x, (-1, -1)),
    "reshape-neg1-no-fit": lambda x: np.reshape(x, (-1, 5)), "transpose-axes": lambda x: np.transpose(x, (0, 1)),
    "transpose-repeated": lambda x: np.transpose(x, (0, 0, 1)), "transpose-oob": lambda x: np.transpose(x, (0, 1, 3)),
    "moveaxis-oob": lambda x: np.moveaxis(x, 3, 0), "moveaxis-len": lambda x: np.moveaxis(x, [0, 1], [0]),
    "swapaxes-oob": lambda x: np.swapaxes(x, 0, 3), "expand_dims-oob": lambda x: np.expand_dims(x, 4),
    "expand_dims-repeated": lambda x: np.expand_dims(x, (0, 0)), "squeeze-not-one": lambda x: np.squeeze(x, 1),
    "broadcast_to": lambda x: np.broadcast_to(x, (3, 3, 4)), "broadcast_to-rank": lambda x: np.broadcast_to(x, (3, 4)),
    "broadcast_arrays": lambda x: np.broadcast_arrays(x, x[:, :2]),
    "concatenate-shapes": lambda x: np.concatenate([x, x[:, :2]]), "concatenate-ranks": lambda x: np.concatenate([x, x[0]]),
    "concatenate-0d": lambda x: np.concatenate([x[0, 0, 0], x[0, 0, 0]]), "concatenate-axis": lambda x: np.concatenate([x, x], 3),
    "stack-shapes": lambda x: np.stack([x, x[:1]]), "stack-axis": lambda x: np.stack([x, x], axis=4),
    "split-unequal": lambda x: np.split(x, 3, axis=2), "split-zero": lambda x: np.split(x, 0),
    "flip-axis": lambda x: np.flip(x, 3), "roll-axis": lambda x: np.roll(x, 1, axis=3),
    "roll-len": lambda x: np.roll(x, (1, 2, 3), axis=(0, 1)), "repeat-counts": lambda x: np.repeat(x, [1, 2], axis=1),
    "repeat-negative": lambda x: np.repeat(x, -1), "repeat-axis": lambda x: np.repeat(x, 2, axis=3),
    "pad-negative": lambda x: np.pad(x, -1), "pad-shape": lambda x: np.pad(x, ((1, 1), (1, 1))),
    "tile-negative": lambda x: np.tile(x, -1), "vstack-shapes": lambda x: np.vstack([x[0], x[0, :, :2]]),
    "hstack-ranks": lambda x: np.hstack([x, x[0]]),
}


@pytest.mark.parametrize("name", list(SHAPE_ERRORS))
def test_shape_functions_reject_what_numpy_rejects(name):
    # NumPy's split(x, 0) raises ZeroDivisionError; vmapc a ShapeError (a ValueError)
    check_raises(SHAPE_ERRORS[name], arr((2, 3, 4), "float32"), same_builtin=name != "split-zero")


@pytest.mark.parametrize("f", [lambda x: np.reshape(x, (6, 4), order="F"), lambda x: np.ravel(x, order="F"),
                               lambda x: x.reshape(6, 4, order="F"), lambda x: np.pad(x, 1, mode="edge")],
                         ids=["reshape", "ravel", "method", "pad-mode"])
def test_shape_functions_unsupported_arguments(f):
    with pytest.raises(UnsupportedError):
        vmapc.trace(f, arr((2, 3, 4), "float32"))


# --- indexing ------------------------------------------------------------------------------

I0, I1, I2 = np.array([0, 3, -1, 2]), np.array([[1, 0], [3, -4]]), np.array([4, 0, -5])
STATIC_KEYS = {
    "int": 1, "neg-int": -1, "np-int": np.int64(2), "tuple-ints": (1, 2), "all-ints": (3, -1, 0),
    "slice": slice(1, 3), "slice-step": slice(None, None, 2), "slice-neg-step": slice(None, None, -1),
    "slice-neg-step-2": slice(3, 0, -2), "slice-neg-bounds": slice(-3, -1), "slice-empty": slice(3, 1),
    "slice-empty-neg": slice(0, 3, -1), "slice-past-end": slice(2, 100), "slice-neg-step-past": slice(100, -100, -3),
    "slices": (slice(1, None), slice(None, 2), slice(None, None, -2)), "newaxis": None,
    "newaxis-mid": (slice(None), None, 1), "newaxes": (None, 0, None, slice(None), None),
    "ellipsis": Ellipsis, "ellipsis-int": (Ellipsis, 0), "int-ellipsis": (1, Ellipsis),
    "ellipsis-mid": (0, Ellipsis, 1), "ellipsis-newaxis": (Ellipsis, None), "ellipsis-all": (1, 2, Ellipsis, 3),
    "empty-tuple": (), "0d-array-int": np.array(2),
    "array": I0, "list": [0, 2, 2], "nested-list": [[0, 1], [2, 3]], "array-2d": I1, "empty-array": np.array([], np.int64),
    "array-axis1": (slice(None), I2), "array-last": (Ellipsis, np.array([0, 5, 5, 1])),
    "array-and-int": (I0, 1), "int-and-array": (1, I2), "arrays-adjacent": (slice(None), I2, np.array([1, 2, 3])),
    "arrays-broadcast": (I1[:, :1], slice(None), np.array([[0, 1, 2]])),
    "arrays-separated": (I0, slice(1, 4), I0), "arrays-separated-by-int": (I0, 2, I0),
    "array-int-separated": (0, slice(None), I2), "arrays-newaxis-between": (I0, None, I0),
    "arrays-all": (I0, I0, I0), "array-with-newaxis": (None, I0), "array-neg-step": (I0, slice(None, None, -1)),
    "uint8-array": np.array([3, 0], np.uint8), "int8-array": (slice(None), np.array([-1, 4], np.int8)),
    "array-ellipsis-array": (I0, Ellipsis, I0),
}
for _name, _key in STATIC_KEYS.items():
    for _d in ("float32", "int8", "bool"):
        case(f"index-{_name}-{_d}", (lambda k: lambda x: x[k])(_key), arr((4, 5, 6), _d))
case("index-0d-empty-tuple", lambda x: x[()], arr((), "float32"))
case("index-0d-ellipsis", lambda x: x[...], arr((), "float32"))
case("index-0d-newaxis", lambda x: x[None], arr((), "int16"))
case("index-empty-dim", lambda x: x[:, 1:], arr((0, 3), "float32"))
case("index-chain", lambda x: x[1:][::-1][:, 2], arr((4, 5), "float32"))
case("index-iter", lambda x: [r for r in x], arr((3, 2), "float32"))

TRACED_KEYS = {
    "0d": lambda x, i: x[i], "0d-neg": lambda x, i: x[-i - 1], "0d-axis1": lambda x, i: x[:, i],
    "0d-pair": lambda x, i: x[i, i + 1], "0d-and-slice": lambda x, i: x[1:, i],
    "0d-and-array": lambda x, i: x[i, [0, 1, 4]], "0d-separated": lambda x, i: x[i, :, i],
    "array": lambda x, i: x[np.stack([i, i + 1, -i])], "array-2": lambda x, i: x[np.stack([i, i]), 1:, np.stack([0, i])],
    "0d-newaxis": lambda x, i: x[None, i], "0d-ellipsis": lambda x, i: x[..., i],
    "0d-uint": lambda x, i: x[i.astype(np.uint8)], "0d-int8": lambda x, i: x[:, i.astype(np.int8)],
    "take": lambda x, i: np.take(x, i), "take-axis": lambda x, i: np.take(x, np.stack([i, -1]), axis=1),
}
for _name, _f in TRACED_KEYS.items():
    for _i in (0, 1, 2):
        case(f"index-traced-{_name}-{_i}", _f, arr((4, 5, 6), "float32"), np.int64(_i))

TAKE = {
    "flat": lambda x: np.take(x, [0, 7, -1]), "axis0": lambda x: np.take(x, [[1, 0], [3, 3]], axis=0),
    "axis-neg": lambda x: np.take(x, np.array([5, 0]), axis=-1), "scalar": lambda x: np.take(x, 2, axis=1),
    "method": lambda x: x.take([1, 1], axis=2), "clip": lambda x: np.take(x, [-3, 1, 99], axis=1, mode="clip"),
    "wrap": lambda x: np.take(x, [-7, 1, 99], axis=1, mode="wrap"), "raise": lambda x: np.take(x, [1], mode="raise"),
    "empty": lambda x: np.take(x, np.array([], np.int64), axis=0),
    "along-axis": lambda x: np.take_along_axis(x, np.array([[[1], [0], [4], [2], [3]]] * 4), axis=1),
    "along-axis-last": lambda x: np.take_along_axis(x, np.zeros((4, 5, 2), np.int64) + np.array([5, -1]), axis=-1),
    "along-axis-bcast": lambda x: np.take_along_axis(x, np.array([[[0, 1, 2]]]), axis=2),
    "along-axis-none": lambda x: np.take_along_axis(x, np.array([3, 100 % 120, 7]), axis=None),
    "along-argmax": lambda x: np.take_along_axis(x, np.argmax(x, axis=1)[:, None], axis=1),
    "along-argmin-keep": lambda x: np.take_along_axis(x, np.argmin(x, axis=-1, keepdims=True), axis=-1),
}
for _name, _f in TAKE.items():
    for _d in ("float32", "uint16", "bool"):
        case(f"take-{_name}-{_d}", _f, arr((4, 5, 6), _d))
case("take-traced-array", lambda x, i: np.take(x, i, axis=1), arr((4, 5), "float16"), np.array([[0, 4], [-1, 2]]))
case("take-along-traced", lambda x, i: np.take_along_axis(x, i, axis=0), arr((4, 5), "int32"), np.array([[3, 2, 1, 0, 0]]))
case("take-traced-uint8", lambda x, i: np.take(x, i), arr((300,), "float32"), np.array([255, 3], np.uint8))
case("take-traced-int8-wrap", lambda x, i: np.take(x, i, mode="wrap"), arr((300,), "float32"), np.array([-128, 127], np.int8))


def _clamped(n, i):
    """The index vmapc uses for i on an axis of size n: negative counts from the end, then
    clamped into range."""
    i = np.where(i < 0, i + n, i)
    return np.clip(i, 0, n - 1)


def test_traced_out_of_range_indices_are_clamped():
    """Documented difference: compiled code cannot raise, so traced indices that are out of
    range are clamped (after negative ones count from the end). NumPy computes the expected
    result from the clamped indices."""
    x = arr((4, 5), "float32")
    for i in [-100, -5, -4, 3, 4, 99]:
        i = np.int64(i)
        fn, got = run_vmapc(lambda x, i: x[i], x, i)
        assert_same(got, x[_clamped(4, i)])
        fn, got = run_vmapc(lambda x, i: x[:, i], x, i)
        assert_same(got, x[:, _clamped(5, i)])
        fn, got = run_vmapc(lambda x, i: np.take(x, i, axis=1), x, i)
        assert_same(got, np.take(x, _clamped(5, i), axis=1))
    idx = np.array([[-9, 7], [2, 4]])
    fn, got = run_vmapc(lambda x, i: x[i, i], x, idx)
    assert_same(got, x[_clamped(4, idx), _clamped(5, idx)])
    fn, got = run_vmapc(lambda x, i: np.take_along_axis(x, i, axis=1), x, idx[:1])
    assert_same(got, np.take_along_axis(x, _clamped(5, idx[:1]), axis=1))
    fn, got = run_vmapc(lambda x, i: np.take(x, i, mode="clip"), x, idx)
    assert_same(got, np.take(x, idx, mode="clip"))
    fn, got = run_vmapc(lambda x, i: np.take(x, i, mode="wrap"), x, idx)
    assert_same(got, np.take(x, idx, mode="wrap"))


@pytest.mark.parametrize("d", INTS)
def test_integer_reciprocal_of_zero_is_zero(d):
    """Documented: integer division by zero gives 0; NumPy's integer reciprocal(0) is
    undefined, so only the other elements are compared with NumPy."""
    x = np.array([0, 1, 2, 3, 0], dtype=d) if d in UNSIGNED else np.array([0, 1, -1, 2, -3, 0], dtype=d)
    fn, got = run_vmapc(lambda x: np.reciprocal(x), x)
    nonzero = x != 0
    assert_same(got[nonzero], np.reciprocal(x[nonzero]))
    assert (got[~nonzero] == 0).all()


@pytest.mark.parametrize("d", ["int8", "int64", "uint16"])
def test_integer_to_negative_traced_power_truncates(d):
    """Documented difference: NumPy raises for an integer to a negative integer power; a
    traced exponent's sign is not known while tracing, so vmapc computes 1 / x**|p|
    truncated toward zero (and 0 for x == 0), the value NumPy gives for floats, truncated."""
    x = np.array([-3, -2, -1, 0, 1, 2, 3], dtype="int8").astype(d)
    for p in (-1, -2, -3, 0, 2):
        p = np.asarray(p, dtype="int64" if d != "uint16" else "int16")
        fn, got = run_vmapc(lambda x, p: x ** p, x, p)
        if p >= 0:
            want = x ** p
        else:
            xf = x.astype((x ** -p).dtype).astype(np.float64)
            with np.errstate(divide="ignore"):
                want = np.where(xf == 0, 0, np.trunc(xf ** float(p))).astype((x ** -p).dtype)
        assert_same(got, want)
    with pytest.raises(VmapcError, match="negative integer powers"):
        vmapc.trace(lambda x: x ** -1, x)


@pytest.mark.parametrize("f", [lambda x: x[4], lambda x: x[-5], lambda x: x[:, 5], lambda x: x[np.array([0, 4])],
                               lambda x: x[[1, -6]], lambda x: x[0, 0, 0], lambda x: x[..., ...],
                               lambda x: x[np.array([0, 1]), np.array([0, 1, 2])], lambda x: x[::0],
                               lambda x: x[1.0], lambda x: x[np.array([1.0])], lambda x: x["a"],
                               lambda x: np.take(x, [4]), lambda x: np.take(x, [20]),
                               lambda x: np.take_along_axis(x, np.array([[9]]), axis=0),
                               lambda x: np.take_along_axis(x, np.array([1]), axis=0)],
                         ids=["int", "neg-int", "axis1", "array", "list", "too-many", "two-ellipses",
                              "shapes", "zero-step", "float", "float-array", "str", "take-flat-ok", "take",
                              "take-along", "take-along-rank"])
def test_indexing_rejects_what_numpy_rejects(f):
    x = arr((4, 5), "float32")
    if not numpy_raises(f, x):
        check(f, x)
        return
    # NumPy raises IndexError; vmapc's indexing errors are ShapeErrors (ValueError) or TracingErrors
    check_raises(f, x, same_builtin=False)


def test_dynamic_slice():
    """vmapc.numpy.dynamic_slice: a static-size window at traced starts, clamped so that
    it stays inside the array (lax.dynamic_slice semantics)."""
    x = arr((5, 6), "int32")
    for s0, s1 in [(0, 0), (1, 2), (3, 4), (4, 5), (-3, 2), (100, -100)]:
        fn, got = run_vmapc(lambda x, a, b: vnp.dynamic_slice(x, (a, b), (2, 3)), x, np.int64(s0), np.int16(s1))
        a, b = min(max(s0, 0), 3), min(max(s1, 0), 3)
        assert_same(got, x[a:a + 2, b:b + 3])
        fn, got = run_vmapc(lambda x, a: vnp.dynamic_slice(x, [a, 1], [5, 0]), x, np.int64(s0))
        assert_same(got, x[:, 1:1])
        assert_same(vnp.dynamic_slice(x, (s0, s1), (2, 3)), x[a:a + 2, b:b + 3])
    with pytest.raises(VmapcError):
        vmapc.trace(lambda x: vnp.dynamic_slice(x, (0,), (2,)), x)
    with pytest.raises(VmapcError):
        vmapc.trace(lambda x: vnp.dynamic_slice(x, (0, 0), (6, 1)), x)
    with pytest.raises(VmapcError):
        vmapc.trace(lambda x, i: vnp.dynamic_slice(x, (i, 0), (1, 1)), x, np.float32(0))


# --- where, clip, astype, round --------------------------------------------------------------

for _d in ALL:
    case(f"where-{_d}", lambda c, x, y: np.where(c, x, y), arr((2, 1, 3), "bool"), arr((4, 1), _d), arr((3,), "int8"))
    case(f"where-nonbool-cond-{_d}", lambda c, x: np.where(c, x, -x if x.dtype != np.bool_ else x), arr((2, 3), _d),
         arr((2, 3), "float32"))
    case(f"where-weak-{_d}", lambda c, x: (np.where(c, x, 0), np.where(c, 1.5, x), np.where(c, True, x)),
         arr((2, 3), "bool"), arr((2, 3), _d))
    case(f"where-strong-{_d}", lambda c, x: np.where(c, x, np.float16(2)), arr((2, 3), "bool"), arr((2, 3), _d))
    for _dd in ALL:
        _x = arr((2, 3), _d, 0, 5) if _d in UNSIGNED or _dd in UNSIGNED else arr((2, 3), _d)
        case(f"astype-{_d}-{_dd}", (lambda dd: lambda x: x.astype(dd))(_dd), _x)
def test_where_with_two_arguments():
    check_raises(lambda c, x: np.where(c, x), arr((3,), "bool"), arr((3,), "float32"))


def test_vmapc_numpy_on_concrete_arrays_is_numpy():
    """Without a tracer among the arguments, vmapc.numpy functions are NumPy's."""
    x, y, m = arr((3, 4), "float32"), arr((4,), "int8"), arr((3, 4), "bool")
    for name, args, kwargs in [("sum", (x,), {"axis": 1}), ("mean", (y,), {}), ("where", (m, x, y), {}),
                               ("where", (m,), {}), ("einsum", ("ij,j->i", x, y), {}), ("take", (x, [0, 2]), {"axis": 1}),
                               ("concatenate", ([x, x],), {}), ("pad", (x, 1), {}), ("round", (x, 1), {}),
                               ("isclose", (x, x), {}), ("clip", (x, 0, 1), {}), ("exp", (y,), {}), ("add", (x, 2.5), {}),
                               ("matmul", (x, y), {}), ("reshape", (x, (2, 6)), {}), ("var", (y,), {"ddof": 1}),
                               ("argmax", (x,), {"axis": 0}), ("split", (x, 2, 1), {}), ("array_split", (x, 3, 1), {}),
                               ("roll", (x, 2), {}), ("tile", (y, 2), {}), ("repeat", (y, 2), {}), ("astype", (x, np.int8), {})]:
        got, want = getattr(vnp, name)(*args, **kwargs), getattr(np, name)(*args, **kwargs)
        for g, w in zip(pytree.flatten(got)[0], pytree.flatten(want)[0]):
            assert_same(g, w, what=name)
    assert_same(vnp.linalg.norm(x, axis=0), np.linalg.norm(x, axis=0))


case("where-0d", lambda c, x, y: np.where(c, x, y), np.bool_(True), arr((), "float32"), arr((), "float64"))
case("where-python-scalars", lambda c: np.where(c, 1, 2.5), arr((3,), "bool"))
case("where-uint-wrap", lambda c, x: np.where(c, x, -1), arr((3,), "bool"), arr((3,), "uint8"))
case("where-traced-scalars", lambda c, s, t: np.where(c, s, t), arr((3,), "bool"), 2, 2.5)
case("astype-float-to-int-truncates", lambda x: (x.astype(np.int32), x.astype(np.int8), x.astype(np.uint8),
                                                x.astype(bool)),
     np.array([0.0, -0.0, 0.5, -0.5, 1.9, -1.9, 100.7, 3.0, np.nan], np.float32)[:8])
case("astype-nan-inf-to-bool", lambda x: x.astype(bool), np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]))
case("astype-int-wrap", lambda x: (x.astype(np.int8), x.astype(np.uint8), x.astype(np.uint16)),
     np.array([-129, 128, 255, 256, -1, 70000], np.int64))
case("astype-big-float16", lambda x: x.astype(np.float16), np.array([1e5, -1e5, 65504.0, 1e-8], np.float64))
case("np-astype", lambda x: np.astype(x, np.int16), arr((3,), "float32"))

CLIP = {
    "scalars": lambda x: np.clip(x, -1, 2), "arrays": lambda x: np.clip(x, x[:1], x[1:2] + 3),
    "lo-none": lambda x: np.clip(x, None, 1), "hi-none": lambda x: np.clip(x, 0, None),
    "kw": lambda x: np.clip(x, min=0, max=3), "kw-min": lambda x: np.clip(x, min=1),
    "crossed": lambda x: np.clip(x, 3, 1), "float-bounds": lambda x: np.clip(x, 0.5, 2.5),
    "strong-bound": lambda x: np.clip(x, np.float64(0), 2), "method": lambda x: x.clip(1, None),
    "method-kw": lambda x: x.clip(max=2), "out-of-range-int": lambda x: np.clip(x, -1000, 1000),
    "uint-negative-lo": lambda x: np.clip(x, -1, 3),
}
for _name, _f in CLIP.items():
    for _d in ("int8", "uint8", "int64", "float16", "float32", "bool"):
        _x = arr((3, 4), _d)
        if not numpy_raises(_f, _x):
            case(f"clip-{_name}-{_d}", _f, _x)
case("clip-traced-bounds", lambda x, lo, hi: np.clip(x, lo, hi), arr((3, 4), "float32"), arr((4,), "float32"), 1.0)
case("clip-nan", lambda x: np.clip(x, -1, 1), np.array([np.nan, 2.0, -2.0, 0.5]))

for _d in ("float16", "float32", "float64", "int8", "uint8", "int64", "bool"):
    for _dec in (0, 1, 2, -1, -2):
        _x = arr((3, 4), _d) * (10 if _d.startswith("float") else 1) if _d != "bool" else arr((3, 4), _d)
        _f = (lambda k: lambda x: (np.round(x, k), x.round(k), np.around(x, k)))(_dec)
        if not numpy_raises(_f, _x):
            case(f"round-{_d}-{_dec}", _f, _x)
case("round-half-even", lambda x: (np.round(x), np.rint(x), np.round(x * 10, -1), np.round(x / 10, 1)),
     np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.675, 15.0, 25.0]))
case("round-int-negative-decimals", lambda x: np.round(x, -1), np.array([15, 25, -15, 5, -25, 127, -128], np.int8))

# --- creation inside traced code ------------------------------------------------------------

for _d in ("float32", "int8", "bool", "uint64"):
    case(f"zeros_like-{_d}", lambda x: np.zeros_like(x) + x, arr((2, 3), _d))
    case(f"ones_like-{_d}", lambda x: (np.ones_like(x), np.ones_like(x, dtype=np.float16)), arr((2, 3), _d))
    case(f"full_like-{_d}", lambda x: (np.full_like(x, 7), np.full_like(x, 2.5, dtype=np.float64),
                                       np.full_like(x, 1, shape=(4,))), arr((2, 3), _d))
    case(f"full_like-traced-{_d}", lambda x, v: np.full_like(x, v), arr((2, 3), _d), arr((), "float64"))
    case(f"zeros_like-shape-{_d}", lambda x: np.zeros_like(x, shape=(3, 1)), arr((2, 3), _d))
    case(f"creation-{_d}", lambda x: (np.zeros(x.shape, x.dtype) + x, np.ones((3,)) * x[0, 0], np.arange(3) + x[0],
                                      np.eye(3)[:2] * x, np.linspace(0, 1, 3) * x, np.full((2, 3), 2) * x,
                                      np.identity(3)[1:] * x,
                                      np.arange(1, 7).reshape(2, 3) * x), arr((2, 3), _d))
case("creation-captured-large", (lambda t: lambda x: x + t)(np.arange(100.0).reshape(10, 10)), arr((10, 10), "float64"))


def test_empty_like_has_the_right_type():
    """empty_like's values are undefined in NumPy; only its shape and dtype are compared."""
    x = arr((2, 3), "int16")
    for f in (lambda x: np.empty_like(x), lambda x: np.empty_like(x, dtype=np.float32), lambda x: np.empty(x.shape)):
        fn, got = run_vmapc(f, x)
        want = f(x)
        assert (got.shape, got.dtype) == (want.shape, want.dtype)


# --- NumPy's writing functions, on arrays the function makes (tests/test_writes.py: the rest) ----

def _writes(x, v, i):
    y, z, w = x.copy(), np.zeros_like(x), np.ones(x.shape, x.dtype)
    np.put(y, [0, -1, 3, 0], v[:2])                      # repeated: the last wins; v repeated
    np.putmask(z, x > x.flat[2], v)                      # values cycle by position
    np.place(w, np.arange(x.size).reshape(x.shape) % 3 == 0, v[:3])   # a static mask
    w.flat[[1, 2]] = v[0]
    w.flat[-1] += v[1]
    c = np.empty_like(x)
    np.copyto(c, x)
    np.copyto(c, v[0], where=x > x.flat[4])
    d = np.zeros((x.shape[0], x.shape[0]), x.dtype)
    np.fill_diagonal(d, v[1])
    f = np.zeros((5, 2), x.dtype)
    np.fill_diagonal(f, v[:2], wrap=True)
    e = x.copy()
    e.fill(v[2])
    np.put(y, i, v[3], mode="clip")
    return y, z, w, c, d, f, e


for _d in ("float32", "int16", "bool", "uint8"):
    case(f"writes-{_d}", _writes, arr((3, 4), _d), arr((4,), _d), np.array([7, -20, 2]))
    case(f"ufunc-outer-{_d}", lambda x, y: (np.add.outer(x, y), np.maximum.outer(y, x[0]), np.equal.outer(x, [1, 0])),
         arr((2, 3), _d), arr((4,), _d))


@pytest.mark.parametrize("f", [lambda x: np.copyto(x.copy(), x.astype(np.float64) * 1.5),
                               lambda x: np.put(x.copy(), [12], 1),
                               lambda x: np.fill_diagonal(x.copy()[0], 1),
                               lambda x: np.putmask(x.copy(), np.ones(3, bool), 1)],
                         ids=["copyto-cast", "put-range", "fill_diagonal-1d", "putmask-shape"])
def test_writing_functions_reject_what_numpy_rejects(f):
    check_raises(f, arr((3, 4), "int32"))


# --- norms, isclose, nan_to_num, the extensions ---------------------------------------------

NORMS = {
    "default": lambda x: np.linalg.norm(x), "keepdims": lambda x: np.linalg.norm(x, keepdims=True),
    "axis0": lambda x: np.linalg.norm(x, axis=0), "axis-neg": lambda x: np.linalg.norm(x, axis=-1, keepdims=True),
    "ord1": lambda x: np.linalg.norm(x, 1, axis=1), "ord-inf": lambda x: np.linalg.norm(x, np.inf, axis=0),
    "ord-neginf": lambda x: np.linalg.norm(x, -np.inf, axis=1), "ord0": lambda x: np.linalg.norm(x, 0, axis=1),
    "ord3": lambda x: np.linalg.norm(x, 3, axis=1), "ord-half": lambda x: np.linalg.norm(x, 0.5, axis=0),
    "ord-neg1": lambda x: np.linalg.norm(x, -1, axis=1), "ord2-vec": lambda x: np.linalg.norm(x[0], 2),
    "vec-ord1": lambda x: np.linalg.norm(x[0], 1), "vec-ord-inf": lambda x: np.linalg.norm(x[0], np.inf),
    "fro": lambda x: np.linalg.norm(x, "fro"), "fro-axes": lambda x: np.linalg.norm(x, "fro", axis=(1, 0)),
    "mat-ord1": lambda x: np.linalg.norm(x, 1), "mat-ord-inf": lambda x: np.linalg.norm(x, np.inf),
    "mat-ord-neg1": lambda x: np.linalg.norm(x, -1), "mat-ord-neginf": lambda x: np.linalg.norm(x, -np.inf),
    "mat-axes": lambda x: np.linalg.norm(x, 1, axis=(1, 0), keepdims=True),
    "mat-3d": lambda x: np.linalg.norm(x.reshape(1, 3, 4), np.inf, axis=(2, 1)),
    "3d-default": lambda x: np.linalg.norm(x.reshape(2, 2, 3)),
}
for _name, _f in NORMS.items():
    for _d in ("float32", "float64", "float16", "int8"):
        case(f"norm-{_name}-{_d}", _f, arr((3, 4), _d))


# --- np.linalg: solves, inverses, determinants, factorizations (tests/test_linalg.py: accuracy) ---

def _well_conditioned(shape, d):
    """Random matrices made diagonally dominant (condition numbers of a few units)."""
    x = arr(shape, "float64")
    n = shape[-1]
    return np.asarray(x + 4 * n * np.eye(n) * np.sign(np.diagonal(x, axis1=-2, axis2=-1))[..., None], d)


def _spd(shape, d):
    x = arr(shape, "float64")
    return np.asarray(x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1]), d)


for _d in ("float32",):        # float64: the cases below, and tests/test_linalg.py (compiles are costly)
    _a = _well_conditioned((3, 3), _d)
    case(f"linalg-solve-{_d}", lambda a, b: np.linalg.solve(a, b), _a, arr((3,), _d))
    case(f"linalg-inv-det-slogdet-{_d}", lambda a: (np.linalg.inv(a), np.linalg.det(a), np.linalg.slogdet(a)), _a)
    case(f"linalg-cholesky-{_d}", lambda a: np.linalg.cholesky(a), _spd((3, 3), _d))
    case(f"linalg-qr-{_d}", lambda a: np.linalg.qr(a), arr((3, 3), _d))
case("linalg-solve-stacked-broadcast", lambda a, b: np.linalg.solve(a, b), _well_conditioned((2, 1, 2, 2), "float64"),
     arr((3, 2, 2), "float64"))
case("linalg-solve-mixed-dtypes", lambda a, b: np.linalg.solve(a, b), _well_conditioned((2, 2), "float32"),
     arr((2,), "int32"))
case("linalg-cholesky-qr-float64", lambda a, s: (np.linalg.cholesky(s), np.linalg.qr(a)), arr((3, 3), "float64"),
     _spd((3, 3), "float64"))
case("linalg-solve-int", lambda a, b: np.linalg.solve(a, b), np.array([[4, 1, 0], [1, -5, 2], [0, 2, 6]], np.int32),
     arr((3, 2), "int64"))
case("linalg-inv-stacked", lambda a: np.linalg.inv(a), _well_conditioned((2, 3, 2, 2), "float64"))
case("linalg-inv-1x1", lambda a: np.linalg.inv(a), np.array([[4.0]]))
case("linalg-det-int-bool", lambda a, b: (np.linalg.det(a), np.linalg.det(b)),
     np.array([[0, 2, 1], [3, 1, 4], [1, 0, 2]], np.int16), np.array([[True, False], [True, True]]))
case("linalg-det-singular", lambda a: np.linalg.det(a), np.array([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [1.0, 3.0]]]))
case("linalg-det-slogdet-empty", lambda a: (np.linalg.det(a), np.linalg.slogdet(a)), np.zeros((2, 0, 0), np.float32))
case("linalg-slogdet-signs", lambda a: np.linalg.slogdet(a),
     np.array([[[0.0, 1.0], [1.0, 0.0]], [[-2.0, 0.0], [0.0, 3.0]], [[1.0, 2.0], [2.0, 4.0]], [[1e-200, 0], [0, 1e-200]]]))
case("linalg-cholesky-stacked-upper", lambda a: np.linalg.cholesky(a, upper=True), _spd((2, 2, 2), "float64"))
case("linalg-cholesky-reads-lower", lambda a: np.linalg.cholesky(np.tril(a) + 7 * np.triu(a, 1)), _spd((3, 3), "float64"))
case("linalg-qr-complete-tall", lambda a: np.linalg.qr(a, "complete"), arr((3, 2), "float64"))
case("linalg-qr-reduced-wide", lambda a: np.linalg.qr(a), arr((2, 3), "float64"))
case("linalg-qr-r-stacked-int", lambda a: np.linalg.qr(a, "r"), arr((2, 3, 2), "int32"))
_T3 = _well_conditioned((3, 3), "float64")
case("linalg-solve-triangular", lambda a, b: (vnp.linalg.solve_triangular(a, b), vnp.linalg.solve_triangular(a, b, lower=True),
                                              vnp.linalg.solve_triangular(a, b, trans="T"),
                                              vnp.linalg.solve_triangular(a, b, trans=1, lower=True, unit_diagonal=True)),
     _T3, arr((3, 2), "float64"))
case("linalg-eigvalsh-float64", lambda a: np.linalg.eigvalsh(a), arr((4, 4), "float64"))
case("linalg-norm-2-float32", lambda a: (np.linalg.norm(a, 2), np.linalg.norm(a, 2, axis=(0, 1), keepdims=True)),
     arr((3, 4), "float32"))
case("linalg-eigvalsh-upper-stacked", lambda a: np.linalg.eigvalsh(a, "U"), arr((2, 3, 3), "float64"))
case("linalg-norm-2-wide-3d", lambda a: np.linalg.norm(a, 2, axis=(2, 0)), arr((2, 3, 4), "float64"))
case("linalg-solve-triangular-vector", lambda a, b: vnp.linalg.solve_triangular(a, b, trans="C", lower=True),
     _T3, arr((3,), "float64"))
case("linalg-solve-triangular-stacked-f32", lambda a, b: vnp.linalg.solve_triangular(a, b, lower=True),
     _well_conditioned((2, 3, 3), "float32"), arr((2, 3, 1), "float32"))



# svd: the singular vectors' signs are LAPACK's choice, so the cases return what does not
# depend on them (the values, the reconstruction, U^T U and V V^T; tests/test_linalg.py checks
# accuracy)
def _svd_invariants(a, full_matrices=True):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    k = s.shape[-1]
    return (s, (u[..., :k] * s[..., None, :]) @ vh[..., :k, :], np.swapaxes(u, -1, -2) @ u,
            vh @ np.swapaxes(vh, -1, -2))


case("linalg-svd-values-float32", lambda a: np.linalg.svd(a, compute_uv=False), arr((3, 3), "float32"))
case("linalg-svd-square-float32", _svd_invariants, arr((3, 3), "float32"), atol=1e-5)
case("linalg-svd-tall-full", _svd_invariants, arr((4, 2), "float64"), atol=1e-12)
case("linalg-svd-wide-reduced-stacked", lambda a: _svd_invariants(a, False), arr((2, 2, 3), "float64"), atol=1e-12)
case("linalg-svd-int-rank-deficient", _svd_invariants, np.array([[1, 2, 3], [2, 4, 6], [0, 0, 0]], np.int32),
     atol=1e-12)
case("linalg-svd-empty", lambda a, b: (np.linalg.svd(a), np.linalg.svd(b, full_matrices=False), np.linalg.svd(b, compute_uv=False)),
     np.zeros((2, 0), np.float32), np.zeros((3, 0, 4)))
case("linalg-svd-hermitian-reads-lower", lambda a: np.linalg.svd(np.tril(a) + 5 * np.triu(a, 1), compute_uv=False, hermitian=True),
     _spd((3, 3), "float64") - 4 * np.eye(3))
case("linalg-norm-svd-orders", lambda a: (np.linalg.norm(a, -2), np.linalg.norm(a, "nuc"),
                                          np.linalg.norm(a, "nuc", axis=(1, 0), keepdims=True)), arr((3, 4), "float64"))
case("linalg-norm-svd-orders-3d-float32", lambda a: np.linalg.norm(a, -2, axis=(0, 2)), arr((2, 3, 4), "float32"))
case("linalg-pinv", lambda a, b: (np.linalg.pinv(a), np.linalg.pinv(b, rtol=None),
                                  np.linalg.pinv(b, rcond=0.3)),
     arr((3, 2), "float64"), np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]), atol=1e-12)
case("linalg-pinv-stacked-float32-empty", lambda a, b: (np.linalg.pinv(a), np.linalg.pinv(b)), arr((2, 2, 3), "float32"),
     np.zeros((2, 0, 3), np.float32), atol=1e-5)
case("linalg-matrix-rank", lambda a, b, v: (np.linalg.matrix_rank(a), np.linalg.matrix_rank(b, tol=0.5),
                                            np.linalg.matrix_rank(b, rtol=0.1), np.linalg.matrix_rank(v),
                                            np.linalg.matrix_rank(0 * v)),
     arr((2, 3, 4), "float32"), np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]), arr((3,), "float64"))
case("linalg-cond", lambda a: (np.linalg.cond(a), np.linalg.cond(a, "fro"), np.linalg.cond(a, 1), np.linalg.cond(a, -np.inf)),
     _well_conditioned((3, 3), "float64"))
case("linalg-cond-singular-rectangular", lambda a, b: (np.linalg.cond(a, 1), np.linalg.cond(b, -2)),
     np.array([[1.0, 2.0], [2.0, 4.0]]), arr((2, 3, 2), "float32"))

@pytest.mark.parametrize("f, args", [
    (lambda a: np.linalg.inv(a), [arr((2, 3), "float64")]),
    (lambda a: np.linalg.det(a), [arr((3,), "float64")]),
    (lambda a: np.linalg.inv(a), [arr((2, 2), "float16")]),
    (lambda a: np.linalg.cholesky(a), [arr((2, 3), "float32")]),
    (lambda a, b: np.linalg.solve(a, b), [arr((2, 2), "float64"), arr((3,), "float64")]),
    (lambda a, b: np.linalg.solve(a, b), [arr((2, 2, 2), "float64"), arr((3, 2, 1), "float64")]),
    (lambda a: np.linalg.qr(a, "bad"), [arr((2, 2), "float64")]),
    (lambda a: np.linalg.slogdet(a), [arr((2, 3, 2), "float64")]),
], ids=["inv-not-square", "det-1d", "inv-float16", "cholesky-not-square", "solve-mismatch", "solve-stacks",
        "qr-mode", "slogdet-not-square"])
def test_linalg_rejects_what_numpy_rejects(f, args):
    check_raises(f, *args)


def test_linalg_unsupported_and_solve_triangular_errors():
    with pytest.raises(UnsupportedError, match="raw"):
        vmapc.trace(lambda a: np.linalg.qr(a, "raw"), arr((2, 2), "float64"))
    with pytest.raises(VmapcError, match="trans"):
        vmapc.trace(lambda a, b: vnp.linalg.solve_triangular(a, b, trans=3), arr((2, 2), "float64"), arr((2,), "float64"))
    with pytest.raises(VmapcError, match="incompatible"):
        vmapc.trace(lambda a, b: vnp.linalg.solve_triangular(a, b), arr((2, 2), "float64"), arr((3,), "float64"))


@pytest.mark.parametrize("f, args", [
    (lambda a: np.linalg.svd(a), [arr((3,), "float64")]),
    (lambda a: np.linalg.svd(a), [arr((2, 2), "float16")]),
    (lambda a: np.linalg.pinv(a, rcond=0.1, rtol=0.1), [arr((2, 2), "float64")]),
    (lambda a: np.linalg.matrix_rank(a, tol=0.1, rtol=0.1), [arr((2, 2), "float64")]),
    (lambda a: np.linalg.cond(a, 1), [arr((2, 3), "float64")]),
    (lambda a: np.linalg.cond(a), [arr((0, 0), "float64")]),
], ids=["svd-1d", "svd-float16", "pinv-rcond-rtol", "rank-tol-rtol", "cond-1-not-square", "cond-empty"])
def test_svd_functions_reject_what_numpy_rejects(f, args):
    check_raises(f, *args)


@pytest.mark.parametrize("f", [lambda x: np.linalg.norm(x, "fro", axis=0), lambda x: np.linalg.norm(x, 3),
                               lambda x: np.linalg.norm(x, axis=(0, 0)), lambda x: np.linalg.norm(x, 1, axis=(0, 1, 2)),
                               lambda x: np.linalg.norm(x, 1)], ids=["fro-vec", "mat-ord3", "dup", "3axes", "3d-ord"])
def test_norm_rejects_what_numpy_rejects(f):
    check_raises(f, arr((2, 3, 4), "float32"))


_CLOSE = np.array([1.0, 1.0 + 1e-6, 1.0 + 1e-4, np.inf, -np.inf, np.nan, 0.0, 1e-9, -1e-7, 1e10])
case("isclose", lambda a, b: np.isclose(a, b), _CLOSE[:, None], _CLOSE[None, :])
case("isclose-f32", lambda a, b: np.isclose(a, b), _CLOSE[:, None].astype(np.float32), _CLOSE[None, :].astype(np.float32))
with np.errstate(over="ignore"):
    case("isclose-f16-f64", lambda a, b: np.isclose(a, b), _CLOSE[:, None].astype(np.float16), _CLOSE[None, :])
case("isclose-tol", lambda a, b: np.isclose(a, b, rtol=1e-3, atol=0.1, equal_nan=True), _CLOSE[:, None], _CLOSE[None, :])
case("isclose-int", lambda a, b: np.isclose(a, b), arr((5,), "int8"), arr((5,), "int8"))
case("isclose-int-min", lambda a, b: np.isclose(a, b), np.array([-128, 127], np.int8), np.array([-128, -128], np.int8))
case("isclose-scalar", lambda a: (np.isclose(a, 1), np.isclose(a, 1.0), np.isclose(1.0, a)), _CLOSE.astype(np.float32))
case("isclose-bool", lambda a, b: np.isclose(a, b), arr((4,), "bool"), arr((4,), "bool"))
case("allclose", lambda a, b: (np.allclose(a, b), np.allclose(a, a), np.allclose(a, a + 1e-9)), _CLOSE, _CLOSE[::-1])
case("allclose-nan", lambda a: (np.allclose(a, a), np.allclose(a, a, equal_nan=True)), _CLOSE)

_NAN = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0])
for _d in FLOATS:
    case(f"nan_to_num-{_d}", lambda x: (np.nan_to_num(x), np.nan_to_num(x, nan=-1.0, posinf=9, neginf=-9.5)),
         _NAN.astype(_d))
for _d in ("int8", "bool"):
    case(f"nan_to_num-{_d}", lambda x: np.nan_to_num(x), arr((3,), _d))


@pytest.mark.parametrize("d", ["float16", "float32", "float64", "int8", "uint8", "bool"])
def test_extensions_sigmoid_erf_rsqrt(d):
    """vmapc's extensions against NumPy formulas: the dtype is NumPy's for a unary float
    function (float16 for int8, as np.sqrt), the value the mathematical one."""
    x = arr((20,), d) if d != "uint8" else arr((20,), d, 1, 10)
    if d.startswith("float"):
        x[:4] = np.array([0.0, -0.0, 30.0, -30.0])
    want_dtype = np.sqrt(x[:0]).dtype
    xf = x.astype(np.float64)
    with np.errstate(all="ignore"):
        wants = [1 / (1 + np.exp(-xf)), np.vectorize(math.erf)(xf), 1 / np.sqrt(xf)]
    for f, want in zip([vnp.sigmoid, vnp.erf, vnp.rsqrt], wants):
        with np.errstate(all="ignore"):
            want = want.astype(want_dtype)
        fn, got = run_vmapc(lambda x: f(x), x)
        assert_same(got, want, what=f.__name__)
        with np.errstate(all="ignore"):
            concrete = f(x)
        assert_same(concrete, want, what=f"{f.__name__} on a NumPy array")


def test_vnp_asarray_stacks_lists_of_tracers():
    """np.asarray(tracer) cannot be intercepted (see test_tracing); vmapc.numpy.asarray and
    array can, and build arrays from lists of tracers as NumPy would from numbers."""
    x = arr((3,), "float32")
    for f, want in [(lambda x: vnp.asarray([x[0], x[2]]), np.asarray([x[0], x[2]])),
                    (lambda x: vnp.array([[x[0], x[1]], [x[2], x[0]]]), np.array([[x[0], x[1]], [x[2], x[0]]])),
                    (lambda x: vnp.asarray(x, dtype=np.int16), np.asarray(x, dtype=np.int16)),
                    (lambda x: vnp.asarray([x[0], 1]), np.asarray([x[0], 1])),
                    (lambda x: vnp.asarray((x, x)), np.asarray((x, x)))]:
        fn, got = run_vmapc(f, x)
        assert_same(got, want)


# --- sorting, scans, diagonals, statistics (issue 16) ----------------------------------------


def ties(shape, dtype, nan=True):
    """Few distinct values, so that sorts meet ties; floats get NaNs, -0.0 and 0.0 too."""
    d = np.dtype(dtype)
    if d == np.bool_:
        return arr(shape, d)
    x = np.asarray(_rng.integers(0 if d.kind == "u" else -2, 3, shape), dtype=d)
    if d.kind == "f":
        if nan:
            x = np.where(_rng.random(shape) < 0.2, np.nan, x).astype(d)
        x = np.where(x == 0, np.where(_rng.random(shape) < 0.5, -0.0, 0.0), x).astype(d)
    return x


# vmapc's sorts are stable: compared with NumPy's stable kind (its default kind may order
# equal elements differently; the sorted values agree whatever the kind)
for _i, _d in enumerate(ALL):
    _x = ties((3, 7), _d)
    case(f"sort-{_d}", lambda x: (np.sort(x, kind="stable"), np.argsort(x, axis=0, stable=True),
                                  np.argsort(x, axis=None, kind="stable")), _x)
case("sort-nan-inf-zeros", lambda x: (np.sort(x, kind="stable"), np.argsort(x, kind="stable"), np.argsort(x[::-1], kind="stable")),
     np.array([np.nan, 1.0, -np.inf, -0.0, np.inf, 0.0, np.nan, -1.0, 0.0, -0.0], np.float32))
case("sort-int-extremes", lambda x: (np.sort(x), np.argsort(x, kind="stable")),
     np.array([0, -2 ** 31, 2 ** 31 - 1, -1, 1, -2 ** 31], np.int32))
case("sort-uint-extremes", lambda x: (np.sort(x), np.argsort(x, kind="stable")),
     np.array([2 ** 32 - 1, 0, 2 ** 31, 2 ** 31 - 1, 1], np.uint32))
case("sort-int64-uint64", lambda x, y: (np.sort(x), np.argsort(x, kind="stable"), np.sort(y)),
     np.array([2 ** 62, -2 ** 63, 5, 5, -1], np.int64), np.array([2 ** 64 - 1, 0, 2 ** 63, 1], np.uint64))
case("sort-long-axis", lambda x: (np.sort(x, kind="stable"), np.argsort(x, kind="stable")), ties((2, 37), "float32"))
case("sort-empty-and-short", lambda a, b, c: (np.sort(a, axis=0), np.argsort(a), np.sort(b), np.argsort(c)),
     arr((0, 3), "float32"), arr((3, 0), "int8"), arr((4, 1), "float64"))
case("sort-default-kind-distinct", lambda x: (np.argsort(x), np.argsort(x, kind="quicksort"), np.argsort(-x, axis=0)),
     np.random.default_rng(3).permutation(12).reshape(3, 4).astype(np.float32))
case("sort-3d-axes", lambda x: (np.sort(x, axis=1, kind="stable"), np.argsort(x, axis=-3, kind="stable"),
                                np.sort(x, axis=-2, kind="stable")), ties((2, 3, 5), "int16"))
case("lexsort", lambda a, b: (np.lexsort((a, b)), np.lexsort((b, a, b)), np.lexsort(np.stack([a, b]))),
     ties((9,), "float32"), ties((9,), "int8"))
case("lexsort-axis", lambda a, b: np.lexsort((a, b), axis=0), ties((5, 3), "int32"), ties((5, 3), "uint8"))
# NumPy's partition leaves each side in an order of its own; compared: the kth elements, and
# the sides' contents (+ 0: -0.0 and 0.0 are equal to a sort, so which of them lands where is
# not specified)
case("partition", lambda x: tuple(r + np.float32(0) for r in (
    np.partition(x, 3)[..., 3], np.partition(x, -1, axis=0)[-1],
    np.sort(np.partition(x, (1, 4)), axis=-1, kind="stable"), np.partition(x, 2, axis=None)[2])),
     ties((3, 6), "float32"))
case("argpartition", lambda x: (np.take_along_axis(x, np.argpartition(x, 2), -1)[..., 2],
                                np.take_along_axis(x, np.argpartition(x, (0, 3), axis=0), 0)[[0, 3]]),
     ties((4, 5), "int32"))


@pytest.mark.parametrize("d", ["float32", "int8", "uint16", "float16"])
def test_partition_is_a_partition(d):
    """Every element before kth is <= x[kth] and every one after is >= it (NaN last)."""
    x = ties((4, 9), d)
    for k in (0, 4, 8, -2):
        fn, (p, ip) = run_vmapc(lambda x: (np.partition(x, k), np.argpartition(x, k)), x)
        kth = np.sort(x, axis=-1, kind="stable")[:, k]
        assert_same(p[:, k], kth)
        assert_same(np.take_along_axis(x, ip, -1), p)
        assert_same(np.sort(p, axis=-1, kind="stable"), np.sort(x, axis=-1, kind="stable"), signed_zeros=False)
        k_ = k % x.shape[-1]
        for row, v in zip(p, kth):
            if not np.isnan(v):
                after = row[k_ + 1:]
                assert (row[:k_] <= v).all() and ((after >= v) | np.isnan(after)).all(), (row, k)


@pytest.mark.parametrize("d", ALL)
def test_top_k(d):
    """vmapc.numpy.top_k: the k largest along an axis, largest first, equal values in order of
    position, NaN largest; against a stable sort of the reversed order, and on concrete arrays."""
    x = ties((3, 8), d)
    for k, axis in ((3, -1), (8, 1), (0, -1), (2, 0)):
        moved = np.moveaxis(x, axis, -1)
        order = np.argsort(moved[..., ::-1], axis=-1, kind="stable")[..., ::-1]
        idx = (moved.shape[-1] - 1 - order)[..., :k]
        want = (np.moveaxis(np.take_along_axis(moved, idx, -1), -1, axis), np.moveaxis(idx, -1, axis))
        fn, got = run_vmapc(lambda x: vnp.top_k(x, k, axis=axis), x)
        for g, w, c in zip(got, want, vnp.top_k(x, k, axis=axis)):
            assert_same(g, w)
            assert_same(c, w)
        if d in ("float32", "float16") and k and axis == -1:   # NaN counts as the largest
            assert (np.isnan(got[0][:, 0]) == np.isnan(x).any(axis=-1)).all()


def test_top_k_rejects_bad_k():
    with pytest.raises(vmapc.errors.ShapeError, match="k=9"):
        vmapc.trace(lambda x: vnp.top_k(x, 9), arr((2, 8), "float32"))
    with pytest.raises(vmapc.errors.TracingError, match="static"):
        vmapc.trace(lambda x, k: vnp.top_k(x, k), arr((2, 8), "float32"), np.int64(2))
    with pytest.raises(vmapc.errors.DTypeError, match="int"):
        vnp.top_k(arr((8,), "float32"), 2.0)


for _d in ALL:
    _x = arr((3, 4), _d)
    case(f"cumsum-{_d}", lambda x: (np.cumsum(x), np.cumsum(x, axis=0), np.cumsum(x, axis=-1, dtype=np.float64),
                                    x.cumsum(1)), _x)
    case(f"cumprod-{_d}", lambda x: (np.cumprod(x, axis=1), np.cumprod(x[:, :3], axis=0), x.cumprod()), _x)
    case(f"accumulate-{_d}", lambda x: (np.maximum.accumulate(x, axis=1), np.minimum.accumulate(x),
                                        np.add.accumulate(x, axis=-1), np.logical_or.accumulate(x, axis=1),
                                        np.multiply.accumulate(x[:, :2], axis=1, dtype=np.float32)), _x)
    if _d != "bool":
        case(f"diff-{_d}", lambda x: (np.diff(x), np.diff(x, n=2, axis=0), np.diff(x, 0), np.diff(x, n=5)), _x)
case("cumsum-float-order", lambda x: (np.cumsum(x), np.cumsum(x[::-1])), np.array([1e8, 1.0, -1e8, 1.0, 3.5], np.float32))
case("cummax-nan", lambda x: (np.maximum.accumulate(x), np.minimum.accumulate(x), np.fmax.reduce(x) if False else
                              np.cumsum(x)), np.array([1.0, np.nan, 3.0, -1.0], np.float64))
case("cumsum-0d-and-empty", lambda a, b: (np.cumsum(a), np.cumprod(b, axis=1), np.cumsum(b)), arr((), "int8"),
     arr((2, 0), "float32"))
case("cumulative_sum", lambda x: (np.cumulative_sum(x, axis=1), np.cumulative_sum(x, axis=0, include_initial=True),
                                  np.cumulative_prod(x[0], include_initial=True),
                                  np.cumulative_prod(x, axis=-1, dtype=np.int8)), arr((3, 4), "int16"))
case("diff-bool-prepend-append", lambda x, y: (np.diff(x), np.diff(y, prepend=0, append=[[9], [8]]),
                                               np.diff(y, axis=0, prepend=y[:1]), np.diff(y.astype(np.uint8))),
     arr((5,), "bool"), arr((2, 4), "int32"))
case("ufunc-outer", lambda a, b: (np.add.outer(a, b), np.multiply.outer(a, b[0]), np.maximum.outer(b, a),
                                  np.less.outer(a, 2.5), np.arctan2.outer(a[:2], b), np.hypot.outer(a, a)),
     arr((3,), "float32"), arr((2, 2), "float64"))
case("ufunc-reduce-initial", lambda x: (np.add.reduce(x, initial=3), np.maximum.reduce(x, axis=1, initial=1),
                                        np.minimum.reduce(x[:, :0], axis=1, initial=5),
                                        np.multiply.reduce(x, axis=None, dtype=np.float64), np.add.reduce(x, keepdims=True)),
     arr((2, 3), "int8"))
for _d in ("int8", "float32", "bool", "uint16"):
    case(f"reduce-initial-{_d}", lambda x: (np.sum(x, initial=1), np.prod(x, axis=0, initial=2),
                                            np.max(x, axis=1, initial=0), np.min(x, initial=1, keepdims=True),
                                            np.max(x[:0], axis=0, initial=7), np.sum(x[:, :0], axis=1, initial=4)),
         arr((2, 3), _d))
case("reduce-initial-nan", lambda x: (np.max(x, initial=np.nan), np.min(x, initial=-np.inf), np.sum(x, initial=0.5)),
     arr((3,), "float32"))

for _d in ("float32", "int8", "bool"):
    _m = arr((3, 4), _d)
    case(f"diagonal-{_d}", lambda m: (np.diagonal(m), np.diagonal(m, 1), np.diagonal(m, -2), np.diagonal(m, 5),
                                      m.diagonal(offset=-1)), _m)
    case(f"diag-{_d}", lambda m: (np.diag(m), np.diag(m, 2), np.diag(m[0]), np.diag(m[1], -1), np.diag(m[2], 2),
                                  np.diagflat(m[:2, :2], 1)), _m)
    case(f"triu-tril-{_d}", lambda m: (np.triu(m), np.tril(m), np.triu(m, 1), np.tril(m, -1), np.triu(m[0], -1),
                                       np.tril(m, 7)), _m)
case("trace", lambda m, t: (np.trace(m), np.trace(m, 1), np.trace(t, axis1=1, axis2=2), np.trace(t, -1, 2, 0),
                            m.trace(), np.trace(m.astype(np.int8), dtype=np.float32)), arr((3, 4), "int16"),
     arr((2, 3, 4), "float32"))
case("diagonal-3d", lambda t: (np.diagonal(t, axis1=1, axis2=2), np.diagonal(t, 1, 2, 0), np.diagonal(t, 0, -1, -3)),
     arr((2, 3, 4), "float64"))
case("diag-empty", lambda v: (np.diag(v), np.diag(v, 2)), arr((0,), "float32"))
case("cross", lambda a, b: (np.cross(a, b), np.cross(a[0], b), np.cross(a, b, axisc=0), np.cross(b.T, a, axisa=0),
                            np.cross(a, b, axis=-1)), arr((4, 3), "float32"), arr((4, 3), "float64"))
case("cross-2d-vectors", lambda a, b: (np.cross(a, b), np.cross(a, np.ones(3, np.int16)), np.cross(np.ones(3), a)),
     arr((2, 2), "int16"), arr((2, 2), "int16"))
case("cross-int", lambda a, b: np.cross(a, b), arr((3,), "int8"), arr((5, 3), "uint8"))

case("modf-copysign-special", lambda x: (np.modf(x), np.copysign(x, -1.0), np.copysign(3, x), np.signbit(x),
                                         np.copysign(x, x[::-1])),
     np.array([-0.5, 2.5, -3.0, np.inf, -np.inf, np.nan, -np.nan, -0.0, 0.0, 1e30], np.float32))
case("unstack", lambda x: (np.unstack(x), np.unstack(x, axis=1), np.unstack(x, axis=-1), np.unstack(x[:0])),
     arr((2, 3, 2), "int32"))
case("sliding_window_view", lambda x: (np.lib.stride_tricks.sliding_window_view(x, 3, axis=1),
                                       np.lib.stride_tricks.sliding_window_view(x, (2, 2)),
                                       np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 1)),
                                       np.lib.stride_tricks.sliding_window_view(x[0], 5)),
     arr((3, 5), "float32"))
case("view-same-size", lambda f, i: (f.view(np.int32), f.view(np.uint32), i.view(np.float32), f.view(), f.view(np.ndarray),
                                     i.view(np.uint32).view(np.int32), f.astype(np.float16).view(np.int16),
                                     f.astype(np.float64).view(np.uint64), (i > 0).view(np.uint8)),
     np.array([1.5, -0.0, np.inf, np.nan, -2.0], np.float32), arr((5,), "int32"))
case("ascontiguousarray", lambda x: (vnp.ascontiguousarray(x), vnp.ascontiguousarray(x[0, 0], np.float64),
                                     vnp.asfortranarray(x, dtype=np.int8), vnp.asfortranarray(x[0, 0])),
     arr((2, 3), "float32"))
case("copy-order", lambda x: (x.copy(order="F"), x.copy(), np.copy(x, order="C"), x.copy("A")), arr((2, 3), "float32"))

_S, _T = np.float32(0.5), np.float32(-3.0)
case("linspace-traced", lambda s, t: (np.linspace(s, t, 5), np.linspace(s, t, 4, endpoint=False),
                                      np.linspace(s, t, 1), np.linspace(s, t, 0), np.linspace(0, t, 6, dtype=np.int32),
                                      np.linspace(s, 7.0, 3, retstep=True)), _S, _T)
case("linspace-arrays", lambda s, t: (np.linspace(s, t, 3), np.linspace(s, t, 4, axis=-1), np.linspace(s[0], t, 2, axis=1)),
     arr((2,), "float64"), arr((3, 2), "float64"))
case("linspace-ints-and-equal-ends", lambda s, t: (np.linspace(s, t, 5), np.linspace(s, s, 4), np.linspace(t, s, 3)),
     np.int8(3), np.int8(-4))
case("linspace-weak", lambda s: (np.linspace(0, s, 3), np.linspace(s, 1, 2, endpoint=False, retstep=True)),
     np.float16(2.0))
case("meshgrid", lambda a, b, c: (np.meshgrid(a, b), np.meshgrid(a, b, c, indexing="ij"), np.meshgrid(a, b, sparse=True),
                                  np.meshgrid(a), np.meshgrid(a, np.arange(2)), np.meshgrid(a, b, c, sparse=True, copy=False)),
     arr((3,), "float32"), arr((2,), "int8"), arr((4,), "float64"))
case("mgrid-ogrid", lambda x: (np.mgrid[0:2, 0:3] * x, np.ogrid[0:2, 0:3][1] + x, np.mgrid[0:1:3j] + x[0, 0]),
     arr((2, 3), "float32"))

_M = _rng.standard_normal((3, 8))
case("cov", lambda m: (np.cov(m), np.cov(m, bias=True), np.cov(m, ddof=0), np.cov(m, rowvar=False), np.cov(m[0]),
                       np.cov(m[0], m[1]), np.cov(m, m[:2]), np.cov(m.astype(np.float32)), np.cov(m, dtype=np.float32),
                       np.cov(m[:, :1])), _M)
case("cov-weights", lambda m, fw, aw: (np.cov(m, fweights=fw), np.cov(m, aweights=aw), np.cov(m, fweights=fw, aweights=aw),
                                       np.cov(m, aweights=aw, ddof=0), np.cov(m, fweights=fw, bias=True)),
     _M, np.array([1, 2, 1, 3, 1, 1, 2, 1]), np.abs(_rng.standard_normal(8)))
case("cov-static-weights", lambda m: np.cov(m, fweights=np.array([1, 2, 1, 3, 1, 1, 2, 1])), _M)
case("cov-int", lambda m: (np.cov(m), np.corrcoef(m)), arr((2, 5), "int8"))
case("corrcoef", lambda m: (np.corrcoef(m), np.corrcoef(m[0], m[1]), np.corrcoef(m, rowvar=False), np.corrcoef(m[0]),
                            np.corrcoef(m, dtype=np.float32)), _M)

_H = _rng.standard_normal(40)
case("histogram", lambda a: (np.histogram(a), np.histogram(a, bins=4, range=(-1, 1.5)), np.histogram(a, bins=[-3, -1, 0, 0.5, 2]),
                             np.histogram(a, bins=np.array([0, 1, 2])), np.histogram(a, 3, density=True),
                             np.histogram(a, 5, range=(0, 0))), _H)
# float32 weights are summed in float64 and rounded to float32, in whatever order the sum runs
case("histogram-weights", lambda a, w: (np.histogram(a, 4, weights=w), np.histogram(a, [-1, 0, 1], weights=w),
                                        np.histogram(a, 3, weights=w, density=True)), _H, np.abs(_H).astype(np.float32),
     rtol=1e-6)
case("histogram-ints", lambda a: (np.histogram(a, 3), np.histogram(a, 4, range=(0, 4)), np.histogram(a[:1], 2),
                                  np.histogram(a, bins=[0, 2, 9])), np.array([[0, 1, 1], [2, 4, 4]], np.int16))
case("histogram-edges-and-nan", lambda a: (np.histogram(a, 2, range=(0, 2)), np.histogram(a, [0, 1, 2])),
     np.array([0.0, 1.0, 2.0, np.nan, -1.0, 3.0, 1.0], np.float32))
case("histogram-traced-range", lambda a, lo, hi: np.histogram(a, 4, range=(lo, hi)), _H, -1.0, 2.0)
case("bincount", lambda i, w: (np.bincount(i, minlength=7), np.bincount(i, w, minlength=8),
                               np.bincount(np.array([0, 3, 3]), minlength=5) + np.bincount(i, minlength=5)[:5]),
     np.array([0, 1, 1, 4, 6, 1], np.int32), arr((6,), "float32"))
case("bincount-bool-uint8", lambda b, u: (np.bincount(b, minlength=2), np.bincount(u, minlength=10)),
     arr((5,), "bool"), arr((6,), "uint8"))

_Z = (arr((2, 3), "float32") + 1j * arr((2, 3), "float32")).astype(np.complex64)
case("complex-parts", lambda z, r: (np.real(z), np.imag(z), np.angle(z), np.angle(z, deg=True), z.conjugate(),
                                    np.real(r), np.imag(r), np.angle(r), np.iscomplexobj(z), np.isrealobj(z),
                                    np.iscomplexobj(r)), _Z, arr((3,), "float32"))
case("complex-arithmetic", lambda z, r: (z * r + 1j, z / (z + 2), np.abs(z), np.exp(z), z @ z.T, z.sum(0),
                                         np.mean(z), np.vdot(z, z)), _Z, arr((3,), "float32"), rtol=1e-5)
case("complex128-arithmetic", lambda z: (z * z.conj(), np.sqrt(z), np.log(z), np.prod(z, 1), np.var(z)),
     _Z.astype(np.complex128), rtol=1e-12)


def test_bincount_drops_values_outside_minlength():
    """The result has exactly minlength bins: larger and negative values are not counted
    (NumPy would grow the result or raise; documented in docs/numpy.md)."""
    i = np.array([0, 1, 9, -2, 1, 3], np.int64)
    fn, got = run_vmapc(lambda i: np.bincount(i, minlength=4), i)
    assert_same(got, np.bincount(i[(i >= 0) & (i < 4)], minlength=4))


def test_histogram_nan_data_counts_nothing():
    """NaN data with the default range: NumPy raises (the range is not finite); vmapc's edges
    become NaN and every count 0 (docs/numpy.md)."""
    fn, (n, edges) = run_vmapc(lambda a: np.histogram(a, 3), np.array([1.0, np.nan, 2.0]))
    assert (n == 0).all() and n.dtype == np.int64 and np.isnan(edges).all()


SORT_ERRORS = {
    "sort-axis": lambda x: np.sort(x, axis=2),
    "sort-0d": lambda x: np.sort(x[0, 0]),
    "sort-kind": lambda x: np.sort(x, kind="bogus"),
    "argsort-kind-and-stable": lambda x: np.argsort(x, kind="stable", stable=True),
    "partition-kth": lambda x: np.partition(x, 3),
    "partition-kth-negative": lambda x: np.partition(x, -4),
    "argpartition-kth-float": lambda x: np.argpartition(x, 1.0),
    "lexsort-shapes": lambda x: np.lexsort((x, x[0])),
    "cumsum-axis": lambda x: np.cumsum(x, axis=2),
    "accumulate-0d": lambda x: np.add.accumulate(x[0, 0]),
    "cumulative_sum-2d-no-axis": lambda x: np.cumulative_sum(x),
    "diff-negative": lambda x: np.diff(x, n=-1),
    "diff-0d": lambda x: np.diff(x[0, 0]),
    "diagonal-1d": lambda x: np.diagonal(x[0]),
    "diagonal-same-axes": lambda x: np.diagonal(x, 0, 1, 1),
    "diag-3d": lambda x: np.diag(x[None]),
    "cross-dims": lambda x: np.cross(x[:, :1], x),
    "cross-0d": lambda x: np.cross(x[0, 0], x),
    "unstack-0d": lambda x: np.unstack(x[0, 0]),
    "window-too-large": lambda x: np.lib.stride_tricks.sliding_window_view(x, 4, axis=1),
    "window-negative": lambda x: np.lib.stride_tricks.sliding_window_view(x, (-1, 2)),
    "window-axes": lambda x: np.lib.stride_tricks.sliding_window_view(x, (2,)),
    "linspace-negative-num": lambda x: np.linspace(x[0, 0], x[1, 1], -1),
    "meshgrid-indexing": lambda x: np.meshgrid(x[0], x[1], indexing="xx"),
    "cov-3d": lambda x: np.cov(x[None, None]),
    "histogram-bins-0": lambda x: np.histogram(x, 0),
    "histogram-bins-decreasing": lambda x: np.histogram(x, [1, 0]),
    "histogram-range": lambda x: np.histogram(x, 3, range=(1, 0)),
    "histogram-weights-shape": lambda x: np.histogram(x, 3, weights=x[0]),
    "bincount-float": lambda x: np.bincount(x[0], minlength=3),
    "bincount-2d": lambda x: np.bincount(x.astype(np.int64), minlength=3),
    "copy-order": lambda x: x.copy(order="Z"),
    "reduce-initial-overflow": lambda x: np.max(x.astype(np.uint8), initial=300),
}


@pytest.mark.parametrize("name", list(SORT_ERRORS))
def test_issue16_functions_reject_what_numpy_rejects(name):
    same = name not in ("reduce-initial-overflow", "histogram-bins-0", "cross-0d", "argpartition-kth-float")
    check_raises(SORT_ERRORS[name], arr((2, 3), "float32"), same_builtin=same)


@pytest.mark.parametrize("f, match", [
    (lambda x: np.bincount(x), "minlength"),
    (lambda x: np.histogram(x, bins="auto"), "depends on the data"),
    (lambda x: x.view(np.int8), "same size"),
    (lambda x: (x > 0).view(np.int8).view(bool), "bool"),
    (lambda x: np.subtract.accumulate(x), "subtract.accumulate"),
    (lambda x: np.subtract.reduce(x), "subtract.reduce"),
    (lambda x: np.divide.at(x, [0], 1), "divide.at"),
    (lambda x: np.sort(x, order="f"), "order"),
    (lambda x: np.lib.stride_tricks.sliding_window_view(x, 2, writeable=True), "writeable"),
], ids=["bincount", "histogram-auto", "view-size", "view-bool", "accumulate", "reduce", "at", "sort-order",
        "window-writeable"])
def test_issue16_unsupported(f, match):
    with pytest.raises(UnsupportedError, match=match):
        vmapc.trace(f, arr((4,), "int32"))


# --- ufunc keyword arguments ---------------------------------------------------------------

for _d in ALL:
    for _dd in ("int16", "float32", "float64", "bool"):
        for _n, _f in [("add", lambda a, b, dd: np.add(a, b, dtype=dd)), ("sqrt", lambda a, b, dd: np.sqrt(a, dtype=dd)),
                       ("less", lambda a, b, dd: np.less(a, b, dtype=dd)),
                       ("maximum", lambda a, b, dd: np.maximum(a, b, dtype=dd))]:
            _g = (lambda f, dd: lambda a, b: f(a, b, dd))(_f, _dd)
            _a, _b = arr((2, 3), _d), arr((3,), _d)
            if numpy_raises(_g, _a, _b):
                continue
            case(f"ufunc-dtype-{_n}-{_d}-{_dd}", _g, _a, _b)


@pytest.mark.parametrize("f", [lambda a, b: np.add(a, b, dtype=np.int8), lambda a, b: np.less(a, b, dtype=np.float32),
                               lambda a, b: np.sqrt(a, dtype=np.int32)], ids=["add", "less", "sqrt"])
def test_ufunc_dtype_rejects_what_numpy_rejects(f):
    check_raises(f, arr((3,), "float64"), arr((3,), "float64"))


# --- property tests (hypothesis) --------------------------------------------------------------

from hypothesis.extra import numpy as hnp  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
dtypes = st.sampled_from(ALL)
HYPOTHESIS_BINARY = {**PROMOTION_OPS, "hypot": np.hypot, "logaddexp": np.logaddexp, "fmax": np.fmax,
                     "bitwise_or": np.bitwise_or, "greater_equal": np.greater_equal, "remainder": np.remainder}


@SETTINGS
@given(st.sampled_from(list(HYPOTHESIS_BINARY)), dtypes, dtypes,
       hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
       st.integers(0, 2 ** 32 - 1))
def test_binary_broadcasting_and_promotion(op, da, db, shapes, seed):
    """Any two broadcastable shapes and any two dtypes: vmapc follows NumPy's result (or its
    error)."""
    global _rng
    _rng = np.random.default_rng(seed)
    f = HYPOTHESIS_BINARY[op]
    a, b = arr(shapes.input_shapes[0], da), arr(shapes.input_shapes[1], db)
    if op in ("truediv", "floordiv", "mod", "remainder") and np.dtype(db).kind in "iub":
        b = np.where(b == 0, np.asarray(1, dtype=db), b).astype(db)
    if op == "pow":
        a, b = np.abs(a).astype(da) % 4 if da != "bool" else a, np.abs(b).astype(db) % 4 if db != "bool" else b
    if numpy_raises(f, a, b):
        check_raises(f, a, b, same_builtin=False)
    else:
        check(f, a, b, signed_zeros=op not in ("maximum", "fmax", "where"))


@st.composite
def reductions(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))
    rank = len(shape)
    if not rank:
        return shape, draw(st.sampled_from([None, (), 0, -1]))
    axis = draw(st.one_of(st.none(), st.integers(-rank, rank - 1),
                          st.lists(st.integers(0, rank - 1), unique=True, max_size=rank).map(
                              lambda axes: tuple(a - rank if i % 2 else a for i, a in enumerate(axes)))))
    return shape, axis


@SETTINGS
@given(st.sampled_from(["sum", "prod", "mean", "var", "std", "max", "min", "any", "all", "ptp"]), dtypes,
       reductions(), st.booleans())
def test_reductions_any_axes(name, d, shape_axis, keepdims):
    shape, axis = shape_axis
    f = (lambda x: getattr(np, name)(x, axis=axis, keepdims=keepdims))
    x = arr(shape, d)
    if numpy_raises(f, x):
        check_raises(f, x, same_builtin=False)
    else:
        check(f, x)


@SETTINGS
@given(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4).flatmap(
    lambda shape: st.tuples(st.just(shape), hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))))
def test_basic_indexing(d, shape_index):
    shape, index = shape_index
    check(lambda x: x[index], arr(shape, d))


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), st.data())
def test_integer_array_indexing(shape, data):
    """Integer arrays (and ints) on any subset of the axes, mixed with slices: NumPy's result
    shape, including the rule that non-adjacent advanced indices move to the front."""
    key = []
    index_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    for n in shape:
        kind = data.draw(st.sampled_from(["slice", "array", "int", "none"]))
        if kind == "array":
            key.append(np.asarray(data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-n, n - 1)))))
        elif kind == "int":
            key.append(data.draw(st.integers(-n, n - 1)))
        elif kind == "none":
            key.extend([None, slice(None)])
        else:
            key.append(slice(data.draw(st.integers(-n, n)), None, data.draw(st.sampled_from([1, 2, -1]))))
    key = tuple(key)
    check(lambda x: x[key], arr(shape, "int32"))
    traced = [i for i, k in enumerate(key) if isinstance(k, np.ndarray)]
    if traced:  # the same index arrays as traced arguments
        def f(x, *idx):
            k = list(key)
            for i, v in zip(traced, idx):
                k[i] = v
            return x[tuple(k)]
        check(f, arr(shape, "float32"), *[key[i] for i in traced])


@SETTINGS
@given(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3), st.data())
def test_transpose_reshape_moveaxis(shape, data):
    rank = len(shape)
    perm = data.draw(st.permutations(list(range(rank))))
    src = data.draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank, max_size=rank)) if rank else []
    dst = data.draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank, min_size=len(src),
                             max_size=len(src))) if rank else []
    x = arr(shape, "float32")
    check(lambda x: (np.transpose(x, perm), np.moveaxis(x, src, dst), x.reshape(-1), np.reshape(x, shape[::-1]),
                     np.expand_dims(x, 0), np.squeeze(x), np.flip(x)), x)


# --- bits: views and shifts ------------------------------------------------------------------

@pytest.mark.parametrize("src,dst", [("float32", "uint32"), ("float32", "int32"), ("float64", "int64"),
                                     ("float16", "uint16"), ("int8", "uint8"), ("uint32", "int32")])
def test_view_reinterprets_bits_like_numpy(src, dst):
    x = arr((2, 3), src)
    check(lambda x: (x.view(dst), x.view(dst).view(src), x.view()), x)


@pytest.mark.parametrize("d", ["uint8", "int8", "int16", "uint32", "int32", "int64", "uint64"])
def test_shifts_follow_numpy_for_every_amount(d):
    """Amounts from 0 past the bit width (NumPy gives 0, or -1 for a negative operand shifted
    right) and negative amounts, with the Python operators and the ufuncs."""
    bits = np.dtype(d).itemsize * 8
    info = np.iinfo(d)
    x = np.array([0, 1, 3, info.max, info.min, info.max // 3, info.min + 1], dtype=d)[:, None]
    amounts = np.arange(-2 if info.min < 0 else 0, bits + 3).astype(d)[None, :]
    check(lambda x, s: (x << s, x >> s, np.left_shift(x, s), np.right_shift(x, 1), 1 << s), x, amounts)


# --- coverage of the public API -------------------------------------------------------------

def test_every_public_function_is_tested():
    """Every public function of vmapc.numpy, method and operator of tracers appears in this
    file (a guard against adding API without a NumPy comparison)."""
    import inspect as _inspect
    import re

    source = open(__file__).read()
    covered = set(UNARY_UFUNCS) | set(BINARY_UFUNCS)  # every ufunc, through getattr(np, name)
    covered |= {n for n in vnp.__all__ if re.search(rf"\b(np|vnp|np\.linalg)\.{n}\b|\.{n}\(", source)}
    covered_objects = {id(getattr(vnp, n)) for n in covered if hasattr(vnp, n)}
    missing = []
    for name in vnp.__all__:
        v = getattr(vnp, name)
        if not callable(v) or isinstance(v, type) or name in ("dtype", "supported_functions"):
            continue
        if name not in covered and id(v) not in covered_objects:  # aliases count as covered
            missing.append(name)
    for name, v in vars(vmapc.tracing.Tracer).items():
        # item/tolist only raise; tests/test_tracing.py checks them
        if callable(v) and not name.startswith("_") and name not in ("item", "tolist") \
                and not re.search(rf"\.{name}\(", source):
            missing.append(f"Tracer.{name}")
    assert not missing, f"not tested against NumPy: {missing}"
    assert "numpy.linalg.norm" in vnp.supported_functions()
    assert _inspect.isfunction(vnp.linalg.norm)


def test_docs_list_every_supported_function():
    """docs/numpy.md lists vmapc.numpy.supported_functions() and the extensions."""
    import pathlib

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "numpy.md").read_text()
    missing = [f for f in vnp.supported_functions() if f"`{f.replace('numpy.', 'np.')}`" not in doc]
    missing += [f for f in ("sigmoid", "erf", "rsqrt", "logsumexp", "softmax", "log_softmax", "dynamic_slice")
                if f"`{f}(" not in doc]
    assert not missing, f"docs/numpy.md does not list {missing}"


# --- the corpus ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy(name):
    f, args, tol = CASES[name]
    check(f, *args, **tol)
