"""Language-model scores from a cross-entropy loss: perplexity and bits per byte.

A language model's loss is the mean negative log-likelihood of the next token, in nats (natural
log) per token. Two readings of it:

  * perplexity = exp(loss): the number of equally likely tokens the model is, on average, as
    unsure as (1 for a perfect model, the vocabulary size for a uniform guess);
  * bits per byte = loss * tokens / (bytes * ln 2): the same likelihood in bits (divide by ln 2),
    spread over the UTF-8 bytes of the text instead of the tokens. A model with a larger
    vocabulary has fewer, longer tokens and a higher loss per token, so perplexities of a
    char-level and a BPE model do not compare; bits per byte do (the usual yardstick for text
    compression, e.g. enwik8).

`run/train.py` reports both for the validation loss (`val_ppl`, `val_bpb` in log.jsonl).
Leaves out: per-word perplexity, bits per character, and the sliding-window evaluation of a
long text (each window scored with its own context).

    >>> round(perplexity(math.log(50.0)), 9)  # as unsure as a uniform choice among 50 tokens
    50.0
    >>> bits_per_byte(math.log(256.0), tokens=1, bytes=1)  # uniform over 256 byte values: 8 bits
    8.0
"""
import math

import numpy as np

_MAX_LOG = math.log(np.finfo(np.float64).max)  # ~709.78: exp of anything larger overflows a float64


def _mean_loss(loss):
    try:
        values = np.asarray(loss, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"loss must be a number or an array of numbers (nats per token), got {loss!r}") from None
    if values.size == 0:
        raise ValueError("loss is empty: a mean loss needs at least one value")
    mean = float(values.mean())
    if mean < 0:
        raise ValueError(f"a cross-entropy loss in nats is never negative, got mean {mean}")
    return mean


def perplexity(loss):
    """exp of the mean loss: the perplexity of a model whose mean cross-entropy is `loss` nats per token.

    Args:
        loss: mean negative log-likelihood in nats per token (a float), or an array of losses
            (per token, or per batch of equally many tokens) whose mean is taken.
    Returns:
        A Python float >= 1; inf where exp overflows (a mean loss above ~709.78 nats), NaN for NaN.
    """
    mean = _mean_loss(loss)
    return math.inf if mean > _MAX_LOG else math.exp(mean)  # NaN stays NaN


def bits_per_byte(loss, tokens, bytes):
    """The mean loss of `tokens` tokens re-expressed in bits per UTF-8 byte of the text they encode.

    bits per byte = loss * tokens / (bytes * ln 2): the total in nats (loss * tokens), converted to
    bits (/ ln 2), divided over the bytes. Only the ratio bytes / tokens matters, so a corpus-wide
    average such as `TokenData.bytes_per_token` can stand for it with tokens=1.

    Args:
        loss: mean negative log-likelihood in nats per token (a float, or an array whose mean is taken).
        tokens: how many tokens the loss is the mean over (> 0).
        bytes: how many UTF-8 bytes those tokens stand for (> 0).
    Returns:
        A Python float.
    """
    mean = _mean_loss(loss)
    if not (tokens > 0 and bytes > 0):
        raise ValueError(f"tokens and bytes must both be positive, got tokens={tokens!r}, bytes={bytes!r}")
    return mean * tokens / (bytes * math.log(2))
