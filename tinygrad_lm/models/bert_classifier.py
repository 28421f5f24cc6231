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
It offers what the fine-tuning loop uses of `GPTForSequenceClassification` (gpt_classifier.py):
`forward(idx, attention_mask, labels=...)` and `pooling` (always "cls"); `freeze_body`,
`trainable_named_parameters`, `from_pretrained`, `from_scratch_like` and `label_names` come
from their shared base, classifier.py's `SequenceClassifier`.
With right padding, a sequence's logits do not depend on how much padding its batch adds (tested).
Leaves out: sentence-pair inputs (token_type_ids stay 0), regression and multi-label heads.
"""
from dataclasses import replace


from .bert import Bert, BertConfig, init_bert_
from ..nn import CrossEntropyLoss, Dropout, Linear
from .classifier import SequenceClassifier
from .gpt_classifier import _check_mask


class BertForSequenceClassification(SequenceClassifier):
    """A BERT encoder plus dropout and a linear head on the pooled [CLS] state.

    Args:
        config: BertConfig of the encoder.
        num_labels: number of classes L (>= 2).
        label_names: optional list of L names (saved in checkpoints, used for reports).
        pooling: "cls", the only pooling (the argument mirrors GPTForSequenceClassification's).
    """
    model_type = "bert"
    body, head, default_pooling = "bert", "classifier", "cls"  # for classifier.py's shared methods

    def __init__(self, config, num_labels, label_names=None, pooling="cls"):
        super().__init__()
        self._set_labels(num_labels, label_names)
        if pooling != "cls":
            raise ValueError(f"pooling={pooling!r}: a BERT classifier pools [CLS] through its pooler; use "
                             "--pooling cls (or leave --pooling unset)")
        self.pooling, self.config = pooling, config
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
        return self._logits_and_loss(logits, labels)

    @staticmethod
    def config_from_meta(meta, path, dropout=None):
        """The BertConfig a checkpoint's meta holds, with both dropout probabilities set to `dropout` if given."""
        try:
            config = BertConfig.from_dict(dict(meta["model_config"]))
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: checkpoint has no usable BERT model config: {e}") from None
        if dropout is not None:
            config = replace(config, hidden_dropout_prob=float(dropout), attention_probs_dropout_prob=float(dropout))
        return config
