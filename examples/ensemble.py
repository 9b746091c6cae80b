"""Model ensembling: vmap over stacked parameters.

Five copies of the same model, each with its own weights, evaluated on the same
batch of inputs in one compiled call: the parameters carry the ensemble axis and
the inputs are shared. Nesting a vmap over the inputs inside one over the models
gives every (model, input) pair.

Run:  python examples/ensemble.py
"""

import numpy as np

import vmapc


def model(params, x):
    """One model on one input vector."""
    h = np.tanh(x @ params["w"] + params["b"])
    return h @ params["v"]


def main():
    rng = np.random.default_rng(2)
    n_models, n_inputs = 5, 64
    stacked = {
        "w": rng.normal(size=(n_models, 16, 32)).astype(np.float32),
        "b": rng.normal(size=(n_models, 32)).astype(np.float32),
        "v": rng.normal(size=(n_models, 32, 4)).astype(np.float32),
    }
    xs = rng.normal(size=(n_inputs, 16)).astype(np.float32)

    over_inputs = vmapc.vmap(model, in_dims=(None, 0))          # one model, many inputs
    ensemble = vmapc.vmap(over_inputs, in_dims=(0, None))       # many models, the same inputs
    out = ensemble(stacked, xs)                                 # (models, inputs, 4)

    expected = np.stack([
        np.stack([model({k: p[m] for k, p in stacked.items()}, x) for x in xs]) for m in range(n_models)])
    err = np.max(np.abs(out - expected))
    print(f"ensemble output {out.shape}, max |error| vs loops: {err:.2e}")
    assert out.shape == (n_models, n_inputs, 4) and err < 1e-4
    print("OK")


if __name__ == "__main__":
    main()
