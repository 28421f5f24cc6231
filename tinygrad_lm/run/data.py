"""Training data: the built-in corpus, reading text files, a cached token file, batches.

* `builtin_corpus()`: a few MB of English technical prose that every Python install has:
  the docstrings of the standard library's own modules, classes and functions (read with
  `ast`, so no module is imported or run), in sorted file order, followed by the help topics
  of `pydoc_data.topics` (the language reference text behind `help("if")`). Deterministic
  for a given Python version; cached under the cache directory after the first build.
* `read_text(path)`: UTF-8 text with errors that name the path (and the byte offset of the
  first bad byte for files that are not UTF-8).
* `TokenData`: the text tokenized once into a memory-mapped token file (uint16 when the
  vocabulary fits, else uint32) under the cache directory, keyed by a hash of the text and
  the tokenizer, then split 90/10 into train and validation ids.
Every cache file is written atomically (files.py) with its SHA-256 and length beside it
(`write_cached`), and checked against them when read (`read_cached`): a cache entry cut short,
emptied, damaged, missing its sidecar (or the sidecar its file), or holding what this version
cannot read, is rebuilt with a one-line note on stderr, never trained on.
* `TokenData.from_file(path, tokenizer)`: a token file written by `encode_file` (`tokenize
  --encode-to`), memory-mapped, checked against its sidecar (the tokenizer that wrote it, count,
  SHA-256: tokenizer/token_file.py; older files without one: size, with a warning) and ids below
  vocab_size, and split 90/10 as text is.
* `get_batch(ids, batch_size, block_size, rng)`: B random windows x (B, T) and the windows
  shifted by one, y (B, T), as int64 arrays; the rng makes batches reproducible.
* `micro_batches(batch, k)`: a batch's rows cut into k micro-batches, each with the weight
  that makes the sum of their mean losses the whole batch's mean (gradient accumulation).
* `file_sha256(path)`: the content hash a checkpoint records for its data, so `--resume`
  can accept the same data at a new path.
Leaves out: sharded corpora, document boundaries (the corpus is one stream), and data
loading in a background thread (a batch is a few microseconds of fancy indexing).
"""
import ast
import errno
import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

from ..engine.backend import to_device
from ..files import atomic_write, os_error, remove_stale_temporaries
from ..tokenizer.token_file import read_token_file

SKIP_DIRS = {"site-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3", "dist-packages"}


CACHE_FIX = "point TINYGRAD_LM_CACHE at another folder"


def cache_dir():
    """Where corpora and token files are cached: $TINYGRAD_LM_CACHE or ~/.cache/tinygrad_lm
    (temporary files that killed writers left there are removed)."""
    named = "TINYGRAD_LM_CACHE" in os.environ
    path = Path(os.environ.get("TINYGRAD_LM_CACHE", Path.home() / ".cache" / "tinygrad_lm"))
    if path.exists() and not path.is_dir():
        where = f"TINYGRAD_LM_CACHE={path}" if named else f"{path} (the default cache folder)"
        raise os_error(errno.ENOTDIR, f"{where} is a file; point it at a folder, where tinygrad_lm caches corpora, "
                                      "tokenizers and token files" + ("" if named else " (set TINYGRAD_LM_CACHE)"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e.errno, f"{path}: cannot create the cache folder ({e.strerror or e}); {CACHE_FIX}") from None
    remove_stale_temporaries(path)
    return path


def atomic_write_bytes(path, data, what="the cache file", fix=CACHE_FIX):
    """files.atomic_write with the cache's wording: never a half file; a failure is an OSError
    naming the path, `what` it is, the reason and the `fix`."""
    return atomic_write(path, data, what, fix)


def write_cached(path, data):
    """Cache `data` (bytes) at `path`, with `path.sha256` beside it: its digest and length."""
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_bytes(Path(f"{path}.sha256"), f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode(),
                       what="the cache file's SHA-256")


def cache_note(problem):
    """One line on stderr: a cache entry has `problem` (naming its file) and is rebuilt."""
    print(f"note: {problem}; rebuilding it", file=sys.stderr)


def read_cached(path):
    """The bytes cached at `path` by `write_cached`, or None: nothing is cached there yet (silently),
    or the entry is damaged (a one-line note says how): the caller rebuilds it.

    Damage: the file cut short, emptied, changed, or missing while its `.sha256` is there; the
    `.sha256` missing, empty or garbage. A folder where either file belongs is an IsADirectoryError
    (tinygrad_lm writes no folder there: something else does, which the user must move).
    """
    path, digest = Path(path), Path(f"{path}.sha256")
    for p in (path, digest):
        if p.is_dir():
            raise os_error(errno.EISDIR, f"{p} is a folder where tinygrad_lm keeps a cache file; remove it, or "
                                         f"{CACHE_FIX}")
    if not path.exists() and not digest.exists():
        return None
    problem = _cache_problem(path, digest)
    if isinstance(problem, str):
        cache_note(f"the cache file {path} {problem}")
        return None
    return problem


def _cache_problem(path, digest):
    """The cached bytes, or what is wrong with the entry (a str)."""
    if not path.exists():
        return f"is missing (its {digest.name} is there)"
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    try:
        want, size = digest.read_text(encoding="ascii").split()
        size = int(size)
        if len(want) != 64 or want.strip("0123456789abcdef") or size < 0:
            raise ValueError(want)
    except FileNotFoundError:
        return f"has no {digest.name} beside it (a write stopped before its digest, or a cache from before digests)"
    except (OSError, ValueError, UnicodeDecodeError):
        return f"has a damaged sidecar {digest.name} (not '<sha256> <length>')"
    if len(data) != size:
        return f"is {len(data):,} bytes but was written with {size:,} (cut short or changed)"
    if hashlib.sha256(data).hexdigest() != want:
        return "does not match its SHA-256 (damaged)"
    return data


def _stdlib_docstrings():
    root = Path(sysconfig.get_paths()["stdlib"])
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(Path(dirpath, name).read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue  # a file this Python cannot parse contributes nothing
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield doc


def _pydoc_topics():
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return []
    return [topics[k].strip() for k in sorted(topics)]


def builtin_corpus():
    """The built-in training text (str): stdlib docstrings, then the pydoc help topics."""
    version = f"{sys.implementation.name}{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    path = cache_dir() / f"builtin_corpus_{version}.txt"
    cached = read_cached(path)
    if cached is not None:
        try:
            return cached.decode("utf-8")
        except UnicodeDecodeError as e:  # its digest matches: written so by something else
            cache_note(f"the cached corpus {path} is not UTF-8 ({e.reason} at byte {e.start})")
    text = "\n\n".join([*_stdlib_docstrings(), *_pydoc_topics()]) + "\n"
    write_cached(path, text.encode("utf-8"))
    return text


def read_text(path, flag=None, instead="pass the path of a UTF-8 text file"):
    """Read a UTF-8 text file, with errors that name the path and say what to do.

    Args:
        flag: the command-line flag the path came from ("--start"), put before it in errors.
        instead: what to do about a missing or empty file, in the words of the caller (each
            command has its own flags: only `train` and `tokenize` can leave --data out).
    """
    path = Path(path)
    named = f"{flag} {path}" if flag else str(path)
    if not path.exists():
        hint = (f"; `python -m tinygrad_lm data shakespeare --out {path}` writes Tiny Shakespeare there"
                if path.name == "input.txt" else "")
        raise FileNotFoundError(f"{named}: no such file; {instead}{hint}")
    if path.is_dir():
        raise IsADirectoryError(f"{named} is a directory; pass the path of a UTF-8 text file")
    from ..tokenizer.base import read_text as read_utf8  # names the path and the first bad byte's offset

    text = read_utf8(path)
    if not text:
        raise ValueError(f"{named} is empty; {instead}")
    return text


def load_corpus(path=None):
    """(text, name): the file at `path` (a training corpus: --data), or the built-in corpus when path is None."""
    if path is None:
        return builtin_corpus(), "builtin"
    return read_text(path, instead="pass the path of a UTF-8 text file, or omit --data to use the built-in "
                                   "corpus"), str(path)


def file_sha256(path):
    """The SHA-256 hex digest of the file at `path`, read 1 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_tokenizer(kind, text, vocab_size=1024, cache=None, name="the corpus"):
    """A tokenizer for `text`: "char" (its characters) or "bpe" (GPT-4 split pattern, trained
    to `vocab_size` once and cached under the cache directory, keyed by the text's hash).
    A BPE vocabulary smaller than asked (a short text runs out of pairs) prints a warning."""
    from ..tokenizer import BPETokenizer, CharTokenizer, tokenizer_from_dict

    if kind == "char":
        return CharTokenizer(text)
    if kind != "bpe":
        raise ValueError(f"unknown tokenizer {kind!r}: use 'char' or 'bpe'")
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
    path = Path(cache or cache_dir()) / f"bpe_{key}_{vocab_size}.json"
    cached, tok = read_cached(path), None
    if cached is not None:
        try:
            tok = tokenizer_from_dict(json.loads(cached.decode("utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # whole, but not what this version reads
            cache_note(f"the cached tokenizer {path} cannot be read ({type(e).__name__}: {e})")
    if tok is None:
        tok = BPETokenizer("gpt4")
        tok.train(text, vocab_size)
        write_cached(path, json.dumps(tok.to_dict()).encode("utf-8"))
    warn_short_vocab(tok, vocab_size, name, len(text.encode("utf-8")))
    return tok


def warn_short_vocab(tokenizer, asked, name, n_bytes):
    """Print a warning (stderr) when BPE training stopped below the vocabulary size asked for."""
    if tokenizer.vocab_size < asked:
        print(f"warning: asked for a BPE vocabulary of {asked} but {name} ({n_bytes:,} bytes) gives only "
              f"{tokenizer.vocab_size}: after {len(tokenizer.merges)} merges every chunk of it (a word, as the split "
              f"pattern cuts the text) is a single token, so no pair is left to merge; train on more text, or "
              f"ask for --vocab-size {tokenizer.vocab_size} or less", file=sys.stderr)


def token_dtype(vocab_size):
    """uint16 when every id fits in 16 bits, else uint32."""
    return np.uint16 if vocab_size <= 2 ** 16 else np.uint32


class TokenData:
    """A corpus tokenized once into a cached memory-mapped file, split into train/val ids.

    Args:
        text: the corpus.
        tokenizer: any tokenizer with `encode`, `vocab_size` and `to_dict`.
        val_fraction: share of the tokens (the end of the stream) kept for validation.
    Attributes:
        train, val: 1-D integer arrays (memory-mapped views of the token file).
        bytes_per_token: UTF-8 bytes per token over the whole corpus, for bits per byte.
    """

    def __init__(self, text, tokenizer, val_fraction=0.1, cache=None):
        if not text:
            raise ValueError("the corpus is empty")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.tokenizer = tokenizer
        dtype = token_dtype(tokenizer.vocab_size)
        key = hashlib.sha256(text.encode("utf-8") + json.dumps(tokenizer.to_dict(), sort_keys=True).encode())
        path = Path(cache or cache_dir()) / f"tokens_{key.hexdigest()[:20]}.{np.dtype(dtype).name}"
        if read_cached(path) is None:  # missing, or truncated / damaged: tokenize again
            ids = np.asarray(tokenizer.encode(text), dtype=dtype)
            write_cached(path, ids.tobytes())
        self.path = path
        ids = np.memmap(path, dtype=dtype, mode="r")
        self._split(ids, val_fraction)
        self.bytes_per_token = len(text.encode("utf-8")) / max(len(ids), 1)

    def _split(self, ids, val_fraction):
        n_val = max(1, int(len(ids) * val_fraction))
        self.train, self.val = ids[:-n_val], ids[-n_val:]

    @classmethod
    def from_file(cls, path, tokenizer, val_fraction=0.1, tokenizer_name=None):
        """The token file at `path` (raw little-endian ids, as `encode_file` writes them) as TokenData.

        With its sidecar (`path.json`, tokenizer/token_file.py) the file is read as the dtype it
        records and refused, naming the file, when it is cut, changed or damaged, or was written by
        another tokenizer (`tokenizer_name`, the file the tokenizer came from, names it then). Without
        one (older files) it is read as the tokenizer's dtype (uint16 when vocab_size <= 65536, else
        uint32) with a warning. Either way an id >= vocab_size is a ValueError naming the file.
        `self.sha256` is the file's SHA-256 when the sidecar let it be checked, else None.
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        path = Path(path)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"{path} {what}; pass a token file written by `tokenize --encode-to`")
        self = cls.__new__(cls)
        self.tokenizer, self.path = tokenizer, path
        ids, self.sha256 = read_token_file(path, tokenizer, tokenizer_name)
        top = int(ids.max())
        if top >= tokenizer.vocab_size:
            raise ValueError(f"{path} holds token id {top} but the tokenizer has only {tokenizer.vocab_size} tokens: "
                             "the file was written by another tokenizer; pass the --tokenizer-file that wrote it")
        self._split(ids, val_fraction)
        lengths = token_byte_lengths(tokenizer)  # UTF-8 bytes each id stands for: bits per byte without the text
        self.bytes_per_token = float(np.bincount(ids, minlength=len(lengths)) @ lengths) / len(ids)
        return self

    def check_block_size(self, block_size):
        """Raise a clear error when a split is too short for one (block_size + 1) window."""
        for name, ids in (("train", self.train), ("validation", self.val)):
            if len(ids) < block_size + 1:
                raise ValueError(
                    f"the corpus is too short: its {name} split has {len(ids)} tokens but block_size={block_size} "
                    f"needs at least {block_size + 1}; use a longer text or a smaller --block-size")


def token_byte_lengths(tokenizer):
    """(vocab_size,) array: how many UTF-8 bytes of text each token id stands for."""
    if hasattr(tokenizer, "vocab"):  # BPE: bytes per merged token, then the special tokens' strings
        lengths = [len(b) for b in tokenizer.vocab]
        for s, i in sorted(tokenizer.special_tokens.items(), key=lambda kv: kv[1]):
            lengths += [0] * (i + 1 - len(lengths))
            lengths[i] = len(s.encode("utf-8"))
    else:  # char-level: each character's UTF-8 length
        lengths = [len(tokenizer.decode([i]).encode("utf-8")) for i in range(tokenizer.vocab_size)]
    return np.asarray(lengths[:tokenizer.vocab_size] + [0] * (tokenizer.vocab_size - len(lengths)), dtype=np.float64)


def micro_batch_rows(targets, k):
    """[(rows, weight)] cutting a batch of k * B rows into k micro-batches of B consecutive rows.

    A micro-batch's weight is its share of the batch's counted targets (not negative: the GPT's -1
    and the masked LM's -100 are not counted), so the weighted mean losses sum to the whole batch's
    mean loss and the gradients that backward() accumulates to its gradient. A micro-batch with no
    counted target is left out (masked LM can pick none); a batch with none at all is weighted by rows.

        >>> micro_batch_rows(np.zeros((4, 3)), 2)
        [(slice(0, 2, None), 0.5), (slice(2, 4, None), 0.5)]
    """
    n = len(targets) // k
    rows = [slice(i * n, (i + 1) * n) for i in range(k)]
    counts = [int((np.asarray(targets[r]) >= 0).sum()) for r in rows]
    if not sum(counts):  # nothing counted anywhere: each mean is NaN, as the whole batch's is
        counts = [n] * k
    return [(r, c / sum(counts)) for r, c in zip(rows, counts) if c]


def micro_batches(batch, k, device=None):
    """The batch dict (the model's keyword arguments, k * B rows each) as k (micro-batch, weight)
    pairs for `train_step`, each micro-batch's arrays moved to `device`."""
    targets = batch["labels"] if "labels" in batch else batch["targets"]
    return [({name: to_device(v[rows], device) for name, v in batch.items()}, weight)
            for rows, weight in micro_batch_rows(targets, k)]


def get_batch(ids, batch_size, block_size, rng):
    """B random windows of T tokens and the same windows shifted by one token.

    Args:
        ids: 1-D array of token ids; batch_size B; block_size T; rng: numpy Generator.
    Returns:
        x, y: int64 arrays of shape (B, T), y[b, t] = ids[start_b + t + 1].
    """
    if len(ids) < block_size + 1:
        raise ValueError(f"get_batch: {len(ids)} tokens are too few for block_size={block_size}")
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    offsets = starts[:, None] + np.arange(block_size + 1)  # (B, T + 1)
    window = np.asarray(ids[offsets], dtype=np.int64)  # (B, T + 1)
    return window[:, :-1], window[:, 1:]
