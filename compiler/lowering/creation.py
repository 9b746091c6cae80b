"""Lowering of ``iota`` and ``constant``."""

from __future__ import annotations


import numpy as np

from .. import dtypes as dt

from iree.compiler import ir
from iree.compiler.dialects import arith, tensor

from .base import _as_signed_bits, convert, loop_index, make_complex, tensor_type


# --- rules: creation -----------------------------------------------------------------------------

def _iota_rule(lctx, eqn, xs):
    out = eqn.outputs[0].type
    dim = eqn.attrs["dimension"]
    init = lctx.empty(out.shape, out.dtype)

    def body(args):
        i = arith.index_cast(ir.IntegerType.get_signless(64), loop_index(dim))
        return [convert(i, dt.INT64, out.dtype)]
    return lctx.generic([], [], [init], [list(range(out.rank))], out.rank, body)


def _constant_rule(lctx, eqn, xs):
    value, t = eqn.attrs["value"], eqn.outputs[0].type
    if dt.is_complex(value.dtype):
        # two float constants, paired elementwise: SPIR-V cannot lower a complex constant,
        # and a dense complex attribute of a 0-d array came out with shape (1,)
        pt = t.with_dtype(dt.component(value.dtype))
        re, im = (_real_constant(np.ascontiguousarray(p), pt) for p in (value.real, value.imag))
        if value.size == 0:
            return [lctx.empty(t.shape, t.dtype)]
        return [lctx.map_scalars([re, im], [pt, pt], t, make_complex)]
    return [_real_constant(np.ascontiguousarray(value), t)]


def _real_constant(value, t):
    if value.dtype == np.bool_:         # any nonzero byte is True, as in NumPy
        value = np.not_equal(value.view(np.uint8), 0)
    if value.dtype in dt.UNSIGNED:
        value = value.view(np.dtype(f"i{value.dtype.itemsize}"))
    ty = tensor_type(t)
    if value.size == 0:
        return tensor.empty(list(value.shape), ty.element_type)
    flat = value.reshape(-1)
    if (flat == flat[0]).all() or (value.dtype.kind == "f" and np.isnan(flat).all()):
        if not (value.dtype.kind == "f" and np.signbit(flat).any() != np.signbit(flat).all()):
            attr = ir.DenseElementsAttr.get_splat(ty, _scalar_attr(ty.element_type, flat[0]))
            return arith.constant(ty, attr)
    attr = ir.DenseElementsAttr.get(value, signless=True, type=ty.element_type)
    return arith.constant(ty, attr)


def _scalar_attr(ty, v):
    if isinstance(v, np.floating):
        return ir.FloatAttr.get(ty, float(v))
    bits = ir.IntegerType(ty).width
    return ir.IntegerAttr.get(ty, _as_signed_bits(int(v), bits) if bits > 1 else int(v))



RULES = {"iota": _iota_rule, "constant": _constant_rule}
