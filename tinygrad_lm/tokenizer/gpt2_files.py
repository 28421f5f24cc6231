"""Reading and writing GPT-2's published vocabulary: ``encoder.json`` + ``vocab.bpe``.

OpenAI released GPT-2's tokenizer as two files (Hugging Face ships the same content as
``vocab.json`` + ``merges.txt``):

    encoder.json   {"!": 0, "\\"": 1, ..., "Ġt": 256, ..., "<|endoftext|>": 50256}
    vocab.bpe      "#version: 0.2", then one merge per line, "Ġ t" (rank 0), "Ġ a" (rank 1), ...

Both spell each byte as one printable character (``bytes_to_unicode``): the 188 bytes that
are printable Latin-1 characters stand for themselves ("a" is byte 97), the other 68 (space,
control characters, ...) are moved up to chr(256 + n) in byte order, so the space is "Ġ"
(chr(288)) and the newline "Ċ". Ids 0..255 are the 256 bytes in that table's order (id 0 is
"!", byte 33), merge i makes id 256 + i, and ``<|endoftext|>`` closes the list.

``read_gpt2_vocab`` turns the two files into what ``BPETokenizer`` stores: the byte order,
the merges as pairs of ids, the special tokens; it checks, as tiktoken's
``data_gym_to_mergeable_bpe_ranks`` does, that merge i's token has id 256 + i in encoder.json.
``write_gpt2_vocab`` writes a tokenizer back in that format (``vocab.json``, ``merges.txt``;
``gpt2_vocab_texts`` gives their texts).
It follows OpenAI's gpt-2 ``encoder.py`` in the byte table. Leaves out: the BPE cache and the
text normalisation of other GPT-2 ports (there is none in GPT-2), ``tokenizer.json``.
"""
from __future__ import annotations

import json
import os

from ..files import atomic_write
from .base import read_text


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte value to the printable character that spells it.

        >>> table = bytes_to_unicode()
        >>> table[ord("a")], table[ord(" ")], table[ord("\\n")]
        ('a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    moved = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(moved)})
    return table


def _read_encoder(path) -> dict[str, int]:
    try:
        encoder = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); expected GPT-2's encoder.json (or vocab.json)") from None
    if not isinstance(encoder, dict) or not all(isinstance(i, int) for i in encoder.values()):
        raise ValueError(f"{path}: expected a JSON object of token -> integer id (GPT-2's encoder.json)")
    return encoder


def _read_merges(path) -> list[tuple[int, str, str]]:
    """[(line number, left, right)] of a vocab.bpe / merges.txt file."""
    merges = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip() or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}: line {lineno}: expected two tokens separated by a space, got "
                             f"{line[:60]!r}; is this GPT-2's vocab.bpe (or merges.txt)?")
        merges.append((lineno, parts[0], parts[1]))
    return merges


def read_gpt2_vocab(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike):
    """GPT-2's vocabulary files as ``(byte_order, merge pairs, special tokens)``.

    Args:
        encoder_json: ``encoder.json`` (or ``vocab.json``): token string -> id.
        vocab_bpe: ``vocab.bpe`` (or ``merges.txt``): the merges in rank order.
    Returns:
        byte_order: 256 byte values, id i < 256 is byte ``byte_order[i]``;
        pairs: ``[(left id, right id)]``, merge i makes id 256 + i;
        specials: ``{token: id}`` for the ids after the merges (``<|endoftext|>``: 50256).
    Raises:
        ValueError: naming the file, line or key where the files are not GPT-2's format or
            disagree (a merge's token missing from encoder.json or at the wrong id).
    """
    encoder = _read_encoder(encoder_json)
    table = bytes_to_unicode()
    byte_order = [None] * 256
    for b, ch in table.items():
        i = encoder.get(ch)
        if i is None or not 0 <= i < 256 or byte_order[i] is not None:
            raise ValueError(f"{encoder_json}: byte {b} ({ch!r}) must have its own id below 256, got {i!r}; "
                             f"expected GPT-2's encoder.json")
        byte_order[i] = b
    pairs = []
    for lineno, left, right in _read_merges(vocab_bpe):
        ids = [encoder.get(left), encoder.get(right), encoder.get(left + right)]
        idx = 256 + len(pairs)
        if None in ids or ids[2] != idx or not (ids[0] < idx and ids[1] < idx):
            raise ValueError(f"{vocab_bpe}: line {lineno}: merge {left!r} + {right!r} should make id {idx} out "
                             f"of lower ids in {encoder_json}, which has {left!r}: {ids[0]}, {right!r}: "
                             f"{ids[1]}, {left + right!r}: {ids[2]}; are the two files from the same tokenizer?")
        pairs.append((ids[0], ids[1]))
    n = 256 + len(pairs)
    specials = {s: i for s, i in encoder.items() if i >= n and s.startswith("<|") and s.endswith("|>")}
    extra = sorted(i for i in encoder.values() if i >= n and i not in specials.values())
    if extra or len(encoder) != n + len(specials):
        raise ValueError(f"{encoder_json}: {len(encoder) - n - len(specials)} tokens are neither bytes, merges of "
                         f"{vocab_bpe} nor special '<|...|>' tokens after them (ids {extra[:5]}...); are the two "
                         "files from the same tokenizer?")
    return byte_order, pairs, specials


def gpt2_vocab_texts(tokenizer) -> tuple[str, str]:
    """The texts of ``vocab.json`` and ``merges.txt`` (Hugging Face's names) for a byte-level
    ``BPETokenizer``: its byte order, merges and special tokens in GPT-2's spelling."""
    table = bytes_to_unicode()
    spell = [''.join(table[b] for b in token) for token in tokenizer.vocab]  # id -> GPT-2's spelling
    vocab = {s: i for i, s in enumerate(spell)}
    vocab.update(tokenizer.special_tokens)
    lines = ["#version: 0.2"] + [f"{spell[a]} {spell[b]}" for a, b in tokenizer.merges]
    return json.dumps(vocab, ensure_ascii=False), "\n".join(lines) + "\n"


def write_gpt2_vocab(tokenizer, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike) -> None:
    """Write a byte-level ``BPETokenizer`` as ``vocab.json`` + ``merges.txt`` (Hugging Face's names).

    Each file is written whole or not at all (``files.atomic_write``); the two are not one
    transaction: a save stopped between them leaves a new vocab.json beside the old merges.txt,
    a pair ``read_gpt2_vocab`` refuses as "not from the same tokenizer" (an ``export`` writes its
    folder as one, hf/safetensors_io.py ``write_folder``).

    Args:
        tokenizer: a BPETokenizer (its merges, byte order and special tokens are written).
        vocab_json, merges_txt: the two paths to write (UTF-8).
    """
    vocab_text, merges_text = gpt2_vocab_texts(tokenizer)
    atomic_write(vocab_json, vocab_text, what="the tokenizer")
    atomic_write(merges_txt, merges_text, what="the tokenizer")
