"""The IR: a small typed SSA language, in the spirit of JAX's jaxpr.

A :class:`Function` has typed input :class:`Var` s, a list of :class:`Eqn` s
(``outs = op[attrs](ins)``) and output vars. Every var is defined once, by being an
input or the output of exactly one equation, before it is used. A var's type is a
:class:`TensorType`: a shape (ints, or :class:`~vmapc.shapes.Sym` for a dynamic
batch) and one of the dtypes in :mod:`vmapc.dtypes`.

Each equation keeps the user's source location, so that errors raised by later
stages (batching, lowering, IREE) can point at the line that created it.

An equation may carry **sub-programs** as attributes: a loop body, the branches of a
conditional, the body of a custom op. A sub-program is a :class:`Function` of its
own and is *closed*: it sees only its inputs, so a value it uses from the enclosing
program is passed to the equation as an explicit operand. Everything that walks
programs (verification, printing, simplification, the reference evaluator, batching,
lowering) recurses into them; :func:`subfunctions` and :func:`walk_eqns` find them.

The op set is defined in :mod:`vmapc.ops`; each op is then interpreted by one rule
table per stage (:mod:`vmapc.reference`, :mod:`vmapc.rules`, :mod:`vmapc.lowering`).
A :class:`Builder` appends equations while checking each against its op's type
inference, so a well-formed program is built by construction; :meth:`Function.verify`
checks a program from elsewhere (for example one parsed from text).

The text form (see :mod:`vmapc.text` and ``docs/ir.md``)::

    { lambda x:f32[8,4] w:f32[4,3] .
        a:f32[8,3] = dot_general[batch=((), ()), contract=((1,), (0,))] x w
        b:f32[8,3] = tanh a
        c:f32[8] = reduce_sum[axes=(1,)] b
      in (c) }
"""

from __future__ import annotations

import numpy as np

from . import dtypes as dt
from .errors import IRError, Loc, VmapcError
from .shapes import Sym


class TensorType:
    """A shape and a dtype: the type of every IR value (0-d arrays have shape ())."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(d if isinstance(d, Sym) else int(d) for d in shape)
        self.dtype = dt.canonical(dtype)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __eq__(self, other):
        return isinstance(other, TensorType) and self.shape == other.shape and self.dtype == other.dtype

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __str__(self):
        return f"{dt.short_name(self.dtype)}[{','.join(str(d) for d in self.shape)}]"

    __repr__ = __str__

    def with_shape(self, shape) -> "TensorType":
        return TensorType(shape, self.dtype)

    def with_dtype(self, dtype) -> "TensorType":
        return TensorType(self.shape, dtype)


class Var:
    """An SSA value. Identity matters; names are given only when printing."""

    __slots__ = ("type", "hint")

    def __init__(self, type: TensorType, hint: str | None = None):
        self.type = type
        self.hint = hint

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def rank(self):
        return len(self.type.shape)

    def __repr__(self):
        return f"Var({self.type}{', ' + self.hint if self.hint else ''})"


class Eqn:
    """One equation: ``outputs = op[attrs](inputs)``, with the user's source location."""

    __slots__ = ("op", "inputs", "outputs", "attrs", "loc")

    def __init__(self, op: str, inputs, outputs, attrs: dict, loc: Loc | None = None):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs)
        self.loc = loc

    def __repr__(self):
        return f"Eqn({self.op}, {self.attrs})"


class Function:
    """A traced program: inputs, equations and outputs.

    ``arg_names`` are the user's argument names (used when printing, and by the
    CLI to match ``--input NAME=...``). ``bdims``, set on batched programs, maps each
    var that stands for a value of the unbatched program to the position of its
    batch dim (None when unbatched); the printer shows it after ``@``.
    """

    def __init__(self, inputs, eqns, outputs, name: str = "main", arg_names=None, bdims=None):
        self.inputs = list(inputs)
        self.eqns = list(eqns)
        self.outputs = list(outputs)
        self.name = name
        self.arg_names = list(arg_names) if arg_names is not None else None
        self.bdims = bdims

    @property
    def in_types(self):
        return [v.type for v in self.inputs]

    @property
    def out_types(self):
        return [v.type for v in self.outputs]

    def __str__(self):
        from .text import print_function
        return print_function(self)

    def text(self, locations: bool = False) -> str:
        """The text form; with ``locations=True`` every equation carries ``loc(file:line)``
        (the form written to ``.vir`` files)."""
        from .text import print_function
        return print_function(self, locations=locations)

    def __repr__(self):
        return f"<vmapc.Function {self.name}: ({', '.join(map(str, self.in_types))}) -> " \
               f"({', '.join(map(str, self.out_types))}), {len(self.eqns)} equations>"

    def canonical(self) -> str:
        """Text with generated names and no locations: equal for alpha-equivalent programs."""
        from .text import print_function
        return print_function(self, canonical=True)

    def __eq__(self, other):
        return isinstance(other, Function) and self.canonical() == other.canonical()

    def __hash__(self):
        return hash(self.canonical())

    def verify(self) -> "Function":
        """Check that every var is defined once before use and every equation's types
        agree with its op's type inference. Raises IRError; returns self."""
        from .ops import infer_types
        defined = set()
        for i, v in enumerate(self.inputs):
            if id(v) in defined:
                raise IRError(f"{self.name}: input {i} is listed twice")
            defined.add(id(v))
        for k, e in enumerate(self.eqns):
            for j, v in enumerate(e.inputs):
                if id(v) not in defined:
                    raise IRError(f"{self.name}: equation {k} ({e.op}) uses operand {j} before it is defined",
                                  e.loc)
            try:
                types = infer_types(e.op, [v.type for v in e.inputs], e.attrs)
            except VmapcError as err:
                raise IRError(f"{self.name}: equation {k} ({e.op}) does not type-check: {err.message}",
                              e.loc) from None
            if len(types) != len(e.outputs):
                raise IRError(f"{self.name}: equation {k} ({e.op}) has {len(e.outputs)} results, "
                              f"expected {len(types)}", e.loc)
            for j, (v, t) in enumerate(zip(e.outputs, types)):
                if v.type != t:
                    raise IRError(f"{self.name}: equation {k} ({e.op}) result {j} is declared {v.type} "
                                  f"but the op produces {t}", e.loc)
                if id(v) in defined:
                    raise IRError(f"{self.name}: equation {k} ({e.op}) redefines a value", e.loc)
                defined.add(id(v))
        for j, v in enumerate(self.outputs):
            if id(v) not in defined:
                raise IRError(f"{self.name}: output {j} is never defined")
        for k, e in enumerate(self.eqns):
            for path, sub in subfunctions(e):
                try:
                    sub.verify()
                except IRError as err:
                    raise IRError(f"{self.name}: equation {k} ({e.op}), sub-program {path}: {err.message}",
                                  err.loc or e.loc) from None
        return self


class Builder:
    """Appends equations, inferring and checking each result type.

    Used by the tracer, by the vmap pass and by batching rules. ``loc`` is the
    location given to new equations; ``loc_fn``, when set, is called instead to find
    it (the tracer uses it to find the user's line). Errors from type inference get
    that location attached.

    The shape helpers (``reshape``, ``transpose``, ``broadcast_in_dim``, ``convert``)
    skip no-op equations, so rules can call them unconditionally.
    """

    def __init__(self, loc: Loc | None = None, loc_fn=None):
        self.eqns: list[Eqn] = []
        self.loc = loc
        self.loc_fn = loc_fn

    def current_loc(self) -> Loc | None:
        return self.loc_fn() if self.loc_fn is not None else self.loc

    def emit_multi(self, op: str, inputs, attrs: dict) -> list[Var]:
        from .ops import infer_types
        loc = self.current_loc()
        try:
            types = infer_types(op, [v.type for v in inputs], attrs)
        except VmapcError as err:
            raise err.with_loc(loc)
        outs = [Var(t) for t in types]
        self.eqns.append(Eqn(op, inputs, outs, attrs, loc))
        return outs

    def emit(self, op: str, *inputs: Var, **attrs) -> Var:
        outs = self.emit_multi(op, list(inputs), attrs)
        if len(outs) != 1:
            raise IRError(f"op {op} has {len(outs)} results; use emit_multi")
        return outs[0]

    # -- helpers with no-op elimination ---------------------------------------------------------

    def reshape(self, x: Var, shape) -> Var:
        shape = tuple(shape)
        return x if x.shape == shape else self.emit("reshape", x, shape=shape)

    def transpose(self, x: Var, perm) -> Var:
        perm = tuple(perm)
        return x if perm == tuple(range(x.rank)) else self.emit("transpose", x, perm=perm)

    def broadcast_in_dim(self, x: Var, shape, dims) -> Var:
        shape, dims = tuple(shape), tuple(dims)
        if x.shape == shape and dims == tuple(range(x.rank)):
            return x
        return self.emit("broadcast_in_dim", x, shape=shape, dims=dims)

    def convert(self, x: Var, dtype) -> Var:
        dtype = dt.canonical(dtype)
        return x if x.dtype == dtype else self.emit("convert", x, dtype=dtype)

    def constant(self, value, dtype=None) -> Var:
        arr = np.asarray(value, dtype=dtype)
        arr = np.array(arr, dtype=dt.canonical(arr.dtype, "constant"), order="C")
        return self.emit("constant", value=arr)

    def full(self, shape, value, dtype) -> Var:
        """A constant of `shape` filled with `value`: a 0-d constant broadcast."""
        c = self.constant(np.asarray(value, dtype=dtype))
        return self.broadcast_in_dim(c, shape, ())

    def inline(self, fn: Function, args) -> list[Var]:
        """Append `fn`'s equations with its inputs replaced by `args`; returns its outputs."""
        env = {id(v): a for v, a in zip(fn.inputs, args)}
        for e in fn.eqns:
            outs = [Var(v.type) for v in e.outputs]
            self.eqns.append(Eqn(e.op, [env[id(v)] for v in e.inputs], outs, e.attrs, e.loc))
            for v, o in zip(e.outputs, outs):
                env[id(v)] = o
        return [env[id(v)] for v in fn.outputs]

    def build(self, inputs, outputs, name="main", arg_names=None, bdims=None) -> Function:
        return Function(inputs, self.eqns, outputs, name=name, arg_names=arg_names, bdims=bdims)


def subfunctions(e: Eqn):
    """The sub-programs an equation carries: ``(attribute path, Function)`` pairs, where a
    path is ``"body"`` or ``"branches[1]"``."""
    for k, v in e.attrs.items():
        if isinstance(v, Function):
            yield k, v
        elif isinstance(v, tuple):
            for i, x in enumerate(v):
                if isinstance(x, Function):
                    yield f"{k}[{i}]", x


def has_subfunctions(e: Eqn) -> bool:
    return any(True for _ in subfunctions(e))


def map_subfunctions(e: Eqn, f) -> dict:
    """The equation's attributes with every sub-program replaced by ``f(sub)``."""
    attrs = {}
    for k, v in e.attrs.items():
        if isinstance(v, Function):
            v = f(v)
        elif isinstance(v, tuple) and any(isinstance(x, Function) for x in v):
            v = tuple(f(x) if isinstance(x, Function) else x for x in v)
        attrs[k] = v
    return attrs


def walk_eqns(fn: Function):
    """Every equation of `fn` and, depth first, of the sub-programs they carry."""
    for e in fn.eqns:
        yield e
        for _, sub in subfunctions(e):
            yield from walk_eqns(sub)


def used_vars(fn: Function) -> set:
    """ids of vars that some equation or the outputs read."""
    used = {id(v) for v in fn.outputs}
    for e in fn.eqns:
        used.update(id(v) for v in e.inputs)
    return used


def dead_code_elimination(fn: Function) -> Function:
    """Drop equations whose results nobody reads (all ops are pure)."""
    live = {id(v) for v in fn.outputs}
    kept = []
    for e in reversed(fn.eqns):
        if any(id(v) in live for v in e.outputs):
            kept.append(e)
            live.update(id(v) for v in e.inputs)
    kept.reverse()
    bdims = None
    if fn.bdims is not None:
        keep = set(fn.inputs) | {v for e in kept for v in e.outputs}
        bdims = {v: b for v, b in fn.bdims.items() if v in keep}
    return Function(fn.inputs, kept, fn.outputs, fn.name, fn.arg_names, bdims)
