"""`SequenceClassifier`: what the GPT and the BERT text classifiers share.

A classifier is a pretrained body (`body`: the GPT's `transformer`, or BERT's `bert`) that turns
(B, T) ids into one vector per sequence, and a new linear head (`head`: `score` or
`classifier`, Hugging Face's names) from that vector to L logits. This file holds what does not
depend on the body: the label set, the loss with its label checks, freezing the body (a linear
probe), and loading a pretraining checkpoint by name with a report of what was loaded, what is
new and what was unused. gpt_classifier.py and bert_classifier.py hold the bodies and how each pools.
It follows Hugging Face's `*ForSequenceClassification` classes and their `from_pretrained`
load report. Leaves out: regression and multi-label heads.
"""
from dataclasses import dataclass, field

import numpy as np

from .. import checkpoint
from ..engine.backend import check_later, get_array_module, to_device
from ..nn import Module
from ..nn.hooks import run_with_cache
from ..engine.tensor import Tensor


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


class SequenceClassifier(Module):
    """Base of GPTForSequenceClassification and BertForSequenceClassification.

    A subclass sets `body` and `head` (attribute names), `default_pooling`, and
    `config_from_meta(meta, path, dropout)` (its body's config from a checkpoint), builds both
    parts in `__init__` after `_set_labels`, and ends `forward` with `self._logits_and_loss`.
    """
    body, head, default_pooling = None, None, None

    def _set_labels(self, num_labels, label_names):
        if not isinstance(num_labels, (int, np.integer)) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for num_labels={num_labels}")
        self.num_labels = int(num_labels)
        self.label_names = list(label_names) if label_names is not None else list(range(num_labels))

    def _logits_and_loss(self, logits, labels):
        """(logits, mean cross-entropy against `labels` (B,)), or (logits, None) without labels."""
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

    def run_with_cache(self, idx, **inputs):
        """(logits (B, L), cache): each submodule's output by dotted name and each attention layer's
        weights (B, nh, T, T) under `<layer>.weights` (nn/hooks.py); `inputs` as forward takes them."""
        return run_with_cache(self, lambda: self(idx, **inputs)[0])

    def freeze_body(self, frozen=True):
        """Turn gradients of every body parameter off (or back on); returns the elements affected."""
        n = 0
        for _, p in getattr(self, self.body).named_parameters():
            p.requires_grad = not frozen
            p.grad = None
            n += p.size
        return n

    def trainable_named_parameters(self):
        """(name, Parameter) of the parameters that train (all, or only the head when frozen)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    @classmethod
    def from_pretrained(cls, path, num_labels, freeze_body=False, label_names=None, dropout=None,
                        verbose=True, device="cpu", pooling=None):
        """A classifier whose body is the pretraining checkpoint at `path`, loaded by name.

        Every checkpoint key the classifier also has (the body's) is copied; the head is newly
        initialised; keys the classifier lacks (`lm_head.weight`, BERT's `cls.*`) are reported as
        unused. The checkpoint's tokenizer is attached as `model.tokenizer` and the report as
        `model.load_report` (printed when verbose).

        Args:
            path: a checkpoint written by `tinygrad_lm.run.train` (ckpt.npz or best.npz).
            num_labels: number of classes; label_names: optional names.
            freeze_body: turn off gradients of the body (train the head only).
            dropout: override the body's dropout probability (None keeps the checkpoint's).
            pooling: see the subclass (None: its default).
        """
        from ..tokenizer import tokenizer_from_dict

        meta, state, _ = checkpoint.load(path)
        model = cls(cls.config_from_meta(meta, path, dropout), num_labels, label_names, pooling or cls.default_pooling)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        loaded = [k for k, _ in model.named_parameters(remove_duplicate=False) if k not in missing]
        report = LoadReport(str(path), loaded, list(missing), list(unexpected), head=cls.head + ".")
        if freeze_body:
            report.frozen = model.freeze_body()
        model.to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        object.__setattr__(model, "load_report", report)
        if verbose:
            print(report, flush=True)
        return model

    @classmethod
    def from_scratch_like(cls, path, num_labels, label_names=None, dropout=None, device="cpu", pooling=None):
        """The same-size classifier with the same tokenizer as the checkpoint, but random weights:
        the control that shows what pretraining adds. Uses the package's seeded generator."""
        from ..tokenizer import tokenizer_from_dict

        meta, _, _ = checkpoint.load(path)
        model = cls(cls.config_from_meta(meta, path, dropout), num_labels, label_names,
                    pooling or cls.default_pooling).to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        return model
