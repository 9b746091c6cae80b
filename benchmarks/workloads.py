"""The benchmark's workloads.

Each workload is written once per example in plain NumPy (the vmapc way: the
function vmapc traces, batches and compiles), and then, for comparison, as

* ``numpy_batched``: the vectorized NumPy program a person would write for the batch;
* ``mlir(B)``: the batched program a person would write directly in MLIR linalg
  (one GEMM per layer with M = B, one fused generic for an element-wise chain,
  ``linalg.batch_matmul``, ...). IREE compiles it with the same flags as vmapc's
  output and it runs through the same runtime path, so the ratio of the two times
  is the cost of batching and lowering automatically (the "batching tax");
* ``jax_fn`` / ``torch_fn``: the same per-example function in JAX and PyTorch, for
  ``jax.vmap`` and ``torch.func.vmap``.

Every batched argument carries the batch in axis 0; weights are shared (in_dim None).
"""

from __future__ import annotations

import dataclasses

import numpy as np

F32 = np.float32


@dataclasses.dataclass
class Workload:
    name: str
    title: str
    fn: object                    # one example, NumPy
    in_dims: tuple                # 0 for batched arguments, None for shared ones
    shapes: tuple                 # per-example shapes (batched args) or full shapes (shared)
    numpy_batched: object         # the whole batch, NumPy
    mlir: object                  # B -> MLIR text of the batched program, function @main
    jax_fn: object = None         # (jnp) -> per-example function
    torch_fn: object = None       # (torch) -> per-example function
    flops: object = None          # B -> flops of one batched call
    rtol: float = 2e-4
    atol: float = 2e-5

    def inputs(self, batch: int, seed: int = 0, align=None):
        """The batched inputs (float32; batched arguments with a leading dim of `batch`).
        `align(array)` may place each one in aligned memory."""
        rng = np.random.default_rng(seed)
        out = []
        for shape, d in zip(self.shapes, self.in_dims):
            full = (batch, *shape) if d == 0 else tuple(shape)
            a = rng.standard_normal(full, dtype=F32)
            if d is None and len(full) == 2:        # weights: keep activations O(1)
                a *= F32(1.0 / np.sqrt(full[0]))
            out.append(align(a) if align is not None else a)
        return out

    def batched_shapes(self, batch):
        return [(batch, *s) if d == 0 else tuple(s) for s, d in zip(self.shapes, self.in_dims)]


# --- MLP 256 -> 512 -> 10 with ReLU, weights shared ----------------------------------------------

def mlp(x, w1, b1, w2, b2):
    h = np.maximum(x @ w1 + b1, 0.0)
    return h @ w2 + b2


def mlp_batched(x, w1, b1, w2, b2):
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def mlp_mlir(B):
    return f"""
#x = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>
func.func @main(%x: tensor<{B}x256xf32>, %w1: tensor<256x512xf32>, %b1: tensor<512xf32>,
                %w2: tensor<512x10xf32>, %b2: tensor<10xf32>) -> tensor<{B}x10xf32> {{
  %zero = arith.constant 0.0 : f32
  %e1 = tensor.empty() : tensor<{B}x512xf32>
  %z1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<{B}x512xf32>) -> tensor<{B}x512xf32>
  %m1 = linalg.matmul ins(%x, %w1 : tensor<{B}x256xf32>, tensor<256x512xf32>)
                      outs(%z1 : tensor<{B}x512xf32>) -> tensor<{B}x512xf32>
  %h = linalg.generic {{indexing_maps = [#x, #row, #x], iterator_types = ["parallel", "parallel"]}}
      ins(%m1, %b1 : tensor<{B}x512xf32>, tensor<512xf32>) outs(%e1 : tensor<{B}x512xf32>) {{
    ^bb0(%a: f32, %b: f32, %o: f32):
      %s = arith.addf %a, %b : f32
      %r = arith.maximumf %s, %zero : f32
      linalg.yield %r : f32
  }} -> tensor<{B}x512xf32>
  %e2 = tensor.empty() : tensor<{B}x10xf32>
  %z2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<{B}x10xf32>) -> tensor<{B}x10xf32>
  %m2 = linalg.matmul ins(%h, %w2 : tensor<{B}x512xf32>, tensor<512x10xf32>)
                      outs(%z2 : tensor<{B}x10xf32>) -> tensor<{B}x10xf32>
  %y = linalg.generic {{indexing_maps = [#x, #row, #x], iterator_types = ["parallel", "parallel"]}}
      ins(%m2, %b2 : tensor<{B}x10xf32>, tensor<10xf32>) outs(%e2 : tensor<{B}x10xf32>) {{
    ^bb0(%a: f32, %b: f32, %o: f32):
      %s = arith.addf %a, %b : f32
      linalg.yield %s : f32
  }} -> tensor<{B}x10xf32>
  return %y : tensor<{B}x10xf32>
}}
"""


def mlp_jax(jnp):
    def f(x, w1, b1, w2, b2):
        return jnp.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    return f


def mlp_torch(torch):
    def f(x, w1, b1, w2, b2):
        return torch.relu(x @ w1 + b1) @ w2 + b2
    return f


# --- element-wise chain on B x 4096 --------------------------------------------------------------

def elementwise(x):
    return np.tanh(1.5 * x + 0.5) * (1.0 / (1.0 + np.exp(-x)))


def elementwise_mlir(B):
    return f"""
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @main(%x: tensor<{B}x4096xf32>) -> tensor<{B}x4096xf32> {{
  %e = tensor.empty() : tensor<{B}x4096xf32>
  %y = linalg.generic {{indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}}
      ins(%x : tensor<{B}x4096xf32>) outs(%e : tensor<{B}x4096xf32>) {{
    ^bb0(%a: f32, %o: f32):
      %c15 = arith.constant 1.5 : f32
      %c05 = arith.constant 0.5 : f32
      %one = arith.constant 1.0 : f32
      %t0 = arith.mulf %a, %c15 : f32
      %t1 = arith.addf %t0, %c05 : f32
      %t = math.tanh %t1 : f32
      %n = arith.negf %a : f32
      %ex = math.exp %n : f32
      %d = arith.addf %ex, %one : f32
      %s = arith.divf %one, %d : f32
      %r = arith.mulf %t, %s : f32
      linalg.yield %r : f32
  }} -> tensor<{B}x4096xf32>
  return %y : tensor<{B}x4096xf32>
}}
"""


def elementwise_jax(jnp):
    return lambda x: jnp.tanh(1.5 * x + 0.5) * (1.0 / (1.0 + jnp.exp(-x)))


def elementwise_torch(torch):
    return lambda x: torch.tanh(1.5 * x + 0.5) * (1.0 / (1.0 + torch.exp(-x)))


# --- batched matmul B x 64 x 64 @ B x 64 x 64 ----------------------------------------------------

def bmm(a, b):
    return a @ b


def bmm_mlir(B):
    return f"""
func.func @main(%a: tensor<{B}x64x64xf32>, %b: tensor<{B}x64x64xf32>) -> tensor<{B}x64x64xf32> {{
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<{B}x64x64xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<{B}x64x64xf32>) -> tensor<{B}x64x64xf32>
  %c = linalg.batch_matmul ins(%a, %b : tensor<{B}x64x64xf32>, tensor<{B}x64x64xf32>)
                           outs(%z : tensor<{B}x64x64xf32>) -> tensor<{B}x64x64xf32>
  return %c : tensor<{B}x64x64xf32>
}}
"""


# --- single-head attention, 128 tokens x 64 features ---------------------------------------------

SCALE = 0.125  # 1/sqrt(64), a Python float (np.sqrt(64) would promote to float64)


def attention(q, k, v):
    s = (q @ k.T) * SCALE
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return p @ v


def attention_batched(q, k, v):
    s = (q @ np.swapaxes(k, -1, -2)) * F32(SCALE)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def attention_mlir(B):
    # scores as a contraction generic (q @ k^T without a transpose), the scale, linalg.softmax
    # over the keys, and a batch_matmul with v
    T, D = 128, 64
    return f"""
#q = affine_map<(b, i, j, d) -> (b, i, d)>
#k = affine_map<(b, i, j, d) -> (b, j, d)>
#s = affine_map<(b, i, j, d) -> (b, i, j)>
#id = affine_map<(b, i, j) -> (b, i, j)>
func.func @main(%q: tensor<{B}x{T}x{D}xf32>, %k: tensor<{B}x{T}x{D}xf32>, %v: tensor<{B}x{T}x{D}xf32>)
    -> tensor<{B}x{T}x{D}xf32> {{
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<{B}x{T}x{T}xf32>
  %zs = linalg.fill ins(%zero : f32) outs(%es : tensor<{B}x{T}x{T}xf32>) -> tensor<{B}x{T}x{T}xf32>
  %s = linalg.generic {{indexing_maps = [#q, #k, #s],
                        iterator_types = ["parallel", "parallel", "parallel", "reduction"]}}
      ins(%q, %k : tensor<{B}x{T}x{D}xf32>, tensor<{B}x{T}x{D}xf32>) outs(%zs : tensor<{B}x{T}x{T}xf32>) {{
    ^bb0(%a: f32, %b: f32, %c: f32):
      %m = arith.mulf %a, %b : f32
      %r = arith.addf %c, %m : f32
      linalg.yield %r : f32
  }} -> tensor<{B}x{T}x{T}xf32>
  %ss = linalg.generic {{indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}}
      ins(%s : tensor<{B}x{T}x{T}xf32>) outs(%es : tensor<{B}x{T}x{T}xf32>) {{
    ^bb0(%a: f32, %o: f32):
      %c = arith.constant {SCALE} : f32
      %r = arith.mulf %a, %c : f32
      linalg.yield %r : f32
  }} -> tensor<{B}x{T}x{T}xf32>
  %p = linalg.softmax dimension(2) ins(%ss : tensor<{B}x{T}x{T}xf32>) outs(%es : tensor<{B}x{T}x{T}xf32>)
      -> tensor<{B}x{T}x{T}xf32>
  %eo = tensor.empty() : tensor<{B}x{T}x{D}xf32>
  %zo = linalg.fill ins(%zero : f32) outs(%eo : tensor<{B}x{T}x{D}xf32>) -> tensor<{B}x{T}x{D}xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<{B}x{T}x{T}xf32>, tensor<{B}x{T}x{D}xf32>)
                           outs(%zo : tensor<{B}x{T}x{D}xf32>) -> tensor<{B}x{T}x{D}xf32>
  return %o : tensor<{B}x{T}x{D}xf32>
}}
"""


def attention_jax(jnp):
    def f(q, k, v):
        s = (q @ k.T) * SCALE
        e = jnp.exp(s - s.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)) @ v
    return f


def attention_torch(torch):
    def f(q, k, v):
        s = (q @ k.T) * SCALE
        e = torch.exp(s - s.amax(dim=-1, keepdim=True))
        return (e / e.sum(dim=-1, keepdim=True)) @ v
    return f


# --- layer norm over 1024 features, shared scale and shift ---------------------------------------

EPS = 1e-5


def layernorm(x, gamma, beta):
    mu = x.mean()
    d = x - mu
    var = (d * d).mean()
    return d / np.sqrt(var + EPS) * gamma + beta


def layernorm_batched(x, gamma, beta):
    mu = x.mean(axis=-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True)
    return d / np.sqrt(var + F32(EPS)) * gamma + beta


def layernorm_mlir(B):
    N = 1024
    return f"""
#id = affine_map<(b, i) -> (b, i)>
#row = affine_map<(b, i) -> (b)>
#col = affine_map<(b, i) -> (i)>
func.func @main(%x: tensor<{B}x{N}xf32>, %g: tensor<{N}xf32>, %be: tensor<{N}xf32>) -> tensor<{B}x{N}xf32> {{
  %zero = arith.constant 0.0 : f32
  %er = tensor.empty() : tensor<{B}xf32>
  %zr = linalg.fill ins(%zero : f32) outs(%er : tensor<{B}xf32>) -> tensor<{B}xf32>
  %sum = linalg.generic {{indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}}
      ins(%x : tensor<{B}x{N}xf32>) outs(%zr : tensor<{B}xf32>) {{
    ^bb0(%a: f32, %c: f32):
      %r = arith.addf %a, %c : f32
      linalg.yield %r : f32
  }} -> tensor<{B}xf32>
  %ssq = linalg.generic {{indexing_maps = [#id, #row, #row], iterator_types = ["parallel", "reduction"]}}
      ins(%x, %sum : tensor<{B}x{N}xf32>, tensor<{B}xf32>) outs(%zr : tensor<{B}xf32>) {{
    ^bb0(%a: f32, %s: f32, %c: f32):
      %n = arith.constant {float(N)} : f32
      %mu = arith.divf %s, %n : f32
      %d = arith.subf %a, %mu : f32
      %d2 = arith.mulf %d, %d : f32
      %r = arith.addf %d2, %c : f32
      linalg.yield %r : f32
  }} -> tensor<{B}xf32>
  %e = tensor.empty() : tensor<{B}x{N}xf32>
  %y = linalg.generic {{indexing_maps = [#id, #row, #row, #col, #col, #id],
                        iterator_types = ["parallel", "parallel"]}}
      ins(%x, %sum, %ssq, %g, %be : tensor<{B}x{N}xf32>, tensor<{B}xf32>, tensor<{B}xf32>, tensor<{N}xf32>,
          tensor<{N}xf32>) outs(%e : tensor<{B}x{N}xf32>) {{
    ^bb0(%a: f32, %s: f32, %q: f32, %gg: f32, %bb: f32, %o: f32):
      %n = arith.constant {float(N)} : f32
      %eps = arith.constant {EPS:.6e} : f32
      %mu = arith.divf %s, %n : f32
      %var = arith.divf %q, %n : f32
      %ve = arith.addf %var, %eps : f32
      %sd = math.sqrt %ve : f32
      %d = arith.subf %a, %mu : f32
      %t = arith.divf %d, %sd : f32
      %u = arith.mulf %t, %gg : f32
      %r = arith.addf %u, %bb : f32
      linalg.yield %r : f32
  }} -> tensor<{B}x{N}xf32>
  return %y : tensor<{B}x{N}xf32>
}}
"""


def layernorm_jax(jnp):
    def f(x, gamma, beta):
        mu = x.mean()
        d = x - mu
        return d / jnp.sqrt((d * d).mean() + EPS) * gamma + beta
    return f


def layernorm_torch(torch):
    def f(x, gamma, beta):
        mu = x.mean()
        d = x - mu
        return d / torch.sqrt((d * d).mean() + EPS) * gamma + beta
    return f


WORKLOADS = {
    "mlp": Workload(
        "mlp", "MLP 256-512-10 (ReLU), shared weights", mlp, (0, None, None, None, None),
        ((256,), (256, 512), (512,), (512, 10), (10,)), mlp_batched, mlp_mlir, mlp_jax, mlp_torch,
        flops=lambda B: 2 * B * (256 * 512 + 512 * 10)),
    "elementwise": Workload(
        "elementwise", "tanh(1.5x+0.5)*sigmoid(x) on Bx4096", elementwise, (0,), ((4096,),),
        elementwise, elementwise_mlir, elementwise_jax, elementwise_torch,
        flops=lambda B: 8 * B * 4096),
    "bmm": Workload(
        "bmm", "batched matmul Bx64x64 @ Bx64x64", bmm, (0, 0), ((64, 64), (64, 64)),
        bmm, bmm_mlir, lambda jnp: bmm, lambda torch: (lambda a, b: a @ b),
        flops=lambda B: 2 * B * 64 ** 3, rtol=1e-4, atol=1e-4),
    "attention": Workload(
        "attention", "single-head attention Bx128x64 (softmax)", attention, (0, 0, 0),
        ((128, 64), (128, 64), (128, 64)), attention_batched, attention_mlir, attention_jax, attention_torch,
        flops=lambda B: B * (4 * 128 * 128 * 64 + 5 * 128 * 128), rtol=1e-3, atol=1e-5),
    "layernorm": Workload(
        "layernorm", "layer norm on Bx1024, shared scale/shift", layernorm, (0, None, None),
        ((1024,), (1024,), (1024,)), layernorm_batched, layernorm_mlir, layernorm_jax, layernorm_torch,
        flops=lambda B: 8 * B * 1024, rtol=1e-3, atol=1e-4),
}
