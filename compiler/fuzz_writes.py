"""Fuzzing NumPy code that writes: random NumPy functions that write into their arguments
through views, integer-array indices, masks and ``np.add.at``, checked against NumPy
itself, for one example and under two nested vmaps.

Where :mod:`vmapc.fuzz` draws IR programs, this module draws Python source: a function
``f(a0, a1, ..., i0)`` of float64 arrays and an integer array, one statement at a time.
Each statement is run with NumPy on a concrete example while the program is drawn, so
every index is valid and every right-hand side broadcasts to what it is written into:

* views: basic indexing (ints, slices with steps, negative steps, ``None``, ``...``),
  ``.T``, ``reshape`` (NumPy decides view or copy), ``np.swapaxes``;
* writes through any of them: ``v[key] = rhs``, ``v[key] += rhs`` (and ``-=``, ``*=``),
  integer-array indices (static lists with repeats, or traced ``i0[:k] % n``),
  ``np.add.at``, traced boolean masks, whole-array augmented assignment;
* copies (integer-array reads, ``.copy()``), whose writes must not reach anything else;
* a few values returned at the end (views among them, read after every write).

**The oracle** is NumPy: the function runs on copies of the arguments, and the result
and the final arguments are compared with vmapc's: the traced program on the reference
evaluator (:func:`check_reference`, also under ``vmap(vmap(f))`` with random in_dims,
against NumPy looping over the examples and writing into slices of the batched
arguments), and compiled by IREE (:func:`check_compiled`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None


@dataclasses.dataclass
class WriteProgram:
    source: str
    args: list          # one example's arguments
    levels: list        # two vmaps, innermost first: (in_dims per argument, batch size)
    seed: int

    def function(self):
        scope = {"np": np}
        exec(compile(self.source, "<fuzz-writes>", "exec"), scope)   # noqa: S102 (our own source)
        return scope["f"]

    def describe(self):
        lv = "; ".join(f"vmap(in_dims={d}, size {n})" for d, n in self.levels)
        return f"write program (seed {self.seed}), batched by {lv}:\n{self.source}"

    __repr__ = describe

    def _repr_pretty_(self, p, cycle):
        p.text(self.describe())


class _Draw:
    def __init__(self, draw):
        self.draw = draw

    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def flip(self, p):
        return self.int(0, 99) >= 100 - round(p * 100)


def _basic_key(d: _Draw, shape):
    """A random basic index of an array of `shape` (as source text), or None."""
    parts = []
    for n in shape:
        k = d.int(0, 5)
        if k == 0 and n:
            parts.append(str(d.int(-n, n - 1)))
        elif k == 1 and n:
            step = d.choice((1, 2, -1, -2, 3))
            lo = d.int(0, n - 1)
            hi = d.int(lo + 1, n) if step > 0 else d.int(-1, lo - 1)
            if d.flip(0.3):   # the same bounds, counted from the end
                lo, hi = lo - n, (hi - n if hi >= 0 else None)
            parts.append(f"{lo}:{'' if hi is None or hi == -1 and step < 0 else hi}:{step}")
        elif k == 2 and n > 1:
            parts.append(f"{d.int(0, n - 1)}:")
        else:
            parts.append(":")
    if parts and d.flip(0.2):
        parts.insert(d.int(0, len(parts)), "None")
    if d.flip(0.2):   # a trailing run of full slices becomes `...`
        while parts and parts[-1] == ":":
            parts.pop()
        parts.append("...")
    return ", ".join(parts) if parts else "..."


def _factor_shape(d: _Draw, size):
    """A random shape with `size` elements."""
    shape, rest = [], size
    for p in (2, 3, 2, 5):
        if rest % p == 0 and d.flip(0.5):
            shape.append(p)
            rest //= p
    shape.append(rest)
    return tuple(shape)


if st is not None:
    @st.composite
    def write_programs(draw, max_statements=10):
        """A hypothesis strategy for :class:`WriteProgram` s."""
        d = _Draw(draw)
        rng = np.random.default_rng(d.int(0, 2 ** 16))
        n_args = d.int(1, 3)
        env = {}
        lines = []
        for k in range(n_args):
            shape = tuple(d.int(1, 4) for _ in range(d.int(1, 3)))
            env[f"a{k}"] = rng.standard_normal(shape)
        env["i0"] = rng.integers(0, 100, d.int(1, 5))
        args = [env[f"a{k}"].copy() for k in range(n_args)] + [env["i0"].copy()]
        names = [f"a{k}" for k in range(n_args)]          # the array values in scope
        count = 0

        def run(line):
            exec(line, {"np": np}, env)                       # noqa: S102 (our own source)
            lines.append(line)

        def rhs_for(shape):
            """A value that broadcasts to `shape`: a constant, or an expression of a value."""
            fits = [n for n in names if env[n].ndim <= len(shape) and np.broadcast_shapes(
                env[n].shape, shape) == tuple(shape)] if shape else []
            if fits and d.flip(0.6):
                return f"{d.choice(fits)} * {d.choice((0.5, -1.0, 2.0))} + {d.choice((1.0, 0.25))}"
            if names and d.flip(0.3):
                return f"{d.choice(names)}.sum() * 0.1"
            return repr(float(d.choice((1.5, -2.0, 0.0, 3.25))))

        for _ in range(d.int(1, max_statements)):
            count += 1
            views = [n for n in names if n.startswith("v")]
            target = d.choice(views if views and d.flip(0.6) else names)   # mostly through views
            t = env[target]
            kind = d.choice(("view", "view", "write", "write", "augment", "fancy", "add_at", "mask", "copy",
                             "shape_view", "whole"))
            try:
                if kind == "view":
                    run(f"v{count} = {target}[{_basic_key(d, t.shape)}]")
                    if isinstance(env[f"v{count}"], np.ndarray) and env[f"v{count}"].ndim:
                        names.append(f"v{count}")
                elif kind == "shape_view":
                    how = d.choice(("T", "reshape", "swap"))
                    if how == "T" or t.ndim < 2:
                        run(f"v{count} = {target}.T" if how != "reshape" else
                            f"v{count} = {target}.reshape({_factor_shape(d, t.size)})")
                    elif how == "reshape":
                        run(f"v{count} = {target}.reshape({_factor_shape(d, t.size)})")
                    else:
                        run(f"v{count} = np.swapaxes({target}, 0, -1)")
                    names.append(f"v{count}")
                elif kind in ("write", "augment"):
                    key = _basic_key(d, t.shape)
                    sel = t[eval(f"np.s_[{key}]")].shape
                    op = "=" if kind == "write" else d.choice(("+=", "-=", "*="))
                    run(f"{target}[{key}] {op} {rhs_for(sel)}")
                elif kind in ("fancy", "add_at"):
                    axis = d.int(0, t.ndim - 1)
                    n = t.shape[axis]
                    if d.flip(0.5):
                        idx = repr([d.int(-n, n - 1) for _ in range(d.int(1, 4))])
                    else:
                        idx = f"i0[:{d.int(1, 5)}] % {n}"
                    key = ", ".join([":"] * axis + [idx])
                    sel = t[eval(f"np.s_[{key}]", {"np": np, "i0": env["i0"]})].shape
                    if kind == "add_at":
                        at_key = ", ".join(["slice(None)"] * axis + [idx])
                        run(f"np.add.at({target}, ({at_key},), {rhs_for(sel)})")
                    else:
                        run(f"{target}[{key}] {d.choice(('=', '+='))} {rhs_for(sel)}")
                elif kind == "mask":
                    same = [m for m in names if env[m].shape == t.shape]
                    run(f"{target}[{d.choice(same)} > {d.choice((0.0, 0.5))}] {d.choice(('=', '+='))} "
                        f"{d.choice((0.0, 1.0, -2.5))}")
                elif kind == "copy":
                    how = d.choice(("fancy", "copy"))
                    if how == "fancy" and t.shape[0]:
                        run(f"v{count} = {target}[{[d.int(0, t.shape[0] - 1) for _ in range(2)]}]")
                    else:
                        run(f"v{count} = {target}.copy()")
                    names.append(f"v{count}")
                else:
                    run(f"{target} {d.choice(('+=', '*=', '-='))} {rhs_for(t.shape)}")
            except (ValueError, IndexError, TypeError):
                pass   # a statement NumPy refuses (e.g. writing into a NumPy scalar): left out
        outs = [n for n in names if n.startswith("v")]
        ret = [f"{d.choice(outs)} * 1.0" for _ in range(d.int(0, 2)) if outs]
        if names and d.flip(0.5):
            ret.append(f"{d.choice(names)}.sum(axis=0)")
        body = "\n".join("    " + ln for ln in lines) or "    pass"
        params = ", ".join([f"a{k}" for k in range(n_args)] + ["i0"])
        source = f"def f({params}):\n{body}\n" + (f"    return ({', '.join(ret)},)\n" if ret else "")
        # which arguments the function writes into: those must be batched at every level
        final = [a.copy() for a in args]
        scope = {"np": np}
        exec(source, scope)                                     # noqa: S102 (our own source)
        scope["f"](*final)
        written = [not np.array_equal(a, b) for a, b in zip(args, final)]
        levels = []
        for _ in range(2):
            dims = [None if (not w and d.flip(0.3)) else d.choice((0, -1)) for w in written]
            if all(x is None for x in dims):
                dims[0] = 0
            levels.append((tuple(dims), d.int(1, 3)))
        return WriteProgram(source, args, levels, d.int(0, 2 ** 16))


# --- the oracle ----------------------------------------------------------------------------------

def _run_in_place(fn, args):
    res = fn(*args)
    return [np.asarray(r) for r in (res if res is not None else ())]


def numpy_run(fn, args):
    """NumPy's answer: the results (flat) and the final arguments."""
    args = [np.array(a, copy=True) for a in args]
    return _run_in_place(fn, args), args


def batched_args(prog: WriteProgram, rng):
    """Arguments for vmap(vmap(f)): each level stacks examples at its in_dims."""
    (inner, n1), (outer, n2) = prog.levels
    grid = [[[np.array(a, copy=True) for a in prog.args] for _ in range(n1)] for _ in range(n2)]
    for j in range(n2):
        for i in range(n1):
            for k, a in enumerate(grid[j][i]):
                if a.dtype.kind == "f":
                    grid[j][i][k] = a + rng.standard_normal(a.shape)
                # an argument not batched at a level is the same for all its examples
                if inner[k] is None:
                    grid[j][i][k] = grid[j][0][k]
                if outer[k] is None:
                    grid[j][i][k] = grid[0][i][k]
    out = []
    for k in range(len(prog.args)):
        rows = []
        for j in range(n2):
            r = grid[j][0][k] if inner[k] is None else np.stack([grid[j][i][k] for i in range(n1)], inner[k] % (
                grid[j][0][k].ndim + 1))
            rows.append(r)
        out.append(rows[0] if outer[k] is None else np.stack(rows, outer[k] % (rows[0].ndim + 1)))
    return out


def numpy_nested(prog: WriteProgram, fn, args):
    """NumPy looping over both levels, each example writing into its slices of copies of the
    batched arguments; results stacked at axis 0 of each level."""
    (inner, n1), (outer, n2) = prog.levels
    args = [np.array(a, copy=True) for a in args]
    results = []
    for j in range(n2):
        lvl = [a if d is None else np.moveaxis(a, d, 0)[j] for a, d in zip(args, outer)]
        row = []
        for i in range(n1):
            ex = [a if d is None else np.moveaxis(a, d, 0)[i] for a, d in zip(lvl, inner)]
            row.append(_run_in_place(fn, ex))
        results.append(row)
    flat = [np.stack([np.stack([results[j][i][k] for i in range(n1)]) for j in range(n2)])
            for k in range(len(results[0][0]))]
    return flat, args


def traced(prog: WriteProgram, nested=False, args=None):
    """(vmapc's traced Function, its arguments): f itself, or vmap(vmap(f))."""
    import vmapc
    fn = prog.function()
    if nested:
        (inner, _), (outer, _) = prog.levels
        g = vmapc.vmap(vmapc.vmap(fn, in_dims=inner), in_dims=outer)
        return vmapc.trace(lambda *a: g(*a), *args), args
    return vmapc.trace(fn, *prog.args), prog.args


def split(fn, outs, args):
    """A traced function's outputs as (results, final arguments)."""
    n = len(outs) - len(fn.mutated)
    final = list(args)
    for i, w in zip(fn.mutated, outs[n:]):
        final[i] = w
    return list(outs[:n]), final


def compare(prog, got, want, what, rtol=1e-9, atol=1e-9):
    (gr, ga), (wr, wa) = got, want
    try:
        assert len(gr) == len(wr), f"{len(gr)} results, NumPy has {len(wr)}"
        for k, (g, w) in enumerate(list(zip(gr, wr)) + list(zip(ga, wa))):
            label = f"result {k}" if k < len(wr) else f"argument {k - len(wr)}"
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64), rtol=rtol,
                                       atol=atol, err_msg=label)
    except AssertionError as err:
        raise AssertionError(f"{what}: {err}\n{prog.describe()}") from None


def check_reference(prog: WriteProgram):
    """vmapc on the reference evaluator, single and nested, against NumPy."""
    import vmapc
    fn = prog.function()
    f1, a1 = traced(prog)
    compare(prog, split(f1, vmapc.eval(f1, *a1), a1), numpy_run(fn, prog.args), "one example")
    args = batched_args(prog, np.random.default_rng(prog.seed))
    f2, a2 = traced(prog, nested=True, args=args)
    compare(prog, split(f2, vmapc.eval(f2, *a2), a2), numpy_nested(prog, fn, args), "nested vmap")
    return (f1, a1), (f2, a2)


def check_compiled(progs, target="cpu"):
    """Many programs (single and nested) compiled as one module, against NumPy."""
    from .driver import compile_functions
    from .optimize import simplify
    items = []
    for p, prog in enumerate(progs):
        fn = prog.function()
        (f1, a1), (f2, a2) = check_reference(prog)
        args = batched_args(prog, np.random.default_rng(prog.seed))
        items.append((prog, f1, a1, numpy_run(fn, prog.args), f"p{p}_single"))
        items.append((prog, f2, a2, numpy_nested(prog, fn, args), f"p{p}_nested"))
    fns = []
    for prog, f, a, want, name in items:
        s = simplify(f)
        s.name = name
        s.mutated = f.mutated
        fns.append(s)
    compiled = compile_functions(fns, target=target)
    for (prog, f, a, want, name), s in zip(items, fns):
        compare(prog, split(s, compiled[name](*a), a), want, f"compiled ({name})", rtol=1e-7, atol=1e-9)
