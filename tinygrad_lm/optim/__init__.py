"""Optimizers and training-loop helpers, one concept per file.

    optimizer.py  Optimizer base class: parameter groups, state list, zero_grad, state_dict;
                  clip_grad_norm_: global L2-norm gradient clipping
    sgd.py        SGD with momentum / Nesterov and L2 weight decay
    adam.py       Adam (L2 weight decay) and AdamW (decoupled weight decay), bias-corrected
    schedule.py   cosine_warmup_lr (pure function) and the CosineWarmupLR scheduler
    groups.py     param_groups: decay on >= 2-D params, none on biases / LayerNorm / 1-D

Names and semantics follow torch.optim, so a PyTorch training loop reads the same here.
"""
from .adam import Adam, AdamW
from .groups import param_groups
from .optimizer import Optimizer, clip_grad_norm_
from .schedule import CosineWarmupLR, cosine_warmup_lr
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "param_groups", "cosine_warmup_lr",
           "CosineWarmupLR"]
