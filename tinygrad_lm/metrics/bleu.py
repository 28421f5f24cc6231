"""Corpus BLEU (Papineni et al., 2002) with sacreBLEU's default settings, in pure Python.

BLEU scores a machine translation against one or more human references by n-gram overlap:

    BLEU = BP * exp( (1/4) * sum_{n=1..4} log p_n )          (x 100, so 0..100)

  * p_n, the clipped n-gram precision: of the hypotheses' n-grams (n = 1..4 tokens), the share
    that also occur in a reference, each n-gram counted at most as often as it occurs in the
    single reference that has most of it ("clipping"). Counts are summed over the whole corpus
    before dividing: corpus BLEU is not the mean of sentence BLEUs.
  * BP, the brevity penalty: precision alone rewards saying little, so with c the hypotheses'
    total length and r the references' total length (per sentence, the reference length
    closest to the hypothesis' length, the shorter one on a tie), BP = exp(1 - r/c) when
    c < r, else 1 (0 when c = 0).
  * smoothing ("exp", mteval-v13a's): an order with no match at all would make the score 0,
    so its precision becomes 1 / (2^k * total_n), where k counts the zero-match orders so far
    (1 for the first, 2 for the second, ...). With no match at any order, or no n-gram at all
    of some order (every hypothesis shorter than n tokens), the score is 0.
  * tokenization ("13a", the mteval-v13a.pl rules WMT used): trailing whitespace stripped, four
    HTML entities unescaped, ASCII punctuation split off as tokens except that a period or
    comma between two digits stays (3.14, 1,000) and a dash splits only after a digit; then
    whitespace splits the tokens. Letters and any non-ASCII character (accents, CJK, emoji)
    are left alone, so a CJK sentence without spaces is one token.

Follows sacreBLEU 2.6.0 (`sacrebleu.BLEU()` with its defaults, and `sacrebleu.sentence_bleu`)
and matches its scores to 1e-9 (tests/test_metrics_sacrebleu.py); the code is written from the
rules above, not taken from it. Leaves out: the other tokenizers (intl, zh, ja-mecab, char,
spm, none), lowercasing, the other smoothing methods (none, floor, add-k), other maximum orders,
bootstrap confidence intervals and the signature string.

    >>> round(corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]).score, 9)
    100.0
    >>> s = corpus_bleu(  # 6 tokens against 7: BP = exp(1 - 7/6)
    ...     ["the cat sat on the mat"], [["the cat sat on the red mat"]])
    >>> s.counts, s.totals, round(s.bp, 4), round(s.score, 2)
    ([6, 4, 3, 2], [6, 5, 4, 3], 0.8465, 67.32)
"""
import math
import re
from collections import Counter
from dataclasses import dataclass

from ._text_inputs import corpus_segments, sentence_segments

MAX_ORDER = 4

# mteval-v13a's language-dependent rules, applied in this order to " line ":
_RULES_13A = (
    # every ASCII punctuation mark except ' , - . (and the space) becomes a token
    (re.compile(r"([ -&(-+/:-@\[-`{-~])"), r" \1 "),
    # a period or comma splits off unless it has a digit before it ...
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),
    # ... or a digit after it (so "3.14" and "1,000" stay whole)
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),
    # a dash splits off after a digit ("2-3" -> "2 - 3"); "well-known" stays whole
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))  # in this order


def tokenize_13a(line):
    """The tokens of `line` under sacreBLEU's "13a" tokenizer (mteval-v13a), as a list of strings.

    sacreBLEU strips the line's trailing whitespace before this (BLEU does it for you).

    >>> tokenize_13a('He said: "3.14, not 3,5-4!" &amp; left.')
    ['He', 'said', ':', '"', '3.14', ',', 'not', '3,5', '-', '4', '!', '"', '&', 'left', '.']
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in _ENTITIES:
        line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _RULES_13A:
        line = pattern.sub(replacement, line)
    return line.split()


def ngram_counts(tokens, max_order=MAX_ORDER):
    """Counter of every n-gram (a tuple of n tokens) of `tokens`, for n = 1..max_order.

    >>> sorted(ngram_counts(["a", "b", "a"], 2).items())
    [(('a',), 2), (('a', 'b'), 1), (('b',), 1), (('b', 'a'), 1)]
    """
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def closest_ref_length(hyp_len, ref_lens):
    """The reference length nearest the hypothesis length; the shorter of two equally near ones."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


@dataclass
class BLEUScore:
    """A BLEU result with its sufficient statistics, as sacreBLEU's `BLEUScore`.

    Attributes:
        score: BLEU, 0..100.
        counts: matched (clipped) n-grams per order 1..4; totals: hypothesis n-grams per order.
        precisions: the (smoothed) precision per order, in percent.
        bp: brevity penalty; sys_len, ref_len: total hypothesis and (closest) reference tokens.
    """
    score: float
    counts: list
    totals: list
    precisions: list
    bp: float
    sys_len: int
    ref_len: int

    @property
    def ratio(self):
        """Hypothesis length over reference length (0 with no reference token)."""
        return self.sys_len / self.ref_len if self.ref_len else 0

    def __str__(self):
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.2f} {precisions} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
                f"hyp_len = {self.sys_len} ref_len = {self.ref_len})")


def segment_statistics(hypothesis, references):
    """(hyp_len, ref_len, counts, totals) of one sentence against its references (raw strings)."""
    hyp = tokenize_13a(hypothesis.rstrip())
    refs = [tokenize_13a(r.rstrip()) for r in references]
    clip = Counter()
    for ref in refs:
        clip |= ngram_counts(ref)  # | keeps the larger count: the most any one reference allows
    counts, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    for gram, n in ngram_counts(hyp).items():
        totals[len(gram) - 1] += n
        counts[len(gram) - 1] += min(n, clip[gram])
    return len(hyp), closest_ref_length(len(hyp), [len(r) for r in refs]), counts, totals


def bleu_from_statistics(counts, totals, sys_len, ref_len, effective_order=False):
    """BLEU with exponential smoothing from summed statistics (a BLEUScore).

    Args:
        counts, totals: matched and hypothesis n-grams per order 1..4.
        sys_len, ref_len: hypothesis and reference lengths in tokens.
        effective_order: average over the orders that have any n-gram instead of all four
            (sacreBLEU's sentence-level default), so a 3-word sentence can score above 0.
    """
    counts, totals = list(counts), list(totals)
    if sys_len >= ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * MAX_ORDER
    if not any(counts):
        return BLEUScore(0.0, counts, totals, precisions, bp, sys_len, ref_len)
    orders, halvings = MAX_ORDER, 1
    for n in range(MAX_ORDER):
        if totals[n] == 0:  # no n-gram of this order (nor any longer): its precision stays 0
            break
        if effective_order:
            orders = n + 1
        if counts[n] == 0:
            halvings *= 2
            precisions[n] = 100.0 / (halvings * totals[n])
        else:
            precisions[n] = 100.0 * counts[n] / totals[n]
    used = precisions[:orders]
    score = 0.0 if 0.0 in used else bp * math.exp(sum(math.log(p) for p in used) / orders)
    return BLEUScore(score, counts, totals, precisions, bp, sys_len, ref_len)


def _bleu(segments, effective_order):
    sys_len = ref_len = 0
    counts, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    for hypothesis, references in segments:
        h, r, c, t = segment_statistics(hypothesis, references)
        sys_len, ref_len = sys_len + h, ref_len + r
        counts = [a + b for a, b in zip(counts, c)]
        totals = [a + b for a, b in zip(totals, t)]
    return bleu_from_statistics(counts, totals, sys_len, ref_len, effective_order)


def corpus_bleu(hypotheses, references):
    """Corpus BLEU of `hypotheses` against `references`, as `sacrebleu.BLEU().corpus_score`.

    Args:
        hypotheses: one detokenized string per sentence.
        references: a list of reference streams, each one string per sentence (None where a
            sentence has no reference in that stream): `[refs]` for one reference per sentence.
    Returns:
        BLEUScore (score 0..100, counts, totals, precisions, bp, sys_len, ref_len).
    """
    return _bleu(corpus_segments(hypotheses, references, "BLEU"), effective_order=False)


def sentence_bleu(hypothesis, references):
    """BLEU of one sentence against a list of its reference strings, as `sacrebleu.sentence_bleu`.

    Like sacreBLEU's sentence_bleu it averages over the effective orders (those with any
    n-gram in the hypothesis), so a sentence shorter than 4 tokens can score above 0.
    """
    return _bleu(sentence_segments(hypothesis, references, "BLEU"), effective_order=True)
