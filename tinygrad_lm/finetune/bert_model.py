"""`BertForSequenceClassification`: a BERT encoder with a linear classifier on the pooled [CLS].

    idx (B, T) = [CLS] text [SEP] [PAD]..., attention_mask (B, T) True on real tokens
      -> the encoder `bert` (bert.py: embeddings, post-LN layers, padded keys masked)   (B, T, C)
      -> pooler: tanh(dense(h[:, 0])), the [CLS] position                              (B, C)
      -> dropout -> classifier: Linear(C, num_labels)                                  (B, L)

This is Hugging Face's `BertForSequenceClassification` (Devlin et al. 2018, section 4.1): the
same names (`bert.*`, `classifier.*`), so `from_pretrained` loads the `bert.*` tensors of a
checkpoint written by `train --objective mlm` by name; the MLM head `cls.*` is reported as
unused and the classifier is newly initialised (N(0, initializer_range), zero bias, as BERT
initialises). Our MLM pretraining has no next-sentence task, so the pooler it saves was never
trained (BertForMaskedLM does not run it): it starts fine-tuning at its random initial values,
which the report below still counts as loaded. The dropout before the classifier is the
encoder's `hidden_dropout_prob` (`--dropout` overrides both of the encoder's probabilities).
It offers what the fine-tuning loop uses of `GPTForSequenceClassification` (model.py):
`forward(idx, attention_mask, labels=...)`, `pooling` (always "cls"), `freeze_body`,
`trainable_named_parameters`, `from_pretrained`, `from_scratch_like`, `label_names`.
With right padding, a sequence's logits do not depend on how much padding its batch adds (tested).
Leaves out: sentence-pair inputs (token_type_ids stay 0), regression and multi-label heads.
"""
from dataclasses import replace

import numpy as np

from .. import checkpoint
from ..backend import check_later, get_array_module, to_device
from ..bert import Bert, BertConfig, init_bert_
from ..nn import CrossEntropyLoss, Dropout, Linear, Module
from ..tensor import Tensor
from .model import LoadReport, _check_mask


class BertForSequenceClassification(Module):
    """A BERT encoder plus dropout and a linear head on the pooled [CLS] state.

    Args:
        config: BertConfig of the encoder.
        num_labels: number of classes L (>= 2).
        label_names: optional list of L names (saved in checkpoints, used for reports).
        pooling: "cls", the only pooling (the argument mirrors GPTForSequenceClassification's).
    """
    model_type = "bert"

    def __init__(self, config, num_labels, label_names=None, pooling="cls"):
        super().__init__()
        if not isinstance(num_labels, (int, np.integer)) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for num_labels={num_labels}")
        if pooling != "cls":
            raise ValueError(f"pooling={pooling!r}: a BERT classifier pools [CLS] through its pooler; use "
                             "--pooling cls (or leave --pooling unset)")
        self.pooling = pooling
        self.config, self.num_labels = config, int(num_labels)
        self.label_names = list(label_names) if label_names is not None else list(range(num_labels))
        self.bert = Bert(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, self.num_labels)
        init_bert_(self.classifier, config)  # N(0, initializer_range) weight, zero bias
        self.loss_fn = CrossEntropyLoss()

    @property
    def device(self):
        return self.bert.device

    def forward(self, idx, attention_mask=None, token_type_ids=None, labels=None):
        """Logits (B, L) and, when `labels` (B,) are given, the mean cross-entropy loss (else None)."""
        if attention_mask is not None:
            attention_mask = _check_mask(attention_mask, idx)
        _, pooled = self.bert(idx, attention_mask, token_type_ids)  # (B, C): tanh(dense(h[:, 0]))
        logits = self.classifier(self.dropout(pooled))  # (B, L)
        if labels is None:
            return logits, None
        y = labels.data if isinstance(labels, Tensor) else labels
        y = get_array_module(y).asarray(y)
        if y.shape != (logits.shape[0],):
            raise ValueError(f"labels must have shape (B,) = ({logits.shape[0]},), got {y.shape}")
        if y.size:
            check_later((y.min() < 0) | (y.max() >= self.num_labels), lambda: ValueError(
                f"labels must be ids in 0..{self.num_labels - 1}, got {y.min().item()}..{y.max().item()}"))
        return logits, self.loss_fn(logits, to_device(y.astype(np.int64), self.device))

    def freeze_body(self, frozen=True):
        """Turn gradients of every encoder parameter off (or back on); returns the elements affected."""
        n = 0
        for _, p in self.bert.named_parameters():
            p.requires_grad = not frozen
            p.grad = None
            n += p.size
        return n

    def trainable_named_parameters(self):
        """(name, Parameter) of the parameters that train (all, or only the head when frozen)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    @classmethod
    def from_pretrained(cls, path, num_labels, freeze_body=False, label_names=None, dropout=None,
                        verbose=True, device="cpu", pooling="cls"):
        """A classifier whose encoder is the `bert.*` tensors of the MLM checkpoint at `path`.

        Arguments as `GPTForSequenceClassification.from_pretrained`; the checkpoint's tokenizer
        is attached as `model.tokenizer` and the load report as `model.load_report`.
        """
        from ..tokenizer import tokenizer_from_dict

        meta, state, _ = checkpoint.load(path)
        model = cls(config_from_meta(meta, path, dropout), num_labels, label_names, pooling)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        loaded = [k for k, _ in model.named_parameters(remove_duplicate=False) if k not in missing]
        report = LoadReport(str(path), loaded, list(missing), list(unexpected), head="classifier.")
        if freeze_body:
            report.frozen = model.freeze_body()
        model.to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        object.__setattr__(model, "load_report", report)
        if verbose:
            print(report, flush=True)
        return model

    @classmethod
    def from_scratch_like(cls, path, num_labels, label_names=None, dropout=None, device="cpu", pooling="cls"):
        """The same-size classifier with the checkpoint's tokenizer and random weights (the control)."""
        from ..tokenizer import tokenizer_from_dict

        meta, _, _ = checkpoint.load(path)
        model = cls(config_from_meta(meta, path, dropout), num_labels, label_names, pooling).to(device=device)
        object.__setattr__(model, "tokenizer", tokenizer_from_dict(meta["tokenizer"]))
        return model


def config_from_meta(meta, path, dropout=None):
    """The BertConfig a checkpoint's meta holds, with both dropout probabilities set to `dropout` if given."""
    try:
        config = BertConfig.from_dict(dict(meta["model_config"]))
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: checkpoint has no usable BERT model config: {e}") from None
    if dropout is not None:
        config = replace(config, hidden_dropout_prob=float(dropout), attention_probs_dropout_prob=float(dropout))
    return config
