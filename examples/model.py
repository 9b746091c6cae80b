"""The model of the README's command-line walk-through: a small MLP for one input.

    vmapc trace examples/model.py:mlp --arg x=f32[64] --arg w1=f32[64,32] --arg w2=f32[32,10] -o mlp.vir
    vmapc compile mlp.vir --in-dims 0,None,None --batch dynamic --target cpu -o mlp_out/
    vmapc run mlp_out/ --input x=xs.npy --input w1=w1.npy --input w2=w2.npy --output-dir results/
"""

import numpy as np


def mlp(x, w1, w2):
    h = np.maximum(x @ w1, 0.0)
    return np.tanh(h @ w2)
