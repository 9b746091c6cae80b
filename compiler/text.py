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
  bytes) when it has more than 32 elements.
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
from .ops import OPS, infer_types
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
            return str(v)
        return "[" + ", ".join(rec(y) for y in x) + "]"
    return rec(a)


def print_function(fn: Function, locations: bool = False, canonical: bool = False) -> str:
    names: dict = {}
    used = set()
    if not canonical and fn.arg_names:
        for v, n in zip(fn.inputs, fn.arg_names):
            if n and _IDENT.match(n) and n not in used and n not in _RESERVED:
                names[v] = n
                used.add(n)
    gen = _names()

    def name(v):
        if v not in names:
            n = next(gen)
            while n in used or n in _RESERVED:
                n = next(gen)
            names[v] = n
            used.add(n)
        return names[v]

    bdims = fn.bdims

    def decl(v):
        s = f"{name(v)}:{v.type}"
        if bdims is not None and v in bdims and bdims[v] is not None:
            s += f"@{bdims[v]}"
        return s

    head = "" if fn.name == "main" or canonical else f"{fn.name} = "
    lines = [head + "{ lambda " + " ".join(decl(v) for v in fn.inputs) + (" ." if fn.inputs else ".")]
    for e in fn.eqns:
        attrs = ""
        if e.attrs:
            order = OPS[e.op].attrs if e.op in OPS else sorted(e.attrs)
            attrs = "[" + ", ".join(f"{k}={fmt_attr(e.attrs[k])}" for k in order if k in e.attrs) + "]"
        outs = " ".join(decl(v) for v in e.outputs)
        ins = " ".join(name(v) for v in e.inputs)
        line = f"    {outs} = {e.op}{attrs}" + (f" {ins}" if ins else "")
        if locations and e.loc is not None:
            line += f"  loc({json.dumps(e.loc.file)}:{e.loc.line})"
        lines.append(line)
    lines.append("  in (" + ", ".join(name(v) for v in fn.outputs) + ") }")
    return "\n".join(lines)


# --- parsing -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t]+)
  | (?P<b64>b64"[A-Za-z0-9+/=]*")
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+)(?![A-Za-z_]))
  | (?P<neginf>-inf\b)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}()\[\],=:.@*])
  | (?P<comment>\#.*$)
""", re.VERBOSE)


class _Line:
    def __init__(self, text: str, lineno: int):
        self.text, self.lineno = text, lineno
        self.toks = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup not in ("ws", "comment"):
                self.toks.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.i = 0

    def fail(self, msg, col=None):
        if col is None:
            col = self.toks[self.i][2] if self.i < len(self.toks) else len(self.text)
        raise IRParseError(f"line {self.lineno}, column {col + 1}: {msg}\n    {self.text.strip()}")

    def prev(self):
        """The column of the token just consumed (for errors found after reading it)."""
        return self.toks[self.i - 1][2]

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None, len(self.text))

    def next(self):
        t = self.peek()
        if t[0] is None:
            self.fail("unexpected end of line")
        self.i += 1
        return t

    def expect(self, s):
        kind, text, _ = self.peek()
        if text != s:
            self.fail(f"expected {s!r}, found {text!r}" if text is not None else f"expected {s!r}")
        self.i += 1

    def at(self, s):
        return self.peek()[1] == s

    def done(self):
        return self.i >= len(self.toks)

    def name(self):
        kind, text, _ = self.peek()
        if kind != "name":
            self.fail(f"expected a name, found {text!r}")
        self.i += 1
        return text

    # value := num | inf | -inf | nan | True | False | None | dtype | dim | tuple | list | b64
    def value(self):
        kind, text, _ = self.peek()
        if text == "(":
            self.i += 1
            items = []
            while not self.at(")"):
                items.append(self.value())
                if not self.at(")"):
                    self.expect(",")
            self.expect(")")
            return tuple(items)
        if text == "[":
            self.i += 1
            items = []
            while not self.at("]"):
                items.append(self.value())
                if not self.at("]"):
                    self.expect(",")
            self.expect("]")
            return list(items)
        if kind == "b64":
            self.i += 1
            return _B64(base64.b64decode(text[4:-1]))
        if kind == "str":
            self.i += 1
            return json.loads(text)
        if kind == "neginf":
            self.i += 1
            return -math.inf
        if kind == "num":
            self.i += 1
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
            kind, text, dim_col = self.next()
            parts = [text]
            while self.at("*"):
                self.i += 1
                parts.append(self.next()[1])
            try:
                dims.append(parse_dim("*".join(parts)))
            except ValueError:
                self.fail(f"bad dim {'*'.join(parts)!r}", dim_col)
            if not self.at("]"):
                self.expect(",")
        self.expect("]")
        return TensorType(dims, dt.BY_SHORT_NAME[dtname])


class _B64(bytes):
    pass


def _to_array(value, t: TensorType, line: _Line, col: int) -> np.ndarray:
    if isinstance(value, _B64):
        arr = np.frombuffer(value, dtype=t.dtype.newbyteorder("<"))
        if arr.size != int(np.prod(t.shape)):
            line.fail(f"constant has {arr.size} elements, its type {t} needs {int(np.prod(t.shape))}", col)
        return arr.astype(t.dtype).reshape(t.shape)
    try:
        arr = np.array(value, dtype=t.dtype)
    except (ValueError, TypeError, OverflowError) as e:
        line.fail(f"bad constant: {e}", col)
    if arr.size == 0 and 0 in t.shape:  # "[]" stands for any empty shape
        arr = arr.reshape(t.shape)
    if arr.shape != t.shape:
        line.fail(f"constant has shape {arr.shape}, its type is {t}", col)
    return arr


def _decl(line: _Line, env: dict, bdims: dict):
    n = line.name()
    if n in env:
        line.fail(f"{n!r} is defined twice", line.prev())
    line.expect(":")
    v = Var(line.type_())
    if line.at("@"):
        line.i += 1
        kind, text, col = line.next()
        if kind != "num" or not text.isdigit():
            line.fail("expected a batch dim after '@'", col)
        if int(text) >= v.rank:
            line.fail(f"batch dim {text} is out of range for {v.type}", col)
        bdims[v] = int(text)
    env[n] = v
    return n, v


def parse(text: str) -> Function:
    """Parse the text form back into a :class:`Function`. Raises IRParseError with the
    line and column of the first problem. The result is verified."""
    lines = text.splitlines()
    raw = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith("#")]
    if len(raw) < 2:
        end = raw[-1] if raw else (max(len(lines), 1), lines[-1] if lines else "")
        raise IRParseError(f"line {end[0]}, column {len(end[1]) + 1}: IR text is empty or truncated: "
                           "expected '{ lambda ...' and 'in (...) }'")
    env: dict = {}
    bdims: dict = {}

    head = _Line(*reversed(raw[0]))
    name = "main"
    if head.peek()[0] == "name" and head.peek(1)[1] == "=":
        name = head.name()
        head.expect("=")
    head.expect("{")
    if head.name() != "lambda":
        head.fail("expected 'lambda'", head.prev())
    inputs, arg_names = [], []
    while not head.at("."):
        if head.done():
            head.fail("expected '.' after the inputs")
        n, v = _decl(head, env, bdims)
        inputs.append(v)
        arg_names.append(n)
    head.expect(".")
    if not head.done():
        head.fail("unexpected text after '.'")

    eqns = []
    for lineno, text_line in raw[1:-1]:
        ln = _Line(text_line, lineno)
        first_col = ln.peek()[2]
        outs = []
        while not ln.at("="):
            if ln.done():
                ln.fail("expected '=' in an equation")
            outs.append(_decl(ln, env, bdims)[1])
        ln.expect("=")
        op_col = ln.peek()[2]
        op = ln.name()
        if op not in OPS:
            ln.fail(f"unknown op {op!r}", op_col)
        attrs, value_cols = {}, {}
        if ln.at("["):
            ln.i += 1
            while not ln.at("]"):
                k_col = ln.peek()[2]
                k = ln.name()
                if k not in OPS[op].attrs or k in attrs:
                    ln.fail(f"{op} has no attribute {k!r}" if k not in OPS[op].attrs else f"{k!r} given twice",
                            k_col)
                ln.expect("=")
                v_col = ln.peek()[2]
                attrs[k] = ln.value()
                value_cols[k] = v_col
                if isinstance(attrs[k], list) and not (op == "constant" and k == "value"):
                    ln.fail("a list is only allowed as a constant's value (use a tuple)", v_col)
                if not ln.at("]"):
                    ln.expect(",")
            ln.expect("]")
        missing = [k for k in OPS[op].attrs if k not in attrs]
        if missing:
            ln.fail(f"{op} needs attribute(s) {', '.join(missing)}", op_col)
        ins = []
        loc = None
        while not ln.done():
            if ln.at("loc"):
                ln.i += 1
                ln.expect("(")
                kind, f, _ = ln.next()
                if kind != "str":
                    ln.fail("expected a quoted file name in loc(...)", ln.prev())
                ln.expect(":")
                kind, lno, _ = ln.next()
                if kind != "num":
                    ln.fail("expected a line number in loc(...)", ln.prev())
                ln.expect(")")
                loc = Loc(json.loads(f), int(lno))
                if not ln.done():
                    ln.fail("unexpected text after loc(...)")
                break
            n = ln.name()
            if n not in env:
                ln.fail(f"{n!r} is used before it is defined", ln.prev())
            ins.append(env[n])
        if op == "constant":
            if len(outs) != 1:
                ln.fail("a constant needs one result", op_col)
            attrs["value"] = _to_array(attrs["value"], outs[0].type, ln, value_cols["value"])
        try:
            types = infer_types(op, [v.type for v in ins], attrs)
        except VmapcError as err:
            ln.fail(f"{op} does not type-check: {err.message}", op_col)
        if [v.type for v in outs] != types:
            ln.fail(f"{op} produces {', '.join(map(str, types))}, but the results are declared "
                    f"{', '.join(str(v.type) for v in outs)}", first_col)
        eqns.append(Eqn(op, ins, outs, attrs, loc))

    tail = _Line(raw[-1][1], raw[-1][0])
    if tail.name() != "in":
        tail.fail("expected 'in (...) }'", tail.prev())
    tail.expect("(")
    outputs = []
    while not tail.at(")"):
        n = tail.name()
        if n not in env:
            tail.fail(f"output {n!r} is not defined", tail.prev())
        outputs.append(env[n])
        if not tail.at(")"):
            tail.expect(",")
    tail.expect(")")
    tail.expect("}")
    if not tail.done():
        tail.fail("unexpected text after '}'")
    fn = Function(inputs, eqns, outputs, name=name, arg_names=arg_names, bdims=bdims or None)
    return fn.verify()
