"""Build a speaker-attribution task from Tiny Shakespeare: who says this speech?

Implements: parsing the play text into speeches (a `NAME:` line, then that speaker's lines,
blocks separated by blank lines), keeping the speeches of the K most frequent speakers as
labelled examples `{"text": <the speech without the NAME: line>, "label": "NAME"}`, and a
split by POSITION in the file so that no line can appear in two splits:

    the file is cut into `--chunks` contiguous regions of equal length (default 200, ~5,600
    characters or ~36 speeches each); a speech belongs to the region where it starts;
    `--split a,b,c` (a+b+c = 10, default 6,2,2): regions 0..a-1 of every 10 are train, the
    next b are validation, the last c are test.

Why 6,2,2 and not 8,1,1: with 8/1/1 the test split had only ~90 speeches of the 6 speakers,
one speech being ~1.1 points of accuracy, and the spread between fine-tuning seeds (4-6
points) was as large as the differences to be measured. 6/2/2 gives ~190 validation and ~190
test speeches (one speech ~0.5 point), at the cost of a quarter of the training speeches and
pretraining text. This was decided on that size argument alone, not on any test result.

Interleaving regions (rather than "first 80% train, last 10% test") is deliberate: Tiny
Shakespeare is several plays one after another, so a plain 80/10/10 cut would put a play
whose speakers never appear in training at the end, and the most frequent speakers would be
missing from the test split; with 50 regions the val/test regions still fell in too few
scenes (3 of the 6 speakers had no test speech), hence 200. Every region is contiguous and
whole speeches never straddle two splits.

Writes to `--out` (default runs/speaker/data):
    train.jsonl, val.jsonl, test.jsonl   labelled speeches, in file order
    pretrain.txt                         the text of the TRAIN regions only (every speaker,
                                         speaker lines included), for pretraining, so that the
                                         validation and test text is never seen in pretraining
    info.json                            the speakers, counts per split, and the options used

Why speeches and K=6: single lines (~40 characters) carry too little to tell speakers apart;
a speech is a few lines. The six most frequent speakers are GLOUCESTER, DUKE VINCENTIO,
ROMEO, MENENIUS, PETRUCHIO and CORIOLANUS: five plays, with two speakers (Menenius and
Coriolanus) from the same play, so topic alone does not solve the task.
Leaves out: any normalisation of the text (it is kept verbatim, newlines included).

    python -m tinygrad_lm data shakespeare                 # writes input.txt (see tinygrad_lm/run/datasets.py)
    python scripts/make_speaker_dataset.py --data input.txt --out runs/speaker/data
"""
import argparse
import collections
import json
import sys
from pathlib import Path

DEFAULT_TEXT = "input.txt"  # what `python -m tinygrad_lm data shakespeare` writes
# the developers' shared copy, scripts/bench_finetune.py's default (this script's default is DEFAULT_TEXT)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
SPLITS = ("train", "val", "test")


def parse_speeches(text):
    """The speeches of a play text, in order, as (start offset, speaker, body, raw block).

    A speech is a block of non-empty lines whose first line is `NAME:`; blocks are separated
    by blank lines. Blocks that do not start with a speaker line are skipped.

    >>> parse_speeches("A:\\nhi\\nyo\\n\\nB:\\nbye\\n")
    [(0, 'A', 'hi\\nyo', 'A:\\nhi\\nyo'), (10, 'B', 'bye', 'B:\\nbye\\n')]
    """
    speeches, offset = [], 0
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        start = offset + (len(block) - len(block.lstrip("\n")))
        head = lines[0].strip()
        if head.endswith(":") and len(lines) > 1 and head[:-1].strip():
            body = "\n".join(lines[1:])
            if body.strip():
                speeches.append((start, head[:-1].strip(), body, block))
        offset += len(block) + 2
    return speeches


DEFAULT_SPLIT = (6, 2, 2)


def parse_split(spec):
    """(train, val, test) regions per 10 from "6,2,2"; each at least 1, summing to 10.

    >>> parse_split("8,1,1")
    (8, 1, 1)
    """
    try:
        parts = tuple(int(p) for p in str(spec).split(","))
    except ValueError:
        raise ValueError(f"--split must be three integers like 6,2,2, got {spec!r}") from None
    if len(parts) != 3 or sum(parts) != 10 or min(parts) < 1:
        raise ValueError(f"--split must be three integers >= 1 summing to 10 (train,val,test regions "
                         f"per 10), got {spec!r}")
    return parts


def split_of(offset, total, chunks, split=DEFAULT_SPLIT):
    """"train", "val" or "test" for a speech starting at character `offset` of `total`."""
    region = min(chunks - 1, offset * chunks // total)
    r = region % 10
    n_train, n_val, _ = split
    return "train" if r < n_train else ("val" if r < n_train + n_val else "test")


def build(text, k=6, chunks=200, split=DEFAULT_SPLIT):
    """(examples per split, pretraining text, info dict) for the top-k speakers of `text`."""
    split = parse_split(",".join(map(str, split))) if not isinstance(split, str) else parse_split(split)
    if not 2 <= k:
        raise ValueError(f"--k must be at least 2 speakers, got {k}")
    if chunks < 10:
        raise ValueError(f"--chunks must be at least 10 (one val and one test region), got {chunks}")
    speeches = parse_speeches(text)
    if not speeches:
        raise ValueError("no speeches found: expected blocks that start with a 'NAME:' line")
    counts = collections.Counter(s for _, s, _, _ in speeches)
    # most frequent first; ties broken by name so the choice is deterministic
    speakers = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    examples = {split: [] for split in SPLITS}
    pretrain = []
    for start, speaker, body, block in speeches:
        where = split_of(start, len(text), chunks, split)
        if where == "train":
            pretrain.append(block.strip("\n"))
        if speaker in speakers:
            examples[where].append({"text": body, "label": speaker})
    per_split = {split: dict(collections.Counter(e["label"] for e in examples[split])) for split in SPLITS}
    info = {"speakers": speakers, "k": k, "chunks": chunks, "split": list(split), "counts": per_split,
            "examples": {split: len(examples[split]) for split in SPLITS},
            "pretrain_chars": sum(len(b) + 2 for b in pretrain)}
    return examples, "\n\n".join(pretrain) + "\n", info


def write(out_dir, examples, pretrain_text, info):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for e in examples[split]:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
    (out_dir / "pretrain.txt").write_text(pretrain_text, encoding="utf-8")
    (out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_TEXT,
                    help=f"Tiny Shakespeare text, from `python -m tinygrad_lm data shakespeare` (default: {DEFAULT_TEXT})")
    ap.add_argument("--out", default="runs/speaker/data", help="output folder (default: runs/speaker/data)")
    ap.add_argument("--k", type=int, default=6, help="number of most frequent speakers kept (default: 6)")
    ap.add_argument("--chunks", type=int, default=200, help="contiguous regions the file is cut into (default: 200)")
    ap.add_argument("--split", default="6,2,2",
                    help="train,val,test regions of every 10 (default: 6,2,2; the first benchmark used 8,1,1)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinygrad_lm.run.data import read_text

    if not Path(args.data).exists():
        ap.exit(2, f"{ap.prog}: error: {args.data}: no such file; get Tiny Shakespeare with `python -m tinygrad_lm "
                   f"data shakespeare --out {args.data}` (offline: add --from FILE), or pass --data PATH\n")
    # a bad option, file or folder: one line naming it, no traceback
    if args.k < 2 or args.chunks < 10:
        ap.error(f"--k must be at least 2 speakers and --chunks at least 10, got {args.k} and {args.chunks}")
    try:
        parse_split(args.split)
    except ValueError as e:
        ap.error(str(e))
    try:
        text = read_text(args.data)
        examples, pretrain_text, info = build(text, args.k, args.chunks, args.split)
    except (OSError, ValueError) as e:
        ap.exit(2, f"{ap.prog}: error: {e if str(args.data) in str(e) else f'{args.data}: {e}'}\n")
    try:
        write(args.out, examples, pretrain_text, info)
    except OSError as e:
        ap.exit(2, f"{ap.prog}: error: could not write {args.out}: {e}\n")
    print(f"speakers: {', '.join(info['speakers'])}")
    for split in SPLITS:
        print(f"{split:5s}: {info['examples'][split]:4d} speeches  {info['counts'][split]}")
    print(f"pretraining text (train regions only): {info['pretrain_chars']:,} characters")
    print(f"wrote train/val/test.jsonl, pretrain.txt and info.json to {args.out}")


if __name__ == "__main__":
    main()
