"""Masked-language-model pretraining data: [CLS] text [SEP] sequences, BERT's masking, the metric.

What this file implements, following Devlin et al. 2018 (BERT), section 3.1 "Task #1: Masked
LM", and Hugging Face's `DataCollatorForLanguageModeling` (its `torch_mask_tokens`):

    SPECIAL_TOKENS          [CLS] [SEP] [MASK] [PAD], added to either tokenizer after its vocabulary
    MLMCollator.sequences   token lists -> [CLS] tokens [SEP] [PAD]...   ids (B, T), attention mask (B, T)
    MLMCollator.mask_tokens pick each non-special position with probability 0.15; of those picked,
                            80% become [MASK], 10% a random non-special token, 10% stay as they are;
                            labels hold the original id at picked positions and -100 elsewhere
    MLMCollator.get_batch   B random windows of T - 2 corpus tokens as [CLS] window [SEP], masked:
                            the model's inputs {idx, attention_mask, labels}, as `data.get_batch` is
                            for the GPT's next-token windows
    masked_accuracy         (right, picked): argmax predictions at the picked positions
    encoder_config          the `BertConfig` of `train --objective mlm` from the run's model flags

How the corpus becomes sequences: the corpus is one token stream (as for the GPT), so each
pretraining sequence is a random window of block_size - 2 tokens between [CLS] and [SEP] and
fills the whole context: pretraining sequences need no padding (a corpus shorter than one
window is refused by `TokenData.check_block_size`, as for the GPT). BERT's sentence-pair
input and next-sentence prediction are left out, so every token_type_id is 0.
Picking is a Bernoulli(0.15) draw per position, as in Hugging Face (so a sequence holds 15%
of its positions on average, not exactly); [CLS], [SEP] and [PAD] are never picked. Unlike
Hugging Face, whose random replacement may draw any id (special tokens included), the random
token is drawn among the non-special ids. A batch in which no position was picked (possible
only for tiny batches) gets one picked position, drawn uniformly, so its loss is defined.
Every draw comes from the generator passed in: the training loop passes its batch generator,
whose state each checkpoint holds, so a resumed run masks exactly as the uninterrupted one.
Leaves out: whole-word masking, span masking, dynamic padding by document, and the
next-sentence objective.
"""
from dataclasses import dataclass

import numpy as np

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]")
IGNORE_INDEX = -100  # the label of positions that carry no loss (PyTorch's and Hugging Face's default)


@dataclass(frozen=True)
class SpecialIds:
    """The ids of [CLS], [SEP], [MASK] and [PAD] in a tokenizer."""
    cls: int
    sep: int
    mask: int
    pad: int

    @classmethod
    def of(cls, tokenizer):
        """The special ids of `tokenizer`; a clear error when it lacks them."""
        specials = getattr(tokenizer, "special_tokens", {})
        missing = [t for t in SPECIAL_TOKENS if t not in specials]
        if missing:
            raise ValueError(f"the tokenizer has no {' '.join(missing)} token(s): it is not a masked-language-model "
                             "tokenizer (pretrain with `train --objective mlm`, which adds them)")
        return cls(*(int(specials[t]) for t in SPECIAL_TOKENS))


def add_special_tokens(tokenizer):
    """Add [CLS] [SEP] [MASK] [PAD] to `tokenizer` (in place, ids after its vocabulary); returns SpecialIds."""
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return SpecialIds.of(tokenizer)


class MLMCollator:
    """Builds masked-language-model batches for one tokenizer (Hugging Face's data collator).

    Args:
        tokenizer: a tokenizer holding SPECIAL_TOKENS (see `add_special_tokens`).
        mlm_probability: the share of non-special positions picked for prediction (0.15).
        mask_rate, random_rate: of the picked positions, the share replaced by [MASK] (0.8) and
            by a random non-special token (0.1); the rest (0.1) keep their token.
    """

    def __init__(self, tokenizer, mlm_probability=0.15, mask_rate=0.8, random_rate=0.1):
        if not (0.0 < mlm_probability <= 1.0 and 0.0 <= mask_rate and 0.0 <= random_rate
                and mask_rate + random_rate <= 1.0):
            raise ValueError(f"need 0 < mlm_probability <= 1 and mask_rate + random_rate <= 1, got "
                             f"{mlm_probability}, {mask_rate}, {random_rate}")
        self.ids = SpecialIds.of(tokenizer)
        self.vocab_size = tokenizer.vocab_size
        special = set(tokenizer.special_tokens.values())
        self.regular_ids = np.array([i for i in range(self.vocab_size) if i not in special], dtype=np.int64)
        self.mlm_probability, self.mask_rate, self.random_rate = mlm_probability, mask_rate, random_rate

    def sequences(self, token_lists, block_size):
        """[CLS] tokens [SEP], right-padded with [PAD] to the longest, and the attention mask.

        Args:
            token_lists: B sequences of token ids (each keeps its first block_size - 2 tokens).
            block_size: the model's context T_max (>= 3).
        Returns:
            ids (B, T) int64 and attention_mask (B, T) bool (True on real tokens, [CLS] and [SEP]
            included), T = the longest sequence + 2.
        """
        if block_size < 3:
            raise ValueError(f"block_size={block_size} leaves no room for a token between [CLS] and [SEP]")
        if len(token_lists) == 0:
            raise ValueError("sequences: no token lists")
        kept = [np.asarray(t, dtype=np.int64)[:block_size - 2] for t in token_lists]
        T = max(len(t) for t in kept) + 2
        ids = np.full((len(kept), T), self.ids.pad, dtype=np.int64)  # (B, T)
        mask = np.zeros((len(kept), T), dtype=bool)  # (B, T)
        for b, t in enumerate(kept):
            n = len(t)
            ids[b, 0], ids[b, 1:n + 1], ids[b, n + 1] = self.ids.cls, t, self.ids.sep
            mask[b, :n + 2] = True
        return ids, mask

    def special_mask(self, ids):
        """(B, T) bool: True where the id is [CLS], [SEP], [PAD] or [MASK] (positions never picked)."""
        return np.isin(ids, [self.ids.cls, self.ids.sep, self.ids.mask, self.ids.pad])

    def mask_tokens(self, ids, rng):
        """BERT's corruption of a batch of sequences (module docstring).

        Args:
            ids: (B, T) int64 sequences from `sequences` (not modified).
            rng: the numpy Generator every draw comes from.
        Returns:
            inputs (B, T): ids with the picked positions corrupted; labels (B, T): the original
            id at picked positions, IGNORE_INDEX (-100) elsewhere.
        """
        ids = np.asarray(ids, dtype=np.int64)
        eligible = ~self.special_mask(ids)  # (B, T)
        picked = (rng.random(ids.shape) < self.mlm_probability) & eligible
        if not picked.any() and eligible.any():  # tiny batches only: keep the loss defined
            where = np.flatnonzero(eligible)
            picked.flat[where[rng.integers(len(where))]] = True
        u = rng.random(ids.shape)  # one draw per position decides [MASK] / random / keep
        replace = picked & (u < self.mask_rate)
        randomize = picked & (u >= self.mask_rate) & (u < self.mask_rate + self.random_rate)
        random_tokens = self.regular_ids[rng.integers(0, len(self.regular_ids), size=ids.shape)]  # (B, T)
        inputs = np.where(replace, self.ids.mask, np.where(randomize, random_tokens, ids))
        labels = np.where(picked, ids, IGNORE_INDEX)
        return inputs, labels

    def get_batch(self, ids, batch_size, block_size, rng):
        """B masked pretraining sequences: random windows of block_size - 2 corpus tokens.

        Args:
            ids: 1-D array of the corpus's token ids; batch_size B; block_size T; rng: numpy Generator.
        Returns:
            {"idx": (B, T), "attention_mask": (B, T) bool, "labels": (B, T)}: the keyword
            arguments of `BertForMaskedLM.forward`.
        """
        n = block_size - 2
        if n < 1:
            raise ValueError(f"block_size={block_size} leaves no room for a token between [CLS] and [SEP]")
        if len(ids) < n:
            raise ValueError(f"get_batch: {len(ids)} tokens are too few for windows of {n} (block_size - 2)")
        starts = rng.integers(0, len(ids) - n + 1, size=batch_size)
        windows = np.asarray(ids[starts[:, None] + np.arange(n)], dtype=np.int64)  # (B, T - 2)
        seqs, attention_mask = self.sequences(windows, block_size)  # (B, T), (B, T)
        inputs, labels = self.mask_tokens(seqs, rng)
        return {"idx": inputs, "attention_mask": attention_mask, "labels": labels}


def masked_accuracy(logits, labels):
    """(right, picked): how many picked positions (labels != -100) the argmax of `logits` gets right.

    Args:
        logits: Tensor or array (B, T, V) on any device; labels: (B, T) with IGNORE_INDEX elsewhere.
    """
    from ..engine.backend import to_device

    data = logits.data if hasattr(logits, "data") and not isinstance(logits, np.ndarray) else logits
    pred = to_device(data, "cpu").argmax(axis=-1)  # (B, T)
    labels = np.asarray(labels)
    picked = labels != IGNORE_INDEX
    return int((pred[picked] == labels[picked]).sum()), int(picked.sum())


def encoder_config(model_cfg, tokenizer):
    """The BertConfig that `train --objective mlm` builds from the run's model flags.

    Width, depth, heads, context and dropout are the GPT flags' (--n-embd, --n-layer, --n-head,
    --block-size, --dropout), so the two objectives compare at equal size; the feed-forward
    width is 4 x n_embd (as GPT-2 and BERT); the vocabulary is the tokenizer's.
    BERT has learned positions, biases and a tied decoder (`check_objective` refuses other values
    of those flags when the config is made).
    """
    from ..models.bert import BertConfig

    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=model_cfg.n_embd,
                      num_hidden_layers=model_cfg.n_layer, num_attention_heads=model_cfg.n_head,
                      intermediate_size=4 * model_cfg.n_embd, max_position_embeddings=model_cfg.block_size,
                      hidden_dropout_prob=model_cfg.dropout, attention_probs_dropout_prob=model_cfg.dropout,
                      pad_token_id=SpecialIds.of(tokenizer).pad)


def check_objective(cfg):
    """Refuse, in one line, a TrainConfig whose --objective cannot run as asked."""
    if cfg.objective not in ("clm", "mlm"):
        raise ValueError(f"objective must be 'clm' (GPT, next token) or 'mlm' (BERT, masked tokens), got "
                         f"{cfg.objective!r}")
    if cfg.objective == "mlm" and cfg.init_from:
        raise ValueError("--init-from loads a GPT-2 folder, which --objective mlm cannot continue; drop one of them")
    if cfg.objective == "mlm" and cfg.model.block_size < 3:
        raise ValueError(f"--block-size {cfg.model.block_size} leaves no room for a token between [CLS] and [SEP]; "
                         "use at least 3")
    if cfg.objective == "mlm" and cfg.run.dist:
        raise ValueError("--objective mlm runs in one process (its batches are split over every core already: --threads "
                         "auto, the default); "
                         "drop --dist")
    model = cfg.model
    refused = [(flag, value) for flag, value, want in (("--pos-encoding", model.pos_encoding, "learned"),
                                                       ("--bias", model.bias, True),
                                                       ("--tie-weights", model.tie_weights, True))
               if cfg.objective == "mlm" and value != want]
    if refused:
        shown = ", ".join(f"{flag} {value}" for flag, value in refused)
        raise ValueError(f"--objective mlm builds a BERT encoder (learned positions, biases, decoder tied to the "
                         f"embedding); drop {shown}")


__all__ = ["SPECIAL_TOKENS", "IGNORE_INDEX", "SpecialIds", "add_special_tokens", "MLMCollator", "masked_accuracy",
           "encoder_config", "check_objective"]
