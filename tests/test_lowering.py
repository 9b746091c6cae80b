"""Lowering to MLIR and running through IREE, checked op by op against the reference.

Every op of ``vmapc.ops.OPS`` is built into small test Functions ("cases"), for
every dtype it accepts, on special values (NaN, +-inf, -0.0, zero divisors,
INT_MIN, negative and out-of-range indices) and on several shapes (0-d, size-1
dims, broadcasting, empty). Each case's result is compared with
``vmapc.reference.evaluate`` on the same Function and arguments.

Compiling is the slow part (~30 ms per function and ~15 ms per kernel), so the
cases are inlined into a few dozen merged Functions, compiled as a few IREE
modules; under pytest-xdist the workers compile different modules and share them
through a session-wide disk cache (see ``conftest.py``).

How results are compared:

* **exactly** (NaN equal to NaN, and the sign of floating zeros checked) for
  integer and bool results, and for float ops whose result is one correctly
  rounded IEEE operation or is defined piecewise from them: arithmetic,
  comparisons, conversions, sqrt, rsqrt, floor/ceil/round, floor_divide and
  remainder, maximum/minimum, sign, and all shape, indexing and creation ops;
* **with a relative tolerance** for transcendental functions (exp, log, sin,
  tanh, erf, sigmoid, power, arctan2, ...), whose last bits depend on the math
  library: float16 ``2e-3`` (2 ulp: computed in float32 and rounded once, as
  NumPy's half loops do), float32 ``2e-6`` (~16 ulp), float64 ``1e-13``, with an
  absolute tolerance of the same size for results near zero;
* **relative to the magnitude of the terms** for float sums, products and
  contractions, whose rounding depends on the order of accumulation: the error
  bound is ``tol * sum(|terms|)`` with tol ``1e-2`` for float16 (accumulated in
  float32 but rounded once at the end, where NumPy may round partial sums),
  ``1e-5`` for float32 and ``1e-12`` for float64.

Float-to-integer conversion of values outside the target's range is undefined
(NumPy's result is platform-dependent too), so it is not tested. IREE's CPU
runtime flushes float32/float64 subnormals to zero (it sets the FTZ/DAZ flags),
so a subnormal expected value matches a zero of the same sign.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from vmapc import custom_op, driver, lowering, testing
from vmapc import dtypes as dt
from vmapc.errors import Loc, LoweringError
from vmapc.ir import Builder, TensorType, Var
from vmapc.ops import BINARY, OPS, UNARY
from vmapc.reference import RULES, evaluate
from vmapc.shapes import Sym

LOC = Loc(__file__, 1)
NAN, INF = math.nan, math.inf
# Real dtypes: complex64/complex128, and the ops only they have (real, imag, conj, complex),
# are checked against NumPy by tests/test_complex.py.
ALL = list(dt.REALS)


def real_kinds(kind):
    return [d for d in dt.KINDS[kind] if not dt.is_complex(d)] if kind not in ("complex", "part") else []
F32, I32 = dt.FLOAT32, dt.INT32

# --- building test functions ---------------------------------------------------------------------


def make(name, in_types, body, loc=LOC):
    """A Function named `name` with inputs of `in_types` ((shape, dtype) pairs); `body(b,
    *vars)` emits equations with the Builder and returns the outputs."""
    b = Builder(loc=loc)
    ins = [Var(TensorType(s, d)) for s, d in in_types]
    outs = body(b, *ins)
    return b.build(ins, list(outs), name=name)


class Case:
    """A Function, the arguments to run it on, and how to compare with the reference."""

    def __init__(self, fn, args, check="exact"):
        self.fn = fn
        self.args = [np.asarray(a) for a in args]
        self.check = check


CASES: dict = {}


def add(name, in_types, body, args, check="exact"):
    assert name not in CASES, name
    CASES[name] = Case(make(name, in_types, body), args, check)


def sn(d):
    return dt.short_name(d)


# --- values --------------------------------------------------------------------------------------

RNG = np.random.default_rng(1234)

F_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, -3.0, 0.1, -7.25,
             100.0, -100.0, 1e-4, INF, -INF, NAN]


def fvals(dtype, extra=4):
    return np.array(F_SPECIAL + list(RNG.standard_normal(extra) * 3)).astype(dtype)


def ivals(dtype, extra=6):
    if dtype == dt.BOOL:
        return np.array([False, True, True, False])
    info = np.iinfo(dtype)
    base = [0, 1, 2, 3, 7, 100, info.max, info.max - 1]
    base += [-1, -2, -3, -7, -100, info.min, info.min + 1] if info.min < 0 else [info.max // 2 + 1]
    rnd = RNG.integers(info.min, info.max, size=extra, dtype=dtype, endpoint=True)
    return np.concatenate([np.array(base, dtype=dtype), rnd])


def vals(dtype):
    return fvals(dtype) if dt.is_float(dtype) else ivals(dtype)


def rand(shape, dtype, lo=-5, hi=5):
    if dtype == dt.BOOL:
        return RNG.random(shape) < 0.5
    if dt.is_float(dtype):
        return (RNG.standard_normal(shape) * 2).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(lo, info.min), min(hi, info.max), size=shape, endpoint=True).astype(dtype)


TOL = {dt.FLOAT16: 2e-3, dt.FLOAT32: 2e-6, dt.FLOAT64: 1e-13}
ACC_TOL = {dt.FLOAT16: 1e-2, dt.FLOAT32: 1e-5, dt.FLOAT64: 1e-12}
TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "arcsin", "arccos",
                  "arctan", "sinh", "cosh", "sigmoid", "erf", "power", "arctan2"}


def check_for(op, d):
    return "close" if op in TRANSCENDENTAL and dt.is_float(d) else "exact"


# --- elementwise ---------------------------------------------------------------------------------

for op, (kind, _) in UNARY.items():
    for d in real_kinds(kind):
        x = vals(d)
        if op in ("sin", "cos", "tan") and d != dt.FLOAT16:  # range reduction
            x = np.concatenate([x, np.array([1e3, -1e4, 123456.0, 1e22], d)])
        if d in (F32, I32):  # also a 0-d operand and a size-1 dim
            add(f"{op}_{sn(d)}", [(x.shape, d), ((), d), ((2, 1, 3), d)],
                lambda b, *xs, op=op: [b.emit(op, v) for v in xs],
                [x, x[3], rand((2, 1, 3), d)], check_for(op, d))
        else:
            add(f"{op}_{sn(d)}", [(x.shape, d)], lambda b, v, op=op: [b.emit(op, v)], [x], check_for(op, d))


def power_inputs(d):
    small = np.arange(-3, 4) if d in dt.SIGNED else np.arange(0, 4)
    base = np.concatenate([small.astype(d), ivals(d)[:8]])
    expo = ([-3, -2, -1, 0, 1, 2, 3, 7, 8, 15, 31, 63, 64, 100] if d in dt.SIGNED
            else [0, 1, 2, 3, 7, 8, 15, 31, 63, 64, 100, 255])
    expo = np.concatenate([np.array(expo).astype(d), ivals(d)[6:10]])
    return base, expo


for op, (kind, _) in BINARY.items():
    for d in real_kinds(kind):
        # every pair of special values, through broadcasting (n,1) x (1,m)
        a, c = power_inputs(d) if op == "power" and not dt.is_float(d) else (vals(d), vals(d))
        types = [((len(a), 1), d), ((1, len(c)), d)]
        args = [a[:, None], c[None, :]]
        if d in (F32, I32):  # also 0-d operands, and size-1 dims broadcasting both ways
            types += [((), d), ((), d), ((2, 1, 3), d), ((1, 4, 3), d)]
            args += [a[1], c[2], rand((2, 1, 3), d), rand((1, 4, 3), d)]
        add(f"{op}_{sn(d)}", types,
            lambda b, *xs, op=op: [b.emit(op, xs[i], xs[i + 1]) for i in range(0, len(xs), 2)],
            args, check_for(op, d))

for d in ALL:
    v = vals(d)
    n = len(v)
    add(f"select_{sn(d)}", [((n, 1), dt.BOOL), ((1, n), d), ((n, n), d), ((), dt.BOOL), ((), d), ((), d)],
        lambda b, c, x, y, c1, x1, y1: [b.emit("select", c, x, y), b.emit("select", c1, x1, y1)],
        [RNG.random((n, 1)) < 0.5, v[None, :], np.broadcast_to(v[::-1], (n, n)), np.array(True), v[2], v[3]])


def convert_inputs(src, dst):
    """Values of `src` whose conversion to `dst` is defined (float to int: in range)."""
    if not (dt.is_float(src) and dt.is_int(dst)):
        x = vals(src)
        if dt.is_float(dst) and dst.itemsize < src.itemsize:  # rounding traps: ties, subnormals, overflow
            traps = [65504.0, 65519.99, 65520.0, 6e-8, 3e-8, 2.98e-8, 1e-9, 1e-5, -3e-6,
                     1.0 + 2.0 ** -11 + 2.0 ** -40, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
                     1.0 + 2.0 ** -24 + 2.0 ** -50, 1e-39, 1e-45, 3.5e38, 3.5e39]
            with np.errstate(over="ignore", invalid="ignore"):
                x = np.concatenate([x, RNG.standard_normal(32) * 10, np.exp(RNG.uniform(-120, 20, 32)),
                                    np.array(traps).astype(src)]).astype(src)
        return x
    info = np.iinfo(dst)
    cands = [0.0, -0.0, 0.5, -0.5, 0.99, 1.0, 1.7, 2.5, 3.9, 100.25, 127.9, 255.5, 1000.0, 32767.0,
             65504.0, 2.0 ** 31 - 128, 2.0 ** 31, 2.0 ** 32 - 512, 2.0 ** 40, 2.0 ** 62, 2.0 ** 63 + 2048,
             1.8e19, -1.7, -3.9, -100.0, -128.99, -32768.0, -2.0 ** 31, -2.0 ** 62, -2.0 ** 63]
    out = []
    for c in cands + list(RNG.standard_normal(8) * 50):
        with np.errstate(over="ignore"):
            r = float(np.asarray(c, src))  # as rounded to src
        if math.isfinite(r) and info.min <= math.trunc(r) <= info.max:
            out.append(r)
    return np.array(out, dtype=src)


for s in ALL:
    for d in ALL:
        x = convert_inputs(s, d)
        add(f"convert_{sn(s)}_{sn(d)}", [(x.shape, s)], lambda b, v, d=d: [b.emit("convert", v, dtype=d)], [x])

# --- reductions ----------------------------------------------------------------------------------

REDUCE_KINDS = {"reduce_sum": "numeric", "reduce_prod": "numeric", "reduce_max": "any",
                "reduce_min": "any", "reduce_any": "bool", "reduce_all": "bool"}

for op, kind in REDUCE_KINDS.items():
    for d in ([dt.BOOL] if kind == "bool" else dt.KINDS[kind]):
        x = rand((4, 5), d, -100, 100) if op != "reduce_prod" else rand((4, 5), d, -3, 3)
        if dt.is_float(d) and op in ("reduce_max", "reduce_min"):
            x[1, 2] = NAN  # propagates
            x[2, :] = -INF if op == "reduce_max" else INF
            x[3, 1] = INF
        elif dt.is_int(d) and op in ("reduce_max", "reduce_min", "reduce_sum"):
            x[0, :] = np.iinfo(d).min  # sums wrap
            x[1, :] = np.iinfo(d).max
        elif d == dt.BOOL:
            x[0, :], x[1, :] = True, False
        y = rand((2, 3, 4), d, -4, 4)
        types = [((4, 5), d), ((4, 5), d), ((2, 3, 4), d)]
        args = [x, x, y]

        def body(b, x0, x1, y, *more, op=op):
            outs = [b.emit(op, x0, axes=(1,)), b.emit(op, x1, axes=(0, 1)), b.emit(op, y, axes=(0, 2))]
            if more:
                z, e = more[0], more[1:]
                outs += [b.emit(op, x0, axes=(0,)), b.emit(op, x0, axes=()), b.emit(op, z, axes=())]
                outs += [b.emit(op, e[0], axes=(1,)), b.emit(op, e[0], axes=(0,))] if e else []
            return outs
        if d in (F32, I32, dt.BOOL):  # also axis 0, no axes, 0-d, and empty reductions
            types += [((), d)]
            args += [x[0, 0]]
            if op not in ("reduce_max", "reduce_min"):
                types += [((3, 0), d)]
                args += [np.zeros((3, 0), d)]
        add(f"{op}_{sn(d)}", types, body, args,
            "sum" if dt.is_float(d) and op in ("reduce_sum", "reduce_prod") else "exact")

for op in ("argmax", "argmin"):
    for d in ALL:
        x = rand((4, 6), d, -3, 3)
        x[0, :] = x[0, 0]  # all equal: the first index wins
        if dt.is_float(d):
            x[1, 2] = x[1, 4] = NAN  # the first NaN wins
            x[2, :] = -INF if op == "argmax" else INF
            x[3, 3] = x[3, 5] = INF if op == "argmax" else -INF
        elif d != dt.BOOL:
            x[2, :] = np.iinfo(d).min if op == "argmax" else np.iinfo(d).max
        add(f"{op}_{sn(d)}", [((4, 6), d), ((4, 6), d), ((5,), d), ((2, 3, 4), d)],
            lambda b, x0, x1, v, y, op=op: [b.emit(op, x0, axis=1), b.emit(op, x1, axis=0),
                                            b.emit(op, v, axis=0), b.emit(op, y, axis=1)],
            [x, x, rand((5,), d), rand((2, 3, 4), d, -2, 2)])

# --- dot_general ---------------------------------------------------------------------------------

DOTS = {
    # name: (lhs shape, rhs shape, contract, batch)
    "mm": ((8, 4), (4, 3), ((1,), (0,)), ((), ())),
    "folded": ((16, 8, 4), (4, 3), ((2,), (0,)), ((), ())),
    "bmm": ((5, 8, 4), (5, 4, 3), ((2,), (1,)), ((0,), (0,))),
    "bmm2": ((2, 3, 2, 4), (2, 3, 4, 5, 1), ((3,), (2,)), ((0, 1), (0, 1))),
    "multik": ((2, 3, 4), (3, 4, 5), ((1, 2), (0, 1)), ((), ())),
    "trans": ((6, 4), (3, 4), ((1,), (1,)), ((), ())),
    "vec": ((7,), (7,), ((0,), (0,)), ((), ())),
    "matvec": ((3, 7), (7,), ((1,), (0,)), ((), ())),
    "outer": ((3,), (4,), ((), ()), ((), ())),
    "midbatch": ((4, 5, 3), (3, 5, 2), ((2,), (0,)), ((1,), (1,))),
    "swapk": ((2, 3, 4), (4, 3, 5), ((1, 2), (1, 0)), ((), ())),
    "emptyk": ((3, 0), (0, 2), ((1,), (0,)), ((), ())),
}

for d in dt.KINDS["numeric"]:
    types, args = [], []
    for ls, rs, c, bt in DOTS.values():
        lo, hi = (-3, 3) if dt.is_float(d) else (-100, 100)  # integer products wrap
        types += [(ls, d), (rs, d)]
        args += [rand(ls, d, lo, hi), rand(rs, d, lo, hi)]
    add(f"dot_general_{sn(d)}", types,
        lambda b, *xs: [b.emit("dot_general", xs[2 * i], xs[2 * i + 1], contract=c, batch=bt)
                        for i, (_, _, c, bt) in enumerate(DOTS.values())],
        args, "dot" if dt.is_float(d) else "exact")

# --- shape ops -----------------------------------------------------------------------------------


def shape_body(b, x, s, one, full):
    outs = [b.emit("reshape", x, shape=(4, 3, 2)), b.emit("transpose", x, perm=(2, 0, 1)),
            b.emit("broadcast_in_dim", one, shape=(3, 4), dims=(0,)),
            b.emit("concatenate", x, x, axis=1),
            b.emit("slice", x, start=(1, 0, 1), limit=(2, 3, 4), step=(2, 2, 2)),
            b.emit("rev", x, axes=(0, 2)), b.emit("pad", x, s, lo=(1, 0, 2), hi=(0, 2, 1))]
    if full:
        outs += [b.emit("reshape", x, shape=(6, 4)), b.emit("reshape", x, shape=(2, 12)),
                 b.emit("reshape", x, shape=(24,)), b.emit("reshape", x, shape=(1, 2, 1, 3, 4, 1)),
                 b.emit("reshape", s, shape=(1, 1)), b.emit("reshape", one, shape=()),
                 b.emit("transpose", x, perm=(0, 1, 2)),
                 b.emit("broadcast_in_dim", s, shape=(2, 3), dims=()),
                 b.emit("broadcast_in_dim", x, shape=(2, 5, 3, 4), dims=(0, 2, 3)),
                 b.emit("concatenate", x, x, x, axis=0),
                 b.emit("slice", x, start=(0, 1, 0), limit=(2, 3, 4), step=(1, 1, 3)),
                 b.emit("rev", x, axes=()), b.emit("rev", x, axes=(1,)),
                 b.emit("pad", x, s, lo=(0, 0, 0), hi=(0, 0, 0)), b.emit("pad", s, s, lo=(), hi=())]
    return outs


for d in ALL:
    full = d in (F32, dt.BOOL)
    add(f"shape_{sn(d)}", [((2, 3, 4), d), ((), d), ((1,), d)],
        lambda b, x, s, one, full=full: shape_body(b, x, s, one, full),
        [rand((2, 3, 4), d, -100, 100), rand((), d), rand((1,), d)])

add("concat_empty", [((2, 3), F32), ((2, 0), F32), ((2, 1), F32)],
    lambda b, x, y, z: [b.emit("concatenate", x, y, z, axis=1), b.emit("concatenate", y, axis=0),
                        b.emit("concatenate", y, y, axis=1)],
    [rand((2, 3), F32), np.zeros((2, 0), F32), rand((2, 1), F32)])
add("reshape_empty", [((0, 10), F32), ((3, 0), I32)],
    lambda b, e, f: [b.emit("reshape", e, shape=(0, 5, 2)), b.emit("negative", e), b.emit("reduce_sum", f, axes=(1,)),
                     b.emit("dot_general", f, b.emit("transpose", f, perm=(1, 0)), contract=((1,), (0,)),
                            batch=((), ()))],
    [np.zeros((0, 10), F32), np.zeros((3, 0), I32)])

# --- indexing ------------------------------------------------------------------------------------


def index_body(b, x, i, i2, bi, ta, s0, s1):
    return [b.emit("take", x, i, axis=0, batch_dims=0), b.emit("take", x, i, axis=1, batch_dims=0),
            b.emit("take", x, i2, axis=1, batch_dims=0), b.emit("take", x, bi, axis=1, batch_dims=1),
            b.emit("take_along_axis", x, ta, axis=1), b.emit("take_along_axis", x, ta, axis=0),
            b.emit("dynamic_slice", x, s0, s1, sizes=(2, 3)), b.emit("dynamic_slice", x, s1, s0, sizes=(5, 1))]


for d in ALL:
    for idt in (dt.INTS if d == F32 else [dt.INT64, dt.UINT8] if d in (dt.FLOAT16, dt.BOOL, dt.UINT64)
                else [dt.INT32]):
        info = np.iinfo(idt)
        raw = [0, 1, 4, 3, -1, -5, -6, 5, 100, -100, info.max, info.min]  # negative and out of range
        idx = np.array([v for v in raw if info.min <= v <= info.max], dtype=idt)
        starts = [np.array(v, idt) for v in (info.max, 1 if info.min == 0 else -2)]
        add(f"index_{sn(d)}_{sn(idt)}", [((5, 4), d), (idx.shape, idt), ((2, 1, 3), idt), ((5, 3), idt),
                                          ((5, 1), idt), ((), idt), ((), idt)], index_body,
            [rand((5, 4), d, -100, 100), idx, rand((2, 1, 3), idt, -6, 6), rand((5, 3), idt, -7, 7),
             rand((5, 1), idt, -9, 9)] + starts)
        if d == F32:  # take_along_axis broadcasting both ways, and each clamp of dynamic_slice
            add(f"index2_{sn(idt)}", [((1, 4), d), ((3, 1), idt), ((5, 4), d)] + [((), idt)] * 4,
                lambda b, x, i, y, *ss: [b.emit("take_along_axis", x, i, axis=0),
                                         b.emit("take_along_axis", x, i, axis=1)]
                + [b.emit("dynamic_slice", y, s, s, sizes=(3, 2)) for s in ss],
                [rand((1, 4), d), rand((3, 1), idt, -3, 3), rand((5, 4), d)]
                + [np.array(v, idt) for v in (0, 2, 3 if info.min == 0 else -1, info.max)])

# --- writes: scatter (both lowerings: a generic for small operands, linalg_ext for large) and
# update_slice, with negative, out-of-range and repeated indices and starts

def write_body(b, x, big, i, u, ubig, s0, s1, modes):
    out = []
    for mode in modes:
        out.append(b.emit("scatter", x, i, u, axis=0, batch_dims=0, mode=mode))
        out.append(b.emit("scatter", big, i, ubig, axis=1, batch_dims=0, mode=mode))
    if "set" in modes:
        out += [b.emit("update_slice", x, b.emit("slice", u, start=(0, 0), limit=(2, 3), step=(1, 1)), s0, s1),
                b.emit("update_slice", big, ubig, s1, s0, s1)]
    return out


for k, d in enumerate(ALL):
    idt = [dt.INT64, dt.INT8, dt.INT32, dt.UINT16, dt.INT16, dt.UINT8][k % 6]
    info = np.iinfo(idt)
    raw = [1, -1, 4, 100, -100, 1, 0, 3, -5, 2]
    idx = np.array([v for v in raw if info.min <= v <= info.max], dtype=idt)
    starts = [np.array(v, idt) for v in (min(info.max, 120), 1 if info.min == 0 else -2)]
    n = len(idx)
    types = [((5, 4), d), ((30, 40, 2), d), ((n,), idt), ((n, 4), d), ((30, n, 2), d), ((), idt), ((), idt)]
    args = [np.resize(vals(d), (5, 4)), rand((30, 40, 2), d, -100, 100), idx, np.resize(vals(d)[::-1], (n, 4)),
            rand((30, n, 2), d, -100, 100)] + starts
    exact = ("set", "min", "max") if dt.is_float(d) else ("set", "min", "max", "add", "multiply")
    add(f"write_{sn(d)}", types, lambda b, *xs, modes=exact: write_body(b, *xs, modes), args)
    if dt.is_float(d):   # sums and products of repeated updates: the order may differ
        add(f"write_acc_{sn(d)}", types, lambda b, *xs: write_body(b, *xs, ("add", "multiply")), args, "close")

# --- creation ------------------------------------------------------------------------------------

for d in ALL:
    v = vals(d)
    consts = [v, v[:1].reshape(()), np.full((3, 2), v[2]), np.resize(v, (3, 17)), np.zeros((0, 3), d)]
    if dt.is_float(d):
        consts += [np.array([0.0, -0.0], d), np.full((2, 2), NAN, d), np.full((4,), -0.0, d)]

    def body(b, consts=consts, d=d):
        return [b.emit("iota", shape=(4, 3), dimension=0, dtype=d),
                b.emit("iota", shape=(4, 3), dimension=1, dtype=d),
                b.emit("iota", shape=(300,), dimension=0, dtype=d)] + [b.constant(c) for c in consts]
    add(f"create_{sn(d)}", [], body, [])


# --- custom ops: the body lowered in place (every dtype) --------------------------------------------

custom_op("tests.lowering.rev")(lambda x: (x[::-1], x))      # registered, with no rules: the body lowers

for d in ALL:
    def custom_body(b, x, d=d):
        inner = Builder(loc=LOC)
        v = Var(TensorType((4,), d))
        sub = inner.build([v], [inner.emit("rev", v, axes=(0,)), v], name="body")
        return b.emit_multi("custom", [x], {"name": "tests.lowering.rev", "body": sub})
    add(f"custom_{sn(d)}", [((4,), d)], custom_body, [vals(d)[:4]])


# --- sorting, scans, bit casts: every dtype ------------------------------------------------------

# bit casts to integers of the same size (from floats, and between signed and unsigned); the
# other direction makes subnormal floats of small integers, which the CPU flushes (covered by
# vmapc.testing.op_samples with normal bit patterns)
SAME_SIZE = {d: [e for e in ALL if e != d and dt.is_int(e) and e.itemsize == d.itemsize] for d in ALL if d != dt.BOOL}

for d in ALL:
    v = np.resize(vals(d), 12).reshape(3, 4)
    if dt.is_float(d):
        # NaN orders are tested in tests/test_numpy_api.py; which of -0.0 and 0.0 a running
        # minimum keeps is not specified (+ 0.0 makes every zero positive)
        v = (np.where(np.isnan(v), 1.0, v) + 0.0).astype(d)
    exact_scans = ("maximum", "minimum") + (("add", "multiply") if not dt.is_float(d) else ())

    def sorting_body(b, x, d=d, exact_scans=exact_scans):
        pos = b.emit("iota", shape=(3, 4), dimension=1, dtype=dt.INT64)
        out = b.emit_multi("sort", [x, pos], {"axis": 1, "descending": False, "num_keys": 1})
        out += b.emit_multi("sort", [x], {"axis": 0, "descending": True, "num_keys": 1})
        out += b.emit_multi("top_k", [x], {"k": 2})
        out += [b.emit("cumulative", x, combine=c, axis=k % 2, reverse=k >= 2) for k, c in enumerate(exact_scans)]
        if d != dt.BOOL:
            out += [b.emit("bitcast", x, dtype=e) for e in SAME_SIZE[d]]
        return out
    add(f"sorting_{sn(d)}", [((3, 4), d)], sorting_body, [v])
    if dt.is_float(d):      # float sums and products of a scan: the order of rounding may differ
        add(f"scan_acc_{sn(d)}", [((3, 4), d)],
            lambda b, x: [b.emit("cumulative", x, combine="add", axis=1, reverse=False),
                          b.emit("cumulative", x, combine="multiply", axis=0, reverse=True)], [v], "close")


def _random_body(b, k, x0, x1):
    y0, y1 = b.emit_multi("threefry2x32", [b.emit("slice", k, start=(0,), limit=(1,), step=(1,)),
                                            b.emit("slice", k, start=(1,), limit=(2,), step=(1,)), x0, x1], {})
    return [y0, y1, b.emit("key_use", k, x0, what="uniform")]


add("random_u32", [((2,), dt.UINT32), ((1,), dt.UINT32), ((1,), dt.UINT32)], _random_body,
    [np.array([0, 42], np.uint32), np.array([7], np.uint32), np.array([2 ** 32 - 1], np.uint32)])


# --- control flow: branches and loops carrying values of every dtype --------------------------------

def _sub(in_types, body):
    inner = Builder(loc=LOC)
    ins = [Var(TensorType(sh, d)) for sh, d in in_types]
    return inner.build(ins, list(body(inner, *ins)), name="body")


for k, d in enumerate(ALL):
    x4, i32 = ((4,), d), ((), dt.INT32)
    pred = ((), dt.BOOL) if k % 2 else ((), dt.INT32)
    branches = (_sub([x4], lambda b, x: [b.emit("rev", x, axes=(0,)), x]),
                _sub([x4], lambda b, x: [x, b.emit("rev", x, axes=(0,))]))
    cond_fn = _sub([i32, i32, x4], lambda b, n, i, x: [b.emit("less", i, n)])
    body_fn = _sub([i32, x4], lambda b, i, x: [b.emit("add", i, b.emit("broadcast_in_dim", b.constant(
        np.array(1, np.int32)), shape=(), dims=())), b.emit("rev", x, axes=(0,))])
    scan_fn = _sub([x4, x4], lambda b, c, x: [x, c])

    def control_body(b, p, n, i0, x, xs, branches=branches, cond_fn=cond_fn, body_fn=body_fn, scan_fn=scan_fn):
        out = b.emit_multi("cond", [p, x], {"branches": branches})
        out += b.emit_multi("while_loop", [n, i0, x], {"cond": cond_fn, "body": body_fn})
        out += b.emit_multi("scan", [x, xs], {"body": scan_fn, "length": 3, "reverse": bool(k % 2),
                                              "n_consts": 0, "n_carry": 1})
        return out
    v = vals(d)
    add(f"control_{sn(d)}", [pred, i32, i32, x4, ((3, 4), d)], control_body,
        [np.array(k % 3 - 1, pred[1]) if pred[1] == dt.INT32 else np.array(True), np.array(3, np.int32),
         np.array(k % 2, np.int32), v[:4], np.resize(v[::-1], (3, 4))])


# --- running -------------------------------------------------------------------------------------

MERGE = 24  # cases per merged Function
N_MODULES = 4


def merge(name, cases):
    """One Function running all `cases` side by side: their inputs, then their outputs."""
    b = Builder(loc=LOC)
    ins, outs, spans = [], [], []
    for c in cases:
        args = [Var(v.type) for v in c.fn.inputs]
        res = b.inline(c.fn, args)
        ins += args
        spans.append((c, len(outs), len(res)))
        outs += res
    return b.build(ins, outs, name=name), spans


def needs_libm(case):
    return any(lowering.needs_libm(e) for e in case.fn.eqns)


def build_modules():
    """N_MODULES lists of merged Functions; the cases that need libm (float64 sin, ...)
    get a module of their own, so the others are compiled as self-contained ELF."""
    libm = [n for n in sorted(CASES) if needs_libm(CASES[n])]
    rest = [n for n in sorted(CASES) if not needs_libm(CASES[n])]
    chunks = [[CASES[n] for n in rest[k:k + MERGE]] for k in range(0, len(rest), MERGE)]
    merged = [merge(f"m{i}", c) for i, c in enumerate(chunks)]
    return [[merge("libm", [CASES[n] for n in libm])]] + [merged[i::N_MODULES - 1] for i in range(N_MODULES - 1)]


@pytest.fixture(scope="module")
def results(vmapc_shared_cache):
    """name -> outputs of every case, from IREE. Each xdist worker starts on a different
    module; the disk cache's per-module lock makes the others wait for it, then reuse it."""
    modules = build_modules()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    shift = int(worker[2:]) if worker[2:].isdigit() else 0
    out = {}
    for i in range(N_MODULES):
        group = modules[(i * (1 if shift % 2 == 0 else -1) + shift) % N_MODULES]
        fns = driver.compile_functions([m for m, _ in group])
        for m, spans in group:
            res = fns[m.name](*[a for c, _, _ in spans for a in c.args])
            for c, start, n in spans:
                out[c.fn.name] = res[start:start + n]
    return out


def _nan_equal(a, b):
    return (a == b) | (np.isnan(a) & np.isnan(b))


def bounds_for(case):
    """Per-output error scales for accumulated results: the case evaluated on |args| in
    float64 (each output's sum of |terms|)."""
    env = {id(v): np.abs(a.astype(np.float64)) for v, a in zip(case.fn.inputs, case.args)}
    for e in case.fn.eqns:
        with np.errstate(all="ignore"):
            r = RULES[e.op](*[env[id(v)] for v in e.inputs], **e.attrs)
        env[id(e.outputs[0])] = np.nan_to_num(np.asarray(r, np.float64), nan=0.0, posinf=0.0)
    return [env[id(v)] for v in case.fn.outputs]


def compare(case, got, want, i, bounds=None):
    what = f"{case.fn.name} output {i}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    d = want.dtype
    if not dt.is_float(d):
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        if d != dt.FLOAT16:  # IREE's CPU runtime flushes float32/64 subnormals to zero
            w = np.where(np.abs(w) < np.finfo(d).tiny, np.copysign(0.0, w), w)
        with np.errstate(invalid="ignore", over="ignore"):
            if case.check == "exact":
                ok = _nan_equal(g, w) & ((np.signbit(g) == np.signbit(w)) | np.isnan(w))
                if case.fn.name.startswith(("maximum", "minimum")):  # NumPy picks either zero
                    ok = _nan_equal(g, w)
            elif case.check == "close":
                ok = _nan_equal(g, w) | (np.abs(g - w) <= TOL[d] * (np.abs(w) + 1))
            else:  # sums, products, contractions
                ok = _nan_equal(g, w) | (np.abs(g - w) <= ACC_TOL[d] * bounds[i])
        bad = ~ok
    if np.any(bad):
        idx = np.argwhere(np.asarray(bad))[:6]
        same = [a for a in case.args if a.shape == want.shape]
        detail = "; ".join(f"at {tuple(int(j) for j in k)} got {got[tuple(k)]!r} want {want[tuple(k)]!r}"
                           + (f" (input {[a[tuple(k)] for a in same]})" if same and len(same) == len(case.args)
                              else "") for k in idx)
        raise AssertionError(f"{what}: {int(np.sum(bad))} of {np.size(bad)} elements differ "
                             f"({case.check}): {detail}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_op(results, name):
    case = CASES[name]
    want = evaluate(case.fn, *case.args)
    got = results[name]
    bounds = bounds_for(case) if case.check in ("sum", "dot") else None
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        compare(case, g, w, i, bounds)


def test_every_op_has_a_lowering():
    assert set(lowering.LOWERINGS) == set(OPS)


def test_every_op_and_dtype_is_tested():
    seen = {(e.op, v.dtype) for c in CASES.values() for e in c.fn.eqns for v in e.inputs + e.outputs}
    for op in OPS:
        if OPS[op].family == "collective":     # never lowered: see test_collectives_are_refused
            continue
        kind = {**UNARY, **BINARY}.get(op, ("any",))[0]
        if op in ("reduce_any", "reduce_all"):
            kinds = [dt.BOOL]
        elif op in ("reduce_sum", "reduce_prod", "dot_general"):
            kinds = dt.KINDS["numeric"]
        elif op in ("take", "take_along_axis", "dynamic_slice", "select", "convert", "argmax", "argmin"):
            kinds = ALL
        elif op in ("threefry2x32", "key_use"):     # uint32 words and keys only
            kinds = [dt.UINT32]
        elif op == "bitcast":                       # numeric dtypes: bool has no bit pattern of its own
            kinds = [d for d in ALL if d != dt.BOOL]
        else:
            kinds = real_kinds(kind)
        for d in kinds:
            assert (op, d) in seen, (op, d)


def test_collectives_are_refused():
    """A collective only has a meaning under the vmap that binds its axis name, which
    replaces it with ordinary ops; the lowering refuses one left in a program (an axis
    no vmap bound), naming it. Batched collectives run in tests/test_vmap_compiled.py."""
    for op in (n for n in OPS if OPS[n].family == "collective"):
        types = [] if op == "axis_index" else [TensorType((3,), F32)]
        attrs = {"axis_name": "i", **({"axis_size": 2, "axis": 0} if op == "all_gather" else {})}
        with pytest.raises(LoweringError, match=rf"{op}\[axis_name='i'\]: the axis name 'i' is not bound"):
            lowering.lower([testing.single_op(op, types, attrs)])


# --- dynamic batch sizes -------------------------------------------------------------------------

B = Sym("B")


def dyn_cases():
    """(Function, function of the batch size giving its arguments) pairs whose input
    types have the symbolic dim B."""
    f32, i32, i64 = F32, I32, dt.INT64
    out = []

    def case(name, types, body, args):
        out.append((make(name, types, body), args))

    case("d_elementwise", [((B, 3), f32), ((1, 3), f32), ((B, 1), dt.BOOL)],
         lambda b, x, y, c: [b.emit("tanh", b.emit("add", x, y)), b.emit("select", c, x, b.emit("negative", x))],
         lambda n: [rand((n, 3), f32), rand((1, 3), f32), rand((n, 1), dt.BOOL)])
    case("d_reduce", [((B, 4), f32), ((B, 4), i32)],
         lambda b, x, k: [b.emit("reduce_sum", x, axes=(0,)), b.emit("reduce_max", x, axes=(1,)),
                          b.emit("argmax", k, axis=0), b.emit("argmin", x, axis=1),
                          b.emit("reduce_prod", k, axes=(0, 1))],
         lambda n: [rand((n, 4), f32), rand((n, 4), i32, -2, 2)])
    case("d_matmul", [((B, 8, 4), f32), ((4, 3), f32), ((B, 4, 5), f32), ((B, 5, 2), f32)],
         lambda b, x, w, p, q: [
             b.emit("dot_general", x, w, contract=((2,), (0,)), batch=((), ())),
             b.reshape(b.emit("dot_general", b.reshape(x, (8 * B, 4)), w, contract=((1,), (0,)),
                              batch=((), ())), (B, 8, 3)),
             b.emit("dot_general", p, q, contract=((2,), (1,)), batch=((0,), (0,))),
             b.emit("dot_general", p, p, contract=((0,), (0,)), batch=((), ()))],  # contract over B
         lambda n: [rand((n, 8, 4), f32), rand((4, 3), f32), rand((n, 4, 5), f32), rand((n, 5, 2), f32)])
    case("d_shape", [((B, 3), f32), ((3,), f32), ((B, 2), f32), ((B, 5), f32), ((), f32), ((B, 2, 3), i32)],
         lambda b, x, v, y, z, s, w: [
             b.emit("transpose", x, perm=(1, 0)), b.emit("broadcast_in_dim", v, shape=(B, 3), dims=(1,)),
             b.emit("concatenate", y, x, axis=1), b.emit("slice", z, start=(0, 1), limit=(B, 4), step=(1, 2)),
             b.emit("rev", x, axes=(0,)), b.emit("rev", x, axes=(0, 1)),
             b.emit("pad", x, s, lo=(0, 1), hi=(0, 2)), b.emit("reshape", w, shape=(B, 6)),
             b.emit("reshape", w, shape=(6 * B,)), b.emit("reshape", w, shape=(B, 3, 2)),
             b.emit("convert", x, dtype=i32)],
         lambda n: [rand((n, 3), f32), rand((3,), f32), rand((n, 2), f32), rand((n, 5), f32), rand((), f32),
                    rand((n, 2, 3), i32)])
    case("d_index", [((B, 5), f32), ((B, 2), i64), ((B, 3), f32), ((4,), i32), ((), i32), ((B, 4), f32)],
         lambda b, x, i, y, j, s, z: [
             b.emit("take", x, i, axis=1, batch_dims=1), b.emit("take", y, j, axis=0, batch_dims=0),
             b.emit("take_along_axis", x, i, axis=1), b.emit("dynamic_slice", z, s, s, sizes=(B, 2)),
             b.emit("add", b.emit("iota", shape=(B, 4), dimension=0, dtype=f32), z)],
         lambda n: [rand((n, 5), f32), rand((n, 2), i64, -7, 7), rand((n, 3), f32),
                    np.array([0, -1, 5, -9], np.int32), np.array(3, np.int32), rand((n, 4), f32)])
    case("d_write", [((B, 5), f32), ((B, 3), i64), ((B, 3), f32), ((B, 2), f32), ((), i32)],
         lambda b, x, i, u, w, s: [
             b.emit("scatter", x, i, u, axis=1, batch_dims=1, mode="add"),
             b.emit("update_slice", x, w, s, s),
             b.emit("scatter", x, b.emit("iota", shape=(3,), dimension=0, dtype=i64),
                    b.emit("slice", x, start=(0, 0), limit=(B, 3), step=(1, 1)), axis=1, batch_dims=0, mode="set")],
         lambda n: [rand((n, 5), f32), rand((n, 3), i64, -7, 7), rand((n, 3), f32), rand((n, 2), f32),
                    np.array(2, np.int32)])
    case("d_folded_only", [((8 * B, 3), f32)],  # B is only known as a multiple: dim / 8
         lambda b, x: [b.reshape(x, (B, 8, 3)), b.emit("iota", shape=(B,), dimension=0, dtype=i32)],
         lambda n: [rand((8 * n, 3), f32)])
    return out


DYN_CASES = dyn_cases()


@pytest.fixture(scope="module")
def dyn_compiled(vmapc_shared_cache):
    return driver.compile_functions([f for f, _ in DYN_CASES])


@pytest.mark.parametrize("index", range(len(DYN_CASES)), ids=[f.name for f, _ in DYN_CASES])
def test_dynamic_batch(dyn_compiled, index):
    fn, make_args = DYN_CASES[index]
    for n in (1, 2, 5):
        args = make_args(n)
        want = evaluate(fn, *args)
        got = dyn_compiled[fn.name](*args)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, (fn.name, n, i)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{fn.name} B={n} output {i}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"{fn.name} B={n} output {i}")


def test_dynamic_dims_are_read_once():
    fn = make("f", [((B, 3), F32), ((B, 3), F32)], lambda b, x, y: [b.emit("add", x, y)])
    text = lowering.lower([fn]).text
    assert "tensor<?x3xf32>" in text
    assert text.count("tensor.dim") == 1


def test_dynamic_call_checks_the_symbol(vmapc_shared_cache):
    from vmapc.errors import CallError
    fn = make("f", [((B, 3), F32), ((B, 3), F32)], lambda b, x, y: [b.emit("add", x, y)])
    f = driver.compile_functions([fn])["f"]
    with pytest.raises(CallError, match="argument 1"):
        f(np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32))


# --- the shape of the generated MLIR -------------------------------------------------------------


def test_folded_batch_is_one_matmul():
    """f32[16,8,4] x f32[4,3]: one 128x4 @ 4x3 linalg.matmul, no broadcast of the weights."""
    for shape, rows in (((16, 8, 4), "128x4"), ((B, 8, 4), "?x4")):
        fn = make("f", [(shape, F32), ((4, 3), F32)],
                  lambda b, x, w: [b.emit("dot_general", x, w, contract=((2,), (0,)), batch=((), ()))])
        text = lowering.lower([fn]).text
        assert text.count("linalg.matmul") == 1, text
        assert f"tensor<{rows}xf32>, tensor<4x3xf32>" in text
        assert "batch_matmul" not in text and "broadcast" not in text


def test_contractions_pick_named_ops():
    def lowered(ls, rs, contract, batch):
        fn = make("f", [(ls, F32), (rs, F32)],
                  lambda b, x, y: [b.emit("dot_general", x, y, contract=contract, batch=batch)])
        return lowering.lower([fn]).text
    assert "linalg.batch_matmul" in lowered((5, 8, 4), (5, 4, 3), ((2,), (1,)), ((0,), (0,)))
    text = lowered((6, 4), (3, 4), ((1,), (1,)), ((), ()))  # x @ w.T: a transpose folded into a map
    assert "linalg.generic" in text and "transpose" not in text and "linalg.matmul" not in text


def test_broadcasting_is_in_the_maps():
    fn = make("f", [((4, 1), F32), ((1, 3), F32)], lambda b, x, y: [b.emit("add", x, y)])
    text = lowering.lower([fn]).text
    assert text.count("linalg.generic") == 1
    assert "(d0, d1) -> (d0, 0)" in text and "(d0, d1) -> (0, d1)" in text
    assert "broadcast" not in text


def test_ops_carry_the_user_location():
    loc = Loc("/some/model.py", 42)
    fn = make("f", [((4,), F32)], lambda b, x: [b.emit("exp", x)], loc=loc)
    lm = lowering.lower([fn])
    with lm.context:
        text = lm.module.operation.get_asm(enable_debug_info=True)
    assert '"/some/model.py":42:0' in text
    assert '"f#0:exp"' in text
    assert lm.bytecode.startswith(b"ML\xefR")


def test_missing_symbol_is_a_lowering_error():
    from vmapc.errors import LoweringError
    loc = Loc("/some/model.py", 7)
    fn = make("f", [((B,), F32)], lambda b, x: [b.emit("iota", shape=(Sym("C"),), dimension=0, dtype=F32)], loc=loc)
    with pytest.raises(LoweringError, match="iota") as e:
        lowering.lower([fn])
    assert e.value.loc == loc and "C" in str(e.value)


def test_verify_failure_names_the_equation(monkeypatch):
    from iree.compiler import ir
    from iree.compiler.dialects import tensor
    from vmapc.errors import LoweringError

    def bad_rule(lctx, eqn, xs):  # a slice whose result type does not match
        ty = ir.RankedTensorType.get([7], ir.F32Type.get())
        return [tensor.ExtractSliceOp(ty, xs[0], [], [], [], [0], [4], [1]).result]
    monkeypatch.setitem(lowering.LOWERINGS, "negative", bad_rule)
    loc = Loc("/some/model.py", 9)
    fn = make("f", [((4,), F32)], lambda b, x: [b.emit("negative", x)], loc=loc)
    with pytest.raises(LoweringError, match="negative") as e:
        lowering.lower([fn])
    assert e.value.loc == loc
