"""Statistics: ``cov``, ``corrcoef``, ``histogram`` (a static number of bins or static edges)
and ``bincount`` (a static ``minlength``).

Counting is a one-hot comparison and a sum: each element is compared with every bin and
the matches are added up (O(elements x bins) work, no scatter), which gives exactly
NumPy's counts. The result's length must be known while tracing, so ``bincount`` of
traced values has exactly ``minlength`` bins (values outside ``[0, minlength)`` are not
counted, where NumPy would grow the result or raise), and ``histogram``'s bins are a
static count or static edges; the edges themselves may depend on the data (the default
range is the data's min and max)."""

from __future__ import annotations

import builtins
import operator

import numpy as _np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, TracingError, UnsupportedError
from ..tracing import user_loc

from ._core import _has_tracer, _implements, _is_tracer, _var, _wrap
from .contractions import dot
from .creation import linspace
from .matrices import diag
from .reductions import max, min, sum
from .shape import concatenate, ravel, reshape, squeeze, transpose
from .ufuncs import (add, astype, clip, conjugate, divide, equal, greater_equal, less, less_equal, logical_and, multiply,
                     sqrt, subtract, true_divide, where)


def _asarray(x, what):
    return x if _is_tracer(x) else _wrap(_var(_np.asarray(x)))


# --- cov, corrcoef ---------------------------------------------------------------------------------

def _check_weights(name, w, n):
    w = w if _is_tracer(w) else _np.asarray(w, dtype=float)
    if w.ndim > 1:
        raise ShapeError(f"numpy.cov: cannot handle multidimensional {name}", user_loc())
    if w.shape[0] != n:
        raise ShapeError(f"numpy.cov: incompatible numbers of samples and {name}", user_loc())
    if not _is_tracer(w):
        if name == "fweights" and not _np.all(w == _np.around(w)):
            raise DTypeError("numpy.cov: fweights must be integer", user_loc())
        if (w < 0).any():
            raise ShapeError(f"numpy.cov: {name} cannot be negative", user_loc())
    return w if _is_tracer(w) else _wrap(_var(w))


@_implements(_np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """NumPy's covariance: rows are variables (``rowvar``), columns observations; float64
    unless ``dtype`` says otherwise. Traced weights are not checked for being whole or
    non-negative (NumPy raises); a traced weight total at or below ``ddof`` gives inf/NaN
    as NumPy's warning case does."""
    if not _has_tracer((m, y, fweights, aweights)):
        return _np.cov(m, y, rowvar, bias, ddof, fweights, aweights, dtype=dtype)
    if ddof is not None and ddof != int(ddof):
        raise ShapeError("numpy.cov: ddof must be integer", user_loc())
    m = _asarray(m, "m")
    if m.ndim > 2:
        raise ShapeError("numpy.cov: m has more than 2 dimensions", user_loc())
    if y is not None:
        y = _asarray(y, "y")
        if y.ndim > 2:
            raise ShapeError("numpy.cov: y has more than 2 dimensions", user_loc())
    if dtype is None:
        dtype = _np.result_type(m.dtype, _np.float64) if y is None else _np.result_type(m.dtype, y.dtype, _np.float64)
    d = dt.canonical(dtype, "numpy.cov dtype")
    X = astype(m, d)
    X = reshape(X, (1,) * (2 - X.ndim) + X.shape)
    if not rowvar and m.ndim != 1:
        X = transpose(X)
    if X.shape[0] == 0:
        return _np.array([]).reshape(0, 0)
    if y is not None:
        Y = astype(y, d)
        Y = reshape(Y, (1,) * (2 - Y.ndim) + Y.shape)
        if not rowvar and Y.shape[0] != 1:
            Y = transpose(Y)
        X = concatenate((X, Y), axis=0)
    if ddof is None:
        ddof = 1 if bias == 0 else 0
    n = X.shape[1]
    w = None
    if fweights is not None:
        w = _check_weights("fweights", fweights, n)
    if aweights is not None:
        aw = _check_weights("aweights", aweights, n)
        w = aw if w is None else multiply(w, aw)
    if w is None:
        avg = divide(sum(X, axis=1), _np.asarray(n, d))
        with _np.errstate(divide="ignore"):
            inv = _np.true_divide(1, builtins.max(n - ddof, 0.0))   # a float64 scalar, as in NumPy
    else:
        w_sum = sum(w)
        avg = divide(sum(multiply(X, w), axis=1), w_sum)
        if ddof == 0:
            fact = w_sum
        elif aweights is None:
            fact = subtract(w_sum, ddof)
        else:
            fact = subtract(w_sum, divide(multiply(ddof, sum(multiply(w, aw))), w_sum))
        fact = where(less_equal(fact, 0), 0.0, fact)
        inv = true_divide(1, fact)
    X = astype(subtract(X, reshape(avg, avg.shape + (1,))), d)    # NumPy's X -= avg keeps X's dtype
    XT = transpose(X) if w is None else transpose(multiply(X, w))
    c = dot(X, conjugate(XT))
    return squeeze(astype(multiply(c, inv), c.dtype))               # and c *= 1 / fact c's


@_implements(_np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """Pearson correlation coefficients: cov / (stddev stddev^T), clipped to [-1, 1]."""
    if not _has_tracer((x, y)):
        return _np.corrcoef(x, y, rowvar, dtype=dtype)
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return divide(c, c)
    s = sqrt(diag(c))
    c = divide(c, reshape(s, (-1, 1)))
    c = divide(c, reshape(s, (1, -1)))
    return clip(c, -1, 1)


# --- histogram, bincount ---------------------------------------------------------------------------

def _count(hits, weights, ntype):
    """Sum one-hot `hits` (elements x bins) over the elements: counts (int64), or the sum
    of the weights, accumulated in float64 as NumPy's bincount does."""
    if weights is None:
        return sum(astype(hits, _np.int64), axis=0)
    w = reshape(astype(weights, _np.float64), (-1, 1))
    total = sum(where(hits, w, 0.0), axis=0)
    return astype(total, ntype) if ntype != _np.float64 else total


@_implements(_np.bincount)
def bincount(x, weights=None, minlength=0):
    """Occurrences of each value 0 .. minlength - 1 in a vector of non-negative ints (or the
    sum of their weights, float64). Traced values need a static ``minlength``, which is
    the result's length."""
    if not _has_tracer((x, weights)):
        return _np.bincount(x, weights, minlength)
    if _has_tracer((minlength,)):
        raise TracingError("numpy.bincount: minlength must be a static Python int", user_loc())
    minlength = operator.index(minlength) if minlength is not None else 0
    if minlength < 0:
        raise ShapeError("numpy.bincount: 'minlength' must not be negative", user_loc())
    x = _asarray(x, "x")
    if not _np.can_cast(x.dtype, _np.int64, "safe"):
        raise DTypeError(f"numpy.bincount: Cannot cast array data from dtype('{x.dtype}') to dtype('int64') "
                         "according to the rule 'safe'", user_loc())
    if x.ndim != 1:
        raise ShapeError("numpy.bincount: object too deep for desired array" if x.ndim > 1 else
                         "numpy.bincount: object of too small depth for desired array", user_loc())
    if _is_tracer(x) and minlength == 0:
        raise UnsupportedError("numpy.bincount of traced values: the result's length (the largest value + 1) "
                               "depends on the data; pass a static minlength, which becomes the length "
                               "(values at or above it are not counted)", user_loc())
    if weights is not None:
        weights = _asarray(weights, "weights")
        if weights.shape != x.shape:
            raise ShapeError("numpy.bincount: The weights and list don't have the same length.", user_loc())
    hits = equal(reshape(astype(x, _np.int64), (-1, 1)), _np.arange(minlength, dtype=_np.int64)[None, :])
    return _count(hits, weights, _np.float64)


def _edges(a, bins, range_):
    """(edges, uniform): NumPy's bin edges for a static count (between the static range or the
    data's traced min and max) or static edges."""
    if _has_tracer((bins,)):
        raise TracingError("numpy.histogram: bins must be static (a count or edges)", user_loc())
    if isinstance(bins, str):
        raise UnsupportedError(f"numpy.histogram: bins={bins!r} chooses the number of bins from the data, "
                               "which gives a shape that depends on the data; pass a count", user_loc())
    if _np.ndim(bins) == 1:
        edges = _np.asarray(bins)
        if _np.any(edges[:-1] > edges[1:]):
            raise ShapeError("numpy.histogram: `bins` must increase monotonically, when an array", user_loc())
        return _wrap(_var(edges)), False
    if _np.ndim(bins) != 0:
        raise ShapeError("numpy.histogram: `bins` must be 1d, when an array", user_loc())
    try:
        n = operator.index(bins)
    except TypeError:
        raise DTypeError("numpy.histogram: `bins` must be an integer, a string, or an array", user_loc()) from None
    if n < 1:
        raise ShapeError("numpy.histogram: `bins` must be positive, when an integer", user_loc())
    if range_ is not None:
        if _has_tracer(tuple(range_)):
            first, last = range_
        else:
            first, last = range_
            if first > last:
                raise ShapeError("numpy.histogram: max must be larger than min in range parameter.", user_loc())
            if not (_np.isfinite(first) and _np.isfinite(last)):
                raise ShapeError(f"numpy.histogram: supplied range of [{first}, {last}] is not finite", user_loc())
            if first == last:
                first, last = first - 0.5, last + 0.5
            bin_type = _np.result_type(first, last, a.dtype)
            if _np.issubdtype(bin_type, _np.integer) or bin_type == _np.bool_:
                bin_type = _np.result_type(bin_type, float)
            edges = _np.linspace(first, last, n + 1, endpoint=True, dtype=bin_type)
            if _np.any(edges[:-1] >= edges[1:]):
                raise ShapeError(f"numpy.histogram: Too many bins for data range. Cannot create {n} finite-sized "
                                 "bins.", user_loc())
            return _wrap(_var(edges)), True
    elif a.size == 0:
        return _wrap(_var(_np.linspace(0, 1, n + 1))), True
    else:
        first, last = min(a), max(a)
    bin_type = _np.result_type(*[x.dtype if _is_tracer(x) else _np.asarray(x).dtype for x in (first, last)],
                               a.dtype)
    if not dt.is_float(bin_type):
        bin_type = _np.float64
    first, last = astype(first, bin_type), astype(last, bin_type)
    same = equal(first, last)
    first = where(same, subtract(first, _np.asarray(0.5, bin_type)), first)
    last = where(same, add(last, _np.asarray(0.5, bin_type)), last)
    return linspace(first, last, n + 1, endpoint=True, dtype=bin_type), True


@_implements(_np.histogram)
def histogram(a, bins=10, range=None, density=None, weights=None):
    """Counts of the (flattened) data in each bin, and the bin edges: NumPy's bins (the last
    one includes its right edge), counts int64 or the weights' dtype, ``density``
    normalizing to a unit integral. The data range defaults to the data's min and max;
    NaN data is not counted (NumPy raises if it makes the default range non-finite, where
    vmapc's edges become NaN and every count 0)."""
    if not _has_tracer((a, weights, range)):
        return _np.histogram(a, bins, range, density, weights)
    a = ravel(_asarray(a, "a"))
    if weights is not None:
        weights = ravel(_asarray(weights, "weights"))
        if weights.shape != a.shape:
            raise ShapeError("numpy.histogram: weights should have the same shape as a.", user_loc())
    edges, uniform = _edges(a, bins, range)
    # equal bins: the data in the edges' dtype, as NumPy bins it; given edges: compared as they are
    x = reshape(astype(a, edges.dtype if uniform else _np.result_type(a.dtype, edges.dtype)), (-1, 1))
    lo, hi = reshape(edges[:-1], (1, -1)), reshape(edges[1:], (1, -1))
    nb = edges.shape[0] - 1
    last = _np.arange(nb) == nb - 1      # the last bin includes its right edge
    hits = logical_and(greater_equal(x, lo), where(last[None, :], less_equal(x, hi), less(x, hi)))
    n = _count(hits, weights, _np.int64 if weights is None else weights.dtype)
    if density:
        db = astype(subtract(edges[1:], edges[:-1]), _np.float64)
        return divide(divide(n, db), sum(n)), edges
    return n, edges
