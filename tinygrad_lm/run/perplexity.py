"""Sliding-window perplexity of a long text, and the masked-token score of an encoder.

A GPT reads at most `block_size` tokens, so a text longer than that is cut into windows. This file
follows Hugging Face's perplexity guide ("Perplexity of fixed-length models", its strided loop):

    windows of block_size tokens start every `stride` tokens: [0, B), [s, s + B), [2s, 2s + B), ...
    each token after the first is scored once, in the first window that reaches it; the first
        window scores its tokens 1..B-1, each later one only the tokens past the previous window's end
    the last window ends at the text's end (it may be shorter); the text's first token has no
        context and is not scored

so every token past the first window is predicted from at least B - stride tokens of left context
(stride = 1: always B - 1, the most a B-token model can use; one forward per token). With stride
= B the windows would not overlap and the first token of each, read without any context, could not
be scored at all (the guide's loop skips them), so the stride must be below B; B - 1 is the
cheapest setting that scores every token (windows overlap by one token). The guide's own example
uses stride = B / 2, our default: near stride 1's numbers at 2 forwards per B tokens.
The guide weighs each window's mean loss by its valid labels less one (for transformers' shift);
a later window's first label is ignored already, so that count is one short there. Here each
scored token counts once; tests/test_evaluate.py runs the guide's loop with the exact count
against transformers and gets our numbers.

    windows(n, B, s)          [(begin, end, first)]: window [begin, end) scores tokens first..end-1
    score_text(model, ids, B, s)  the negative log-likelihood of every scored token (float64), in
                              batches of windows; loss, perplexity, bits per token and per byte
    masked_lm_score(...)      a BERT encoder: the text as [CLS] window [SEP] pieces, masked as in
                              pretraining (mlm.py), seeded; masked-token loss and accuracy

Bits per byte = total nats / (ln 2 x the UTF-8 bytes of the scored tokens): the first token's
bytes are left out with its loss (data.token_byte_lengths gives each token's bytes), so the number
is exactly the code length of the scored part of the text (the definitions: tinygrad_lm.metrics).
Leaves out: several texts at once, document boundaries (an end-of-text token between files), a
beginning-of-text token that would let the first token be scored, and reusing the keys and values
of the overlap between windows (each window runs whole, as in the guide).
"""
import math

import numpy as np

from ..engine.backend import get_array_module, to_device
from ..engine.tensor import no_grad
from ..metrics import bits_per_byte, perplexity
from .data import token_byte_lengths


def check_stride(stride, block_size):
    """Refuse a stride outside 1..block_size-1 in one line naming the value and the fix."""
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or not 1 <= stride < block_size:
        fix = (f"the first token of each window would have no context and could not be scored; use --stride "
               f"{block_size - 1} (windows overlap by one token, every token scored)" if stride == block_size else
               f"use 1..{block_size - 1} (the default, {max(1, block_size // 2)}, is half the window)")
        raise ValueError(f"--stride {stride}: windows are {block_size} tokens, so the stride must be at least 1 and "
                         f"below {block_size}: {fix}")


def windows(n_tokens, block_size, stride):
    """The windows a text of `n_tokens` tokens is scored in (module docstring).

    Args:
        n_tokens: the text's length in tokens (>= 2).
        block_size: the window length B (>= 2); stride: 1..B-1.
    Returns:
        [(begin, end, first)]: window k reads tokens [begin, end) and scores tokens first..end-1
        (each predicted from the tokens before it in the window). Every token 1..n-1 is scored in
        exactly one window.

    >>> windows(10, 4, 2)
    [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    >>> windows(10, 4, 3)  # the last window is shorter: it ends at the text's end
    [(0, 4, 1), (3, 7, 4), (6, 10, 7)]
    """
    if block_size < 2:
        raise ValueError(f"block_size {block_size}: a window needs at least 2 tokens (one to read, one to score)")
    check_stride(stride, block_size)
    if n_tokens < 2:
        raise ValueError(f"{n_tokens} token(s): at least 2 are needed (the first token is never scored)")
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + block_size, n_tokens)
        out.append((begin, end, max(prev_end, begin + 1)))  # past the previous window's end; never position 0
        prev_end = end
        if end == n_tokens:
            break
    return out


def token_nll(logits, rows, cols, targets):
    """-log softmax(logits[rows, cols])[targets] for K picked positions, as a float64 NumPy array (K,).

    Args:
        logits: raw (B, T, V) array on any device; rows, cols, targets: (K,) integer NumPy arrays.
    The log-softmax is taken in the logits' dtype with the maximum subtracted, on their device.
    """
    xp = get_array_module(logits)
    picked = logits[xp.asarray(rows), xp.asarray(cols)]  # (K, V)
    m = picked.max(axis=-1, keepdims=True)  # (K, 1)
    lse = m[:, 0] + xp.log(xp.exp(picked - m).sum(axis=-1))  # (K,) log-sum-exp
    nll = lse - picked[xp.arange(len(targets)), xp.asarray(targets)]
    return to_device(nll, "cpu").astype(np.float64)


def _lm_logits(model, ids):
    """Logits (b, T, V) at every position of ids (b, T): GPT's `forward` without targets keeps only
    the last position (all sampling needs), so the body and the head are called as forward does."""
    return model.lm_head(model.transformer(ids)).data


@no_grad()
def score_text(model, ids, block_size, stride, batch_size=8, tokenizer=None, progress=None):
    """Sliding-window negative log-likelihood of a token sequence under a GPT (module docstring).

    Args:
        model: a GPT (reference or fused; any device), run in eval mode and restored after.
        ids: 1-D integer array of the text's tokens (n >= 2).
        block_size: the window length B (at most the model's context); stride: 1..B-1.
        batch_size: windows per forward (full windows; the shorter last one runs alone).
        tokenizer: when given, the bytes of the scored tokens are counted (for bits per byte).
        progress: a callable(done, total) told the windows scored so far, or None.
    Returns:
        dict: "nll" (n,) float64 (NaN at position 0), "count" (n,) int (how many windows scored each
        token: 1 everywhere but position 0), "windows", "tokens" scored, "loss" (mean nats per
        token), "perplexity", "bits_per_token", and with a tokenizer "bytes" and "bits_per_byte".
    """
    ids = np.asarray(ids, dtype=np.int64)
    if block_size > model.config.block_size:
        raise ValueError(f"windows of {block_size} tokens do not fit this model's context of "
                         f"{model.config.block_size}; use at most {model.config.block_size}")
    wins = windows(len(ids), block_size, stride)
    nll, count = np.full(len(ids), np.nan), np.zeros(len(ids), dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        done = 0
        for batch in _batches(wins, batch_size):
            x = np.stack([ids[b:e] for b, e, _ in batch])  # (b, T): the windows of this batch, equally long
            rows = np.concatenate([np.full(e - f, r) for r, (b, e, f) in enumerate(batch)])
            targets = np.concatenate([np.arange(f, e) for b, e, f in batch])  # token positions in the text
            cols = targets - np.concatenate([np.full(e - f, b) for b, e, f in batch]) - 1  # predicting positions
            nll[targets] = token_nll(_lm_logits(model, x), rows, cols, ids[targets])
            count[targets] += 1
            done += len(batch)
            if progress is not None:
                progress(done, len(wins))
    finally:
        model.train(was_training)
    scored = count > 0
    total, n = float(nll[scored].sum()), int(scored.sum())
    out = {"nll": nll, "count": count, "windows": len(wins), "tokens": n, "loss": total / n,
           "perplexity": perplexity(total / n), "bits_per_token": total / n / math.log(2)}
    if tokenizer is not None:
        out["bytes"] = int(token_byte_lengths(tokenizer)[ids[scored]].sum())
        out["bits_per_byte"] = bits_per_byte(total / n, n, out["bytes"]) if out["bytes"] else math.nan
    return out


def _batches(wins, batch_size):
    """Consecutive windows in groups of at most batch_size, each group of one length (a stacked array)."""
    group = []
    for w in wins:
        if group and (len(group) == batch_size or w[1] - w[0] != group[0][1] - group[0][0]):
            yield group
            group = []
        group.append(w)
    if group:
        yield group


@no_grad()
def masked_lm_score(model, tokenizer, ids, block_size, seed=0, batch_size=8, progress=None):
    """Masked-token loss and accuracy of a BERT encoder (`BertForMaskedLM`) over a token sequence.

    The text is cut into consecutive pieces of block_size - 2 tokens (the last may be shorter), each
    read as [CLS] piece [SEP] (padded), and all pieces are masked at once by pretraining's
    `MLMCollator.mask_tokens` (15% picked; of those 80% [MASK], 10% random, 10% kept) with
    `numpy.random.default_rng(seed)`: the same seed and text pick the same positions, whatever the
    batch size.

    Returns:
        dict: "loss" (mean nats per picked token), "accuracy" (argmax right at picked positions),
        "picked", "tokens", "pieces", "perplexity" (exp of the masked loss; not comparable to a GPT's).
    """
    from .mlm import IGNORE_INDEX, MLMCollator

    collator = MLMCollator(tokenizer)
    n = block_size - 2
    ids = np.asarray(ids, dtype=np.int64)
    pieces = [ids[i:i + n] for i in range(0, len(ids), n)]
    seqs, mask = collator.sequences(pieces, block_size)  # (N, T), (N, T)
    inputs, labels = collator.mask_tokens(seqs, np.random.default_rng(seed))  # (N, T), (N, T)
    total, right, picked = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(pieces), batch_size):
            sl = slice(start, start + batch_size)
            logits, _ = model(inputs[sl], attention_mask=mask[sl])  # (b, T, V)
            rows, cols = np.nonzero(labels[sl] != IGNORE_INDEX)
            target = labels[sl][rows, cols]
            total += float(token_nll(logits.data, rows, cols, target).sum())
            xp = get_array_module(logits.data)
            pred = to_device(logits.data[xp.asarray(rows), xp.asarray(cols)].argmax(axis=-1), "cpu")  # (K,)
            right, picked = right + int((pred == target).sum()), picked + len(target)
            if progress is not None:
                progress(min(start + batch_size, len(pieces)), len(pieces))
    finally:
        model.train(was_training)
    return {"loss": total / picked, "accuracy": right / picked, "picked": picked, "tokens": len(ids),
            "pieces": len(pieces), "perplexity": perplexity(total / picked)}


__all__ = ["windows", "check_stride", "score_text", "masked_lm_score", "token_nll"]
