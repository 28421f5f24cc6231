"""sacreBLEU as the oracle: tinygrad_lm.metrics' BLEU and chrF must give its numbers to 1e-9.

Compared with `sacrebleu.BLEU()` and `sacrebleu.CHRF()` at their defaults (13a tokenizer, exp
smoothing; chrF with 6 character orders, beta 2), `sacrebleu.sentence_bleu` and the 13a tokenizer
itself, on seeded random corpora: words from a small vocabulary with punctuation, numbers, HTML
entities, accents, CJK and emoji, odd whitespace (tabs, newlines, no-break and ideographic
spaces), empty lines, 1 to 4 reference streams with gaps (None), references that are edits of
the hypothesis (so scores spread over 0..100) and hypotheses much longer or shorter than them.
Skipped without sacrebleu (the oracle extra, `pip install -e '.[oracle]'`).
"""
import random

import pytest

from tinygrad_lm.metrics import corpus_bleu, corpus_chrf, sentence_bleu, sentence_chrf, tokenize_13a

from oracles import oracle  # tests/oracles.py

pytestmark = pytest.mark.oracle
sacrebleu = oracle("sacrebleu")

TOL = 1e-9
SEEDS = range(8)
SETS_PER_SEED = 60  # 8 x 60 = 480 random corpora, each scored with BLEU and chrF

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "a", "big", "red", "is", "The", "Cat",
         "café", "naïve", "Straße", "résumé", "Ünïcödé", "東京", "猫が好き", "中文", "한국어", "😀", "👍🏽",
         "3.14", "1,000", "2-3", "4.", ",5", "well-known", "don't", "U.S.", "e.g.", "(hi)", "[1]", "{x}",
         "$5", "50%", "x@y.z", "C++", "a/b", "~", "`", "^", "—", "«quoted»", "…",
         "&amp;", "&quot;", "&lt;b&gt;", "&amp;lt;", "<skipped>", "line-", "ab-\ncd",
         ".", ",", "!", "?", ":", ";", "-", "'", '"', "...", "--", "#", "*", "_", "\\", "|"]
GAPS = [" "] * 12 + ["", "  ", "\t", "\n", "\u00a0", "\u3000", " . ", ", "]


def sentence(rng, length=None):
    n = rng.choice([0, 0, 1, 2, 3, 5, 8, 12, 20]) if length is None else length
    text = "".join(rng.choice(WORDS) + rng.choice(GAPS) for _ in range(n))
    return text + rng.choice(["", "", "", " ", "\n", "\t "])  # trailing whitespace sometimes


def edit(rng, text):
    """A reference made from the hypothesis: words dropped, swapped, replaced or added."""
    words = text.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue
        out.append(rng.choice(WORDS) if r < 0.3 else w)
        if rng.random() < 0.1:
            out.append(rng.choice(WORDS))
    if len(out) > 1 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out) + rng.choice(["", " ", "  "])


def random_corpus(rng):
    """(hypotheses, reference streams) of 1-8 sentences and 1-4 streams, gaps as None."""
    n, streams = rng.randint(1, 8), rng.randint(1, 4)
    hyps = [sentence(rng) for _ in range(n)]
    if rng.random() < 0.2:  # much longer or shorter than the references
        hyps = [h * rng.choice([3, 0]) for h in hyps]
    refs = [[None] * n for _ in range(streams)]
    for i, h in enumerate(hyps):
        for k in range(streams):
            r = rng.random()
            refs[k][i] = (edit(rng, h) if r < 0.6 else sentence(rng) if r < 0.85 else
                          "" if r < 0.92 else None)
        if all(refs[k][i] is None for k in range(streams)):  # every sentence keeps a reference
            refs[rng.randrange(streams)][i] = edit(rng, h)
    return hyps, refs


def corpora(seed):
    rng = random.Random(seed)
    return [random_corpus(rng) for _ in range(SETS_PER_SEED)]


def check_bleu(ours, theirs, case):
    assert ours.score == pytest.approx(theirs.score, abs=TOL, rel=0), case
    assert (ours.counts, ours.totals, ours.sys_len, ours.ref_len) == (
        list(theirs.counts), list(theirs.totals), theirs.sys_len, theirs.ref_len), case
    assert ours.bp == pytest.approx(theirs.bp, abs=TOL, rel=0), case
    assert ours.precisions == pytest.approx(theirs.precisions, abs=TOL, rel=0), case


@pytest.mark.parametrize("seed", SEEDS)
def test_corpus_bleu_and_chrf_match_sacrebleu_on_random_corpora(seed):
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    scores = []
    for hyps, refs in corpora(seed):
        case = (hyps, refs)
        ours = corpus_bleu(hyps, refs)
        check_bleu(ours, bleu.corpus_score(hyps, refs), case)
        assert corpus_chrf(hyps, refs).score == pytest.approx(chrf.corpus_score(hyps, refs).score,
                                                              abs=TOL, rel=0), case
        scores.append(ours.score)
    # the corpora are not all trivial: some score 0, some in between
    assert min(scores) == 0.0 and any(0 < s < 100 for s in scores)


@pytest.mark.parametrize("seed", SEEDS)
def test_sentence_bleu_and_chrf_match_sacrebleu(seed):
    chrf = sacrebleu.CHRF()
    for hyps, refs in corpora(100 + seed):
        for i, hyp in enumerate(hyps):
            sentence_refs = [stream[i] for stream in refs if stream[i] is not None]
            case = (hyp, sentence_refs)
            check_bleu(sentence_bleu(hyp, sentence_refs), sacrebleu.sentence_bleu(hyp, sentence_refs), case)
            assert sentence_chrf(hyp, sentence_refs).score == pytest.approx(
                chrf.sentence_score(hyp, sentence_refs).score, abs=TOL, rel=0), case


def test_the_13a_tokenizer_matches_sacrebleus():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    theirs = Tokenizer13a()
    rng = random.Random(7)
    lines = [sentence(rng) for _ in range(500)] + ["3.14, 1,000 and 2-3.", "a.b,c", "x-", "&amp;quot;", "-\n"]
    for line in lines:
        assert " ".join(tokenize_13a(line.rstrip())) == theirs(line.rstrip()), repr(line)


@pytest.mark.parametrize("hyps, refs", [
    ([""], [[""]]),                                  # nothing at all
    (["", ""], [["a b c d", ""]]),                   # empty hypotheses: BP 0
    (["a b c d e"], [[""]]),                         # empty reference
    (["a b"], [["a b"]]),                            # shorter than 4 tokens: no 3-, 4-grams
    (["the cat"], [["the cat sat"], ["cat the"], ["the"]]),  # closest reference length, ties
    (["the the the the"], [["the cat"], ["the the"]]),       # clipping at the max count over references
    (["a b c d e f"], [["x b c y e f"]]),            # zero 4-gram matches: exp smoothing
    (["猫が好き 😀"], [["猫が好き😀"]]),              # no space: one token for 13a, the same for chrF
])
def test_edge_cases_match_sacrebleu(hyps, refs):
    check_bleu(corpus_bleu(hyps, refs), sacrebleu.BLEU().corpus_score(hyps, refs), (hyps, refs))
    assert corpus_chrf(hyps, refs).score == pytest.approx(sacrebleu.CHRF().corpus_score(hyps, refs).score,
                                                          abs=TOL, rel=0)
