#!/usr/bin/env python3
"""Fit the far-tail polynomial of vmapc.random's inverse error function.

vmapc.random computes erfinv(x) = x p(w), w = -log((1 - x)(1 + x)), with Giles' single
precision polynomials (2010) for w < 16, the range of float32 x. vmapc's normal quantile
reaches further (tail probabilities down to 2**-33, w up to 23.1), so a third polynomial
covers w in [16, 24): p(t) in t = sqrt(w) - 4.375, fitted here by least squares on the
relative error at Chebyshev nodes against erfinv in float64 (bisection on math.erfc), with
coefficients rounded to float32. Prints the coefficients (highest degree first) and the
largest relative error of the rounded polynomial evaluated in float64.

    python scripts/fit_erfinv_tail.py
"""

import math

import numpy as np

W_LO, W_HI, CENTER, DEGREE = 15.5, 24.0, 4.375, 7


def erfinv_tail(s):
    """erfinv(1 - 2 s) in float64, for 0 < s <= 1/2, by bisection on erfc."""
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid) > s:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def main():
    k = np.arange(400)
    w = (W_LO + W_HI) / 2 + (W_HI - W_LO) / 2 * np.cos(np.pi * (k + 0.5) / len(k))
    # w = -log((1 - x)(1 + x)) with 1 - x = 2 s: solve 2 s (2 - 2 s) = exp(-w) for s
    q = np.exp(-w)
    s = (2 - np.sqrt(4 - 4 * q)) / 4
    x = 1 - 2 * s
    p = np.array([erfinv_tail(v) for v in s]) / x
    t = np.sqrt(w) - CENTER
    a = np.vander(t, DEGREE + 1) / p[:, None]          # relative error
    coef, *_ = np.linalg.lstsq(a, np.ones_like(p), rcond=None)
    coef = coef.astype(np.float32).astype(np.float64)
    err = np.abs(np.polyval(coef, t) / p - 1).max()
    print("coefficients (highest degree first):")
    print(", ".join(repr(float(np.float32(c))) for c in coef))
    print(f"max relative error on w in [{W_LO}, {W_HI}): {err:.3g}")


if __name__ == "__main__":
    main()
