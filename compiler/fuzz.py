"""Program fuzzing: random IR programs, batched by random nested vmaps, checked
against the per-example loop.

The generator (:func:`programs`, a `hypothesis <https://hypothesis.works>`_
strategy) builds an *unbatched* program with :class:`vmapc.ir.Builder`, one
equation at a time, over a pool of live values. Every op family appears:
elementwise unary/binary/``select``/``convert``/``bitcast``, reductions (``argmax``
too) and scans (``cumulative``), ``dot_general`` in several layouts (and with both
operands the same value), reshape/transpose/broadcast_in_dim/concatenate/slice/rev/pad,
take/take_along_axis/dynamic_slice, the writes scatter/update_slice, ``sort`` (with
payloads and several keys) and ``top_k``, iota and constants, and the bit ops (shifts,
``threefry2x32``); not the collectives, whose meaning needs a named vmap and whose
oracle is the whole batch, not the per-example loop (``vmapc.testing.collective_cases``
sweeps them). Shapes are small, with
size-1 dims that broadcast and (rarely) size-0 dims; dtypes are the twelve real ones;
inputs sometimes hold NaN, infinities, -0.0 or full-range integers.

On top of the program it draws a stack of up to three vmaps (innermost first),
each with its own batch size (0 included, rarely), in_dims (None and negative
included) and out_dims (None where an output does not depend on that level).

**The oracle** is the per-example loop: for every example of every level, run the
unbatched program on the reference evaluator (:func:`vmapc.eval`) and stack.
:func:`check_reference` compares the batched program on the reference
evaluator (and its :mod:`vmapc.optimize`-simplified form, and its text
round-trip); :func:`check_compiled` compiles many programs into one IREE module
and compares each.

**Comparing floats.** Integers and bools must match exactly. A float may differ
where the two sides legitimately round differently: transcendental functions
(IREE's and NumPy's differ by a few ulps), sums and contractions (summation
order), products feeding an add (LLVM contracts them to an FMA), and subnormals
(IREE's CPU code flushes them to zero). The oracle measures how much such
differences can move each output: it runs the per-example loop again, several
times, with each such op's result *perturbed* by a random amount within its
error bound (and subnormals flushed); the tolerance of an output element is four
times the largest move seen, plus a couple of ulps. An ill-conditioned element
(a NaN or an infinity in one run and not in another, or an integer that changed)
is not compared. So tolerances scale with the conditioning of the program at
those inputs, not with a guess.

For the same reason the generator never applies a discontinuous op (a
comparison, ``floor``, ``sign``, float-to-int ``convert``, ``argmax``, ...) to a
float whose last bits are not determined (the result of a transcendental, a sum,
a contraction, an FMA candidate): it tracks which float values are *exact* (the
same bits in NumPy and in IREE) and uses only those there. Float-to-int
conversions are mostly clamped into a small range first, and sometimes not: NaN,
infinities and out-of-range values then convert by vmapc's defined rule (through
int64, then wrap; ``docs/ir.md``).

When a check fails, hypothesis shrinks the program; the assertion message
prints the minimal program's IR, its vmap levels and the mismatch.

Run the long soak with ``python scripts/soak.py --minutes 30`` (see
``docs/reliability.md``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import dtypes as dt
from .errors import Loc
from .ir import Builder, Function, TensorType, Var, dead_code_elimination
from .ops import BINARY, UNARY
from .reference import RULES, evaluate
from .reference.control import sub_evaluator

try:  # the strategies need hypothesis; the checks do not
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None

# --- how ops round ---------------------------------------------------------------------------------

# Float results whose last bits differ between NumPy and IREE (polynomial approximations,
# libm versions). The generator treats their results as inexact.
TRANSCENDENTAL = frozenset({
    "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "sigmoid", "erf", "rsqrt", "power", "arctan2"})
# Ops that are discontinuous in a float operand: a one-ulp change can change the result
# by a lot. Their float operands must be exact.
DISCONTINUOUS_UNARY = frozenset({"floor", "ceil", "round", "sign", "isnan", "isfinite", "isinf",
                                 "logical_not"})
DISCONTINUOUS_BINARY = frozenset({"equal", "not_equal", "less", "less_equal", "greater",
                                  "greater_equal", "floor_divide", "remainder", "logical_and",
                                  "logical_or", "logical_xor"})
# transcendentals whose error is relative to the result even near 0
RELATIVE_ERROR = frozenset({"exp", "cosh", "sigmoid", "sinh", "expm1", "tanh", "erf", "arctan", "arcsin",
                            "log1p", "rsqrt"})
PRODUCTS = frozenset({"multiply", "square"})   # an add of one of these may become an FMA

EPS = {dt.FLOAT16: 2.0 ** -10, dt.FLOAT32: 2.0 ** -23, dt.FLOAT64: 2.0 ** -52}
TINY = {dt.FLOAT16: 0.0, dt.FLOAT32: float(np.finfo(np.float32).tiny),
        dt.FLOAT64: float(np.finfo(np.float64).tiny)}
# how many ulps a transcendental may differ by (float16 runs in float32, then rounds once)
TRANSCENDENTAL_ULPS = {dt.FLOAT16: 1.0, dt.FLOAT32: 8.0, dt.FLOAT64: 8.0}


def is_inexact_result(op: str, operand_producers, dtype, attrs=None) -> bool:
    """Whether a float result of `op` may differ in its last bits between NumPy and IREE
    even with exact operands."""
    if not dt.is_float(dtype):
        return False
    if op in TRANSCENDENTAL or op in ("reduce_sum", "reduce_prod", "dot_general", "scatter_add"):
        return True
    if op == "cumulative":
        return (attrs or {}).get("combine") in ("add", "multiply")
    return op in ("add", "subtract") and any(p in PRODUCTS for p in operand_producers)


# --- programs --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Level:
    """One vmap: ``in_dims`` per input (None, or an int, negative allowed), ``out_dims``
    per output, and the batch size."""
    in_dims: tuple
    out_dims: tuple
    axis_size: int

    def __str__(self):
        return f"vmap(in_dims={self.in_dims}, out_dims={self.out_dims}, axis_size={self.axis_size})"


class Program:
    """An unbatched program, how to make its arguments (``kinds``, per input: see
    ``_values``; ``seed``), and the vmaps around it (``levels``, innermost first)."""

    def __init__(self, fn: Function, kinds, levels, seed: int):
        self.fn, self.kinds, self.levels, self.seed = fn, list(kinds), list(levels), seed
        self._batched = None

    @property
    def batched(self) -> Function:
        """The program after every level of vmap (innermost first)."""
        if self._batched is None:
            from .vmap import vmap
            f = self.fn
            for lv in self.levels:
                f = vmap(f, in_dims=lv.in_dims, out_dims=lv.out_dims, axis_size=lv.axis_size)
            self._batched = f
        return self._batched

    def args(self) -> list:
        """The batched program's arguments (deterministic in the seed)."""
        rng = np.random.default_rng(self.seed)
        return [_values(rng, t, k) for t, k in zip(self.batched.in_types, self.kinds)]

    def describe(self) -> str:
        lv = "\n".join(f"  level {i + 1} (inner to outer): {lv}" for i, lv in enumerate(self.levels))
        kinds = ", ".join(f"{_kind_str(k)}" for k in self.kinds)
        return (f"fuzz program (seed={self.seed}; input values: {kinds or 'none'})\n{self.fn}\n"
                f"batched by\n{lv or '  (no vmap)'}")

    __repr__ = describe

    def _repr_pretty_(self, p, cycle):   # how hypothesis prints a falsifying example
        p.text(self.describe())


def _kind_str(k):
    return f"index<{k[1]}" if isinstance(k, tuple) else k


def _values(rng, t: TensorType, kind):
    """Random values of type t. kind: "any"; "wide" (integers over the dtype's whole
    range; floats with NaN, infinities and -0.0 mixed in); ("index", n) for indices
    into a dim of size n (negative ones count from the end; a few are out of range)."""
    shape, d = t.shape, t.dtype
    if isinstance(kind, tuple):
        n = kind[1]
        lo = 0 if dt.is_unsigned(d) else -n
        x = rng.integers(lo, max(n, 1), size=shape)
        if kind[0] == "index_oob":
            x = x + rng.integers(-3, 4, size=shape) * max(n, 1)
            if dt.is_unsigned(d):
                x = np.abs(x)
        info = np.iinfo(d)
        return np.clip(x, info.min, info.max).astype(d)
    if d == dt.BOOL:
        return rng.random(shape) < 0.5
    if dt.is_int(d):
        info = np.iinfo(d)
        if kind == "wide":
            return rng.integers(info.min, info.max, size=shape, dtype=d, endpoint=True)
        lo, hi = (0, 10) if dt.is_unsigned(d) else (-6, 7)
        return rng.integers(lo, hi, size=shape).astype(d)
    x = rng.normal(0.0, 2.0, size=shape)
    if kind == "wide" and x.size:
        special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e4, -3e4, 0.5])
        mask = rng.random(shape) < 0.3
        x = np.where(mask, rng.choice(special, size=shape), x)
    return np.asarray(x).astype(d)


# --- the generator ---------------------------------------------------------------------------------

class _Val:
    __slots__ = ("var", "exact", "producer", "live")

    def __init__(self, var, exact, producer, live=False):
        # live: depends on an input (not a compile-time constant)
        self.var, self.exact, self.producer, self.live = var, exact, producer, live

    @property
    def shape(self):
        return self.var.shape

    @property
    def dtype(self):
        return self.var.dtype

    @property
    def rank(self):
        return self.var.rank


class _Skip(Exception):
    """This step found no suitable operands: try another."""


# Programs are real-valued: the ops that make or take complex numbers only (real, imag,
# conj, complex) are left out, as complex dtypes are, since the error bounds below are
# for real floats (tests/test_complex.py checks complex programs against NumPy instead).
COMPLEX_KINDS = ("complex", "part")
REAL_KIND = {"inexact": "float", "number": "numeric", "all": "any"}   # the real dtypes of a kind
DTYPES = (dt.FLOAT32, dt.INT32, dt.BOOL, dt.FLOAT64, dt.INT64, dt.FLOAT16, dt.UINT8, dt.INT8,
          dt.INT16, dt.UINT16, dt.UINT32, dt.UINT64)
FAMILIES = ("unary", "binary", "reduce", "dot", "reshape", "transpose", "broadcast", "select",
            "convert", "slice", "concatenate", "rev", "pad", "take", "take_along_axis",
            "dynamic_slice", "argreduce", "iota", "scatter", "update_slice", "cumulative", "sort", "top_k",
            "bitcast", "bits")
# control flow: ops whose branches and bodies are generated like programs (from every family
# above, and the control families themselves up to CONTROL_DEPTH levels deep)
CONTROL_FAMILIES = ("cond", "while", "scan", "fori", "custom")
FUZZ_CUSTOM_OP = "vmapc.fuzz.body"   # custom ops made by the fuzzer: registered, with no rules of their own
CONTROL_DEPTH = 2


class Generator:
    """Builds one random program from a `draw` function (hypothesis's, or any callable
    taking a strategy)."""

    def __init__(self, draw, max_eqns=25, dtypes=DTYPES, max_inputs=6, max_rank=4, avoid_known_bugs=True,
                 control=0.0, depth=0, families=FAMILIES, binary_ops=None):
        self.draw = draw
        self.families = tuple(families)          # the g_* steps drawn from
        # the ops the "binary" step draws from (real-valued: see COMPLEX_KINDS)
        self.binary_ops = tuple(binary_ops or (op for op, (kind, _) in BINARY.items() if kind not in COMPLEX_KINDS))
        self.avoid_known_bugs = avoid_known_bugs
        self.max_eqns = max_eqns
        self.dtypes = tuple(dtypes)
        self.max_inputs = max_inputs
        self.max_rank = max_rank
        self.control = control      # how often a step is a control-flow op (0: never)
        self.depth = depth          # how deep in sub-programs this generator builds
        self.b = Builder()
        self.pool: list[_Val] = []
        self.inputs: list[Var] = []
        self.kinds: list = []
        self.step = 0

    # -- drawing ----------------------------------------------------------------------------------
    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        seq = list(seq)
        if not seq:
            raise _Skip
        return seq[self.int(0, len(seq) - 1)]

    def flip(self, p):
        """True with probability p; shrinks toward False."""
        return self.int(0, 99) >= 100 - round(p * 100)

    def dtype(self):
        return self.choice(self.dtypes)

    def dim(self):
        if self.flip(0.03):
            return 0
        return self.choice((1, 2, 3, 4, 5))

    def shape(self, rank=None):
        if rank is None:
            rank = self.choice((1, 2, 0, 3, 4)[: self.max_rank + 1])
        return tuple(self.dim() for _ in range(rank))

    # -- values -----------------------------------------------------------------------------------
    def emit(self, op, *vals, **attrs):
        return self.emit_multi(op, list(vals), attrs)[0]

    def emit_multi(self, op, vals, attrs):
        self.step += 1
        self.b.loc = Loc("fuzz-program", self.step)
        outs = []
        for out in self.b.emit_multi(op, [v.var for v in vals], attrs):
            exact = all(v.exact for v in vals) and not is_inexact_result(op, [v.producer for v in vals], out.dtype,
                                                                          attrs)
            if not dt.is_float(out.dtype):
                exact = True
            v = _Val(out, exact, op, any(v.live for v in vals))
            self.pool.append(v)
            outs.append(v)
        return outs

    def new_input(self, shape, dtype, kind=None):
        if kind is None:
            kind = "wide" if self.flip(0.15) else "any"
        var = Var(TensorType(shape, dtype))
        self.inputs.append(var)
        self.kinds.append(kind)
        v = _Val(var, True, "input", True)
        self.pool.append(v)
        return v

    def constant(self, shape, dtype):
        rng = np.random.default_rng(self.int(0, 2 ** 16))
        value = _values(rng, TensorType(shape, dtype), "any")
        self.step += 1
        self.b.loc = Loc("fuzz-program", self.step)
        var = self.b.constant(value)
        v = _Val(var, True, "constant")
        self.pool.append(v)
        return v

    def scalar(self, value, dtype, rank):
        """A constant of shape (1,) * rank."""
        self.step += 1
        self.b.loc = Loc("fuzz-program", self.step)
        return _Val(self.b.constant(np.full((1,) * rank, value, dtype=dtype)), True, "constant")

    def fresh(self, shape, dtype):
        """A new value of this type: an input, a constant, a broadcast scalar or an iota."""
        k = self.choice(("input", "constant", "full", "iota") if len(self.inputs) < self.max_inputs
                        else ("constant", "full", "iota"))
        if k == "input":
            return self.new_input(shape, dtype)
        if k == "constant" or (k == "iota" and not shape):
            return self.constant(shape, dtype)
        if k == "full":
            c = self.constant((), dtype)
            return self.emit("broadcast_in_dim", c, shape=tuple(shape), dims=())
        return self.emit("iota", shape=tuple(shape), dimension=self.int(0, len(shape) - 1), dtype=dtype)

    def pick(self, pred=lambda v: True):
        cands = [v for v in self.pool if pred(v)]
        if not cands:
            raise _Skip
        if self.flip(0.85):   # prefer values nothing reads yet: deeper programs, fewer dead ends
            used = {id(v) for e in self.b.eqns for v in e.inputs}
            cands = [v for v in cands if id(v.var) not in used] or cands
        # prefer recent values: programs become chains rather than fans
        i = len(cands) - 1 - min(self.int(0, 7), len(cands) - 1) if self.flip(0.7) else self.int(0, len(cands) - 1)
        return cands[i]

    def as_dtype(self, v: _Val, d):
        """v converted to dtype d; float-to-int conversions mostly clamped into a small
        range, sometimes not (NaN and out-of-range values have a defined result)."""
        if v.dtype == d:
            return v
        if dt.is_float(v.dtype) and not dt.is_float(d):
            if not v.exact:
                raise _Skip
            if d != dt.BOOL and self.flip(0.75):
                isnan = self.emit("isnan", v)
                v = self.emit("select", isnan, self.scalar(0, v.dtype, v.rank), v)
                info = np.iinfo(d)
                lo, hi = max(info.min, -1000), min(info.max, 1000)
                v = self.emit("maximum", v, self.scalar(lo, v.dtype, v.rank))
                v = self.emit("minimum", v, self.scalar(hi, v.dtype, v.rank))
        return self.emit("convert", v, dtype=d)

    def partner(self, x: _Val, dtype=None, exact=False, shape=None):
        """A value of `dtype` that broadcasts with x (or with `shape`): equal rank, size-1
        dims stretch."""
        dtype = dtype or x.dtype
        target = tuple(shape) if shape is not None else x.shape

        def fits(v):
            return (v.rank == len(target) and all(a == b or a == 1 or b == 1 for a, b in zip(v.shape, target))
                    and (v.exact or not exact))
        if not self.flip(0.35):
            try:   # mostly a value of the same dtype; sometimes one converted
                same = self.flip(0.8)
                return self.as_dtype(self.pick(lambda v: fits(v) and (v.dtype == dtype or not same)), dtype)
            except _Skip:
                pass
        new = tuple(1 if (d != 1 and self.flip(0.3)) else d for d in target)
        if shape is None and x.rank and self.flip(0.15):   # stretch a size-1 dim of x
            new = tuple(self.choice((2, 3)) if t == 1 and self.flip(0.5) else d for d, t in zip(new, target))
        return self.fresh(new, dtype)

    # -- op families ------------------------------------------------------------------------------
    def g_unary(self):
        x = self.pick()
        ops = [op for op, (kind, _) in UNARY.items() if kind not in COMPLEX_KINDS]
        op = self.choice(ops)
        kind = REAL_KIND.get(UNARY[op][0], UNARY[op][0])
        if x.dtype not in dt.KINDS[kind]:
            x = self.as_dtype(x, self.choice(dt.FLOATS) if kind == "float" else
                              self.choice((dt.INT32, dt.UINT8, dt.INT64)) if kind in ("int", "integer_or_bool")
                              else self.choice((dt.FLOAT32, dt.INT32)))
        if dt.is_float(x.dtype) and op in DISCONTINUOUS_UNARY and not x.exact:
            raise _Skip
        if op in ("log", "sqrt", "rsqrt", "log1p", "reciprocal") and self.flip(0.8):
            x = self.emit("abs", x)
            if op != "log1p":
                x = self.emit("add", x, self.scalar(0.25, x.dtype, x.rank))
        elif op in ("arcsin", "arccos") and self.flip(0.8):
            x = self.emit("tanh", x)
        elif op in ("exp", "expm1", "sinh", "cosh") and self.flip(0.7):
            bound = 8.0 if x.dtype == dt.FLOAT16 else 30.0
            x = self.emit("minimum", x, self.scalar(bound, x.dtype, x.rank))
            x = self.emit("maximum", x, self.scalar(-bound, x.dtype, x.rank))
        return self.emit(op, x)

    def g_binary(self):
        x = self.pick()
        op = self.choice(self.binary_ops)
        kind = REAL_KIND.get(BINARY[op][0], BINARY[op][0])
        if x.dtype not in dt.KINDS[kind]:
            x = self.as_dtype(x, self.choice(dt.FLOATS) if kind == "float" else
                              self.choice((dt.INT32, dt.UINT8)) if kind in ("integer_or_bool", "int")
                              else self.choice((dt.FLOAT32, dt.INT32, dt.INT8)))
        strict = dt.is_float(x.dtype) and op in DISCONTINUOUS_BINARY
        if strict and not x.exact:
            raise _Skip
        y = self.partner(x, exact=strict)
        if strict and not y.exact:
            raise _Skip
        if op == "power" and dt.is_float(x.dtype) and self.flip(0.8):
            x = self.emit("add", self.emit("abs", x), self.scalar(0.25, x.dtype, x.rank))
            y = self.emit("minimum", self.emit("maximum", y, self.scalar(-4, y.dtype, y.rank)),
                          self.scalar(4, y.dtype, y.rank))
        if self.flip(0.5):
            x, y = y, x
        return self.emit(op, x, y)

    def g_select(self):
        x = self.pick()
        c = self.partner(x, dt.BOOL, exact=True)
        if not c.live and self.avoid_known_bugs:
            raise _Skip     # KNOWN_IREE_BUGS: a compile-time-constant condition
        y = self.partner(x, shape=[a if b == 1 else b for a, b in zip(x.shape, c.shape)])
        return self.emit("select", c, x, y)

    def g_convert(self):
        x = self.pick()
        return self.as_dtype(x, self.dtype())

    def g_reduce(self):
        x = self.pick()
        op = self.choice(("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_any", "reduce_all"))
        if op in ("reduce_any", "reduce_all"):
            x = self.as_dtype(x, dt.BOOL)
        elif op in ("reduce_sum", "reduce_prod") and x.dtype == dt.BOOL:
            x = self.as_dtype(x, self.choice((dt.INT32, dt.FLOAT32, dt.UINT8)))
        axes = [a for a in range(x.rank) if self.flip(0.5)]
        if self.flip(0.3):
            axes.reverse()
        axes = tuple(axes)
        if op in ("reduce_max", "reduce_min") and any(x.shape[a] == 0 for a in axes):
            raise _Skip
        return self.emit(op, x, axes=axes)

    def g_argreduce(self):
        x = self.pick(lambda v: v.rank >= 1 and (v.exact or not dt.is_float(v.dtype)))
        axis = self.int(0, x.rank - 1)
        if x.shape[axis] == 0:
            raise _Skip
        return self.emit(self.choice(("argmax", "argmin")), x, axis=axis)

    def g_dot(self):
        x = self.pick(lambda v: v.rank <= 3)
        if x.dtype == dt.BOOL:
            x = self.as_dtype(x, self.choice((dt.FLOAT32, dt.INT32)))
        roles = [self.choice(("free", "contract", "batch")) for _ in range(x.rank)]
        lb = tuple(i for i, r in enumerate(roles) if r == "batch")
        lc = tuple(i for i, r in enumerate(roles) if r == "contract")
        if self.flip(0.2) and len(lb) == len(set(lb)):   # the same value on both sides (x @ x.T)
            perm_c = list(lc)
            if self.flip(0.5):
                perm_c.reverse()
            ok = all(x.shape[a] == x.shape[b] for a, b in zip(lc, perm_c))
            if ok:
                return self.emit("dot_general", x, x, contract=(lc, tuple(perm_c)), batch=(lb, lb))
        n_free = self.choice((1, 0, 2))
        parts = [("b", i) for i in range(len(lb))] + [("c", i) for i in range(len(lc))] + [("f", i) for i in range(n_free)]
        order = self.draw(st.permutations(parts)) if parts else []
        free_sizes = [self.dim() for _ in range(n_free)]
        shape, rb, rc = [], [None] * len(lb), [None] * len(lc)
        for pos, (k, i) in enumerate(order):
            if k == "b":
                rb[i] = pos
                shape.append(x.shape[lb[i]])
            elif k == "c":
                rc[i] = pos
                shape.append(x.shape[lc[i]])
            else:
                shape.append(free_sizes[i])
        y = self.fresh(tuple(shape), x.dtype)
        lhs, rhs, contract, batch = x, y, (lc, tuple(rc)), (lb, tuple(rb))
        if self.flip(0.3):
            lhs, rhs, contract, batch = y, x, (tuple(rc), lc), (tuple(rb), lb)
        return self.emit("dot_general", lhs, rhs, contract=contract, batch=batch)

    def g_reshape(self):
        x = self.pick()
        n = int(np.prod(x.shape, dtype=np.int64))
        rank = self.choice((1, 2, 0, 3, 4)[: self.max_rank + 1])
        if n == 0:
            if rank == 0:
                rank = 1
            shape = [self.choice((1, 2, 3)) for _ in range(rank)]
            shape[self.int(0, rank - 1)] = 0
        elif rank == 0:
            if n != 1:
                raise _Skip
            shape = []
        else:
            shape = [1] * rank
            m = n
            for p in _prime_factors(m):
                shape[self.int(0, rank - 1)] *= p
        return self.emit("reshape", x, shape=tuple(shape))

    def g_transpose(self):
        x = self.pick(lambda v: v.rank >= 2)
        perm = tuple(self.draw(st.permutations(range(x.rank))))
        return self.emit("transpose", x, perm=perm)

    def g_broadcast(self):
        x = self.pick(lambda v: v.rank < self.max_rank)
        k = self.int(0, min(2, self.max_rank - x.rank))
        out_rank = x.rank + k
        dims = tuple(sorted(self.draw(st.permutations(range(out_rank)))[: x.rank]))
        shape = [self.choice((1, 2, 3)) for _ in range(out_rank)]
        for i, d in enumerate(dims):
            shape[d] = x.shape[i] if x.shape[i] != 1 else self.choice((1, 2, 3))
        return self.emit("broadcast_in_dim", x, shape=tuple(shape), dims=dims)

    def g_slice(self):
        x = self.pick(lambda v: v.rank >= 1)
        start, limit, step = [], [], []
        for d in x.shape:
            s = self.int(0, d)
            l_ = self.int(s, d)
            start.append(s)
            limit.append(l_)
            step.append(self.choice((1, 2, 3)))
        return self.emit("slice", x, start=tuple(start), limit=tuple(limit), step=tuple(step))

    def g_concatenate(self):
        x = self.pick(lambda v: v.rank >= 1)
        axis = self.int(0, x.rank - 1)
        parts = [x]
        for _ in range(self.int(1, 2)):
            def fits(v):
                return v.dtype == x.dtype and v.rank == x.rank and all(
                    a == b for i, (a, b) in enumerate(zip(v.shape, x.shape)) if i != axis)
            if self.flip(0.5):
                try:
                    parts.append(self.pick(fits))
                    continue
                except _Skip:
                    pass
            shape = list(x.shape)
            shape[axis] = self.choice((1, 2, 0, 3))
            parts.append(self.fresh(tuple(shape), x.dtype))
        order = self.draw(st.permutations(range(len(parts))))
        return self.emit("concatenate", *[parts[i] for i in order], axis=axis)

    def g_rev(self):
        x = self.pick(lambda v: v.rank >= 1)
        axes = tuple(a for a in range(x.rank) if self.flip(0.5))
        return self.emit("rev", x, axes=axes)

    def g_pad(self):
        x = self.pick()
        lo = tuple(self.choice((0, 1, 2)) for _ in range(x.rank))
        hi = tuple(self.choice((0, 1, 2)) for _ in range(x.rank))
        try:
            v = self.pick(lambda v: v.rank == 0 and v.dtype == x.dtype) if self.flip(0.6) else None
        except _Skip:
            v = None
        if v is None:
            v = self.fresh((), x.dtype)
        return self.emit("pad", x, v, lo=lo, hi=hi)

    def index(self, shape, n):
        """Indices of `shape` into a dim of size n: an input, or a computed integer value."""
        if self.flip(0.3):
            try:
                v = self.pick(lambda v: v.shape == tuple(shape) and dt.is_int(v.dtype))
                return v
            except _Skip:
                pass
        d = self.choice((dt.INT64, dt.INT32, dt.UINT8, dt.INT8, dt.UINT32, dt.UINT64, dt.INT16))
        if len(self.inputs) >= self.max_inputs:
            return self.constant(shape, d) if n else self.constant(shape, d)
        kind = ("index_oob" if self.flip(0.1) else "index", n)
        return self.new_input(tuple(shape), d, kind)

    def g_take(self):
        x = self.pick(lambda v: v.rank >= 1)
        axis = self.int(0, x.rank - 1)
        batch_dims = self.int(0, axis) if self.flip(0.3) else 0
        extra = self.shape(self.choice((1, 0, 2)))
        idx_shape = tuple(x.shape[:batch_dims]) + extra
        if x.shape[axis] == 0 and int(np.prod(idx_shape, dtype=np.int64)) != 0:
            raise _Skip
        idx = self.index(idx_shape, x.shape[axis])
        return self.emit("take", x, idx, axis=axis, batch_dims=batch_dims)

    def g_take_along_axis(self):
        x = self.pick(lambda v: v.rank >= 1)
        axis = self.int(0, x.rank - 1)
        shape = []
        for i, d in enumerate(x.shape):
            if i == axis:
                shape.append(self.choice((1, 2, 3, 4)))
            elif d == 1:
                shape.append(self.choice((1, 2)))
            else:
                shape.append(1 if self.flip(0.3) else d)
        if x.shape[axis] == 0 and int(np.prod(shape, dtype=np.int64)) != 0:
            raise _Skip
        idx = self.index(shape, x.shape[axis])
        return self.emit("take_along_axis", x, idx, axis=axis)

    def window_sizes(self, shape):
        """The sizes of a window into `shape` (sometimes empty)."""
        return tuple(self.int(0, d) if self.flip(0.2) else self.int(min(1, d), d) for d in shape)

    def window_starts(self, shape):
        """A start per dim of `shape`: a live 0-d integer, or an index up to 2 past the end."""
        starts = []
        for d in shape:
            if self.flip(0.3):
                try:
                    starts.append(self.pick(lambda v: v.rank == 0 and dt.is_int(v.dtype)))
                    continue
                except _Skip:
                    pass
            starts.append(self.index((), d + 2))
        return starts

    def g_dynamic_slice(self):
        x = self.pick()
        sizes = self.window_sizes(x.shape)
        return self.emit("dynamic_slice", x, *self.window_starts(x.shape), sizes=sizes)

    def g_scatter(self):
        x = self.pick(lambda v: v.rank >= 1)
        axis = self.int(0, x.rank - 1)
        batch_dims = self.int(0, axis) if self.flip(0.3) else 0
        idx_shape = tuple(x.shape[:batch_dims]) + self.shape(self.choice((1, 0, 2)))
        if x.shape[axis] == 0 and int(np.prod(idx_shape, dtype=np.int64)) != 0:
            raise _Skip
        idx = self.index(idx_shape, x.shape[axis])
        upd_shape = tuple(x.shape[:axis]) + idx_shape[batch_dims:] + tuple(x.shape[axis + 1:])
        try:
            upd = self.pick(lambda v: v.shape == upd_shape and v.dtype == x.dtype)
        except _Skip:
            upd = self.fresh(upd_shape, x.dtype)
        mode = self.choice(("set", "add", "max", "min", "multiply"))
        out = self.emit("scatter", x, idx, upd, axis=axis, batch_dims=batch_dims, mode=mode)
        if mode in ("add", "multiply") and dt.is_float(x.dtype):   # the order of the updates may differ
            out.exact, out.producer = False, "scatter_add"
        return out

    def g_update_slice(self):
        x = self.pick()
        shape = self.window_sizes(x.shape)
        try:
            upd = self.pick(lambda v: v.shape == shape and v.dtype == x.dtype)
        except _Skip:
            upd = self.fresh(shape, x.dtype)
        return self.emit("update_slice", x, upd, *self.window_starts(x.shape))

    def g_cumulative(self):
        x = self.pick(lambda v: v.rank >= 1)
        combine = self.choice(("add", "multiply", "maximum", "minimum"))
        if x.dtype == dt.BOOL and combine in ("add", "multiply") and self.flip(0.5):
            x = self.as_dtype(x, self.choice((dt.INT32, dt.FLOAT32)))
        return self.emit("cumulative", x, combine=combine, axis=self.int(0, x.rank - 1), reverse=self.flip(0.3))

    def g_sort(self):
        """Keys whose order is determined (exact floats), sometimes two, and payloads of any
        value of the same shape."""
        x = self.pick(lambda v: v.rank >= 1 and (v.exact or not dt.is_float(v.dtype)))
        vals = [x]
        for _ in range(self.int(0, 2)):
            try:
                vals.append(self.pick(lambda v: v.shape == x.shape and v is not x))
            except _Skip:
                break
        keys = 1
        if len(vals) > 1 and (vals[1].exact or not dt.is_float(vals[1].dtype)) and self.flip(0.3):
            keys = 2
        return self.emit_multi("sort", vals, {"axis": self.int(0, x.rank - 1), "descending": self.flip(0.3),
                                              "num_keys": keys})[0]

    def g_top_k(self):
        x = self.pick(lambda v: v.rank >= 1 and (v.exact or not dt.is_float(v.dtype)))
        return self.emit_multi("top_k", [x], {"k": self.int(0, x.shape[-1])})[0]

    def g_bitcast(self):
        """Same-size dtypes; floats only from inputs and constants (a NaN computed by NumPy and
        by IREE may differ in its sign and payload bits, which bitcast would show)."""
        x = self.pick(lambda v: v.dtype != dt.BOOL and (not dt.is_float(v.dtype) or v.producer in ("input", "constant")))
        same = [d for d in DTYPES if d != dt.BOOL and d.itemsize == x.dtype.itemsize and d != x.dtype]
        return self.emit("bitcast", x, dtype=self.choice(same))

    def g_bits(self):
        """threefry2x32 over uint32 words."""
        x = self.pick(lambda v: v.dtype != dt.BOOL)
        x = self.as_dtype(x, dt.UINT32)
        ops = [x] + [self.partner(x, dt.UINT32) for _ in range(3)]
        k = self.int(0, 3)
        ops = ops[k:] + ops[:k]
        self.step += 1
        self.b.loc = Loc("fuzz-program", self.step)
        for out in self.b.emit_multi("threefry2x32", [v.var for v in ops], {}):
            self.pool.append(_Val(out, True, "threefry2x32", any(v.live for v in ops)))

    def g_iota(self):
        shape = self.shape(self.choice((1, 2, 3)))
        return self.emit("iota", shape=shape, dimension=self.int(0, len(shape) - 1), dtype=self.dtype())

    def g_constant(self):
        return self.constant(self.shape(), self.dtype())

    # -- control flow -----------------------------------------------------------------------------
    def sub(self, inputs) -> "Generator":
        """A generator for a sub-program (a branch, a loop body) whose inputs are `inputs`
        (_Vals: their types, exactness and liveness carry over); it makes no inputs of its
        own (its fresh values are constants, iotas and broadcasts)."""
        g = Generator(self.draw, self.max_eqns, self.dtypes, 0, self.max_rank, self.avoid_known_bugs,
                      self.control, self.depth + 1, self.families, self.binary_ops)
        g.step = self.step
        g.params = [Var(v.var.type) for v in inputs]
        g.pool = [_Val(p, v.exact, "input", v.live) for p, v in zip(g.params, inputs)]
        return g

    def run(self, n_eqns):
        """Add about `n_eqns` equations of random families to the pool."""
        for _ in range(3 * n_eqns):
            if len(self.b.eqns) >= n_eqns:
                break
            if self.control and self.depth < CONTROL_DEPTH and self.flip(self.control):
                family = self.choice(CONTROL_FAMILIES)
            else:
                family = self.choice(self.families)
            mark = len(self.b.eqns), len(self.pool), len(self.inputs)
            try:
                getattr(self, "g_" + family)()
            except _Skip:
                # roll back what the failed step added
                del self.b.eqns[mark[0]:]
                del self.pool[mark[1]:]
                del self.inputs[mark[2]:]
                del self.kinds[mark[2]:]

    def coerce(self, v: _Val, t: TensorType) -> _Val:
        """A value of type `t` computed from v: converted, then reshaped if the sizes agree,
        else reduced to a scalar and broadcast."""
        if v.dtype != t.dtype:
            v = self.as_dtype(v, t.dtype) if not (t.dtype == dt.BOOL and dt.is_float(v.dtype) and not v.exact) \
                else self.emit("isnan", v)
        if v.shape == t.shape:
            return v
        if int(np.prod(v.shape, dtype=np.int64)) == int(np.prod(t.shape, dtype=np.int64)):
            return self.emit("reshape", v, shape=tuple(t.shape))
        op = "reduce_any" if t.dtype == dt.BOOL else "reduce_sum"
        s = self.emit(op, v, axes=tuple(range(v.rank))) if v.rank else v
        return self.emit("broadcast_in_dim", s, shape=tuple(t.shape), dims=())

    def body(self, inputs, out_types=None, n_free=0):
        """Generate a sub-program over `inputs`: its outputs are values coerced to
        `out_types`, then `n_free` values of any type. Returns (Function, output _Vals)."""
        g = self.sub(inputs)
        g.run(self.int(1, max(2, self.max_eqns // 3)))
        outs = []
        for t in out_types or ():
            outs.append(g.coerce(g.pick(), t))
        for _ in range(n_free):
            outs.append(g.pick())
        self.step = g.step
        fn = dead_code_elimination(g.b.build(g.params, [v.var for v in outs], name="body"))
        return fn, outs

    def emit_control(self, op, ins, attrs, exact):
        """Emit a control-flow op; its results are exact where `exact` says."""
        self.step += 1
        self.b.loc = Loc("fuzz-program", self.step)
        outs = self.b.emit_multi(op, [v.var for v in ins], attrs)
        live = any(v.live for v in ins)
        vals = [_Val(o, ex or not dt.is_float(o.dtype), op, live) for o, ex in zip(outs, exact)]
        self.pool.extend(vals)
        return vals

    def operands(self, k, pred=lambda v: True):
        return [self.pick(pred) for _ in range(k)]

    def scalar_index(self, dtypes):
        """A 0-d exact bool or integer value: from the pool, or a new input."""
        try:
            return self.pick(lambda v: v.rank == 0 and v.dtype in dtypes and (v.exact or not dt.is_float(v.dtype)))
        except _Skip:
            if len(self.inputs) >= self.max_inputs:
                raise
            d = self.choice(dtypes)
            return self.new_input((), d, ("index", 4) if d != dt.BOOL else "any")

    def g_cond(self):
        ops = self.operands(self.int(1, 3))
        index = self.scalar_index((dt.BOOL, dt.INT32, dt.UINT8, dt.INT64))
        n = 2 if index.dtype == dt.BOOL or self.flip(0.5) else self.int(1, 4)
        first, outs = self.body(ops, n_free=self.int(1, 2))
        types = first.out_types
        branches, exact = [first], [v.exact for v in outs]
        for _ in range(n - 1):
            f, outs = self.body(ops, types)
            branches.append(f)
            exact = [a and v.exact for a, v in zip(exact, outs)]
        return self.emit_control("cond", [index] + ops, {"branches": tuple(branches)}, exact)

    def g_custom(self):
        """A custom op (``custom``) whose body is a generated sub-program: batched,
        evaluated and lowered through its body."""
        from .custom import REGISTRY, CustomOp
        if FUZZ_CUSTOM_OP not in REGISTRY:
            CustomOp(lambda *args: args, FUZZ_CUSTOM_OP)
        ops = self.operands(self.int(1, 3))
        f, outs = self.body(ops, n_free=self.int(1, 2))
        return self.emit_control("custom", ops, {"name": FUZZ_CUSTOM_OP, "body": f}, [v.exact for v in outs])

    def _counter_cond(self, n_consts, carries):
        """A while_loop predicate over (bound, *other consts, counter, *carries): counter <
        bound, sometimes and-ed with a condition on an exact integer or bool carry (never
        or-ed: the loop must end within the counter's steps)."""
        cb = Builder()
        ins = [Var(v.var.type) for v in n_consts + carries]
        bound, counter = ins[0], ins[len(n_consts)]
        p = cb.emit("less", counter, bound)
        extra = [v for v, c in zip(ins[len(n_consts) + 1:], carries[1:]) if not dt.is_float(c.dtype)]
        if extra and self.flip(0.5):
            x = self.choice(extra)
            if x.dtype != dt.BOOL:
                x = cb.emit("not_equal", x, cb.full(x.shape, 0, x.dtype))
            x = cb.emit("reduce_any", x, axes=tuple(range(x.rank))) if x.rank else x
            p = cb.emit("logical_and", p, x)
        return cb.build(ins, [p], name="cond")

    def g_while(self):
        carries = self.operands(self.int(1, 3))
        bound = self.scalar_index((dt.INT32,))
        if bound.dtype != dt.INT32:
            raise _Skip
        start = self.fresh((), dt.INT32)
        # at most 12 steps, whatever the values: counter from max(start, -4) to min(bound, 8)
        bound = self.emit("minimum", bound, self.scalar(8, dt.INT32, 0))
        start = self.emit("maximum", start, self.scalar(-4, dt.INT32, 0))
        # float carries may be inexact after any step: the body treats them so
        inexact = [_Val(v.var, v.exact and not dt.is_float(v.dtype), v.producer, v.live) for v in carries]
        body_consts = self.operands(self.int(0, 1))
        body, outs = self.body(body_consts + [start] + inexact, [start.var.type] + [v.var.type for v in carries])
        # the counter steps by one: rebuild the body's first output as counter + 1
        bb = Builder()
        bb.eqns = list(body.eqns)
        counter = body.inputs[len(body_consts)]
        one = bb.constant(np.int32(1))
        body = dead_code_elimination(Function(body.inputs, bb.eqns, [bb.emit("add", counter, one)] + body.outputs[1:],
                                              name="body"))
        cond = self._counter_cond([bound], [start] + carries)
        exact = [True] + [v.exact and o.exact and not dt.is_float(v.dtype) for v, o in zip(carries, outs[1:])]
        res = self.emit_control("while_loop", [bound] + body_consts + [start] + carries,
                                {"cond": cond, "body": body}, exact)
        return res

    def g_scan(self):
        xs = [self.pick(lambda v: v.rank >= 1)]
        length = xs[0].shape[0]
        if self.flip(0.4):
            try:
                xs.append(self.pick(lambda v: v.rank >= 1 and v.shape[0] == length))
            except _Skip:
                pass
        consts = self.operands(self.int(0, 1))
        carries = self.operands(self.int(0, 2))
        inexact = [_Val(v.var, v.exact and not dt.is_float(v.dtype), v.producer, v.live) for v in carries]
        slices = [_Val(Var(TensorType(x.shape[1:], x.dtype)), x.exact, "input", x.live) for x in xs]
        body, outs = self.body(consts + inexact + slices, [v.var.type for v in carries], n_free=self.int(0, 2))
        n = len(carries)
        exact = [v.exact and o.exact and not dt.is_float(v.dtype) for v, o in zip(carries, outs)]
        exact += [o.exact for o in outs[n:]]
        return self.emit_control("scan", consts + carries + xs,
                                 {"body": body, "length": length, "reverse": self.flip(0.3),
                                  "n_consts": len(consts), "n_carry": n}, exact)

    def g_fori(self):
        """A loop over a counter reading a table at the counter (fori_loop with static bounds)."""
        table = self.pick(lambda v: v.rank >= 1)
        carries = self.operands(self.int(1, 2))
        counter = self.fresh((), dt.INT32)
        inexact = [_Val(v.var, v.exact and not dt.is_float(v.dtype), v.producer, v.live) for v in carries]
        g = self.sub([table, counter] + inexact)
        t, i = g.pool[0], g.pool[1]
        row = g.emit("take", t, i, axis=0, batch_dims=0) if t.shape[0] else None
        g.run(self.int(1, max(2, self.max_eqns // 3)))
        outs = [g.emit("add", i, g.scalar(1, dt.INT32, 0))] + [g.coerce(g.pick(), v.var.type) for v in carries]
        if row is not None and self.flip(0.7):
            outs[-1] = g.coerce(row, carries[-1].var.type)
        self.step = g.step
        body = dead_code_elimination(g.b.build(g.params, [v.var for v in outs], name="body"))
        exact = [True] + [v.exact and o.exact and not dt.is_float(v.dtype) for v, o in zip(carries, outs[1:])]
        return self.emit_control("scan", [table, counter] + carries,
                                 {"body": body, "length": self.int(0, 5), "reverse": False,
                                  "n_consts": 1, "n_carry": 1 + len(carries)}, exact)

    # -- the whole program ------------------------------------------------------------------------
    def build(self):
        for _ in range(self.int(1, 3)):
            self.new_input(self.shape(), self.dtype())
        target = max(self.int(1, self.max_eqns), self.int(1, self.max_eqns))
        self.run(target)
        # the outputs: values nothing reads (newest first), and sometimes any other value
        used = {id(v) for e in self.b.eqns for v in e.inputs}
        leaves = [v for v in reversed(self.pool) if id(v.var) not in used and v.producer != "input"]
        outs = [v.var for v in leaves[: self.int(2, 4)]] or [self.pool[-1].var]
        if self.flip(0.2):
            outs.append(self.pick().var)
        fn = dead_code_elimination(self.b.build(self.inputs, outs, name="fuzz"))
        return fn, list(self.kinds)


def _prime_factors(n):
    out, p = [], 2
    while n > 1 and p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def _depends(fn: Function, batched) -> list:
    """For each output of fn: does it depend on an input flagged in `batched`?"""
    dep = {v for v, b in zip(fn.inputs, batched) if b}
    for e in fn.eqns:
        if any(v in dep for v in e.inputs):
            dep.update(e.outputs)
    return [v in dep for v in fn.outputs]


def draw_levels(draw, fn: Function, max_depth=3):
    """A stack of vmaps for fn (innermost first) with random sizes, in_dims, out_dims."""
    g = Generator(draw)
    depth = g.int(1, max_depth)
    in_types = [t.shape for t in fn.in_types]
    out_ranks = [t.rank for t in fn.out_types]
    # which outputs depend on which original inputs (per level: on the inputs batched there)
    levels = []
    batched_any = []
    for _ in range(depth):
        size = 0 if g.flip(0.04) else g.choice((2, 3, 1, 4))
        in_dims = []
        for shape in in_types:
            r = len(shape)
            if g.flip(0.25):
                in_dims.append(None)
            else:
                d = g.int(0, r)
                in_dims.append(d - (r + 1) if g.flip(0.3) else d)
        dep = _depends(fn, [d is not None for d in in_dims])
        out_dims = []
        for j, r in enumerate(out_ranks):
            if not dep[j] and size > 0 and g.flip(0.4):
                out_dims.append(None)
            else:
                d = g.int(0, r)
                out_dims.append(d - (r + 1) if g.flip(0.3) else d)
        levels.append(Level(tuple(in_dims), tuple(out_dims), size))
        batched_any.append(dep)
        in_types = [s if d is None else _insert(s, d % (len(s) + 1), size) for s, d in zip(in_types, in_dims)]
        out_ranks = [r if d is None else r + 1 for r, d in zip(out_ranks, out_dims)]
    return levels


def _insert(shape, at, size):
    return tuple(shape[:at]) + (size,) + tuple(shape[at:])


if st is not None:
    @st.composite
    def programs(draw, max_eqns=25, max_depth=3, dtypes=DTYPES, control=0.0, families=FAMILIES, binary_ops=None):
        """A hypothesis strategy for :class:`Program` s (``control``: how often a step is a
        cond, while_loop, scan or fori-style scan, 0, the default, for none; ``families``:
        the other steps drawn from, a subset of FAMILIES; ``binary_ops``: the ops of the
        "binary" step, default all)."""
        fn, kinds = Generator(draw, max_eqns=max_eqns, dtypes=dtypes, control=control, families=families,
                              binary_ops=binary_ops).build()
        levels = draw_levels(draw, fn, max_depth)
        seed = draw(st.integers(0, 2 ** 32 - 1))
        return Program(fn, kinds, levels, seed)
else:  # pragma: no cover
    def programs(*a, **k):
        raise ImportError("vmapc.fuzz.programs needs hypothesis")


# --- the oracle ------------------------------------------------------------------------------------

def _flush(x):
    if x.dtype in (dt.FLOAT32, dt.FLOAT64):
        tiny = np.finfo(x.dtype).tiny
        return np.where(np.abs(x) < tiny, np.copysign(np.zeros((), x.dtype), x), x).astype(x.dtype)
    return x


def _perturb(e, ins, out, producers, rng):
    """out moved by a random amount within the rounding difference NumPy and IREE may
    legitimately have for this equation (and subnormals flushed, as IREE's CPU code does)."""
    d = out.dtype
    if not dt.is_float(d):
        return out
    eps = EPS[d]
    with np.errstate(all="ignore"):
        o64 = out.astype(np.float64)
        scale = None
        if e.op in TRANSCENDENTAL:
            # relative error, or absolute near zero for functions with zeros inside their domain
            floor = 0.0 if e.op in RELATIVE_ERROR else 1.0
            scale = TRANSCENDENTAL_ULPS[d] * eps * np.maximum(np.abs(o64), floor)
        elif e.op == "reduce_sum":
            x = ins[0].astype(np.float64)
            n = int(np.prod([x.shape[a] for a in e.attrs["axes"]], dtype=np.int64))
            scale = (n + 1) * eps * np.sum(np.abs(x), axis=e.attrs["axes"])
        elif e.op == "scatter" and e.attrs["mode"] in ("add", "multiply"):
            # every element takes at most all the updates of its row, in an order that may differ
            k = int(np.prod(ins[1].shape[e.attrs["batch_dims"]:], dtype=np.int64))
            if e.attrs["mode"] == "add":
                absum = RULES["scatter"](np.abs(ins[0].astype(np.float64)), ins[1], np.abs(ins[2].astype(np.float64)),
                                         **e.attrs)
                scale = (k + 1) * eps * absum
            else:
                scale = (k + 1) * eps * np.abs(o64)
        elif e.op == "reduce_prod":
            x = ins[0]
            n = int(np.prod([x.shape[a] for a in e.attrs["axes"]], dtype=np.int64))
            scale = (n + 1) * eps * np.abs(o64)
        elif e.op == "cumulative" and e.attrs["combine"] in ("add", "multiply"):
            ax = e.attrs["axis"]
            n = ins[0].shape[ax] + 1
            if e.attrs["combine"] == "add":
                scale = n * eps * RULES["cumulative"](np.abs(ins[0].astype(np.float64)), "add", ax, e.attrs["reverse"])
            else:
                scale = n * eps * np.abs(o64)
        elif e.op == "dot_general":
            a, b = (np.abs(v.astype(np.float64)) for v in ins)
            k = int(np.prod([ins[0].shape[i] for i in e.attrs["contract"][0]], dtype=np.int64))
            acc = EPS[dt.FLOAT32] if d == dt.FLOAT16 else eps
            scale = (k + 1) * acc * RULES["dot_general"](a, b, **e.attrs) + eps * np.abs(o64)
        elif e.op in ("add", "subtract"):
            prods = [np.abs(v.astype(np.float64)) for v, p in zip(ins, producers) if p in PRODUCTS]
            if prods:
                scale = eps * sum(np.broadcast_to(p, out.shape) for p in prods)
        if scale is None:
            return _flush(out)
        scale = np.broadcast_to(scale, out.shape)
        moved = o64 + rng.uniform(-1.0, 1.0, size=out.shape) * np.where(np.isfinite(scale), scale, 0.0)
        moved = np.where(np.isfinite(o64), moved, o64)
        # a zero may come out as -0.0 or +0.0
        moved = np.where((o64 == 0) & (scale > 0), np.copysign(moved, rng.uniform(-1, 1, out.shape)), moved)
        return _flush(moved.astype(d))


def evaluate_perturbed(fn: Function, args, rng) -> list:
    """The reference evaluator, with every result moved as :func:`_perturb` says."""
    env = {}
    producer = {}
    for v, a in zip(fn.inputs, args):
        env[v] = _flush(np.asarray(a))
        producer[v] = "input"
    with np.errstate(all="ignore"), sub_evaluator(lambda f, a: evaluate_perturbed(f, a, rng)):
        for e in fn.eqns:
            ins = [env[v] for v in e.inputs]
            outs = RULES[e.op](*ins, **e.attrs)
            outs = outs if isinstance(outs, list) else [outs]
            for v, o in zip(e.outputs, outs):
                o = np.asarray(o, dtype=v.dtype)
                env[v] = _perturb(e, ins, o, [producer[u] for u in e.inputs], rng)
                producer[v] = e.op
    return [env[v] for v in fn.outputs]


def per_example_loop(prog: Program, args, evaluator=None) -> list:
    """What the batched program must compute: the unbatched program run on every
    example of every level, stacked as each level's out_dims say. ``evaluator(fn,
    args)`` runs one example (default: the reference evaluator)."""
    evaluator = evaluator or (lambda f, a: evaluate(f, *a))
    def out_types(level):
        # the physical output types after `level` vmaps
        ts = [t.shape for t in prog.fn.out_types]
        for lv in prog.levels[:level]:
            ts = [s if d is None else _insert(s, d % (len(s) + 1), lv.axis_size) for s, d in zip(ts, lv.out_dims)]
        return ts

    def run(level, a):
        if level == 0:
            return [np.asarray(o) for o in evaluator(prog.fn, a)]
        lv = prog.levels[level - 1]
        per = []
        for i in range(lv.axis_size):
            sub = [x if d is None else np.take(x, i, axis=d % x.ndim) for x, d in zip(a, lv.in_dims)]
            per.append(run(level - 1, sub))
        res = []
        shapes = out_types(level)
        for j, d in enumerate(lv.out_dims):
            if d is None:
                res.append(per[0][j])
            elif lv.axis_size == 0:
                res.append(np.zeros(shapes[j], prog.fn.outputs[j].dtype))
            else:
                res.append(np.stack([p[j] for p in per], axis=d % (per[0][j].ndim + 1)))
        return res

    return run(len(prog.levels), list(args))


class Expected:
    """The per-example loop's outputs and, per float element, how far off a correct
    result may be (NaN: not compared, the element is ill-conditioned)."""

    def __init__(self, prog: Program, args, runs: int = 3):
        self.outputs = per_example_loop(prog, args)
        rng = np.random.default_rng(prog.seed ^ 0x5EED)
        moved = [per_example_loop(prog, args, lambda f, a: evaluate_perturbed(f, a, rng)) for _ in range(runs)]
        self.tolerance = []
        self.skipped = 0
        for j, e in enumerate(self.outputs):
            ps = [m[j] for m in moved]
            if dt.is_float(e.dtype):
                e64 = e.astype(np.float64)
                with np.errstate(all="ignore"):
                    dev = np.zeros(e.shape)
                    bad = np.zeros(e.shape, bool)
                    for p in ps:
                        p64 = p.astype(np.float64)
                        same_special = (np.isnan(p64) & np.isnan(e64)) | ((p64 == e64) & np.isinf(e64))
                        finite = np.isfinite(p64) & np.isfinite(e64)
                        bad |= ~(same_special | finite)
                        dev = np.maximum(dev, np.where(finite, np.abs(p64 - e64), 0.0))
                    tol = 4 * dev + 2 * EPS[e.dtype] * np.abs(np.where(np.isfinite(e64), e64, 0)) + TINY[e.dtype]
                    tol = np.where(bad, np.nan, tol)
            else:
                changed = np.zeros(e.shape, bool)
                for p in ps:
                    changed |= p != e
                tol = np.where(changed, np.nan, 0.0)
            self.skipped += int(np.isnan(tol).sum())
            self.tolerance.append(tol)


class Mismatch(AssertionError):
    pass


def compare(prog: Program, expected: Expected, got, what: str):
    """Raise :class:`Mismatch` (printing the program) unless `got` matches."""
    def fail(msg):
        raise Mismatch(f"{what}: {msg}\n{prog.describe()}")
    if len(got) != len(expected.outputs):
        fail(f"{len(got)} outputs, expected {len(expected.outputs)}")
    for j, (g, e, tol) in enumerate(zip(got, expected.outputs, expected.tolerance)):
        g = np.asarray(g)
        if g.shape != e.shape or g.dtype != e.dtype:
            fail(f"output {j} is {g.dtype}{list(g.shape)}, expected {e.dtype}{list(e.shape)}")
        checked = ~np.isnan(tol)
        if dt.is_float(e.dtype):
            g64, e64 = g.astype(np.float64), e.astype(np.float64)
            with np.errstate(all="ignore"):
                both_nan = np.isnan(g64) & np.isnan(e64)
                same_inf = np.isinf(e64) & (g64 == e64)
                close = np.abs(g64 - e64) <= tol
            ok = both_nan | same_inf | close | ~checked
        else:
            ok = (g == e) | ~checked
        if not ok.all():
            idx = tuple(int(i) for i in np.argwhere(~ok)[0])
            fail(f"output {j} differs at {idx}: got {g[idx]!r}, expected {e[idx]!r} "
                 f"(tolerance {float(tol[idx]):.3g}; {int((~ok).sum())} of {ok.size} elements differ)")


# --- the checks ------------------------------------------------------------------------------------

# IREE 3.13 bugs the fuzzer has found and vmapc cannot work around (each has an
# xfail(strict=True) test in tests/test_regressions.py, which fails once IREE is fixed).
# A compile failure matching one of these is counted in `stats`, not reported; the
# wrong number (the last entry) is avoided by the generator instead.
KNOWN_IREE_BUGS = {
    "write affecting operations on global resources are restricted to workgroup distributed contexts":
        "test_pads_argmin_and_gathers_after_a_transpose_compile",
    "'vector.contract' op invalid accumulator/result vector shape":
        "test_narrow_int_contraction_of_a_gather_compiles",
    "LLVM Translation failed for operation: builtin.unrealized_conversion_cast":
        "test_rev_of_a_slice_compiles",
    "(wrong number) a reduction of select(c, x, y) with c a compile-time constant sums the constant "
    "branch once per vector, not per element":
        "test_reduction_of_a_select_with_a_constant_condition",
    "indirect buffer reference slot 0 is out range of the declared binding capacity":   # when called
        "test_scan_with_an_overwritten_constant_carry_beside_a_while_loop",
    "attempted to access an address off the end of the valid buffer range":   # when called
        "test_batched_while_loops_beside_a_scan_and_sorts_run",
    "circular dependency: input operation uses partition output":
        "test_nested_scans_of_constants_compile",
    "region branch point has":   # the scf.while conversion (also the worked-around bug 1's message)
        "test_while_loop_overwriting_its_counter_with_a_constant_compiles",
}
stats = {"known_iree_bugs": 0}


def _known_iree_bug(err) -> bool:
    return any(sig in str(err) for sig in KNOWN_IREE_BUGS if not sig.startswith("(wrong number)"))

def check_reference(prog: Program) -> Expected:
    """The batched program (as built, simplified, and parsed back from its text) on the
    reference evaluator against the per-example loop. Returns the Expected."""
    from .optimize import simplify
    from .text import parse
    bf = prog.batched
    bf.verify()
    args = prog.args()
    exp = Expected(prog, args)
    compare(prog, exp, evaluate(bf, *args), "the batched program on the reference evaluator")
    again = parse(str(bf))
    if again != bf:
        raise Mismatch(f"the batched program does not survive printing and parsing\n{prog.describe()}")
    simple = simplify(bf)
    simple.verify()
    compare(prog, exp, evaluate(simple, *args), "the simplified batched program on the reference evaluator")
    return exp


def check_compiled(progs, target="cpu", expected=None, cache=True) -> int:
    """Compile every program's batched (and simplified) form into one IREE module, run
    each and compare with the per-example loop. Returns the number of programs checked
    (programs that hit one of KNOWN_IREE_BUGS are counted in ``stats`` instead)."""
    from .driver import compile_functions
    from .optimize import simplify
    progs = list(progs)
    if not progs:
        return 0
    expected = expected or [Expected(p, p.args()) for p in progs]
    fns = []
    for i, p in enumerate(progs):
        f = simplify(p.batched)
        fns.append(Function(f.inputs, f.eqns, f.outputs, name=f"p{i}"))
    try:
        compiled = compile_functions(fns, target=target, cache=cache)
    except Exception as err:
        if len(progs) == 1:
            if _known_iree_bug(err):
                stats["known_iree_bugs"] += 1
                return 0
            raise Mismatch(f"compiling failed: {type(err).__name__}: {err}\n{progs[0].describe()}") from err
        # find the culprit: compile one at a time
        return sum(check_compiled([p], target, [e], cache) for p, e in zip(progs, expected))
    checked = 0
    for i, (p, e) in enumerate(zip(progs, expected)):
        try:
            got = compiled[f"p{i}"](*p.args())
        except Exception as err:
            if not _known_iree_bug(err):
                raise
            stats["known_iree_bugs"] += 1
            continue
        compare(p, e, got, f"the compiled program ({target})")
        checked += 1
    return checked
