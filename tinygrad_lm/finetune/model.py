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
Leaves out: attention pooling, left padding, and multi-label heads.
"""
from dataclasses import dataclass, field

import numpy as np

from .. import checkpoint
from ..backend import check_later, get_array_module, to_device
from ..model import GPTConfig, Transformer, init_gpt2_
from ..nn import CrossEntropyLoss, Linear, Module
from ..tensor import Tensor


@dataclass
class LoadReport:
    """What `from_pretrained` did with the checkpoint's keys."""
    path: str
    loaded: list = field(default_factory=list)  # model keys copied from the checkpoint
    initialized: list = field(default_factory=list)  # model keys the checkpoint lacked (the new head)
    unused: list = field(default_factory=list)  # checkpoint keys the model has no use for (lm_head.weight)
    frozen: int = 0  # parameters (elements) with gradients turned off
    head: str = "score."  # the prefix of the new head's keys (BERT's classifier: "classifier.")

    def __str__(self):
        body_missing = [k for k in self.initialized if not k.startswith(self.head)]
        lines = [f"loaded {len(self.loaded)} tensors from {self.path}",
                 f"newly initialised: {', '.join(self.initialized) or 'none'}",
                 f"unused checkpoint keys: {', '.join(self.unused) or 'none'}"]
        if body_missing:
            lines.append(f"WARNING: the checkpoint lacks body keys, which start from random values: {body_missing}")
        if self.frozen:
            lines.append(f"body frozen: {self.frozen:,} parameters get no gradient")
        return "\n".join(lines)


class GPTForSequenceClassification(Module):
    """A GPT body (GPT-2 parameter names) plus a linear head on the last real token.

    Args:
        config: GPTConfig of the body.
        num_labels: number of classes L (>= 2).
        label_names: optional list of L names (saved in checkpoints, used for reports).
        pooling: "last" (the last real token's hidden state) or "mean" (the mean over real tokens).
    """
    model_type = "gpt"  # what fine-tuning checkpoints record (BertForSequenceClassification: "bert")

    def __init__(self, config, num_labels, label_names=None, pooling="last"):
        super().__init__()
        if not isinstance(num_labels, (int, np.integer)) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for num_labels={num_labels}")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.config, self.num_labels = config, int(num_labels)
        self.label_names = list(label_names) if label_names is not None else list(range(num_labels))
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
        if labels is None:
            return logits, None
        y = labels.data if isinstance(labels, Tensor) else labels
        y = get_array_module(y).asarray(y)  # a CuPy array stays on its GPU
        if y.shape != (logits.shape[0],):
            raise ValueError(f"labels must have shape (B,) = ({logits.shape[0]},), got {y.shape}")
        if y.size:  # checked at once on NumPy; on a GPU at the next host read (no sync per step)
            check_later((y.min() < 0) | (y.max() >= self.num_labels), lambda: ValueError(
                f"labels must be ids in 0..{self.num_labels - 1}, got {y.min().item()}..{y.max().item()}"))
        return logits, self.loss_fn(logits, to_device(y.astype(np.int64), self.device))

    def freeze_body(self, frozen=True):
        """Turn gradients of every body parameter off (or back on); returns the elements affected."""
        n = 0
        for _, p in self.transformer.named_parameters():
            p.requires_grad = not frozen
            p.grad = None
            n += p.size
        return n

    def trainable_named_parameters(self):
        """(name, Parameter) of the parameters that train (all, or only the head when frozen)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    @classmethod
    def from_pretrained(cls, path, num_labels, freeze_body=False, label_names=None, dropout=None,
                        verbose=True, device="cpu", pooling="last"):
        """A classifier whose body is the pretrained GPT checkpoint at `path`.

        Every checkpoint key the classifier also has (`transformer.*`) is loaded by name; the
        head `score` is newly initialised; keys the classifier lacks (`lm_head.weight`) are
        reported as unused. The checkpoint's tokenizer is attached as `model.tokenizer` and
        the report as `model.load_report` (printed when verbose).

        Args:
            path: a checkpoint written by `tinygrad_lm.train` (ckpt.npz or best.npz).
            num_labels: number of classes; label_names: optional names.
            freeze_body: turn off gradients of the body (train the head only).
            dropout: override the body's dropout probability (None keeps the checkpoint's).
            pooling: "last" or "mean" (see the class).
        """
        from ..tokenizer import tokenizer_from_dict

        meta, state, _ = checkpoint.load(path)
        config = _config_from_meta(meta, path, dropout)
        model = cls(config, num_labels, label_names, pooling)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        loaded = [k for k, _ in model.named_parameters(remove_duplicate=False) if k not in missing]
        report = LoadReport(str(path), loaded, list(missing), list(unexpected))
        if freeze_body:
            report.frozen = model.freeze_body()
        model.to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        object.__setattr__(model, "load_report", report)
        if verbose:
            print(report, flush=True)
        return model

    @classmethod
    def from_scratch_like(cls, path, num_labels, label_names=None, dropout=None, device="cpu", pooling="last"):
        """The same-size classifier with the same tokenizer as the checkpoint, but random weights:
        the control that shows what pretraining adds. Uses the package's seeded generator."""
        from ..tokenizer import tokenizer_from_dict

        meta, _, _ = checkpoint.load(path)
        model = cls(_config_from_meta(meta, path, dropout), num_labels, label_names, pooling).to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        return model


def _config_from_meta(meta, path, dropout=None):
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
