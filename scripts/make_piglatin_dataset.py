"""Build a small "translation" task for generative fine-tuning: English phrases into Pig Latin.

Implements: a deterministic word-level transformation that a model must learn from examples,
`{"prompt": "<phrase> -> ", "completion": "<the phrase in Pig Latin>"}`, from a text the user
has offline (the built-in corpus by default, or any UTF-8 file such as Tiny Shakespeare's
input.txt from `python -m tinygrad_lm data shakespeare`).

The rule, per word (letters only, lowercased):
    starts with a vowel (a, e, i, o, u)     word + "way"            apple  -> appleway
    else: move the consonants before the    rest + cluster + "ay"   string -> ingstray
          first vowel (y counts as one                              rhythm -> ythmrhay
          after the first letter) to the end
    no vowel at all                         word + "ay"             nth    -> nthay
so `print the value -> ` is completed by `intpray ethay aluevay`.

Phrases are runs of 2 to 4 consecutive words of the text (at most --max-chars characters),
taken in order with a seeded random length; the word stream is split by position (the first
90% for train, the next 5% for validation, the last 5% for test), so no phrase of the test
text was seen in training; a phrase may still repeat within a split, as common words do.
Pretraining on the same text (`python -m tinygrad_lm train`, whose default corpus this is)
teaches the spelling of these words, which is what the comparison with a model fine-tuned from
random weights measures.
Leaves out: punctuation, capitals and any word that is not ASCII letters.

    python scripts/make_piglatin_dataset.py --out runs/piglatin/data   # the built-in corpus
    python scripts/make_piglatin_dataset.py --data input.txt --out runs/piglatin/data
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import regex

VOWELS = "aeiou"


def pig_latin(word):
    """One lowercase ASCII word in Pig Latin (the rule in the module docstring)."""
    if word[0] in VOWELS:
        return word + "way"
    for i, ch in enumerate(word[1:], start=1):
        if ch in VOWELS or ch == "y":
            return word[i:] + word[:i] + "ay"
    return word + "ay"


def phrases(words, rng, max_chars):
    """Runs of 2-4 consecutive words, in order, each at most max_chars characters with spaces."""
    out, i = [], 0
    while i + 2 <= len(words):
        n = int(rng.integers(2, 5))
        phrase = words[i:i + n]
        i += n
        if len(phrase) >= 2 and len(" ".join(phrase)) <= max_chars:
            out.append(phrase)
    return out


def example(phrase):
    return {"prompt": " ".join(phrase) + " -> ", "completion": " ".join(pig_latin(w) for w in phrase)}


def write_jsonl(path, rows):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)  # never half a file under the name


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the built-in corpus)")
    p.add_argument("--out", default="runs/piglatin/data", help="folder for train/val/test.jsonl")
    p.add_argument("--max-chars", type=int, default=22, help="longest phrase, in characters (default 22: prompt "
                   "and completion fit the default 64-token context of a char-level model)")
    p.add_argument("--train", type=int, default=5000, help="training examples (default 5000)")
    p.add_argument("--val", type=int, default=100, help="validation examples (default 100)")
    p.add_argument("--test", type=int, default=200, help="test examples (default 200)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.data is None:
        from tinygrad_lm.run.data import builtin_corpus

        text, source = builtin_corpus(), "the built-in corpus"
    else:
        path = Path(args.data)
        if not path.is_file():
            sys.exit(f"--data {path}: no such file")
        text, source = path.read_text(encoding="utf-8"), str(path)
    words = [w.lower() for w in regex.findall(r"[A-Za-z]+", text)]
    cut1, cut2 = int(0.9 * len(words)), int(0.95 * len(words))
    rng = np.random.default_rng(args.seed)
    splits = {"train": (words[:cut1], args.train), "val": (words[cut1:cut2], args.val),
              "test": (words[cut2:], args.test)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (part, n) in splits.items():
        found = phrases(part, rng, args.max_chars)
        if len(found) < n:
            sys.exit(f"{source}: only {len(found)} {name} phrases of at most {args.max_chars} characters, "
                     f"{n} asked; use a longer text or a smaller --{name}")
        picked = rng.choice(len(found), size=n, replace=False)
        write_jsonl(out / f"{name}.jsonl", [example(found[i]) for i in sorted(picked)])
        print(f"{out / (name + '.jsonl')}: {n} examples")


if __name__ == "__main__":
    main()
