"""The tracer: what cannot be traced raises a clear vmapc error at the user's line, and
what can (pytrees, weak scalars, captured arrays, argument names) is recorded faithfully.

NumPy fidelity of the traced operations themselves is tested in test_numpy_api.py.
"""

from __future__ import annotations

import inspect
import operator
import re

import numpy as np
import pytest

import vmapc
import vmapc.numpy as vnp
from vmapc import pytree
from vmapc.errors import (DTypeError, ShapeError, TracerBoolConversionError, TracerConversionError,
                          TracingError, UnsupportedError, VmapcError)
from vmapc.tracing import ShapeDtype, Tracer

F32 = ShapeDtype((3, 4), np.float32)
HERE = __file__


def line_of(fn, marker: str) -> int:
    """The line number of the first line of fn's source that contains marker."""
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if marker in text:
            return start + i
    raise AssertionError(f"{marker!r} not in {fn.__name__}")


def assert_at(err: VmapcError, fn, marker: str):
    """err points at this file, at the line of fn that contains marker, and says so."""
    assert err.loc is not None, "error has no location"
    assert err.loc.file == HERE
    assert err.loc.line == line_of(fn, marker), (err.loc, line_of(fn, marker))
    assert f"{HERE}:{err.loc.line}" in str(err)


# --- Python control flow on traced values ----------------------------------------------------

def f_if(x):
    if x.sum() > 0:  # <- if
        return x
    return -x


def f_while(x):
    while x.max() < 10:  # <- while
        x = x * 2
    return x


def f_and(x, y):
    return (x > 0) and y  # <- and


def f_not(x):
    return x if not np.any(x > 1) else -x  # <- not


def f_ternary(x):
    return x if x[0, 0] else -x  # <- ternary


def f_bool(x):
    return bool(x.mean())  # <- bool


def f_assert(x):
    assert x.min() >= 0  # <- assert
    return x


@pytest.mark.parametrize("fn,marker,nargs", [(f_if, "<- if", 1), (f_while, "<- while", 1), (f_and, "<- and", 2),
                                             (f_not, "<- not", 1), (f_ternary, "<- ternary", 1),
                                             (f_bool, "<- bool", 1), (f_assert, "<- assert", 1)],
                         ids=["if", "while", "and", "not", "ternary", "bool", "assert"])
def test_python_control_flow_on_tracers(fn, marker, nargs):
    with pytest.raises(TracerBoolConversionError) as e:
        vmapc.trace(fn, *[F32] * nargs)
    err = e.value
    assert isinstance(err, TypeError)  # what NumPy raises for an ambiguous truth value
    assert "where" in err.message and "vmapc.numpy.where" in err.message
    assert_at(err, fn, marker)


def test_control_flow_on_static_properties_is_fine():
    def f(x):
        if x.ndim == 2 and x.shape[0] > 1 and x.dtype == np.float32 and len(x) == 3:
            return x[0]
        return x
    assert vmapc.trace(f, F32).out_types[0].shape == (4,)


# --- turning a tracer into a concrete value -------------------------------------------------

def f_float(x):
    return float(x[0, 0])  # <- float


def f_int(x):
    return int(x[0, 0])  # <- int


def f_complex(x):
    return complex(x[0, 0])  # <- complex


def f_asarray(x):
    return np.asarray(x) + 1  # <- asarray


def f_array(x):
    return np.array(x)  # <- array


def f_item(x):
    return x[0, 0].item()  # <- item


def f_tolist(x):
    return x.tolist()  # <- tolist


def f_index(x):
    return list(range(x[0, 0].astype(np.int64)))  # <- index


def f_operator_index(x):
    return operator.index(x[0, 0])  # <- operator.index


def f_numpy_table(x):
    table = np.arange(10.0)
    return table[x[0, 0].astype(np.int64)]  # <- table


@pytest.mark.parametrize("fn,marker", [(f_float, "<- float"), (f_int, "<- int"), (f_complex, "<- complex"),
                                       (f_asarray, "<- asarray"), (f_array, "<- array"), (f_item, "<- item"),
                                       (f_tolist, "<- tolist"), (f_index, "<- index"),
                                       (f_operator_index, "<- operator.index"), (f_numpy_table, "<- table")],
                         ids=["float", "int", "complex", "asarray", "array", "item", "tolist", "range",
                              "operator.index", "numpy-table"])
def test_concrete_conversions_raise(fn, marker):
    with pytest.raises(TracerConversionError) as e:
        vmapc.trace(fn, F32)
    assert isinstance(e.value, TypeError)
    assert "concrete value" in e.value.message
    assert_at(e.value, fn, marker)


def test_numpy_table_message_names_take():
    with pytest.raises(TracerConversionError, match=r"vmapc\.numpy\.take"):
        vmapc.trace(f_numpy_table, F32)
    # ... and the suggested spelling works
    fn = vmapc.trace(lambda i: vnp.take(np.arange(10.0), i, axis=0), np.int64(3))
    assert vmapc.eval(fn, np.int64(3))[0] == 3.0


def f_setitem(x):
    x[0] = 1.0  # <- setitem
    return x


def f_setitem_slice(x):
    x[:, 1:] += 1  # <- slice
    return x


@pytest.mark.parametrize("fn", [f_setitem, f_setitem_slice], ids=["item", "slice"])
def test_inplace_assignment_writes_the_argument(fn):
    """A write into an argument is one more output: the argument's final value, which the
    compiled call copies back (tests/test_writes.py runs it compiled)."""
    traced = vmapc.trace(fn, F32)
    assert traced.mutated == (0,) and len(traced.outputs) == 2
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    want = fn(x.copy())
    out, written = vmapc.eval(traced, x)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(written, want)
    assert traced.eqns[-1].loc.line == fn.__code__.co_firstlineno + 1


def test_len_and_iter_of_0d():
    with pytest.raises(TypeError):
        vmapc.trace(lambda x: len(x), ShapeDtype((), np.float32))
    with pytest.raises(TypeError):
        vmapc.trace(lambda x: list(x), ShapeDtype((), np.float32))


# --- unsupported functions and arguments ------------------------------------------------------

@pytest.mark.parametrize("name", ["nancumsum", "nancumprod", "nonzero", "unique", "argwhere",
                                  "flatnonzero", "ediff1d", "median", "nanmax", "gradient", "trapezoid",
                                  "count_nonzero"])
def test_unsupported_numpy_function_is_named(name):
    f = getattr(np, name)
    with pytest.raises(UnsupportedError) as e:
        vmapc.trace(lambda x: f(x), F32)
    assert f"numpy.{name} is not supported" in e.value.message
    assert "docs/numpy.md" in e.value.message
    assert e.value.loc.file == HERE


@pytest.mark.parametrize("name", ["nonzero", "unique", "argwhere"])
def test_data_dependent_shapes_say_so(name):
    with pytest.raises(UnsupportedError, match="depends on the data"):
        vmapc.trace(lambda x: getattr(np, name)(x), F32)


@pytest.mark.parametrize("name", ["sort", "partition", "nonzero", "byteswap", "tobytes", "resize"])
def test_unsupported_ndarray_method_is_named(name):
    with pytest.raises(UnsupportedError, match=rf"numpy\.ndarray\.{name} is not supported"):
        vmapc.trace(lambda x: getattr(x, name)(), F32)
    with pytest.raises(AttributeError):
        vmapc.trace(lambda x: x.no_such_attribute, F32)


def test_where_with_one_argument():
    with pytest.raises(UnsupportedError, match="three arguments"):
        vmapc.trace(lambda x: np.where(x > 0), F32)


@pytest.mark.parametrize("f,what", [
    (lambda x: np.subtract.accumulate(x), "numpy.subtract.accumulate"),
    (lambda x: np.add.reduceat(x, [0]), "numpy.add.reduceat"), (lambda x: np.ldexp.outer(x, x), "numpy.ldexp.outer"),
    (lambda x: np.divide.at(x, [0], 2.0), "numpy.divide.at"), (lambda x: np.subtract.reduce(x), "numpy.subtract.reduce"),
    (lambda x: np.gcd(x.astype(np.int32), 4), "numpy.gcd"), (lambda x: np.nextafter(x, 1.0), "numpy.nextafter"),
    (lambda x: np.ldexp(x, 2), "numpy.ldexp"),
], ids=["accumulate", "reduceat", "outer", "at", "subtract.reduce", "gcd", "nextafter", "ldexp"])
def test_unsupported_ufuncs_and_methods_are_named(f, what):
    with pytest.raises(UnsupportedError) as e:
        vmapc.trace(f, F32)
    assert what in e.value.message


M = np.ones((3, 4), bool)


@pytest.mark.parametrize("f,arg", [
    (lambda x: np.add(x, x, where=M), "where"), (lambda x: np.sqrt(x, where=M), "where"),
    (lambda x: np.multiply(x, 2, casting="unsafe"), "casting"), (lambda x: np.add(x, 1, order="F"), "order"),
    (lambda x: np.sum(x, where=M), "where"),
    (lambda x: np.max(x, where=M), "where"), (lambda x: np.mean(x, where=M), "where"),
    (lambda x: np.any(x, where=M), "where"),
    (lambda x: np.var(x, mean=np.zeros((1, 1))), "mean"), (lambda x: x.sum(where=M), "where"),
    (lambda x: np.logical_or.reduce(x > 0, initial=False), "initial"), (lambda x: np.maximum.reduce(x, where=M), "where"),
    (lambda x: np.reshape(x, (4, 3), order="F"), "order"), (lambda x: np.ravel(x, "F"), "order"),
    (lambda x: x.reshape(12, order="F"), "order"), (lambda x: x.astype(np.int8, order="F"), "order"),
    (lambda x: x.astype(np.int8, casting="safe"), "casting"), (lambda x: np.pad(x, 1, mode="reflect"), "mode"),
    (lambda x: np.pad(x, 1, stat_length=2), "stat_length"), (lambda x: np.take(x, [0], mode="foo"), "mode"),
    (lambda x: np.concatenate([x, x], casting="no"), "casting"), (lambda x: np.matmul(x, x.T, axes=[(0, 1)] * 3), "axes"),
    (lambda x: np.dot(x, x.T, out=np.empty((3, 3), np.float32)), "out"),
    (lambda x: np.einsum("ij->ji", x, out=np.empty((4, 3), np.float32)), "out"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_unsupported_arguments_are_named(f, arg):
    with pytest.raises(UnsupportedError) as e:
        vmapc.trace(f, F32)
    assert f"`{arg}`" in e.value.message or f"{arg}=" in e.value.message, e.value.message
    assert e.value.loc is not None and e.value.loc.file == HERE


def test_einsum_operand_list_form_is_unsupported():
    with pytest.raises(UnsupportedError, match="string form"):
        vmapc.trace(lambda x: np.einsum(x, [0, 1], [1, 0]), F32)


# --- indexing that cannot be compiled ------------------------------------------------------

def f_mask(x):
    return x[x > 0]  # <- mask


def f_static_mask(x):
    return x[np.array([True, False, True])]  # <- static mask


def f_traced_slice(x, n):
    return x[:n]  # <- slice


def f_traced_step(x, n):
    return x[::n]  # <- step


def test_boolean_mask_indexing():
    """A traced mask selects a data-dependent number of elements: only x[mask] = v and
    x[mask] += v compile (tests/test_writes.py); using x[mask] as an array raises at its line.
    A static mask is integer indexing."""
    with pytest.raises(UnsupportedError) as e:
        vmapc.trace(f_mask, F32)
    assert "boolean mask" in e.value.message and "where" in e.value.message
    assert_at(e.value, f_mask, "<- mask")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(vmapc.eval(vmapc.trace(f_static_mask, x), x)[0], f_static_mask(x))


@pytest.mark.parametrize("fn,marker", [(f_traced_slice, "<- slice"), (f_traced_step, "<- step")], ids=["stop", "step"])
def test_traced_slice_bounds(fn, marker):
    with pytest.raises(TracingError) as e:
        vmapc.trace(fn, F32, np.int64(2))
    assert "dynamic_slice" in e.value.message
    assert_at(e.value, fn, marker)


def test_traced_static_arguments():
    n = np.int64(2)
    for f in (lambda x, n: np.reshape(x, (n, -1)), lambda x, n: np.sum(x, axis=n), lambda x, n: np.roll(x, n),
              lambda x, n: np.repeat(x, n), lambda x, n: np.tile(x, n), lambda x, n: np.pad(x, n)):
        with pytest.raises(VmapcError):
            vmapc.trace(f, F32, n)


# --- errors carry the user's line --------------------------------------------------------------

def f_shape_error(x):
    y = x[:2]
    return x + y  # <- add


def f_axis_error(x):
    return np.sum(x, axis=5)  # <- sum


def f_dtype_error(x):
    return np.bitwise_and(x, x)  # <- bitwise


def f_reshape_error(x):
    return x.reshape(5, 5)  # <- reshape


@pytest.mark.parametrize("fn,marker,cls", [(f_shape_error, "<- add", ShapeError), (f_axis_error, "<- sum", ShapeError),
                                           (f_dtype_error, "<- bitwise", DTypeError),
                                           (f_reshape_error, "<- reshape", ShapeError)],
                         ids=["broadcast", "axis", "dtype", "reshape"])
def test_errors_point_at_the_users_line(fn, marker, cls):
    with pytest.raises(cls) as e:
        vmapc.trace(fn, F32)
    assert_at(e.value, fn, marker)


def test_equations_record_the_users_line():
    def f(x, w):
        h = np.tanh(x @ w)  # <- first
        return h.sum(-1) / 2  # <- second
    fn = vmapc.trace(f, F32, ShapeDtype((4, 2), np.float32))
    lines = {e.loc.line for e in fn.eqns}
    assert lines == {line_of(f, "<- first"), line_of(f, "<- second")}
    assert all(e.loc.file == HERE for e in fn.eqns)


# --- tracers leaking out of their trace -------------------------------------------------------

def test_leaked_tracer_used_in_another_trace():
    leaked = []

    def keep(x):
        leaked.append(x)
        return x
    vmapc.trace(keep, F32)
    with pytest.raises(TracingError, match="another"):
        vmapc.trace(lambda y: y + leaked[0], F32)
    with pytest.raises(TracingError, match="another"):
        vmapc.trace(lambda y: leaked[0], F32)


def test_leaked_tracer_used_outside_any_trace():
    leaked = []
    vmapc.trace(lambda x: leaked.append(x * 2) or x, F32)
    with pytest.raises(TracingError, match="outside of any trace"):
        leaked[0] + 1
    with pytest.raises(TracingError):
        np.sin(leaked[0])
    assert leaked[0].shape == (3, 4)  # static facts are still known


# --- arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("arg", [np.array([1, "a"], dtype=object), np.array([object()]), 1 + 2j, np.array([1 + 2j], np.clongdouble),
                                 np.array(["a", "b"])],
                         ids=["object-array", "object-array-2", "complex", "complex-array", "str-array"])
def test_bad_arguments_raise_tracing_error(arg):
    with pytest.raises(TracingError):
        vmapc.trace(lambda x: x, arg)


@pytest.mark.parametrize("arg", ["text", object(), None.__class__, b"bytes", 3, True],
                         ids=["str", "object", "type", "bytes", "int", "bool"])
def test_static_arguments_reach_the_function_as_they_are(arg):
    """Python ints, bools and non-numbers are static (docs/vmap.md): the function sees
    the value itself, the program has no input for it, and it can be returned as is."""
    seen = []
    fn = vmapc.trace(lambda x, s: (seen.append(s), x * 2, s)[1:], F32, arg)
    assert seen == [arg] and len(fn.inputs) == 1
    if isinstance(arg, int):      # a number returned becomes an array (of that value)
        assert len(fn.outputs) == 2 and vmapc.eval(fn, np.ones((3, 4), np.float32))[1] == arg
    else:                         # anything else comes back as it is
        assert len(fn.outputs) == 1 and vmapc.pytree.unflatten(fn.out_tree, [np.float32(1)])[1] is arg


def test_object_constant_inside_trace():
    with pytest.raises(TracingError):
        vmapc.trace(lambda x: x + np.array([1, None], dtype=object), ShapeDtype((2,), np.float32))
    with pytest.raises(DTypeError):
        vmapc.trace(lambda x: x + np.array([1j, 2j], np.clongdouble), ShapeDtype((2,), np.float32))


def run(fn, *args, **kwargs):
    """Trace fn at args and evaluate the trace on the same args (the pytree-flattened leaves)."""
    f = vmapc.trace(fn, *args, **kwargs)
    leaves = pytree.flatten((args, kwargs))[0]
    out = vmapc.eval(f, *[np.asarray(v) for v in leaves])
    return f, pytree.unflatten(f.out_tree, out)


def test_pytree_arguments_and_outputs():
    params = {"w": np.ones((4, 2), np.float32), "b": np.arange(2, dtype=np.float32)}
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    pair = (np.float64(2.0), [np.int8(3), np.zeros(2, np.int16)])

    def model(params, x, pair, scale=1.0):
        y = (x @ params["w"] + params["b"]) * scale
        return {"y": y, "stats": (y.sum(), [y.max(), pair[1][0] * 2]), "none": None}, pair[0] + pair[1][1]

    f, got = run(model, params, x, pair, scale=0.5)
    want = model(params, x, pair, 0.5)
    assert pytree.flatten(got)[1] == pytree.flatten(want)[1]
    for g, w in zip(pytree.flatten(got)[0], pytree.flatten(want)[0]):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w)
    assert len(f.inputs) == 7
    text = str(f)
    for name in ("params_b", "params_w", "x", "pair_0", "pair_1_0", "pair_1_1", "scale"):
        assert re.search(rf"\b{name}:", text), (name, text)


def test_argument_names_appear_in_the_ir():
    def layer(inputs, weight, bias):
        return np.tanh(inputs @ weight + bias)
    text = str(vmapc.trace(layer, F32, ShapeDtype((4, 5), np.float32), ShapeDtype((5,), np.float32)))
    assert text.splitlines()[0] == "layer = { lambda inputs:f32[3,4] weight:f32[4,5] bias:f32[5] ."
    text = str(vmapc.trace(lambda a, *rest: a + rest[0], F32, F32))
    assert "{ lambda a:f32[3,4] arg1:f32[3,4] ." in text
    # names that would clash with the text form are not used
    text = str(vmapc.trace(lambda f32, inf, lambda_=1: f32 + inf, F32, F32))
    assert "f32:" not in text and "inf:" not in text


def test_returning_inputs_constants_and_python_numbers():
    f, got = run(lambda x: (x, 3, 2.5, True, np.float32(1), np.arange(3)), np.zeros(2, np.int8))
    want = (np.zeros(2, np.int8), 3, 2.5, True, np.float32(1), np.arange(3))
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)


# --- weak (Python) scalars -------------------------------------------------------------------

@pytest.mark.parametrize("d", ["float16", "float32", "int8", "uint8", "int32", "bool"])
def test_python_scalar_arguments_are_weak(d):
    """f(x, 2.0) keeps x's dtype exactly as x * 2.0 does in NumPy (NEP 50)."""
    x = np.ones((2,), d)
    for s in (2, 2.0, True):
        for f in (lambda x, s: x * s, lambda x, s: s - x, lambda x, s: np.maximum(x, s), lambda x, s: x / s,
                  lambda x, s: x + (s * 2 + 1)):
            try:
                want = f(x, s)
            except TypeError:
                continue
            fn = vmapc.trace(f, ShapeDtype((2,), d), s)
            assert fn.out_types[0].dtype == want.dtype, (d, s)
            if isinstance(s, float):    # traced: the scalar itself is f64
                assert fn.in_types[1].dtype == np.float64
            else:                       # ints and bools are static: no input, the number itself
                assert len(fn.inputs) == 1


def test_float32_stays_float32_with_python_float():
    fn = vmapc.trace(lambda x, s: np.exp(x * s) + 1.0, vmapc.f32[3], 2.0)
    assert fn.out_types[0].dtype == np.float32
    out = vmapc.eval(fn, np.ones(3, np.float32), np.float64(2.0))[0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.exp(np.float32(2)) + 1, rtol=1e-6)


def test_numpy_functions_make_weak_scalars_strong():
    """Python arithmetic on Python numbers stays weak; NumPy functions return arrays, which are
    strong: np.multiply(2.0, 3) is float64 and then promotes float32."""
    fn = vmapc.trace(lambda x, s: x * (s * 3), vmapc.f32[2], 2.0)
    assert fn.out_types[0].dtype == np.float32
    for f in (lambda x, s: x * np.multiply(s, 3), lambda x, s: x * np.reshape(s, (1,)), lambda x, s: x * np.stack([s, s]),
              lambda x, s: x * np.sqrt(s)):
        fn = vmapc.trace(f, vmapc.f32[2], 2.0)
        assert fn.out_types[0].dtype == f(np.ones(2, np.float32), 2.0).dtype == np.float64


def test_numpy_scalar_arguments_are_strong():
    fn = vmapc.trace(lambda x, s: x * s, vmapc.f32[3], np.float64(2.0))
    assert fn.out_types[0].dtype == np.float64
    fn = vmapc.trace(lambda x, s: x * s, vmapc.f32[3], np.array(2.0))
    assert fn.out_types[0].dtype == np.float64


# --- in-place operators -------------------------------------------------------------------

def test_inplace_operators_keep_dtype_and_shape():
    """a += b on a traced array rebinds a to a value of a's dtype and shape, as NumPy's
    in-place result has (other references to the old value are not changed)."""
    def f(a, b):
        a = a * 1
        a += b
        a *= 2
        a //= 3
        return a
    for da, db in [("float32", "float64"), ("int8", "int64"), ("float16", "int32"), ("int32", "bool")]:
        a, b = np.arange(6, dtype=da).reshape(2, 3), np.ones((3,), db)
        fn = vmapc.trace(f, a, b)
        want = f(a.copy(), b)
        got = vmapc.eval(fn, a, b)[0]
        assert got.dtype == want.dtype and np.array_equal(got, want)
    with pytest.raises(ShapeError, match="non-broadcastable"):
        vmapc.trace(f, np.ones((3,), np.float32), np.ones((2, 3), np.float32))
    with pytest.raises(DTypeError, match="same_kind"):
        vmapc.trace(f, np.ones((3,), np.int8), np.ones((3,), np.float32))


def test_inplace_on_python_number_is_python():
    def f(x, s):
        s += 1
        s *= 2.5
        return x * s
    assert vmapc.trace(f, ShapeDtype((2,), np.float16), 1).out_types[0].dtype == np.float16


# --- captured arrays -------------------------------------------------------------------------

def consts(fn):
    return [e for e in fn.eqns if e.op == "constant"]


def test_captured_array_becomes_a_constant():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    fn = vmapc.trace(lambda x: x * w + w, F32)
    (c,) = consts(fn)  # one constant, though w is used twice
    assert c.outputs[0].type == fn.in_types[0] and np.array_equal(c.attrs["value"], w)
    assert np.array_equal(vmapc.eval(fn, np.ones((3, 4), np.float32))[0], w * 1 + w)


def test_equal_valued_captured_array_becomes_a_broadcast_scalar():
    big = np.full((300, 400), 2.5, np.float32)
    fn = vmapc.trace(lambda x: x + big, ShapeDtype((300, 400), np.float32))
    (c,) = consts(fn)
    assert c.attrs["value"].shape == ()
    assert any(e.op == "broadcast_in_dim" for e in fn.eqns)
    assert len(str(fn)) < 400
    for splat in (np.zeros((3, 4), bool), np.ones((3, 4), np.uint64), np.full((3, 4), np.nan)):
        fn = vmapc.trace(lambda x: x + splat, F32)
        assert consts(fn)[0].attrs["value"].shape == ()
        want = np.zeros((3, 4), np.float32) + splat
        got = vmapc.eval(fn, np.zeros((3, 4), np.float32))[0]
        np.testing.assert_array_equal(got, want)


def test_signed_zeros_are_not_a_splat():
    z = np.array([0.0, -0.0, 0.0])
    fn = vmapc.trace(lambda x: x * z, ShapeDtype((3,), np.float64))
    assert consts(fn)[0].attrs["value"].shape == (3,)
    got = vmapc.eval(fn, np.ones(3))[0]
    assert np.array_equal(np.signbit(got), [False, True, False])


def test_creation_functions_inside_trace_are_constants():
    fn = vmapc.trace(lambda x: x + np.zeros(x.shape, x.dtype) + np.arange(4) + np.eye(3, 4), F32)
    assert all(e.op != "iota" for e in fn.eqns)
    assert {c.attrs["value"].shape for c in consts(fn)} == {(), (4,), (3, 4)}


# --- tracer basics ---------------------------------------------------------------------------

def test_tracer_static_attributes():
    seen = {}

    def f(x):
        seen.update(shape=x.shape, dtype=x.dtype, ndim=x.ndim, size=x.size, itemsize=x.itemsize, nbytes=x.nbytes,
                    len=len(x), repr=repr(x), T=x.T.shape, np_shape=np.shape(x), np_ndim=np.ndim(x), np_size=np.size(x))
        assert isinstance(x, Tracer)
        return x
    vmapc.trace(f, ShapeDtype((3, 4), np.int16))
    assert seen == dict(shape=(3, 4), dtype=np.dtype(np.int16), ndim=2, size=12, itemsize=2, nbytes=24, len=3,
                        repr="Tracer<i16[3,4]>", T=(4, 3), np_shape=(3, 4), np_ndim=2, np_size=12)


def test_shape_dtype_specs():
    assert vmapc.f32[8, 4] == ShapeDtype((8, 4), np.float32)
    assert vmapc.f32[3].shape == (3,) and vmapc.f32[()].shape == ()
    assert repr(vmapc.f32[2, 3]) == "f32[2,3]"
    fn = vmapc.trace(lambda x: x, ShapeDtype((), "i8"))
    assert str(fn.in_types[0]) == "i8[]"
    with pytest.raises(DTypeError):
        ShapeDtype((2,), np.clongdouble)
    with pytest.raises(DTypeError):
        ShapeDtype((2,), "f128")
