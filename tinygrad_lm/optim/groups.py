"""`param_groups`: split a model's parameters into weight-decay and no-decay groups.

Follows nanoGPT's `configure_optimizers` convention: every parameter with ndim >= 2 (matmul
weights and embedding tables) is decayed; every parameter with ndim < 2 (biases, LayerNorm
weights and biases, other vectors and scalars) is not. Decaying a LayerNorm gain pulls it toward
0 rather than toward its natural value 1, and biases have too few degrees of freedom to overfit.

Leaves out: name-based rules (e.g. "no decay on embeddings"); build the group dicts yourself
when you need them, the optimizers take any list of `{"params": [...], "weight_decay": wd}`.
"""


def param_groups(named_params, weight_decay):
    """Two optimizer parameter groups: decay on >= 2-D parameters, none on the rest.

    Args:
        named_params: iterable of (name, Tensor), e.g. `model.named_parameters()`. Parameters
            with requires_grad False are skipped; a Tensor listed twice (tied weights) is kept once.
        weight_decay: the decay coefficient for the >= 2-D group (>= 0).
    Returns:
        `[{"params": [ndim >= 2 tensors], "weight_decay": weight_decay},
          {"params": [ndim < 2 tensors], "weight_decay": 0.0}]`, each list in input order;
        pass it straight to `AdamW(...)`. A group may be empty.

    Example:
        >>> opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=6e-4, betas=(0.9, 0.95))
    """
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    decay, no_decay, seen = [], [], set()
    for item in named_params:
        if hasattr(item, "data") and hasattr(item, "grad"):
            raise TypeError("param_groups needs (name, Tensor) pairs: pass model.named_parameters(), "
                            "not model.parameters()")
        _, p = item
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.data.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]
