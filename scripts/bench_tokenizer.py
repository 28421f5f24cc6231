"""Benchmark the BPE tokenizer: training time, encoding speed, and the same work in tiktoken and
Hugging Face ``tokenizers`` when they are importable.

What it measures, each as the best of ``--repeats`` runs (the machine may be shared):
  * training ``BPETokenizer(pattern)`` to each ``--vocab`` size on the whole ``--data`` text, with
    the fast trainer (the default, ``train_fast.py``), the reference trainer
    (``train_reference.py``, ``--trainer reference``) or both (``--trainer both``: also checks that
    they learn the same merges and prints the reference's time over the fast one's);
  * ``encode`` of the whole text with a fresh chunk cache ("cold", what a first encode of a new
    text costs) and with the cache filled ("warm"), in MB of UTF-8 per second, one thread; for
    an ASCII text also the same text with one "e-acute" prepended, which takes the slower
    ``regex`` split instead of the stdlib ``re`` one;
  * ``encode_file`` (read + encode + write uint16) of the same file;
  * tiktoken's ``encode_ordinary`` with an Encoding built from our ranks (same ids, checked),
    and the ratio of our time to its time;
  * Hugging Face ``tokenizers`` BPE training with the same split regex and byte-level alphabet
    (multi-threaded by default), and the ratio of our time to its time.
The minbpe figures printed for reference are the anchors measured on this 2-core machine
(RegexTokenizer, GPT-4 pattern); minbpe itself is not run.

    python scripts/bench_tokenizer.py
    python scripts/bench_tokenizer.py --data ../shared/data/tinyshakespeare.txt --vocab 512 1024 4096
    python scripts/bench_tokenizer.py --long-chunks --vocab 1024
    python scripts/bench_tokenizer.py --trainer both --vocab 512 --repeats 1 --train-only
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinygrad_lm.tokenizer import BPETokenizer, read_text  # noqa: E402

MINBPE_ANCHORS = {"train_512_s": 62.0, "train_1024_s": 174.0, "encode_MBps": 0.8}


def best_of(fn, repeats):
    """(best seconds, last result) of ``repeats`` calls."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def version(mod):
    try:
        from importlib.metadata import version as v
        return v(mod)
    except Exception:
        return "not installed"


def long_chunks(args):
    """Time one chunk of L letters (one regex match: no spaces, no digits) and a base64 blob of L
    characters, encoded by `_merge_long` (the heap, O(L log L)) and by the plain loop (O(L^2),
    what every chunk took before), trained on the first 200 kB of --data to the largest --vocab."""
    import base64
    import random

    from tinygrad_lm.tokenizer import bpe

    tok = BPETokenizer(args.pattern)
    tok.train(read_text(args.data)[:200_000], max(args.vocab))
    print("== bench_tokenizer --long-chunks")
    print(f"command : python {' '.join(sys.argv)}")
    print(f"machine : {platform.platform()}, {cpu_name()}, {os.cpu_count()} cpus; best of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.2f}")
    blob = base64.b64encode(random.Random(0).randbytes(90_000)).decode()
    print(f"{'input':28s} {'heap (s)':>9s} {'plain loop (s)':>15s}  same ids")
    for n in (5_000, 20_000, 80_000):
        for name, text in ((f"{n:,} letters, one chunk", "etaoinshrdlu" * (n // 12 + 1)), (f"{n:,} base64", blob)):
            text = text[:n]

            def cold():  # an empty chunk cache: the chunk is merged, not looked up
                tok._cache.clear()
                return tok.encode_ordinary(text)

            s_heap, ids_heap = best_of(cold, args.repeats)
            saved, bpe.LONG_CHUNK = bpe.LONG_CHUNK, 10 ** 12  # every chunk through the plain loop
            try:
                s_loop, ids_loop = best_of(cold, 1)
            finally:
                bpe.LONG_CHUNK = saved
            print(f"{name:28s} {s_heap:9.3f} {s_loop:15.3f}  {ids_heap == ids_loop}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare.txt"),
                   help="UTF-8 text (default: ../shared/data/tinyshakespeare.txt from the repo)")
    p.add_argument("--vocab", type=int, nargs="+", default=[512, 1024, 4096])
    p.add_argument("--pattern", default="gpt4", help="gpt4, gpt2 or a regex")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--trainer", choices=["fast", "reference", "both"], default="fast",
                   help="which BPE trainer to time: fast (the default of BPETokenizer.train), reference "
                        "(train_reference.py: about 7 s for vocab 512 on Tiny Shakespeare), or both "
                        "(same merges checked, time ratio printed)")
    p.add_argument("--train-only", action="store_true", help="time training only (no encoding, no tiktoken/"
                   "tokenizers comparisons)")
    p.add_argument("--long-chunks", action="store_true",
                   help="only: encode single long chunks (letters without spaces, a base64 blob) with the "
                        "heap merge against the plain loop")
    args = p.parse_args()
    if args.long_chunks:
        return long_chunks(args)

    text = read_text(args.data)
    nbytes = len(text.encode("utf-8"))
    mb = nbytes / 1e6
    print("== bench_tokenizer")
    print(f"command : python {' '.join(sys.argv)}")
    print(f"machine : {platform.platform()}, {cpu_name()}, {os.cpu_count()} cpus")
    print(f"python  : {platform.python_version()}  regex {version('regex')}  numpy "
          f"{version('numpy')}  tiktoken {version('tiktoken')}  tokenizers {version('tokenizers')}")
    print(f"data    : {args.data} ({nbytes:,} bytes), pattern {args.pattern}, "
          f"best of {args.repeats}")

    # ---- training
    print("\n-- train (whole text)")
    trained = {}
    train_s = {}
    trainers = ["fast", "reference"] if args.trainer == "both" else [args.trainer]
    for v in args.vocab:
        for name in trainers:
            def train():
                t = BPETokenizer(args.pattern)
                t.train(text, v, trainer=name)
                return t
            s, tok = best_of(train, args.repeats)
            anchor = MINBPE_ANCHORS.get(f"train_{v}_s")
            extra = f"   minbpe anchor {anchor:.0f} s -> {anchor / s:,.0f}x faster" if anchor else ""
            if name == "reference":
                extra = ""
                if v in trained:
                    same = "yes" if list(tok.merges.items()) == list(trained[v].merges.items()) else "NO"
                    extra = f"   same merges as fast: {same}; {s / train_s[v]:,.0f}x the fast trainer's time"
            label = "" if name == "fast" else f" ({name} trainer)"
            print(f"vocab {v:>6}{label}: {s:7.3f} s  ({len(tok.merges)} merges){extra}")
            if v not in trained:
                trained[v], train_s[v] = tok, s
    if args.train_only:
        return

    # ---- encoding (largest vocab)
    v = max(args.vocab)
    tok = trained[v]

    def cold():
        tok._cache.clear()
        return tok.encode(text)

    s_cold, ids = best_of(cold, args.repeats)
    s_warm, ids_warm = best_of(lambda: tok.encode(text), args.repeats)
    assert ids == ids_warm and tok.decode(ids) == text
    print(f"\n-- encode (vocab {v}, {len(ids):,} tokens, {nbytes / len(ids):.2f} bytes/token)")
    print(f"ours cold cache : {s_cold:7.3f} s  {mb / s_cold:6.2f} MB/s"
          f"   minbpe anchor {MINBPE_ANCHORS['encode_MBps']} MB/s -> "
          f"{mb / s_cold / MINBPE_ANCHORS['encode_MBps']:.1f}x")
    print(f"ours warm cache : {s_warm:7.3f} s  {mb / s_warm:6.2f} MB/s")
    if text.isascii():
        # one non-ASCII character sends the whole text through the `regex` split (patterns.py)
        text_na = "\u00e9" + text

        def cold_na():
            tok._cache.clear()
            return tok.encode(text_na)
        s_na, _ = best_of(cold_na, args.repeats)
        print(f"ours cold, non-ASCII text (regex split): {s_na:7.3f} s  "
              f"{len(text_na.encode()) / 1e6 / s_na:6.2f} MB/s")
    with tempfile.TemporaryDirectory() as d:
        def to_file():
            tok._cache.clear()
            return tok.encode_file(args.data, Path(d) / "ids.bin")
        s_file, (n, dtype) = best_of(to_file, args.repeats)
    assert n == len(ids)
    print(f"encode_file     : {s_file:7.3f} s  {mb / s_file:6.2f} MB/s  ({n:,} x {dtype})")
    s_dec, _ = best_of(lambda: tok.decode(ids), args.repeats)
    print(f"decode          : {s_dec:7.3f} s  {mb / s_dec:6.2f} MB/s")

    # ---- tiktoken, with our ranks
    try:
        import tiktoken
    except ImportError:
        print("tiktoken        : not installed, skipped")
    else:
        enc = tiktoken.Encoding(name="bench", pat_str=tok.pattern,
                                mergeable_ranks=tok.to_tiktoken_ranks(), special_tokens={})
        s_tt, tt_ids = best_of(lambda: enc.encode_ordinary(text), args.repeats)
        same = "identical ids" if tt_ids == ids else "IDS DIFFER"
        print(f"tiktoken        : {s_tt:7.3f} s  {mb / s_tt:6.2f} MB/s  ({same}); "
              f"ours/tiktoken time = {s_cold / s_tt:.2f}x cold, {s_warm / s_tt:.2f}x warm")

    # ---- Hugging Face tokenizers training
    print()
    try:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        print("-- tokenizers (Hugging Face): not installed, skipped")
        return
    print(f"-- train, Hugging Face tokenizers (same regex, byte-level, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'default')})")
    for v in args.vocab:
        def hf_train():
            hf = Tokenizer(models.BPE())
            hf.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(tok.pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            trainer = trainers.BpeTrainer(vocab_size=v, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            hf.train_from_iterator([text], trainer=trainer)
            return hf
        s, hf = best_of(hf_train, args.repeats)
        print(f"vocab {v:>6}: {s:7.3f} s  (vocab {hf.get_vocab_size()}); "
              f"ours/tokenizers time = {train_s[v] / s:.2f}x")


if __name__ == "__main__":
    main()
