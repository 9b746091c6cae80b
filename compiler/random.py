"""``vmapc.random``: counter-based random numbers that give the same bits everywhere.

The API follows ``jax.random``. A **key** is an ordinary ``uint32`` array of shape ``(2,)``:
it can be an argument of a compiled function, be batched with ``in_dims`` like any
array, be returned, and be stored. Nothing is hidden state::

    key = vmapc.random.key(0)
    k1, k2 = vmapc.random.split(key)
    x = vmapc.random.normal(k1, (3,))          # eagerly, on NumPy arrays

    @vmapc.compile(in_dims=(0, 0))
    def noisy(x, key):                          # one example, one key
        return x + 0.1 * vmapc.random.normal(key, x.shape)

    ys = noisy(xs, vmapc.random.split(key, len(xs)))

Every draw hashes its key with the element's position: ``threefry2x32(key, (0, i))``
for the element of flat index ``i``, Threefry-2x32 with 20 rounds (Salmon et al. 2011)
as one IR op (:mod:`vmapc.ops.random`). ``split``, ``fold_in`` and ``bits`` are JAX's
(with ``jax_threefry_partitionable``, its default): the same key gives JAX's bits.

**Identical bits on every backend.** Integer results (``bits``, ``split``, ``fold_in``,
``randint``, ``bernoulli``, ``categorical``, ``permutation``) come from integer
arithmetic, exact everywhere. Float results are built so that every backend computes
exactly the same operations with exactly the same roundings: no ``sqrt``, ``log`` or
``exp`` of the backend (whose last bits differ between libm, IREE's approximations and
GLSL) and no division; ``log``, ``sqrt`` and the inverse error function are
polynomials evaluated here in steps ``f32(f64(a) * f64(b) + f64(c))``. The product of
two float32 numbers is exact in float64, so such a step rounds once to float64 and once
to float32 whether or not a backend fuses the multiply and the add (IREE's CPU backend
does, NumPy and Vulkan do not), and never underflows. Float draws therefore need
float64 arithmetic on the device (as vmapc's Vulkan profile already declares).

**Under vmap** a draw from a key that differs per example (``in_dims=0`` keys) is
independent per example. A draw from a key every example shares is what the vmap's
``randomness`` mode decides (``"error"``, ``"same"``, ``"different"``; see
:mod:`vmapc.rules.random` and ``docs/randomness.md``): each function here marks the key
it consumes with a ``key_use`` equation, which the vmap pass sees.

Called with NumPy arrays outside a trace, each function traces itself and runs on the
reference evaluator (:func:`vmapc.eval`), which computes the very bits compiled code
does.
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from .errors import DTypeError, ShapeError, TracingError, UnsupportedError, VmapcError
from .ir import Var
from .tracing import Tracer, current, to_var, user_loc

__all__ = ["key", "PRNGKey", "split", "fold_in", "bits", "uniform", "normal", "bernoulli", "randint",
           "categorical", "permutation", "shuffle", "truncated_normal", "gumbel", "exponential"]

U8, U16, U32, U64 = dt.UINT8, dt.UINT16, dt.UINT32, dt.UINT64
I32, F16, F32, F64 = dt.INT32, dt.FLOAT16, dt.FLOAT32, dt.FLOAT64
MAX_DRAW = 2 ** 32          # elements in one draw: each gets its own 32-bit counter


# --- checking arguments -----------------------------------------------------------------------------

def _err(cls, msg):
    return cls(msg, user_loc())


def _static_shape(shape, what, name="shape"):
    """A static shape: a tuple of non-negative Python ints (an int is a 1-d shape)."""
    if isinstance(shape, Tracer) or (isinstance(shape, (tuple, list)) and any(isinstance(d, Tracer) for d in shape)):
        raise _err(ShapeError, f"vmapc.random.{what}: {name} must be static (Python ints), got a traced value; "
                               "shapes are fixed when the function is compiled")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or any(
            not isinstance(d, (int, np.integer)) or isinstance(d, bool) for d in shape):
        raise _err(ShapeError, f"vmapc.random.{what}: {name} must be a tuple of ints, got {shape!r}")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise _err(ShapeError, f"vmapc.random.{what}: {name} {shape} has a negative dimension")
    if math.prod(shape) > MAX_DRAW:
        raise _err(ShapeError, f"vmapc.random.{what}: {name} {shape} has {math.prod(shape)} elements; one draw "
                               f"gives at most 2**32 (split the key and draw in parts)")
    return shape


def _float_dtype(dtype, what, allowed=(F16, F32)):
    try:
        d = dt.canonical(dtype, f"vmapc.random.{what} dtype")
    except VmapcError as err:
        raise err.with_loc(user_loc())
    if d not in allowed:
        names = ", ".join(str(a) for a in allowed)
        hint = ""
        if d == F64:
            hint = (": float64 draws would need float64 functions computed alike on every backend; "
                    "draw float32 and convert with .astype")
        raise _err(DTypeError, f"vmapc.random.{what}: dtype {d} is not supported (supported: {names}){hint}")
    return d


def _check_key(k, what):
    """Raise unless `k` is one key: uint32 of shape (2,)."""
    if isinstance(k, (bool, int, float)) and not isinstance(k, np.generic):
        raise _err(DTypeError, f"vmapc.random.{what}: key must be a uint32 array of shape (2,) (from "
                               f"vmapc.random.key(seed) or split), got a Python {type(k).__name__}")
    shape, dtype = getattr(k, "shape", None), getattr(k, "dtype", None)
    if shape is None or dtype is None:
        raise _err(DTypeError, f"vmapc.random.{what}: key must be a uint32 array of shape (2,), got "
                               f"{type(k).__name__}")
    if np.dtype(dtype) != U32:
        raise _err(DTypeError, f"vmapc.random.{what}: key must be a uint32 array of shape (2,) (from "
                               f"vmapc.random.key(seed) or split), got dtype {np.dtype(dtype)}")
    if tuple(shape) != (2,):
        more = (" (an array of keys: take one, or vmap over them)" if len(shape) > 1 and shape[-1] == 2 else "")
        raise _err(ShapeError, f"vmapc.random.{what}: key must have shape (2,), got shape {tuple(shape)}{more}")


# --- running in a trace, or eagerly -----------------------------------------------------------------

def _is_array(x):
    return isinstance(x, (Tracer, np.ndarray, np.generic))


def _run(what, impl, key, arrays=(), deps=(), use_key=True):
    """``impl(builder, key_var, *array_vars) -> var or tuple of vars`` inside the current
    trace, after marking the key's use (``key_use``, with `deps`: values the draw depends
    on too); outside any trace, the same traced and run on the reference evaluator."""
    if key is not None:
        _check_key(key, what)
    leaves = ([key] if key is not None else []) + list(arrays) + list(deps)
    if current() is None and not any(isinstance(x, Tracer) for x in leaves):
        return _eager(what, impl, key, arrays, deps, use_key)
    ctx = current()
    b = ctx.builder
    vs = [to_var(ctx, x, f"vmapc.random.{what} argument") if _is_array(x)
          else b.constant(np.asarray(x)) for x in leaves]
    k = vs[0] if key is not None else None
    ins = vs[1 if key is not None else 0:len(vs) - len(deps)]
    if k is not None and use_key:
        k = b.emit("key_use", k, *vs[len(vs) - len(deps):], what=what)
    try:
        out = impl(b, k, *ins)
    except VmapcError as err:
        raise err.with_loc(user_loc())
    if isinstance(out, tuple):
        return tuple(Tracer(v, ctx) for v in out)
    return Tracer(out, ctx)


def _eager(what, impl, key, arrays, deps, use_key):
    from .reference import evaluate
    from .tracing import trace
    leaves = ([np.asarray(key)] if key is not None else []) + [np.asarray(a) for a in arrays] + \
             [np.asarray(d) for d in deps]
    nk, na = (1 if key is not None else 0), len(arrays)

    def traced(*xs):
        return _run(what, impl, xs[0] if nk else None, xs[nk:nk + na], xs[nk + na:], use_key)
    fn = trace(traced, *leaves)
    outs = evaluate(fn, *leaves)
    return outs[0] if len(outs) == 1 else tuple(outs)


# --- emitting: constants and the exact float steps ----------------------------------------------------

def _c(b, value, dtype, rank):
    """A constant broadcastable against values of rank `rank`."""
    return b.reshape(b.constant(np.asarray(value, dtype=dtype)), (1,) * rank)


def _e(b, op, *xs, **attrs):
    return b.emit(op, *xs, **attrs)


def _f64(b, x):
    return b.convert(x, F64)


def _fma(b, a, x, c=None):
    """``f32(f64(a) * f64(x) + f64(c))`` for float32 `a`, `x` (or float64 values with few
    enough significant bits) and `c` a float32/64 value, a Python number or None. The
    product is exact in float64, so every backend rounds this step alike (see the module
    docstring).

    Without `c` the step is a float32 product, and compilers treat it as one (LLVM
    narrows ``f32(f64(a) * f64(x))`` to a float32 multiply, which rounds the same): such a
    result must not feed a float32 add or subtract, which IREE's CPU backend would fuse
    with it. Pass the addend as `c` instead."""
    r = a.rank
    p = _e(b, "multiply", _f64(b, a), _f64(b, x))
    if c is not None:
        p = _e(b, "add", p, _c(b, c, F64, r) if isinstance(c, (int, float)) else _f64(b, c))
    return b.convert(p, F32)


def _key_words(b, key, rank):
    """The key's two words, each of shape (1,)*rank."""
    k0 = b.reshape(_e(b, "slice", key, start=(0,), limit=(1,), step=(1,)), (1,) * rank)
    k1 = b.reshape(_e(b, "slice", key, start=(1,), limit=(2,), step=(1,)), (1,) * rank)
    return k0, k1


def _hash(b, key, hi, lo):
    """threefry2x32(key, (hi, lo)), operands of one rank."""
    k0, k1 = _key_words(b, key, lo.rank)
    return tuple(b.emit_multi("threefry2x32", [k0, k1, hi, lo], {}))


def _counters(b, shape):
    """(hi, lo) counter words of each element: its flat index (below 2**32, so hi is 0)."""
    n = math.prod(shape)
    lo = b.reshape(_e(b, "iota", shape=(n,), dimension=0, dtype=U32), shape)
    return _c(b, 0, U32, len(shape)), lo


def _words(b, key, shape):
    """The two 32-bit words threefry gives each element of `shape`."""
    hi, lo = _counters(b, shape)
    return _hash(b, key, hi, lo)


def _bits32(b, key, shape):
    y0, y1 = _words(b, key, shape)
    return _e(b, "bitwise_xor", y0, y1)


def _stack_key(b, y0, y1):
    """Keys from two words of equal shape S: shape S + (2,)."""
    s = y0.shape + (1,)
    return _e(b, "concatenate", b.reshape(y0, s), b.reshape(y1, s), axis=len(s) - 1)


# --- keys ------------------------------------------------------------------------------------------

def _seed_words(b, seed):
    """(hi, lo) uint32 words of an integer seed, as for a 64-bit integer (JAX's threefry_seed)."""
    d = seed.dtype
    lo = b.convert(seed, U32)
    if dt.bits(d) <= 32:
        if d in dt.SIGNED:   # sign-extended to 64 bits: the high word is all ones when negative
            hi = b.convert(_e(b, "right_shift", b.convert(seed, dt.INT32), _c(b, 31, dt.INT32, seed.rank)), U32)
        else:
            hi = _c(b, 0, U32, seed.rank)
    else:
        hi = b.convert(_e(b, "right_shift", seed, _c(b, 32, d, seed.rank)), U32)
    return hi, lo


def _python_seed(seed, what):
    seed = int(seed)
    if not -2 ** 63 <= seed < 2 ** 64:
        raise _err(DTypeError, f"vmapc.random.{what}: seed {seed} does not fit in 64 bits")
    s = seed % 2 ** 64
    return np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32)


def _int_scalar(x, what, name):
    """Check an integer scalar argument (seed, data): a Python/NumPy int or a 0-d integer array."""
    if isinstance(x, bool) or isinstance(x, np.bool_):
        raise _err(DTypeError, f"vmapc.random.{what}: {name} must be an integer, got a bool")
    if isinstance(x, (int, np.integer)):
        return None
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if dtype is None or np.dtype(dtype) not in dt.INTS:
        raise _err(DTypeError, f"vmapc.random.{what}: {name} must be an integer scalar, got "
                               f"{np.dtype(dtype) if dtype is not None else type(x).__name__}")
    if tuple(shape) != ():
        raise _err(ShapeError, f"vmapc.random.{what}: {name} must be a scalar (0-d), got shape {tuple(shape)}; "
                               "vmap over the values to use many")
    return x


def key(seed):
    """A key from an integer seed: ``uint32[2]``, the seed's high and low 32-bit words
    (``key(0)`` is ``[0, 0]``, as ``jax.random.PRNGKey(0)``). `seed` may be a Python or
    NumPy int (the key is then a NumPy array) or a traced integer scalar."""
    if _int_scalar(seed, "key", "seed") is None:
        return _python_seed(seed, "key")

    def impl(b, _, s):
        return _stack_key(b, *_seed_words(b, s))
    return _run("key", impl, None, [seed], use_key=False)


PRNGKey = key


def split(key, num=2):
    """`num` new keys from `key` (``num`` an int or a shape): ``uint32[num, 2]``. Key ``i`` is
    ``threefry2x32(key, (0, i))``, which is also ``fold_in(key, i)``. A key that has been
    split should not be drawn from too: use the new keys."""
    shape = _static_shape(num, "split", "num")

    def impl(b, k):
        return _stack_key(b, *_words(b, k, shape))
    return _run("split", impl, key)


def fold_in(key, data):
    """A new key from `key` and an integer `data` (a Python int or a traced integer
    scalar): ``threefry2x32(key, (hi, lo))`` of data's 64-bit words. ``fold_in(key, i)``
    for ``i < 2**32`` equals ``split(key, n)[i]``."""
    traced = _int_scalar(data, "fold_in", "data")

    def impl(b, k, *d):
        hi, lo = _seed_words(b, d[0]) if d else (b.constant(w) for w in _python_seed(data, "fold_in"))
        hi, lo = b.reshape(hi, (1,)), b.reshape(lo, (1,))
        y0, y1 = _hash(b, k, hi, lo)
        return _e(b, "concatenate", y0, y1, axis=0)
    if traced is None:
        return _run("fold_in", impl, key)
    return _run("fold_in", impl, key, [data], deps=[data])


# --- bits and uniform ------------------------------------------------------------------------------

def bits(key, shape=(), dtype=np.uint32):
    """Random bits: an unsigned integer array (uint8/16/32/64) of `shape`. uint32 is the
    xor of the two threefry words of each element; narrower dtypes keep its low bits;
    uint64 is the high word, then the low one (as JAX)."""
    shape = _static_shape(shape, "bits")
    try:
        d = dt.canonical(dtype, "vmapc.random.bits dtype")
    except VmapcError as err:
        raise err.with_loc(user_loc())
    if d not in (U8, U16, U32, U64):
        raise _err(DTypeError, f"vmapc.random.bits: dtype {d} is not supported (uint8, uint16, uint32, uint64)")

    def impl(b, k):
        return _bits(b, k, shape, d)
    return _run("bits", impl, key)


def _bits(b, k, shape, d):
    if d == U64:
        y0, y1 = _words(b, k, shape)
        hi = _e(b, "left_shift", b.convert(y0, U64), _c(b, 32, U64, len(shape)))
        return _e(b, "bitwise_or", hi, b.convert(y1, U64))
    return b.convert(_bits32(b, k, shape), d)


def _unit_f32(b, k, shape):
    """float32 in [0, 1): the top 23 bits as the mantissa of a number in [1, 2), minus 1
    (exact; JAX's construction)."""
    r = len(shape)
    m = _e(b, "bitwise_or", _e(b, "right_shift", _bits32(b, k, shape), _c(b, 9, U32, r)),
           _c(b, 0x3F800000, U32, r))
    return _e(b, "subtract", _e(b, "bitcast", m, dtype=F32), _c(b, 1.0, F32, r))


def _unit(b, k, shape, d):
    """Uniform on [0, 1) in dtype d, exactly JAX's bits: float16 from 16 bits, float64 from
    the two words (high word first), 52 bits."""
    r = len(shape)
    if d == F32:
        return _unit_f32(b, k, shape)
    if d == F16:
        h = b.convert(_bits32(b, k, shape), U16)
        m = _e(b, "bitwise_or", _e(b, "right_shift", h, _c(b, 6, U16, r)), _c(b, 0x3C00, U16, r))
        return _e(b, "subtract", _e(b, "bitcast", m, dtype=F16), _c(b, 1.0, F16, r))
    y0, y1 = _words(b, k, shape)     # float64: y0 * 2**-32 + (y1 >> 12) * 2**-52, exact
    a = _e(b, "multiply", b.convert(y0, F64), _c(b, 2.0 ** -32, F64, r))
    c = _e(b, "multiply", b.convert(_e(b, "right_shift", y1, _c(b, 12, U32, r)), F64), _c(b, 2.0 ** -52, F64, r))
    return _e(b, "add", a, c)


def _param(x, what, name):
    """A distribution parameter: a Python number (a constant) or an array (traced or not)."""
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return float(x)
    if isinstance(x, complex):
        raise _err(DTypeError, f"vmapc.random.{what}: {name} must be real")
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise _err(DTypeError, f"vmapc.random.{what}: {name} must be a number or an array, got {type(x).__name__}")
    return x


def _broadcast_param(b, v, d, shape, what, name):
    """A parameter var converted to dtype d (None: kept) and shaped to broadcast against `shape`."""
    if isinstance(v, float):
        return _c(b, v, d, len(shape))
    if d is not None:
        v = b.convert(v, d)
    if v.rank > len(shape) or any(s != 1 and s != t for s, t in zip(v.shape[::-1], shape[::-1])):
        raise ShapeError(f"vmapc.random.{what}: {name} of shape {v.shape} does not broadcast to the shape {shape} "
                         "of the draw")
    return b.reshape(v, (1,) * (len(shape) - v.rank) + v.shape)


def _scale(b, u, lo, hi, d):
    """lo + u * (hi - lo), clamped to [lo, hi), every step rounded alike everywhere."""
    if d == F64:
        r = _scale64(b, u, lo, hi)
    else:
        lo32, hi32 = b.convert(lo, F32), b.convert(hi, F32)
        r = _fma(b, b.convert(u, F32), _e(b, "subtract", hi32, lo32), lo32)
        r = b.convert(r, d)
    r = _e(b, "maximum", r, lo)
    return _e(b, "select", _e(b, "less", r, hi), r, lo)


def _scale64(b, u, lo, hi):
    """lo + u * (hi - lo) in float64 with every product exact: u (52 bits) is split into
    26-bit halves and the span into float32-sized parts, so a fused multiply-add and a
    separate multiply and add give the same float64 result."""
    r = u.rank
    span = _e(b, "subtract", hi, lo)
    s1 = _f64(b, b.convert(span, F32))
    rest = _e(b, "subtract", span, s1)                  # exact (Sterbenz)
    s2 = _f64(b, b.convert(rest, F32))
    scaled = _e(b, "multiply", u, _c(b, 2.0 ** 26, F64, r))
    ua = _e(b, "floor", scaled)                          # the high 26 bits, times 2**-26
    ub = _e(b, "subtract", scaled, ua)                   # the low 26 bits (exact)
    terms = [_e(b, "multiply", x, s) for x in (ua, ub) for s in (s1, s2)]   # each exact: <= 26 + 24 bits
    acc = terms[0]
    for t in terms[1:]:
        acc = _e(b, "add", acc, t)
    return _e(b, "add", lo, _e(b, "multiply", acc, _c(b, 2.0 ** -26, F64, r)))


def uniform(key, shape=(), dtype=np.float32, minval=0.0, maxval=1.0):
    """Uniform floats on ``[minval, maxval)`` (float16/32/64). On [0, 1) these are JAX's
    bits; `minval`/`maxval` may be numbers or arrays (traced too) that broadcast to `shape`."""
    shape = _static_shape(shape, "uniform")
    d = _float_dtype(dtype, "uniform", (F16, F32, F64))
    lo, hi = _param(minval, "uniform", "minval"), _param(maxval, "uniform", "maxval")
    arrays = [x for x in (lo, hi) if not isinstance(x, float)]

    def impl(b, k, *vs):
        it = iter(vs)
        lo_v = lo if isinstance(lo, float) else next(it)
        hi_v = hi if isinstance(hi, float) else next(it)
        u = _unit(b, k, shape, d)
        if lo_v == 0.0 and hi_v == 1.0:
            return u
        lo_b = _broadcast_param(b, lo_v, d, shape, "uniform", "minval")
        hi_b = _broadcast_param(b, hi_v, d, shape, "uniform", "maxval")
        return _scale(b, u, lo_b, hi_b, d)
    return _run("uniform", impl, key, arrays)


# --- float32 functions from exact steps ---------------------------------------------------------------

# Cephes' logf: log(1 + t) = t - t^2/2 + t^3 P(t) for 1 + t in [sqrt(1/2), sqrt(2))
_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4          # ln 2 = hi + lo, hi with 9 bits
# Giles (2010), "Approximating the erfinv function", single precision: erfinv(x) = x p(w)
# with w = -log((1 - x)(1 + x)), one polynomial for w < 5 (in w - 2.5), one for 5 <= w < 16
# (in sqrt(w) - 3).
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                   -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
# Beyond float32's reach (w >= 16, tail probabilities below 2**-24), a polynomial in sqrt(w) - 4.375
# fitted by scripts/fit_erfinv_tail.py (relative error 8e-8 on w in [15.5, 24)).
_ERFINV_FAR = (-6.332739417302946e-07, 1.1090986845374573e-05, -5.4815733165014535e-05,
               0.00017707666847854853, -0.0005107154720462859, 0.0005033927736803889,
               1.0101295709609985, 4.218480587005615)


def _f32const(x):
    return float(np.float32(x))


def _horner(b, coeffs, t):
    p = _c(b, _f32const(coeffs[0]), F32, t.rank)
    for c in coeffs[1:]:
        p = _fma(b, p, t, _f32const(c))
    return p


def _horner_pieces(b, pieces, last, t):
    """A piecewise polynomial as one Horner evaluation: each element takes the coefficients
    of the first piece whose condition holds (``pieces``: (condition, coefficients)), else
    ``last``'s, by a select per step. Each element goes through exactly the steps of its own
    polynomial's :func:`_horner` (a shorter polynomial starts with zeros, and
    ``f32(0 * t + c)`` is exactly ``c`` for finite t), so the bits are the same as evaluating
    every piece and selecting, with a third of the arithmetic."""
    n = max(len(c) for _, c in pieces + [(None, last)])

    def coeff(i):
        v = None
        for cond, cs in reversed(pieces + [(None, last)]):
            j = i - (n - len(cs))
            c = _c(b, _f32const(cs[j]) if j >= 0 else 0.0, F32, t.rank)
            v = c if v is None else _e(b, "select", cond, c, v)
        return v
    p = coeff(0)
    for i in range(1, n):
        p = _fma(b, p, t, coeff(i))
    return p


def _log32(b, x):
    """log(x) for float32 x > 0 (normal, finite): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
    log(x) = e ln 2 + log1p(m - 1), Cephes' polynomial. About 1 ulp."""
    r = x.rank
    xb = _e(b, "bitcast", x, dtype=U32)
    e = _e(b, "subtract", b.convert(_e(b, "right_shift", xb, _c(b, 23, U32, r)), I32), _c(b, 127, I32, r))
    m = _e(b, "bitcast", _e(b, "bitwise_or", _e(b, "bitwise_and", xb, _c(b, 0x007FFFFF, U32, r)),
                                    _c(b, 0x3F800000, U32, r)), dtype=F32)
    big = _e(b, "greater", m, _c(b, _f32const(math.sqrt(2.0)), F32, r))
    m = _e(b, "select", big, _e(b, "multiply", m, _c(b, 0.5, F32, r)), m)
    e = _e(b, "select", big, _e(b, "add", e, _c(b, 1, I32, r)), e)
    t = _e(b, "subtract", m, _c(b, 1.0, F32, r))                  # exact
    z = _fma(b, t, t)
    y = _fma(b, _fma(b, _horner(b, _LOG_P, t), t), z)             # t^3 P(t)
    ef = b.convert(e, F32)
    y = _fma(b, ef, _c(b, _LN2_LO, F32, r), y)
    y = _fma(b, z, _c(b, -0.5, F32, r), y)
    return _fma(b, ef, _c(b, _LN2_HI, F32, r), _e(b, "add", t, y))


def _rsqrt32(b, w):
    """1/sqrt(w) for float32 w >= 1: an estimate from the bits and three Newton steps."""
    r = w.rank
    y = _e(b, "bitcast", _e(b, "subtract", _c(b, 0x5F3759DF, U32, r),
                                    _e(b, "right_shift", _e(b, "bitcast", w, dtype=U32),
                                       _c(b, 1, U32, r))), dtype=F32)
    half_w = _e(b, "multiply", w, _c(b, -0.5, F32, r))            # exact
    for _ in range(3):
        y = _fma(b, y, _fma(b, half_w, _fma(b, y, y), 1.5))
    return y


def _ndtri_tail(b, two_s):
    """z >= 0 with P(Z < -z) = s for a standard normal Z, from float64 ``two_s = 2 s`` in
    (0, 1]: z = sqrt(2) erfinv(1 - 2s), where (1 - x)(1 + x) = 2s (2 - 2s) keeps its
    precision however small s is. float32."""
    r = two_s.rank
    q = b.convert(_e(b, "multiply", two_s, _e(b, "subtract", _c(b, 2.0, F64, r), two_s)), F32)
    x = b.convert(_e(b, "subtract", _c(b, 1.0, F64, r), two_s), F32)
    w = _e(b, "negative", _log32(b, q))
    wt = _e(b, "maximum", w, _c(b, 5.0, F32, r))
    y = _rsqrt32(b, wt)                   # sqrt(w) - c is w / sqrt(w) - c, one step (see _fma)
    central, tail = _e(b, "less", w, _c(b, 5.0, F32, r)), _e(b, "less", w, _c(b, 16.0, F32, r))
    t = _e(b, "select", central, _e(b, "subtract", w, _c(b, 2.5, F32, r)),
           _e(b, "select", tail, _fma(b, wt, y, -3.0), _fma(b, wt, y, -4.375)))
    p = _horner_pieces(b, [(central, _ERFINV_CENTRAL), (tail, _ERFINV_TAIL)], _ERFINV_FAR, t)
    z = _e(b, "multiply", _e(b, "multiply", _f64(b, p), _f64(b, x)), _c(b, math.sqrt(2.0), F64, r))
    return b.convert(z, F32)


def _ndtri(b, v):
    """The standard normal quantile of float32 v in (0, 1), symmetric: the tail side is
    computed from min(v, 1 - v) (exact for v >= 1/2)."""
    r = v.rank
    upper = _e(b, "greater", v, _c(b, 0.5, F32, r))
    s = _e(b, "select", upper, _e(b, "subtract", _c(b, 1.0, F32, r), v), v)
    z = _ndtri_tail(b, _e(b, "multiply", _f64(b, s), _c(b, 2.0, F64, r)))
    return _e(b, "select", upper, z, _e(b, "negative", z))


def _open_unit(b, k, shape):
    """float32 in (0, 1) from all 32 bits, ((bits + 1/2) / 2**32) rounded once, below 1."""
    r = len(shape)
    v = _e(b, "multiply", _e(b, "add", b.convert(_bits32(b, k, shape), F64), _c(b, 0.5, F64, r)),
           _c(b, 2.0 ** -32, F64, r))
    return _e(b, "minimum", b.convert(v, F32), _c(b, _f32const(1 - 2 ** -24), F32, r))


def _finish(b, x, d):
    """A float32 result in dtype d. float16 results below its normal range become 0 (kept
    signed): IREE flushes them and NumPy keeps them, so every backend flushes them alike."""
    if d == F32:
        return x
    tiny = _c(b, float(np.finfo(np.float16).tiny), F32, x.rank)
    x = _e(b, "select", _e(b, "less", _e(b, "abs", x), tiny), _e(b, "multiply", x, _c(b, 0.0, F32, x.rank)), x)
    return b.convert(x, d)


# --- distributions -----------------------------------------------------------------------------------

def normal(key, shape=(), dtype=np.float32):
    """Standard normal floats (float16/32). Each element is the normal quantile of a
    32-bit uniform (sign from the top bit, the tail probability from the other 31), so
    the draws are symmetric and reach about 6.2 standard deviations."""
    shape = _static_shape(shape, "normal")
    d = _float_dtype(dtype, "normal")

    def impl(b, k):
        r = len(shape)
        u = _bits32(b, k, shape)
        mag = _e(b, "bitwise_or", _e(b, "left_shift", u, _c(b, 1, U32, r)), _c(b, 1, U32, r))   # 2 k + 1
        two_s = _e(b, "multiply", b.convert(mag, F64), _c(b, 2.0 ** -32, F64, r))   # in (0, 1), exact
        z = _ndtri_tail(b, two_s)
        neg = _e(b, "not_equal", _e(b, "right_shift", u, _c(b, 31, U32, r)), _c(b, 0, U32, r))
        return _finish(b, _e(b, "select", neg, _e(b, "negative", z), z), d)
    return _run("normal", impl, key)


def exponential(key, shape=(), dtype=np.float32):
    """Exponential floats with rate 1 (float16/32): -log(v) for v uniform on (0, 1)."""
    shape = _static_shape(shape, "exponential")
    d = _float_dtype(dtype, "exponential")

    def impl(b, k):
        return _finish(b, _e(b, "negative", _log32(b, _open_unit(b, k, shape))), d)
    return _run("exponential", impl, key)


def gumbel(key, shape=(), dtype=np.float32):
    """Standard Gumbel floats (float16/32): -log(-log(v)) for v uniform on (0, 1)."""
    shape = _static_shape(shape, "gumbel")
    d = _float_dtype(dtype, "gumbel")

    def impl(b, k):
        return _finish(b, _gumbel32(b, k, shape), d)
    return _run("gumbel", impl, key)


def _gumbel32(b, k, shape):
    return _e(b, "negative", _log32(b, _e(b, "negative", _log32(b, _open_unit(b, k, shape)))))


def bernoulli(key, p=0.5, shape=None):
    """Booleans that are true with probability `p` (a number or an array, traced too;
    `shape` defaults to p's): ``bits < p * 2**32``, exact for every p."""
    pv = _param(p, "bernoulli", "p")
    pshape = () if isinstance(pv, float) else tuple(pv.shape)
    shape = pshape if shape is None else _static_shape(shape, "bernoulli")
    if not isinstance(pv, float) and not dt.is_float(np.dtype(pv.dtype)):
        raise _err(DTypeError, f"vmapc.random.bernoulli: p must be a float, got dtype {np.dtype(pv.dtype)}")

    def impl(b, k, *vs):
        thr = _broadcast_param(b, vs[0] if vs else pv, F64, shape, "bernoulli", "p")
        thr = _e(b, "multiply", thr, _c(b, 2.0 ** 32, F64, len(shape)))
        return _e(b, "less", b.convert(_bits32(b, k, shape), F64), thr)
    return _run("bernoulli", impl, key, [] if isinstance(pv, float) else [pv])


def truncated_normal(key, lower, upper, shape=None, dtype=np.float32):
    """Standard normal floats conditioned on ``lower < x < upper`` (float16/32), by the
    inverse CDF on the tail nearer zero, so narrow and far intervals keep their resolution.
    `lower` and `upper` are numbers or NumPy arrays broadcasting to `shape` (default: their
    broadcast shape), known when tracing. Probabilities below Phi(-12) (about 2e-33, near
    the smallest normal float32) are not resolved: bounds beyond 12 standard deviations
    act as 12."""
    d = _float_dtype(dtype, "truncated_normal")
    for name, x in (("lower", lower), ("upper", upper)):
        if isinstance(x, Tracer):
            raise _err(UnsupportedError, f"vmapc.random.truncated_normal: {name} must be known when tracing (a "
                                         "number or a NumPy array), got a traced value")
    lo = np.asarray(lower, np.float64)
    hi = np.asarray(upper, np.float64)
    bshape = np.broadcast_shapes(lo.shape, hi.shape)
    shape = bshape if shape is None else _static_shape(shape, "truncated_normal")
    try:
        fits = np.broadcast_shapes(bshape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise _err(ShapeError, f"vmapc.random.truncated_normal: bounds of shape {bshape} do not broadcast to "
                               f"the shape {shape} of the draw")
    # flip each interval to the side where its CDF values are small, then sample by inverse CDF
    flip = (lo + hi) > 0
    a, c = np.where(flip, -hi, lo), np.where(flip, -lo, hi)
    cdf = np.vectorize(lambda z: 0.5 * math.erfc(-min(max(z, -12.0), 12.0) / math.sqrt(2.0)), otypes=[np.float64])
    pa, pc = cdf(a), cdf(c)
    lo_clip = np.nextafter(lo.astype(np.float32), np.float32(np.inf))
    hi_clip = np.nextafter(hi.astype(np.float32), np.float32(-np.inf))
    consts = [np.broadcast_to(x, bshape) for x in (pa.astype(np.float32), (pc - pa).astype(np.float32),
                                                    np.where(flip, -1.0, 1.0).astype(np.float32), lo_clip, hi_clip)]

    def impl(b, k):
        r = len(shape)
        cs = [b.reshape(b.constant(np.ascontiguousarray(x)), (1,) * (r - x.ndim) + x.shape) for x in consts]
        pa_v, span, sign, lo_v, hi_v = cs
        v = _fma(b, _unit_f32(b, k, shape), span, pa_v)
        v = _e(b, "maximum", v, _c(b, float(np.finfo(np.float32).tiny), F32, r))
        z = _e(b, "multiply", _ndtri(b, v), sign)
        z = _e(b, "minimum", _e(b, "maximum", z, lo_v), hi_v)
        return _finish(b, z, d)
    return _run("truncated_normal", impl, key)


def categorical(key, logits, axis=-1, shape=None):
    """Indices drawn with probabilities softmax(logits) along `axis` (int32): the argmax
    of logits plus Gumbel noise. `shape` (default: logits' shape without `axis`) may add
    leading dims."""
    if isinstance(logits, (int, float)) or getattr(logits, "dtype", None) is None:
        raise _err(DTypeError, "vmapc.random.categorical: logits must be an array")
    lshape = tuple(logits.shape)
    if not lshape:
        raise _err(ShapeError, "vmapc.random.categorical: logits must have at least one dimension")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -len(lshape) <= axis < len(lshape):
        raise _err(ShapeError, f"vmapc.random.categorical: axis {axis!r} is out of range for logits of shape {lshape}")
    axis = int(axis) % len(lshape)
    batch = lshape[:axis] + lshape[axis + 1:]
    shape = batch if shape is None else _static_shape(shape, "categorical")
    if len(shape) < len(batch) or shape[len(shape) - len(batch):] != batch:
        raise _err(ShapeError, f"vmapc.random.categorical: shape {shape} must end with the logits' shape without "
                               f"the axis, {batch}")
    prefix = shape[:len(shape) - len(batch)]
    full = prefix + lshape
    ax = len(prefix) + axis

    def impl(b, k, lg):
        ld = lg.dtype if dt.is_float(lg.dtype) else F32
        g = b.convert(_gumbel32(b, k, full), ld if ld == F64 else F32)
        lg = b.convert(lg, F64 if ld == F64 else F32)
        lg = b.reshape(lg, (1,) * len(prefix) + lshape)
        return b.convert(_e(b, "argmax", _e(b, "add", g, lg), axis=ax), I32)
    return _run("categorical", impl, key, [logits])


def randint(key, shape, minval, maxval, dtype=np.int32):
    """Integers on ``[minval, maxval)`` of an integer dtype. JAX's method and bits: two draws
    combined modulo the span (8- and 16-bit dtypes are drawn as int32 and converted), so
    the bias is at most span / 2**32 (none for powers of 2); ``maxval <= minval`` gives
    ``minval``. `minval`/`maxval` are ints or integer arrays (traced too)."""
    shape = _static_shape(shape, "randint")
    try:
        d = dt.canonical(dtype, "vmapc.random.randint dtype")
    except VmapcError as err:
        raise err.with_loc(user_loc())
    if d not in dt.INTS:
        raise _err(DTypeError, f"vmapc.random.randint: dtype {d} is not an integer dtype")
    bounds = []
    for name, x in (("minval", minval), ("maxval", maxval)):
        if isinstance(x, bool) or (not isinstance(x, (int, np.integer)) and getattr(x, "dtype", None) is None):
            raise _err(DTypeError, f"vmapc.random.randint: {name} must be an integer or an integer array")
        if not isinstance(x, (int, np.integer)) and np.dtype(x.dtype) not in dt.INTS:
            raise _err(DTypeError, f"vmapc.random.randint: {name} must be an integer, got dtype {np.dtype(x.dtype)}")
        bounds.append(int(x) if isinstance(x, (int, np.integer)) else x)
    arrays = [x for x in bounds if not isinstance(x, int)]
    info = np.iinfo(d)
    sd = I32 if dt.bits(d) < 32 else d      # the dtype drawn in

    def impl(b, k, *vs):
        r = len(shape)
        it = iter(vs)
        vals = [x if isinstance(x, int) else _broadcast_param(b, next(it), None, shape, "randint", name)
                for x, name in zip(bounds, ("minval", "maxval"))]
        if sd != d:      # as JAX: the bounds as int32, clipped to d's range (maxval to its max + 1)
            los, his = (info.min, info.min), (info.max, info.max + 1)
            vals = [min(max(v, lo), hi) if isinstance(v, int) else
                    _e(b, "minimum", _e(b, "maximum", b.convert(v, I32), _c(b, lo, I32, r)), _c(b, hi, I32, r))
                    for v, lo, hi in zip(vals, los, his)]
        return b.convert(_randint(b, k, shape, vals[0], vals[1], sd), d)
    return _run("randint", impl, key, arrays)


def _randint(b, k, shape, minval, maxval, d):
    """JAX's _randint for a 32- or 64-bit dtype d; bounds are Python ints or vars of rank
    len(shape) (any integer dtype)."""
    r = len(shape)
    info = np.iinfo(d)
    nbits = dt.bits(d)
    ud = {32: U32, 64: U64}[nbits]

    def clip(x):     # (x converted to d, clipped to its range; whether x is above d's max)
        if isinstance(x, int):
            return _c(b, min(max(x, info.min), info.max), d, r), _c(b, x > info.max, dt.BOOL, r)
        if x.dtype == d:
            return x, _c(b, False, dt.BOOL, r)
        xi = np.iinfo(x.dtype)
        wide = U64 if x.dtype == U64 else dt.INT64
        xw = b.convert(x, wide)
        lo, hi = max(info.min, xi.min), min(info.max, xi.max)
        above = (_e(b, "greater", xw, _c(b, hi, wide, r)) if info.max < xi.max else _c(b, False, dt.BOOL, r))
        xc = _e(b, "minimum", _e(b, "maximum", xw, _c(b, lo, wide, r)), _c(b, hi, wide, r))
        return b.convert(xc, d), above
    lo, _ = clip(minval)
    hi, hi_out = clip(maxval)
    k1, k2 = _split2(b, k)
    higher, lower = _bits(b, k1, shape, ud), _bits(b, k2, shape, ud)
    one = _c(b, 1, ud, r)
    span = b.convert(_e(b, "subtract", hi, lo), ud)
    empty = _e(b, "less_equal", hi, lo)
    span = _e(b, "select", empty, one, span)
    span = _e(b, "select", _e(b, "logical_and", hi_out, _e(b, "logical_not", empty)), _e(b, "add", span, one), span)
    # a span of 2**nbits wraps to 0: every value is possible, and the offset is the low draw
    # (JAX gets this from XLA's x % 0 == x; vmapc's x % 0 is 0, so the case is explicit)
    full = _e(b, "equal", span, _c(b, 0, ud, r))
    span = _e(b, "select", full, one, span)
    mult = _e(b, "remainder", _c(b, 2 ** (nbits // 2), ud, r), span)
    mult = _e(b, "remainder", _e(b, "multiply", mult, mult), span)
    off = _e(b, "add", _e(b, "multiply", _e(b, "remainder", higher, span), mult), _e(b, "remainder", lower, span))
    off = _e(b, "select", full, lower, _e(b, "remainder", off, span))
    return _e(b, "add", lo, b.convert(off, d))


def _split2(b, k):
    """split(k, 2) as two key vars."""
    y0, y1 = _words(b, k, (2,))
    keys = _stack_key(b, y0, y1)
    first = b.reshape(_e(b, "slice", keys, start=(0, 0), limit=(1, 2), step=(1, 1)), (2,))
    second = b.reshape(_e(b, "slice", keys, start=(1, 0), limit=(2, 2), step=(1, 1)), (2,))
    return first, second


def permutation(key, x, axis=0, independent=False):
    """A random permutation: of ``arange(x)`` for an int `x` (int32), or of array `x` along
    `axis` (every slice alike, or each its own with ``independent=True``). Each element
    gets a 64-bit random sort key and its rank among them is its place, so the work grows
    as the square of the axis length: fine up to a few thousand."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        n = int(x)
        if n < 0:
            raise _err(ShapeError, f"vmapc.random.permutation: n must be non-negative, got {n}")
        _check_permutation_size(n)

        def impl_n(b, k):
            return b.convert(_ranks(b, k, (n,), 0), I32)
        return _run("permutation", impl_n, key)
    if getattr(x, "shape", None) is None or not x.shape:
        raise _err(ShapeError, "vmapc.random.permutation: x must be an int or an array with at least one dimension")
    xshape = tuple(x.shape)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -len(xshape) <= axis < len(xshape):
        raise _err(ShapeError, f"vmapc.random.permutation: axis {axis!r} is out of range for shape {xshape}")
    axis = int(axis) % len(xshape)
    n = xshape[axis]
    _check_permutation_size(n)

    def impl(b, k, xv):
        if not independent:
            return _e(b, "take", xv, _ranks(b, k, (n,), 0), axis=axis, batch_dims=0)
        return _e(b, "take_along_axis", xv, _ranks(b, k, xshape, axis), axis=axis)
    return _run("permutation", impl, key, [x])


MAX_PERMUTATION = 2 ** 16


def _check_permutation_size(n):
    if n > MAX_PERMUTATION:
        raise _err(ShapeError, f"vmapc.random.permutation: {n} elements; permutations are ranked by comparing "
                               f"every pair, so at most {MAX_PERMUTATION} elements")


def shuffle(key, x, axis=0):
    """``permutation(key, x, axis)`` of an array."""
    return permutation(key, x, axis)


def _ranks(b, k, shape, axis):
    """For random 64-bit sort keys of `shape`, each one's rank along `axis` (ties broken by
    position): int64 indices forming a uniformly random permutation of each slice."""
    y0, y1 = _words(b, k, shape)
    n = shape[axis]
    r = len(shape)
    # compare element i (at `axis`) with every j (a new last axis)
    def along_i(v):
        return b.reshape(v, shape + (1,))

    def along_j(v):
        t = b.transpose(v, [i for i in range(r) if i != axis] + [axis])
        s = tuple(d for i, d in enumerate(shape) if i != axis)
        return b.reshape(t, s[:axis] + (1,) + s[axis:] + (n,))
    pos = _e(b, "iota", shape=(n,), dimension=0, dtype=I32)
    pos_i = b.reshape(pos, tuple(n if i == axis else 1 for i in range(r)) + (1,))
    pos_j = b.reshape(pos, (1,) * r + (n,))
    a0, a1, c0, c1 = along_i(y0), along_i(y1), along_j(y0), along_j(y1)
    eq0 = _e(b, "equal", c0, a0)
    before = _e(b, "logical_or", _e(b, "less", c0, a0), _e(b, "logical_and", eq0, _e(b, "less", c1, a1)))
    tie = _e(b, "logical_and", _e(b, "logical_and", eq0, _e(b, "equal", c1, a1)), _e(b, "less", pos_j, pos_i))
    counts = b.convert(_e(b, "logical_or", before, tie), I32)
    return b.convert(_e(b, "reduce_sum", counts, axes=(r,)), dt.INT64)



# --- NumPy's and Python's random numbers inside a traced function -------------------------------------
#
# np.random.normal(...) inside a traced function runs once, while tracing: its numbers become
# constants of the compiled program, the same for every call and every example. While any
# thread traces, the global-state functions of numpy.random (and np.random.default_rng) and of
# Python's random module are replaced by guards that raise in a tracing thread and call through
# elsewhere; a Generator, RandomState or random.Random that the traced function names directly
# (a global, a closure, a default argument) is refused before tracing. (A generator reached only
# through helper functions is not seen: NumPy's Generator methods cannot be intercepted.)

import functools as _functools
import inspect as _inspect
import random as _pyrandom
import threading as _threading

_GUARD_LOCK = _threading.Lock()
_GUARD_DEPTH = 0
_SAVED: list = []
_RNG_TYPES = (np.random.Generator, np.random.RandomState, _pyrandom.Random)


def _foreign_message(what):
    return (f"{what} inside a traced function draws once, while tracing: its numbers would be constants of "
            "the compiled program, the same for every call and every example. Use vmapc.random with a key "
            "argument (vmapc.random.normal(key, shape); keys = vmapc.random.split(key, n) for a batch), or "
            "draw constants outside the function and pass them in")


def _guard(orig, label):
    @_functools.wraps(orig)
    def guarded(*args, **kwargs):
        if current() is not None:
            raise UnsupportedError(_foreign_message(label), user_loc())
        return orig(*args, **kwargs)
    return guarded


@_functools.lru_cache(maxsize=1)
def _guard_targets():
    out = []
    for name in dir(np.random):
        f = getattr(np.random, name)
        if isinstance(getattr(f, "__self__", None), np.random.RandomState) or name == "default_rng":
            out.append((np.random, name, f"numpy.random.{name}"))
    for name in dir(_pyrandom):
        f = getattr(_pyrandom, name)
        if not name.startswith("_") and isinstance(getattr(f, "__self__", None), _pyrandom.Random):
            out.append((_pyrandom, name, f"random.{name}"))
    return tuple(out)


def guard_enter():
    """Called when a trace starts (any thread): install the guards if none are."""
    global _GUARD_DEPTH
    with _GUARD_LOCK:
        _GUARD_DEPTH += 1
        if _GUARD_DEPTH == 1:
            for mod, name, label in _guard_targets():
                orig = getattr(mod, name)
                _SAVED.append((mod, name, orig))
                setattr(mod, name, _guard(orig, label))


def guard_exit():
    """Called when a trace ends: remove the guards after the last one."""
    global _GUARD_DEPTH
    with _GUARD_LOCK:
        _GUARD_DEPTH -= 1
        if _GUARD_DEPTH == 0:
            while _SAVED:
                mod, name, orig = _SAVED.pop()
                setattr(mod, name, orig)


def check_traced_function(fn):
    """Raise UnsupportedError if `fn` names a NumPy Generator/RandomState or a random.Random
    directly (a global, a closure variable or a default argument)."""
    fn = _inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    found = []
    glb = getattr(fn, "__globals__", {})
    codes = [code]
    while codes:
        c = codes.pop()
        codes.extend(k for k in c.co_consts if isinstance(k, type(code)))
        found += [(n, glb[n]) for n in c.co_names if isinstance(glb.get(n), _RNG_TYPES)]
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            if isinstance(cell.cell_contents, _RNG_TYPES):
                found.append((name, cell.cell_contents))
        except ValueError:       # an empty cell
            pass
    for v in (getattr(fn, "__defaults__", None) or ()):
        if isinstance(v, _RNG_TYPES):
            found.append(("a default argument", v))
    if found:
        name, v = found[0]
        from .tracing import function_loc
        kind = f"numpy.random.{type(v).__name__}" if isinstance(v, _RNG_TYPES[:2]) else "random.Random"
        raise UnsupportedError(_foreign_message(f"the {kind} `{name}`"), function_loc(fn))
