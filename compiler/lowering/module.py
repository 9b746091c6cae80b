"""Functions and modules: lowering a whole :class:`~vmapc.ir.Function` equation by
equation into a ``func.func``, the module around it, verification, and the
:class:`LoweredModule` handed to the compiler driver."""

from __future__ import annotations

import io
import re


from .. import dtypes as dt
from ..errors import LoweringError
from ..ir import Eqn, Function, walk_eqns
from ..shapes import Sym

from iree.compiler import ir
from iree.compiler.dialects import arith, func, tensor

from .base import LoweringContext, _TARGET, empty_rule, index_const, tensor_type


# --- functions and modules -----------------------------------------------------------------------

# Ops that IREE's CPU backend lowers to calls into libm, which its embedded
# (self-contained) executables lack: a module using them is linked against the system's
# libm (see vmapc.driver.Target.libm_flags). sin/cos/tan are computed in float64 for
# every dtype; the others need libm for float64 only.
LIBM_OPS = {"sin", "cos", "tan", "arctan", "arctan2"}   # IREE's float32 atan/atan2 are 40 ulps off
LIBM_F64_OPS = {"tanh", "arcsin", "arccos", "arctan", "arctan2", "floor_divide", "remainder"}
# complex log and power go through atan2, and complex128 exp, sin and cos through float64
# sin and cos ("undefined symbol: sin" otherwise)
LIBM_COMPLEX_OPS = {"exp", "log", "sin", "cos", "sqrt", "power"}


CONTROL_FLOW_OPS = {"cond", "while_loop", "scan"}


def needs_libm(eqn) -> bool:
    if eqn.op in LIBM_OPS:
        return True
    if eqn.op in LIBM_COMPLEX_OPS and dt.is_complex(eqn.inputs[0].dtype):
        return True
    return eqn.op in LIBM_F64_OPS and eqn.inputs[0].dtype == dt.FLOAT64


class LoweredModule:
    """The result of :func:`lower`: the MLIR module (owned by `context`), its text and
    bytecode, and `equations`, mapping each location name ``"fn#k:op"`` to
    ``(function name, equation index, op, Loc)`` so compiler diagnostics can name
    the user's line. `needs_libm` says whether some op needs the C math library;
    `target` is the :class:`~vmapc.targets.Target` it was lowered for."""

    def __init__(self, context, module, equations, functions, target=None):
        self.context = context
        self.module = module
        self.equations = equations
        self.functions = {f.name: f for f in functions}
        self.target = target
        self.needs_libm = ((target is None or bool(target.libm_flags))
                           and any(needs_libm(e) for f in functions for e in walk_eqns(f)))
        # branches and loops (scf.if/for/while) get the target's control_flow_flags
        self.has_control_flow = any(e.op in CONTROL_FLOW_OPS for f in functions for e in walk_eqns(f))

    @property
    def text(self) -> str:
        with self.context:
            return str(self.module)

    @property
    def bytecode(self) -> bytes:
        buf = io.BytesIO()
        with self.context:
            self.module.operation.write_bytecode(buf)
        return buf.getvalue()

    @property
    def compiler_input(self) -> bytes:
        """What the driver hands to ``iree-compile``: the text form with locations.
        (IREE 3.13's ``iree-compile`` crashes in PropagateLinalgTranspose on some
        modules read from bytecode, e.g. ``x @ x.T``, that it compiles from text.)"""
        with self.context:
            return self.module.operation.get_asm(enable_debug_info=True).encode()

    def find(self, name: str):
        """(function, index, op, Loc) for a location name, or None."""
        return self.equations.get(name)


def _location(name: str, eqn: Eqn) -> ir.Location:
    child = (ir.Location.file(eqn.loc.file, eqn.loc.line, 0) if eqn.loc is not None
             else ir.Location.unknown())
    return ir.Location.name(name, childLoc=child)


def lower_eqns(lctx: LoweringContext, env: dict):
    """Lower the equations of ``lctx.fn`` at the current insertion point; `env` maps
    ``id(var)`` to MLIR values and must hold the function's inputs. Fills in the rest."""
    fn = lctx.fn
    for k, eqn in enumerate(fn.eqns):
        name = f"{lctx.path}#{k}:{eqn.op}"
        lctx.equations[name] = (lctx.path, k, eqn.op, eqn.loc)
        rule = _table().get(eqn.op)
        if rule is None:
            raise LoweringError(f"{lctx.path}: no lowering for op {eqn.op!r}", eqn.loc)
        if all(0 in v.shape for v in eqn.outputs):
            rule = empty_rule  # no elements to compute
        try:
            with _location(name, eqn):
                outs = rule(lctx, eqn, [env[id(v)] for v in eqn.inputs])
        except LoweringError as e:
            if e.message.startswith(f"{lctx.path}"):   # from a sub-program: already says where
                raise
            raise LoweringError(f"{lctx.path}: cannot lower {eqn.op}: {e.message}", e.loc or eqn.loc) from None
        except (ValueError, TypeError, KeyError, IndexError, ir.MLIRError) as e:
            raise LoweringError(f"{lctx.path}: cannot lower {eqn.op}: {e}", eqn.loc) from e
        if len(outs) != len(eqn.outputs):
            raise LoweringError(f"{lctx.path}: the lowering of {eqn.op} gave {len(outs)} results, "
                                f"expected {len(eqn.outputs)}", eqn.loc)
        for v, o in zip(eqn.outputs, outs):
            env[id(v)] = o


def _lower_function(fn: Function, equations: dict, output_storage: bool = False):
    """One public func.func. With `output_storage`, each result k gets an extra trailing
    ``!hal.buffer {iree.abi.output = k}`` argument: the caller passes a host-visible
    buffer and IREE writes the result into it (how results are read back on Vulkan,
    where IREE 3.13's own readback fails; see vmapc.runtime.module)."""
    in_tys = [tensor_type(v.type) for v in fn.inputs]
    out_tys = [tensor_type(v.type) for v in fn.outputs]
    storage = [ir.Type.parse("!hal.buffer")] * len(fn.outputs) if output_storage else []
    f = func.FuncOp(fn.name, ir.FunctionType.get(in_tys + storage, out_tys))
    if storage:
        index = ir.IndexType.get()
        empty = ir.DictAttr.get({})
        f.arg_attrs = ir.ArrayAttr.get(
            [empty] * len(in_tys)
            + [ir.DictAttr.get({"iree.abi.output": ir.IntegerAttr.get(index, k)}) for k in range(len(storage))])
    block = f.add_entry_block()
    lctx = LoweringContext(fn, equations)
    env = {}
    with ir.InsertionPoint(block):
        # the value of each symbolic size, read once from an argument that has it
        for v, arg in zip(fn.inputs, block.arguments):
            env[id(v)] = arg
            for pos, d in enumerate(v.shape):
                if isinstance(d, Sym) and len(d.names) == 1 and d.names[0] not in lctx.syms:
                    size = tensor.dim(arg, index_const(pos))
                    if d.coef != 1:
                        size = arith.divui(size, index_const(d.coef))
                    lctx.syms[d.names[0]] = size
        lower_eqns(lctx, env)
        func.ReturnOp([env[id(v)] for v in fn.outputs])
    return f


def lower(functions, target=None) -> LoweredModule:
    """Lower Functions (with distinct names) into one verified MLIR module, one public
    ``func.func`` per Function, for `target` (a :class:`~vmapc.targets.Target` or its
    name; default ``"cpu"``).

    The target is checked first (:meth:`~vmapc.targets.Target.check` raises
    :class:`~vmapc.errors.TargetError` naming a dtype or op it cannot run and the
    user's line), then decides: whether float16/32 sin/cos/tan/power use float64 libm
    (CPU only), how float64 round is expanded (Vulkan), whether results go into
    caller-provided buffers (Vulkan) and which attributes the module carries (e.g. the
    explicit ``hal.device.targets`` of CUDA sm_90a)."""
    from ..targets import get_target
    if isinstance(functions, Function):
        functions = [functions]
    functions = list(functions)
    t = get_target(target if target is not None else "cpu")
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise LoweringError(f"function names must be unique, got {names}")
    t.check(functions)
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True   # IREE's util.optimization_barrier (base.py)
    equations: dict = {}
    token = _TARGET.set(t)
    try:
        with ctx, ir.Location.unknown():
            module = ir.Module.create()
            for name, text in t.module_attrs:
                module.operation.attributes[name] = ir.Attribute.parse(text)
            with ir.InsertionPoint(module.body):
                for fn in functions:
                    _lower_function(fn, equations, output_storage=t.output_storage)
            try:
                ok = module.operation.verify()
            except ir.MLIRError as e:
                raise _verify_error(e, equations) from None
            if not ok:
                raise LoweringError("the generated MLIR module does not verify")
    finally:
        _TARGET.reset(token)
    return LoweredModule(ctx, module, equations, functions, target=t)


def _verify_error(e, equations) -> LoweringError:
    diags = list(getattr(e, "error_diagnostics", []) or [])
    for d in diags:
        m = re.search(r'"([^"]+#\d+:\w+)"', str(d.location))
        if m and m.group(1) in equations:
            fn, k, op, loc = equations[m.group(1)]
            return LoweringError(f"{fn}: the MLIR generated for {op} (equation {k}) does not "
                                 f"verify: {d.message}", loc)
    return LoweringError(f"the generated MLIR module does not verify: {e}")


def _table():
    from . import LOWERINGS
    return LOWERINGS
