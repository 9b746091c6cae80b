"""The IR text form round-trips, the verifier rejects bad programs, and the parser rejects
bad text with the line and column of the problem.

Every function traced by test_numpy_api.py's corpus is printed and parsed back: equal as a
program (``Function.__eq__`` compares canonical text), with the same source locations
when printed with them, and giving bit-identical results on the reference evaluator.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import test_numpy_api as corpus  # the NumPy API corpus (a module, so its tests are not re-collected)
import vmapc
from vmapc import dtypes as dt
from vmapc.errors import IRError, IRParseError, Loc
from vmapc.ir import Builder, Eqn, Function, TensorType, Var
from vmapc.shapes import Sym
from vmapc.text import INLINE_CONSTANT_LIMIT, parse

NAMES = list(corpus.CASES)


def assert_same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def roundtrip(fn: Function, *args):
    """fn survives printing and parsing, with and without locations."""
    text = str(fn)
    g = parse(text)
    assert g == fn, f"{text}\n!=\n{g}"
    assert str(g) == text  # names and all
    h = parse(fn.text(locations=True))
    assert h == fn
    assert [e.loc for e in h.eqns] == [e.loc for e in fn.eqns]
    assert h.text(locations=True) == fn.text(locations=True)
    if args:
        for x, y in zip(vmapc.eval(fn, *args), vmapc.eval(g, *args)):
            assert_same_bits(x, y)
    return g


@pytest.mark.parametrize("name", NAMES)
def test_corpus_roundtrip(name):
    f, args, _ = corpus.CASES[name]
    fn = vmapc.trace(f, *args)
    flat = [np.asarray(x) for x in vmapc.pytree.flatten(tuple(args), static=vmapc.arguments.compile_static)[0]]
    roundtrip(fn, *flat)
    # every equation carries the user's line: in the test function that made it, or (for a
    # NumPy function traced directly, or a constant output) the line that called trace
    assert all(e.loc is not None and e.loc.file in (corpus.__file__, __file__) for e in fn.eqns)


# --- constants ---------------------------------------------------------------------------------

def _values(d, n):
    """n values of dtype d including its extremes (and NaN, infinities and -0.0 for floats)."""
    d = np.dtype(d)
    if d == np.bool_:
        special = [True, False]
    elif d.kind in "iu":
        info = np.iinfo(d)
        special = [info.min, info.max, 0, 1, info.max - 1]
    else:
        info = np.finfo(d)
        special = [np.nan, np.inf, -np.inf, -0.0, 0.0, info.max, -info.max, info.tiny, info.smallest_subnormal,
                   info.eps, 1 / 3, -2.5]
    rng = np.random.default_rng(n)
    base = np.array(special, dtype=d)
    extra = (rng.integers(0, 2, n) if d == np.bool_ else rng.integers(-100, 100, n) if d.kind == "i" else
             rng.integers(0, 200, n) if d.kind == "u" else rng.standard_normal(n) * 1e3)
    with np.errstate(over="ignore"):
        return np.concatenate([base, extra.astype(d)])[:n]


@pytest.mark.parametrize("d", [dt.short_name(x) for x in dt.ALL])
@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 3), (INLINE_CONSTANT_LIMIT,), (INLINE_CONSTANT_LIMIT + 1,),
                                   (7, 11), (0,), (0, 3), (3, 0, 2)], ids=str)
def test_constants_of_every_dtype(d, shape):
    size = int(np.prod(shape))
    value = _values(dt.BY_SHORT_NAME[d], max(size, 1))[:size].reshape(shape)
    b = Builder(loc=Loc("model.py", 3))
    c = b.constant(value)
    fn = b.build([], [c])
    text = str(fn)
    assert ('b64"' in text) == (size > INLINE_CONSTANT_LIMIT)
    g = roundtrip(fn)
    assert_same_bits(g.eqns[0].attrs["value"], value)
    if value.dtype.kind == "f" and size <= INLINE_CONSTANT_LIMIT and size >= 4:
        assert "nan" in text and "inf" in text and "-0.0" in text


def test_traced_constants_roundtrip():
    """Captured arrays of every dtype (inline and large) inside traced functions."""
    for d in dt.ALL:
        for n in (5, 100):
            c = _values(d, n)
            fn = vmapc.trace(lambda x: (x, c), np.zeros(2, np.float32))
            g = roundtrip(fn, np.zeros(2, np.float32))
            assert_same_bits(vmapc.eval(g, np.zeros(2, np.float32))[1], c)


# --- symbolic dims and batch dims --------------------------------------------------------------

def symbolic_function():
    B, N = Sym("B"), Sym("N")
    x = Var(TensorType((B, 4), "f32"))
    w = Var(TensorType((4, 3), "f32"))
    i = Var(TensorType((B * N,), "i32"))
    b = Builder(loc=Loc("batched.py", 7))
    h = b.emit("dot_general", x, w, contract=((1,), (0,)), batch=((), ()))
    t = b.emit("tanh", h)
    flat = b.reshape(t, (B * 3,))
    back = b.reshape(flat, (B, 3))
    s = b.emit("reduce_sum", back, axes=(1,))
    wide = b.broadcast_in_dim(s, (B, 8 * B), (0,))
    g = b.emit("take", b.reshape(wide, (8 * B * B,)), i, axis=0, batch_dims=0)
    sl = b.emit("slice", back, start=(0, 1), limit=(B, 3), step=(1, 1))
    io = b.emit("iota", shape=(B, N), dimension=1, dtype=np.dtype(np.int64))
    return b.build([x, w, i], [s, g, sl, io], name="batched", arg_names=["x", "w", "i"],
                   bdims={x: 0, w: None, i: 0, h: 0, t: 0, s: 0, back: 0, sl: 0}), (B, N)


def test_symbolic_dims_roundtrip():
    fn, (B, N) = symbolic_function()
    fn.verify()
    text = str(fn)
    assert "x:f32[B,4]@0" in text and "w:f32[4,3] " in text and "i:i32[B*N]@0" in text
    assert "8*B" in text and "shape=(B, N)" in text
    g = roundtrip(fn)
    assert g.name == "batched"
    assert g.inputs[0].shape == (B, 4) and g.inputs[2].shape == (B * N,)
    assert isinstance(g.outputs[1].shape[0], Sym) and g.outputs[1].shape[0] == B * N
    assert g.eqns[-1].attrs["shape"] == (B, N)


def test_batch_dims_roundtrip():
    fn, _ = symbolic_function()
    g = parse(str(fn))
    want = {i: b for i, b in enumerate(fn.inputs) if fn.bdims.get(b) is not None}
    got = {i: b for i, b in enumerate(g.inputs) if g.bdims.get(b) is not None}
    assert set(want) == set(got) == {0, 2}
    assert [g.bdims.get(v) for e in g.eqns for v in e.outputs] == [fn.bdims.get(v) for e in fn.eqns for v in e.outputs]
    # a batched program with a concrete batch size
    x = Var(TensorType((16, 8, 4), "f32"))
    w = Var(TensorType((4, 3), "f32"))
    b = Builder()
    y = b.emit("dot_general", x, w, contract=((2,), (0,)), batch=((), ()))
    z = b.emit("reduce_max", y, axes=(1,))
    fn = b.build([x, w], [z], bdims={x: 0, w: None, y: 0, z: 0})
    text = str(fn)
    assert text.splitlines()[0] == "{ lambda a:f32[16,8,4]@0 b:f32[4,3] ."
    assert "c:f32[16,8,3]@0 = dot_general" in text
    roundtrip(fn)


def test_locations_with_unusual_file_names():
    for name in ['plain.py', 'with space/and "quotes".py', 'back\\slash.py', 'ünïcödé.py', '<stdin>']:
        b = Builder(loc=Loc(name, 42))
        x = Var(TensorType((2,), "f32"))
        fn = b.build([x], [b.emit("exp", x)])
        g = parse(fn.text(locations=True))
        assert g.eqns[0].loc == Loc(name, 42)


def test_comments_and_blank_lines_are_ignored():
    text = """
    # a comment
    { lambda x:f32[3] .   # inputs

        y:f32[3] = exp x   # the design document's style of comment
      in (y) }
    """
    fn = parse(text)
    assert [e.op for e in fn.eqns] == ["exp"]


def test_names_are_ignored_by_equality():
    a = parse("{ lambda x:f32[3] .\n  y:f32[3] = exp x\n  in (y) }")
    b = parse("{ lambda p:f32[3] .\n  q:f32[3] = exp p\n  in (q) }")
    c = parse("{ lambda p:f32[3] .\n  q:f32[3] = log p\n  in (q) }")
    assert a == b and a != c and hash(a) == hash(b)


def test_generated_names_avoid_reserved_words():
    """A long program uses many generated names; none is a keyword of the text form."""
    b = Builder()
    x = Var(TensorType((2,), "f32"))
    v = x
    for _ in range(800):
        v = b.emit("negative", v)
    fn = b.build([x], [v])
    names = set(re.findall(r"^\s+(\w+):", str(fn), re.M))
    assert not names & {"in", "inf", "nan", "loc", "lambda", "bool", "True", "False", "None"}
    roundtrip(fn)


# --- the verifier --------------------------------------------------------------------------

def _v(shape=(3,), d="f32"):
    return Var(TensorType(shape, d))


def test_verify_rejects_use_before_definition():
    x, y, z = _v(), _v(), _v()
    fn = Function([x], [Eqn("add", [x, y], [z], {}), Eqn("exp", [x], [y], {})], [z])
    with pytest.raises(IRError, match="before it is defined"):
        fn.verify()
    with pytest.raises(IRError, match="never defined"):
        Function([x], [], [y]).verify()


def test_verify_rejects_redefinition():
    x, y = _v(), _v()
    with pytest.raises(IRError, match="redefines"):
        Function([x], [Eqn("exp", [x], [y], {}), Eqn("log", [x], [y], {})], [y]).verify()
    with pytest.raises(IRError, match="redefines"):
        Function([x], [Eqn("exp", [x], [x], {})], [x]).verify()
    with pytest.raises(IRError, match="listed twice"):
        Function([x, x], [], [x]).verify()


@pytest.mark.parametrize("eqn", [
    lambda x: Eqn("exp", [x], [_v((4,))], {}),
    lambda x: Eqn("exp", [x], [_v((3,), "f64")], {}),
    lambda x: Eqn("less", [x, x], [_v((3,), "f32")], {}),
    lambda x: Eqn("reduce_sum", [x], [_v((3,))], {"axes": (0,)}),
    lambda x: Eqn("exp", [x], [_v(), _v()], {}),
    lambda x: Eqn("add", [x, _v((3,), "i32")], [_v()], {}),
    lambda x: Eqn("exp", [x], [_v()], {"axes": (0,)}),
    lambda x: Eqn("reshape", [x], [_v((1, 3))], {"shape": (3, 1)}),
    lambda x: Eqn("no_such_op", [x], [_v()], {}),
], ids=["shape", "dtype", "compare-result", "reduce", "result-count", "operand-dtypes", "attrs", "reshape",
        "unknown-op"])
def test_verify_rejects_wrong_types(eqn):
    x = _v()
    e = eqn(x)
    e.loc = Loc("user.py", 9)
    with pytest.raises(IRError) as err:
        Function([x], [e], e.outputs[:1]).verify()
    if "unknown op" not in str(err.value):
        assert err.value.loc == Loc("user.py", 9)


def test_verify_accepts_traced_functions():
    for name in NAMES[::50]:
        f, args, _ = corpus.CASES[name]
        assert vmapc.trace(f, *args).verify()


# --- parse errors ------------------------------------------------------------------------------

GOOD = """{ lambda x:f32[2,3] w:f32[1,3] .
    a:f32[2,3] = add x w
    b:f32[2] = reduce_sum[axes=(1,)] a
  in (b) }"""


def test_good_text_parses():
    assert [e.op for e in parse(GOOD).eqns] == ["add", "reduce_sum"]


@pytest.mark.parametrize("old,new,at,msg", [
    ("add x w", "plus x w", "plus", "unknown op 'plus'"),
    ("add x w", "add x v", "v", "'v' is used before it is defined"),
    ("in (b)", "in (c)", "c", "output 'c' is not defined"),
    ("x:f32[2,3]", "x:f31[2,3]", "f31", "unknown dtype 'f31'"),
    ("x:f32[2,3]", "x:f32[2,-3]", "-3", "bad dim"),
    ("x:f32[2,3]", "x:f32(2,3)", "(", "expected '\\['"),
    ("[axes=(1,)]", "[axis=(1,)]", "axis", "has no attribute 'axis'"),
    ("[axes=(1,)]", "[axes=(1,]", "] a", "expected"),
    ("[axes=(1,)]", "[axes=(5,)]", "reduce_sum", "out of range"),
    ("[axes=(1,)]", "[axes=[1]]", "[1]", "list is only allowed"),
    ("[axes=(1,)]", "", "reduce_sum", "needs attribute"),
    ("b:f32[2] = reduce", "b:f32[3] = reduce", "b:", "declared f32\\[3\\]"),
    ("add x w", "add x x w", "add", "add takes 2 operand"),
    ("w:f32[1,3]", "w:i32[1,3]", "add", "dtypes differ"),
    ("a:f32[2,3] = add", "x:f32[2,3] = add", "x:", "defined twice"),
    ("a:f32[2,3] = add", "a:f32[2,3]   add", "x w", "expected ':'"),
    ("in (b) }", "in (b) } extra", "extra", "unexpected text"),
    ("in (b) }", "in (b)", None, "expected '}'"),
    ("add x w", "add x w $", "$", "unexpected character"),
    ("{ lambda", "{ lamda", "lamda", "expected 'lambda'"),
    ("x:f32[2,3] w", "x:f32[2,3]@7 w", "7", "batch dim 7 is out of range"),
    ("x:f32[2,3] w", "x:f32[2,3]@x w", "x w", "expected a batch dim"),
])
def test_parse_errors_give_line_and_column(old, new, at, msg):
    """Each malformed text raises IRParseError whose message starts with the line and the
    column of the offending token (`at`; None: the end of the line)."""
    assert old in GOOD
    text = GOOD.replace(old, new)
    with pytest.raises(IRParseError) as err:
        parse(text)
    message = str(err.value)
    assert re.search(msg, message), message
    m = re.match(r"line (\d+), column (\d+): ", message)
    assert m, message
    lines = text.splitlines()
    # the offending line: the edited one if the token is there, else the first with the token
    candidates = [i for i, ln in enumerate(lines, 1) if at is None and new in ln or at is not None and at in ln]
    line = next((i for i in candidates if new and new in lines[i - 1]), candidates[0])
    col = (lines[line - 1].index(at) if at is not None else len(lines[line - 1])) + 1
    assert (int(m.group(1)), int(m.group(2))) == (line, col), message


@pytest.mark.parametrize("text", ["", "   \n", "{ lambda x:f32[2] .", GOOD.rsplit("\n", 1)[0],
                                  GOOD.split("\n", 1)[1]], ids=["empty", "blank", "header-only", "no-tail", "no-head"])
def test_truncated_text(text):
    with pytest.raises(IRParseError, match=r"^line \d+, column \d+: "):
        parse(text)


def test_bad_constants():
    with pytest.raises(IRParseError, match=r"line 2, .*constant has shape"):
        parse("{ lambda .\n  a:f32[3] = constant[value=[1.0, 2.0]]\n  in (a) }")
    with pytest.raises(IRParseError, match=r"line 2, .*elements"):
        parse('{ lambda .\n  a:u8[40] = constant[value=b64"AAAA"]\n  in (a) }')
    with pytest.raises(IRParseError, match=r"line 2, .*bad constant"):
        parse("{ lambda .\n  a:u8[2] = constant[value=[1, 300]]\n  in (a) }")
    with pytest.raises(IRParseError, match=r"line 2, "):
        parse("{ lambda .\n  a:i8[2] = constant\n  in (a) }")
