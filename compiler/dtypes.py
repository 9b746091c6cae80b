"""Element types.

vmapc uses NumPy's ``np.dtype`` objects as its element types, restricted to the
fourteen that every stage handles: ``bool``, signed and unsigned integers of 8, 16,
32 and 64 bits, ``float16``/``float32``/``float64`` and ``complex64``/``complex128``.
The IR text writes them with short names (``f32``, ``i64``, ``u8``, ``bool``,
``c64``), and the same short names make shape specs: ``vmapc.f32[8, 4]`` is a
float32 array of shape (8, 4).

Complex numbers are a dtype like the others, with fewer ops: they have no order
(``maximum``, ``less``, ``sort`` and the like refuse them, see ``KINDS``), and the
ops that accept them say so with the kinds ``"number"``, ``"inexact"``, ``"all"``.
A complex value's parts have its *component* dtype (float32 for complex64).

Type promotion is NumPy's own (NumPy 2, NEP 50): the ``vmapc.numpy`` layer asks
``ufunc.resolve_dtypes`` which loop NumPy would run, and converts explicitly, so
the IR never promotes implicitly.
"""

from __future__ import annotations

import numpy as np

from .errors import DTypeError

BOOL = np.dtype(np.bool_)
INT8, INT16, INT32, INT64 = (np.dtype(t) for t in ("int8", "int16", "int32", "int64"))
UINT8, UINT16, UINT32, UINT64 = (np.dtype(t) for t in ("uint8", "uint16", "uint32", "uint64"))
FLOAT16, FLOAT32, FLOAT64 = (np.dtype(t) for t in ("float16", "float32", "float64"))
COMPLEX64, COMPLEX128 = np.dtype(np.complex64), np.dtype(np.complex128)

SHORT_NAMES = {
    BOOL: "bool",
    INT8: "i8", INT16: "i16", INT32: "i32", INT64: "i64",
    UINT8: "u8", UINT16: "u16", UINT32: "u32", UINT64: "u64",
    FLOAT16: "f16", FLOAT32: "f32", FLOAT64: "f64",
    COMPLEX64: "c64", COMPLEX128: "c128",
}
BY_SHORT_NAME = {v: k for k, v in SHORT_NAMES.items()}

ALL = tuple(SHORT_NAMES)
FLOATS = (FLOAT16, FLOAT32, FLOAT64)
COMPLEXES = (COMPLEX64, COMPLEX128)
REALS = tuple(d for d in ALL if d not in COMPLEXES)
SIGNED = (INT8, INT16, INT32, INT64)
UNSIGNED = (UINT8, UINT16, UINT32, UINT64)
INTS = SIGNED + UNSIGNED

# Kinds that op definitions accept, from the narrowest to the widest. "numeric" and
# "any" are real (ordered) dtypes; the kinds that take complex ones name them.
KINDS = {
    "float": FLOATS,
    "part": (FLOAT32, FLOAT64),     # the parts of a complex number (there is no complex32)
    "complex": COMPLEXES,
    "int": INTS,
    "integer_or_bool": INTS + (BOOL,),
    "numeric": INTS + FLOATS,
    "inexact": FLOATS + COMPLEXES,
    "number": INTS + FLOATS + COMPLEXES,
    "any": REALS,
    "all": ALL,
}


def is_float(dt) -> bool:
    return dt in FLOATS


def is_complex(dt) -> bool:
    return dt in COMPLEXES


def component(dt):
    """The dtype of a complex dtype's real and imaginary parts (a real dtype's is itself)."""
    return {COMPLEX64: FLOAT32, COMPLEX128: FLOAT64}.get(np.dtype(dt), np.dtype(dt))


def complex_of(dt):
    """The complex dtype with parts of float dtype `dt` (float32 -> complex64)."""
    return {FLOAT32: COMPLEX64, FLOAT64: COMPLEX128}[np.dtype(dt)]


def is_int(dt) -> bool:
    return dt in INTS


def is_unsigned(dt) -> bool:
    return dt in UNSIGNED


def is_bool(dt) -> bool:
    return dt == BOOL


def short_name(dt) -> str:
    return SHORT_NAMES[np.dtype(dt)]


def canonical(dt, what: str = "dtype") -> np.dtype:
    """Turn anything NumPy accepts as a dtype (or a short name like 'f32') into one
    of vmapc's fourteen, or raise a DTypeError naming `what`."""
    if isinstance(dt, str) and dt in BY_SHORT_NAME:
        return BY_SHORT_NAME[dt]
    try:
        d = np.dtype(dt)
    except TypeError as e:
        raise DTypeError(f"{what}: {dt!r} is not a dtype") from e
    if d not in SHORT_NAMES:
        raise DTypeError(
            f"{what}: dtype {d} is not supported by vmapc "
            f"(supported: {', '.join(str(x) for x in ALL)})")
    return d


def bits(dt) -> int:
    return 1 if dt == BOOL else np.dtype(dt).itemsize * 8
