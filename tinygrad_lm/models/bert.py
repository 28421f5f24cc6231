"""BERT: a bidirectional Transformer encoder and its masked-language-model head (Devlin et al. 2018).

    idx (B, T) token ids, token_type_ids (B, T) segment ids (0 / 1), attention_mask (B, T) 1 = real
      -> word + position + token-type embeddings, LayerNorm, dropout          (B, T, C)
      -> num_hidden_layers post-LN layers, each:                              (B, T, C)
             x = LN(x + dropout(attention.output.dense(attention.self(x))))   every token sees
             x = LN(x + dropout(output.dense(gelu(intermediate.dense(x)))))   every real token
      -> sequence_output (B, T, C); pooler: tanh(dense(sequence_output[:, 0]))  (B, C), on [CLS]
    BertForMaskedLM puts the MLM head on sequence_output:
      -> transform: dense, exact (erf) GELU, LayerNorm                        (B, T, C)
      -> decoder: h @ word_embeddings^T + bias                                (B, T, V) logits

Unlike the GPT (gpt.py), attention is not causal: a token attends to the tokens on both
sides, and only padding is masked (`nn.SelfAttention`); LayerNorm comes after each residual
sum (post-LN, the original Transformer's order), and GELU is the exact erf one (`ops/erf.py`).
Parameter names and shapes are Hugging Face's `BertForMaskedLM` (`bert.embeddings.word_embeddings.weight`,
`bert.encoder.layer.{i}.attention.self.query.weight`, ..., `cls.predictions.bias`), Linear
weights (out_features, in_features) as in PyTorch, so weights move without renaming or
transposing (hf/bert.py reads and writes the folders). The decoder weight is the word
embedding matrix (one Parameter, two names) and the decoder bias is `cls.predictions.bias`
(one Parameter, two names), as in transformers.
One difference from `transformers.BertForMaskedLM`: ours keeps the pooler (`bert.pooler.dense`),
which transformers builds only for BertModel and the classifiers; the MLM forward does not
run it (so it gets no gradient there), and fine-tuning on [CLS] (bert_classifier.py, run/finetune.py) uses it.
Initialisation is BERT's: N(0, initializer_range) for weights and embeddings, zero biases,
LayerNorm weight 1 and bias 0, and the [PAD] row of the word embeddings zero.
Leaves out: next-sentence prediction, relative position embeddings, cross-attention and the
decoder variant, gradient checkpointing, and freezing the [PAD] row's gradient (PyTorch's
`padding_idx`; here it gets none anyway: padded keys are masked and padded positions unlabelled).
"""
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..engine import functional as F
from ..engine.backend import get_array_module, to_device
from ..nn import CrossEntropyLoss, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, SelfAttention
from ..nn import init
from ..nn.hooks import run_with_cache
from ..engine.tensor import Tensor

IGNORE_INDEX = -100  # labels equal to it are not predicted (Hugging Face's and PyTorch's default)


@dataclass
class BertConfig:
    """BERT's sizes, with Hugging Face's names. The defaults are a tiny model like GPTConfig's (its 65
    characters plus [CLS] [SEP] [MASK] [PAD]), not bert-base (vocab_size=30522, hidden_size=768,
    12 layers, 12 heads, intermediate_size=3072, max_position_embeddings=512); the dropouts are
    BERT's 0.1."""

    vocab_size: int = 69
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size={self.hidden_size} must be divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.layer_norm_eps > 0 or not self.initializer_range > 0:
            raise ValueError(f"BertConfig: layer_norm_eps ({self.layer_norm_eps}) and initializer_range "
                             f"({self.initializer_range}) must be positive")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_token_id={self.pad_token_id} must be a token id in "
                             f"0..{self.vocab_size - 1}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """A BertConfig from `to_dict()`'s dict; a ValueError naming any key it does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"BertConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


class BertEmbeddings(Module):
    """word + position + token-type embeddings, then LayerNorm and dropout: (B, T) ids -> (B, T, C)."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.word_embeddings = Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, idx, token_type_ids):
        T = idx.shape[1]
        pos = get_array_module(idx).arange(T)  # (T,) positions 0..T-1
        x = self.word_embeddings(idx) + self.position_embeddings(pos)  # (B, T, C) + (T, C)
        x = x + self.token_type_embeddings(token_type_ids)  # (B, T, C)
        return self.dropout(self.LayerNorm(x))


class BertResidual(Module):
    """The post-LN residual sublayer: LayerNorm(residual + dropout(dense(x))). Hugging Face's
    `BertSelfOutput` (in_features = C) and `BertOutput` (in_features = intermediate_size)."""

    def __init__(self, in_features, c):
        super().__init__()
        self.dense = Linear(in_features, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(residual + self.dropout(self.dense(x)))


class BertAttention(Module):
    """Self-attention (`self`, named as in Hugging Face) and its residual sublayer (`output`)."""

    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c.hidden_size, c.num_attention_heads, c.attention_probs_dropout_prob)
        self.output = BertResidual(c.hidden_size, c)

    def forward(self, x, attention_mask=None):
        return self.output(self.self(x, attention_mask), x)


class BertIntermediate(Module):
    """The feed-forward expansion: gelu(dense(x)), (B, T, C) -> (B, T, intermediate_size)."""

    def __init__(self, c):
        super().__init__()
        self.dense = Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x), approximate="none")


class BertLayer(Module):
    """One post-LN encoder layer: attention sublayer, then feed-forward sublayer."""

    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidual(c.intermediate_size, c)

    def forward(self, x, attention_mask=None):
        x = self.attention(x, attention_mask)  # (B, T, C)
        return self.output(self.intermediate(x), x)  # (B, T, C)


class BertEncoder(Module):
    def __init__(self, c):
        super().__init__()
        self.layer = ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x, attention_mask=None):
        for layer in self.layer:
            x = layer(x, attention_mask)
        return x


class BertPooler(Module):
    """tanh(dense(h_[CLS])): the first position's hidden state (B, C), for classification."""

    def __init__(self, c):
        super().__init__()
        self.dense = Linear(c.hidden_size, c.hidden_size)

    def forward(self, sequence_output):
        return self.dense(sequence_output[:, 0]).tanh()  # (B, T, C) -> (B, C)


def init_bert_(model, config):
    """BERT's initialisation, in place: N(0, initializer_range) for weights and embeddings,
    zero biases, LayerNorm weight 1 / bias 0, and the [PAD] row of the word embeddings zero."""
    for name, p in model.named_parameters():
        if ".LayerNorm." in name:
            value = np.full(p.shape, 1.0 if name.endswith(".weight") else 0.0, dtype=np.float32)
        elif name.endswith("bias"):
            value = np.zeros(p.shape, dtype=np.float32)
        else:
            value = init.normal(p.shape, config.initializer_range)
            if name.endswith("word_embeddings.weight"):
                value[config.pad_token_id] = 0.0
        p.data = to_device(value.astype(p.dtype), p.device)


class Bert(Module):
    """The encoder (Hugging Face's `BertModel`): embeddings, encoder layers, pooler."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        init_bert_(self, config)

    @property
    def device(self):
        return self.embeddings.word_embeddings.weight.device

    def encode(self, idx, attention_mask=None, token_type_ids=None):
        """sequence_output (B, T, C) only (the MLM head does not need the pooler)."""
        idx, attention_mask, token_type_ids = self.check_inputs(idx, attention_mask, token_type_ids)
        x = self.embeddings(idx, token_type_ids)  # (B, T, C)
        return self.encoder(x, attention_mask)

    def forward(self, idx, attention_mask=None, token_type_ids=None):
        """(sequence_output (B, T, C), pooled_output (B, C)) for token ids idx (B, T).

        Args:
            attention_mask: (B, T), 1 = real token, 0 = padding (keys masked); default all 1.
            token_type_ids: (B, T) segment ids in 0..type_vocab_size-1; default all 0.
        """
        sequence_output = self.encode(idx, attention_mask, token_type_ids)
        return sequence_output, self.pooler(sequence_output)

    def run_with_cache(self, idx, attention_mask=None, token_type_ids=None):
        """(forward's (sequence_output, pooled_output), cache): cache maps each submodule's dotted
        name to its output and `encoder.layer.{i}.attention.self.weights` to layer i's attention
        weights (B, nh, T, T), before attention dropout; detached copies (nn/hooks.py)."""
        return run_with_cache(self, lambda: self(idx, attention_mask, token_type_ids))

    def check_inputs(self, idx, attention_mask, token_type_ids):
        """Raw arrays on the model's device; a clear ValueError for wrong shapes or dtypes."""
        device = self.device

        def raw(a):
            a = a.data if isinstance(a, Tensor) else a
            return to_device(a if get_array_module(a) is not np else np.asarray(a), device)

        idx = raw(idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"Bert expects integer token ids of shape (B, T), got shape {tuple(idx.shape)} "
                             f"and dtype {idx.dtype}")
        B, T = idx.shape
        if T == 0:
            raise ValueError("Bert: the input sequence is empty (T = 0)")
        if T > self.config.max_position_embeddings:
            raise ValueError(f"Bert: sequence length {T} exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}; truncate the input")
        if token_type_ids is None:
            token_type_ids = get_array_module(idx).zeros((B, T), dtype=np.int64)
        token_type_ids = raw(token_type_ids)
        if token_type_ids.shape != (B, T):
            raise ValueError(f"Bert: token_type_ids must have the shape of the token ids {(B, T)}, "
                             f"got {tuple(token_type_ids.shape)}")
        if attention_mask is not None:
            attention_mask = raw(attention_mask)
            if attention_mask.shape != (B, T):
                raise ValueError(f"Bert: attention_mask must have the shape of the token ids {(B, T)}, "
                                 f"got {tuple(attention_mask.shape)}")
        return idx, attention_mask, token_type_ids


class BertPredictionHeadTransform(Module):
    """dense, exact GELU, LayerNorm: (B, T, C) -> (B, T, C)."""

    def __init__(self, c):
        super().__init__()
        self.dense = Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x), approximate="none"))


class BertLMPredictionHead(Module):
    """transform, then the decoder: logits = h @ W^T + bias with W the (tied) word embeddings."""

    def __init__(self, c):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = Linear(c.hidden_size, c.vocab_size)  # weight tied to the word embeddings by BertForMaskedLM
        self.bias = self.decoder.bias  # `cls.predictions.bias` and `cls.predictions.decoder.bias`: one Parameter

    def forward(self, x):
        return self.decoder(self.transform(x))  # (B, T, C) -> (B, T, V)


class BertOnlyMLMHead(Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)

    def forward(self, sequence_output):
        return self.predictions(sequence_output)


class BertForMaskedLM(Module):
    """The encoder (`bert`) with the masked-language-model head (`cls`)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.cls = BertOnlyMLMHead(config)
        init_bert_(self.cls, config)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tied (after init)
        self.loss_fn = CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    @property
    def device(self):
        return self.bert.device

    def num_params(self, non_embedding=False):
        """Number of parameters (tied ones counted once); without position embeddings if asked."""
        n = sum(p.size for p in self.parameters())
        if non_embedding:
            n -= self.bert.embeddings.position_embeddings.weight.size
        return n

    def forward(self, idx, attention_mask=None, token_type_ids=None, labels=None):
        """(logits (B, T, V), loss): loss is the mean cross-entropy over the positions whose label
        is not -100 (the masked ones, in MLM training), or None without labels.

        Args:
            idx: (B, T) token ids; attention_mask: (B, T), 1 = real, 0 = padding;
            token_type_ids: (B, T) segment ids (default 0); labels: (B, T) ids, -100 = not predicted.
        """
        h = self.bert.encode(idx, attention_mask, token_type_ids)  # (B, T, C)
        logits = self.cls(h)  # (B, T, V)
        if labels is None:
            return logits, None
        return logits, self.loss_fn(logits, labels)

    def run_with_cache(self, idx, attention_mask=None, token_type_ids=None):
        """(logits (B, T, V), cache): each submodule's output by dotted name, and layer i's attention
        weights (B, nh, T, T) under `bert.encoder.layer.{i}.attention.self.weights` (nn/hooks.py).
        The forward calls `bert.encode`, not `bert`: the sequence output is under `bert.encoder`,
        and `bert` and its pooler, which do not run, have no entry."""
        return run_with_cache(self, lambda: self(idx, attention_mask, token_type_ids)[0])

    @classmethod
    def from_pretrained(cls, path, dtype=np.float32):
        """A BertForMaskedLM with the weights of a Hugging Face BERT folder (config.json +
        model.safetensors), in eval mode; needs `pip install safetensors`. Mapping: hf/bert.py."""
        from ..hf import bert  # the file format, read only when asked for (hf/ imports no model)

        model = cls(bert.read_config(path, BertConfig)).to(dtype=np.dtype(dtype))  # refused values name config.json
        state, has_pooler = bert.read_state(path, model.config)
        model.load_state_dict(state, strict=has_pooler)  # without the pooler, only its two keys are missing; one cast
        return model.eval()

    def save_pretrained(self, path):
        """Write a folder that `transformers.BertForMaskedLM.from_pretrained(path)` loads."""
        from ..hf import bert

        bert.save_pretrained(self, path)


__all__ = ["BertConfig", "Bert", "BertForMaskedLM", "IGNORE_INDEX", "init_bert_"]
