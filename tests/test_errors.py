"""The error catalogue (docs/errors.md): every bad input, the exception it raises,
its message, and the user's line it points at; then how vmapc behaves with inputs
that are unusual but valid (NaN, empty arrays, batch size 0, views, misaligned and
big-endian data), which must give NumPy's answers, never a crash.

Each catalogue entry is a function that makes the mistake. Where the error comes from
user code, the offending line carries a marker comment ``# <-- id``, and the test
checks that ``err.loc`` is this file at that line and that the rendered message
shows ``file:line``.
"""

import os
import re
import warnings

import numpy as np
import pytest

import vmapc
from vmapc import errors, lowering, rules
from vmapc.errors import (ArtifactError, AutodiffError, BatchingError, CallError, CastError, CompileError,
                          ControlFlowError, DTypeError, ExecutionError, IRError, IRParseError, Loc, LoweringError,
                          NotCallableError, OutOfBoundsError, ReadOnlyError, ShapeError, TargetError,
                          TracerBoolConversionError, TracerConversionError, TracingError, UnsupportedError,
                          VmapcError, WriteError)
from vmapc.errors import CustomOpError

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

F32, I32 = vmapc.f32, vmapc.i32
X = np.arange(6, dtype=np.float32).reshape(2, 3)
V = np.arange(4, dtype=np.float32)

with open(__file__) as _f:
    _SOURCE = _f.read().splitlines()


def line_of(case_id):
    """The line of this file that carries the marker ``# <-- case_id``."""
    hits = [i + 1 for i, text in enumerate(_SOURCE) if text.rstrip().endswith(f"# <-- {case_id}")]
    assert len(hits) == 1, f"marker for {case_id}: {hits}"
    return hits[0]


CATALOGUE = []


def entry(stage, exc, message, loc=True):
    """Register a catalogue entry: calling the function must raise `exc` whose message
    matches `message`; with loc=True, ``err.loc`` is the marked line of this file."""
    def deco(fn):
        CATALOGUE.append(pytest.param(fn, exc, message, loc, id=f"{stage}-{fn.__name__}"))
        return fn
    return deco


# --- tracing ---------------------------------------------------------------------------------------

@entry("trace", TracerBoolConversionError, r"truth value of a traced array .* vmapc\.numpy\.where.* vmapc\.cond "
                                          r"/ vmapc\.switch .* vmapc\.while_loop / fori_loop / scan")
def python_if_on_tracer():
    def f(x):
        if x.sum() > 0:  # <-- python_if_on_tracer
            return x
        return -x
    vmapc.trace(f, F32[3])


@entry("trace", TracerBoolConversionError, r"control flow \(if/while/and/or/not\)")
def python_while_on_tracer():
    def f(x):
        while x.max() > 1:  # <-- python_while_on_tracer
            x = x / 2
        return x
    vmapc.trace(f, F32[3])


@entry("trace", TracerConversionError, r"float\(\) needs a concrete value, but this is a traced array f32\[\]")
def float_of_tracer():
    vmapc.trace(lambda x: float(x[0]) * x, F32[3])  # <-- float_of_tracer


@entry("trace", TracerConversionError, r"converting to a NumPy array \(np\.asarray/np\.array\)")
def asarray_of_tracer():
    vmapc.trace(lambda x: np.asarray(x) + 1, F32[3])  # <-- asarray_of_tracer


@entry("trace", TracerConversionError, r"as a Python index .* vmapc\.numpy\.take\(table, i, axis=0\)")
def tracer_as_list_index():
    table = [1.0, 2.0, 3.0]
    vmapc.trace(lambda i: table[i], I32[()])  # <-- tracer_as_list_index


@entry("trace", UnsupportedError, r"numpy\.fft\.fft is not supported by vmapc; see docs/numpy\.md")
def unsupported_numpy_function():
    vmapc.trace(lambda x: np.fft.fft(x), F32[4])  # <-- unsupported_numpy_function


@entry("trace", UnsupportedError, r"numpy\.nonzero is not supported by vmapc \(its result shape depends on the data\)")
def data_dependent_shape():
    vmapc.trace(lambda x: np.nonzero(x), F32[4])  # <-- data_dependent_shape


@entry("trace", UnsupportedError, r"numpy\.dot: argument `out` is not supported by vmapc")
def out_argument():
    vmapc.trace(lambda x: np.dot(x, x, out=np.zeros(())), F32[4])  # <-- out_argument


@entry("trace", UnsupportedError, r"numpy\.reshape: order='F' is not supported \(only 'C'\)")
def order_argument():
    vmapc.trace(lambda x: x.reshape((2, 2), order="F"), F32[4])  # <-- order_argument


@entry("trace", UnsupportedError, r"indexing with a boolean mask gives a shape that depends on the data")
def boolean_mask_index():
    vmapc.trace(lambda x: x[x > 0], F32[4])  # <-- boolean_mask_index


# --- writes (tests/test_writes.py has the ones that work) ------------------------------------------

@entry("trace", ShapeError, r"could not broadcast input array from shape \(3,\) into shape \(2,\)")
def setitem_shape_mismatch():
    def f(x, v):
        x[:2] = v  # <-- setitem_shape_mismatch
    vmapc.trace(f, F32[4], F32[3])


@entry("trace", ShapeError, r"shape mismatch: value array of shape \(3,\) could not be broadcast to indexing result "
                            r"of shape \(2,\)")
def fancy_setitem_shape_mismatch():
    def f(x, v):
        x[[0, 2]] = v  # <-- fancy_setitem_shape_mismatch
    vmapc.trace(f, F32[4], F32[3])


@entry("trace", DTypeError, r"Cannot cast ufunc 'add' output from dtype\('float64'\) to dtype\('int32'\) with "
                            r"casting rule 'same_kind'")
def inplace_float_into_int():
    def f(x):
        x += 1.5  # <-- inplace_float_into_int
    vmapc.trace(f, I32[4])


@entry("trace", CastError, r"not 'complex' \(writing 1j into an array of float32\)")
def complex_into_real_array():
    def f(x):
        x[0] = 1j  # <-- complex_into_real_array
    vmapc.trace(f, F32[4])


@entry("trace", CastError, r"cannot convert float NaN to integer \(writing nan into an array of int32\)")
def nan_into_int_array():
    def f(x):
        x[0] = float("nan")  # <-- nan_into_int_array
    vmapc.trace(f, I32[4])


@entry("trace", DTypeError, r"Cannot cast ufunc 'multiply' output from dtype\('float32'\) to dtype\('int32'\)")
def out_cast():
    def f(x, y):
        np.multiply(x, 2.0, out=y)  # <-- out_cast
    vmapc.trace(f, F32[4], I32[4])


@entry("trace", ShapeError, r"non-broadcastable output operand with shape \(3,\) doesn't match the broadcast shape "
                            r"\(2,3\)")
def out_shape():
    def f(x, y):
        np.add(x, 1, out=y)  # <-- out_shape
    vmapc.trace(f, F32[2, 3], F32[3])


@entry("trace", WriteError, r"the target is a traced Python float, which cannot be written into")
def write_into_python_number():
    def f(x, n):
        n[0] = 1  # <-- write_into_python_number
        return x
    vmapc.trace(f, F32[3], 4.0)


@entry("trace", WriteError, r"into a NumPy array that is not traced: a global, a closure")
def write_into_global_array():
    table = np.zeros(3, np.float32)

    def f(x):
        table[1] = x[0]  # <-- write_into_global_array
        return x
    vmapc.trace(f, F32[3])


@entry("trace", WriteError, r"numpy\.add\.at: the target is a NumPy array that is not traced")
def ufunc_at_into_global_array():
    hist = np.zeros(3, np.float32)
    vmapc.trace(lambda i: np.add.at(hist, i, 1.0), I32[5])  # <-- ufunc_at_into_global_array


@entry("trace", WriteError, r"the target belongs to an enclosing trace \(a closure")
def write_into_enclosing_trace():
    def outer(x, y):
        def inner(v):
            x[0] = v.sum()  # <-- write_into_enclosing_trace
            return v
        return vmapc.vmap(inner)(y)
    vmapc.trace(outer, F32[3], F32[2, 4])


@entry("trace", ReadOnlyError, r"assignment destination is read-only \(a read-only view, such as the result of "
                               r"np\.broadcast_to\)")
def write_into_broadcast_view():
    def f(x):
        b = np.broadcast_to(x, (2, 3))
        b[0] = 1.0  # <-- write_into_broadcast_view
    vmapc.trace(f, F32[3])


@entry("trace", UnsupportedError, r"assigning an array of shape \(4,\) through a traced boolean mask needs the number "
                                  r"of True elements")
def mask_assignment_of_an_array():
    def f(x, v):
        x[x > 0] = v  # <-- mask_assignment_of_an_array
    vmapc.trace(f, F32[4], F32[4])


@entry("trace", UnsupportedError, r"numpy\.place with a traced mask and more than one value")
def place_with_traced_mask():
    def f(x, v):
        np.place(x, x > 0, v)  # <-- place_with_traced_mask
    vmapc.trace(f, F32[4], F32[2])


@entry("batch", BatchingError, r"vmap: argument `acc` is not batched \(its in_dim is None\), but the function writes "
                               r"a value that differs from example to example into it")
def batched_write_into_unbatched_argument():
    def f(acc, x):
        acc += x  # <-- batched_write_into_unbatched_argument
    vmapc.vmap(f, in_dims=(None, 0))(np.zeros(3, np.float32), np.ones((2, 3), np.float32))


_WRITER = []


def writer():
    if not _WRITER:
        def scale(x):
            x *= 2.0
        _WRITER.append(vmapc.compile(scale))
    return _WRITER[0]


def _read_only(a):
    a.flags.writeable = False
    return a


@entry("call", ReadOnlyError, r"assignment destination is read-only: the function writes into argument `x`, which "
                              r"the caller passed read-only")
def read_only_argument():
    writer()(_read_only(np.ones(3, np.float32)))  # <-- read_only_argument


@entry("call", CallError, r"arguments `a` and `b` share memory and the function writes into `a`")
def aliased_arguments():
    buf = np.ones(4, np.float32)
    vmapc.compile(lambda a, b: np.add(a, b, out=a))(buf, buf)  # <-- aliased_arguments


@entry("trace", UnsupportedError, r"numpy\.ndarray\.sort is not supported by vmapc on traced arrays")
def unsupported_method():
    vmapc.trace(lambda x: x.sort(), F32[4])  # <-- unsupported_method


@entry("trace", UnsupportedError, r"numpy\.bincount of traced values: the result's length .* depends on the data; "
                                  r"pass a static minlength")
def bincount_without_minlength():
    vmapc.trace(lambda i: np.bincount(i), I32[5])  # <-- bincount_without_minlength


@entry("trace", UnsupportedError, r"numpy\.histogram: bins='auto' chooses the number of bins from the data")
def histogram_bins_estimator():
    vmapc.trace(lambda x: np.histogram(x, bins="auto"), F32[5])  # <-- histogram_bins_estimator


@entry("trace", UnsupportedError, r"ndarray\.view: viewing float32 as int16 \(another item size\) is not supported")
def view_other_item_size():
    vmapc.trace(lambda x: x.view(np.int16), F32[4])  # <-- view_other_item_size


@entry("trace", UnsupportedError, r"numpy\.subtract\.accumulate is not supported by vmapc \(only add, multiply")
def ufunc_accumulate_without_scan():
    vmapc.trace(lambda x: np.subtract.accumulate(x), F32[4])  # <-- ufunc_accumulate_without_scan


@entry("trace", TracingError, r"top_k: k must be a static Python int")
def top_k_traced_k():
    vmapc.trace(lambda x, k: vmapc.numpy.top_k(x, k), F32[4], np.int32(2))  # <-- top_k_traced_k


@entry("trace", ShapeError, r"top_k: k=5 is not in \[0, 4\] \(the size of axis 0\)")
def top_k_too_many():
    vmapc.trace(lambda x: vmapc.numpy.top_k(x, 5), F32[4])  # <-- top_k_too_many


@entry("trace", OutOfBoundsError, r"numpy\.partition: kth\(=4\) out of bounds \(4\)")
def partition_kth_out_of_bounds():
    vmapc.trace(lambda x: np.partition(x, 4), F32[4])  # <-- partition_kth_out_of_bounds


@entry("trace", ShapeError, r"numpy\.cross: incompatible dimensions for cross product")
def cross_dimensions():
    vmapc.trace(lambda a, b: np.cross(a, b), F32[4], F32[4])  # <-- cross_dimensions


@entry("trace", ShapeError, r"sliding_window_view: window shape cannot be larger than input array shape")
def window_too_large():
    vmapc.trace(lambda x: np.lib.stride_tricks.sliding_window_view(x, 5), F32[4])  # <-- window_too_large


@entry("trace", ShapeError, r"numpy\.linalg\.inv: last 2 dimensions of the array must be square, got shape \(2, 3\)")
def linalg_not_square():
    vmapc.trace(lambda a: np.linalg.inv(a), F32[2, 3])  # <-- linalg_not_square


@entry("trace", ShapeError, r"numpy\.linalg\.solve: b has 3 rows where a has 2")
def linalg_solve_mismatch():
    vmapc.trace(lambda a, b: np.linalg.solve(a, b), F32[2, 2], F32[3])  # <-- linalg_solve_mismatch


@entry("trace", DTypeError, r"numpy\.linalg\.inv: array type float16 is unsupported in linalg")
def linalg_float16():
    vmapc.trace(lambda a: np.linalg.inv(a), vmapc.f16[2, 2])  # <-- linalg_float16


@entry("trace", UnsupportedError, r"numpy\.linalg\.qr: mode='raw' \(LAPACK's Householder vectors\) is not supported")
def linalg_qr_raw():
    vmapc.trace(lambda a: np.linalg.qr(a, "raw"), F32[2, 2])  # <-- linalg_qr_raw


@entry("trace", ShapeError, r"add: operands could not be broadcast together with shapes \(3,\) \(4,\)")
def broadcast_mismatch():
    vmapc.trace(lambda x, y: x + y, F32[3], F32[4])  # <-- broadcast_mismatch


@entry("trace", ShapeError, r"cannot reshape array of size 4 into shape \(5,\)")
def reshape_size_mismatch():
    vmapc.trace(lambda x: x.reshape(5), F32[4])  # <-- reshape_size_mismatch


@entry("trace", ShapeError, r"matmul: Input operand 1 has a mismatch in its core dimension 0 \(size 3 is different from 4\)")
def matmul_mismatch():
    vmapc.trace(lambda a, b: a @ b, F32[3, 4], F32[3, 4])  # <-- matmul_mismatch


@entry("trace", OutOfBoundsError, r"numpy\.sum: axis 2 is out of bounds for array of dimension 1")
def axis_out_of_bounds():
    vmapc.trace(lambda x: x.sum(axis=2), F32[4])  # <-- axis_out_of_bounds


@entry("trace", OutOfBoundsError, r"index 7 is out of bounds for axis 0 with size 4")
def static_index_out_of_bounds():
    vmapc.trace(lambda x: x[7], F32[4])  # <-- static_index_out_of_bounds


@entry("trace", DTypeError, r"the Python int 1180591620717411303424 does not fit int64")
def python_int_too_big_for_the_dtype():
    vmapc.trace(lambda x: x + 2 ** 70, vmapc.i64[3])  # <-- python_int_too_big_for_the_dtype


@entry("trace", DTypeError, r"numpy\.bitwise_and: ufunc 'bitwise_and' not supported for the input types")
def dtype_not_accepted():
    vmapc.trace(lambda x: x & x, F32[4])  # <-- dtype_not_accepted


@entry("trace", DTypeError, r"maximum: operand has dtype complex64, expected a real \(not complex\) dtype "
                           r"\(complex numbers have no order\)")
def complex_ordering():
    vmapc.trace(lambda x: np.maximum(x * 1j, 0), F32[4])  # <-- complex_ordering


@entry("trace", DTypeError, r"sort: key has dtype complex128, expected a real \(not complex\) dtype")
def complex_sort():
    vmapc.trace(lambda z: np.sort(z), vmapc.c128[4])  # <-- complex_sort


@entry("trace", TracingError, r"argument `z` has type complex, .* \(pass np\.complex128\(\.\.\.\) for a complex number\)")
def complex_python_argument():
    vmapc.trace(lambda z: z * 2, 1 + 2j)  # <-- complex_python_argument


@entry("trace", DTypeError, r"integers to negative integer powers are not allowed; convert to a float dtype first")
def integer_negative_power():
    vmapc.trace(lambda x: x ** -1, I32[4])  # <-- integer_negative_power


@entry("trace", DTypeError, r"dtype object is not supported by vmapc")
def captured_object_array():
    table = np.array([1, "a"], dtype=object)
    vmapc.trace(lambda x: x + table, F32[2])  # <-- captured_object_array


@entry("trace", TracingError, r"slice bounds must be static Python ints; .* vmapc\.numpy\.dynamic_slice")
def traced_slice_bound():
    vmapc.trace(lambda x, n: x[:n], F32[4], I32[()])  # <-- traced_slice_bound


_LEAKED = []


@entry("trace", TracingError, r"a tracer from another \(finished or outer\) trace: a traced value escaped")
def escaped_tracer():
    vmapc.trace(lambda x: _LEAKED.append(x) or x, F32[3])
    vmapc.trace(lambda y: y + _LEAKED[-1], F32[3])  # <-- escaped_tracer




@entry("trace", TracingError, r"argument `x` is a NumPy array of dtype object; vmapc needs numeric arrays")
def object_array_argument():
    vmapc.trace(lambda x: x, np.array([1, None], dtype=object))  # <-- object_array_argument


@entry("trace", DTypeError, r"argument `x`: dtype complex256 is not supported by vmapc \(supported: bool, int8")
def long_complex_argument():
    vmapc.trace(lambda x: x, np.zeros(3, np.clongdouble))  # <-- long_complex_argument


@entry("trace", ShapeError, r"the spec would have shape \(1099511627776,1099511627776\) of float32: .* more than "
                            r"the 2\*\*63 - 1 bytes")
def huge_spec():
    vmapc.trace(lambda x: x.reshape(-1), F32[2 ** 40, 2 ** 40])  # <-- huge_spec


@entry("trace", ShapeError, r"broadcast_in_dim: the result would have shape \(1099511627776,1099511627776\)")
def huge_broadcast():
    vmapc.trace(lambda x: np.broadcast_to(x, (2 ** 40, 2 ** 40)), F32[1])  # <-- huge_broadcast


@entry("trace", ShapeError, r"multiply: the result would have shape \(4294967296,4294967296\)")
def huge_outer_product():
    vmapc.trace(lambda x: np.outer(x, x), F32[2 ** 32])  # <-- huge_outer_product


# --- random numbers --------------------------------------------------------------------------------

KEY = vmapc.random.key(0)
GLOBAL_RNG = np.random.default_rng(0)


@entry("trace", UnsupportedError, r"numpy\.random\.normal inside a traced function draws once, while tracing: "
                                  r"its numbers would be constants .* Use vmapc\.random with a key argument")
def numpy_random_in_trace():
    vmapc.trace(lambda x: x + np.random.normal(size=3), F32[3])  # <-- numpy_random_in_trace


@entry("trace", UnsupportedError, r"the numpy\.random\.Generator `GLOBAL_RNG` inside a traced function draws once")
def numpy_generator_in_trace():
    def f(x):  # <-- numpy_generator_in_trace
        return x + GLOBAL_RNG.normal(size=3)
    vmapc.trace(f, F32[3])


@entry("trace", DTypeError, r"vmapc\.random\.normal: key must be a uint32 array of shape \(2,\) \(from "
                            r"vmapc\.random\.key\(seed\) or split\), got dtype int32")
def random_key_dtype():
    vmapc.trace(lambda k: vmapc.random.normal(k, (3,)), I32[2])  # <-- random_key_dtype


@entry("trace", ShapeError, r"vmapc\.random\.normal: key must have shape \(2,\), got shape \(3, 2\) \(an array "
                            r"of keys: take one, or vmap over them\)")
def random_key_shape():
    vmapc.trace(lambda k: vmapc.random.normal(k, (3,)), vmapc.u32[3, 2])  # <-- random_key_shape


@entry("trace", ShapeError, r"vmapc\.random\.normal: shape must be static \(Python ints\), got a traced value")
def random_shape_not_static():
    vmapc.trace(lambda n: vmapc.random.normal(KEY, (n,)), I32[()])  # <-- random_shape_not_static


@entry("trace", DTypeError, r"vmapc\.random\.normal: dtype float64 is not supported \(supported: float16, "
                            r"float32\): float64 draws would need")
def random_float64_normal():
    vmapc.trace(lambda k: vmapc.random.normal(k, (3,), np.float64), vmapc.u32[2])  # <-- random_float64_normal


@entry("trace", ShapeError, r"vmapc\.random\.permutation: 100000 elements; permutations are ranked by comparing "
                            r"every pair, so at most 65536 elements")
def random_permutation_too_long():
    vmapc.trace(lambda k: vmapc.random.permutation(k, 100_000), vmapc.u32[2])  # <-- random_permutation_too_long


@entry("trace", UnsupportedError, r"vmapc\.random\.truncated_normal: lower must be known when tracing")
def random_traced_truncation_bound():
    vmapc.trace(lambda lo: vmapc.random.truncated_normal(KEY, lo, 2.0, (3,)), F32[()])  # <-- random_traced_truncation_bound


# --- control flow ----------------------------------------------------------------------------------

@entry("trace", ControlFlowError, r"vmapc\.cond: the branches return different structures: false_fn returns "
                                  r"\(\*, \*\) and true_fn returns \*")
def cond_branches_differ_in_structure():
    vmapc.trace(lambda x: vmapc.cond(x[0] > 0, lambda a: a, lambda a: (a, a), x), F32[3])  # <-- cond_branches_differ_in_structure


@entry("trace", ControlFlowError, r"vmapc\.switch: the branches return different dtypes for output: "
                                  r"branches\[0\] returns f32\[3\], branches\[1\] returns i32\[3\]")
def switch_branches_differ_in_dtype():
    vmapc.trace(lambda x, i: vmapc.switch(i, [lambda a: a, lambda a: a.astype(np.int32)], x), F32[3], I32[()])  # <-- switch_branches_differ_in_dtype


@entry("trace", ControlFlowError, r"vmapc\.cond: the branches return different shapes for output: "
                                  r"false_fn returns f32\[\], true_fn returns f32\[3\]")
def cond_branches_differ_in_shape():
    vmapc.trace(lambda x: vmapc.cond(x[0] > 0, lambda a: a, lambda a: a.sum(), x), F32[3])  # <-- cond_branches_differ_in_shape


@entry("trace", ControlFlowError, r"vmapc\.cond: the predicate must be a 0-d bool or integer, got bool\[3\] "
                                  r"\(reduce it first, e\.g\. with \.any\(\) or \.all\(\)\)")
def cond_predicate_not_scalar():
    vmapc.trace(lambda x: vmapc.cond(x > 0, lambda a: a, lambda a: -a, x), F32[3])  # <-- cond_predicate_not_scalar


@entry("trace", ControlFlowError, r"vmapc\.cond: the predicate must be a 0-d bool or integer, got f32\[\] "
                                  r"\(compare it first, e\.g\. x > 0\)")
def cond_predicate_float():
    vmapc.trace(lambda x: vmapc.cond(x[0], lambda a: a, lambda a: -a, x), F32[3])  # <-- cond_predicate_float


@entry("trace", ControlFlowError, r"vmapc\.switch: branches is empty")
def switch_without_branches():
    vmapc.trace(lambda x, i: vmapc.switch(i, [], x), F32[3], I32[()])  # <-- switch_without_branches


@entry("trace", ControlFlowError, r"vmapc\.while_loop: the body changes the shape of the carry init_val\[1\] "
                                  r"from f32\[3\] to f32\[\]; a loop carry keeps its shape and dtype")
def while_body_changes_shape():
    vmapc.trace(lambda x: vmapc.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1].sum()), (0, x)), F32[3])  # <-- while_body_changes_shape


@entry("trace", ControlFlowError, r"vmapc\.fori_loop: the body changes the dtype of the carry init_val from "
                                  r"f32\[3\] to f64\[3\]; a loop carry keeps its shape and dtype")
def fori_body_changes_dtype():
    vmapc.trace(lambda x: vmapc.fori_loop(0, 3, lambda i, c: c * np.float64(2), x), F32[3])  # <-- fori_body_changes_dtype


@entry("trace", ControlFlowError, r"vmapc\.scan: the body returns a carry of structure \(\*, \*\), but the init "
                                  r"has structure \*")
def scan_body_changes_structure():
    vmapc.trace(lambda x: vmapc.scan(lambda c, t: ((c, c), t), 0.0, x), F32[3])  # <-- scan_body_changes_structure


@entry("trace", ControlFlowError, r"vmapc\.while_loop: cond_fn must return a 0-d bool, got bool\[3\]")
def while_cond_not_scalar():
    vmapc.trace(lambda x: vmapc.while_loop(lambda c: c > 0, lambda c: c - 1, x), F32[3])  # <-- while_cond_not_scalar


@entry("trace", ShapeError, r"vmapc\.scan: the inputs have different lengths along axis 0 \(xs\[0\] has 3, "
                            r"xs\[1\] has 4\)")
def scan_lengths_differ():
    vmapc.trace(lambda x, y: vmapc.scan(lambda c, t: (c, t[0] * t[1]), 0.0, (x, y)), F32[3], F32[4])  # <-- scan_lengths_differ


@entry("trace", ControlFlowError, r"vmapc\.scan: f must return a pair \(carry, y\), got a value of structure \*")
def scan_body_not_a_pair():
    vmapc.trace(lambda x: vmapc.scan(lambda c, t: c + t, 0.0, x), F32[3])  # <-- scan_body_not_a_pair


# --- batching --------------------------------------------------------------------------------------

def add(x, y):
    return x + y


def draw(x, key):
    return x + vmapc.random.normal(key, x.shape)  # <-- randomness_error


@entry("batch", BatchingError, r"vmap: vmapc\.random\.normal draws from a key that is the same for every example, "
                               r"so every example would get the same numbers \(randomness='error', the default\)\. "
                               r"Pass one key per example")
def randomness_error():
    vmapc.vmap(draw, in_dims=(0, None))(np.zeros((4, 3), np.float32), KEY)


@entry("batch", BatchingError, r"vmap: randomness must be 'error', 'same' or 'different', got 'diff'")
def randomness_unknown():
    vmapc.vmap(draw, randomness="diff")  # <-- randomness_unknown


@entry("batch", BatchingError, r"vmapc\.compile: randomness needs in_dims", loc=False)
def randomness_without_in_dims():
    vmapc.compile(draw, randomness="different")


@entry("batch", BatchingError, r"randomness needs in_dims \(it says what a vmap does with random draws",
       loc=False)
def export_randomness_without_in_dims():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        vmapc.export(draw, d, args=(F32[3], vmapc.u32[2]), randomness="different")


@entry("batch", BatchingError, r"vmapc\.export: an input is named 'example_offset', the name "
                               r"randomness='different' gives the index of the first example; rename it", loc=False)
def export_input_named_example_offset():
    import tempfile

    def f(x, example_offset):
        return x + vmapc.random.normal(vmapc.random.key(0), (3,)) + example_offset
    with tempfile.TemporaryDirectory() as d:
        vmapc.export(f, d, args=(F32[3], F32[()]), in_dims=(0, None), batch=4, randomness="different")


@entry("batch", BatchingError, r"vmap: in_dims is 2 but argument `x` has rank 2 \(valid: -2\.\.1\)")
def in_dims_out_of_range():
    vmapc.vmap(lambda x: x * 2, in_dims=2)(X)  # <-- in_dims_out_of_range


@entry("batch", BatchingError, r"vmap: batch sizes disagree: argument `x` has size 2 at axis 0, "
                               r"argument `y` has size 4 at axis 0")
def mismatched_batch_sizes():
    vmapc.vmap(add)(X, np.zeros((4, 3), np.float32))  # <-- mismatched_batch_sizes


@entry("batch", BatchingError, r"in_dims has 2 entries but the function was called with 1 positional arguments")
def in_dims_wrong_length():
    vmapc.vmap(lambda x: x, in_dims=(0, 0))(X)  # <-- in_dims_wrong_length


@entry("batch", BatchingError, r"in_dims\[1\] is 0 but argument `y` is a Python float, not an array; use None")
def in_dims_on_python_number():
    vmapc.vmap(add, in_dims=(0, 0))(X, 2.0)  # <-- in_dims_on_python_number


@entry("batch", BatchingError, r"vmap: in_dims must be an int, None, or a tuple with one entry per positional "
                               r"argument, got a str '0'")
def in_dims_not_an_int():
    vmapc.vmap(lambda x: x, in_dims="0")(X)  # <-- in_dims_not_an_int


@entry("batch", BatchingError, r"in_dims must be an int, None, or a tuple .* got a dict \{'a': 0\}; for a "
                               r"function taking one dict, write in_dims=\(\{\.\.\.\},\)")
def in_dims_a_dict():
    vmapc.vmap(lambda p: p["a"], in_dims={"a": 0})  # <-- in_dims_a_dict


@entry("batch", BatchingError, r"in_dims has 2 entries but the function was called with 0 positional arguments "
                               r"and keyword arguments \['x', 'y'\], .* keyword arguments are always batched "
                               r"along axis 0")
def tuple_in_dims_with_keywords():
    vmapc.vmap(add, in_dims=(0, None))(x=X, y=X)  # <-- tuple_in_dims_with_keywords


@entry("batch", BatchingError, r"in_dims\[0\] at argument `xs` is a tuple, but argument `xs` is a list of 2; a "
                               r"container in it must be the same kind of container as the value")
def tuple_in_dims_for_a_list():
    vmapc.vmap(lambda xs: xs[0] + xs[1], in_dims=((0, 0),))([X, X])  # <-- tuple_in_dims_for_a_list


@entry("batch", BatchingError, r"vmap: add\(x, y\) cannot be called with these arguments: missing a required "
                               r"argument: 'x'")
def vmap_missing_argument():
    vmapc.vmap(add)()  # <-- vmap_missing_argument


@entry("batch", BatchingError, r"out_dims for output 0 must be an int or None, got '0' \(a str\)")
def out_dims_not_an_int():
    vmapc.vmap(lambda x: x * 2, out_dims="0")(X)  # <-- out_dims_not_an_int


@entry("batch", BatchingError, r"out_dims at the output\[1\] is 0, but the function returned a str \('done'\) "
                               r"there, not an array; give it out_dims None to return it as it is")
def vmap_returns_a_string():
    vmapc.vmap(lambda x: (x * 2, "done"))(X)  # <-- vmap_returns_a_string


@entry("batch", BatchingError, r"vmap: axis_name must be a non-empty str, got 3")
def axis_name_not_a_string():
    vmapc.vmap(lambda x: x, axis_name=3)  # <-- axis_name_not_a_string


@entry("batch", BatchingError, r"psum: the axis name 'batch' is not bound by an enclosing "
                               r"vmapc\.vmap\(\.\.\., axis_name='batch'\) \(bound here: 'rows'\)")
def unbound_axis_name():
    def f(x):
        return x - vmapc.psum(x, "batch")  # <-- unbound_axis_name
    vmapc.vmap(f, axis_name="rows")(X)


@entry("batch", BatchingError, r"vmap: axis_name 'i' is already bound by an enclosing vmap; nested vmaps need "
                               r"distinct axis names")
def axis_name_reused():
    def row(r):
        return vmapc.vmap(lambda v: v - vmapc.pmean(v, "i"), axis_name="i")(r)  # <-- axis_name_reused
    vmapc.vmap(row, axis_name="i")(X)


@entry("batch", DTypeError, r"psum: operand has dtype bool, expected a integer or floating-point dtype")
def psum_of_bools():
    vmapc.vmap(lambda x: vmapc.psum(x > 0, "i"), axis_name="i")(X)  # <-- psum_of_bools


@entry("batch", BatchingError, r"out_dims for output 0 is None, but that output depends on the batched inputs")
def out_dims_none_for_batched_output():
    vmapc.vmap(lambda x: x * 2, out_dims=None)(X)  # <-- out_dims_none_for_batched_output


@entry("batch", BatchingError, r"out_dims for output 0 is 5 but the batched output has rank 2 \(valid: -2\.\.1\)")
def out_dims_out_of_range():
    vmapc.vmap(lambda x: x * 2, out_dims=5)(X)  # <-- out_dims_out_of_range


@entry("batch", BatchingError, r"no argument is batched \(every in_dim is None\) and axis_size is not given")
def no_batched_argument_no_axis_size():
    vmapc.vmap(lambda x: x * 2, in_dims=None)(X)  # <-- no_batched_argument_no_axis_size


@entry("batch", BatchingError, r"axis_size is 3 but the batched arguments have size 2")
def axis_size_disagrees():
    vmapc.vmap(lambda x: x * 2, axis_size=3)(X)  # <-- axis_size_disagrees


@entry("batch", BatchingError, r"batch sizes disagree: argument `p` has size 3 at axis 0, argument `q` has size 5")
def nested_vmap_sizes_disagree():
    def outer(a, b):
        return vmapc.vmap(lambda p, q: p + q)(a, b)  # <-- nested_vmap_sizes_disagree
    vmapc.vmap(outer)(np.zeros((2, 3, 4), np.float32), np.zeros((2, 5, 4), np.float32))


def _tanh_model(x):
    return np.tanh(x) * 2  # <-- fallback_switched_off


@entry("batch", BatchingError, r"op tanh has no batching rule and the loop-and-stack fallback is switched off")
def fallback_switched_off():
    saved = rules.BATCH_RULES.pop("tanh")
    try:
        with rules.fallback_mode("error"):
            vmapc.vmap(_tanh_model).trace_batched((X,), {})
    finally:
        rules.BATCH_RULES["tanh"] = saved


@entry("batch", BatchingError, r"batch='dynamic' needs at least one batched argument")
def dynamic_batch_without_batched_argument():
    f = vmapc.compile(lambda x: x + 1, in_dims=(None,), axis_size=3, batch="dynamic")
    f(V)  # <-- dynamic_batch_without_batched_argument


@entry("batch", ShapeError, r"vmap: output 0 batched would have shape \(4611686018427387904,4\) of float32")
def huge_axis_size():
    vmapc.vmap(lambda x: x * 2, in_dims=None, axis_size=2 ** 62)(V)  # <-- huge_axis_size


@entry("batch", BatchingError, r"vmap: out_dims\[0\] is 7 but output 0 has rank 1", loc=False)
def ir_vmap_out_dims_out_of_range():
    vmapc.vmap(vmapc.trace(lambda x: x, F32[3]), in_dims=0, out_dims=7, axis_size=2)


# --- automatic differentiation ------------------------------------------------------------------

@entry("autodiff", AutodiffError, r"vmapc\.grad: the function computes with complex numbers \(c64\[\]\); vmapc does "
       r"not differentiate complex values")
def grad_of_complex():
    vmapc.grad(lambda x: np.abs(np.exp(1j * x)).sum())(V)  # <-- grad_of_complex


@entry("autodiff", AutodiffError, r"vmapc\.grad: argument `n` \(argnums=1\) has dtype int32; only floating-point "
       r"arguments can be differentiated")
def grad_with_respect_to_an_integer():
    vmapc.grad(lambda x, n: np.sum(x * n), argnums=(0, 1))(X, np.int32(3))  # <-- grad_with_respect_to_an_integer


@entry("autodiff", AutodiffError, r"vmapc\.grad: the function must return a floating-point scalar \(0-d\), but it "
       r"returned f32\[2,3\]; for a non-scalar output use vmapc\.jacrev or vmapc\.vjp")
def grad_of_a_non_scalar():
    def model(x):
        return vmapc.grad(np.tanh)(x)  # <-- grad_of_a_non_scalar
    vmapc.compile(model)(X)


@entry("autodiff", AutodiffError, r"vmapc\.grad: the function must return a scalar, but it returned a tuple of 2")
def grad_of_a_pair_without_has_aux():
    vmapc.grad(lambda x: (np.sum(x), x))(X)  # <-- grad_of_a_pair_without_has_aux


@entry("autodiff", AutodiffError, r"vmapc\.value_and_grad\(has_aux=True\): the function must return a pair "
       r"\(output, aux\), but it returned a single array")
def has_aux_without_a_pair():
    vmapc.value_and_grad(lambda x: np.sum(x), has_aux=True)(X)  # <-- has_aux_without_a_pair


@entry("autodiff", AutodiffError, r"vmapc\.grad\(has_aux=True\): the function must return a pair \(output, aux\), "
       r"but it returned a tuple of 3")
def has_aux_with_three_results():
    vmapc.grad(lambda x: (np.sum(x), x, x), has_aux=True)(X)  # <-- has_aux_with_three_results


@entry("autodiff", AutodiffError, r"vmapc\.jvp: tangents\[0\] has type f32\[4\] but the value it goes with has "
       r"type f32\[2,3\]")
def jvp_tangent_of_the_wrong_shape():
    vmapc.jvp(np.sin, (X,), (V,))  # <-- jvp_tangent_of_the_wrong_shape


@entry("autodiff", AutodiffError, r"vmapc\.vjp: the cotangent has structure \(\*, \*\) but the output \*")
def vjp_cotangent_of_the_wrong_structure():
    _, pullback = vmapc.vjp(np.sin, X)
    pullback((X, X))  # <-- vjp_cotangent_of_the_wrong_structure


@entry("autodiff", AutodiffError, r"vmapc\.jacrev: argnums 2 is out of range for a call with 1 positional arguments")
def argnums_out_of_range():
    vmapc.jacrev(np.sin, argnums=2)(X)  # <-- argnums_out_of_range


@entry("autodiff", AutodiffError, r"vmapc\.jacrev: output 0 has dtype int64; reverse mode needs floating-point outputs")
def jacrev_of_an_integer_output():
    vmapc.jacrev(lambda x: np.argmax(x, axis=0))(X)  # <-- jacrev_of_an_integer_output


@entry("autodiff", AutodiffError, r"reverse-mode differentiation \(grad, vjp, jacrev\) of while_loop: the number "
       r"of steps is only known at run time")
def grad_through_while_loop():
    def f(x):
        step = lambda c: (c[0] + 1, np.sin(c[1]))  # noqa: E731
        _, y = vmapc.while_loop(lambda c: c[0] < 3, step, (np.int32(0), x))  # <-- grad_through_while_loop
        return np.sum(y)
    vmapc.grad(f)(X)


@entry("autodiff", NotCallableError, r"vmapc\.grad: expected a function, got int")
def grad_of_non_function():
    vmapc.grad(3)  # <-- grad_of_non_function


@entry("trace", NotCallableError, r"vmap: expected a function, got int", loc=False)
def vmap_of_non_function():
    vmapc.vmap(3)


@entry("trace", NotCallableError, r"vmapc.compile: expected a function, got int", loc=False)
def compile_of_non_function():
    vmapc.compile(3)


@entry("trace", NotCallableError, r"vmapc.trace: expected a function, got str", loc=False)
def trace_of_non_function():
    vmapc.trace("f", F32[3])


# --- lowering, compiling and targets ------------------------------------------------------------------

@entry("compile", TargetError, r"unknown target 'tpu' \(known: cpu, vulkan, cuda\)", loc=False)
def unknown_target():
    vmapc.compile(lambda x: x, target="tpu")


@entry("compile", TargetError, r"dtype float64 is not supported by target vulkan:baseline")
def dtype_the_target_lacks():
    vmapc.compile(lambda x: np.exp(x), target="vulkan:baseline").lower(V.astype(np.float64)).compile()  # <-- dtype_the_target_lacks


@entry("compile", TargetError, r"exp: complex128 exp is not available on target vulkan: IREE computes it with "
       r"float64 exp/log/sin/cos")
def complex128_math_on_vulkan():
    vmapc.compile(np.exp, target="vulkan").lower(V.astype(np.complex128)).compile()  # <-- complex128_math_on_vulkan


def _cuda_available():
    try:
        from iree import runtime as rt
        rt.get_driver("cuda").create_default_device()
        return True
    except Exception:
        return False


@entry("compile", TargetError, r"cannot open IREE driver 'cuda'")
def target_unavailable_here():
    if _cuda_available():
        pytest.skip("this machine has a CUDA device, so target='cuda' works here")
    vmapc.compile(lambda x: x * 2, target="cuda")(V)  # <-- target_unavailable_here


def _ipowi(lctx, eqn, xs):
    from iree.compiler.dialects import math as mathd
    return [lctx.map_scalars(xs, [v.type for v in eqn.inputs], eqn.outputs[0].type, mathd.ipowi)]


def _power_model(x, y):
    return x ** y  # <-- iree_rejects_an_op


@entry("compile", CompileError, r"^IREE failed to compile power: failed to legalize operation 'math\.ipowi'")
def iree_rejects_an_op():
    # IREE cannot lower math.ipowi on the CPU: swap it into the lowering of `power`
    saved = lowering.LOWERINGS["power"]
    lowering.LOWERINGS["power"] = _ipowi
    try:
        vmapc.compile(_power_model, in_dims=0)(np.ones((2, 3), np.int32), np.ones((2, 3), np.int32))
    finally:
        lowering.LOWERINGS["power"] = saved


def _broken_rule(lctx, eqn, xs):
    raise ValueError("no lowering today")


def _exp_model(x):
    return np.exp(x) * 3  # <-- lowering_rule_fails


@entry("compile", CompileError, r"iree-compile did not finish within 0\.001 s \(VMAPC_COMPILE_TIMEOUT\) compiling main")
def compile_past_the_time_limit():
    os.environ["VMAPC_COMPILE_TIMEOUT"] = "0.001"
    try:
        vmapc.compile(lambda x: x * 3.0 - 1.25)(V)  # <-- compile_past_the_time_limit
    finally:
        del os.environ["VMAPC_COMPILE_TIMEOUT"]


@entry("compile", LoweringError, r"_exp_model: cannot lower exp: no lowering today")
def lowering_rule_fails():
    saved = lowering.LOWERINGS["exp"]
    lowering.LOWERINGS["exp"] = _broken_rule
    try:
        vmapc.compile(_exp_model).lower(V).mlir
    finally:
        lowering.LOWERINGS["exp"] = saved


# --- calling compiled code -------------------------------------------------------------------------

_EXE = []


def executable():
    """A compiled x @ y for float32 (2, 3) @ (3, 2), bound to that signature."""
    if not _EXE:
        _EXE.append(vmapc.compile(lambda x, y: x @ y).lower(X, X.T).compile())
    return _EXE[0]


_TWICE = []


def twice():
    if not _TWICE:
        _TWICE.append(vmapc.compile(lambda x: x * 2))
    return _TWICE[0]


@entry("call", CallError, r"main: argument 0 has shape \(6,\), expected \(2, 3\)")
def wrong_rank_for_executable():
    executable()(X.reshape(-1), X.T)  # <-- wrong_rank_for_executable


@entry("call", CallError, r"main: argument 1 has dtype float64, expected float32")
def wrong_dtype_for_executable():
    executable()(X, X.T.astype(np.float64))  # <-- wrong_dtype_for_executable


@entry("call", CallError, r"main: expected 2 array arguments, got 1")
def wrong_argument_count():
    executable()(X)  # <-- wrong_argument_count


@entry("call", CallError, r"main: argument `x` is the static str 'abc', but this executable was compiled for "
                           r"an array there")
def string_argument_to_executable():
    executable()("abc", X.T)  # <-- string_argument_to_executable


@entry("call", CallError, r"argument `s` is static \(a set: not an array or a Python float, or declared in "
                           r"static_argnums/static_argnames\), and static values must be hashable")
def unhashable_static_argument():
    vmapc.compile(lambda x, s: x * len(s))(X, {1, 2})  # <-- unhashable_static_argument


@entry("call", CallError, r"vmapc\.compile: static_argnums 5 is out of range: add has 2 positional parameter")
def static_argnums_out_of_range():
    vmapc.compile(add, static_argnums=5)  # <-- static_argnums_out_of_range


@entry("call", CallError, r"vmapc\.compile: static_argnames 'z' is not a parameter of add \(its parameters: x, y\)")
def static_argnames_unknown():
    vmapc.compile(add, static_argnames="z")  # <-- static_argnames_unknown


@entry("call", BatchingError, r"vmap: in_dims\[1\] is 0 but argument `y` is static \(static_argnums/"
                              r"static_argnames\) and cannot be batched; give it None")
def batched_static_argument():
    vmapc.compile(add, in_dims=(0, 0), static_argnums=1)(X, 2.0)  # <-- batched_static_argument


@entry("call", CallError, r"add: argument `y` is the static float 3\.0, but this executable was compiled for "
                           r"the static float 2\.0 there")
def other_static_value_for_executable():
    exe = vmapc.compile(add, static_argnums=1).lower(X, 2.0).compile()
    exe(X, 3.0)  # <-- other_static_value_for_executable


@entry("call", CallError, r"argument 0 is a NumPy array of dtype object; vmapc needs numeric arrays")
def object_array_call():
    twice()(np.array([1.0, None], dtype=object))  # <-- object_array_call


@entry("call", CallError, r"argument 0 has dtype complex256, which vmapc does not support")
def long_complex_array_call():
    twice()(np.zeros(3, np.clongdouble))  # <-- long_complex_array_call


@entry("call", CallError, r"argument 0 is a tracer: call the compiled function on arrays, or use vmapc\.vmap")
def compiled_function_called_on_an_escaped_tracer():
    vmapc.trace(lambda x: _LEAKED.append(x) or x, F32[3])
    twice()(_LEAKED[-1])  # <-- compiled_function_called_on_an_escaped_tracer


@entry("call", BatchingError, r"batch sizes disagree: argument `x` has size 2 at axis 0, argument `y` has size 3")
def dynamic_batch_sizes_disagree():
    f = vmapc.compile(add, in_dims=0, batch="dynamic")
    f(X, np.zeros((3, 3), np.float32))  # <-- dynamic_batch_sizes_disagree


@entry("call", ExecutionError, r"the compiled code failed while running: .*RESOURCE_EXHAUSTED")
def result_too_big_for_memory():
    # 2**60 bytes fit the int64 size check but no machine's memory
    vmapc.compile(lambda x: np.broadcast_to(x, (2 ** 58,)))(V[:1])  # <-- result_too_big_for_memory


@entry("call", CallError, r"add: too many positional arguments \(its parameters: x, y\)")
def too_many_arguments_to_a_compiled_function():
    vmapc.compile(add)(V, V, V)  # <-- too_many_arguments_to_a_compiled_function


@entry("call", CallError, r"add: unexpected keyword argument 'z' \(its parameters: x, y\)")
def unknown_keyword_to_a_compiled_function():
    vmapc.compile(add, in_dims=0)(X, y=X, z=X)  # <-- unknown_keyword_to_a_compiled_function


@entry("call", CallError, r"argument 0 is a numpy\.ma\.MaskedArray: compiled code sees only its data, so its mask")
def masked_array_argument():
    twice()(np.ma.masked_array(V, [0, 1, 0, 0]))  # <-- masked_array_argument


@entry("call", CallError, r"argument 0 is a numpy\.matrix: compiled code sees only its data, so its \* and \*\*")
def matrix_argument():
    twice()(np.matrix([[1.0, 2.0]]))  # <-- matrix_argument


@entry("call", DTypeError, r"the Python int 1180591620717411303424 does not fit int64")
def python_int_too_big_for_the_argument():
    def f(x, n):                # a Python int argument is static: it meets x while tracing
        return x + n  # <-- python_int_too_big_for_the_argument
    vmapc.compile(f)(np.arange(3), 2 ** 70)


@entry("call", CallError, r"argument 0 is a broadcast view \(a stride of 0\) of shape \(17592186044416, 16\)")
def broadcast_view_too_big_to_copy():
    x = np.broadcast_to(np.float32(1.0), (2 ** 44, 16))   # 1 TiB as a dense copy; 4 bytes here
    vmapc.compile(lambda a: a[0] * 2)(x)  # <-- broadcast_view_too_big_to_copy


@entry("call", ExecutionError, r"main: the compiled code failed while running: .*RESOURCE_EXHAUSTED", loc=False)
def artifact_result_too_big_for_memory():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        vmapc.export(lambda x: np.broadcast_to(x, (2 ** 57,)), os.path.join(d, "out"), args=[F32[1]],
                     in_dims=[0], batch="dynamic")
        vmapc.load(os.path.join(d, "out"))(np.ones((1, 1), np.float32))


@entry("call", ArtifactError, r"targets\.cpu\.sha256 is missing or not a SHA-256 in hex", loc=False)
def artifact_without_a_checksum():
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out")
        m = vmapc.export(add, out, args=[F32[3], F32[3]])
        del m["targets"]["cpu"]["sha256"]
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(m, f)
        vmapc.load(out)


@entry("call", ArtifactError, r"outputs\[0\]: the name '\.\./evil' is not a plain identifier", loc=False)
def artifact_output_name_that_is_a_path():
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out")
        m = vmapc.export(add, out, args=[F32[3], F32[3]])
        m["outputs"][0]["name"] = "../evil"
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(m, f)
        vmapc.load(out)


@entry("call", CallError, r"argument 0 has shape \(4,\), expected f32\[3\]", loc=False)
def reference_evaluator_wrong_shape():
    vmapc.eval(vmapc.trace(lambda x: x, F32[3]), V)


@entry("call", ArtifactError, r"not a valid IREE module", loc=False)
def corrupt_module_bytes():
    from vmapc.runtime import Module
    Module(b"definitely not a vmfb")


@entry("ir", IRParseError, r"line 2, column \d+: .*", loc=False)
def unparsable_ir():
    vmapc.parse("{ lambda a:f32[3] .\n    b:f32[3] = add a\n  in (b) }")


@entry("ir", IRParseError, r"line 2, column \d+: values nested more than 64 deep", loc=False)
def ir_nested_too_deeply():
    vmapc.parse("{ lambda a:f32[2] .\n    b:f32[2] = transpose[perm=" + "(" * 10000 + ")" * 10000 + "] a\n  in (b) }")


@entry("ir", IRParseError, r"line 2, column \d+: bad constant: a complex64 element is a pair \(real, imag\)", loc=False)
def ir_bad_complex_constant():
    vmapc.parse("{ lambda .\n    b:c64[2] = constant[value=[1.0, 2.0, 3.0]]\n  in (b) }")


@entry("ir", IRParseError, r"line 2, column \d+: bad base64 data in a constant", loc=False)
def ir_bad_base64():
    vmapc.parse('{ lambda .\n    b:f32[40] = constant[value=b64"!!!!"]\n  in (b) }')


@entry("ir", IRParseError, r"line 2, column \d+: expected a line number in loc\(\.\.\.\)", loc=False)
def ir_loc_line_not_an_int():
    vmapc.parse('{ lambda a:f32[2] .\n    b:f32[2] = negative a  loc("m.py":1.5)\n  in (b) }')


@entry("ir", IRParseError, r"line 1, column \d+: a value would have shape \(4294967296,4294967296\) of float32", loc=False)
def ir_shape_overflows_int64():
    vmapc.parse("{ lambda a:f32[4294967296,4294967296] .\n  in (a) }")


@entry("ir", IRError, r"equation 0 \(add\) result 0 is declared f32\[4\] but the op produces f32\[3\]", loc=False)
def ir_that_does_not_verify():
    from vmapc.ir import Eqn, Function, TensorType, Var
    a, b = Var(TensorType((3,), "float32")), Var(TensorType((4,), "float32"))
    Function([a], [Eqn("add", [a, a], [b], {})], [b], name="f").verify()


# --- running over chunks (vmapc.dask; docs/scaling.md) ----------------------------------------------------
# Checked on the client before any chunk is scheduled; these need the dask extra.

XS = np.arange(32, dtype=np.float32).reshape(8, 4)
_SCALE = {}


def _dask():
    da = pytest.importorskip("dask.array", reason="vmapc.dask needs Dask (pip install 'vmapc[dask]')")
    import vmapc.dask
    return da, vmapc.dask


def _scale_model(x, w):
    return x @ w


def scale_artifact():
    """An artifact of _scale_model for x: f32[B,4] (batched) and w: f32[4,3] (shared)."""
    if "art" not in _SCALE:
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="vmapc-errors-"), "art")
        vmapc.export(_scale_model, path, args=(F32[4], np.ones((4, 3), np.float32)), in_dims=(0, None),
                     batch="dynamic")
        _SCALE["art"] = vmapc.load(path)
    return _SCALE["art"]


@entry("scale", BatchingError, r"argument `x` is chunked along axis 1 \(2 chunks\), which is not its batch axis \(0\)")
def chunked_along_a_feature_axis():
    da, vdask = _dask()
    f = vmapc.compile(_scale_model, in_dims=(0, None), batch="dynamic")
    vdask.map_batches(f, da.from_array(XS, chunks=(4, 2)), np.ones((4, 3), np.float32))  # <-- chunked_along_a_feature_axis


@entry("scale", BatchingError, r"chunked differently along the batch axis: `x` has chunks \(4, 4\), `y` has \(3, 3, 2\)")
def batched_inputs_chunked_differently():
    da, vdask = _dask()
    f = vmapc.compile(add, in_dims=0, batch="dynamic")
    vdask.map_batches(f, da.from_array(XS, chunks=(4, 4)), da.from_array(XS, chunks=(3, 4)))  # <-- batched_inputs_chunked_differently


@entry("scale", BatchingError, r"argument `x` is not a Dask array \(it is ndarray\); give chunk_size=N")
def numpy_batch_without_chunk_size():
    _, vdask = _dask()
    vdask.map_batches(scale_artifact(), XS, np.ones((4, 3), np.float32))  # <-- numpy_batch_without_chunk_size


@entry("scale", CallError, r"argument `x` has dtype float64, but _scale_model takes x: f32\[B,4\], batched along axis 0")
def artifact_signature_does_not_fit_dtype():
    da, vdask = _dask()
    vdask.map_batches(scale_artifact(), da.from_array(XS.astype(np.float64), chunks=(4, 4)), np.ones((4, 3), np.float32))  # <-- artifact_signature_does_not_fit_dtype


@entry("scale", CallError, r"argument `w` has shape \(4, 4\), but _scale_model takes w: f32\[4,3\] \(shared\)")
def artifact_signature_does_not_fit_shape():
    da, vdask = _dask()
    vdask.map_batches(scale_artifact(), da.from_array(XS, chunks=(4, 4)), np.ones((4, 4), np.float32))  # <-- artifact_signature_does_not_fit_shape


@entry("scale", CallError, r"_scale_model takes 2 arguments \(x, w\), got 1")
def artifact_given_too_few_arguments():
    da, vdask = _dask()
    vdask.map_batches(scale_artifact(), da.from_array(XS, chunks=(4, 4)))  # <-- artifact_given_too_few_arguments


@entry("scale", BatchingError, r"in_dims=\(1, None\) does not match the artifact's in_dims \(0, None\)")
def artifact_with_other_in_dims():
    da, vdask = _dask()
    vdask.map_batches(scale_artifact(), da.from_array(XS, chunks=(4, 4)), np.ones((4, 3), np.float32), in_dims=(1, None))  # <-- artifact_with_other_in_dims


@entry("scale", CallError, r"^_scale_model, examples \[4:8\): argument `x` has dtype float64, expected float32", loc=False)
def chunk_that_fails_while_running():
    da, vdask = _dask()
    import dask

    def lie(b, block_info=None):     # the second chunk is float64, though the array says float32
        return b.astype(np.float64) if block_info[0]["chunk-location"][0] == 1 else b
    xs = da.from_array(XS, chunks=(4, 4)).map_blocks(lie, dtype=np.float32)
    ys = vdask.map_batches(scale_artifact(), xs, np.ones((4, 3), np.float32))
    dask.compute(ys, scheduler="sync")


# --- the table ---------------------------------------------------------------------------------------

# --- custom ops ------------------------------------------------------------------------------------

@vmapc.custom_op("errors.rowsum")
def _rowsum(x):
    return x.sum(-1)


@_rowsum.def_vmap
def _(axis_size, in_dims, x):
    return x.sum(), 0          # sums over the batch too: one number for the whole batch


def uses_rowsum(x):
    return _rowsum(x) * 2  # <-- custom_rule_wrong_shape


@entry("batch", CustomOpError, r"custom op errors\.rowsum: its batching rule returned f32\[\] with batch dim 0 for "
                               r"output 0; for a batch of 4 that output must be f32\[4,2\]")
def custom_rule_wrong_shape():
    vmapc.vmap(uses_rowsum)(np.zeros((4, 2, 3), np.float32))


@entry("trace", CustomOpError, r"custom op errors\.rowsum: takes positional array arguments only, got keyword "
                               r"arguments \['x'\]")
def custom_keyword_arguments():
    vmapc.trace(lambda x: _rowsum(x=x), F32[3])  # <-- custom_keyword_arguments


@entry("trace", CustomOpError, r"custom op errors\.closure: its function uses 1 traced value\(s\) of the enclosing "
                               r"function through a closure; pass them as arguments")
def custom_closure():
    def outer(x, y):
        @vmapc.custom_op("errors.closure")
        def g(v):
            return v * y
        return g(x)  # <-- custom_closure
    vmapc.trace(outer, F32[3], F32[3])


@vmapc.custom_op("errors.softplus")
def _softplus(x):
    return np.log(1 + np.exp(x))


@_softplus.def_jvp
def _(primals, tangents):
    return primals[0], tangents[0].sum()


@entry("autodiff", CustomOpError, r"custom op errors\.softplus: its jvp rule returned a tangent f32\[\] for output 0, "
                                  r"which is f32\[4\]")
def custom_jvp_wrong_type():
    vmapc.trace(lambda x: vmapc.jvp(lambda v: _softplus(v), (x,), (x,)), F32[4])  # <-- custom_jvp_wrong_type


def test_catalogue_is_large():
    stages = {p.id.split("-")[0] for p in CATALOGUE}
    assert stages >= {"trace", "batch", "autodiff", "compile", "call"}
    assert len(CATALOGUE) >= 30


@pytest.mark.parametrize("make,exc,message,loc", CATALOGUE)
def test_catalogue(make, exc, message, loc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.PerformanceWarning)
        with pytest.raises(exc) as info:
            make()
    err = info.value
    assert isinstance(err, VmapcError), f"{type(err).__name__} is not a VmapcError"
    assert re.search(message, err.message, re.S), f"message {err.message!r} does not match {message!r}"
    if not issubclass(exc, (CompileError, IRError)):   # those two also quote the failing line
        assert "\n" not in err.message.strip(), "the message is one paragraph"
    if loc:
        line = line_of(make.__name__)
        assert err.loc == Loc(__file__, line), f"loc {err.loc}, expected {os.path.basename(__file__)}:{line}"
        assert f"{__file__}:{line}" in str(err)
        assert _SOURCE[line - 1].strip().split("  #")[0] in str(err)   # the source line is shown


def test_every_error_class_is_catalogued_and_documented():
    """docs/errors.md lists every exception class of vmapc.errors, and this table (or
    tests/test_driver.py, for ArtifactError and the cache) raises each."""
    classes = {n for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, VmapcError)}
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "errors.md")).read()
    for name in classes | {"PerformanceWarning", "CacheWarning"}:
        assert re.search(rf"`(vmapc\.errors\.)?{name}`", doc), f"docs/errors.md does not describe {name}"
    raised = {p.values[1].__name__ for p in CATALOGUE}
    assert classes - {"VmapcError", "TracingError", "IRError"} <= raised | {"ArtifactError"}, \
        classes - raised


def test_compile_error_is_short_and_keeps_iree_output():
    with pytest.raises(CompileError) as info:
        iree_rejects_an_op()
    err = info.value
    assert len(err.message) < 300 and "\n" not in err.message        # not a wall of MLIR
    assert "failed to legalize" in err.details and len(err.details) > len(err.message)


def test_errors_subclass_the_builtin_exceptions_python_code_expects():
    assert issubclass(ShapeError, ValueError) and issubclass(OutOfBoundsError, IndexError)
    assert issubclass(TracerBoolConversionError, TypeError) and issubclass(CallError, TypeError)
    assert issubclass(UnsupportedError, NotImplementedError) and issubclass(BatchingError, ValueError)
    assert issubclass(ExecutionError, RuntimeError) and issubclass(TargetError, ValueError)
    with pytest.raises(IndexError):        # as NumPy: x[7] of a 4-vector is an IndexError
        vmapc.trace(lambda x: x[7], F32[4])


# --- source locations in the IR and the MLIR -------------------------------------------------------------

def located_model(x, w):
    h = x @ w  # <-- loc_matmul
    return np.tanh(h) * 2  # <-- loc_tanh


def test_every_equation_and_mlir_op_carries_the_users_line():
    x, w = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    lowered = vmapc.compile(located_model, in_dims=(0, None)).lower(x, w)
    lines = {line_of("loc_matmul"), line_of("loc_tanh")}
    for fn in (lowered.ir, lowered.batched, lowered.program):   # traced, batched, simplified
        assert fn.eqns and all(e.loc is not None and e.loc.file == __file__ and e.loc.line in lines
                               for e in fn.eqns if e.op != "constant"), fn.text(locations=True)
    text = lowered.lowered_module.compiler_input
    text = text.decode() if isinstance(text, bytes) else text
    # #loc3 = loc("/path/test_errors.py":123:0) and #loc5 = loc("located_model#1:tanh"(#loc3))
    files = {m.group(1): (m.group(2), int(m.group(3)))
             for m in re.finditer(r'^(#loc\d*) = loc\("([^"]+)":(\d+):\d+\)$', text, re.M)}
    named = {m.group(2): files.get(m.group(3))
             for m in re.finditer(r'^(#loc\d*) = loc\("(located_model#\d+:\w+)"\((#loc\d*)\)\)$', text, re.M)}
    by_op = {name.split(":")[1]: where for name, where in named.items()}
    assert by_op["dot_general"] == (__file__, line_of("loc_matmul")), named
    assert by_op["tanh"] == (__file__, line_of("loc_tanh")) and by_op["multiply"] == (__file__, line_of("loc_tanh"))
    assert "linalg.matmul" in text and re.search(r"linalg\.matmul .* loc\(#loc\d*\)", text)


# --- behaviour with unusual but valid inputs -------------------------------------------------------------

def special_model(x, y):
    return (np.maximum(x, y), np.minimum(x, 0.0), x / y, np.exp(x), np.log(np.abs(y)), np.sqrt(x),
            np.sum(x, axis=-1), np.max(x, axis=-1), np.argmax(x, axis=-1), x > y, x == x,
            np.where(np.isnan(x), 0.0, x), np.tanh(x), x.astype(np.int32) * 0 + 1)


SPECIAL = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0],
                    [-1.0, np.nan, 3e38, -3e38, 1e-3, np.inf]], np.float32)


def _assert_like_numpy(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=0, equal_nan=True)
        # infinities keep their sign, NaNs stay NaN
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))


def test_nan_and_inf_pass_through_like_numpy():
    x, y = SPECIAL, SPECIAL[::-1] * -1
    with np.errstate(all="ignore"):
        want = special_model(x, y)
        # float-to-int conversion of NaN/inf is unspecified, in NumPy as in C: compare only its shape
        want = want[:-1] + (np.ones(x.shape, np.int32),)
    got = vmapc.compile(special_model)(x, y)
    _assert_like_numpy(got, want)
    # through vmap, one row per example, compared with the per-example loop
    batched = vmapc.compile(special_model, in_dims=0)(x, y)
    with np.errstate(all="ignore"):
        rows = [special_model(x[i], y[i]) for i in range(2)]
    want_b = [np.stack([r[j] for r in rows]) for j in range(len(rows[0]) - 1)]
    _assert_like_numpy(batched[:-1], want_b)


def reduce_model(x, w):
    return np.tanh(x @ w), x.sum(axis=-1), np.exp(x) * 2


@pytest.mark.parametrize("batch", ["static", "dynamic"])
def test_batch_size_zero(batch):
    w = np.ones((3, 2), np.float32)
    xs = np.zeros((0, 3), np.float32)
    out = vmapc.compile(reduce_model, in_dims=(0, None), batch=batch)(xs, w)
    assert [o.shape for o in out] == [(0, 2), (0,), (0, 3)]
    assert all(o.dtype == np.float32 for o in out)


def test_batch_size_zero_through_vmap_chunks_and_out_dims():
    w = np.ones((3, 2), np.float32)
    xs = np.zeros((0, 3), np.float32)
    a, b, c = vmapc.vmap(reduce_model, in_dims=(0, None), out_dims=(1, 0, -1))(xs, w)
    assert a.shape == (2, 0) and b.shape == (0,) and c.shape == (3, 0)
    out = vmapc.compile(reduce_model, in_dims=(0, None), chunk_size=4)(xs, w)
    assert [o.shape for o in out] == [(0, 2), (0,), (0, 3)]


def test_empty_arrays_inside_each_example():
    def f(x, y):
        return x.sum(axis=0), np.concatenate([x, y], axis=0), (x * 2).reshape(-1), np.zeros_like(x).T
    x = np.zeros((0, 3), np.float32)
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = vmapc.compile(f)(x, y)
    for g, w in zip(got, f(x, y)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    xs = np.zeros((4, 0, 3), np.float32)
    ys = np.stack([y] * 4)
    got = vmapc.compile(f, in_dims=0)(xs, ys)
    for j, g in enumerate(got):
        np.testing.assert_array_equal(g, np.stack([f(xs[i], ys[i])[j] for i in range(4)]))


def view_model(x, w):
    return np.tanh(x @ w) + x.sum(axis=-1, keepdims=True)


def _views():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 12)).astype(np.float32)
    views = []
    for off in (1, 3):     # float32 data starting 1 or 3 bytes into a buffer
        buf = bytearray(4 * 30 + 8)
        buf[off:off + 120] = rng.normal(size=30).astype(np.float32).tobytes()
        views.append(np.frombuffer(buf, dtype=np.float32, count=30, offset=off).reshape(5, 6))
        assert views[-1].ctypes.data % 4 != 0
    misaligned, odd = views
    return {
        "step slices": base[::2, ::2],
        "transposed view": base[:6, :5].T,
        "fortran order": np.asfortranarray(base[:5, :6]),
        "negative strides": base[::-2, ::-2][:5, :6],
        "broadcast view (stride 0)": np.broadcast_to(base[0, :6], (5, 6)),
        "misaligned by 1 byte": misaligned,
        "misaligned by 3 bytes": odd,
        "big-endian": base[:5, :6].astype(">f4"),
        "read-only": np.frombuffer(base[:5, :6].tobytes(), np.float32).reshape(5, 6),
    }


@pytest.mark.parametrize("name", list(_views()))
def test_unusual_memory_layouts_give_numpy_results(name):
    x = _views()[name]
    w = np.random.default_rng(1).normal(size=(x.shape[1], 4)).astype(np.float32)
    want = view_model(np.array(x, dtype=np.float32), w)
    np.testing.assert_allclose(vmapc.compile(view_model)(x, w), want, rtol=1e-5, atol=1e-5)
    # batched over the rows (in_dims=0) and over the columns of a transposed layout (in_dims=1)
    np.testing.assert_allclose(vmapc.compile(view_model, in_dims=(0, None))(x, w), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vmapc.compile(view_model, in_dims=(1, None))(x.T, w), want, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.asarray(x), _views()[name]), "the input was modified"


def test_unusual_layouts_as_weights_of_an_executable():
    views = _views()
    exe = vmapc.compile(view_model).lower(np.zeros((5, 6), np.float32), np.zeros((6, 4), np.float32)).compile()
    w = np.asfortranarray(np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32))
    for name, x in views.items():
        np.testing.assert_allclose(exe(x, w), view_model(np.array(x, np.float32), w), rtol=1e-5, atol=1e-5,
                                   err_msg=name)


def test_big_endian_integers_and_bools():
    x = np.arange(-3, 3, dtype=">i8")
    m = np.array([True, False, True, True, False, True])
    got = vmapc.compile(lambda a, b: (a * 3, np.where(b, a, -a)))(x, m)
    np.testing.assert_array_equal(got[0], np.arange(-3, 3) * 3)
    np.testing.assert_array_equal(got[1], np.where(m, np.arange(-3, 3), -np.arange(-3, 3)))
    assert got[0].dtype == np.int64 and got[0].dtype.isnative
