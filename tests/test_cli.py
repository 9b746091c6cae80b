"""The ``vmapc`` command, driven as a user would: in subprocesses, in a temporary
directory, with the compile cache shared by this test session.

Expected values come from NumPy (the model's Python function called per example),
never from vmapc's own output. Artifacts are compiled once per module and reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vmapc
from vmapc.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "model.py"
VMAPC = [sys.executable, "-m", "vmapc.cli"]
# The model sums 64 and then 32 float32 products of standard-normal data; the compiled code may
# sum them in another order (tiles, reassociated reductions), which moves a result by up to
# about K * eps * sum|terms| ~ 1e-5 absolute. Those are the tolerances that bound it.
MLP_TOL = dict(rtol=1e-5, atol=1e-4)
SHAPES = {"x": (64,), "w1": (64, 32), "w2": (32, 10)}
SPECS = [f"--arg={n}=f32[{','.join(map(str, s))}]" for n, s in SHAPES.items()]
SUBCOMMANDS = ["trace", "show", "compile", "run", "targets", "rules"]


def _mlp():
    spec = importlib.util.spec_from_file_location("_model_under_test", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mlp


mlp = _mlp()
MATMUL_LINE = next(i for i, ln in enumerate(MODEL.read_text().splitlines(), 1) if "x @ w1" in ln)

STATS = '''
import numpy as np

def stats(x, scale):
    """Per example x: f32[4,5]; two named results."""
    return {"rowsum": (x * scale).sum(axis=-1), "peak": x.max()}
'''


def stats_np(x, scale):
    return {"rowsum": (x * scale).sum(axis=-1), "peak": x.max()}


BAD_MODELS = {
    "branchy.py": "import numpy as np\n\ndef f(x):\n    if x.sum() > 0:\n        return x\n    return -x\n",
    "raises.py": "import numpy as np\nraise RuntimeError('broken at import')\n",
    "oops.py": "import numpy as np\n\ndef f(x):\n    return x + undefined_name\n",
    "defaults.py": "import numpy as np\n\ndef f(x, w, scale=2.0):\n    return (x @ w) * scale\n",
}


def cli(*args, cwd):
    return subprocess.run([*VMAPC, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}; stderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res


def assert_error(res, rc, *fragments):
    """Exit status `rc`, one line on stderr naming the command, no traceback, and each fragment."""
    err = res.stderr
    assert res.returncode == rc, f"exit {res.returncode}, wanted {rc}; stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("vmapc"), lines[0]
    assert "error:" in lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    return lines[0]


def vulkan_reason():
    """None when a Vulkan device opens here, else why not."""
    try:
        import iree.runtime as rt
        if "vulkan" not in rt.query_available_drivers():
            return "this IREE runtime has no vulkan driver"
        if not rt.get_driver("vulkan").query_available_devices():
            return "no Vulkan device (install e.g. mesa-vulkan-drivers for lavapipe)"
    except Exception as e:  # the driver exists but cannot be opened
        return f"the Vulkan driver does not open: {e}"
    return None


# --- the shared working directory and artifacts ------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory, vmapc_shared_cache):
    d = tmp_path_factory.mktemp("cli")
    shutil.copy(MODEL, d / "model.py")
    (d / "stats.py").write_text(STATS)
    for name, text in BAD_MODELS.items():
        (d / name).write_text(text)
    r = np.random.default_rng(0)
    data = {
        "xs": r.standard_normal((5, 64), dtype=np.float32),
        "x0": r.standard_normal(64, dtype=np.float32),
        "w1": r.standard_normal((64, 32), dtype=np.float32),
        "w2": r.standard_normal((32, 10), dtype=np.float32),
        "x4": r.standard_normal((4, 64), dtype=np.float32),
        "xs_bad_shape": np.zeros((5, 63), np.float32),
        "xs_f64": np.zeros((5, 64), np.float64),
        "sx": r.standard_normal((3, 4, 5), dtype=np.float32),
        "scale": np.array(0.5, np.float32),
    }
    for k, v in data.items():
        np.save(d / f"{k}.npy", v)
    return d


@pytest.fixture(scope="module")
def data(work):
    return {p.stem: np.load(p) for p in work.glob("*.npy")}


@pytest.fixture(scope="module")
def vir(work):
    ok(cli("trace", "model.py:mlp", *SPECS, "-o", "mlp.vir", cwd=work))
    return work / "mlp.vir"


@pytest.fixture(scope="module")
def art_dynamic(work, vir):
    """mlp.vir compiled for every batch size, on the CPU."""
    ok(cli("compile", "mlp.vir", "--in-dims", "0,None,None", "--batch", "dynamic", "-o", "art_dyn", cwd=work))
    return work / "art_dyn"


@pytest.fixture(scope="module")
def art_static(work):
    """mlp compiled straight from the .py file for batches of 4, for this CPU and any x86-64."""
    ok(cli("compile", "model.py:mlp", *SPECS, "--in-dims", "0,None,None", "--batch", "4",
           "--target", "cpu,cpu:generic", "-o", "art_static", cwd=work))
    return work / "art_static"


def loop_mlp(xs, w1, w2):
    return np.stack([mlp(x, w1, w2) for x in xs])


def inputs(x="xs.npy"):
    return ["--input", f"x={x}", "--input", "w1=w1.npy", "--input", "w2=w2.npy"]


# --- help and exit codes -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_for_every_subcommand(work, command):
    res = ok(cli(command, "--help", cwd=work))
    assert res.stdout.startswith(f"usage: vmapc {command}")
    assert res.stderr == ""
    if command in ("trace", "show", "compile"):
        assert "--arg" in res.stdout and "FILE.py:FUNCTION" in res.stdout
    if command in ("show", "compile"):
        assert "--in-dims" in res.stdout and "--batch" in res.stdout
    if command == "run":
        assert "--input" in res.stdout and "--output-dir" in res.stdout


def test_top_level_help_lists_every_subcommand(work):
    res = ok(cli("--help", cwd=work))
    for command in SUBCOMMANDS:
        assert re.search(rf"^\s+{command}\s", res.stdout, re.M), command
    assert ok(cli("--version", cwd=work)).stdout.strip() == f"vmapc {vmapc.__version__}"


def test_usage_errors_from_argparse_are_one_line_with_status_2(work):
    assert_error(cli(cwd=work), 2, "COMMAND")
    assert_error(cli("frobnicate", cwd=work), 2, "frobnicate")
    assert_error(cli("compile", "mlp.vir", cwd=work), 2, "-o/--output")
    assert_error(cli("show", "mlp.vir", "--stage", "assembly", cwd=work), 2, "--stage")
    assert_error(cli("trace", "model.py:mlp", "--bogus", cwd=work), 2, "--bogus")


# --- trace ---------------------------------------------------------------------------------------------

def test_trace_from_specs_writes_ir_that_computes_the_function(work, vir, data):
    text = vir.read_text()
    prog = vmapc.parse(text)
    assert prog.name == "mlp"
    assert prog.arg_names == list(inspect.signature(mlp).parameters)
    assert [tuple(t.shape) for t in prog.in_types] == list(SHAPES.values())
    assert [str(t.dtype) for t in prog.in_types] == ["float32"] * 3
    assert "model.py" in text and "loc(" in text            # source lines survive into the file
    x0, w1, w2 = data["x0"], data["w1"], data["w2"]
    (y,) = vmapc.eval(prog, x0, w1, w2)
    np.testing.assert_allclose(y, mlp(x0, w1, w2), rtol=1e-5, atol=1e-6)


def test_trace_to_stdout_and_from_npy_examples(work, vir):
    res = ok(cli("trace", "model.py:mlp", "--arg", "x=x0.npy", "--arg", "w1=w1.npy", "--arg", "w2=w2.npy",
                 cwd=work))
    assert res.stderr == ""                                  # quiet in a pipe
    assert vmapc.parse(res.stdout) == vmapc.parse(vir.read_text())


def test_trace_numpy_dtype_names_and_defaulted_parameters(work, data):
    res = ok(cli("trace", "defaults.py:f", "--arg", "x=float32[3]", "--arg", "w=f32[3,2]", cwd=work))
    prog = vmapc.parse(res.stdout)
    assert [str(t) for t in prog.in_types] == ["f32[3]", "f32[3,2]"]
    x, w = np.arange(3, dtype=np.float32), np.ones((3, 2), np.float32)
    np.testing.assert_allclose(vmapc.eval(prog, x, w)[0], (x @ w) * 2.0)   # the default was kept


def test_trace_with_static_int_arguments(work):
    """NAME=INT is a static int: a kernel taking its sizes as ints traces from the shell."""
    (work / "kernel.py").write_text("import numpy as np\n\ndef kernel(TSTEPS, N, A):\n"
                                    "    acc = np.zeros((N,), A.dtype)\n"
                                    "    for t in range(TSTEPS):\n        acc = acc + A[:N] * (t + 1)\n"
                                    "    return acc\n")
    res = ok(cli("trace", "kernel.py:kernel", "--arg", "TSTEPS=3", "--arg", "N=2", "--arg", "A=f32[4]", cwd=work))
    prog = vmapc.parse(res.stdout)
    assert [str(t) for t in prog.in_types] == ["f32[4]"] and prog.arg_names == ["A"]
    a = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(vmapc.eval(prog, a)[0], a[:2] * 6)


# --- show ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["py", "vir"])
def test_show_traced(work, vir, source, data):
    model = ["model.py:mlp", *SPECS] if source == "py" else ["mlp.vir"]
    res = ok(cli("show", *model, "--stage", "traced", cwd=work))
    prog = vmapc.parse(res.stdout)
    assert prog == vmapc.parse(vir.read_text())
    assert "loc(" not in res.stdout
    assert "loc(" in ok(cli("show", *model, "--locations", cwd=work)).stdout


@pytest.mark.parametrize("source,batch", [("vir", "dynamic"), ("vir", "5"), ("vir", None), ("py", "5")])
def test_show_batched_computes_the_per_example_loop(work, vir, source, batch, data):
    model = ["model.py:mlp", *SPECS] if source == "py" else ["mlp.vir"]
    extra = ["--batch", batch] if batch else []               # show defaults to a dynamic batch
    res = ok(cli("show", *model, "--in-dims", "0,None,None", *extra, "--stage", "batched", cwd=work))
    prog = vmapc.parse(res.stdout)
    size = "5" if batch == "5" else "B"
    assert [str(t) for t in prog.in_types] == [f"f32[{size},64]", "f32[64,32]", "f32[32,10]"]
    assert f"x:f32[{size},64]@0" in res.stdout               # the batch dim is shown after @
    assert [str(t) for t in prog.out_types] == [f"f32[{size},10]"]
    if batch == "5":
        (y,) = vmapc.eval(prog, data["xs"], data["w1"], data["w2"])
        np.testing.assert_allclose(y, loop_mlp(data["xs"], data["w1"], data["w2"]), rtol=1e-5, atol=1e-6)


def test_show_batched_with_a_negative_in_dim(work, vir, data):
    res = ok(cli("show", "mlp.vir", "--in-dims", "-1,None,None", "--batch", "5", "--stage", "batched", cwd=work))
    prog = vmapc.parse(res.stdout)
    assert str(prog.in_types[0]) == "f32[64,5]"
    (y,) = vmapc.eval(prog, data["xs"].T.copy(), data["w1"], data["w2"])
    np.testing.assert_allclose(y, loop_mlp(data["xs"], data["w1"], data["w2"]), rtol=1e-5, atol=1e-6)


MLIR_CASES = [("vir", [], "tensor<64xf32>"),
              ("vir", ["--in-dims", "0,None,None", "--batch", "7"], "tensor<7x64xf32>"),
              ("vir", ["--in-dims", "0,None,None", "--batch", "dynamic"], "tensor<?x64xf32>"),
              ("py", ["--in-dims", "0,None,None"], "tensor<?x64xf32>"),     # show's default batch: dynamic
              ("vir", ["--in-dims", "0,None,None", "--target", "vulkan"], "tensor<?x64xf32>")]


@pytest.mark.parametrize("source,batching,arg0", MLIR_CASES, ids=[str(i) for i in range(len(MLIR_CASES))])
def test_show_mlir(work, vir, source, batching, arg0):
    model = ["model.py:mlp", *SPECS] if source == "py" else ["mlp.vir"]
    res = ok(cli("show", *model, *batching, "--stage", "mlir", cwd=work))
    head = next(ln for ln in res.stdout.splitlines() if "func.func" in ln)
    assert "@mlp(" in head
    assert f"%arg0: {arg0}" in head and "tensor<64x32xf32>" in head and "tensor<32x10xf32>" in head
    assert "linalg" in res.stdout


# --- compile and the manifest --------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["dynamic", "static"])
def test_manifest_describes_the_program(work, which, request, data):
    art = request.getfixturevalue(f"art_{which}")
    m = json.loads((art / "manifest.json").read_text())
    size = "B" if which == "dynamic" else "4"
    assert m["format"] == "vmapc-artifact" and m["version"] == 1
    assert m["function"] == "mlp" == m["entry"]
    names = list(inspect.signature(mlp).parameters)
    y0 = mlp(data["x0"], data["w1"], data["w2"])
    assert [a["name"] for a in m["inputs"]] == names
    assert [a["example_type"] for a in m["inputs"]] == [
        f"f32[{','.join(map(str, data[n if n != 'x' else 'x0'].shape))}]" for n in names]
    assert [a["type"] for a in m["inputs"]] == [f"f32[{size},64]", "f32[64,32]", "f32[32,10]"]
    assert [a["in_dim"] for a in m["inputs"]] == [0, None, None] == m["in_dims"]
    assert m["outputs"] == [{"name": "out", "type": f"f32[{size},{y0.shape[0]}]",
                             "example_type": f"f32[{y0.shape[0]}]", "out_dim": 0}]
    assert m["out_dims"] == [0]
    assert m["batch"] == ("dynamic" if which == "dynamic" else 4)
    assert m["vmapc_version"] == vmapc.__version__
    from iree.compiler import version as iree_version
    assert m["iree_version"] == iree_version.VERSION
    # the IR files: the traced program, and the batched one whose hash the manifest carries
    traced = vmapc.parse((art / "model.vir").read_text())
    batched = vmapc.parse((art / "batched.vir").read_text())
    from vmapc.targets import get_target
    labels = ["cpu"] if which == "dynamic" else ["cpu", "cpu:generic"]
    assert list(m["targets"]) == labels
    for label in labels:
        entry, t = m["targets"][label], get_target(label)
        assert entry["file"] == label.replace(":", "-") + ".vmfb" and (art / entry["file"]).is_file()
        assert entry["sha256"] == hashlib.sha256((art / entry["file"]).read_bytes()).hexdigest()
        assert entry["target"] == "cpu" and set(t.flags) <= set(entry["flags"])
        assert entry["driver"] == t.choose_driver([batched])
    assert "--iree-llvmcpu-target-cpu=host" in m["targets"]["cpu"]["flags"]
    assert traced == vmapc.trace(mlp, *(vmapc.f32[s] for s in SHAPES.values()))
    assert [str(t) for t in batched.in_types] == [a["type"] for a in m["inputs"]]
    assert m["ir_hash"] == hashlib.sha256(batched.canonical().encode()).hexdigest()


def test_compile_without_in_dims_compiles_the_example_program(work, vir, data):
    ok(cli("compile", "mlp.vir", "-o", "art_plain", cwd=work))
    m = json.loads((work / "art_plain" / "manifest.json").read_text())
    assert m["batch"] is None and m["in_dims"] == [None] * 3 and not (work / "art_plain" / "batched.vir").exists()
    assert [a["type"] for a in m["inputs"]] == [a["example_type"] for a in m["inputs"]]
    res = ok(cli("run", "art_plain", *inputs("x0.npy"), "--output-dir", "res_plain", cwd=work))
    assert "out: float32[10]" in res.stdout
    np.testing.assert_allclose(np.load(work / "res_plain" / "out.npy"), mlp(data["x0"], data["w1"], data["w2"]),
                               **MLP_TOL)


def test_compile_is_quiet_in_a_pipe_and_shows_progress_on_a_terminal(work, vir):
    args = ["compile", "mlp.vir", "--in-dims", "0,None,None", "--batch", "dynamic", "--target", "cpu"]
    piped = ok(cli(*args, "-o", "art_piped", cwd=work))
    assert piped.stderr == "" and piped.stdout == ""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([*VMAPC, *args, "-o", "art_tty"], cwd=work, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:                                  # EIO: the other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0, tty
    assert "Traceback" not in tty
    assert "cpu: compiling" in tty and "cpu: compiled in" in tty and "art_tty/cpu.vmfb" in tty
    assert "wrote art_tty" in tty
    assert proc.stdout == b""
    assert (work / "art_tty" / "manifest.json").is_file()


# --- run -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x", ["xs", "x4"])
def test_run_dynamic_artifact_matches_the_per_example_loop(work, art_dynamic, data, x):
    out = f"res_dyn_{x}"
    res = ok(cli("run", "art_dyn", *inputs(f"{x}.npy"), "--output-dir", out, cwd=work))
    expected = loop_mlp(data[x], data["w1"], data["w2"])
    got = np.load(work / out / "out.npy")
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, **MLP_TOL)
    lines = res.stdout.strip().splitlines()
    shape = ", ".join(map(str, expected.shape))
    assert lines[0] == f"out: float32[{shape}] -> {out}/out.npy"
    assert re.fullmatch(r"ran mlp on cpu \(local-sync\) in \d+\.\d+ ms", lines[1]), lines[1]
    assert res.stderr == ""


def test_run_prints_shapes_without_output_dir(work, art_static, data):
    res = ok(cli("run", "art_static", *inputs("x4.npy"), "--driver", "local-task", cwd=work))
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "out: float32[4, 10]"
    assert re.fullmatch(r"ran mlp on cpu \(local-task\) in \d+\.\d+ ms", lines[1]), lines[1]
    res = ok(cli("run", "art_static", "--target", "cpu:generic", *inputs("x4.npy"), "--output-dir", "res_generic",
                 cwd=work))
    assert "ran mlp on cpu:generic" in res.stdout
    np.testing.assert_allclose(np.load(work / "res_generic" / "out.npy"), loop_mlp(data["x4"], data["w1"], data["w2"]),
                               **MLP_TOL)


def test_round_trip_trace_compile_from_vir_run(work, data):
    """trace -> .vir -> compile from the .vir -> run: the results are the Python function's, per example."""
    ok(cli("trace", "model.py:mlp", "--arg", "x=x0.npy", "--arg", "w1=w1.npy", "--arg", "w2=w2.npy",
           "-o", "rt.vir", cwd=work))
    ok(cli("compile", "rt.vir", "--in-dims", "0,None,None", "--batch", "5", "-o", "rt_art", cwd=work))
    ok(cli("run", "rt_art", *inputs(), "--output-dir", "rt_res", cwd=work))
    np.testing.assert_allclose(np.load(work / "rt_res" / "out.npy"), loop_mlp(data["xs"], data["w1"], data["w2"]),
                               **MLP_TOL)


def test_named_outputs_and_out_dims(work, data):
    """A function returning a dict: results are named by its keys; --out-dims moves each batch axis."""
    ok(cli("trace", "stats.py:stats", "--arg", "x=f32[4,5]", "--arg", "scale=f32[]", "-o", "stats.vir",
           cwd=work))
    ok(cli("compile", "stats.vir", "--in-dims", "0,None", "--out-dims", "0,1", "--batch", "3",
           "-o", "stats_art", cwd=work))
    m = json.loads((work / "stats_art" / "manifest.json").read_text())
    expected = {k: [stats_np(x, data["scale"])[k] for x in data["sx"]] for k in ("peak", "rowsum")}
    assert sorted(o["name"] for o in m["outputs"]) == ["peak", "rowsum"]
    dims = {o["name"]: o["out_dim"] for o in m["outputs"]}
    res = ok(cli("run", "stats_art", "--input", "x=sx.npy", "--input", "scale=scale.npy", "--output-dir", "sres",
                 cwd=work))
    for name, per_example in expected.items():
        want = np.stack(per_example, axis=dims[name])
        np.testing.assert_allclose(np.load(work / "sres" / f"{name}.npy"), want, **MLP_TOL)
        assert f"{name}: float32[{', '.join(map(str, want.shape))}]" in res.stdout
    assert dims == {"peak": 0, "rowsum": 1}                   # outputs in the function's (sorted) key order


def test_compile_and_run_on_vulkan(work, vir, data):
    reason = vulkan_reason()
    if reason:
        print(f"SKIP vulkan: {reason}")
        pytest.skip(reason)
    ok(cli("compile", "mlp.vir", "--in-dims", "0,None,None", "--batch", "5", "--target", "cpu,vulkan",
           "-o", "art_vk", cwd=work))
    m = json.loads((work / "art_vk" / "manifest.json").read_text())
    assert list(m["targets"]) == ["cpu", "vulkan"]
    vk = m["targets"]["vulkan"]
    assert "--iree-hal-target-device=vulkan" in vk["flags"] and vk["driver"] == "vulkan"
    assert vk["output_storage"] is True and m["targets"]["cpu"]["output_storage"] is False
    assert vk["sha256"] == hashlib.sha256((work / "art_vk" / "vulkan.vmfb").read_bytes()).hexdigest()
    expected = loop_mlp(data["xs"], data["w1"], data["w2"])
    ok(cli("run", "art_vk", "--target", "cpu", *inputs(), "--output-dir", "vk_cpu", cwd=work))
    np.testing.assert_allclose(np.load(work / "vk_cpu" / "out.npy"), expected, **MLP_TOL)
    res = ok(cli("run", "art_vk", "--target", "vulkan", *inputs(), "--output-dir", "vk_res", cwd=work))
    assert "on vulkan (vulkan)" in res.stdout
    np.testing.assert_allclose(np.load(work / "vk_res" / "out.npy"), expected, rtol=1e-4, atol=1e-4)


# --- targets and rules ---------------------------------------------------------------------------------

def test_targets(work):
    if importlib.util.find_spec("vmapc.targets") is None:
        reason = "vmapc.targets (compiler/targets.py) does not exist yet"
        print(f"SKIP: {reason}")
        res = cli("targets", cwd=work)
        assert_error(res, 1, "target list is not available")      # still no traceback
        pytest.skip(reason)
    res = ok(cli("targets", cwd=work))
    for name in ("cpu", "vulkan", "cuda"):
        assert re.search(rf"^{name}\s", res.stdout, re.M), name
    rows = json.loads(ok(cli("targets", "--json", cwd=work)).stdout)
    assert {r["name"] for r in rows} >= {"cpu", "vulkan", "cuda"}
    for r in rows:
        assert {"name", "can_compile", "can_run", "devices", "reason"} <= set(r)
    cpu = next(r for r in rows if r["name"] == "cpu")
    assert cpu["can_compile"] and cpu["can_run"]


def test_rules_lists_every_op_with_family_and_kind(work):
    from vmapc.rules import rule_kind
    res = ok(cli("rules", cwd=work))
    table = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in OPS:
            table[parts[0]] = (parts[1], parts[2])
    assert set(table) == set(OPS)
    for name, op in OPS.items():
        assert table[name] == (op.family, rule_kind(name)), name
        assert table[name][1] in ("native", "family", "fallback")
    assert res.stdout.strip().splitlines()[-1].startswith(f"{len(OPS)} ops:")
    rows = json.loads(ok(cli("rules", "--json", cwd=work)).stdout)
    assert {r["op"]: (r["family"], r["rule"]) for r in rows} == table


# --- bad input: models, specs, dims, targets --------------------------------------------------------------

BAD_MODEL_CASES = [
    # (args, exit status, fragments of the one-line message)
    (["trace", "missing.py:mlp", "--arg", "x=f32[3]"], 1, ["missing.py", "no such file"]),
    (["trace", "model.py:nope", *SPECS], 1, ["no function 'nope'", "its functions: mlp"]),
    (["trace", "model.py", *SPECS], 2, ["FILE.py:FUNCTION"]),
    (["trace", "raises.py:f", "--arg", "x=f32[3]"], 1, ["importing it failed", "RuntimeError: broken at import",
                                                        "raises.py:2"]),
    (["trace", "branchy.py:f", "--arg", "x=f32[3]"], 1, ["TracerBoolConversionError", "where",
                                                         "branchy.py:4", "if x.sum() > 0:"]),
    (["trace", "oops.py:f", "--arg", "x=f32[3]"], 1, ["NameError", "undefined_name", "oops.py:4"]),
    (["trace", "model.py:mlp", "--arg", "x=q32[64]", *SPECS[1:]], 2, ["--arg x", "unknown dtype 'q32'", "f32"]),
    (["trace", "model.py:mlp", "--arg", "x=f32[64,a]", *SPECS[1:]], 2, ["--arg x", "bad shape"]),
    (["trace", "model.py:mlp", "--arg", "x=f32[-1]", *SPECS[1:]], 2, ["--arg x", "bad shape"]),
    (["trace", "model.py:mlp", "--arg", "x=f32", *SPECS[1:]], 2, ["--arg x", "DTYPE[SHAPE]"]),
    (["trace", "model.py:mlp", "--arg", "x", *SPECS[1:]], 2, ["--arg 'x'", "NAME=DTYPE[SHAPE]"]),
    (["trace", "model.py:mlp", *SPECS, "--arg", "z=f32[1]"], 2, ["--arg z", "no parameter 'z'", "x, w1, w2"]),
    (["trace", "model.py:mlp", *SPECS[:2]], 2, ["missing --arg", "w2"]),
    (["trace", "model.py:mlp", *SPECS, "--arg", "x=f32[2]"], 2, ["--arg x is given twice"]),
    (["trace", "model.py:mlp", "--arg", "x=nothere.npy", *SPECS[1:]], 1, ["--arg x", "nothere.npy", "no such file"]),
    (["trace", "model.py:mlp", "--arg", "x=f32[3]", *SPECS[1:]], 1, ["ShapeError", f"model.py:{MATMUL_LINE}"]),
    (["trace", "mlp.vir", "--arg", "x=f32[3]"], 2, ["--arg is for FILE.py:FUNCTION"]),
    (["show", "missing.vir"], 1, ["missing.vir", "no such file"]),
]


@pytest.mark.parametrize("args,rc,fragments", BAD_MODEL_CASES, ids=[" ".join(c[0][:3]) for c in BAD_MODEL_CASES])
def test_bad_models_and_arg_specs(work, vir, args, rc, fragments):
    assert_error(cli(*args, cwd=work), rc, *fragments)


DIM_CASES = [
    (["--in-dims", "0,None"], ["--in-dims has 2 entries", "3 inputs"]),
    (["--in-dims", "0,None,None,None"], ["--in-dims has 4 entries", "3 inputs"]),
    (["--in-dims", "0,None,3"], ["entry 2 is 3", "`w2` is f32[32,10]", "valid: -3..2"]),
    (["--in-dims", "-3,None,None"], ["entry 0 is -3", "`x` is f32[64]", "valid: -2..1"]),
    (["--in-dims", "0,x,None"], ["entry 1 (w1) is 'x'", "int"]),
    (["--in-dims", "0.5,None,None"], ["entry 0 (x) is '0.5'"]),
    (["--in-dims", "None,None,None"], ["at least one input"]),
    (["--in-dims", "0,None,None", "--out-dims", "2"], ["--out-dims", "entry 0 is 2", "valid: -2..1"]),
    (["--in-dims", "0,None,None", "--out-dims", "0,0"], ["--out-dims has 2 entries", "has 1 output;"]),
    (["--batch", "4"], ["--batch needs --in-dims"]),
    (["--out-dims", "0"], ["--out-dims needs --in-dims"]),
    (["--in-dims", "0,None,None", "--batch", "0"], ["--batch", "positive int or 'dynamic'"]),
    (["--in-dims", "0,None,None", "--batch", "many"], ["--batch", "'many'"]),
]


# `show` and `compile` share the checks: every case through show, a few through compile too.
DIM_RUNS = [("show", *c) for c in DIM_CASES] + [("compile", *DIM_CASES[i]) for i in (0, 2, 4, 9, 10)]


@pytest.mark.parametrize("command,dims,fragments", DIM_RUNS, ids=[f"{c[0]} {' '.join(c[1])}" for c in DIM_RUNS])
def test_bad_dims(work, vir, command, dims, fragments):
    extra = ["--batch", "4"] if command == "compile" and "--batch" not in dims and "--in-dims" in dims else []
    out = ["-o", "never_written"] if command == "compile" else ["--stage", "batched"]
    assert_error(cli(command, "mlp.vir", *dims, *extra, *out, cwd=work), 2, *fragments)
    assert not (work / "never_written").exists()


def test_compile_usage_errors(work, vir):
    base = ["compile", "mlp.vir", "--in-dims", "0,None,None", "-o", "never_written"]
    assert_error(cli(*base, cwd=work), 2, "--in-dims needs --batch")
    assert_error(cli(*base, "--batch", "4", "--target", "tpu", cwd=work), 2, "unknown target 'tpu'",
                 "cpu, vulkan, cuda")
    assert_error(cli(*base, "--batch", "4", "--target", "cpu,gpu", cwd=work), 2, "unknown target 'gpu'")
    assert_error(cli(*base, "--batch", "4", "--target", ",", cwd=work), 2, "--target")
    assert_error(cli(*base, "--batch", "4", "--target", "cuda:sm_1", cwd=work), 2, "--target", "unknown arch 'sm_1'")
    assert_error(cli("show", "mlp.vir", "--stage", "batched", cwd=work), 2, "--stage batched needs --in-dims")
    assert_error(cli("show", "mlp.vir", "--stage", "mlir", "--target", "cpu,vulkan", cwd=work), 2, "one target")
    assert not (work / "never_written").exists()


CORRUPT_VIR = {
    "garbage.vir": lambda t: "this is not IR at all\n{{{ }\n",
    "empty.vir": lambda t: "",
    "truncated.vir": lambda t: "\n".join(t.splitlines()[:6]) + "\n",
    "unknown_op.vir": lambda t: t.replace("= tanh", "= tanhh"),
    "type_error.vir": lambda t: re.sub(r"(\w+):f32\[10\] = tanh", r"\1:f32[11] = tanh", t),
    "undefined_value.vir": lambda t: re.sub(r"= tanh \w+", "= tanh zz", t),
    "binary.vir": None,
}


VIR_RUNS = [("show", n) for n in CORRUPT_VIR] + [("compile", "truncated.vir"), ("compile", "type_error.vir")]


@pytest.mark.parametrize("command,name", VIR_RUNS, ids=[f"{c} {n}" for c, n in VIR_RUNS])
def test_corrupt_vir(work, vir, name, command):
    make = CORRUPT_VIR[name]
    path = work / name
    if make is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        text = make(vir.read_text())
        assert text != vir.read_text()
        path.write_text(text)
    args = [command, name] + (["--in-dims", "0,None,None", "--batch", "2", "-o", "never_written"]
                              if command == "compile" else [])
    line = assert_error(cli(*args, cwd=work), 1, name)
    if make is not None:
        assert "not a valid vmapc IR file" in line, line
    if name in ("garbage.vir", "unknown_op.vir", "undefined_value.vir"):
        assert re.search(r"line \d+", line), line           # the parser says where
    if name == "type_error.vir":
        assert "tanh" in line and "f32[11]" in line and "f32[10]" in line, line
    assert not (work / "never_written").exists()


# --- bad input: artifacts ------------------------------------------------------------------------------

def _copy(art_dynamic, work, name):
    dst = work / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(art_dynamic, dst)
    return dst


def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _resign(path, target="cpu"):
    data = (path / f"{target}.vmfb").read_bytes()
    _edit_manifest(path, lambda m: m["targets"][target].update(sha256=hashlib.sha256(data).hexdigest(),
                                                                 bytes=len(data)))


def _corrupt(kind, art, art_static):
    if kind == "no_manifest":
        (art / "manifest.json").unlink()
    elif kind == "bad_json":
        (art / "manifest.json").write_text('{"format": "vmapc-artifact", ')
    elif kind == "wrong_format":
        _edit_manifest(art, lambda m: m.__setitem__("format", "something-else"))
    elif kind == "wrong_version":
        _edit_manifest(art, lambda m: m.__setitem__("version", 99))
    elif kind == "bad_type":
        _edit_manifest(art, lambda m: m["inputs"][0].__setitem__("type", "f32[B,,64"))
    elif kind == "no_inputs_key":
        _edit_manifest(art, lambda m: m.pop("inputs"))
    elif kind == "missing_vmfb":
        (art / "cpu.vmfb").unlink()
    elif kind == "truncated_vmfb":
        data = (art / "cpu.vmfb").read_bytes()
        (art / "cpu.vmfb").write_bytes(data[: len(data) // 3])
    elif kind == "flipped_byte":
        data = bytearray((art / "cpu.vmfb").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (art / "cpu.vmfb").write_bytes(bytes(data))
    elif kind == "garbage_vmfb_resigned":      # checksum updated: IREE itself must reject the file
        (art / "cpu.vmfb").write_bytes(b"not a flatbuffer" * 64)
        _resign(art)
    elif kind == "signature_mismatch":         # the manifest claims another input shape
        _edit_manifest(art, lambda m: m["inputs"][0].__setitem__("type", "f32[B,63]"))
    elif kind == "module_from_other_build":    # a valid module of another signature, re-signed
        shutil.copy(art_static / "cpu.vmfb", art / "cpu.vmfb")
        _resign(art)
    elif kind == "entry_missing":
        _edit_manifest(art, lambda m: m.__setitem__("entry", "predict"))
    else:
        raise AssertionError(kind)


ARTIFACT_CASES = {
    "no_manifest": ["not a vmapc artifact", "no manifest.json"],
    "bad_json": ["cannot read the manifest"],
    "wrong_format": ["not a vmapc artifact manifest"],
    "wrong_version": ["format version 99", "reads version 1"],
    "bad_type": ["bad manifest", "inputs[0]", "f32[B,,64"],
    "no_inputs_key": ["bad manifest", "'inputs'"],
    "missing_vmfb": ["cpu.vmfb is missing"],
    "truncated_vmfb": ["bytes, the manifest says", "corrupt"],
    "flipped_byte": ["checksum mismatch"],
    "garbage_vmfb_resigned": ["not a valid IREE module"],
    "signature_mismatch": ["does not match the module", "`x`", "f32[B,63]", "tensor<?x64xf32>"],
    "module_from_other_build": ["does not match the module", "tensor<4x64xf32>"],
    "entry_missing": ["entry 'predict'", "it has: mlp"],
}


@pytest.mark.parametrize("kind", list(ARTIFACT_CASES))
def test_corrupt_or_mismatched_artifact(work, art_dynamic, art_static, kind):
    art = _copy(art_dynamic, work, f"bad_{kind}")
    _corrupt(kind, art, art_static)
    res = cli("run", art.name, *inputs(), "--output-dir", f"never_{kind}", cwd=work)
    assert_error(res, 1, "ArtifactError", *ARTIFACT_CASES[kind])
    assert not (work / f"never_{kind}").exists()
    # the same from Python
    with pytest.raises(vmapc.ArtifactError):
        vmapc.load(art)


def test_run_missing_artifact_and_target(work, art_dynamic):
    assert_error(cli("run", "no_such_dir", *inputs(), cwd=work), 1, "no_such_dir", "no such directory")
    assert_error(cli("run", "art_dyn", "--target", "vulkan", *inputs(), cwd=work), 1, "no 'vulkan' build",
                 "it has: cpu")
    assert_error(cli("run", "art_dyn", "--driver", "no-such-driver", *inputs(), cwd=work), 1, "no-such-driver")


RUN_CASES = [
    (["--input", "x=xs.npy", "--input", "w1=w1.npy"], 2, ["missing --input for w2"]),
    ([*inputs(), "--input", "bias=w2.npy"], 2, ["--input bias", "no input 'bias'", "x, w1, w2"]),
    ([*inputs(), "--input", "x=xs.npy"], 2, ["--input x is given twice"]),
    (["--input", "xs.npy", "--input", "w1=w1.npy", "--input", "w2=w2.npy"], 2, ["--input 'xs.npy'",
                                                                              "NAME=FILE.npy"]),
    (inputs("xs_bad_shape.npy"), 1, ["CallError", "`x`", "(5, 63)", "64"]),
    (inputs("xs_f64.npy"), 1, ["CallError", "`x`", "float64", "f32[B,64]"]),
    (inputs("nothere.npy"), 1, ["--input x", "nothere.npy", "no such file"]),
    (inputs("model.py"), 1, ["--input x", "model.py is not a valid .npy file"]),
]


@pytest.mark.parametrize("args,rc,fragments", RUN_CASES, ids=[str(i) for i in range(len(RUN_CASES))])
def test_run_bad_inputs(work, art_dynamic, args, rc, fragments):
    res = cli("run", "art_dyn", *args, "--output-dir", "never_run", cwd=work)
    assert_error(res, rc, *fragments)
    assert not (work / "never_run").exists()


def test_run_static_artifact_rejects_another_batch_size(work, art_static):
    assert_error(cli("run", "art_static", *inputs("xs.npy"), cwd=work), 1, "CallError", "`x`", "(5, 64)",
                 "(4, 64)")


# --- vmapc.load from Python ----------------------------------------------------------------------------

def test_load_by_position_and_by_name(art_dynamic, data):
    model = vmapc.load(art_dynamic)
    xs, w1, w2 = data["xs"], data["w1"], data["w2"]
    expected = loop_mlp(xs, w1, w2)
    assert model.input_names == ["x", "w1", "w2"] and model.output_names == ["out"]
    assert model.target == "cpu"
    np.testing.assert_allclose(model(xs, w1, w2), expected, **MLP_TOL)
    np.testing.assert_allclose(model(w2=w2, x=xs, w1=w1), expected, **MLP_TOL)
    np.testing.assert_allclose(model(x=xs[:1], w1=w1, w2=w2), expected[:1], **MLP_TOL)
    assert "mlp(x: f32[B,64]" in repr(model)


def test_load_call_errors(art_dynamic, data):
    model = vmapc.load(art_dynamic, target="cpu")
    xs, w1, w2 = data["xs"], data["w1"], data["w2"]
    cases = [
        (lambda: model(x=xs, w1=w1), "missing argument(s) w2"),
        (lambda: model(x=xs, w1=w1, w2=w2, b=w2), "unknown argument(s) b"),
        (lambda: model(xs, w1=w1, w2=w2), "either all positionally or all by name"),
        (lambda: model(xs, w1), "takes 3 arguments"),
        (lambda: model(xs.astype(np.float64), w1, w2), "argument `x` has dtype float64"),
        (lambda: model(xs[:, :10], w1, w2), "argument `x` has shape (5, 10)"),
        (lambda: model(xs, w1[:10], w2), "argument `w1` has shape (10, 32)"),
    ]
    for call, fragment in cases:
        with pytest.raises(vmapc.CallError) as info:
            call()
        assert fragment in str(info.value)
    with pytest.raises(vmapc.ArtifactError, match="no 'cuda' build"):
        vmapc.load(art_dynamic, target="cuda")


BLOCKED_RUN = r'''
import sys

class BlockCompiler:
    """Make `import iree.compiler` fail, as where only iree-base-runtime is installed."""
    def find_spec(self, name, path=None, target=None):
        if name == "iree.compiler" or name.startswith("iree.compiler."):
            raise ImportError(f"{name} is blocked for this test")
        return None

sys.meta_path.insert(0, BlockCompiler())
try:
    import iree.compiler  # noqa: F401
    raise SystemExit("the import blocker does not work")
except ImportError:
    pass

import numpy as np
import vmapc.runtime.artifact
import vmapc

art, xs, w1, w2, out = sys.argv[1:]
model = vmapc.load(art)
assert isinstance(model, vmapc.runtime.artifact.Artifact)
np.save(out, model(x=np.load(xs), w1=np.load(w1), w2=np.load(w2)))
leaked = sorted(m for m in sys.modules if m.startswith("iree.compiler"))
assert not leaked, leaked
assert "vmapc.driver" not in sys.modules and "vmapc.lowering" not in sys.modules
print("ok")
'''


def test_load_works_without_the_iree_compiler(work, art_dynamic, data):
    script = work / "blocked_run.py"
    script.write_text(BLOCKED_RUN)
    res = subprocess.run([sys.executable, str(script), "art_dyn", "xs.npy", "w1.npy", "w2.npy", "blocked.npy"],
                         cwd=work, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    np.testing.assert_allclose(np.load(work / "blocked.npy"), loop_mlp(data["xs"], data["w1"], data["w2"]),
                               **MLP_TOL)


def test_import_vmapc_does_not_import_the_compiler():
    code = ("import sys, vmapc, vmapc.runtime, vmapc.runtime.artifact; "
            "print(sorted(m for m in sys.modules if m.startswith('iree.compiler')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# --- vmapc.export from Python --------------------------------------------------------------------------

def test_export_a_python_function(tmp_path, vmapc_shared_cache, data):
    m = vmapc.export(mlp, tmp_path / "exp", args=[vmapc.f32[64], data["w1"], data["w2"]],
                     in_dims=(0, None, None), batch="dynamic")
    assert [a["name"] for a in m["inputs"]] == ["x", "w1", "w2"]
    model = vmapc.load(tmp_path / "exp")
    np.testing.assert_allclose(model(data["xs"], data["w1"], data["w2"]),
                               loop_mlp(data["xs"], data["w1"], data["w2"]), **MLP_TOL)
    with pytest.raises(TypeError, match="args"):
        vmapc.export(mlp, tmp_path / "exp2")
    with pytest.raises(vmapc.TargetError, match="unknown target"):
        vmapc.export(vmapc.trace(mlp, vmapc.f32[64], data["w1"], data["w2"]), tmp_path / "exp3",
                     targets=["tpu"])


# --- random numbers --------------------------------------------------------------------------------

NOISY = '''
import vmapc.random as vr

def noisy(x, key):
    return x + vr.normal(key, x.shape)
'''


def test_randomness_option_of_show(work):
    """--randomness: a shared key is refused by default at the draw's line; 'different' gives
    the batched program the example_offset input; 'same' does not need it."""
    (work / "noisy.py").write_text(NOISY)
    args = ["noisy.py:noisy", "--arg", "x=f32[3]", "--arg", "key=u32[2]", "--in-dims", "0,None",
            "--stage", "batched"]
    assert_error(cli("show", *args, cwd=work), 1, "BatchingError", "vmapc.random.normal draws from a key",
                 "--randomness", "noisy.py:5")
    out = ok(cli("show", *args, "--randomness", "different", cwd=work)).stdout
    assert "example_offset:u32[]" in out and "threefry2x32" in out
    out = ok(cli("show", *args, "--randomness", "same", cwd=work)).stdout
    assert "example_offset" not in out
    assert_error(cli("show", *args, "--randomness", "often", cwd=work), 2, "--randomness")
