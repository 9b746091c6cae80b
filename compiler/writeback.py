"""Writing back into the caller's arrays what a compiled function wrote into its arguments.

A function that writes into an argument (``x[i] = v``, ``x += y``, ``np.add.at(x, ...)``) is
traced with one extra output per such argument: its final value
(:func:`vmapc.tracing.trace_flat` records them in ``Function.mutated``). A compiled call
then copies each into the caller's array and returns what the function returns, as running
the function with NumPy does. With ``write_back=False`` the caller's arrays are left alone
and the call returns ``(result, {argument name: final value})`` instead.

Under ``vmap`` each example writes its own slice of a batched argument: the extra output's
batch dim is the argument's in_dim. An argument that is not batched (in_dim None) is shared
by every example, so writing a value that differs per example into it has no meaning:
that is a :class:`~vmapc.errors.BatchingError` naming the argument and the line of the
write (functorch raises the same for in-place writes of batched values into unbatched
tensors).

Before anything runs, the call checks what NumPy would refuse or what vmapc cannot
reproduce: a read-only argument (NumPy's "assignment destination is read-only"), an
argument that is not a NumPy array, and arguments sharing memory with the one written
(the traced function saw them as separate arrays).
"""

from __future__ import annotations

import numpy as np

from . import pytree
from .errors import BatchingError, CallError, ReadOnlyError


def writes_of(fn) -> tuple:
    """The flat indices of the arguments `fn` (a traced Function) writes into."""
    return tuple(getattr(fn, "mutated", ()) or ())


def user_outputs(fn) -> int:
    """How many of `fn`'s outputs are the function's own (the rest are written arguments)."""
    return len(fn.outputs) - len(writes_of(fn))


def out_dims_of_writes(fn, in_bdims, axis_size, paths) -> list:
    """The out_dims of `fn`'s extra outputs under vmap: each written argument's in_dim.
    Raises BatchingError if an unbatched argument receives a value that depends on the batch,
    naming the argument and the first write that makes it so."""
    mutated = writes_of(fn)
    dims = [in_bdims[i] for i in mutated]
    if all(d is not None for d in dims):
        return dims
    from .vmap import _batch_eqns
    _, _, env, _ = _batch_eqns(fn, list(in_bdims) + [None] * (len(fn.inputs) - len(in_bdims)), axis_size)
    defined = {id(v): e for e in fn.eqns for v in e.outputs}
    for i, d in zip(mutated, dims):
        if d is not None:
            continue
        writes = fn.writes.get(i, []) if hasattr(fn, "writes") else []
        for v in writes:
            if env[v][1] is not None:
                e = defined.get(id(v))
                raise BatchingError(
                    f"vmap: argument {paths[i]} is not batched (its in_dim is None), but the function "
                    "writes a value that differs from example to example into it; every example would "
                    "write into the same array. Batch the argument (an int in_dims) so that each "
                    "example writes its own slice, or write into a copy (x = x.copy())",
                    e.loc if e is not None else None)
    return dims


def check_targets(leaves, mutated, names):
    """Raise before running if a written argument cannot be written back as NumPy would."""
    from .tracing import user_loc
    for i in mutated:
        t = leaves[i]
        if not isinstance(t, np.ndarray):
            raise CallError(f"argument `{names[i]}` is a {type(t).__module__}.{type(t).__name__}, but the "
                            "function writes into it; pass a writable NumPy array, or compile with "
                            "write_back=False to get the new values returned", user_loc())
        if not t.flags.writeable:
            raise ReadOnlyError(f"assignment destination is read-only: the function writes into argument "
                                f"`{names[i]}`, which the caller passed read-only", user_loc())
        for j, o in enumerate(leaves):
            if j != i and isinstance(o, np.ndarray) and np.may_share_memory(t, o):
                raise CallError(f"arguments `{names[i]}` and `{names[j]}` share memory and the function "
                                f"writes into `{names[i]}`; vmapc traces arguments as separate arrays, so "
                                "the write would not be seen through the other: pass copies", user_loc())


def finish(out_tree, outs, leaves, mutated, names, write_back=True):
    """The call's result: the function's outputs unflattened; the written arguments' final
    values copied into the caller's arrays (`leaves`), or returned with write_back=False."""
    if not mutated:
        return pytree.unflatten(out_tree, outs)
    n = len(outs) - len(mutated)
    result = pytree.unflatten(out_tree, list(outs[:n]))
    written = outs[n:]
    if not write_back:
        return result, {names[i]: w for i, w in zip(mutated, written)}
    for i, w in zip(mutated, written):
        np.copyto(leaves[i], w, casting="unsafe")
    return result


def write_back_traced(leaves, mutated, values):
    """vmap inside a trace: the inner function's writes into its arguments (tracers of the
    enclosing trace) become writes into those tracers."""
    from .errors import WriteError
    from .functionalize import assign, check_writable
    from .tracing import Tracer, user_loc
    for i, v in zip(mutated, values):
        t = leaves[i]
        if not isinstance(t, Tracer):
            raise WriteError("vmap: the function writes into an argument that is a NumPy array, not a "
                             "traced one; vmapc never writes into NumPy arrays while tracing. Pass a "
                             "traced array (made inside the traced function)", user_loc())
        check_writable(t, "vmap")
        assign(t, v)
