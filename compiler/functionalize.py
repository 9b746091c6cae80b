"""Functionalization: NumPy's writes, on an IR whose values never change.

NumPy code writes into arrays: ``out[i] = v``, ``x += y``, ``np.add.at(h, idx, 1)``,
``np.multiply(a, b, out=c)``, and it reads those writes back through every name that
refers to the array, including *views* (``row = x[0]``, ``x.T``, ``x.reshape(...)``)
that share its memory. The IR has no memory: every value is defined once. So a write
is recorded as a new value, and the tracer that stood for the array is *rebound* to it.

* A **root** tracer (an argument, the result of a computation, an array the function
  allocates) owns its current value ``_var``. A write gives it a new one and bumps its
  generation ``_gen``. Every Python name bound to that tracer object sees the write,
  as every name bound to a NumPy array does.
* A **view** tracer (what basic indexing, ``.T``, ``reshape`` and the other functions
  NumPy documents as returning views give) keeps its root and the *steps* that read it
  from the root: a static window (``slice``), reversed axes (``rev``), ``reshape``,
  ``transpose``, or one dim indexed at a traced position (``index``). Reading a view
  whose root was written since it last looked replays the steps on the root's new
  value (the scheme PyTorch's functionalization uses, with a generation counter). A
  write through a view is pushed back to the root through the inverse of each step:
  ``update_slice`` for a window, a ``scatter`` for a strided one, the inverse
  permutation for a transpose, and so on; the root gets the new value, so the base
  and every other view of it see the write.
* Integer-array (fancy) indexing gives a **copy** (a new root), as in NumPy: writing
  to it changes nothing else. A write *through* fancy indices (``x[idx] = v``) is a
  ``scatter`` into the view the basic part of the index selects.

Whether ``reshape``/``ravel`` return a view depends, in NumPy, on the memory layout:
each view also carries a layout (a stand-in NumPy array with the strides the real one
would have, over no data), and NumPy itself decides on it (``reshape(copy=False)``).
Arguments are taken to be C-contiguous, as the compiled code receives them.

What the function writes into its arguments becomes extra outputs of the traced
program (``Function.mutated`` lists the arguments); :mod:`vmapc.api` copies them back
into the caller's arrays after each call, which is what running the function with
NumPy does.

Arrays the function allocates (``np.zeros``, ``np.empty``, ``np.ones``, ``np.full``,
the ``*_like`` functions, ``np.eye``, ``np.identity``) are traced while a trace runs,
so that traced values can be written into them: see :func:`allocations`.
"""

from __future__ import annotations

import dis
import functools
import os
import sys
import sysconfig
import threading

import numpy as np

from . import dtypes as dt
from .errors import ReadOnlyError, ShapeError, WriteError

# --- view steps ----------------------------------------------------------------------------------
# A step is a tuple: ("slice", start, limit, step), ("rev", axes), ("reshape", shape),
# ("transpose", perm), ("index", axis, i) where i is a 0-d int64 Var already wrapped and
# clamped into the axis.


def read(b, x, step):
    """The part of x that `step` selects."""
    kind = step[0]
    if kind == "slice":
        _, start, limit, stride = step
        if (start, limit, stride) == ((0,) * x.rank, x.shape, (1,) * x.rank):
            return x
        return b.emit("slice", x, start=start, limit=limit, step=stride)
    if kind == "rev":
        return b.emit("rev", x, axes=step[1]) if step[1] else x
    if kind == "reshape":
        return b.reshape(x, step[1])
    if kind == "transpose":
        return b.transpose(x, step[1])
    if kind == "index":
        _, axis, i = step
        zero = b.constant(np.zeros((), np.int64))
        starts = [i if d == axis else zero for d in range(x.rank)]
        sizes = tuple(1 if d == axis else n for d, n in enumerate(x.shape))
        w = b.emit("dynamic_slice", x, *starts, sizes=sizes)
        return b.reshape(w, x.shape[:axis] + x.shape[axis + 1:])
    raise AssertionError(f"unknown view step {kind}")


def write(b, x, step, new):
    """x with the part `step` selects replaced by `new`."""
    kind = step[0]
    if kind == "slice":
        _, start, limit, stride = step
        if 0 in new.shape:
            return x
        # the unit-stride box around the strided window
        box_limit = tuple(s + (n - 1) * st + 1 for s, n, st in zip(start, new.shape, stride))
        strided = [(d, st) for d, st in enumerate(stride) if st != 1 and new.shape[d] > 1]
        if strided:
            box = read(b, x, ("slice", start, box_limit, (1,) * x.rank))
            new = nested_scatter(b, box, new, [(d, b.constant(np.arange(0, new.shape[d] * st, st, dtype=np.int32)))
                                              for d, st in strided])
        if new.shape == x.shape:
            return new
        starts = [b.constant(np.asarray(s, np.int64)) for s in start]
        return b.emit("update_slice", x, new, *starts)
    if kind == "rev":
        return b.emit("rev", new, axes=step[1]) if step[1] else new
    if kind == "reshape":
        return b.reshape(new, x.shape)
    if kind == "transpose":
        return b.transpose(new, tuple(int(i) for i in np.argsort(step[1])))
    if kind == "index":
        _, axis, i = step
        zero = b.constant(np.zeros((), np.int64))
        starts = [i if d == axis else zero for d in range(x.rank)]
        return b.emit("update_slice", x, b.reshape(new, x.shape[:axis] + (1,) + x.shape[axis + 1:]), *starts)
    raise AssertionError(f"unknown view step {kind}")


def nested_scatter(b, x, new, picks):
    """x with ``x[..., idx_1 (along d_1), ..., idx_k (along d_k), ...]`` (an outer product of
    distinct indices, one list per dim) replaced by `new`: take the nested selections, then
    scatter back level by level."""
    levels = [x]
    for d, idx in picks[:-1]:
        levels.append(b.emit("take", levels[-1], idx, axis=d, batch_dims=0))
    for (d, idx), parent in reversed(list(zip(picks, levels))):
        new = b.emit("scatter", parent, idx, new, axis=d, batch_dims=0, mode="set")
    return new


def read_steps(b, x, steps):
    for s in steps:
        x = read(b, x, s)
    return x


def write_steps(b, x, steps, new):
    """x with the part the chain of `steps` selects replaced by `new`."""
    if not steps:
        return new
    inner = read(b, x, steps[0])
    return write(b, x, steps[0], write_steps(b, inner, steps[1:], new))


# --- layouts: NumPy decides whether a reshape is a view ------------------------------------------

_NO_DATA = np.zeros(1, np.int8)


def c_layout(shape):
    """A stand-in array of `shape` with C-contiguous strides over no data (never read)."""
    strides, s = [], 1
    for n in reversed(shape):
        strides.append(s)
        s *= max(n, 1)
    return np.lib.stride_tricks.as_strided(_NO_DATA, shape, tuple(reversed(strides)), writeable=False)


def layout_after(layout, step):
    """The layout of what `step` selects from an array laid out as `layout`, or None when
    NumPy would have to copy (only a reshape can)."""
    kind = step[0]
    if kind == "slice":
        return layout[tuple(slice(a, b, c) for a, b, c in zip(*step[1:]))]
    if kind == "rev":
        return np.flip(layout, step[1]) if step[1] else layout
    if kind == "reshape":
        try:
            return np.reshape(layout, step[1], copy=False)
        except ValueError:
            return None
    if kind == "transpose":
        return layout.transpose(step[1])
    if kind == "index":
        return layout[(slice(None),) * step[1] + (0,)]
    raise AssertionError(f"unknown view step {kind}")


# --- views and writes on tracers -----------------------------------------------------------------

def view(parent, step, readonly=False):
    """The view of tracer `parent` that `step` selects: a view tracer sharing parent's root
    when NumPy would return a view, a new root (a copy) when it would copy."""
    from .tracing import Tracer, current, to_var
    ctx = parent.ctx
    cur = current()
    if cur is not None and cur is not ctx:
        # parent belongs to an enclosing trace (a closure of a loop body or a branch): read
        # it here, in the trace that indexes it (the index may be one of its values). Writes
        # into an enclosing trace's arrays are refused (check_writable): a copy will do.
        return Tracer(read(cur.builder, to_var(cur, parent, "the indexed array"), step), cur)
    var = read(ctx.builder, parent.ir_var, step)
    layout = layout_after(layout_of(parent), step)
    if layout is None:                        # NumPy copies: a root of its own
        return Tracer(var, ctx)
    t = Tracer(var, ctx)
    root = parent._root if parent._root is not None else parent
    t._root, t._steps, t._gen, t._layout = root, parent._steps + (step,), root._gen, layout
    t._readonly = readonly or parent._readonly
    return t


def layout_of(t):
    return t._layout if t._layout is not None else c_layout(t.shape)


def refresh(t):
    """Re-read a view whose root was written since it last looked."""
    root = t._root
    t._var = read_steps(t.ctx.builder, root._var, t._steps)
    t._gen = root._gen


def check_writable(t, what="assignment"):
    """Raise unless a write into tracer `t` is one NumPy would make and vmapc can express."""
    from .tracing import current, user_loc
    if t.weak is not None:
        raise WriteError(f"{what}: the target is a traced Python {t.weak.__name__}, which cannot be "
                         "written into (Python numbers are immutable)", user_loc())
    if t._readonly:
        dest = "output array" if what == "in-place operation" or "out=" in what else "assignment destination"
        raise ReadOnlyError(f"{dest} is read-only (a read-only view, such as the result of "
                            "np.broadcast_to)", user_loc())
    if t._immutable:
        raise WriteError(f"{what}: the target is a traced NumPy scalar (np.{t.dtype}), which does not "
                         "support item assignment; pass a 0-d array to write into it", user_loc())
    if t.ctx is not current():
        raise WriteError(f"{what}: the target belongs to an enclosing trace (a closure of a function "
                         "traced by vmapc.vmap or a loop); writes to it cannot be expressed there: pass "
                         "the array as an argument and use the function's result", user_loc())


def assign(t, new):
    """Make `new` (a Var of t's type) the value of tracer `t`, and of every alias of it."""
    root = t._root
    b = t.ctx.builder
    if root is None:
        root = t
    else:
        new_root = write_steps(b, root._var, t._steps, new)
        t._var = new
        new = new_root
    root._var = new
    root._gen += 1
    if root._writes is None:
        root._writes = []
    root._writes.append(new)
    if t is not root:
        t._gen = root._gen


def convert_value(value, dtype, shape, what):
    """The IR value of `value` converted for a write into an array of `dtype` and `shape`:
    broadcast (NumPy's wording when it cannot be) and cast as NumPy's assignment casts
    ("unsafe"; a Python number that does not fit raises as in NumPy)."""
    from .numpy._core import _b, _var
    from .shapes import broadcast_shapes
    from .tracing import Tracer, user_loc
    if not isinstance(value, Tracer):
        value = python_value(value, dtype)
    v = _var(value)
    try:
        ok = broadcast_shapes(v.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(what.format(value=_fmt(v.shape), target=_fmt(shape)), user_loc())
    b = _b()
    v = b.convert(v, dtype)
    v = b.reshape(v, (1,) * (len(shape) - v.rank) + v.shape)
    return b.broadcast_in_dim(v, tuple(shape), tuple(range(len(shape))))


def python_value(value, dtype):
    """A NumPy value (array, scalar or Python number) for a write into an array of `dtype`:
    a Python number goes through NumPy's own assignment, so NaN or inf into an integer
    array, or an int out of range, raise as NumPy does."""
    from .errors import CastError, TracingError
    from .tracing import user_loc
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        cell = np.empty((), dtype)
        try:
            cell[()] = value
        except (OverflowError, ValueError, TypeError) as err:   # TypeError: a complex into a real array
            raise CastError(f"{err} (writing {value!r} into an array of {np.dtype(dtype)})", user_loc()) from None
        return cell
    a = np.asarray(value)
    if a.dtype == object:
        raise TracingError(f"cannot write an object of type {type(value).__name__} into a traced array",
                           user_loc())
    dt.canonical(a.dtype, "the value written")
    return a


def _fmt(shape):
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def storing_into_numpy() -> bool:
    """Whether the user's line being run is an item assignment (``a[i] = v``): NumPy's
    ``ndarray.__setitem__`` converting a tracer, i.e. a traced value written into a NumPy
    array."""
    from .tracing import _is_user_file
    f = sys._getframe(1)
    while f is not None and not _is_user_file(f.f_code.co_filename):
        f = f.f_back
    if f is None:
        return False
    code = f.f_code.co_code
    return 0 <= f.f_lasti < len(code) and code[f.f_lasti] == _STORE_SUBSCR


_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]


# --- arrays the function allocates ---------------------------------------------------------------

_ALLOCATORS = ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
               "eye", "identity")
_patch_lock = threading.Lock()
_patch_depth = 0
_originals: dict = {}


def _library_dirs():
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.abspath(d) + os.sep for d in dirs if d)


_LIBRARY_DIRS = _library_dirs()


def _traced_allocation() -> bool:
    """Whether an allocation function called now should give a traced array: a trace runs in
    this thread and the caller is the user's code (not vmapc, NumPy, or a library installed
    in site-packages, whose own arrays stay NumPy arrays)."""
    from .tracing import _is_user_file, current, traced_files
    if current() is None:
        return False
    f = sys._getframe(2)
    fname = f.f_code.co_filename
    if not _is_user_file(fname):
        return False
    return not os.path.abspath(fname).startswith(_LIBRARY_DIRS) or fname in traced_files()


def _allocator(name, original):
    @functools.wraps(original)
    def allocate(*args, **kwargs):
        if not _traced_allocation():
            return original(*args, **kwargs)
        from . import numpy as vnp
        return getattr(vnp, name)(*args, **kwargs)
    allocate.__vmapc_original__ = original
    return allocate


class allocations:
    """While a trace runs, ``np.zeros``, ``np.empty``, ``np.ones``, ``np.full``, the
    ``*_like`` functions, ``np.eye`` and ``np.identity``, called from the user's code,
    give traced arrays (constants that traced values can be written into). The numpy
    module's attributes are swapped for wrappers while any thread traces; a wrapper
    called from another thread, from vmapc or NumPy, or from a library installed in
    site-packages calls NumPy's own function.

    Limits: a name bound before tracing (``from numpy import zeros``) is NumPy's own
    function, and arrays from other NumPy functions (``np.arange``, ``np.array``,
    ``np.linspace``) are NumPy arrays: writing a traced value into those raises
    :class:`~vmapc.errors.WriteError`. The values of a traced allocation are not known
    while tracing, so they cannot steer Python control flow or serve as a static index."""

    def __enter__(self):
        global _patch_depth
        with _patch_lock:
            if _patch_depth == 0:
                for name in _ALLOCATORS:
                    original = getattr(np, name)
                    _originals[name] = original
                    setattr(np, name, _allocator(name, original))
            _patch_depth += 1
        return self

    def __exit__(self, *exc):
        global _patch_depth
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                for name, original in _originals.items():
                    setattr(np, name, original)
                _originals.clear()


def numpy_original(name):
    """NumPy's own allocation function, even while the wrappers are installed."""
    f = getattr(np, name)
    return getattr(f, "__vmapc_original__", f)
