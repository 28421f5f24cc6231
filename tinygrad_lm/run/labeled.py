"""Labelled data for fine-tuning: JSONL files, the label set, token ids, padded batches.

A labelled file holds one JSON object per line, `{"text": "...", "label": ...}`; blank lines
are skipped; other keys are ignored. Labels are strings or integers (not a mix). The label
set comes from the TRAINING file, sorted (numerically for integers) so ids are deterministic;
a validation or test file may only use labels of that set.

Every mistake a user can make raises one ValueError that names the file and the 1-based line:
malformed JSON, a line that is not an object, a missing "text" or "label" key, a text that
is not a non-empty string, a label that is not a string or an integer, a label unknown to
the training set, and a file with no examples at all.

Tokenization uses the pretrained checkpoint's tokenizer. Texts longer than `block_size`
tokens keep their FIRST block_size tokens (the classifier reads the last kept token, see
`models/gpt_classifier.py`). For a BERT encoder (`specials` given) each text becomes [CLS] text [SEP], its
first block_size - 2 tokens between the two, and batches are padded with [PAD]. A
character-level tokenizer cannot encode a character that was not in its training text: by default that is an error naming the character, file and line;
`unknown="drop"` instead removes such characters (counted in `LabeledData.dropped_chars`).
Batches are right-padded to the longest sequence of the batch with an attention mask
(True = real token), so a batch costs only as much as its longest member.
Leaves out: multi-label and regression targets, text pairs, and streaming huge files.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import read_text


@dataclass
class LabeledData:
    """One labelled file, encoded.

    Attributes:
        path: the file it was read from.
        texts: the raw texts; labels: int64 label ids (N,); label_names: the id -> name list.
        ids: one int64 array of token ids per text (at most block_size long).
        lines: the 1-based line number of each example in the file.
        truncated: how many texts were cut to block_size tokens.
        dropped_chars: characters removed under unknown="drop" (0 otherwise).
    """
    path: str
    texts: list
    labels: np.ndarray
    label_names: list
    ids: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    truncated: int = 0
    dropped_chars: int = 0

    def __len__(self):
        return len(self.texts)

    def summary(self):
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        lengths = [len(i) for i in self.ids] or [0]
        return (f"{self.path}: {len(self)} examples, {len(self.label_names)} labels "
                f"({', '.join(f'{n}={c}' for n, c in zip(self.label_names, counts))}), "
                f"{int(np.mean(lengths))} tokens on average, {self.truncated} truncated"
                + (f", {self.dropped_chars} unknown characters dropped" if self.dropped_chars else ""))


def json_lines(path, example='{"text": ..., "label": ...}'):
    """[(line number, object)] of a JSONL file: one JSON object per line, blank lines skipped.

    Errors name the file and the 1-based line: an empty file, malformed JSON, a line that is not
    an object, a file with only blank lines; `example` shows the expected object in them.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty; a dataset needs one JSON object per line, {example}")
    raw = read_text(path, instead=f"pass the path of a JSONL file, one {example} object per line")
    rows = []
    # split on "\n" only: str.splitlines also splits at U+2028, U+2029, U+0085 and others, which
    # are valid inside a JSON string (json.dumps(..., ensure_ascii=False) writes them raw)
    for n, line in enumerate(raw.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: malformed JSON ({e.msg} at column {e.colno}); each line must be one "
                             f"object like {example}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object like {example}, got a {type(obj).__name__}")
        rows.append((n, obj))
    if not rows:
        raise ValueError(f"{path}: no examples (the file holds only blank lines)")
    return rows


def read_jsonl(path):
    """[(line number, text, label)] of a labelled JSONL file, with clear errors (module doc)."""
    rows = []
    for n, obj in json_lines(path):
        where = f"{path}, line {n}"
        for key in ("text", "label"):
            if key not in obj:
                hint = "; for prompt -> completion lines use --task generate" if "completion" in obj else ""
                raise ValueError(f"{where}: missing the {key!r} key (keys present: {sorted(obj)}){hint}")
        text, label = obj["text"], obj["label"]
        if not isinstance(text, str):
            raise ValueError(f"{where}: \"text\" must be a string, got {type(text).__name__} {text!r:.40}")
        if not text:
            raise ValueError(f"{where}: \"text\" is empty; every example needs at least one character")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise ValueError(f"{where}: \"label\" must be a string or an integer, got {type(label).__name__} "
                             f"{label!r:.40}")
        rows.append((n, text, label))
    return rows


def label_names_from(rows, path):
    """The sorted label set of a training file's rows: strings sorted, integers sorted numerically."""
    labels = {label for _, _, label in rows}
    kinds = {type(label) for label in labels}
    if len(kinds) > 1:
        raise ValueError(f"{path}: labels mix strings and integers ({sorted(map(repr, labels))[:6]}); "
                         "use one kind")
    names = sorted(labels)
    if len(names) < 2:
        raise ValueError(f"{path}: only one label ({names[0]!r}) in the training file; a classifier needs "
                         "at least two")
    return names


def encode_text(tokenizer, text, block_size, unknown="error", where="", specials=None):
    """(token ids as int64 array, truncated?, characters dropped) for one text.

    Keeps the first `block_size` tokens. `unknown` is "error" or "drop" (module doc). With
    `specials` (mlm.SpecialIds, for a BERT encoder): [CLS] + the first block_size - 2 tokens + [SEP].
    """
    dropped = 0
    if unknown == "drop" and hasattr(tokenizer, "chars"):  # char-level: remove characters it lacks
        known = set(tokenizer.chars)
        kept = "".join(c for c in text if c in known)
        dropped = len(text) - len(kept)
        text = kept
        if not text:
            raise ValueError(f"{where}: every character of the text is unknown to the tokenizer")
    elif unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    try:
        ids = tokenizer.encode(text)
    except ValueError as e:
        raise ValueError(f"{where}: {e}; the pretrained checkpoint's tokenizer cannot encode this text "
                         "(use unknown='drop' / --unknown-chars drop to remove such characters)") from None
    ids = np.asarray(ids, dtype=np.int64)
    if specials is not None:
        kept = np.concatenate([[specials.cls], ids[:block_size - 2], [specials.sep]]).astype(np.int64)
        return kept, len(ids) > block_size - 2, dropped
    return ids[:block_size], len(ids) > block_size, dropped


def load_labeled(path, tokenizer, block_size, label_names=None, train_path=None, unknown="error", specials=None):
    """Read, check and encode a labelled JSONL file.

    Args:
        path: the JSONL file.
        tokenizer: anything with `encode(text) -> list[int]` (the pretrained checkpoint's).
        block_size: the model's context length; longer texts keep their first block_size tokens.
        label_names: the training set's labels; None when `path` IS the training file (the
            label set is then taken from it).
        train_path: the training file's name, for error messages about unknown labels.
        unknown: "error" or "drop" for characters a char-level tokenizer lacks.
        specials: mlm.SpecialIds for a BERT encoder ([CLS] text [SEP]), None for a GPT.
    Returns:
        LabeledData.
    """
    rows = read_jsonl(path)
    if label_names is None:
        label_names = label_names_from(rows, path)
    index = {name: i for i, name in enumerate(label_names)}
    data = LabeledData(str(path), [], np.zeros(len(rows), dtype=np.int64), list(label_names))
    for k, (n, text, label) in enumerate(rows):
        where = f"{path}, line {n}"
        if label not in index:
            raise ValueError(f"{where}: label {label!r} is not in the training set"
                             f"{f' ({train_path})' if train_path else ''}, whose labels are {list(label_names)}")
        ids, cut, dropped = encode_text(tokenizer, text, block_size, unknown, where, specials)
        data.texts.append(text)
        data.labels[k] = index[label]
        data.ids.append(ids)
        data.lines.append(n)
        data.truncated += cut
        data.dropped_chars += dropped
    return data


def pad_batch(seqs, pad_id=0):
    """Right-pad 1-D id arrays to the longest one.

    Args:
        seqs: list of B non-empty 1-D integer arrays.
        pad_id: the id written in the padding (any valid id: the mask hides it).
    Returns:
        ids (B, T) int64 and attention_mask (B, T) bool, True on real tokens, T = max length.

    >>> ids, mask = pad_batch([np.array([5, 6, 7]), np.array([8])])
    >>> ids.tolist(), mask.astype(int).tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    if not seqs:
        raise ValueError("pad_batch: no sequences")
    lengths = np.array([len(s) for s in seqs])
    if lengths.min() == 0:
        raise ValueError("pad_batch: a sequence is empty")
    T = int(lengths.max())
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = s
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return ids, mask


def epoch_order(n, epoch, seed):
    """The shuffled order of n examples in `epoch`: a pure function of (seed, epoch).

    Training draws example k of its endless stream as `epoch_order(n, k // n, seed)[k % n]`,
    so the batch of any step is known from the step alone and a resumed run sees the same
    batches without storing a sampler state.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_batch_indices(n, step, batch_size, seed):
    """Indices of the `batch_size` examples of training step `step` (shuffled epochs, no repeats
    within an epoch; a batch may span the end of one epoch and the start of the next)."""
    k = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs = k // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = epoch_order(n, int(e), seed)[k[sel] % n]
    return out
