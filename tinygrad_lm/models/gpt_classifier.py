"""`GPTForSequenceClassification`: a GPT body with a linear classifier on its last real token.

    idx (B, T) right-padded ids, attention_mask (B, T) True on real tokens
      -> the GPT body (wte + wpe, n_layer Blocks with padded keys masked, ln_f)   (B, T, C)
      -> pool: the hidden state of each sequence's LAST real token, t_b = sum_t mask[b, t] - 1
                                                                                  (B, C)
      -> score: Linear(C, num_labels)                                             (B, L)

Why the last token: attention is causal, so only the last position has read the whole text
(a GPT has no [CLS] token; Hugging Face's GPT2ForSequenceClassification pools the same way).
`pooling="mean"` averages the hidden states of the real tokens instead: a small pretrained
LM's last position is specialised for predicting the next token, and with few labelled
examples the mean of all positions can be the better summary (see scripts/bench_finetune.py).
With right padding every real position attends to real positions only, so a sequence's
logits do not depend on how much padding its batch adds, under either pooling (tested).

The body's parameters keep GPT-2's names (`transformer.wte.weight`, `transformer.h.0...`),
so `from_pretrained` loads a pretrained `GPT` checkpoint by name: every `transformer.*` key
is copied, `lm_head.weight` is not used, and the new head `score` (Hugging Face's name) is
initialised N(0, 0.02) with a zero bias (unlike Hugging Face, the head has a bias: it lets the
classifier learn the class priors directly). The load returns a report of what was loaded.
`freeze_body=True` turns off gradients of the body, so only the head trains (a linear probe).
The label checks, the loss, freezing and loading are classifier.py's, shared with BERT's.
Leaves out: attention pooling, left padding, and multi-label heads.
"""
import numpy as np

from ..engine.backend import check_later, get_array_module, to_device
from .gpt import GPTConfig, Transformer, init_gpt2_
from ..nn import CrossEntropyLoss, Linear
from ..engine.tensor import Tensor
from .classifier import SequenceClassifier


class GPTForSequenceClassification(SequenceClassifier):
    """A GPT body (GPT-2 parameter names) plus a linear head on the last real token.

    Args:
        config: GPTConfig of the body.
        num_labels: number of classes L (>= 2).
        label_names: optional list of L names (saved in checkpoints, used for reports).
        pooling: "last" (the last real token's hidden state) or "mean" (the mean over real tokens).
    """
    model_type = "gpt"  # what fine-tuning checkpoints record (BertForSequenceClassification: "bert")
    body, head, default_pooling = "transformer", "score", "last"  # for classifier.py's shared methods

    def __init__(self, config, num_labels, label_names=None, pooling="last"):
        super().__init__()
        self._set_labels(num_labels, label_names)
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.pooling, self.config = pooling, config
        self.transformer = Transformer(config)  # the GPT body, under GPT's names
        self.score = Linear(config.n_embd, self.num_labels)
        self.loss_fn = CrossEntropyLoss()
        init_gpt2_(self, config.n_layer)  # the body as GPT initialises it; score N(0, 0.02), zero bias

    @property
    def device(self):
        return self.transformer.wte.weight.device

    def pool(self, hidden, attention_mask=None):
        """One vector (B, C) per sequence: its last real token's hidden state, or the mean over
        its real tokens when pooling="mean".

        Args:
            hidden: Tensor (B, T, C).
            attention_mask: (B, T) of 1/0 or bool, right-padded (ones then zeros), or None
                (every position real).
        """
        B, T, _ = hidden.shape
        xp = get_array_module(hidden.data)
        if self.pooling == "mean":
            if attention_mask is None:
                return hidden.mean(axis=1)  # (B, C)
            m = xp.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
            m = to_device(m.astype(hidden.dtype), self.device)
            weights = (m / m.sum(axis=1, keepdims=True))[:, :, None]  # (B, T, 1), each row sums to 1
            return (hidden * Tensor(weights)).sum(axis=1)  # (B, C)
        last = xp.full(B, T - 1, dtype=np.int64) if attention_mask is None else _last_positions(attention_mask, T)
        return hidden[xp.arange(B), to_device(last, self.device)]  # (B, C)

    def forward(self, idx, attention_mask=None, labels=None):
        """Logits (B, L) and, when `labels` (B,) are given, the mean cross-entropy loss (else None)."""
        if attention_mask is not None:
            attention_mask = _check_mask(attention_mask, idx)
        h = self.transformer(idx, attention_mask)  # (B, T, C)
        logits = self.score(self.pool(h, attention_mask))  # (B, L)
        return self._logits_and_loss(logits, labels)

    @staticmethod
    def config_from_meta(meta, path, dropout=None):
        """The GPTConfig of a pretraining checkpoint's meta (dropout overridden if given)."""
        try:
            cfg = dict(meta["model_config"])
            if dropout is not None:
                cfg["dropout"] = float(dropout)
            return GPTConfig(**cfg)
        except (TypeError, KeyError) as e:
            raise ValueError(f"{path}: checkpoint has no usable GPT model config: {e}") from None


def _check_mask(attention_mask, idx):
    """The mask as a bool array, checked: shape (B, T), right padding, >= 1 real token per row."""
    am = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
    xp = get_array_module(am)
    am = xp.asarray(am).astype(bool)
    ids = idx.data if isinstance(idx, Tensor) else idx
    ids_shape = tuple(ids.shape) if hasattr(ids, "shape") else np.shape(ids)  # no np call on a device array
    if am.shape != ids_shape:
        raise ValueError(f"attention_mask shape {am.shape} must equal the ids' shape {ids_shape}")
    lengths = am.sum(axis=1)
    # checked at once on NumPy; on a GPU at the next host read, with no sync per batch
    check_later(lengths.min() == 0,
                lambda: ValueError("attention_mask: a sequence has no real token (an all-zero row)"))
    right_padded = xp.arange(am.shape[1])[None, :] < lengths[:, None]  # (B, T)
    check_later(~(am == right_padded).all(), lambda: ValueError(
        "attention_mask must be right-padded (ones, then zeros) for last-token pooling"))
    return am


def _last_positions(attention_mask, T):
    am = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
    xp = get_array_module(am)
    return xp.asarray(am).astype(bool).sum(axis=1).astype(np.int64) - 1  # (B,)
