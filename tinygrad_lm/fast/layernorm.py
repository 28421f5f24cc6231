"""Fast twin of `F.layer_norm` / `nn.LayerNorm`: layer normalisation (Ba et al. 2016) over the
last axis as one Function, with its backward derived by hand.

The reference composes mean, var, sub, div, sqrt, mul and add: seven Functions, each saving
its inputs and allocating its output. Here forward and backward are a few passes over the
rows, and the row sums are BLAS mat-vec products (`rows.py`). Forward + backward at the
recipe's sizes: measured 2.2x faster than the reference (BENCHMARKS.md, "Each fast kernel
against its reference twin"; `python scripts/bench_kernels.py`).

Forward, per row x of C features (the code's names in brackets):
    mu   = (1/C) sum_k x_k                    [rowsum(x) * inv_c]
    xc   = x - mu                             [xc]
    var  = (1/C) sum_k xc_k^2                 [var, rowdot(xc, xc): one pass]
    rstd = 1 / sqrt(var + eps)                [rstd]
    xhat = xc rstd                            [xhat, written into xc's buffer]
    y    = w xhat + b                         [y]
Products are elementwise; w and b are (C,) and shared by every row.

Backward, from gy = dL/dy (L the loss), derived in three steps.
1. Through y_j = w_j xhat_j + b_j. A parameter's gradient sums over every row (batch and
   time), because every row uses the same w and b:
       dL/db_j    = sum over rows of gy_j             [gb = colsum(gy)]
       dL/dw_j    = sum over rows of gy_j xhat_j      [gw = colsum(gy_xhat)]
       dL/dxhat_j = gy_j w_j  =: g_j                  [g = gy * w]
2. Through xhat_j = (x_j - mu) rstd, within one row. x_i reaches xhat_j directly (i = j)
   and through mu and rstd, which depend on the whole row:
       d mu/d x_i     = 1/C
       d var/d x_i    = (2/C) sum_k xc_k (delta_ik - 1/C)
                      = (2/C) xc_i                               (sum_k xc_k = 0)
       d rstd/d x_i   = -(1/2) (var + eps)^(-3/2) d var/d x_i
                      = -rstd^3 xc_i / C  =  -rstd^2 xhat_i / C
       d xhat_j/d x_i = (delta_ij - d mu/d x_i) rstd + xc_j d rstd/d x_i
                      = rstd (delta_ij - 1/C - xhat_i xhat_j / C)
3. Chain rule, summing over the row's C outputs j:
       dL/dx_i = sum_j g_j d xhat_j/d x_i
               = rstd (g_i - (1/C) sum_j g_j - xhat_i (1/C) sum_j g_j xhat_j)
               = rstd (g_i - a - xhat_i b)                [gx, built in g's buffer]
   with two numbers per row (the code's a and b; this b is not the bias):
       a = mean(g)        = (1/C) sum_j gy_j w_j          [a = rowsum(g) * inv_c]
       b = mean(g xhat)   = (1/C) sum_j (gy_j xhat_j) w_j [b = rowsum_weighted(gy_xhat, w) * inv_c]
   b reuses gy_xhat = gy * xhat, the product gw needs too. The code finishes with
   g -= xhat * b; g -= a; g *= rstd. Without a weight, w = 1 throughout: g = gy.

On a GPU (float32 CuPy arrays, weight and bias given) the same formulas run as CUDA kernels
(`fast/cuda/layernorm.py`), which save mean and rstd per row and recompute xhat; this file's
NumPy code is their oracle.
Leaves out: normalising over more than the last axis.
"""
from ..engine.backend import get_array_module
from ..engine.functional import check_layer_norm
from ..nn import LayerNorm
from ..engine.tensor import Function
from . import cuda
from .cuda import layernorm as cuda_layernorm
from .rows import colsum, rowdot, rowsum, rowsum_weighted


class LayerNormKernel(Function):
    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, weight=None, bias=None):
        self.on_gpu = weight is not None and bias is not None and cuda.enabled(x, weight, bias)
        if self.on_gpu:  # fused CUDA kernels (fast/cuda/layernorm.py), checked against this code
            y, self.mean, self.rstd = cuda_layernorm.forward(x, weight, bias, self.eps)
            self.x, self.weight = x, weight
            return y
        xp = get_array_module(x)  # arguments checked by `layer_norm`, which packs them positionally
        inv_c = 1.0 / x.shape[-1]
        xc = x - rowsum(x) * inv_c  # x - mean
        var = rowdot(xc, xc) * inv_c
        rstd = 1.0 / xp.sqrt(var + self.eps)
        xhat = xc
        xhat *= rstd  # reuse xc's buffer
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        if weight is None:
            return xhat.copy() if bias is None else xhat + bias
        y = xhat * weight
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        if self.on_gpu:
            return cuda_layernorm.backward(gy, self.x, self.weight, self.mean, self.rstd)
        xhat, rstd, w = self.xhat, self.rstd, self.weight
        inv_c = 1.0 / gy.shape[-1]
        gy_xhat = gy * xhat  # shared: gw = colsum(gy * xhat), and sum(g * xhat) = (gy * xhat) @ w
        if w is not None:
            g = gy * w
            b = rowsum_weighted(gy_xhat, w) * inv_c  # (..., 1): mean(g * xhat) per row
        else:
            g = gy.copy()
            b = rowsum(gy_xhat) * inv_c
        a = rowsum(g) * inv_c  # (..., 1): mean(g) per row
        g -= xhat * b
        g -= a
        g *= rstd  # gx = rstd (g - mean(g) - xhat mean(g xhat)), built in g's buffer
        grads = [g]
        if len(self.inputs) > 1:
            grads.append(colsum(gy_xhat))
        if len(self.inputs) > 2:
            grads.append(colsum(gy))
        return tuple(grads)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """`F.layer_norm`, fused."""
    check_layer_norm(x, weight, bias)
    return LayerNormKernel(eps)(*[t for t in (x, weight, bias) if t is not None])


class FusedLayerNorm(LayerNorm):
    """`nn.LayerNorm` with the fused kernel (same parameters, names and state dict)."""

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, self.eps)
