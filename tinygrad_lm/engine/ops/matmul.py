"""Matrix multiplication with batching and broadcasting, as `numpy.matmul`.

Forward: y = a @ b with a (..., n, k) and b (..., k, m) -> (..., n, m), batch axes broadcast.
Backward: ga = gy @ b^T and gb = a^T @ gy (transposing the last two axes only, which is where
DeZero's `.T` breaks on 3-D inputs), each summed back to its operand's shape by `unbroadcast`
(for (B, T, C) @ (C, D), gb is B products (C, T) @ (T, D) summed over the batch).
Leaves out: nothing of matmul's semantics; 1-D operands follow NumPy (a vector is promoted to
a row or column and the added axis removed). The faster one-GEMM spelling of a linear layer
is `tinygrad_lm/fast/linear.py`.
"""
from ..tensor import Function
from ._util import binary_operands, check_same_device, unbroadcast


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}; "
                             "use * to multiply by a scalar")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                             f"{a.shape[-1]} (last dim of a) != {b.shape[-2 if b.ndim > 1 else 0]} "
                             f"({'second-to-last' if b.ndim > 1 else 'only'} dim of b)")
        try:
            return a @ b
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} "
                             "cannot be broadcast together") from None

    def backward(self, gy):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a  # (1, k) for a vector a
        b2 = b[:, None] if b.ndim == 1 else b  # (k, 1) for a vector b
        if b.ndim == 1:  # first: for vector @ vector gy is 0-d and has no column axis to index
            gy = gy[..., None]  # restore the removed column axis
        if a.ndim == 1:
            gy = gy[..., None, :]  # restore the removed row axis
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = unbroadcast(gy @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)  # (..., n, m) @ (..., m, k)
        if self.inputs[1].requires_grad:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ gy, b2.shape).reshape(b.shape)  # (..., k, n) @ (..., n, m)
        return ga, gb


def matmul(a, b):
    """a @ b. Args: Tensors (..., n, k) and (..., k, m). Returns: Tensor (..., n, m)."""
    a, b = binary_operands(a, b)
    if a.device != b.device:
        check_same_device("matmul", a, b)
    return MatMul()(a, b)
