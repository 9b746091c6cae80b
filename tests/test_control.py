"""Control flow: vmapc.cond / switch / while_loop / fori_loop / scan / map.

The front end against Python's own if/while/for, batching against the per-example loop
(the exhaustive in_dims sweep of the ops' sample programs is in tests/test_rules.py and,
compiled, tests/test_vmap_compiled.py), what batching guarantees beyond matching results
(finished examples are frozen, an untaken branch never sees its inputs, loop counters stay
unbatched), the lowering to scf, dynamic batches and chunks, and the sub-program
infrastructure the ops rest on (text form, .vir files, verification, simplification).
"""

import numpy as np
import pytest

import vmapc
from vmapc import rules, testing
from vmapc.errors import IRError, IRParseError, TargetError
from vmapc.ir import walk_eqns
from vmapc.optimize import simplify
from vmapc.reference.control import sub_evaluator

pytestmark = pytest.mark.usefixtures("vmapc_shared_cache")

F32, I32 = vmapc.f32, vmapc.i32


def ops_of(fn):
    return [e.op for e in walk_eqns(fn)]


# --- the front end, outside any trace (on arrays) and traced ---------------------------------------

def test_every_function_works_on_arrays():
    """Outside a trace each function compiles itself for the CPU and runs (three here;
    all six are traced and evaluated below)."""
    x = np.arange(4, dtype=np.float32)
    assert np.allclose(vmapc.cond(x.sum() > 0, lambda a: a * 2, lambda a: -a, x), x * 2)
    n, y = vmapc.while_loop(lambda c: c[1].sum() < 100, lambda c: (c[0] + 1, c[1] * 2 + 1), (0, x))
    want_n, want_y = 0, x.copy()
    while want_y.sum() < 100:
        want_n, want_y = want_n + 1, want_y * 2 + 1
    assert int(n) == want_n and np.allclose(y, want_y)
    carry, ys = vmapc.scan(lambda c, xi: (c + xi, c * xi), np.float32(1), x)
    want, c = [], np.float32(1)
    for xi in x:
        want.append(c * xi)
        c = c + xi
    assert np.allclose(carry, c) and np.allclose(ys, want)


def test_every_function_traced():
    def f(x, p, i):
        return (vmapc.cond(p, lambda a: a * 2, lambda a: -a, x),
                vmapc.switch(i, [lambda a: a, lambda a: a + 1, lambda a: a + 2], x),
                vmapc.fori_loop(2, 6, lambda k, acc: acc + k * x, np.zeros(4, np.float32)),
                vmapc.fori_loop(i, 6, lambda k, acc: acc + k * x, np.zeros(4, np.float32)),
                vmapc.map(lambda r: r @ r, x.reshape(2, 2)))
    fn = vmapc.trace(f, F32[4], vmapc.bool_[()], I32[()])
    x = np.arange(4, dtype=np.float32)
    for p, i in ((True, 0), (False, 1), (True, 2), (False, 9)):
        c, s, f1, f2, m = vmapc.eval(fn, x, np.bool_(p), np.int32(i))
        assert np.allclose(c, x * 2 if p else -x) and np.allclose(s, x + min(max(i, 0), 2))
        assert np.allclose(f1, 14 * x) and np.allclose(f2, sum(range(i, 6)) * x)
        assert np.allclose(m, [1.0, 13.0])


def test_switch_clamps_its_index_like_jax():
    branches = [lambda a: a * 0 + 0, lambda a: a * 0 + 1, lambda a: a * 0 + 2]
    f = vmapc.compile(lambda i, u, x: (vmapc.switch(i, branches, x), vmapc.switch(u, branches, x)))
    x = np.zeros(2, np.float32)
    got = [f(np.int32(i), np.uint8(u), x) for i, u in ((-5, 0), (-1, 1), (0, 2), (1, 3), (2, 255), (3, 0), (100, 0))]
    assert [int(a[0]) for a, _ in got] == [0, 0, 0, 1, 2, 2, 2]
    assert [int(b[0]) for _, b in got[:5]] == [0, 1, 2, 2, 2]       # unsigned: 255 is past the end


def test_pytrees_closures_and_weak_python_numbers():
    w = np.array([1.0, -2.0, 3.0], np.float32)          # a NumPy array: a constant of the body

    def f(x, n):
        scale = x.max()                                   # a traced value the body closes over
        out = vmapc.fori_loop(0, n, lambda i, s: {"a": s["a"] + x[i] * scale, "b": s["b"] * w},
                              {"a": 0.0, "b": x})
        picked = vmapc.cond(n > 1, lambda t: (t[0] * 2, 0.0), lambda t: (t[1], t[0].sum()), (x, w))
        return out, picked
    fn = vmapc.trace(f, F32[3], I32[()])
    (out, picked) = fn.out_tree.children
    assert [v.dtype for v in fn.outputs] == [np.float32] * 4      # 0.0 took float32 both times
    x = np.array([0.5, 2.0, -1.0], np.float32)
    for n in (0, 2, 3):
        a, b, p0, p1 = vmapc.eval(fn, x, np.int32(n))
        want_a = sum(float(x[i]) * x.max() for i in range(n))
        assert np.isclose(a, want_a) and np.allclose(b, x * w ** n)
        if n > 1:
            assert np.allclose(p0, x * 2) and p1 == 0
        else:
            assert np.allclose(p0, w) and np.isclose(p1, x.sum())


def test_loops_and_branches_nest():
    def f(x):
        def outer(c, xi):                                  # a scan whose body has a while and a cond
            k, acc = vmapc.while_loop(lambda s: s[1] < xi, lambda s: (s[0] + 1, s[1] * 2 + 1), (0, 0.0))
            acc = vmapc.cond(k % 2 == 0, lambda a: a, lambda a: -a, acc)
            return c + acc, k
        return vmapc.scan(outer, 0.0, x)
    x = np.array([0.5, 3.0, 10.0, 0.0], np.float32)

    def python(x):
        c, ks = 0.0, []
        for xi in x:
            k, acc = 0, 0.0
            while acc < xi:
                k, acc = k + 1, acc * 2 + 1
            c += acc if k % 2 == 0 else -acc
            ks.append(k)
        return c, ks
    fn = vmapc.trace(f, F32[4])
    c, ks = vmapc.eval(fn, x)
    assert np.isclose(c, python(x)[0]) and list(ks) == python(x)[1]
    xs = np.stack([x, x[::-1] * 3])
    bc, bks = vmapc.eval(vmapc.vmap(fn, in_dims=0, axis_size=2), xs)
    for b in range(2):
        assert np.isclose(bc[b], python(xs[b])[0]) and list(bks[b]) == python(xs[b])[1]


# --- batching: per-example trip counts, frozen examples, guarded branches --------------------------

def _iterate(x, n):
    """n steps of x -> 0.9 x + 1, counting them (a while_loop over a per-example trip count)."""
    return vmapc.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 0.9 + 1.0), (0, x))


def test_while_examples_stop_after_1_7_and_50_steps():
    xs = np.array([2.0, -1.0, 0.5], np.float32)
    ns = np.array([1, 7, 50], np.int32)
    want = []
    for x, n in zip(xs, ns):
        for _ in range(n):
            x = np.float32(x * np.float32(0.9) + np.float32(1.0))
        want.append(x)
    fn = vmapc.trace(_iterate, F32[()], I32[()])
    bf = vmapc.vmap(fn, in_dims=0, axis_size=3)
    steps, got = vmapc.eval(bf, xs, ns)
    assert list(steps) == [1, 7, 50]           # each example counts its own steps, no more
    np.testing.assert_allclose(got, want, rtol=1e-6)
    c_steps, c_got = vmapc.compile(_iterate, in_dims=0)(xs, ns)
    assert list(c_steps) == [1, 7, 50]
    np.testing.assert_allclose(c_got, want, rtol=1e-6)


def test_a_wrong_while_rule_is_caught(monkeypatch):
    """The sweep is not vacuous: a batched while rule that forgets to freeze finished
    examples (their carry keeps stepping) fails it."""
    from vmapc.rules import control as rc
    real = rc._select
    monkeypatch.setattr(rc, "_select", lambda b, mask, x, y: x if x.dtype != np.bool_ else real(b, mask, x, y))
    sample = next(s for s in testing.control_samples() if s.name == "while_counter")
    failures = 0
    for case in testing.vmap_cases(sample, np.random.default_rng(0), nested=False):
        try:
            testing.assert_outputs_match(case, testing.run_reference(case))
        except AssertionError:
            failures += 1
    assert failures > 0


def _watch_subprograms(limit=20000):
    """A sub-program evaluator for the reference that records every call's arguments and
    stops a runaway loop (instead of hanging) after `limit` calls."""
    seen = []

    def run(fn, args):
        seen.append((fn, [np.array(a) for a in args]))
        if len(seen) > limit:
            raise AssertionError("a sub-program ran more than %d times: a loop that should have ended" % limit)
        return vmapc.eval(fn, *args)
    return seen, run


def count_down(v):
    """Ends only for v >= 0 (for v < 0 it would count through all of int32)."""
    return vmapc.while_loop(lambda c: c[0] != 0, lambda c: (c[0] - 1, c[1] + 1), (v, 0))[1]


def _loop_steps(seen, op="subtract"):
    """How many times the count-down loop's body ran."""
    return sum(1 for fn, _ in seen if op in ops_of(fn) and "while_loop" not in ops_of(fn))


def test_a_loop_in_an_untaken_branch_runs_only_for_the_examples_that_take_it():
    def f(v):
        return vmapc.cond(v >= 0, count_down, lambda u: -u, v)
    vs = np.array([-3, 4, -1, 0, 2], np.int32)
    bf = vmapc.vmap(vmapc.trace(f, I32[()]), in_dims=0, axis_size=5)
    seen, run = _watch_subprograms()
    with sub_evaluator(run):
        (got,) = vmapc.eval(bf, vs)
    assert list(got) == [3, 4, 1, 0, 2]
    assert _loop_steps(seen) == 4        # the slowest example taking the branch; -3 would never end
    seen.clear()                          # no example takes the branch: its loop takes no step
    with sub_evaluator(run):
        (got,) = vmapc.eval(bf, -np.arange(1, 6, dtype=np.int32))
    assert list(got) == [1, 2, 3, 4, 5] and _loop_steps(seen) == 0


def test_a_finished_example_does_not_drive_an_inner_loop():
    def f(v):   # each outer step runs an inner count-down from v - 1, which ends only for v >= 1
        return vmapc.while_loop(lambda c: c[0] > 0, lambda c: (c[0] - 1, c[1] + count_down(c[0] - 1)), (v, 0))
    vs = np.array([0, 3, 5, 1], np.int32)
    want = [sum(range(v)) for v in vs]
    bf = vmapc.vmap(vmapc.trace(f, I32[()]), in_dims=0, axis_size=4)
    seen, run = _watch_subprograms()
    with sub_evaluator(run):
        _, got = vmapc.eval(bf, vs)
    assert list(got) == want
    # outer steps 1..5 run inner loops of max(v - k) over the unfinished examples: 4+3+2+1+0
    assert sum(1 for fn, _ in seen if "subtract" in ops_of(fn) and "reduce_any" not in ops_of(fn)
               and "while_loop" not in ops_of(fn)) == 10


def test_compiled_loops_that_must_not_run_end():
    """Compiled, the two programs above end (without masking they would count down from a
    negative number through all of int32)."""
    def f(v, w):
        return (vmapc.cond(v >= 0, count_down, lambda u: -u, v),
                vmapc.while_loop(lambda c: c[0] > 0, lambda c: (c[0] - 1, c[1] + count_down(c[0] - 1)), (w, 0))[1])
    a, b = vmapc.compile(f, in_dims=0)(np.array([-3, 4, -1, 0], np.int32), np.array([0, 3, 5, 1], np.int32))
    np.testing.assert_array_equal(a, [3, 4, 1, 0])
    np.testing.assert_array_equal(b, [0, 3, 10, 0])


def test_loop_counters_stay_unbatched():
    """x[i] with the fori_loop counter stays a read at one index under vmap (a batched
    counter would make it a gather over the batch), and the counter carries no batch dim."""
    def f(x):
        return vmapc.fori_loop(0, 4, lambda i, s: s + x[i] * x[i + 1], 0.0)
    bf = vmapc.vmap(vmapc.trace(f, F32[5]), in_dims=0, axis_size=8)
    (scan,) = [e for e in bf.eqns if e.op == "scan"]
    reads = [e for e in walk_eqns(scan.attrs["body"]) if e.op in ("take", "dynamic_slice", "gather")]
    # each x[i] reads at one (0-d) index, whatever op does it: no per-example gather
    assert len(reads) == 2 and all(v.shape == () for e in reads for v in e.inputs[1:])
    assert not any(e.attrs.get("batch_dims") for e in reads)
    counter = scan.outputs[0]
    assert counter.shape == () and bf.bdims.get(counter) is None
    xs = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    (got,) = vmapc.eval(bf, xs)
    np.testing.assert_allclose(got, [(x[:4] * x[1:]).sum() for x in xs], rtol=1e-5)


def test_unbatched_predicate_keeps_a_plain_loop_and_a_real_branch():
    def f(x, n):
        y = vmapc.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2), (0, x))[1]
        return vmapc.cond(n > 2, lambda a: a + 1, lambda a: a - 1, y)
    bf = vmapc.vmap(vmapc.trace(f, F32[2], I32[()]), in_dims=(0, None), axis_size=3)
    (loop,) = [e for e in bf.eqns if e.op == "while_loop"]
    assert "reduce_any" not in ops_of(loop.attrs["cond"])     # no any-reduction: every example stops together
    assert any(e.op == "cond" for e in bf.eqns) and not any(e.op == "select" for e in bf.eqns)


# --- lowering --------------------------------------------------------------------------------------

def test_lowering_uses_scf_and_nested_ifs_for_switch():
    def f(x, i, n):
        a = vmapc.switch(i, [lambda t: t, lambda t: t * 2, lambda t: t * 3, lambda t: -t], x)
        b = vmapc.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] + 1), (0, a))[1]
        return vmapc.scan(lambda c, t: (c + t, c), 0.0, b)
    mlir = vmapc.compile(f).lower(np.zeros(3, np.float32), np.int32(0), np.int32(0)).mlir
    assert mlir.count("scf.if") == 3 and "scf.index_switch" not in mlir
    assert "scf.while" in mlir and "scf.condition" in mlir and "scf.for" in mlir
    c = vmapc.compile(f)
    x = np.array([1, 2, 3], np.float32)
    for i, n in ((0, 0), (2, 3), (3, 1), (9, 2)):
        got = c(x, np.int32(i), np.int32(n))
        want = vmapc.eval(vmapc.trace(f, F32[3], I32[()], I32[()]), x, np.int32(i), np.int32(n))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w)


def test_a_static_fori_loop_does_not_grow_with_its_trip_count():
    def rk(steps):
        return lambda x: vmapc.fori_loop(0, steps, lambda i, y: y + 0.01 * np.sin(y), x)
    small = vmapc.compile(rk(100), in_dims=0).lower(np.zeros((4, 3), np.float32))
    big = vmapc.compile(rk(10000), in_dims=0).lower(np.zeros((4, 3), np.float32))
    assert len(small.program.eqns) == len(big.program.eqns) == 1
    assert abs(len(small.mlir) - len(big.mlir)) < 10       # only the trip count's digits differ


def test_dynamic_batch_and_chunks_with_loops_including_empty_batches():
    def f(x, n):
        return _iterate(x, n)[1] + vmapc.scan(lambda c, t: (c * t, c), 1.0, x * np.ones(3, np.float32))[0]
    fn = vmapc.trace(f, F32[()], I32[()])
    rng = np.random.default_rng(1)
    for kw in ({"batch": "dynamic"}, {"chunk_size": 4}):
        c = vmapc.compile(f, in_dims=0, **kw)
        for B in (0, 1, 3, 9):
            xs = rng.normal(size=B).astype(np.float32)
            ns = rng.integers(-1, 9, size=B).astype(np.int32) if B != 3 else np.array([1, 7, 50], np.int32)
            got = c(xs, ns)
            assert got.shape == (B,) and got.dtype == np.float32
            want = [vmapc.eval(fn, x, n)[0] for x, n in zip(xs, ns)]
            np.testing.assert_allclose(got, np.array(want, np.float32).reshape(B), rtol=1e-5)


# --- the sub-program infrastructure ----------------------------------------------------------------

def _nested_program():
    def f(x, n):
        def body(c, xi):
            k = vmapc.while_loop(lambda s: s < n, lambda s: s + 1, 0)
            return c + vmapc.cond(xi > 0, lambda a: a * k, lambda a: a - 1.0, xi), c
        return vmapc.scan(body, 0.0, x, reverse=True)
    return f, vmapc.trace(f, F32[4], I32[()])


def test_nested_programs_round_trip_through_text_and_vir_files(tmp_path):
    f, fn = _nested_program()
    for g in (fn, vmapc.vmap(fn, in_dims=(0, None), axis_size=3), vmapc.vmap(fn, in_dims=(None, 0), axis_size=2)):
        assert vmapc.parse(str(g)) == g
        again = vmapc.parse(g.text(locations=True))
        assert again == g
        assert [e.loc for e in walk_eqns(again)] == [e.loc for e in walk_eqns(g)]
    assert any(e.loc is not None and e.loc.file == __file__ for e in walk_eqns(fn) if e.op == "multiply")
    # .vir files written by the CLI
    from vmapc import cli
    src = tmp_path / "prog.py"
    src.write_text("import vmapc\n\ndef f(x, n):\n"
                   "    return vmapc.fori_loop(0, n, lambda i, s: s * 2.0, x)\n")
    vir = tmp_path / "prog.vir"
    assert cli.main(["trace", f"{src}:f", "--arg", "x=f32[3]", "--arg", "n=i32[]", "-o", str(vir)]) == 0
    prog = vmapc.parse(vir.read_text())
    (loop,) = [e for e in prog.eqns if e.op == "while_loop"]
    assert loop.attrs["body"].eqns[-1].loc.file == str(src)
    np.testing.assert_allclose(vmapc.eval(prog, np.ones(3, np.float32), np.int32(3))[0], 8.0)


def test_parse_errors_and_verify_errors_inside_sub_programs():
    _, fn = _nested_program()
    text = str(fn)
    inner = text.index("less")
    with pytest.raises(IRParseError, match=r"line \d+, column \d+: unknown op 'lesser'"):
        vmapc.parse(text[:inner] + "lesser" + text[inner + 4:])
    # a sub-program is closed: the enclosing program's names are not in scope inside it
    closed = """{ lambda x:f32[] p:bool[] .
    y:f32[] = cond[branches=(
        { lambda a:f32[] .
            c:f32[] = negative %s
          in (c) },
        { lambda b:f32[] .
          in (b) },
      )] p x
  in (y) }"""
    assert vmapc.parse(closed % "a").verify()
    with pytest.raises(IRParseError, match="line 4, column 32: 'x' is used before it is defined"):
        vmapc.parse(closed % "x")
    # verify names the path down to the broken equation
    (scan,) = [e for e in fn.eqns if e.op == "scan"]
    body = scan.attrs["body"]
    (loop,) = [e for e in body.eqns if e.op == "while_loop"]
    loop.attrs["body"].eqns[-1].outputs[0] = vmapc.ir.Var(vmapc.TensorType((2,), "int64"))
    with pytest.raises(IRError, match=r"sub-program body: .*sub-program body: .* result 0 is declared i64\[2\]"):
        fn.verify()


def test_simplify_works_inside_and_across_sub_programs():
    def f(x, n):
        def body(c, xi):
            a = xi * 2.0 + xi * 2.0          # CSE inside the body
            dead = np.exp(xi)                # DCE inside the body
            return (c[0] + a, c[1] + dead), (a, a * 3)
        (s, unused_carry), (ys, unused_ys) = vmapc.scan(body, (0.0, 0.0), x)
        k = vmapc.cond(True, lambda t: t + 1, lambda t: t - 1, n)          # a constant index
        z = vmapc.while_loop(lambda c: c[0] < k, lambda c: (c[0] + 1, c[1] * 2, c[2] + 1), (0, s, 0))[1]
        return z, ys
    fn = vmapc.trace(f, F32[4], I32[()])
    s = simplify(fn)
    assert "cond" not in [e.op for e in s.eqns]
    (scan,) = [e for e in s.eqns if e.op == "scan"]
    body_ops = [e.op for e in scan.attrs["body"].eqns]
    assert scan.attrs["n_carry"] == 1 and len(scan.outputs) == 2             # dead carry and ys gone
    assert "exp" not in body_ops and body_ops.count("multiply") == 1
    (loop,) = [e for e in s.eqns if e.op == "while_loop"]
    assert len(loop.outputs) == 2                                           # the dead third carry is gone
    x = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    for n in (-1, 2, 4):
        for a, b in zip(vmapc.eval(fn, x, np.int32(n)), vmapc.eval(s, x, np.int32(n))):
            np.testing.assert_array_equal(a, b)
    assert vmapc.parse(str(s)) == s


def test_walk_eqns_users_see_inside_sub_programs():
    def f(x):
        return vmapc.fori_loop(0, 3, lambda i, y: np.sin(y), x)
    fn = vmapc.trace(f, vmapc.f64[4])
    with pytest.raises(TargetError, match="float64 sin is not available on target vulkan"):
        vmapc.lowering.lower([fn], target="vulkan")
    assert vmapc.lowering.lower([fn], target="cpu").needs_libm
    from vmapc.targets import estimate_work
    flops, _ = estimate_work(fn)
    assert flops >= 8       # the sin inside the body counts


def test_rules_report_lists_the_control_ops():
    kinds = {row["op"]: (row["family"], row["rule"]) for row in rules.report()}
    assert kinds["cond"] == kinds["while_loop"] == kinds["scan"] == ("control", "native")


def test_control_samples_run_batched_on_vulkan(vmapc_shared_cache):
    """The control-flow samples (cond with bool and int indices, while loops with per-example
    trip counts, nested loops, scans forward and reverse), single and batched, compiled for
    Vulkan in one module and compared with the reference evaluator."""
    t = {t["name"]: t for t in vmapc.targets()}["vulkan"]
    if not t["can_run"]:
        pytest.skip(f"Vulkan cannot run here: {t['reason']}")
    rng = np.random.default_rng(5)
    cases = []
    for sample in testing.control_samples():
        if any(v.dtype == np.float64 for v in sample.fn.inputs):
            continue                     # (float64 is emulated or refused on Vulkan devices)
        args = sample.gen(rng)
        cases.append(testing.Case(f"{sample.name}_single", sample.fn, args, vmapc.eval(sample.fn, *args)))
        cases += testing.vmap_cases(sample, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)
    outs = testing.run_compiled(cases, target="vulkan", group=40, modules=1)
    for case in cases:
        testing.assert_outputs_match(case, outs[case.name], rtol=1e-5, atol=1e-5)


def test_control_samples_compile_for_cuda(vmapc_shared_cache):
    """The control-flow samples, single and batched, compile for CUDA (sm_80) in one module
    whose reflection names every merged function with its signature. Compile-only, and only
    where a CUDA device exists (compiling needs no GPU, but this keeps CI's two cores for
    the tests that run: measured here, the module compiles in 45 s on a loaded machine)."""
    from vmapc import driver, lowering, targets
    reason = targets.runtime_devices("cuda")[1]
    if reason is not None:
        pytest.skip(f"no CUDA device here ({reason}); compiling the control samples for CUDA is checked "
                    "only where one exists")
    from iree import runtime as rt
    rng = np.random.default_rng(5)
    cases = []
    for sample in testing.control_samples():
        args = sample.gen(rng)
        cases.append(testing.Case(f"{sample.name}_single", sample.fn, args, vmapc.eval(sample.fn, *args)))
        cases += testing.vmap_cases(sample, rng, sizes=(3,), out_dims=(0,), nested=False, all_in_dims=False)
    fn, _ = testing.merge_cases("control", cases)
    vmfb = driver.compile_mlir(lowering.lower([fn], target="cuda"), "cuda")
    module = rt.VmModule.copy_buffer(rt.VmInstance(), vmfb)
    decl = dict(module.lookup_function("control").reflection)["iree.abi.declaration"]
    assert decl.startswith("sync func @control(")
    assert decl.count("%input") == len(fn.inputs) and decl.count("%output") == len(fn.outputs)
