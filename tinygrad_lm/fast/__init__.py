"""The fast paths, beside the reference path and pinned to it by tests (llm.c's split of
`train_gpt2.c` and `train_gpt2.cu`, within one package).

    fuse.py           fuse(model) / unfuse(model): swap layers (or an optimizer's update) in place;
                      speed_up(model, optimizer, threads): what the training loops call
    linear.py         FusedLinear        one GEMM for (B, T, C) @ (C, D), forward and backward
    embedding.py      FusedEmbedding     backward by sorting ids and one add.reduceat
    layernorm.py      FusedLayerNorm     hand-derived backward, BLAS row sums
    cross_entropy.py  FusedCrossEntropyLoss  log-softmax + NLL, the softmax buffer reused
    attention.py      FusedSelfAttention one Function from packed qkv, transposed layout
    gelu.py           FusedGELU          forward and derivative together, in cache-sized blocks
    adamw.py          FusedAdam(W)       the optimizer update in place, one scratch array
    dropout.py        FusedDropout       on a GPU, the mask drawn and scaled by one kernel
    rows.py           row and column sums as BLAS mat-vec products
    cache.py          small per-device caches of constant arrays (masks, ones), bounded
    functional.py     the kernels as functions with `functional`'s names
    data_parallel.py  DataParallel: each batch split over CPU threads; split_optimizer_step
    workers.py        persistent worker threads
    thread_choice.py  ThreadChoice: under --threads auto, threads only while they beat one core
    blas.py           limit BLAS's own threads
    alloc.py          keep freed activation memory in the process (glibc mallopt)
    cuda/             fused CUDA kernels (layer norm, GELU, cross-entropy, causal softmax,
                      multi-tensor AdamW, dropout masks) and opt-in TF32, only for float32 CuPy arrays;
                      each kernel's oracle is the NumPy code of the file it replaces

A reader of the reference path (run/train.py, run/loop.py, models/gpt.py, nn/, engine/)
never meets any of this; `python -m tinygrad_lm train` uses it unless `--reference` is given.
Each file says what it changes against its reference twin and how much it gains.
"""
from .alloc import tune_allocator
from .data_parallel import DataParallel, split_optimizer_step
from .fuse import FUSED, fuse, speed_up, unfuse

__all__ = ["fuse", "unfuse", "speed_up", "DataParallel", "split_optimizer_step", "tune_allocator", "FUSED"]
