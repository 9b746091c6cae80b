"""Reference rules of the random family: Threefry-2x32 in NumPy uint32 arithmetic (which
wraps modulo 2**32, as the compiled code's does), and ``key_use``, the identity."""

from __future__ import annotations

import numpy as np

# Threefry-2x32's rotation distances, for the even and the odd groups of four rounds, and the
# constant of its key schedule (Salmon et al. 2011; Random123's threefry.h).
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
PARITY = 0x1BD11BDA


def _rotl(x, r):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds: five groups of four rounds, each group followed by a key
    injection. Operands broadcast; returns the two output words."""
    k0, k1, x0, x1 = (np.asarray(a, dtype=np.uint32) for a in np.broadcast_arrays(k0, k1, x0, x1))
    with np.errstate(over="ignore"):
        ks = (k0, k1, k0 ^ k1 ^ np.uint32(PARITY))
        x0 = x0 + ks[0]
        x1 = x1 + ks[1]
        for i in range(5):
            for r in ROTATIONS[i % 2]:
                x0 = x0 + x1
                x1 = _rotl(x1, r) ^ x0
            x0 = x0 + ks[(i + 1) % 3]
            x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return [np.asarray(x0, np.uint32), np.asarray(x1, np.uint32)]


RULES = {
    "threefry2x32": threefry2x32,
    "key_use": lambda key, *deps, what: key,
}
