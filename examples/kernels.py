"""NumPy kernels that write into their arguments, compiled unchanged and run over a batch.

These are the kernels of NumPy benchmark suites (npbench's jacobi_2d, heat_3d, lu, cholesky,
floyd_warshall, plus a dynamic-programming table and a histogram), written for ONE input as
NumPy code is: they fill arrays in place with slices, augmented assignment and np.add.at,
and most return nothing. vmapc compiles each one as it is, batched over independent inputs
(``in_dims=0``: each example gets its own slice of every argument), and after each call the
caller's arrays hold what running the kernel with NumPy on each example would have left in
them. This script checks exactly that, arguments included.

    python examples/kernels.py
"""

import functools

import numpy as np

import vmapc


# --- stencils (npbench) --------------------------------------------------------------------------

def jacobi_2d(TSTEPS, A, B):
    for t in range(1, TSTEPS):
        B[1:-1, 1:-1] = 0.2 * (A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1] + A[:-2, 1:-1])
        A[1:-1, 1:-1] = 0.2 * (B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1] + B[:-2, 1:-1])


def heat_3d(TSTEPS, A, B):
    for t in range(1, TSTEPS):
        B[1:-1, 1:-1, 1:-1] = (0.125 * (A[2:, 1:-1, 1:-1] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[:-2, 1:-1, 1:-1])
                               + 0.125 * (A[1:-1, 2:, 1:-1] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[1:-1, :-2, 1:-1])
                               + 0.125 * (A[1:-1, 1:-1, 2:] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[1:-1, 1:-1, 0:-2])
                               + A[1:-1, 1:-1, 1:-1])
        A[1:-1, 1:-1, 1:-1] = (0.125 * (B[2:, 1:-1, 1:-1] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[:-2, 1:-1, 1:-1])
                               + 0.125 * (B[1:-1, 2:, 1:-1] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[1:-1, :-2, 1:-1])
                               + 0.125 * (B[1:-1, 1:-1, 2:] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[1:-1, 1:-1, 0:-2])
                               + B[1:-1, 1:-1, 1:-1])


# --- factorizations (npbench's lu and cholesky, in place) ----------------------------------------

def lu(A):
    for i in range(A.shape[0]):
        for j in range(i):
            A[i, j] -= A[i, :j] @ A[:j, j]
            A[i, j] /= A[j, j]
        for j in range(i, A.shape[0]):
            A[i, j] -= A[i, :i] @ A[:i, j]


def cholesky(A):
    """Right-looking, with slices: the lower factor overwrites A's lower triangle."""
    n = A.shape[0]
    for k in range(n):
        A[k, k] = np.sqrt(A[k, k])
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= np.outer(A[k + 1:, k], A[k + 1:, k])


# --- graphs and dynamic programming --------------------------------------------------------------

def floyd_warshall(path):
    for k in range(path.shape[0]):
        path[:] = np.minimum(path[:], np.add.outer(path[:, k], path[k, :]))


def seam_energy(energy, M):
    """The cumulative minimum energy of vertical seams (seam carving): each row from the one
    above, its three neighbours taken with shifted views."""
    M[0] = energy[0]
    for i in range(1, energy.shape[0]):
        best = M[i - 1].copy()
        best[1:] = np.minimum(best[1:], M[i - 1, :-1])
        best[:-1] = np.minimum(best[:-1], M[i - 1, 1:])
        M[i] = energy[i] + best
    return M[-1].min()


def edit_distance(a, b, D):
    """Levenshtein distance of two code sequences, filling the table D cell by cell."""
    for i in range(D.shape[0]):
        D[i, 0] = i
    for j in range(D.shape[1]):
        D[0, j] = j
    for i in range(1, D.shape[0]):
        for j in range(1, D.shape[1]):
            D[i, j] = np.minimum(np.minimum(D[i - 1, j] + 1, D[i, j - 1] + 1),
                                 D[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return D[-1, -1]


# --- a histogram with np.add.at ------------------------------------------------------------------

def histogram(x, weights, counts):
    bins = counts.shape[0]
    idx = np.clip(((x + 3.0) / 6.0 * bins).astype(np.int64), 0, bins - 1)
    np.add.at(counts, idx, weights)
    return counts.sum()


# --- checking them -------------------------------------------------------------------------------

def inputs(rng, B):
    """Each kernel with a batch of B independent inputs (batched arguments first in each)."""
    def spd(n):
        m = rng.standard_normal((B, n, n))
        return m @ np.swapaxes(m, 1, 2) + n * np.eye(n)
    dist = rng.uniform(1, 10, (B, 6, 6))
    dist[:, np.arange(6), np.arange(6)] = 0
    return {
        # the time-step count is a Python int that sets the loop's length: bound, not traced
        "jacobi_2d": (functools.partial(jacobi_2d, 4), (rng.standard_normal((B, 8, 8)), rng.standard_normal((B, 8, 8)))),
        "heat_3d": (functools.partial(heat_3d, 3), (rng.standard_normal((B, 6, 6, 6)), rng.standard_normal((B, 6, 6, 6)))),
        "lu": (lu, (spd(6),)),
        "cholesky": (cholesky, (spd(6),)),
        "floyd_warshall": (floyd_warshall, (dist,)),
        "seam_energy": (seam_energy, (rng.random((B, 6, 7)), np.zeros((B, 6, 7)))),
        "edit_distance": (edit_distance, (rng.integers(0, 3, (B, 5)), rng.integers(0, 3, (B, 6)),
                                          np.zeros((B, 6, 7)))),
        "histogram": (histogram, (rng.standard_normal((B, 200)), rng.random((B, 200)), np.zeros((B, 16)))),
    }


def check(name, kernel, args):
    """vmapc.compile(kernel, in_dims=...) over the batch against NumPy, one example at a time."""
    B = args[0].shape[0]
    want = [np.array(a, copy=True) for a in args]
    results = [kernel(*[a[b] for a in want]) for b in range(B)]
    got = [np.array(a, copy=True) for a in args]
    batched = vmapc.compile(kernel, in_dims=0)
    out = batched(*got)
    if results[0] is not None:
        np.testing.assert_allclose(out, np.stack(results), rtol=1e-10, err_msg=name)
    else:
        assert out is None
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"{name}: argument {k}")
    print(f"{name:15s} B={B}: matches NumPy, arguments included")


def main():
    rng = np.random.default_rng(0)
    for name, (kernel, args) in inputs(rng, 4).items():
        check(name, kernel, args)


if __name__ == "__main__":
    main()
