"""Pretraining: one plain Python loop, `train(config)`, that a reader can follow top to bottom.

Each step: set the learning rate (linear warmup, then cosine decay), draw a random batch,
forward, backward, clip the gradient norm, AdamW step (decay on matrices only). Every
`eval_interval` steps: average train and validation loss over `eval_iters` batches, report
perplexity and bits per byte (so char-level and BPE runs compare), write a checkpoint, and
keep the best-validation one beside it. A progress line shows step, loss, lr, tokens/s and
ETA; every logged step also goes to `log.jsonl` in the run folder.

Reproducibility: `--resume` continues bit-for-bit, because the checkpoint holds the model,
the optimizer state, the step, and both random streams (batches; dropout/init).
Safety: Ctrl-C saves a checkpoint and exits cleanly; a NaN or infinite loss stops the run
with a message naming the step and leaves the last good checkpoint untouched.
Leaves out: gradient accumulation, mixed precision and data-parallel training.
"""
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint, rng
from .alloc import tune_allocator
from .backend import check_device, to_device
from .data import TokenData, build_tokenizer, get_batch, load_corpus
from .model import GPT, GPTConfig
from .optim import AdamW, clip_grad_norm_, cosine_warmup_lr, param_groups
from .parallel import blas_threads, for_each_in_threads, forward_backward, optimizer_step
from .tensor import no_grad
from .tokenizer import tokenizer_from_dict


@dataclass
class TrainConfig:
    # data
    data: str = None  # path of a UTF-8 text file; None = the built-in corpus
    tokenizer: str = "char"  # "char" or "bpe"
    vocab_size: int = 1024  # BPE only (char-level takes the corpus's characters)
    # model
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pos_encoding: str = "learned"
    tie_weights: bool = True
    # optimisation
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    out_dir: str = "runs/default"
    seed: int = 1337
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1  # > 1: split each batch across this many CPU threads (parallel.py)
    sample_tokens: int = 200
    quiet: bool = False

    def model_config(self, vocab_size):
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         pos_encoding=self.pos_encoding, tie_weights=self.tie_weights)


class TrainingStopped(RuntimeError):
    """Raised when the loss becomes NaN or infinite."""


def _log(cfg, message):
    if not cfg.quiet:
        print(message, flush=True)


def _fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@no_grad()
def estimate_loss(model, data, cfg, step):
    """Mean loss over `eval_iters` batches of each split (eval mode, fixed batches per step).
    With cfg.threads > 1 the batches are shared out over that many threads."""
    model.eval()
    out = {}
    for split, ids in (("train", data.train), ("val", data.val)):
        batch_rng = np.random.default_rng([cfg.seed, step, split == "val"])  # independent of training
        batches = [get_batch(ids, cfg.batch_size, cfg.block_size, batch_rng) for _ in range(cfg.eval_iters)]
        losses = [0.0] * len(batches)

        def run(j):
            x, y = batches[j]
            _, loss = model(to_device(x, cfg.device), to_device(y, cfg.device))
            losses[j] = float(loss.item())

        for_each_in_threads(run, len(batches), cfg.threads)
        out[split] = float(np.mean(losses))
    model.train()
    return out


def _save(path, model, optimizer, cfg, tokenizer, step, best_val, batch_rng):
    meta = {"model_config": model.config.to_dict(), "train_config": asdict(cfg),
            "tokenizer": tokenizer.to_dict(), "step": step, "best_val": best_val,
            "rng": rng.get_state(), "batch_rng": batch_rng.bit_generator.state}
    checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def _setup(cfg, resume):
    """Model, optimizer, data, tokenizer and training state: fresh, or from out_dir/ckpt.npz."""
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "ckpt.npz"
    check_device(cfg.device)
    if cfg.threads < 1 or (cfg.threads > 1 and cfg.device != "cpu"):
        raise ValueError(f"threads={cfg.threads}: use 1, or more than 1 to split batches across CPU threads "
                         "(CPU only; the GPU already runs each op in parallel)")
    if resume:
        meta, model_state, optim_state = checkpoint.load(ckpt_path)
        saved = TrainConfig(**{f.name: meta["train_config"][f.name] for f in fields(TrainConfig)
                               if f.name in meta["train_config"]})
        # a resumed run continues the saved run: only where and how loudly it runs may change
        cfg = TrainConfig(**{**asdict(saved), "out_dir": cfg.out_dir, "device": cfg.device, "quiet": cfg.quiet,
                             "threads": cfg.threads})
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        text, _ = load_corpus(cfg.data)
    else:
        rng.manual_seed(cfg.seed)
        text, _ = load_corpus(cfg.data)
        tokenizer = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size)
    data = TokenData(text, tokenizer)
    data.check_block_size(cfg.block_size)
    model = GPT(cfg.model_config(tokenizer.vocab_size)).to(device=cfg.device, dtype=np.dtype(cfg.dtype))
    optimizer = AdamW(param_groups(model.named_parameters(), cfg.weight_decay), lr=cfg.lr,
                      betas=(cfg.beta1, cfg.beta2))
    state = {"step": 0, "best_val": math.inf, "batch_rng": np.random.default_rng(cfg.seed)}
    if resume:
        if meta["model_config"] != model.config.to_dict():
            raise ValueError(f"{ckpt_path}: checkpoint model config {meta['model_config']} does not match "
                             f"{model.config.to_dict()}")
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        rng.set_state(meta["rng"])
        state["batch_rng"].bit_generator.state = meta["batch_rng"]
        state["step"], state["best_val"] = meta["step"], meta["best_val"]
    return cfg, model, optimizer, data, tokenizer, state


def train(cfg, resume=False, stop_at=None):
    """Pretrain a GPT as configured; returns a summary dict (final losses, history, paths).

    Args:
        cfg: TrainConfig.
        resume: continue from `cfg.out_dir/ckpt.npz` exactly where it stopped.
        stop_at: stop after this step as if interrupted (checkpoint saved), for tests.
    """
    tune_allocator()  # keep freed activations in the process: no page faults every step
    cfg, model, optimizer, data, tokenizer, state = _setup(cfg, resume)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(out_dir / "log.jsonl", "a", encoding="utf-8")
    batch_rng, step = state["batch_rng"], state["step"]
    start_step = step
    _log(cfg, f"model: {model.num_params():,} parameters | data: {len(data.train):,} train / {len(data.val):,} "
              f"val tokens | vocab {tokenizer.vocab_size} | device {cfg.device} | out {out_dir}")
    history, summary = [], {"out_dir": str(out_dir), "interrupted": False}
    t_start, t_last, steps_timed = time.perf_counter(), time.perf_counter(), 0

    def lr_at(s):
        # warmup is capped at the run's length so a short run (--max-iters 20) still works
        return cosine_warmup_lr(s, cfg.lr, min(cfg.warmup_iters, cfg.max_iters), cfg.max_iters, cfg.min_lr)

    def save(path):
        _save(path, model, optimizer, cfg, tokenizer, step, state["best_val"], batch_rng)

    # with threads > 1, BLAS stays single-threaded for the whole run: each thread has its own core
    # (a BLAS worker woken by one call would busy-wait on a core the threads need)
    with blas_threads(1) if cfg.threads > 1 else contextlib.nullcontext():
        try:
            while step < cfg.max_iters:
                # ---- evaluate and checkpoint every eval_interval steps (not at the starting step)
                if step % cfg.eval_interval == 0 and step != start_step:
                    _evaluate(model, data, cfg, step, state, log_file, save)
                # ---- one optimisation step
                lr = lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = get_batch(data.train, cfg.batch_size, cfg.block_size, batch_rng)
                optimizer.zero_grad()
                # model(x, y) then loss.backward(); with threads > 1 the batch's rows split over threads
                loss_value = forward_backward(model, to_device(x, cfg.device), to_device(y, cfg.device),
                                              threads=cfg.threads)
                if not math.isfinite(loss_value):  # before the update: the weights stay those of the last good step
                    raise TrainingStopped(f"loss became {loss_value} at step {step}; stopping. The last good checkpoint "
                                          f"({out_dir / 'ckpt.npz'}) is kept; try a lower --lr or --grad-clip")
                if cfg.grad_clip > 0:
                    clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer_step(optimizer, threads=cfg.threads)  # optimizer.step(), shared out over threads
                step += 1
                steps_timed += 1
                history.append(loss_value)
                # ---- progress line and log record
                if step % cfg.log_interval == 0 or step == cfg.max_iters:
                    now = time.perf_counter()
                    dt = (now - t_last) / steps_timed
                    t_last, steps_timed = now, 0
                    tok_s = cfg.batch_size * cfg.block_size / dt
                    record = {"step": step, "loss": loss_value, "lr": lr, "ms_per_step": dt * 1e3, "tokens_per_s": tok_s}
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    _log(cfg, f"step {step:5d}/{cfg.max_iters} | loss {loss_value:.4f} | lr {lr:.2e} | "
                              f"{dt * 1e3:6.1f} ms/step | {tok_s:8,.0f} tok/s | ETA {_fmt_time(dt * (cfg.max_iters - step))}")
                if stop_at is not None and step >= stop_at:
                    raise KeyboardInterrupt
            summary.update(_evaluate(model, data, cfg, step, state, log_file, save))
        except KeyboardInterrupt:
            save(out_dir / "ckpt.npz")
            summary["interrupted"] = True
            _log(cfg, f"\ninterrupted at step {step}: checkpoint saved to {out_dir / 'ckpt.npz'}; "
                      "continue with --resume")
        finally:
            log_file.close()
    summary.update(step=step, losses=history, seconds=time.perf_counter() - t_start,
                   best_val=state["best_val"], model=model, tokenizer=tokenizer, bytes_per_token=data.bytes_per_token)
    return summary


def _evaluate(model, data, cfg, step, state, log_file, save):
    losses = estimate_loss(model, data, cfg, step)
    val = losses["val"]
    bpb = val / math.log(2) / data.bytes_per_token
    record = {"step": step, "train_loss": losses["train"], "val_loss": val, "val_ppl": math.exp(min(val, 700)),
              "val_bpb": bpb}
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    out_dir = Path(cfg.out_dir)
    improved = val < state["best_val"]
    if improved:
        state["best_val"] = val
    save(out_dir / "ckpt.npz")
    if improved:
        save(out_dir / "best.npz")
    _log(cfg, f"step {step}: train loss {losses['train']:.4f}, val loss {val:.4f}, val ppl {record['val_ppl']:.2f}, "
              f"val bits/byte {bpb:.3f}{' (best, saved)' if improved else ''}")
    return record


def load_model(path, device="cpu"):
    """(model, tokenizer, meta) from a checkpoint, ready for sampling or fine-tuning."""
    meta, model_state, _ = checkpoint.load(path)
    try:
        config = GPTConfig(**meta["model_config"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"{path}: checkpoint has an incompatible model config: {e}") from None
    model = GPT(config)
    try:
        model.load_state_dict(model_state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model.to(device=device), tokenizer_from_dict(meta["tokenizer"]), meta


def sample_text(model, tokenizer, prompt="", max_new_tokens=200, temperature=0.8, top_k=None, seed=None):
    """Continue `prompt` with sampled tokens and return the decoded text (prompt included)."""
    ids = tokenizer.encode(prompt) if prompt else tokenizer.encode("\n")[:1] or [0]
    out = model.generate(np.asarray([ids], dtype=np.int64), max_new_tokens, temperature, top_k, seed)
    return tokenizer.decode(out[0].tolist())
