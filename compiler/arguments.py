"""Which arguments are traced and which are static.

When vmapc traces a function it has to decide, for every leaf of the arguments,
whether the leaf becomes an *input* of the program (a tracer: its value is only
known when the compiled code runs) or stays a *static* Python value that the
function sees as it is (its value is baked into the program, and a different
value means a different program). The rules, for ``vmapc.compile``,
``vmapc.trace`` and a ``vmapc.vmap`` called on arrays:

* arrays (NumPy arrays and scalars, ``vmapc.f32[...]`` specs, tracers) are traced;
* Python ``float`` (and ``complex``) are traced as weakly typed scalars (NEP 50:
  ``x * 0.5`` keeps ``x``'s float32), so a function compiles once for all values;
* Python ``int`` and ``bool`` are **static**: sizes, step counts, axes and flags
  (``def kernel(TSTEPS, N, A, B)`` with ``range(TSTEPS)`` and ``np.zeros((N, N))``)
  work unchanged. Each distinct value compiles its own module, and a
  ``PerformanceWarning`` says so once a function has compiled for more than
  :data:`MANY_VALUES` of them. To trace an int instead, pass ``np.int64(n)``;
* everything else (strings, functions, ``None``, any other object) is static, and
  must be hashable, since static values are part of the compile cache key;
* ``compile(..., static_argnums=, static_argnames=)`` makes whole arguments static
  (as ``jax.jit``), whatever they hold.

Inside a trace, ``vmapc.vmap`` passes every unbatched argument that is not an array
to the function as it is (``in_dims=None``), Python floats included, as
``jax.vmap`` and ``torch.func.vmap`` do.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import pytree
from .errors import CallError
from .tracing import ShapeDtype, Tracer

# Distinct static values one compiled function may see before a PerformanceWarning.
MANY_VALUES = 8


def is_array(x) -> bool:
    """An array, a NumPy scalar, a shape spec or a tracer: what becomes an input."""
    if isinstance(x, (np.ndarray, np.generic, Tracer, ShapeDtype)):
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (bool, int, float))


def compile_static(x) -> bool:
    """The rule for ``compile``/``trace``: ints, bools and non-numbers are static,
    floats and arrays traced."""
    if isinstance(x, (float, complex)) and not isinstance(x, np.generic):
        return False
    return not is_array(x)


def vmap_static(x) -> bool:
    """The rule for an unbatched argument of a vmap inside a trace: whatever is not
    an array reaches the function as it is."""
    return not is_array(x)


def describe(x) -> str:
    if isinstance(x, bool):
        return "a Python bool"
    if isinstance(x, (int, float)):
        return f"a Python {type(x).__name__}"
    return f"a {type(x).__name__}"


def arg_path(keys, names) -> str:
    """A readable name for the leaf of ``(args, kwargs)`` reached by `keys` (from
    :func:`vmapc.pytree.leaf_keys`): ``w``, ``params['b']``, ``p.x``."""
    if len(keys) < 2:
        return "the arguments"
    if keys[0] == "[0]":
        i = int(keys[1][1:-1])
        base = names[i] if i < len(names) else f"arg{i}"
    else:
        base = keys[1][2:-2]
    return base + "".join(keys[2:])


class StaticArgs:
    """``static_argnums``/``static_argnames`` of ``compile``, checked against the
    function's signature. As in ``jax.jit``, each names the other's parameters too:
    ``static_argnums=1`` makes the second parameter static also when it is passed by
    keyword."""

    def __init__(self, fn, static_argnums=None, static_argnames=None):
        nums = _as_tuple(static_argnums, int, "static_argnums")
        names = _as_tuple(static_argnames, str, "static_argnames")
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = None
        self.nums, self.names = set(), set(names)
        if params is None:
            self.nums = {n for n in nums if n >= 0}
            if any(n < 0 for n in nums):
                raise CallError("vmapc.compile: negative static_argnums need a function with a readable signature")
            return
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
        var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
        fname = getattr(fn, "__name__", "the function")
        for n in nums:
            k = n + len(positional) if n < 0 else n
            if not 0 <= k < len(positional) and not (var_positional and n >= 0):
                raise CallError(f"vmapc.compile: static_argnums {n} is out of range: {fname} has "
                                f"{len(positional)} positional parameter(s)")
            self.nums.add(k)
            if k < len(positional) and positional[k].kind != positional[k].POSITIONAL_ONLY:
                self.names.add(positional[k].name)
        by_name = {p.name: p for p in params if p.kind != p.VAR_POSITIONAL and p.kind != p.VAR_KEYWORD}
        for name in names:
            p = by_name.get(name)
            if p is None and not var_keyword:
                raise CallError(f"vmapc.compile: static_argnames {name!r} is not a parameter of {fname} "
                                f"(its parameters: {', '.join(by_name) or 'none'})")
            if p is not None and p.kind == p.POSITIONAL_OR_KEYWORD:
                self.nums.add(positional.index(p))

    def __bool__(self):
        return bool(self.nums or self.names)

    def wrap(self, args, kwargs):
        """The arguments with the static ones wrapped in :class:`vmapc.pytree.Static`."""
        if not self:
            return args, kwargs
        args = tuple(_static(a) if i in self.nums else a for i, a in enumerate(args))
        kwargs = {k: _static(v) if k in self.names else v for k, v in kwargs.items()}
        return args, kwargs


def _static(x):
    return x if type(x) is pytree.Static else pytree.Static(x)


def _as_tuple(v, kind, what):
    if v is None:
        return ()
    if isinstance(v, kind) and not isinstance(v, bool):
        return (v,)
    try:
        out = tuple(v)
    except TypeError:
        out = None
    if out is None or any(not isinstance(x, kind) or isinstance(x, bool) for x in out):
        raise CallError(f"vmapc.compile: {what} must be {'an int' if kind is int else 'a str'} or a sequence "
                        f"of them, got {v!r}")
    return out


def check_hashable(tree: pytree.TreeDef, names):
    """Raise CallError naming the first static value of `tree` (a treedef of
    ``(args, kwargs)``) that cannot be hashed: static values are cache keys."""
    try:
        hash(tree)
        return
    except TypeError:
        pass
    for path, value in pytree.static_values(tree):
        try:
            hash(value)
        except TypeError:
            raise CallError(f"argument `{arg_path(path, names)}` is static ({describe(value)}: not an array "
                            "or a Python float, or declared in static_argnums/static_argnames), and static "
                            "values must be hashable because they are part of the compile cache key; pass "
                            "a tuple instead of a list, or an array to trace it") from None
    raise CallError("the arguments' structure is not hashable (a registered pytree class keeps unhashable "
                    "data in its structure)")


def static_summary(tree: pytree.TreeDef, names) -> str:
    """``TSTEPS=10, N=64`` for the static values of a treedef of ``(args, kwargs)``."""
    parts = []
    for path, value in pytree.static_values(tree):
        r = repr(value)
        parts.append(f"{arg_path(path, names)}={r if len(r) <= 40 else r[:37] + '...'}")
    return ", ".join(parts)
