"""Fine-tuning: one plain loop, `finetune(config)`, shaped like the pretraining loop `train.train`.

    model  = GPTForSequenceClassification.from_pretrained(cfg.ckpt, L)   (or random init: init="scratch")
    data   = train / val (/ test) JSONL files, encoded with the checkpoint's tokenizer
    repeat max_iters times:
        lr (linear warmup, then cosine to min_lr, or constant)
        a batch of shuffled examples, right-padded, with its attention mask
        forward -> cross-entropy -> backward -> clip grad norm -> AdamW (decay on matrices)
        every eval_interval steps: val loss, accuracy, macro-F1; checkpoint; keep the best
    reload the best-validation weights; print the val (and test) report with confusion matrix

Checkpoints are written like pretraining's (`checkpoint.save`, atomic): `ckpt.npz` at every
evaluation and on Ctrl-C, `best.npz` whenever validation macro-F1 improves (ties: lower val
loss). They hold the classifier weights, AdamW state, the label names, the tokenizer and the
configs; `load_classifier(path)` reads them back, and `resume=True` continues a run exactly
(batches are a pure function of the step, see `data.train_batch_indices`). Every logged step
and evaluation goes to `log.jsonl` in the run folder.
Leaves out: gradient accumulation, class weighting, early stopping (the best checkpoint is
kept instead), and layer-wise learning-rate decay.
"""
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .. import checkpoint, rng
from ..backend import check_device, to_device
from ..model import GPTConfig
from ..optim import AdamW, clip_grad_norm_, cosine_warmup_lr, param_groups
from ..parallel import blas_threads, for_each_in_threads, loss_backward_split, optimizer_step
from ..tensor import no_grad
from ..tokenizer import tokenizer_from_dict
from ..train import TrainingStopped
from .data import LabeledData, load_labeled, pad_batch, train_batch_indices
from .metrics import accuracy, confusion_matrix, format_confusion, macro_f1
from .model import GPTForSequenceClassification

KIND = "sequence-classifier"


@dataclass
class FinetuneConfig:
    # data and starting point
    ckpt: str = None  # pretrained GPT checkpoint: its tokenizer and model size are used
    data: str = None  # training JSONL, one {"text": ..., "label": ...} per line
    val: str = None  # validation JSONL; None = hold out val_fraction of the training file
    test: str = None  # optional test JSONL, evaluated once at the end with the best weights
    val_fraction: float = 0.1
    init: str = "pretrained"  # "pretrained" (load the body) or "scratch" (same size and tokenizer, random)
    freeze_body: bool = False  # train the head only (a linear probe of the pretrained features)
    unknown_chars: str = "error"  # char tokenizers: "error" on an unseen character, or "drop" it
    dropout: float = None  # None keeps the checkpoint's dropout
    pooling: str = "last"  # "last" real token (GPT-2 / Hugging Face) or "mean" over real tokens
    # optimisation
    batch_size: int = 16
    max_iters: int = 300
    lr: float = 3e-4
    min_lr: float = 3e-5
    schedule: str = "cosine"  # "cosine" (warmup then cosine to min_lr) or "constant" (warmup then lr)
    warmup_iters: int = 30
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    # evaluation, logging, checkpoints
    eval_interval: int = 50
    eval_batch_size: int = 64
    log_interval: int = 10
    out_dir: str = "runs/finetune"
    seed: int = 1337
    device: str = "cpu"
    threads: int = 1  # > 1: split each batch across this many CPU threads (parallel.py)
    quiet: bool = False


def _log(cfg, message):
    if not cfg.quiet:
        print(message, flush=True)


def _check_config(cfg):
    if cfg.ckpt is None or cfg.data is None:
        raise ValueError("fine-tuning needs a pretrained checkpoint (--ckpt) and a labelled JSONL file (--data)")
    if cfg.init not in ("pretrained", "scratch"):
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {cfg.init!r}")
    if cfg.schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {cfg.schedule!r}")
    if cfg.pooling not in ("last", "mean"):
        raise ValueError(f"pooling must be 'last' or 'mean', got {cfg.pooling!r}")
    if cfg.unknown_chars not in ("error", "drop"):
        raise ValueError(f"unknown_chars must be 'error' or 'drop', got {cfg.unknown_chars!r}")
    if cfg.threads < 1 or (cfg.threads > 1 and cfg.device != "cpu"):
        raise ValueError(f"threads={cfg.threads}: use 1, or more than 1 to split batches across CPU threads "
                         "(CPU only)")
    for name in ("batch_size", "max_iters", "eval_interval", "eval_batch_size", "log_interval"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)}")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {cfg.val_fraction}")


def _subset(data, idx, path):
    return LabeledData(path, [data.texts[i] for i in idx], data.labels[idx], data.label_names,
                       [data.ids[i] for i in idx], [data.lines[i] for i in idx])


def load_splits(cfg, tokenizer, block_size, label_names=None):
    """(train, val, test or None) LabeledData; val is carved from train when cfg.val is None."""
    train = load_labeled(cfg.data, tokenizer, block_size, label_names, unknown=cfg.unknown_chars)
    names = train.label_names
    if cfg.val is not None:
        val = load_labeled(cfg.val, tokenizer, block_size, names, train_path=cfg.data, unknown=cfg.unknown_chars)
    else:
        n = len(train)
        n_val = int(round(n * cfg.val_fraction))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"{cfg.data}: {n} examples are too few to hold out a validation split; pass --val")
        perm = np.random.default_rng([cfg.seed, 7]).permutation(n)  # a fixed, seeded hold-out
        train_full = train
        train = _subset(train_full, np.sort(perm[n_val:]), f"{cfg.data} (train part)")
        val = _subset(train_full, np.sort(perm[:n_val]), f"{cfg.data} (held-out {n_val})")
    test = (load_labeled(cfg.test, tokenizer, block_size, names, train_path=cfg.data, unknown=cfg.unknown_chars)
            if cfg.test is not None else None)
    return train, val, test


@no_grad()
def predict(model, ids_list, batch_size=64, threads=1):
    """Logits (N, L) as a float64 NumPy array for a list of id arrays (eval mode, padded batches;
    with threads > 1 the batches are shared out over that many CPU threads)."""
    was_training = model.training
    model.eval()
    # longest first, so each padded batch holds sequences of similar length
    order = np.argsort([-len(s) for s in ids_list], kind="stable")
    starts = list(range(0, len(order), batch_size))
    out = [None] * len(starts)

    def run(b):
        sel = order[starts[b]:starts[b] + batch_size]
        ids, mask = pad_batch([ids_list[i] for i in sel])  # (b, T), (b, T)
        logits, _ = model(to_device(ids, model.device), to_device(mask, model.device))
        out[b] = to_device(logits.data, "cpu").astype(np.float64)

    try:
        for_each_in_threads(run, len(starts), threads)
    finally:
        model.train(was_training)
    logits = np.empty((len(ids_list), model.num_labels))
    if out:
        logits[order] = np.concatenate(out)
    return logits


def evaluate(model, data, batch_size=64, threads=1):
    """Loss, accuracy, macro-F1 and confusion matrix of `model` on LabeledData `data`."""
    logits = predict(model, data.ids, batch_size, threads)
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))  # (N, L) log-softmax
    pred = logits.argmax(axis=1)
    y = data.labels
    return {"loss": float(-logp[np.arange(len(y)), y].mean()), "accuracy": accuracy(y, pred),
            "macro_f1": macro_f1(y, pred, model.num_labels),
            "confusion": confusion_matrix(y, pred, model.num_labels), "predictions": pred}


def format_report(name, metrics, label_names):
    """A few lines: the split's loss, accuracy and macro-F1, then the confusion table."""
    return (f"{name}: loss {metrics['loss']:.4f} | accuracy {metrics['accuracy']:.4f} | "
            f"macro-F1 {metrics['macro_f1']:.4f} | {int(metrics['confusion'].sum())} examples\n"
            + format_confusion(metrics["confusion"], label_names))


def _save(path, model, optimizer, cfg, step, best, tokenizer):
    meta = {"kind": KIND, "model_config": model.config.to_dict(), "num_labels": model.num_labels,
            "pooling": model.pooling,
            "label_names": model.label_names, "finetune_config": asdict(cfg), "tokenizer": tokenizer.to_dict(),
            "step": step, "best": best, "rng": rng.get_state()}
    checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def load_classifier(path, device="cpu"):
    """(model, tokenizer, meta) from a checkpoint written by `finetune`."""
    meta, state, _ = checkpoint.load(path)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path} is not a fine-tuned classifier checkpoint (a pretrained GPT? use "
                         "GPTForSequenceClassification.from_pretrained)")
    model = GPTForSequenceClassification(GPTConfig(**meta["model_config"]), meta["num_labels"], meta["label_names"],
                                         meta.get("pooling", "last"))
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model.to(device=device), tokenizer_from_dict(meta["tokenizer"]), meta


def _setup(cfg, resume):
    out_dir = Path(cfg.out_dir)
    check_device(cfg.device)
    if resume:
        meta, state, optim_state = checkpoint.load(out_dir / "ckpt.npz")
        if meta.get("kind") != KIND:
            raise ValueError(f"{out_dir / 'ckpt.npz'} is not a fine-tuning checkpoint; cannot resume")
        saved = {f.name: meta["finetune_config"][f.name] for f in fields(FinetuneConfig)
                 if f.name in meta["finetune_config"]}
        cfg = FinetuneConfig(**{**saved, "out_dir": cfg.out_dir, "device": cfg.device, "quiet": cfg.quiet,
                                "threads": cfg.threads})
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        config = GPTConfig(**meta["model_config"])
        train, val, test = load_splits(cfg, tokenizer, config.block_size, meta["label_names"])
        model = GPTForSequenceClassification(config, meta["num_labels"], meta["label_names"], cfg.pooling)
        model.load_state_dict(state)
        if cfg.freeze_body:
            model.freeze_body()
        model.to(device=cfg.device)
        state = {"step": meta["step"], "best": meta["best"]}
    else:
        rng.manual_seed(cfg.seed)
        meta, _, _ = checkpoint.load(cfg.ckpt)
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        block_size = GPTConfig(**meta["model_config"]).block_size
        train, val, test = load_splits(cfg, tokenizer, block_size)
        names = train.label_names
        if cfg.init == "pretrained":
            model = GPTForSequenceClassification.from_pretrained(
                cfg.ckpt, len(names), cfg.freeze_body, names, cfg.dropout, verbose=not cfg.quiet, device=cfg.device,
                pooling=cfg.pooling)
        else:
            model = GPTForSequenceClassification.from_scratch_like(cfg.ckpt, len(names), names, cfg.dropout,
                                                                   cfg.device, cfg.pooling)
            if cfg.freeze_body:
                model.freeze_body()
            _log(cfg, f"random initialisation (from scratch) with the tokenizer and size of {cfg.ckpt}")
        state = {"step": 0, "best": None}
    optimizer = AdamW(param_groups(model.named_parameters(), cfg.weight_decay), lr=cfg.lr,
                      betas=(cfg.beta1, cfg.beta2))
    if resume:
        optimizer.load_state_dict(optim_state)
        rng.set_state(meta["rng"])
    return cfg, model, optimizer, tokenizer, (train, val, test), state


def _better(metrics, best):
    if best is None:
        return True
    return (metrics["macro_f1"], -metrics["loss"]) > (best["macro_f1"], -best["loss"])


def finetune(cfg, resume=False, stop_at=None):
    """Fine-tune a classifier as configured; returns a summary dict.

    Args:
        cfg: FinetuneConfig.
        resume: continue from `cfg.out_dir/ckpt.npz` exactly where it stopped.
        stop_at: stop after this step as if interrupted (checkpoint saved), for tests.
    Returns:
        dict with "model" (the best-validation weights), "tokenizer", "label_names", "val" and
        (when cfg.test is set) "test" metrics of the best model, "history" (training losses),
        "evals", "step", "interrupted", "out_dir", "seconds".
    """
    _check_config(cfg)
    cfg, model, optimizer, tokenizer, (train, val, test), state = _setup(cfg, resume)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = model.label_names
    _log(cfg, train.summary())
    _log(cfg, val.summary())
    n_train = sum(p.size for _, p in model.trainable_named_parameters())
    _log(cfg, f"model: {model.num_params():,} parameters ({n_train:,} trainable) | {len(names)} labels | "
              f"out {out_dir}")
    step, start_step = state["step"], state["step"]
    summary = {"out_dir": str(out_dir), "interrupted": False, "label_names": names, "evals": []}
    history = []
    log_file = open(out_dir / "log.jsonl", "a", encoding="utf-8")
    t_start, t_last, steps_timed = time.perf_counter(), time.perf_counter(), 0
    warmup = min(cfg.warmup_iters, cfg.max_iters)

    def lr_at(s):
        if cfg.schedule == "constant":
            return cfg.lr * min(1.0, (s + 1) / (warmup + 1))
        return cosine_warmup_lr(s, cfg.lr, warmup, cfg.max_iters, min(cfg.min_lr, cfg.lr))

    def do_eval():
        metrics = evaluate(model, val, cfg.eval_batch_size, cfg.threads)
        improved = _better(metrics, state["best"])
        record = {"step": step, "val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"],
                  "val_macro_f1": metrics["macro_f1"]}
        if improved:
            state["best"] = {k: record[f"val_{k}"] for k in ("loss", "accuracy", "macro_f1")} | {"step": step}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        summary["evals"].append(record)
        _save(out_dir / "ckpt.npz", model, optimizer, cfg, step, state["best"], tokenizer)
        if improved:
            _save(out_dir / "best.npz", model, optimizer, cfg, step, state["best"], tokenizer)
        _log(cfg, f"step {step}: val loss {metrics['loss']:.4f} | accuracy {metrics['accuracy']:.4f} | "
                  f"macro-F1 {metrics['macro_f1']:.4f}{' (best, saved)' if improved else ''}")

    # with threads > 1, BLAS stays single-threaded for the whole run (see train.py)
    with blas_threads(1) if cfg.threads > 1 else contextlib.nullcontext():
        try:
            while step < cfg.max_iters:
                if step % cfg.eval_interval == 0 and step != start_step:
                    do_eval()
                lr = lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                sel = train_batch_indices(len(train), step, cfg.batch_size, cfg.seed)
                ids, mask = pad_batch([train.ids[i] for i in sel])  # (B, T), (B, T)
                labels = train.labels[sel]
                optimizer.zero_grad()
                ids, mask = to_device(ids, cfg.device), to_device(mask, cfg.device)
                # model(...) then loss.backward(); with threads > 1 the batch's rows split over threads
                loss_value = loss_backward_split(lambda r: model(ids[r], mask[r], labels[r])[1], len(sel),
                                                 cfg.threads)
                if not math.isfinite(loss_value):  # before the update: the weights stay those of the last good step
                    raise TrainingStopped(f"loss became {loss_value} at step {step}; stopping (last good checkpoint "
                                          f"kept in {out_dir}); try a lower --lr")
                if cfg.grad_clip > 0:
                    clip_grad_norm_([p for _, p in model.trainable_named_parameters()], cfg.grad_clip)
                optimizer_step(optimizer, threads=cfg.threads)  # optimizer.step(), shared out over threads
                step += 1
                steps_timed += 1
                history.append(loss_value)
                if step % cfg.log_interval == 0 or step == cfg.max_iters:
                    now = time.perf_counter()
                    dt = (now - t_last) / steps_timed
                    t_last, steps_timed = now, 0
                    log_file.write(json.dumps({"step": step, "loss": loss_value, "lr": lr, "ms_per_step": dt * 1e3})
                                   + "\n")
                    log_file.flush()
                    _log(cfg, f"step {step:5d}/{cfg.max_iters} | loss {loss_value:.4f} | lr {lr:.2e} | "
                              f"{dt * 1e3:6.1f} ms/step")
                if stop_at is not None and step >= stop_at:
                    raise KeyboardInterrupt
            do_eval()
        except KeyboardInterrupt:
            _save(out_dir / "ckpt.npz", model, optimizer, cfg, step, state["best"], tokenizer)
            summary["interrupted"] = True
            _log(cfg, f"\ninterrupted at step {step}: checkpoint saved to {out_dir / 'ckpt.npz'}; continue with --resume")
        finally:
            log_file.close()
    summary.update(step=step, history=history, best=state["best"], seconds=time.perf_counter() - t_start,
                   tokenizer=tokenizer)
    if not summary["interrupted"]:
        # report with the best-validation weights, as they are what best.npz holds
        best_model, _, _ = load_classifier(out_dir / "best.npz", device=cfg.device)
        summary["model"] = best_model
        summary["val"] = evaluate(best_model, val, cfg.eval_batch_size)
        _log(cfg, f"\nbest checkpoint (step {state['best']['step']}): {out_dir / 'best.npz'}")
        _log(cfg, format_report("val", summary["val"], names))
        if test is not None:
            summary["test"] = evaluate(best_model, test, cfg.eval_batch_size)
            _log(cfg, format_report("test", summary["test"], names))
            with open(out_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "best_step": state["best"]["step"],
                                    "test_loss": summary["test"]["loss"],
                                    "test_accuracy": summary["test"]["accuracy"],
                                    "test_macro_f1": summary["test"]["macro_f1"]}) + "\n")
    else:
        summary["model"] = model
    return summary
