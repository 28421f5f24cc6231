"""Prompt -> completion fine-tuning (`finetune --task generate`): this task's parts of finetune's loop.

    model  = the pretrained GPT of a `train` checkpoint; its tokenizer gets the end-of-completion
             token "<|endoftext|>" where it has none, and wte (with a tied head; an untied
             lm_head too) grows by one row, the mean of the others (GPT.resize_token_embeddings)
    data   = {"prompt", "completion"} JSONL lines (completions.py): prompt + completion + END,
             with targets on the completion and END only (the prompt's are -1: no loss, no gradient)
    loop   = run/finetune.py's `finetune`, unchanged: the schedule, train_step, checkpoints,
             exact resume, --threads, --dist mpi, --grad-accum, --diagnostics, Ctrl-C
    every evaluation: the validation loss (the mean over completion tokens and END), then every
             validation prompt decoded greedily (GPT.generate: temperature 0, the KV cache,
             stopping at END), and the exact match, BLEU and chrF of those completions against
             the references (`text_scores`)
    at the end: best.npz reloaded, its val (and --test) report, a few examples printed

Decoding: prompts of the same length are decoded together as one batch (equal lengths need no
padding, so the KV cache works as for one prompt); each gets at most `max_new_tokens` tokens
(default: the longest completion of the split + 1 for END + 10), and never more than the
context holds (prompt + generated <= block_size + 1: the last token is read from a full
context, so the window never slides). A completion is the decoded tokens before the first END
(all of them when END never came). Exact match compares it with the reference completion as
the tokenizer decodes it (the same text, unless --unknown-chars drop removed characters).
BLEU and chrF are corpus scores from 0 to 100 with sacreBLEU's default settings (tinygrad_lm.metrics:
13a tokenization and exponential smoothing; character 6-grams, beta 2), one reference per example.

The best checkpoint (best.npz) is the one with the lowest validation loss (ties: the earlier
one). Loss rather than chrF or exact match: it is what the run optimises, it moves smoothly
where a small validation set's decoded scores jump by whole examples, and it does not depend on
decoding settings such as --max-new-tokens (so those may change on --resume).
Checkpoints record kind "completion-lm", the end token and its id; `load_model` (run/train.py)
reads them as any GPT checkpoint, and `sample --ckpt best.npz --prompt ...` stops at END.
Leaves out: sampling-based decoding at evaluation, beam search, chat templates, and a loss
weight on the prompt.
"""
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import config
from .. import checkpoint, fast
from ..engine import rng
from ..engine.backend import to_device
from ..engine.tensor import no_grad
from ..metrics import corpus_bleu, corpus_chrf
from ..models.gpt import GPT, GPTConfig
from ..optim import AdamW, param_groups
from ..tokenizer import tokenizer_from_dict
from .completions import END_TOKEN, add_end_token, end_token_id, lm_batch, load_completions
from .data import micro_batch_rows
from .finetune import held_out, prepare_device
from .train import load_model
from .random_state import restore_random_state

KIND = "completion-lm"
MARGIN = 10  # tokens decoded beyond the longest reference completion and its END, by default
SHOWN = 3  # validation examples printed by the final report


def load_splits(cfg, tokenizer, block_size, end_id):
    """(train, val, test or None) CompletionData; val is held out of train when cfg.val is None."""
    def load(path):
        return load_completions(path, tokenizer, block_size, end_id, cfg.truncate, cfg.unknown_chars)

    train = load(cfg.data)
    if cfg.val is not None:
        val = load(cfg.val)
    else:
        kept, held = held_out(len(train), cfg)
        train, val = (train.subset(kept, f"{cfg.data} (train part)"),
                      train.subset(held, f"{cfg.data} (held-out {len(held)})"))
    return train, val, (load(cfg.test) if cfg.test is not None else None)


def _pretrained(cfg):
    """(GPT, tokenizer, added?) of cfg.ckpt for fine-tuning: its weights (or a random GPT of its size,
    init="scratch"), cfg.dropout applied, the end token in the tokenizer and a row for it in the model."""
    try:
        loaded, tokenizer, _ = load_model(cfg.ckpt)
    except ValueError as e:
        raise ValueError(f"--task generate fine-tunes a GPT language model (a `train` checkpoint): {e}") from None
    model_config = loaded.config if cfg.dropout is None else replace(loaded.config, dropout=float(cfg.dropout))
    model = GPT(model_config)
    if cfg.init == "pretrained":
        model.load_state_dict(loaded.state_dict())
    vocab = tokenizer.vocab_size
    add_end_token(tokenizer)
    model.resize_token_embeddings(max(tokenizer.vocab_size, model.config.vocab_size))
    return model, tokenizer, tokenizer.vocab_size > vocab


def _setup(cfg, resume, given=None):
    """Model, optimizer, tokenizer, data splits and the loop's state: fresh, or from out_dir/ckpt.npz."""
    prepare_device(cfg)
    if resume:
        ckpt_path = Path(cfg.run.out_dir) / "ckpt.npz"
        meta, weights, optim_state = checkpoint.load(ckpt_path)
        if meta.get("kind") != KIND:
            raise ValueError(f"{ckpt_path} is not a checkpoint of `finetune --task generate`; cannot resume it as one")
        cfg, notes = config.resumed(meta["finetune_config"], cfg, f"{ckpt_path}: finetune_config", given, meta["step"])
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        model = GPT(GPTConfig(**meta["model_config"]))
        model.load_state_dict(weights)
        state = {"step": meta["step"], "best": meta["best"], "notes": notes, "evaluated_step": meta["evaluated_step"]}
    else:
        rng.manual_seed(cfg.run.seed)
        model, tokenizer, added = _pretrained(cfg)
        state = {"step": 0, "best": None, "notes": []}
        if added and not cfg.run.quiet:
            print(f"added the end token {END_TOKEN!r} to the tokenizer as id {tokenizer.vocab_size - 1}; the "
                  f"embedding grew to {model.config.vocab_size} rows, the new one the mean of the others", flush=True)
    end_id = add_end_token(tokenizer)  # the tokenizer's own (a resumed run's has it already)
    splits = load_splits(cfg, tokenizer, model.config.block_size, end_id)  # bad data: an error before any folder
    model.to(device=cfg.run.device)
    optimizer = AdamW(param_groups(model.named_parameters(), cfg.optim.weight_decay), lr=cfg.optim.lr,
                      betas=(cfg.optim.beta1, cfg.optim.beta2))
    if resume:
        optimizer.load_state_dict(optim_state)
        restore_random_state(meta, model, ckpt_path, "start a new fine-tuning run (another "
                             "--out-dir) from the pretrained checkpoint this one started from")
    return cfg, model, optimizer, tokenizer, splits, state


def _micro_batches(data, sel, k, model, device):
    """This step's examples `sel` as k (micro-batch, weight) pairs for `train_step`: each micro-batch
    right-padded to its own longest sequence, weighted by its share of the step's targets."""
    prompts, completions = [data.prompt_ids[i] for i in sel], [data.completion_ids[i] for i in sel]
    _, targets = lm_batch(prompts, completions, data.end_id)  # (k*B, T): the counted targets weigh the parts
    out = []
    for rows, weight in micro_batch_rows(targets, k):
        idx, tgt = lm_batch(prompts[rows], completions[rows], data.end_id)  # (B, T_rows) each
        out.append(({"idx": to_device(idx, device), "targets": to_device(tgt, device)}, weight))
    return out


@no_grad()
def completion_loss(model, data, batch_size=64):
    """The mean cross-entropy over every completion token and END of `data` (eval mode, padded batches)."""
    was_training = model.training
    model.eval()
    order = np.argsort([-(len(p) + len(c)) for p, c in zip(data.prompt_ids, data.completion_ids)], kind="stable")
    total, count = 0.0, 0
    try:
        for start in range(0, len(order), batch_size):
            sel = order[start:start + batch_size]
            idx, targets = lm_batch([data.prompt_ids[i] for i in sel], [data.completion_ids[i] for i in sel],
                                    data.end_id)  # (b, T), (b, T)
            _, loss = model(to_device(idx, model.device), to_device(targets, model.device))
            n = int((targets >= 0).sum())
            total, count = total + float(loss.item()) * n, count + n
    finally:
        model.train(was_training)
    return total / count


def generate_completions(model, prompt_ids, end_id, max_new_tokens, batch_size=64):
    """Greedy completions (token id lists, END and what follows it removed) of each prompt.

    Prompts of equal length run as one batch (module doc); each gets at most max_new_tokens
    tokens, and never more than the context holds (block_size - len(prompt) + 1).
    """
    out = [None] * len(prompt_ids)
    by_length = {}
    for i, p in enumerate(prompt_ids):
        by_length.setdefault(len(p), []).append(i)
    for length, members in sorted(by_length.items()):
        n = min(max_new_tokens, model.config.block_size - length + 1)
        for start in range(0, len(members), batch_size):
            sel = members[start:start + batch_size]
            ids = np.stack([prompt_ids[i] for i in sel])  # (b, length)
            made = to_device(model.generate(ids, n, temperature=0, eos_id=end_id), "cpu")[:, length:]  # (b, <= n)
            for i, row in zip(sel, made.tolist()):
                out[i] = row[:row.index(end_id)] if end_id in row else row
    return out


def text_scores(hypotheses, references):
    """Exact match (the share of hypotheses equal to their reference, 0 to 1) and corpus BLEU and
    chrF (0 to 100) of hypothesis strings against one reference string each."""
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"text_scores: {len(hypotheses)} hypotheses for {len(references)} references")
    exact = float(np.mean([h == r for h, r in zip(hypotheses, references)]))
    return {"exact_match": exact, "bleu": corpus_bleu(hypotheses, [references]).score,
            "chrf": corpus_chrf(hypotheses, [references]).score}


def evaluate(model, data, batch_size=64, max_new_tokens=None):
    """Loss, exact match, BLEU and chrF of `model` on CompletionData `data`, with the texts compared.

    Args:
        model: a GPT (or the fast path's wrapper of one).
        data: CompletionData (its tokenizer decodes the completions).
        batch_size: sequences per forward and prompts per decoding batch.
        max_new_tokens: tokens decoded per prompt; None: the longest completion of `data` + 1 + MARGIN.
    Returns:
        dict: loss, exact_match, bleu, chrf, and the lists hypotheses (decoded completions) and
        references (the reference completions, decoded from their tokens).
    """
    if max_new_tokens is None:
        max_new_tokens = max(len(c) for c in data.completion_ids) + 1 + MARGIN
    generated = generate_completions(model, data.prompt_ids, data.end_id, max_new_tokens, batch_size)
    hypotheses = [data.tokenizer.decode(ids) for ids in generated]
    references = [data.tokenizer.decode(ids.tolist()) for ids in data.completion_ids]
    return {"loss": completion_loss(model, data, batch_size), **text_scores(hypotheses, references),
            "hypotheses": hypotheses, "references": references}


def _scores_line(metrics):
    """'exact match 0.5000 | BLEU 41.20 | chrF 60.05'."""
    return f"exact match {metrics['exact_match']:.4f} | BLEU {metrics['bleu']:.2f} | chrF {metrics['chrf']:.2f}"


def format_report(name, metrics, data, shown=SHOWN):
    """The split's loss and scores, then its first `shown` examples: prompt, reference, generated."""
    lines = [f"{name}: loss {metrics['loss']:.4f} | {_scores_line(metrics)} | {len(data)} examples"]
    for i in range(min(shown, len(data))):
        lines += [f"  prompt     {data.prompts[i]!r}", f"  reference  {metrics['references'][i]!r}",
                  f"  generated  {metrics['hypotheses'][i]!r}"]
    return "\n".join(lines)


def _better(metrics, best):
    return best is None or metrics["loss"] < best["loss"]


def _evaluate(model, val, cfg, step, state, run):
    """Evaluate on the validation split, log, checkpoint (best.npz when the loss improved); returns the record."""
    m = evaluate(model, val, cfg.eval_batch_size, cfg.max_new_tokens)
    record = {"step": step, "val_loss": m["loss"], "val_exact_match": m["exact_match"], "val_bleu": m["bleu"],
              "val_chrf": m["chrf"]}
    improved = _better(m, state["best"])
    if improved:
        state["best"] = {"loss": m["loss"], "exact_match": m["exact_match"], "bleu": m["bleu"], "chrf": m["chrf"],
                         "step": step}
    run.evaluated(record, improved, f"step {step}: val loss {m['loss']:.4f} | {_scores_line(m)}")
    return record


def _save(path, model, optimizer, cfg, step, best, tokenizer, evaluated_step=None):
    meta = {"kind": KIND, "model_config": model.config.to_dict(), "finetune_config": asdict(cfg),
            "tokenizer": tokenizer.to_dict(), "end_token": END_TOKEN, "end_id": end_token_id(tokenizer),
            "step": step, "best": best, "evaluated_step": evaluated_step, "rng": rng.get_state()}
    checkpoint.save(path, model.state_dict(), optimizer.state_dict(), meta)


def load_completion_model(path, device="cpu"):
    """(GPT, tokenizer, meta) from a checkpoint written by `finetune --task generate`; meta["end_id"]
    is the end token's id."""
    model, tokenizer, meta = load_model(path, device)
    if meta.get("kind") != KIND:
        raise ValueError(f"{path} is not a checkpoint of `finetune --task generate` (a pretrained GPT? load it "
                         "with tinygrad_lm.run.train.load_model)")
    return model, tokenizer, meta


def _final_report(summary, val, test, cfg, state, run):
    """Reload the best-validation weights (best.npz) and report val (and test) with them."""
    best_path = run.out_dir / "best.npz"
    best_model, _, _ = load_completion_model(best_path, device=cfg.run.device)
    if not cfg.run.reference:
        fast.fuse(best_model)  # decoding on the fused layers, as `sample` does
    summary["model"] = best_model
    summary["val"] = evaluate(best_model, val, cfg.eval_batch_size, cfg.max_new_tokens)
    run.print(f"\nbest checkpoint (step {state['best']['step']}): {best_path}")
    run.print(format_report("val", summary["val"], val))
    if test is not None:
        summary["test"] = m = evaluate(best_model, test, cfg.eval_batch_size, cfg.max_new_tokens)
        run.print(format_report("test", m, test))
        with open(run.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": summary["step"], "best_step": state["best"]["step"], "test_loss": m["loss"],
                                "test_exact_match": m["exact_match"], "test_bleu": m["bleu"],
                                "test_chrf": m["chrf"]}) + "\n")


class Generate:
    """The prompt -> completion task's parts of the loop `finetune.finetune` runs."""
    setup, save, evaluate = staticmethod(_setup), staticmethod(_save), staticmethod(_evaluate)
    micro_batches, final_report = staticmethod(_micro_batches), staticmethod(_final_report)

    @staticmethod
    def describe(model, cfg, tokenizer):
        return (f"model: {model.num_params():,} parameters | vocab {model.config.vocab_size}, end token "
                f"{END_TOKEN!r} = id {end_token_id(tokenizer)} | context {model.config.block_size}")


__all__ = ["Generate", "KIND", "completion_loss", "evaluate", "format_report", "generate_completions",
           "load_completion_model", "load_splits", "text_scores"]
