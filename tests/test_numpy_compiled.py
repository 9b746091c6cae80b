"""The NumPy API corpus through the full path: trace, lower, IREE CPU run, compare
with NumPy itself.

``tests/test_numpy_api.py`` holds a corpus of plain-NumPy functions with example
arguments (every supported ufunc and function, every dtype, 0-d, size-1 and
broadcast shapes, negative axes, keepdims, Python and NumPy scalars). There they
run on the reference evaluator; here the same traced programs are compiled by
IREE for the CPU and their results compared with NumPy's (except where NumPy's
own result is unspecified: negative floats cast to unsigned integers). The elementwise
ufunc x dtype grid (also covered op by op through IREE in ``test_lowering.py``)
is sampled: every ufunc runs, on every third dtype of its grid.

Compiled float results may differ from NumPy's by a few ulps in transcendental
functions (different polynomial approximations); the tolerances are the corpus's
own, widened to 1e-5 relative for float32 and 1e-12 for float64. IREE's CPU
runtime flushes float32/float64 subnormal results to zero.
"""

import re

import numpy as np
import pytest

import test_numpy_api as corpus
import vmapc
from vmapc import pytree, testing

N_SHARDS = 8    # modules small enough to compile well inside the compile time limit on a loaded machine


def _unspecified(name):
    """Cases whose NumPy result is unspecified: negative floats converted to an unsigned
    dtype (NumPy warns "invalid value encountered in cast"; C leaves it undefined)."""
    return re.search(r"-float\d+-dtype-uint", name) is not None


def _selected():
    names = sorted(n for n in corpus.CASES if not _unspecified(n))
    ufuncs = [n for n in names if n.startswith(("ufunc-", "astype-"))]
    rest = [n for n in names if not n.startswith(("ufunc-", "astype-"))]
    return rest + ufuncs[::3]


def _build(name):
    f, args, tol = corpus.CASES[name]
    want = corpus.run_numpy(f, *args)
    fn = vmapc.trace(f, *args)
    fn.name = "c"
    leaves = pytree.flatten(tuple(args), static=vmapc.arguments.compile_static)[0]   # ints are static
    flat = [np.asarray(x, dtype=v.dtype) for x, v in zip(leaves, fn.inputs)]
    expected = [np.asarray(w) for w in pytree.flatten(want)[0]]
    return testing.Case(name, fn, flat, expected), tol


BUILT = {}
for _n in _selected():
    try:
        BUILT[_n] = _build(_n)
    except vmapc.errors.VmapcError:
        pass      # the corpus also holds functions that must raise at trace time


def test_corpus_is_large():
    assert len(BUILT) > 1000


def _flush_subnormals(x):
    if x.dtype in (np.float32, np.float64):
        return np.where(np.abs(x) < np.finfo(x.dtype).tiny, np.copysign(0.0, x).astype(x.dtype), x)
    return x


@pytest.mark.parametrize("shard", range(N_SHARDS))
def test_compiled_corpus_matches_numpy(shard, vmapc_shared_cache):
    names = sorted(BUILT)[shard::N_SHARDS]
    outs = testing.run_compiled([BUILT[n][0] for n in names], target="cpu", group=40, modules=1)
    failures = []
    for n in names:
        case, tol = BUILT[n]
        got = outs[n]
        for i, (g, w) in enumerate(zip(got, case.expected)):
            rtol = tol["rtol"]
            if w.dtype == np.float32:
                rtol = max(rtol or 0, 1e-5)
            elif w.dtype == np.float64:
                rtol = max(rtol or 0, 1e-12)
            try:
                corpus.assert_same(g, _flush_subnormals(w), rtol=rtol, atol=tol["atol"], what=f"{n} output {i}",
                                   # which zero min/max return for {-0.0, 0.0} is not specified
                                   signed_zeros=not n.startswith(("ufunc-maximum", "ufunc-minimum",
                                                                  "reduce-min", "reduce-max")))
            except AssertionError as e:
                failures.append(str(e).splitlines()[0] + "\n" + "\n".join(str(e).splitlines()[1:6]))
    assert not failures, f"{len(failures)} of {len(names)} cases differ:\n" + "\n".join(failures[:20])
