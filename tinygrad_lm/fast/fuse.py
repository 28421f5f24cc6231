"""Switch a model to the fast path, or back: `fuse(model)`, `unfuse(model)`, `speed_up(...)`.

`fuse` swaps each reference layer for its fused twin in place, at one point: the module keeps
its parameters, names, state dict and settings, and only its class (so its `forward`)
changes. A checkpoint saved from a fused model loads into a reference model and back, and a
fused model computes the same values and gradients as the reference (up to float rounding;
pinned by tests/test_fast.py). `speed_up` is what the training loops call: fuse the model and the
optimizer's update, keep freed activation memory in the process, and with threads > 1 split
every batch and the optimizer step over CPU threads.
On a GPU the fused layers run the CUDA kernels of `fast/cuda/` (float32 CuPy arrays; the
switch is inside each kernel's Function, so fuse is the same call on either device).
Leaves out: fusing across layers (a whole block as one kernel).
"""
from .. import nn, optim
from .adamw import FusedAdam, FusedAdamW
from .alloc import tune_allocator
from .attention import FusedSelfAttention
from .blas import set_blas_threads
from .cross_entropy import FusedCrossEntropyLoss
from .data_parallel import DataParallel, split_optimizer_step
from .dropout import FusedDropout
from .embedding import FusedEmbedding
from .gelu import FusedGELU
from .layernorm import FusedLayerNorm
from .linear import FusedLinear
from .thread_choice import ThreadChoice

FUSED = {nn.Linear: FusedLinear, nn.Embedding: FusedEmbedding, nn.LayerNorm: FusedLayerNorm, nn.GELU: FusedGELU,
         nn.CausalSelfAttention: FusedSelfAttention, nn.CrossEntropyLoss: FusedCrossEntropyLoss,
         nn.Dropout: FusedDropout}
FUSED_OPTIMIZERS = {optim.Adam: FusedAdam, optim.AdamW: FusedAdamW}
REFERENCE = {fused: reference for reference, fused in {**FUSED, **FUSED_OPTIMIZERS}.items()}


def _swap(objects, table):
    for obj in objects:
        cls = table.get(type(obj))
        if cls is not None:
            object.__setattr__(obj, "__class__", cls)


def fuse(model):
    """Give every reference layer of `model` its fused kernel, in place; returns the model.
    Given an optimizer (Adam, AdamW), gives it the in-place update instead."""
    _swap(model.modules() if isinstance(model, nn.Module) else [model], {**FUSED, **FUSED_OPTIMIZERS})
    return model


def unfuse(model):
    """Undo `fuse`: every fused layer (or the optimizer) back to its reference class; returns it."""
    _swap(model.modules() if isinstance(model, nn.Module) else [model], REFERENCE)
    return model


def speed_up(model, optimizer, threads=1, choose=False):
    """The fast path for a training loop: returns (model, optimizer) to use in the loop.

    Fuses the model's layers and the optimizer's update, tunes the allocator (`alloc.py`),
    and with threads > 1 wraps the model in `DataParallel` (each batch split over that many
    CPU threads) and shares the optimizer's step out over the threads, with BLAS limited to
    one thread per caller from then on (each of our threads has a core of its own). The
    loop's lines stay the same. choose=True (`--threads auto`): the slices run on threads only
    while that is faster than one after another (thread_choice.py; the same numbers either way).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    fuse(model)
    fuse(optimizer)
    tune_allocator()
    if threads == 1:
        return model, optimizer
    if model.device != "cpu":
        raise ValueError(f"threads={threads} splits batches across CPU threads; on {model.device} use threads=1 "
                         "(the GPU already runs each op in parallel)")
    set_blas_threads(1)
    choice = ThreadChoice() if choose else None
    return DataParallel(model, threads, choice), split_optimizer_step(optimizer, threads, choice)
