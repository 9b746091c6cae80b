"""Testing batching rules: sample programs for every op and the per-example oracle.

A batching rule is right when the batched program computes, for every example,
what the unbatched program computes for that example alone. ``vmap_cases`` builds
that check (after functorch's ``test_vmap``) for a program:

* every combination of batch dims for its inputs: all 0, then every tuple from
  {-1, None} except all None;
* batch sizes 2 and an odd one;
* ``out_dims`` 0 and -1;
* the expected result is a Python loop over the examples that runs the unbatched
  program on each and stacks the results.

Each :class:`Case` holds a batched Function, its arguments and the expected
outputs, so one evaluator can run many cases at once: the NumPy reference
(``run_reference``, no compiler) or a compiled module holding every case's
function (the IREE tests). ``op_samples()`` has single-equation sample programs
for every op in the library with argument generators that respect each op's
domain (valid indices, positive sizes).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from . import dtypes as dt
from .ir import Builder, Function, TensorType, Var
from .ops import BINARY, OPS, UNARY
from .reference import evaluate
from .vmap import vmap


@dataclass
class Sample:
    """A program and a generator of one example's arguments (``gen(rng) -> [arrays]``)."""
    name: str
    fn: Function
    gen: object
    tags: tuple = ()


@dataclass
class Case:
    """A batched program, its arguments and the outputs the per-example loop gives."""
    name: str
    fn: Function
    args: list
    expected: list
    dtypes: list = field(default_factory=list)


# --- argument generation -------------------------------------------------------------------------

def random_array(rng, t: TensorType, kind: str = "any"):
    """Random values of type t. kind: "any", "positive", "unit" (in (-1, 1)),
    "small" (small integers), or ("index", n) for indices into a dim of size n."""
    shape, d = t.shape, t.dtype
    if isinstance(kind, tuple) and kind[0] == "index":
        n = kind[1]
        lo = -n if not dt.is_unsigned(d) else 0
        return rng.integers(lo, builtins_max(n, 1), size=shape).astype(d)
    if kind == "ties" and d != dt.BOOL:   # few distinct values (floats: NaN, -0.0 and 0.0 too)
        x = rng.integers(0 if dt.is_unsigned(d) else -2, 3, size=shape).astype(d)
        if dt.is_float(d):
            x = np.where(rng.random(shape) < 0.15, np.nan, x).astype(d)
            x = np.where(x == 0, np.where(rng.random(shape) < 0.5, -0.0, 0.0), x).astype(d)
        return x
    if d == dt.BOOL:
        return rng.random(shape) < 0.5
    if dt.is_complex(d):    # a real part of `kind`, an imaginary part of either sign
        part = dt.component(d)
        re = random_array(rng, TensorType(shape, part), "unit" if kind == "ties" else kind)
        im = rng.uniform(-1.5, 1.5, size=shape).astype(part)
        return np.asarray(re + 1j * im).astype(d)
    if dt.is_int(d):
        info = np.iinfo(d)
        lo, hi = (0, 10) if dt.is_unsigned(d) else (-6, 7)
        if kind == "positive":
            lo = 1
        return rng.integers(builtins_max(lo, info.min), builtins_min(hi, info.max), size=shape,
                            endpoint=False).astype(d)
    if kind == "positive":
        x = rng.uniform(0.1, 3.0, size=shape)
    elif kind == "unit":
        x = rng.uniform(-0.9, 0.9, size=shape)
    else:
        x = rng.normal(0.0, 2.0, size=shape)
    return np.asarray(x).astype(d)


def builtins_max(a, b):
    return a if a > b else b


def builtins_min(a, b):
    return a if a < b else b


# --- single-op sample programs -------------------------------------------------------------------

def single_op(op: str, in_types, attrs: dict, name: str | None = None) -> Function:
    """A Function whose body is one equation ``op[attrs](inputs)``."""
    b = Builder()
    ins = [Var(t) for t in in_types]
    outs = b.emit_multi(op, ins, attrs)
    return b.build(ins, outs, name=name or op)


_DOMAIN = {"log": "positive", "sqrt": "positive", "rsqrt": "positive", "reciprocal": "positive",
           "log1p": "positive", "arcsin": "unit", "arccos": "unit"}


def _dtypes_for(kind):
    return dt.KINDS[kind]


def _gen(types, kinds):
    def gen(rng):
        return [random_array(rng, t, k) for t, k in zip(types, kinds)]
    return gen


def _T(shape, d):
    return TensorType(shape, d)


def op_samples(dtypes: str = "all") -> list:
    """Sample programs for every op. ``dtypes="all"``: every dtype each elementwise op
    accepts; ``"few"``: one float and one integer dtype per op (for compiled sweeps)."""
    few = dtypes == "few"
    out = []

    def pick(kind):
        ds = _dtypes_for(kind)
        if not few:
            return ds
        pref = [dt.FLOAT32, dt.INT32, dt.BOOL]
        return tuple(d for d in pref if d in ds)[:2] or ds[:1]

    for name, (kind, _) in UNARY.items():
        for d in pick(kind):
            for shape in ((), (3,), (2, 3)) if not few else ((2, 3),):
                t = _T(shape, d)
                out.append(Sample(f"{name}_{dt.short_name(d)}_{len(shape)}d", single_op(name, [t], {}),
                                  _gen([t], [_DOMAIN.get(name, "any")])))
    for name, (kind, _) in BINARY.items():
        for d in pick(kind):
            shapes = (((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((1, 3), (2, 3)))
            for sa, sb in (shapes if not few else shapes[2:4]):
                ta, tb = _T(sa, d), _T(sb, d)
                kinds = ["any", "any"]
                if name == "power" and dt.is_float(d):
                    kinds = ["positive", "any"]
                out.append(Sample(f"{name}_{dt.short_name(d)}_{sa}_{sb}", single_op(name, [ta, tb], {}),
                                  _gen([ta, tb], kinds)))
    for d in pick("all"):
        for sc, sx, sy in (((2, 3), (2, 3), (2, 3)), ((2, 1), (1, 3), (2, 3)), ((), (), ())):
            ts = [_T(sc, dt.BOOL), _T(sx, d), _T(sy, d)]
            out.append(Sample(f"select_{dt.short_name(d)}_{sc}", single_op("select", ts, {}), _gen(ts, ["any"] * 3)))
    conv_src = dt.ALL if not few else (dt.FLOAT32, dt.INT32, dt.BOOL)
    for s in conv_src:
        for d in (dt.FLOAT32, dt.INT32, dt.BOOL, dt.UINT8, dt.FLOAT16, dt.COMPLEX64) if not few else (dt.FLOAT32, dt.INT64):
            if s == d:
                continue
            t = _T((2, 3), s)
            kind = "any"
            if dt.is_float(s) and (dt.is_int(d)):
                kind = "positive" if dt.is_unsigned(d) else "any"
            out.append(Sample(f"convert_{dt.short_name(s)}_{dt.short_name(d)}",
                              single_op("convert", [t], {"dtype": d}), _gen([t], [kind])))
    # bitcast: the source's values are bits of normal floats where the target is a float
    # (compiled code flushes subnormals to zero; the reference keeps them)
    pairs = ((dt.FLOAT32, dt.UINT32), (dt.UINT32, dt.FLOAT32), (dt.INT32, dt.UINT32), (dt.FLOAT64, dt.INT64),
             (dt.INT64, dt.FLOAT64), (dt.FLOAT16, dt.INT16), (dt.INT16, dt.FLOAT16), (dt.UINT8, dt.INT8))
    for s, d in pairs[:2] if few else pairs:
        t = _T((2, 3), s)
        out.append(Sample(f"bitcast_{dt.short_name(s)}_{dt.short_name(d)}",
                          single_op("bitcast", [t], {"dtype": d}), _bits_gen(t, d)))
    # the random family: threefry over full-range words, with broadcasting; key_use with a dep
    for shapes in (((2, 3),) * 4, ((2, 1), (1, 3), (2, 3), (1, 1)), ((),) * 4):
        ts = [_T(sh, dt.UINT32) for sh in shapes]
        out.append(Sample(f"threefry2x32_{shapes[0]}_{shapes[1]}", single_op("threefry2x32", ts, {}),
                          lambda rng, ts=ts: [rng.integers(0, 2 ** 32, size=t.shape, dtype=np.uint32) for t in ts]))
    for extra in ([], [_T((3,), dt.FLOAT32)]):
        ts = [_T((2,), dt.UINT32)] + extra
        out.append(Sample(f"key_use_{len(ts)}", single_op("key_use", ts, {"what": "normal"}),
                          lambda rng, ts=ts: [rng.integers(0, 2 ** 32, size=(2,), dtype=np.uint32)]
                          + [random_array(rng, t) for t in ts[1:]], tags=("random",)))
    red = {"reduce_sum": "numeric", "reduce_prod": "numeric", "reduce_max": "any", "reduce_min": "any",
           "reduce_any": "any", "reduce_all": "any"}
    for name, kind in red.items():
        ds = (dt.BOOL,) if name in ("reduce_any", "reduce_all") else pick(kind)
        if not few and name not in ("reduce_any", "reduce_all"):
            ds = (dt.FLOAT32, dt.INT32, dt.UINT8, dt.FLOAT64) + ((dt.COMPLEX64,) if kind == "numeric" else ())
        for d in ds:
            for shape, axes in (((2, 3, 4), (1,)), ((2, 3, 4), (0, 2)), ((2, 3, 4), ()), ((2, 3, 4), (0, 1, 2)),
                                ((5,), (0,))):
                t = _T(shape, d)
                out.append(Sample(f"{name}_{dt.short_name(d)}_{axes}", single_op(name, [t], {"axes": axes}),
                                  _gen([t], ["any"])))
    for name in ("argmax", "argmin"):
        for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT32, dt.UINT8, dt.BOOL):
            for shape, axis in (((2, 3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4), 2), ((5,), 0)):
                t = _T(shape, d)
                out.append(Sample(f"{name}_{dt.short_name(d)}_{axis}", single_op(name, [t], {"axis": axis}),
                                  _gen([t], ["any"])))
    dots = [
        ("matmul", (2, 3), (3, 4), ((1,), (0,)), ((), ())),
        ("vecmat", (3,), (3, 4), ((0,), (0,)), ((), ())),
        ("matvec", (2, 3), (3,), ((1,), (0,)), ((), ())),
        ("bmm", (2, 3, 4), (2, 4, 5), ((2,), (1,)), ((0,), (0,))),
        ("trans_b", (2, 3), (4, 3), ((1,), (1,)), ((), ())),
        ("multi", (2, 3, 4), (3, 4, 5), ((1, 2), (0, 1)), ((), ())),
        ("outer", (3,), (4,), ((), ()), ((), ())),
        ("inner", (3,), (3,), ((0,), (0,)), ((), ())),
    ]
    for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT32, dt.FLOAT64, dt.UINT8, dt.COMPLEX128):
        for tag, sa, sb, contract, batch in dots:
            ts = [_T(sa, d), _T(sb, d)]
            out.append(Sample(f"dot_general_{tag}_{dt.short_name(d)}",
                              single_op("dot_general", ts, {"contract": contract, "batch": batch}),
                              _gen(ts, ["any", "any"])))
    shape_cases = [
        ("reshape", [(2, 3)], {"shape": (6,)}), ("reshape", [(6,)], {"shape": (2, 3)}),
        ("reshape", [(2, 3, 4)], {"shape": (6, 4)}), ("reshape", [()], {"shape": (1, 1)}),
        ("reshape", [(2, 3)], {"shape": (3, 2)}),
        ("transpose", [(2, 3, 4)], {"perm": (2, 0, 1)}), ("transpose", [(2, 3)], {"perm": (1, 0)}),
        ("broadcast_in_dim", [(3,)], {"shape": (2, 3), "dims": (1,)}),
        ("broadcast_in_dim", [(1, 3)], {"shape": (4, 2, 3), "dims": (1, 2)}),
        ("broadcast_in_dim", [()], {"shape": (2, 2), "dims": ()}),
        ("broadcast_in_dim", [(3,)], {"shape": (3, 2), "dims": (0,)}),
        ("concatenate", [(2, 3), (4, 3)], {"axis": 0}), ("concatenate", [(2, 3), (2, 1), (2, 2)], {"axis": 1}),
        ("slice", [(5, 6)], {"start": (1, 0), "limit": (4, 6), "step": (1, 2)}),
        ("slice", [(7,)], {"start": (2,), "limit": (7,), "step": (3,)}),
        ("rev", [(3, 4)], {"axes": (0,)}), ("rev", [(3, 4)], {"axes": (0, 1)}),
    ]
    for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT64, dt.BOOL, dt.FLOAT16):
        for i, (name, shapes, attrs) in enumerate(shape_cases):
            ts = [_T(s, d) for s in shapes]
            out.append(Sample(f"{name}_{i}_{dt.short_name(d)}", single_op(name, ts, attrs), _gen(ts, ["any"] * len(ts))))
        ts = [_T((2, 3), d), _T((), d)]
        out.append(Sample(f"pad_{dt.short_name(d)}", single_op("pad", ts, {"lo": (1, 0), "hi": (0, 2)}),
                          _gen(ts, ["any", "any"])))
    for d in (dt.FLOAT32,) if few else (dt.FLOAT32, dt.INT32):
        for idt in (dt.INT64,) if few else (dt.INT64, dt.INT32, dt.UINT8):
            takes = [((5, 3), (4,), 0, 0), ((3, 5), (2, 2), 1, 0), ((2, 5, 3), (2, 4), 1, 1), ((4,), (), 0, 0)]
            for xs, is_, axis, bd in takes:
                ts = [_T(xs, d), _T(is_, idt)]
                out.append(Sample(f"take_{xs}_{is_}_{axis}_{bd}_{dt.short_name(idt)}",
                                  single_op("take", ts, {"axis": axis, "batch_dims": bd}),
                                  _gen(ts, ["any", ("index", xs[axis])])))
            for xs, is_, axis in (((3, 4), (3, 2), 1), ((3, 4), (1, 2), 1), ((3, 4), (2, 4), 0)):
                ts = [_T(xs, d), _T(is_, idt)]
                out.append(Sample(f"take_along_axis_{xs}_{is_}_{axis}_{dt.short_name(idt)}",
                                  single_op("take_along_axis", ts, {"axis": axis}),
                                  _gen(ts, ["any", ("index", xs[axis])])))
            for xs, sizes in (((5, 6), (2, 3)), ((5,), (5,)), ((4, 3), (4, 2))):
                ts = [_T(xs, d)] + [_T((), idt)] * len(xs)
                kinds = ["any"] + [("index", n + 2) for n in xs]
                out.append(Sample(f"dynamic_slice_{xs}_{sizes}_{dt.short_name(idt)}",
                                  single_op("dynamic_slice", ts, {"sizes": sizes}), _gen(ts, kinds)))
    for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT32, dt.BOOL):
        scatters = [((5,), (7,), 0, 0), ((5, 3), (4,), 0, 0), ((3, 5), (2, 2), 1, 0), ((2, 5, 3), (2, 4), 1, 1),
                    ((4,), (), 0, 0), ((3, 2, 4), (2,), 2, 0)]
        modes = ("set", "add", "multiply", "min", "max") if d != dt.BOOL else ("set", "add")
        for j, (xs, is_, axis, bd) in enumerate(scatters):
            us = xs[:axis] + is_[bd:] + xs[axis + 1:]
            ts = [_T(xs, d), _T(is_, dt.INT64 if j % 2 == 0 or few else dt.INT32), _T(us, d)]
            for mode in modes if not few or j < 2 else modes[:2]:
                out.append(Sample(f"scatter_{mode}_{xs}_{is_}_{axis}_{bd}_{dt.short_name(d)}",
                                  single_op("scatter", ts, {"axis": axis, "batch_dims": bd, "mode": mode}),
                                  _gen(ts, ["any", ("index", xs[axis]), "any"])))
        for idt in (dt.INT64,) if few else (dt.INT64, dt.INT8, dt.UINT8):
            for xs, us in (((5, 6), (2, 3)), ((5,), (5,)), ((4, 3), (4, 2)), ((3,), (0,))):
                ts = [_T(xs, d), _T(us, d)] + [_T((), idt)] * len(xs)
                kinds = ["any", "any"] + [("index", n + 2) for n in xs]
                out.append(Sample(f"update_slice_{xs}_{us}_{dt.short_name(d)}_{dt.short_name(idt)}",
                                  single_op("update_slice", ts, {}), _gen(ts, kinds)))
    for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT32, dt.UINT8, dt.BOOL, dt.FLOAT64, dt.FLOAT16):
        scans = [("add", (2, 3, 4), 1, False), ("multiply", (5,), 0, True), ("maximum", (2, 3, 4), 2, False),
                 ("minimum", (4, 3), 0, True)]
        for op, shape, axis, rev in scans if not few else scans[::3]:
            t = _T(shape, d)
            out.append(Sample(f"cumulative_{op}_{dt.short_name(d)}_{axis}_{rev}",
                              single_op("cumulative", [t], {"combine": op, "axis": axis, "reverse": rev}),
                              _gen([t], ["ties" if op in ("maximum", "minimum") else "any"])))
    for d in (dt.FLOAT32, dt.INT32) if few else (dt.FLOAT32, dt.INT32, dt.UINT8, dt.BOOL, dt.FLOAT64, dt.FLOAT16):
        sorts = [([(4, 3), (4, 3)], 0, False, 1), ([(3, 7), (3, 7)], 1, True, 2), ([(3, 40)], 1, False, 1),
                 ([(2, 5)], 1, False, 1), ([(6, 3)], 0, True, 1)]
        for i, (shapes, axis, desc, nk) in enumerate(sorts if not few else sorts[:3]):
            ts = [_T(sh, d if k < nk else dt.INT64) for k, sh in enumerate(shapes)]
            out.append(Sample(f"sort_{i}_{dt.short_name(d)}",
                              single_op("sort", ts, {"axis": axis, "descending": desc, "num_keys": nk}),
                              _gen(ts, ["ties"] * len(ts))))
        for shape, k in (((2, 6), 3), ((7,), 7), ((2, 3, 20), 4)) if not few else (((2, 6), 3), ((2, 3, 20), 4)):
            t = _T(shape, d)
            out.append(Sample(f"top_k_{shape}_{k}_{dt.short_name(d)}", single_op("top_k", [t], {"k": k}),
                              _gen([t], ["ties"])))
    casts = [(dt.FLOAT32, dt.INT32), (dt.INT32, dt.FLOAT32), (dt.FLOAT64, dt.UINT64), (dt.UINT16, dt.FLOAT16),
             (dt.INT8, dt.UINT8)]
    for s, d in casts if not few else casts[:2]:
        t = _T((2, 3), s)
        out.append(Sample(f"bitcast_{dt.short_name(s)}_{dt.short_name(d)}", single_op("bitcast", [t], {"dtype": d}),
                          _gen([t], ["any"])))
    for name, kind in (("psum", "numeric"), ("pmax", "any"), ("pmin", "any"), ("all_gather", "any")):
        for d in pick(kind) if few else (dt.FLOAT32, dt.INT32, dt.UINT8, dt.FLOAT64, dt.BOOL):
            if d not in dt.KINDS[kind]:
                continue
            for shape, attrs in (((2, 3), {}), ((), {})) if name != "all_gather" else (
                    ((2, 3), {"axis": 0}), ((2, 3), {"axis": 2}), ((), {"axis": 0})):
                if name == "all_gather":
                    attrs = dict(attrs, axis_size=3)   # collective_cases rebuilds it for each batch size
                t = _T(shape, d)
                out.append(Sample(f"{name}_{dt.short_name(d)}_{len(shape)}d_{attrs.get('axis', '')}",
                                  single_op(name, [t], {"axis_name": "i", **attrs}), _gen([t], ["any"]),
                                  tags=("collective",)))
    out.append(Sample("axis_index", single_op("axis_index", [], {"axis_name": "i"}), lambda rng: [],
                      tags=("collective",)))
    out.append(Sample("iota", single_op("iota", [], {"shape": (2, 3), "dimension": 1, "dtype": dt.INT32}),
                      lambda rng: []))
    out.append(Sample("constant", single_op("constant", [], {"value": np.arange(6, dtype=np.float32).reshape(2, 3)}),
                      lambda rng: []))
    out += control_samples()
    out += custom_samples()
    seen: dict = {}
    for s in out:            # case names must be unique: they key compiled results
        k = seen[s.name] = seen.get(s.name, -1) + 1
        if k:
            s.name = f"{s.name}_{k}"
    return out


def control_samples() -> list:
    """Sample programs of ``cond``, ``while_loop`` and ``scan``: one equation each, whose
    sub-programs use several op families, nest loops and branches, and (for
    ``while_loop``) stop after a different number of steps for different inputs. Every
    loop ends for every input the generators make, including inputs shared across examples."""
    from .tracing import trace
    from . import control, numpy as vnp
    F, I = dt.FLOAT32, dt.INT32

    def sub(fn, *types):
        f = trace(fn, *[_spec(t) for t in types])
        f.name = "body"
        return f

    t3, t23, s, si = _T((3,), F), _T((2, 3), F), _T((), F), _T((), I)
    out = []
    # cond: a bool predicate, two outputs of different families
    br = (sub(lambda x, y: (x - y, vnp.max(x)), t3, t3), sub(lambda x, y: (x * y + 1.0, vnp.sum(x * y)), t3, t3))
    ts = [_T((), dt.BOOL), t3, t3]
    out.append(Sample("cond_bool", single_op("cond", ts, {"branches": br}), _gen(ts, ["any"] * 3)))
    # switch: an int32 index, often out of range (clamped), three branches
    br = (sub(lambda x: x * 2.0, t23), sub(lambda x: vnp.tanh(x), t23), sub(lambda x: x @ (x.T @ x) * 0.1, t23))
    ts = [si, t23]
    out.append(Sample("cond_switch3", single_op("cond", ts, {"branches": br}), _gen(ts, [("index", 5), "any"])))
    # an unsigned index, an operand shared by the branches' indexing
    br = (sub(lambda x, i: x[i], t3, si), sub(lambda x, i: x[::-1][i] * 3.0, t3, si),
          sub(lambda x, i: (x * x)[i] - vnp.min(x), t3, si))
    ts = [_T((), dt.UINT8), t3, si]
    out.append(Sample("cond_uint8_gather", single_op("cond", ts, {"branches": br}),
                      _gen(ts, [("index", 4), "any", ("index", 3)])))
    # a branch holding a while_loop (guarded under a batched predicate)
    count = sub(lambda v: control.while_loop(lambda c: c[0] > 0, lambda c: (c[0] - 1, c[1] + c[0]), (v, v * 0))[1], si)
    ts = [_T((), dt.BOOL), si]
    out.append(Sample("cond_with_while", single_op("cond", ts, {"branches": (sub(lambda v: -v, si), count)}),
                      _gen(ts, ["any", "any"])))
    # while_loop: a trip count per example (a cond constant), a body constant
    cond = sub(lambda n, i, x: i < n, si, si, t3)
    body = sub(lambda k, i, x: (i + 1, x * 0.5 + k), t3, si, t3)
    ts = [si, t3, si, t3]
    out.append(Sample("while_counter", single_op("while_loop", ts, {"cond": cond, "body": body}),
                      _gen(ts, [("index", 8), "any", ("index", 3), "any"])))
    # Collatz steps: data-dependent trip counts, integer arithmetic and a select in the body
    cond = sub(lambda x, i: (x != 1) & (i < 40), si, si)
    body = sub(lambda x, i: (vnp.where(x % 2 == 0, x // 2, 3 * x + 1), i + 1), si, si)
    ts = [si, si]
    out.append(Sample("while_collatz", single_op("while_loop", ts, {"cond": cond, "body": body}),
                      _gen(ts, ["positive", ("index", 2)])))
    # a loop inside a loop: sum_{i < n} sum_{j < i} x
    inner = lambda i, acc, x: control.while_loop(lambda c: c[0] < i, lambda c: (c[0] + 1, c[1] + x), (0 * i, acc))[1]
    cond = sub(lambda n, i, acc, x: i < n, si, si, s, s)
    body = sub(lambda i, acc, x: (i + 1, inner(i, acc, x), x), si, s, s)
    ts = [si, si, s, s]
    out.append(Sample("while_nested", single_op("while_loop", ts, {"cond": cond, "body": body}),
                      _gen(ts, [("index", 5), ("index", 2), "any", "any"])))
    # scan: a constant, a carry, two sequences, two outputs
    body = sub(lambda w, c, x, m: (vnp.tanh(c * w + x), (c * m).sum()), t3, t3, t3, t3)
    ts = [t3, t3, _T((4, 3), F), _T((4, 3), F)]
    out.append(Sample("scan_tanh", single_op("scan", ts, {"body": body, "length": 4, "reverse": False,
                                                          "n_consts": 1, "n_carry": 1}), _gen(ts, ["any"] * 4)))
    # reverse, an int carry and a float carry, a cond inside the body
    body = sub(lambda k, a, x: (k + 1, control.cond(x > 0, lambda u, v: u + v, lambda u, v: u * v, a, x),
                                a * x), si, s, s)
    ts = [si, s, _T((5,), F)]
    out.append(Sample("scan_reverse_cond", single_op("scan", ts, {"body": body, "length": 5, "reverse": True,
                                                                 "n_consts": 0, "n_carry": 2}),
                      _gen(ts, [("index", 3), "any", "any"])))
    # no carry (vmapc.map); no sequence (fori_loop), indexing a constant by the counter
    body = sub(lambda x: (x @ x.T,), t23)
    ts = [_T((3, 2, 3), F)]
    out.append(Sample("scan_map", single_op("scan", ts, {"body": body, "length": 3, "reverse": False,
                                                         "n_consts": 0, "n_carry": 0}), _gen(ts, ["any"])))
    body = sub(lambda table, i, acc: (i + 1, acc + table[i]), _T((6, 2), F), si, _T((2,), F))
    ts = [_T((6, 2), F), si, _T((2,), F)]
    out.append(Sample("scan_fori", single_op("scan", ts, {"body": body, "length": 6, "reverse": False,
                                                          "n_consts": 1, "n_carry": 2}),
                      _gen(ts, ["any", ("index", 1), "any"])))
    body = sub(lambda c, x: (c * x, c - x), s, s)
    ts = [s, _T((0,), F)]
    out.append(Sample("scan_empty", single_op("scan", ts, {"body": body, "length": 0, "reverse": False,
                                                           "n_consts": 0, "n_carry": 1}), _gen(ts, ["any"] * 2)))
    return out


def custom_samples() -> list:
    """Sample programs of ``custom``: an op batched through its body (``softclip``, with a
    shared and a batched operand) and one with a batching rule, a forward-mode and a
    reverse-mode rule of its own (``logsumexp`` over the last axis)."""
    from .custom import custom_op
    from .tracing import trace
    from . import numpy as vnp
    F = dt.FLOAT32

    @custom_op("vmapc.testing.softclip")
    def softclip(x, t):
        return t * vnp.tanh(x / t)

    @custom_op("vmapc.testing.logsumexp")
    def logsumexp(x):
        m = vnp.max(x, axis=-1, keepdims=True)
        return vnp.log(vnp.sum(vnp.exp(x - m), axis=-1)) + m[..., 0]

    @logsumexp.def_vmap
    def _(axis_size, in_dims, x):         # reduce the example's last axis, wherever the batch is
        d = in_dims[0]
        if d == x.ndim - 1:
            x, d = vnp.moveaxis(x, d, 0), 0
        return logsumexp(x), d

    @logsumexp.def_jvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        y = logsumexp(x)
        return y, vnp.sum(vnp.exp(x - y[..., None]) * t, axis=-1)

    @logsumexp.def_vjp
    def _(primals, out, ct):
        (x,) = primals
        return (vnp.exp(x - out[..., None]) * ct[..., None],)

    def sample(name, fn, types, kinds):
        f = trace(fn, *[_spec(t) for t in types])
        return Sample(name, single_op("custom", types, dict(f.eqns[0].attrs)), _gen(types, kinds))
    return [sample("custom_softclip", softclip, [_T((3,), F), _T((), F)], ["any", "positive"]),
            sample("custom_logsumexp_rule", logsumexp, [_T((2, 3), F)], ["any"])]


def check_batching_rule(op, *example_args, rng=None, sizes=(2, 3), **attrs) -> int:
    """Run `op`'s batching rule through the sweep vmapc's own rules pass
    (``tests/test_rules.py``): every in_dims combination (all 0, then each of {-1, None}
    per argument), batch sizes 2 and 3, out_dims 0 and -1, a double nesting with different
    sizes and an inner vmap over nothing, each against a per-example loop of the unbatched
    op on the reference evaluator. Returns the number of cases checked.

    `op` is a :func:`vmapc.custom_op`, any function (traced at the example arguments), an
    IR :class:`~vmapc.ir.Function`, or the name of an internal op with its attributes as
    keywords (``check_batching_rule("reduce_sum", x, axes=(0,))``). `example_args` is one
    example's arguments (arrays); the examples of a batch are it with its floating-point
    values perturbed (integer and bool arguments, such as indices, are kept). A wrong
    result raises AssertionError naming the case; results of the wrong type raise
    :class:`~vmapc.errors.CustomOpError` (a custom op's rule) or AssertionError."""
    from .tracing import trace
    args = [np.asarray(a) for a in example_args]
    if isinstance(op, Function):
        fn = op
    elif isinstance(op, str):
        fn = single_op(op, [TensorType(a.shape, dt.canonical(a.dtype)) for a in args], attrs)
    elif callable(op):
        fn = trace(op, *args)
    else:
        raise TypeError(f"check_batching_rule: expected a custom op, a function, an IR Function or an op name, "
                        f"got {type(op).__name__}")
    args = [np.asarray(a, v.dtype) for a, v in zip(args, fn.inputs)]
    rng = np.random.default_rng(0) if rng is None else rng

    def gen(r):
        return [np.asarray(a * (1 + 0.05 * r.normal(size=a.shape)) + 0.05 * r.normal(size=a.shape), a.dtype)
                if dt.is_float(a.dtype) else a.copy() for a in args]
    name = getattr(op, "name", None) or getattr(op, "__name__", None) or fn.name
    cases = vmap_cases(Sample(str(name), fn, gen), rng, sizes=sizes)
    for case in cases:
        assert_outputs_match(case, run_reference(case))
    return len(cases)


def _spec(t: TensorType):
    from .tracing import ShapeDtype
    return ShapeDtype(t.shape, t.dtype)


def _bits_gen(t: TensorType, target):
    """Arguments for a bitcast of t to `target`: where the target is a float, the bits of
    normal floats of that width (random values otherwise)."""
    def gen(rng):
        if dt.is_float(target):
            x = rng.normal(0.0, 2.0, size=t.shape).astype(target)
            x[x == 0] = 1
            return [np.ascontiguousarray(x).view(t.dtype)]
        return [random_array(rng, t)]
    return gen


def sampled_ops() -> set:
    return {e.op for s in op_samples() for e in s.fn.eqns}



# --- the per-example oracle ----------------------------------------------------------------------

def _stack(xs, axis):
    return np.stack(xs, axis=axis) if xs else None


def in_dim_combos(n: int) -> list:
    """All 0, then every tuple from {-1, None}^n except all None (design.md section 8)."""
    combos = [(0,) * n]
    for c in itertools.product((-1, None), repeat=n):
        if any(d is not None for d in c) and c not in combos:
            combos.append(c)
    return combos


def _loop(fn, examples, evaluate_fn=evaluate):
    return [evaluate_fn(fn, *ex) for ex in examples]


def _batch_args(examples, in_dims, types):
    """Physical arguments: batched inputs stacked at their dim, unbatched from example 0."""
    args = []
    for k, d in enumerate(in_dims):
        if d is None:
            args.append(examples[0][k])
        else:
            rank = types[k].rank
            args.append(np.stack([ex[k] for ex in examples], axis=d % (rank + 1)))
    return args


def vmap_cases(sample: Sample, rng, sizes=(2, 3), out_dims=(0, -1), nested=True, all_in_dims=True,
               cross=True) -> list:
    """The design.md section 8 sweep for one sample program, as Cases
    (``all_in_dims=False``: only in_dims all 0). ``cross=True`` tries every
    (batch size, in_dims, out_dims) triple; ``cross=False`` covers each of them once,
    for compiled sweeps where every case costs compile time: every in_dims at the
    last size and the first out_dims, then in_dims all 0 at the other sizes with the
    other out_dims. A collective's sample gets :func:`collective_cases` instead."""
    if "collective" in sample.tags:
        return collective_cases(sample, rng, sizes, out_dims, nested, all_in_dims)
    fn = sample.fn
    n = len(fn.inputs)
    cases = []
    if n == 0:
        for B in sizes:
            bf = vmap(fn, in_dims=(), axis_size=B)
            (exp,) = [_loop(fn, [[]])]
            cases.append(Case(f"{sample.name}_nobdim_B{B}", bf, [],
                              [np.stack([o] * B) for o in exp[0]]))
        return cases
    combos = in_dim_combos(n) if all_in_dims else [(0,) * n]
    if cross:
        plan = [(B, combo, out_dims) for B in sizes for combo in combos]
    else:
        plan = [(sizes[-1], combo, out_dims[:1]) for combo in combos]
        plan += [(B, (0,) * n, out_dims[1:] or out_dims) for B in sizes[:-1]]
        if len(sizes) == 1 and len(out_dims) > 1:
            plan.append((sizes[0], (0,) * n, out_dims[1:]))
    drawn = {}                # the examples of each batch size, drawn once in order of size
    for B, combo, ods in plan:
        if B not in drawn:
            drawn[B] = [sample.gen(rng) for _ in range(B)]
        examples = drawn[B]
        shared = [[ex[k] if combo[k] is not None else examples[0][k] for k in range(n)] for ex in examples]
        per = _loop(fn, shared)
        for od in ods:
            bf = vmap(fn, in_dims=combo, out_dims=od, axis_size=B)
            expected = [np.stack([p[j] for p in per], axis=od % (fn.outputs[j].rank + 1))
                        for j in range(len(fn.outputs))]
            cases.append(Case(f"{sample.name}_B{B}_in{combo}_out{od}", bf,
                              _batch_args(examples, combo, fn.in_types), expected))
    if nested:
        cases += nested_cases(sample, rng, sizes)
    return cases


def nested_cases(sample: Sample, rng, sizes=(2, 3)) -> list:
    """Double nesting with different batch sizes, and the no-bdim check: an inner vmap
    over nothing (every in_dim None) must equal the outer vmap with a broadcast axis."""
    fn = sample.fn
    n = len(fn.inputs)
    B1, B2 = sizes[0], sizes[-1] + 2
    cases = []
    # double nesting: inner over all-0 at B1, outer over the (last) combo at B2
    combo = in_dim_combos(n)[-1]
    inner = vmap(fn, in_dims=(0,) * n, axis_size=B1)
    outer_dims = tuple(None if d is None else -1 for d in combo)
    outer = vmap(inner, in_dims=outer_dims, axis_size=B2)
    grid = [[sample.gen(rng) for _ in range(B1)] for _ in range(B2)]
    for j in range(B2):      # unbatched-in-outer inputs are shared across the outer axis
        for i in range(B1):
            grid[j][i] = [grid[j][i][k] if combo[k] is not None else grid[0][i][k] for k in range(n)]
    per = [[evaluate(fn, *grid[j][i]) for i in range(B1)] for j in range(B2)]
    args = []
    for k in range(n):
        rows = [np.stack([grid[j][i][k] for i in range(B1)], axis=0) for j in range(B2)]
        args.append(rows[0] if outer_dims[k] is None else np.stack(rows, axis=-1))
    expected = [np.stack([np.stack([per[j][i][o] for i in range(B1)], 0) for j in range(B2)], 0)
                for o in range(len(fn.outputs))]
    cases.append(Case(f"{sample.name}_nested_{B1}x{B2}", outer, args, expected))
    # no-bdim: vmap(vmap(f, all None, axis_size=B1), in_dims=0) == broadcast of vmap(f)
    # (a random draw from a key no example changes is shared: randomness="same")
    inner = vmap(fn, in_dims=(None,) * n, axis_size=B1, randomness="same")
    outer = vmap(inner, in_dims=(0,) * n, axis_size=B2)
    exs = [sample.gen(rng) for _ in range(B2)]
    per = [evaluate(fn, *ex) for ex in exs]
    args = [np.stack([ex[k] for ex in exs]) for k in range(n)]
    expected = [np.stack([np.stack([p[o]] * B1) for p in per]) for o in range(len(fn.outputs))]
    cases.append(Case(f"{sample.name}_nobdim_{B1}x{B2}", outer, args, expected))
    return cases


# --- collectives: the whole batch, computed with NumPy ---------------------------------------------

def _collective_program(sample: Sample, size) -> Function:
    """The sample's program, with all_gather gathering `size` examples."""
    e = sample.fn.eqns[0]
    if e.op != "all_gather":
        return sample.fn
    return single_op(e.op, sample.fn.in_types, dict(e.attrs, axis_size=size), name=sample.fn.name)


def collective_expected(op: str, attrs: dict, xs: list) -> list:
    """What each of the examples gets from a collective over all of them, computed
    with NumPy over the whole batch: `xs` holds each example's operand (None for
    axis_index); the result holds each example's output."""
    n = len(xs)
    if op == "axis_index":
        return [np.int32(i) for i in range(n)]
    stack = np.stack(xs)
    if op == "psum":
        total = np.sum(stack, axis=0, dtype=stack.dtype)
    elif op == "pmax":
        total = np.max(stack, axis=0)
    elif op == "pmin":
        total = np.min(stack, axis=0)
    else:
        total = np.stack(xs, axis=attrs["axis"])
    return [total] * n


def collective_cases(sample: Sample, rng, sizes=(2, 3), out_dims=(0, -1), nested=True, all_in_dims=True) -> list:
    """Cases for a collective's one-equation sample over the axis "i": the vmap that
    binds "i" with every in_dims of the operand (None included: every example sees
    the same value), each out_dims and, for a result that is the same for every
    example, out_dims None; then, nested, the collective inside an unnamed vmap under
    the vmap that binds "i", and the other way round. Expected values are the
    collective computed with NumPy over the whole batch."""
    e = sample.fn.eqns[0]
    n = len(sample.fn.inputs)
    cases = []
    for B in sizes:
        fn = _collective_program(sample, B)
        examples = [sample.gen(rng) for _ in range(B)]
        combos = [()] if n == 0 else ([(0,), (-1,), (None,)] if all_in_dims else [(0,)])
        for combo in combos:
            xs = [ex[0] if combo[0] is not None else examples[0][0] for ex in examples] if n else [None] * B
            per = collective_expected(e.op, e.attrs, xs)
            args = _batch_args(examples, combo, fn.in_types)
            ods = list(out_dims) + ([None] if e.op != "axis_index" and all_in_dims else [])
            for od in ods:
                bf = vmap(fn, in_dims=combo, out_dims=od, axis_size=B, axis_name="i")
                rank = fn.outputs[0].rank
                exp = per[0] if od is None else np.stack(per, axis=od % (rank + 1))
                cases.append(Case(f"{sample.name}_B{B}_in{combo}_out{od}", bf, args, [np.asarray(exp)]))
    if nested:
        cases += _nested_collective_cases(sample, rng, sizes)
    return cases


def _nested_collective_cases(sample, rng, sizes):
    e = sample.fn.eqns[0]
    n = len(sample.fn.inputs)
    B1, B2 = sizes[0], sizes[-1] + 2
    grid = [[sample.gen(rng) for _ in range(B1)] for _ in range(B2)]    # grid[j][i]: outer j, inner i
    args = [np.stack([np.stack([grid[j][i][k] for i in range(B1)]) for j in range(B2)]) for k in range(n)]
    cases = []
    for named in ("outer", "inner"):
        size = B2 if named == "outer" else B1
        fn = _collective_program(sample, size)
        inner = vmap(fn, in_dims=(0,) * n, axis_size=B1, axis_name="i" if named == "inner" else None)
        outer = vmap(inner, in_dims=(0,) * n, axis_size=B2, axis_name="i" if named == "outer" else None)
        want = np.empty((B2, B1), dtype=object)
        if named == "outer":      # example (j, i) combines the examples (*, i)
            for i in range(B1):
                for j, r in enumerate(collective_expected(e.op, e.attrs, [grid[j][i][0] if n else None
                                                                         for j in range(B2)])):
                    want[j, i] = r
        else:                     # example (j, i) combines the examples (j, *)
            for j in range(B2):
                for i, r in enumerate(collective_expected(e.op, e.attrs, [grid[j][i][0] if n else None
                                                                         for i in range(B1)])):
                    want[j, i] = r
        exp = np.stack([np.stack([np.asarray(want[j, i]) for i in range(B1)]) for j in range(B2)])
        cases.append(Case(f"{sample.name}_nested_{named}_{B1}x{B2}", outer, args, [exp]))
    return cases


def run_reference(case: Case) -> list:
    return evaluate(case.fn, *case.args)


def assert_outputs_match(case: Case, got: list, rtol=None, atol=None):
    """Compare with the per-example loop: exact for ints and bools, close for floats
    (NaN equals NaN)."""
    assert len(got) == len(case.expected), f"{case.name}: {len(got)} outputs, expected {len(case.expected)}"
    for j, (g, e) in enumerate(zip(got, case.expected)):
        g = np.asarray(g)
        assert g.shape == e.shape, f"{case.name}: output {j} has shape {g.shape}, expected {e.shape}"
        assert g.dtype == e.dtype, f"{case.name}: output {j} has dtype {g.dtype}, expected {e.dtype}"
        if dt.is_float(e.dtype) or dt.is_complex(e.dtype):
            tol = {dt.FLOAT16: 2e-2, dt.FLOAT32: 2e-5, dt.FLOAT64: 1e-12}[dt.component(e.dtype)]
            np.testing.assert_allclose(g, e, rtol=rtol or tol, atol=atol or tol, equal_nan=True,
                                       err_msg=f"{case.name}: output {j}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"{case.name}: output {j}")


# --- running many cases through a compiler at once -----------------------------------------------

def merge_cases(name: str, cases) -> tuple:
    """One Function computing every case side by side (their inputs, then their
    outputs), so a compiled sweep pays IREE's per-function cost once per group."""
    from .ir import Builder, Var
    b = Builder()
    ins, outs, spans = [], [], []
    for c in cases:
        args = [Var(v.type) for v in c.fn.inputs]
        res = b.inline(c.fn, args)
        spans.append((c, len(outs), len(res)))
        ins += args
        outs += res
    return b.build(ins, outs, name=name), spans


def run_compiled(cases, target="cpu", driver=None, group: int = 32, modules: int = 2) -> dict:
    """Run `cases` through IREE: merged `group` at a time into Functions, compiled
    as `modules` modules. Returns {case name: outputs}."""
    from .driver import compile_functions
    cases = list(cases)
    merged = [merge_cases(f"g{k}", cases[i:i + group]) for k, i in enumerate(range(0, len(cases), group))]
    out = {}
    for m in range(modules):
        part = merged[m::modules]
        if not part:
            continue
        fns = compile_functions([f for f, _ in part], target=target, driver=driver)
        for f, spans in part:
            res = fns[f.name](*[a for c, _, _ in spans for a in c.args])
            for c, start, n in spans:
                out[c.name] = res[start:start + n]
    return out


# --- derivatives against finite differences -----------------------------------------------------

def to_float64(fn: Function) -> Function:
    """`fn` with every floating-point value in float64 (inputs, results, the targets of
    conversions and float constants), for finite differences that are not swamped by
    rounding. Sub-programs (branches, loop bodies) are converted too."""
    from .ir import map_subfunctions

    def f64(t):
        return TensorType(t.shape, dt.FLOAT64) if dt.is_float(t.dtype) else t
    b = Builder()
    ins = [Var(f64(v.type), v.hint) for v in fn.inputs]
    env = {id(v): n for v, n in zip(fn.inputs, ins)}
    for e in fn.eqns:
        attrs = map_subfunctions(e, to_float64)
        if "dtype" in attrs and dt.is_float(attrs["dtype"]):
            attrs["dtype"] = dt.FLOAT64
        if isinstance(attrs.get("value"), np.ndarray) and dt.is_float(attrs["value"].dtype):
            attrs["value"] = attrs["value"].astype(np.float64)
        outs = b.emit_multi(e.op, [env[id(v)] for v in e.inputs], attrs)
        env.update({id(v): o for v, o in zip(e.outputs, outs)})
    return b.build(ins, [env[id(v)] for v in fn.outputs], name=fn.name, arg_names=fn.arg_names)


def _float_positions(vs):
    return [i for i, v in enumerate(vs) if dt.is_float(v.dtype)]


def _dot(xs, ys):
    return sum(float(np.sum(np.asarray(x, np.float64) * np.asarray(y, np.float64))) for x, y in zip(xs, ys))


def check_grads(fn, args, order: int = 1, modes=("fwd", "rev"), eps: float = 1e-6, rtol: float = 1e-5,
                atol: float = 1e-5, rng=None, evaluate_fn=evaluate, name: str = ""):
    """Check `fn`'s derivatives against float64 central finite differences (after
    ``jax.test_util.check_grads``). `fn` is an IR Function or a Python function traced at
    `args`; it is converted to float64 first. For a random direction ``t`` over the float
    inputs, ``(f(x + eps t) - f(x - eps t)) / (2 eps)`` must equal

    * ``"fwd"``: the output tangents of :func:`~vmapc.autodiff.jvp_function`;
    * ``"rev"``: ``ct·J·t`` from :func:`~vmapc.autodiff.vjp_function` with a random output
      cotangent ``ct`` (the dot-product test: ``<ct, J t> == <ct J, t>``),

    each within ``atol + rtol * scale`` (``scale``: the largest magnitude among the
    compared values). ``order=2`` also checks the JVP and VJP programs themselves, one
    order up (forward over forward and reverse, reverse over both). Raises
    AssertionError naming the check."""
    from .autodiff import jvp_function, vjp_function
    if not isinstance(fn, Function):
        from .tracing import trace
        args = [np.asarray(a, np.float64) if dt.is_float(np.asarray(a).dtype) else np.asarray(a) for a in args]
        fn = trace(fn, *args)
    fn = to_float64(fn)
    args = [np.asarray(a, np.float64) if dt.is_float(v.dtype) else np.asarray(a, v.dtype)
            for a, v in zip(args, fn.inputs)]
    rng = np.random.default_rng(0) if rng is None else rng
    fin, fout = _float_positions(fn.inputs), _float_positions(fn.outputs)
    label = name or fn.name
    if not fin or not fout:
        return
    t = {i: rng.normal(size=fn.inputs[i].shape) for i in fin}

    def shifted(s):
        return [a + s * eps * t[i] if i in t else a for i, a in enumerate(args)]
    plus, minus = evaluate_fn(fn, *shifted(1)), evaluate_fn(fn, *shifted(-1))
    fd = [(plus[j] - minus[j]) / (2 * eps) for j in fout]

    def close(got, want, what):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        scale = max(float(np.max(np.abs(want), initial=0)), float(np.max(np.abs(got), initial=0)), 1.0)
        err = float(np.max(np.abs(got - want), initial=0)) if np.size(got) else 0.0
        if not (np.all(np.isfinite(got) == np.isfinite(want)) and err <= atol + rtol * scale):
            raise AssertionError(f"{label}: {what}: max error {err:.3g} > {atol} + {rtol} * {scale:.3g}\n"
                                 f"got  {got!r}\nwant {want!r}")
    if "fwd" in modes:
        jf = jvp_function(fn)
        outs = evaluate_fn(jf, *args, *[t[i] for i in fin])
        n = len(fn.outputs)
        for k, j in enumerate(fout):
            close(outs[n + j], fd[k], f"forward mode, output {j}")
        if order > 1:
            check_grads(jf, list(args) + [t[i] for i in fin], order - 1, modes, eps, rtol, atol, rng,
                        evaluate_fn, f"{label} (jvp)")
    if "rev" in modes:
        vf = vjp_function(fn)
        cts = [rng.normal(size=fn.outputs[j].shape) for j in fout]
        outs = evaluate_fn(vf, *args, *cts)
        n = len(fn.outputs)
        grads = [outs[n + i] for i in fin]
        close(_dot(grads, [t[i] for i in fin]), _dot(cts, fd), "reverse mode, <ct J, t> vs <ct, J t>")
        if order > 1:
            check_grads(vf, list(args) + cts, order - 1, modes, eps, rtol, atol, rng, evaluate_fn,
                        f"{label} (vjp)")


def differentiable_samples(dtypes: str = "all") -> list:
    """The samples of :func:`op_samples` whose op has a derivative and that have a
    floating-point input and output."""
    from .autodiff import NON_DIFFERENTIABLE
    out = []
    for s in op_samples(dtypes):
        (e,) = s.fn.eqns
        if e.op in NON_DIFFERENTIABLE:
            continue
        if _float_positions(s.fn.inputs) and _float_positions(s.fn.outputs):
            out.append(s)
    return out
