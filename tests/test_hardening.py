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


ROUND_DECIMALS = (-1, -2, -3, -19, -20)
OVERFLOW_OPS = ("abs", "negative", "square", "floor_divide", "remainder", "multiply", "add", "subtract",
                "power", "sum")
BOOL_FNS = {"sum": lambda b: b.sum(), "where": lambda b: np.where(b, 10, 20),
            "not": lambda b: np.logical_not(b), "astype": lambda b: b.astype(np.int32),
            "and": lambda b: b & b[::-1], "invert": lambda b: ~b}
WEIRD_BOOL = np.array([0, 1, 2, 255, 4, 128, 1, 0], np.uint8).view(bool)


def _overflow(a, b):
    return (np.abs(a), np.negative(a), np.square(a), np.floor_divide(a, b), np.remainder(a, b),
            np.multiply(a, b), np.add(a, b), np.subtract(a, b), np.power(a, b % 64), a.sum(dtype=a.dtype))


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
