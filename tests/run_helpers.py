"""What the tests that run `python -m tinygrad_lm` in a subprocess share: a small corpus of
random words, and the environment that points the subprocess at this checkout and a cache of
the test's own (so no test reads another's cached tokenizer or corpus)."""
import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the cat sat on a mat while the dog ran to the log and nobody saw them go".split()


def write_words_corpus(path, n=3000, seed=0):
    """`n` words drawn from WORDS with a seeded generator, one line; returns the path."""
    rng = random.Random(seed)
    Path(path).write_text(" ".join(rng.choice(WORDS) for _ in range(n)) + "\n", encoding="utf-8")
    return path


def cli_env(tmp_path):
    """os.environ with this checkout on PYTHONPATH and TINYGRAD_LM_CACHE in tmp_path/cache."""
    return dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
