"""The model of the README's command-line walk-through: a small MLP for ONE input vector.

``mlp`` is plain NumPy written for one example: ``x`` is a vector of 64 features,
``w1`` and ``w2`` are weights shared by every example. The ``vmapc`` command traces
it, batches it over ``x`` and compiles it (see README.md, "Command line")::

    vmapc trace examples/model.py:mlp --arg x=f32[64] --arg w1=f32[64,32] --arg w2=f32[32,10] -o mlp.vir
    vmapc show mlp.vir --in-dims 0,None,None --stage batched
    vmapc compile mlp.vir --in-dims 0,None,None --batch dynamic --target cpu -o mlp_out/
    vmapc run mlp_out/ --input x=xs.npy --input w1=w1.npy --input w2=w2.npy --output-dir results/

``mlp_grad`` is the gradient of a squared-error loss with respect to the weights,
made by ``vmapc.grad``: the command line traces, batches and compiles it like any
other function; batched over the examples it gives per-example gradients
(docs/cli.md, "Gradients")::

    vmapc trace examples/model.py:mlp_grad --arg x=f32[64] --arg y=f32[10] --arg w1=f32[64,32] \
        --arg w2=f32[32,10] -o mlp_grad.vir
    vmapc compile mlp_grad.vir --in-dims 0,0,None,None --batch dynamic -o grad_out/

Run as a script, it does the same through the Python API and checks the answer
against a loop over the examples.
"""

import numpy as np

import vmapc


def mlp(x, w1, w2):
    h = np.maximum(x @ w1, 0.0)
    return np.tanh(h @ w2)


def mlp_loss(x, y, w1, w2):
    """The squared error of ``mlp`` on one example with targets ``y``."""
    return np.sum((mlp(x, w1, w2) - y) ** 2)


mlp_grad = vmapc.grad(mlp_loss, argnums=(2, 3))     # (d loss / d w1, d loss / d w2)


if __name__ == "__main__":
    r = np.random.default_rng(0)
    xs = r.standard_normal((256, 64), dtype=np.float32)
    w1 = r.standard_normal((64, 32), dtype=np.float32)
    w2 = r.standard_normal((32, 10), dtype=np.float32)
    batched = vmapc.compile(mlp, in_dims=(0, None, None), batch="dynamic")
    ys = batched(xs, w1, w2)
    expected = np.stack([mlp(x, w1, w2) for x in xs])
    # float32 sums of 64 and 32 products, maybe in another order: ~1e-5 apart at most
    np.testing.assert_allclose(ys, expected, rtol=1e-5, atol=1e-4)
    print(f"mlp over {len(xs)} inputs: {ys.shape}, matches the per-example loop")
