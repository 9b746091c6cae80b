"""Named batch axes and collectives: ``vmapc.vmap(f, axis_name="batch")``.

A function written for one example sometimes needs the rest of the batch: batch
statistics, a per-example value normalized against the batch, the example's own
position. As in ``jax.vmap(axis_name=...)``, naming the batch axis lets the
function call collectives over it:

* ``psum(x, name)``, ``pmean(x, name)``, ``pmax(x, name)``, ``pmin(x, name)``: the
  sum (mean, max, min) of ``x`` over every example, which every example gets;
* ``all_gather(x, name, axis=0, tiled=False)``: every example's ``x``, stacked
  along a new axis (``tiled``: concatenated along an existing one);
* ``axis_index(name)``: the example's index along the axis (int32);
* ``axis_size(name)``: the batch size (a Python int).

``name`` may also be a tuple of names of nested vmaps (reduce over all of them).
Each collective is an IR op (:mod:`vmapc.ops.collective`) typed as one example
sees it; the vmap that binds the name replaces it with ordinary ops when it
batches the program (a ``psum`` of a batched value becomes a ``reduce_sum`` over
the batch axis, and its result is the same for every example, so it can be
returned with ``out_dims=None``). A vmap over another name leaves it in place,
batched, for the enclosing vmap that binds it. A collective over a name that no
enclosing vmap binds is a :class:`~vmapc.errors.BatchingError`, and so is an
inner vmap reusing an enclosing vmap's name.

Two stacks, one per thread, keep track of the names: :func:`binding` holds the
names bound while a vmapped function is traced (what the front end checks), and
:func:`batching` the name and size of the batching pass in progress (what the
batching rules of :mod:`vmapc.rules.collective` read with :func:`current_axis`).
"""

from __future__ import annotations

import contextlib
import threading

from .errors import BatchingError

_state = threading.local()


def _stack(which):
    s = getattr(_state, which, None)
    if s is None:
        s = []
        setattr(_state, which, s)
    return s


def check_axis_name(name, what):
    if not isinstance(name, str) or not name:
        raise BatchingError(f"{what} must be a non-empty str, got {name!r}")


@contextlib.contextmanager
def binding(name, size):
    """While tracing the function of ``vmap(..., axis_name=name)``: the name is bound
    to the batch size."""
    if name is None:
        yield
        return
    s = _stack("bound")
    if any(n == name for n, _ in s):
        raise BatchingError(f"vmap: axis_name {name!r} is already bound by an enclosing vmap; nested vmaps "
                            "need distinct axis names")
    s.append((name, size))
    try:
        yield
    finally:
        s.pop()


def bound_size(name, what):
    """The batch size bound to `name`, or a BatchingError at the user's line."""
    for n, size in reversed(_stack("bound")):
        if n == name:
            return size
    from .tracing import user_loc
    raise unbound(what, name).with_loc(user_loc())


def unbound(what, name) -> BatchingError:
    bound = [n for n, _ in _stack("bound")]
    return BatchingError(f"{what}: the axis name {name!r} is not bound by an enclosing vmapc.vmap(..., "
                         f"axis_name={name!r}) (bound here: {', '.join(map(repr, bound)) or 'none'}); a "
                         "collective combines the examples of a named batch axis, so it only has a meaning "
                         "inside a vmap over that axis")


@contextlib.contextmanager
def batching(name, size):
    """While the vmap pass batches a program over the axis `name` (None: unnamed)."""
    s = _stack("batching")
    s.append((name, size))
    try:
        yield
    finally:
        s.pop()


def current_axis():
    """(name, size) of the batching pass in progress."""
    s = _stack("batching")
    return s[-1] if s else (None, None)


# --- the front end -----------------------------------------------------------------------------

def _names(axis_name, what):
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if not names:
        raise BatchingError(f"{what}: axis_name is an empty tuple")
    for n in names:
        check_axis_name(n, f"{what}: axis_name")
    return names


def _traced(x):
    from .numpy._core import _var, _wrap
    return _wrap(_var(x))


def _emit(op, x, **attrs):
    from .tracing import Tracer, current
    ctx = current()
    return Tracer(ctx.builder.emit(op, _traced(x).ir_var, **attrs), ctx)


def _reduce(op, x, axis_name):
    names = _names(axis_name, op)
    for n in names:
        bound_size(n, op)
    for n in names:
        x = _emit(op, x, axis_name=n)
    return x


def axis_size(axis_name):
    """The size of the named batch axis (the product, for a tuple of names): a
    Python int, or a traced int when the batch size is only known at run time."""
    total = 1
    for n in _names(axis_name, "axis_size"):
        size = bound_size(n, "axis_size")
        if not isinstance(size, int):      # batch="dynamic": the size is a symbol
            from .tracing import Tracer
            import numpy as np
            s = _emit("psum", np.int64(1), axis_name=n)
            total = total * Tracer(s.ir_var, s.ctx, weak=int)
        else:
            total = total * size
    return total


def psum(x, axis_name):
    """The sum of `x` over every example of the named batch axis (or axes)."""
    from .arguments import is_array
    if isinstance(x, (int, float)) and not isinstance(x, bool) and not is_array(x):
        return x * axis_size(axis_name)     # psum(1, "i") is the axis size, a Python number (as JAX)
    return _reduce("psum", x, axis_name)


def pmax(x, axis_name):
    """The maximum of `x` over every example of the named batch axis (or axes)."""
    return _reduce("pmax", x, axis_name)


def pmin(x, axis_name):
    """The minimum of `x` over every example of the named batch axis (or axes)."""
    return _reduce("pmin", x, axis_name)


def pmean(x, axis_name):
    """The mean of `x` over every example of the named batch axis (or axes); integer
    inputs give float64, as ``np.mean`` does."""
    from . import numpy as vnp
    return vnp.divide(psum(x, axis_name), axis_size(axis_name))


def all_gather(x, axis_name, *, axis=0, tiled=False):
    """Every example's `x`, stacked along a new axis `axis` (of the batch size); with
    ``tiled=True``, concatenated along the existing axis `axis` instead."""
    from . import numpy as vnp
    if isinstance(axis_name, tuple):
        raise BatchingError("all_gather: give one axis name (gather over nested axes with one all_gather "
                            "per name)")
    check_axis_name(axis_name, "all_gather: axis_name")
    size = bound_size(axis_name, "all_gather")
    x = _traced(x)
    rank = x.ndim + (0 if tiled else 1)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise BatchingError(f"all_gather: axis {axis!r} is out of range for a result of rank {rank}")
    axis %= rank
    if not tiled:
        return _emit("all_gather", x, axis_name=axis_name, axis_size=size, axis=axis)
    g = _emit("all_gather", x, axis_name=axis_name, axis_size=size, axis=axis)
    shape = x.shape[:axis] + (size * x.shape[axis],) + x.shape[axis + 1:]
    return vnp.reshape(g, shape)


def axis_index(axis_name):
    """The example's index along the named batch axis (int32, as in JAX)."""
    if isinstance(axis_name, tuple):
        raise BatchingError("axis_index: give one axis name")
    check_axis_name(axis_name, "axis_index: axis_name")
    bound_size(axis_name, "axis_index")
    from .tracing import Tracer, current
    ctx = current()
    return Tracer(ctx.builder.emit("axis_index", axis_name=axis_name), ctx)
