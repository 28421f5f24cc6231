"""Affine map y = x W^T + b as one Function, with W stored (out_features, in_features) as in
PyTorch so state dicts move between the two unchanged.

Backward, with the leading axes of x folded into N rows (x2: (N, in), gy2: (N, out)):
  gx = gy W            gW = gy2^T x2            gb = sum over rows of gy2
Three GEMM-shaped operations and no transposed copies: NumPy hands the transposed views
straight to BLAS.
Leaves out: low-rank and quantised weights.
"""
from ..tensor import Function
from .rows import colsum


class Linear(Function):
    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features but the weight "
                             f"{weight.shape} expects {weight.shape[1]} (weight is (out_features, in_features))")
        self.x, self.weight = x, weight
        # fold the leading axes into rows: one (N, in) @ (in, out) GEMM, not one per batch entry
        y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        x, w = self.x, self.weight
        gy2 = gy.reshape(-1, gy.shape[-1])  # (N, out)
        gx = (gy2 @ w).reshape(x.shape) if self.inputs[0].requires_grad else None  # (N, out) @ (out, in)
        gw = gy2.T @ x.reshape(-1, x.shape[-1]) if self.inputs[1].requires_grad else None  # (out, N) @ (N, in)
        if len(self.inputs) == 2:
            return gx, gw
        gb = colsum(gy2) if self.inputs[2].requires_grad else None
        return gx, gw, gb
