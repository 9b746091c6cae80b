"""vmapc: a batching compiler for Python (bootstrap init, replaced below)."""
from . import dtypes, errors
from .tracing import trace, ShapeDtype, DTypeSpecMaker, _install_operators
from . import numpy
from .text import parse
from .reference import evaluate as eval
_install_operators()
f32 = DTypeSpecMaker("float32")
