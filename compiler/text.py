"""The IR's text form: a printer and a parser that reads it back.

The form follows JAX's jaxpr::

    mlp = { lambda x:f32[784] w:f32[784,10] .
        a:f32[10] = dot_general[contract=((0,), (0,)), batch=((), ())] x w
        b:f32[10] = tanh a
      in (b) }

* The first line lists the inputs with their types; ``name =`` in front is printed
  when the function is not called ``main``.
* Each following line is one equation: results with their types, ``=``, the op,
  its attributes in brackets (Python-like literals: ints, floats including
  ``inf``/``nan``, ``True``/``False``/``None``, tuples, dtype names such as ``f32``,
  symbolic dims such as ``8*B``), then the operand names.
* A constant's ``value`` is a nested list, or ``b64"..."`` (raw little-endian
  bytes) when it has more than 32 elements. A complex element is the pair
  ``(real, imag)``: ``c64[2]`` ``[(1.0, 2.0), (0.0, -1.0)]``.
* In a batched program a value's batch dim follows its type after ``@``.
* With ``locations=True`` each equation ends with ``loc("file":line)``, the user's
  line that created it; ``.vir`` files are written this way.
* ``in (...)`` lists the outputs.
* ``#`` starts a comment that runs to the end of the line.

``parse`` checks each equation as it reads it (known op, its attributes, operand and
result types), so every error names the line and column of the problem.

``parse(print_function(f)) == f`` for every program (equality ignores names and
locations, see :meth:`vmapc.ir.Function.__eq__`).
"""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np

from . import dtypes as dt
from .errors import IRParseError, Loc, VmapcError
from .ir import Eqn, Function, TensorType, Var
from .ops import OPS, check_size, infer_types
from .shapes import Sym, parse_dim

INLINE_CONSTANT_LIMIT = 32

# --- printing ----------------------------------------------------------------------------------


def _names():
    """a, b, ..., z, ba, bb, ... (jaxpr's scheme: no name is a prefix problem)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        k, s = n, ""
        while True:
            s = letters[k % 26] + s
            k //= 26
            if k == 0:
                break
        if len(s) > 1 and s[0] == "a":
            n += 1
            continue
        yield s
        n += 1


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"lambda", "in", "loc", "True", "False", "None", "inf", "nan"} | set(dt.BY_SHORT_NAME)


def fmt_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def fmt_attr(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt_float(float(v))
    if isinstance(v, Sym):
        return str(v)
    if isinstance(v, np.dtype):
        return dt.short_name(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        if len(v) == 1:
            return f"({fmt_attr(v[0])},)"
        return "(" + ", ".join(fmt_attr(x) for x in v) + ")"
    if isinstance(v, np.ndarray):
        return fmt_array(v)
    if isinstance(v, Function):     # a sub-program, on one line (CSE keys, error messages)
        return " ".join(line.strip() for line in v.canonical().splitlines())
    raise TypeError(f"cannot print attribute value {v!r}")


def fmt_array(a: np.ndarray) -> str:
    if a.size > INLINE_CONSTANT_LIMIT:
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        return 'b64"' + base64.b64encode(data).decode() + '"'

    def rec(x):
        if x.ndim == 0:
            v = x.item()
            if isinstance(v, bool):
                return str(v)
            if isinstance(v, float):
                return fmt_float(v)
            if isinstance(v, complex):
                return f"({fmt_float(v.real)}, {fmt_float(v.imag)})"
            return str(v)
        return "[" + ", ".join(rec(y) for y in x) + "]"
    return rec(a)


def print_function(fn: Function, locations: bool = False, canonical: bool = False) -> str:
    return _Printer(locations, canonical).function(fn, 0)


class _Printer:
    """Prints a function and the sub-programs its equations carry as attributes. Names are
    unique across the whole text (a sub-program is closed: it sees only its own inputs, but
    distinct names keep the nesting easy to read)."""

    def __init__(self, locations, canonical):
        self.locations, self.canonical = locations, canonical
        self.used: set = set()
        self.gen = _names()

    def function(self, fn: Function, indent: int) -> str:
        names: dict = {}
        if not self.canonical and fn.arg_names:
            for v, n in zip(fn.inputs, fn.arg_names):
                if n and _IDENT.match(n) and n not in self.used and n not in _RESERVED:
                    names[v] = n
                    self.used.add(n)

        def name(v):
            if v not in names:
                n = next(self.gen)
                while n in self.used or n in _RESERVED:
                    n = next(self.gen)
                names[v] = n
                self.used.add(n)
            return names[v]

        bdims = fn.bdims

        def decl(v):
            s = f"{name(v)}:{v.type}"
            if bdims is not None and v in bdims and bdims[v] is not None:
                s += f"@{bdims[v]}"
            return s

        pad = " " * indent
        head = "" if fn.name == "main" or self.canonical or indent else f"{fn.name} = "
        lines = [head + "{ lambda " + " ".join(decl(v) for v in fn.inputs) + (" ." if fn.inputs else ".")]
        for e in fn.eqns:
            outs = " ".join(decl(v) for v in e.outputs)
            attrs = ""
            if e.attrs:
                order = OPS[e.op].attrs if e.op in OPS else sorted(e.attrs)
                attrs = "[" + ", ".join(f"{k}={self.attr(e.attrs[k], indent + 4)}" for k in order
                                        if k in e.attrs) + "]"
            ins = " ".join(name(v) for v in e.inputs)
            line = f"{pad}    {outs} = {e.op}{attrs}" + (f" {ins}" if ins else "")
            if self.locations and e.loc is not None:
                line += f"  loc({json.dumps(e.loc.file)}:{e.loc.line})"
            lines.append(line)
        lines.append(pad + "  in (" + ", ".join(name(v) for v in fn.outputs) + ") }")
        return "\n".join(lines)

    def attr(self, v, indent: int) -> str:
        """An attribute value; sub-programs print as indented blocks."""
        if isinstance(v, Function):
            return self.function(v, indent)
        if isinstance(v, tuple) and any(_has_function(x) for x in v):
            inner = " " * (indent + 4)
            items = [inner + self.attr(x, indent + 4) + "," for x in v]
            return "(\n" + "\n".join(items) + "\n" + " " * (indent + 2) + ")"
        return fmt_attr(v)


def _has_function(v) -> bool:
    return isinstance(v, Function) or isinstance(v, tuple) and any(_has_function(x) for x in v)


# --- parsing -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t]+)
  | (?P<b64>b64"[^"]*")
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+)(?![A-Za-z_]))
  | (?P<neginf>-inf\b)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}()\[\],=:.@*])
  | (?P<comment>\#.*$)
""", re.VERBOSE)

# Deeper nesting than this is refused (Python's own recursion would fail first).
MAX_NESTING = 64
# Longer numbers than this are refused (Python refuses to convert ints of 4300 digits, and
# no size, index or line number of a program needs more).
MAX_DIGITS = 40


class _Tokens:
    """The tokens of the whole text, each with its line and column; errors quote the line."""

    def __init__(self, text: str):
        self.lines = text.splitlines() or [""]
        self.toks = []          # (kind, text, line index, column)
        for li, line in enumerate(self.lines):
            pos = 0
            while pos < len(line):
                m = _TOKEN.match(line, pos)
                if not m:
                    self.fail(f"unexpected character {line[pos]!r}", (li, pos))
                if m.lastgroup not in ("ws", "comment"):
                    self.toks.append((m.lastgroup, m.group(), li, pos))
                pos = m.end()
        if self.toks:   # the end of the text: just past the last token's line
            li = self.toks[-1][2]
        else:
            li = max(len(self.lines) - 1, 0)
        self.end = (None, None, li, len(self.lines[li]) if self.lines else 0)
        self.i = 0
        self.depth = 0

    def fail(self, msg, at=None):
        if at is None:
            t = self.peek()
            at = (t[2], t[3])
        li, col = at
        raise IRParseError(f"line {li + 1}, column {col + 1}: {msg}\n    {self.lines[li].strip()}")

    def here(self):
        t = self.peek()
        return (t[2], t[3])

    def prev(self):
        """Where the token just consumed is (for errors found after reading it)."""
        t = self.toks[self.i - 1]
        return (t[2], t[3])

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else self.end

    def next(self):
        t = self.peek()
        if t[0] is None:
            self.fail("unexpected end of the text")
        self.i += 1
        return t

    def expect(self, s):
        text = self.peek()[1]
        if text != s:
            self.fail(f"expected {s!r}, found {text!r}" if text is not None else f"expected {s!r}")
        self.i += 1

    def at(self, s):
        return self.peek()[1] == s

    def done(self):
        return self.i >= len(self.toks)

    def string(self, text, at=None):
        """A quoted string token's value (JSON escapes; no lone surrogates, which could not
        be printed or written back)."""
        try:
            value = json.loads(text)
            value.encode("utf-8")
        except (ValueError, UnicodeError):
            self.fail("bad string (it must be valid JSON text)", at or self.prev())
        return value

    def name(self):
        kind, text, _, _ = self.peek()
        if kind != "name":
            self.fail(f"expected a name, found {text!r}")
        self.i += 1
        return text

    # value := num | inf | -inf | nan | True | False | None | dtype | dim | tuple | list | b64 | function
    def value(self):
        kind, text, _, _ = self.peek()
        if text == "{":
            return _function(self)
        if text in ("(", "["):
            close = ")" if text == "(" else "]"
            self.i += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                self.fail(f"values nested more than {MAX_NESTING} deep")
            items = []
            while not self.at(close):
                items.append(self.value())
                if not self.at(close):
                    self.expect(",")
            self.expect(close)
            self.depth -= 1
            return tuple(items) if close == ")" else list(items)
        if kind == "b64":
            self.i += 1
            try:
                return _B64(base64.b64decode(text[4:-1], validate=True))
            except ValueError:
                self.fail("bad base64 data in a constant", self.prev())
        if kind == "str":
            self.i += 1
            return self.string(text)
        if kind == "neginf":
            self.i += 1
            return -math.inf
        if kind == "num":
            self.i += 1
            if len(text) > MAX_DIGITS and not any(c in text for c in ".eE"):
                self.fail(f"number with more than {MAX_DIGITS} digits", self.prev())
            if self.at("*"):
                self.i += 1
                sym = self.value()
                if not isinstance(sym, Sym):
                    self.fail("expected a symbol after '*'")
                return sym * int(text)
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            self.i += 1
            if text in ("True", "False"):
                return text == "True"
            if text == "None":
                return None
            if text == "inf":
                return math.inf
            if text == "nan":
                return math.nan
            if text in dt.BY_SHORT_NAME:
                return dt.BY_SHORT_NAME[text]
            names = [text]
            while self.at("*") and self.peek(1)[0] == "name":
                self.i += 1
                names.append(self.name())
            return Sym(names)
        self.fail(f"expected a value, found {text!r}")

    def type_(self):
        dtname = self.name()
        if dtname not in dt.BY_SHORT_NAME:
            self.fail(f"unknown dtype {dtname!r}", self.prev())
        self.expect("[")
        dims = []
        while not self.at("]"):
            kind, text, li, col = self.next()
            parts = [text]
            while self.at("*"):
                self.i += 1
                parts.append(self.next()[1])
            try:
                if any(len(p) > MAX_DIGITS for p in parts if p and p.isdigit()):
                    raise ValueError("too many digits")
                dims.append(parse_dim("*".join(parts)))
            except ValueError:
                self.fail(f"bad dim {'*'.join(parts)!r}", (li, col))
            if not self.at("]"):
                self.expect(",")
        self.expect("]")
        try:
            check_size(dims, dt.BY_SHORT_NAME[dtname], "a value")
        except VmapcError as err:
            self.fail(err.message, self.prev())
        return TensorType(dims, dt.BY_SHORT_NAME[dtname])


class _B64(bytes):
    pass


def _to_array(value, t: TensorType, toks: _Tokens, at) -> np.ndarray:
    if isinstance(value, _B64):
        n = int(np.prod(t.shape, dtype=object))
        if len(value) != n * t.dtype.itemsize:
            toks.fail(f"constant has {len(value) // t.dtype.itemsize} elements, its type {t} needs {n}", at)
        arr = np.frombuffer(value, dtype=t.dtype.newbyteorder("<"))
        return arr.astype(t.dtype).reshape(t.shape)
    if _has_function(value) or isinstance(value, Sym):
        toks.fail("bad constant: expected numbers", at)
    try:
        # a complex element is a pair (real, imag): a last axis of 2 floats
        arr = np.array(value, dtype=dt.component(t.dtype))
    except (ValueError, TypeError, OverflowError) as e:
        toks.fail(f"bad constant: {e}", at)
    if dt.is_complex(t.dtype) and arr.size == 0 and 0 in t.shape:
        arr = arr.astype(t.dtype)
    elif dt.is_complex(t.dtype):
        if arr.ndim == 0 or arr.shape[-1] != 2:
            toks.fail(f"bad constant: a {t.dtype} element is a pair (real, imag)", at)
        pairs, arr = arr, np.empty(arr.shape[:-1], t.dtype)
        arr.real, arr.imag = pairs[..., 0], pairs[..., 1]
    if arr.size == 0 and 0 in t.shape:  # "[]" stands for any empty shape
        arr = arr.reshape(t.shape)
    if arr.shape != t.shape:
        pairs = " (a complex element is one pair (real, imag))" if dt.is_complex(t.dtype) else ""
        toks.fail(f"constant has shape {arr.shape}, its type is {t}{pairs}", at)
    return arr


def _decl(toks: _Tokens, env: dict, bdims: dict):
    n = toks.name()
    if n in env:
        toks.fail(f"{n!r} is defined twice", toks.prev())
    toks.expect(":")
    v = Var(toks.type_())
    if toks.at("@"):
        toks.i += 1
        kind, text, li, col = toks.next()
        if kind != "num" or not text.isdigit():
            toks.fail("expected a batch dim after '@'", (li, col))
        if int(text) >= v.rank:
            toks.fail(f"batch dim {text} is out of range for {v.type}", (li, col))
        bdims[v] = int(text)
    env[n] = v
    return n, v


def _starts_decl(toks: _Tokens) -> bool:
    return toks.peek()[0] == "name" and toks.peek(1)[1] == ":"


def _function(toks: _Tokens, top: bool = False) -> Function:
    """function := [name '='] '{' 'lambda' decl* '.' equation* 'in' '(' names ')' '}'"""
    toks.depth += 1
    if toks.depth > MAX_NESTING:
        toks.fail(f"sub-programs nested more than {MAX_NESTING} deep")
    env: dict = {}
    bdims: dict = {}
    name = "main"
    if top and toks.peek()[0] == "name" and toks.peek(1)[1] == "=":
        name = toks.name()
        toks.expect("=")
    toks.expect("{")
    if toks.name() != "lambda":
        toks.fail("expected 'lambda'", toks.prev())
    head_line = toks.prev()[0]
    inputs, arg_names = [], []
    while not toks.at("."):
        if toks.done() or toks.peek()[2] != head_line:
            toks.fail("expected '.' after the inputs")
        n, v = _decl(toks, env, bdims)
        inputs.append(v)
        arg_names.append(n)
    toks.expect(".")

    eqns = []
    while not toks.at("in"):
        if toks.done():
            toks.fail("IR text is truncated: expected an equation or 'in (...) }'")
        eqns.append(_equation(toks, env, bdims))

    toks.i += 1
    toks.expect("(")
    outputs = []
    while not toks.at(")"):
        n = toks.name()
        if n not in env:
            toks.fail(f"output {n!r} is not defined", toks.prev())
        outputs.append(env[n])
        if not toks.at(")"):
            toks.expect(",")
    toks.expect(")")
    toks.expect("}")
    toks.depth -= 1
    return Function(inputs, eqns, outputs, name=name, arg_names=arg_names, bdims=bdims or None)


def _equation(toks: _Tokens, env: dict, bdims: dict) -> Eqn:
    first = toks.here()
    outs = []
    while not toks.at("="):
        if toks.done():
            toks.fail("expected '=' in an equation")
        outs.append(_decl(toks, env, bdims)[1])
    toks.expect("=")
    op_at = toks.here()
    op = toks.name()
    if op not in OPS:
        toks.fail(f"unknown op {op!r}", op_at)
    attrs, value_at = {}, {}
    if toks.at("["):
        toks.i += 1
        while not toks.at("]"):
            k_at = toks.here()
            k = toks.name()
            if k not in OPS[op].attrs or k in attrs:
                toks.fail(f"{op} has no attribute {k!r}" if k not in OPS[op].attrs else f"{k!r} given twice", k_at)
            toks.expect("=")
            value_at[k] = toks.here()
            attrs[k] = toks.value()
            if _has_list(attrs[k]) and not (op == "constant" and k == "value"):
                toks.fail("a list is only allowed as a constant's value (use a tuple)", value_at[k])
            if not toks.at("]"):
                toks.expect(",")
        toks.expect("]")
    missing = [k for k in OPS[op].attrs if k not in attrs]
    if missing:
        toks.fail(f"{op} needs attribute(s) {', '.join(missing)}", op_at)
    # operands: names on the line where the op and its attributes end
    line = toks.prev()[0]
    ins = []
    loc = None
    while not toks.done() and toks.peek()[2] == line and not toks.at("in") and not _starts_decl(toks):
        if toks.at("loc"):
            toks.i += 1
            toks.expect("(")
            kind, f, li, col = toks.next()
            if kind != "str":
                toks.fail("expected a quoted file name in loc(...)", (li, col))
            file_at = (li, col)
            toks.expect(":")
            kind, lno, li, col = toks.next()
            if kind != "num" or not lno.isdigit() or len(lno) > 10:
                toks.fail("expected a line number in loc(...) (a non-negative int)", (li, col))
            toks.expect(")")
            loc = Loc(toks.string(f, file_at), int(lno))
            if not toks.done() and toks.peek()[2] == line:
                toks.fail("unexpected text after loc(...)")
            break
        n = toks.name()
        if n not in env:
            toks.fail(f"{n!r} is used before it is defined", toks.prev())
        ins.append(env[n])
    if not toks.done() and toks.peek()[2] == line and not toks.at("in"):
        toks.fail("unexpected text after the operands")
    if op == "constant":
        if len(outs) != 1:
            toks.fail("a constant needs one result", op_at)
        attrs["value"] = _to_array(attrs["value"], outs[0].type, toks, value_at["value"])
    try:
        types = infer_types(op, [v.type for v in ins], attrs)
    except VmapcError as err:
        toks.fail(f"{op} does not type-check: {err.message}", op_at)
    except (TypeError, ValueError, OverflowError, UnicodeError, KeyError, IndexError) as err:
        # attribute values of the wrong kind (a string where a dtype goes, ...)
        toks.fail(f"{op} does not type-check: bad attribute value ({type(err).__name__}: {err})", op_at)
    if [v.type for v in outs] != types:
        toks.fail(f"{op} produces {', '.join(map(str, types))}, but the results are declared "
                  f"{', '.join(str(v.type) for v in outs)}", first)
    return Eqn(op, ins, outs, attrs, loc)


def _has_list(v) -> bool:
    return isinstance(v, list) or isinstance(v, tuple) and any(_has_list(x) for x in v)


def parse(text: str) -> Function:
    """Parse the text form back into a :class:`Function`. Raises IRParseError with the
    line and column of the first problem. The result is verified."""
    toks = _Tokens(text)
    if not toks.toks:
        toks.fail("IR text is empty or truncated: expected '{ lambda ...' and 'in (...) }'", (toks.end[2], toks.end[3]))
    fn = _function(toks, top=True)
    if not toks.done():
        toks.fail("unexpected text after '}'")
    return fn.verify()
