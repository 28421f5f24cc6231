"""chrF (Popović, 2015): the character n-gram F-score, with sacreBLEU 2.x's defaults, in pure Python.

Where BLEU counts word n-grams, chrF counts character n-grams, so a word with the right stem and
the wrong ending still earns part of the credit (which suits morphologically rich languages):

  * whitespace is removed first ("a cat" and "acat" give the same n-grams), then each
    sentence's character n-grams of orders n = 1..6 are counted;
  * per order, the hypothesis, reference and matched n-gram counts (matches clipped to the
    reference's count) are summed over the corpus; a sentence whose reference has no n-gram of
    some order adds none of the hypothesis' n-grams of that order either;
  * precision P_n = matches / hypothesis n-grams and recall R_n = matches / reference n-grams,
    then P and R are their means over the orders where both counts are non-zero (sacreBLEU's
    "effective order"; no epsilon smoothing), and

        chrF = 100 * (1 + beta^2) P R / (beta^2 P + R),   beta = 2 (recall weighs 4 times as much)

    (0 when P + R = 0). This is sacreBLEU 2.x's default: it averages P and R first and takes
    one F-score, rather than averaging per-order F-scores (its eps_smoothing=True, chrF++.py);
  * with several references, each sentence keeps the statistics of the reference with the best
    sentence chrF (the first of equals), and those are what the corpus sums.

Follows sacreBLEU 2.6.0 (`sacrebleu.CHRF()` with its defaults: char_order=6, word_order=0,
beta=2, whitespace removed, eps_smoothing=False) and matches its scores to 1e-9
(tests/test_metrics_sacrebleu.py); the code is written from these rules, not taken from it.
Leaves out: chrF++ (word n-grams, word_order=2), other orders and betas, keeping whitespace,
lowercasing, epsilon smoothing, bootstrap confidence intervals and the signature string.

    >>> round(corpus_chrf(["ab"], [["abc"]]).score, 4)
    63.6364

(orders 1 and 2 count: P = (2/2 + 1/1)/2 = 1, R = (2/3 + 1/2)/2 = 7/12; 5 P R / (4 P + R) = 7/11.)
"""
from collections import Counter
from dataclasses import dataclass

from ._text_inputs import corpus_segments, sentence_segments

CHAR_ORDER = 6
BETA = 2


@dataclass
class CHRFScore:
    """A chrF result.

    Attributes:
        score: chrF, 0..100.
        precision, recall: the mean character n-gram precision and recall over the effective
            orders, in percent (what the F-score combines).
        statistics: per order 1..6, (hypothesis n-grams, reference n-grams, matches), summed.
    """
    score: float
    precision: float
    recall: float
    statistics: list

    def __str__(self):
        return f"chrF2 = {self.score:.2f} (P = {self.precision:.2f} R = {self.recall:.2f})"


def char_ngrams(text, max_order=CHAR_ORDER):
    """[Counter of the character n-grams of order n, for n = 1..max_order] of `text` without whitespace.

    >>> [sorted(c.items()) for c in char_ngrams("ab a", 2)]
    [[('a', 2), ('b', 1)], [('ab', 1), ('ba', 1)]]
    """
    chars = "".join(text.split())
    return [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, max_order + 1)]


def match_statistics(hyp_grams, ref_grams):
    """[(hypothesis n-grams, reference n-grams, matches)] per order, from two `char_ngrams` lists.

    An order where the reference has no n-gram counts no hypothesis n-gram either.
    """
    stats = []
    for hyp, ref in zip(hyp_grams, ref_grams):
        ref_total = sum(ref.values())
        hyp_total = sum(hyp.values()) if ref_total else 0
        stats.append((hyp_total, ref_total, sum(min(n, ref[g]) for g, n in hyp.items())))
    return stats


def chrf_from_statistics(stats, beta=BETA):
    """(chrF, mean precision, mean recall), all in percent, from per-order (hyp, ref, match) counts."""
    effective = [(m / h, m / r) for h, r, m in stats if h > 0 and r > 0]
    if not effective:
        return 0.0, 0.0, 0.0
    p = sum(pn for pn, _ in effective) / len(effective)
    r = sum(rn for _, rn in effective) / len(effective)
    if p + r == 0:
        return 0.0, 0.0, 0.0
    return 100 * ((1 + beta ** 2) * p * r / (beta ** 2 * p + r)), 100 * p, 100 * r


def _best_reference_statistics(hypothesis, references):
    """The statistics of the reference that gives this sentence the highest chrF (the first of equals)."""
    hyp = char_ngrams(hypothesis)
    candidates = [match_statistics(hyp, char_ngrams(ref)) for ref in references]
    return max(candidates, key=lambda stats: chrf_from_statistics(stats)[0])


def _chrf(segments):
    totals = [(0, 0, 0)] * CHAR_ORDER
    for hypothesis, references in segments:
        stats = _best_reference_statistics(hypothesis, references)
        totals = [tuple(a + b for a, b in zip(t, s)) for t, s in zip(totals, stats)]
    return CHRFScore(*chrf_from_statistics(totals), statistics=totals)


def corpus_chrf(hypotheses, references):
    """Corpus chrF of `hypotheses` against `references`, as `sacrebleu.CHRF().corpus_score`.

    Args:
        hypotheses: one string per sentence.
        references: a list of reference streams, each one string per sentence (None where a
            sentence has no reference in that stream): `[refs]` for one reference per sentence.
    Returns:
        CHRFScore (score 0..100, precision, recall, statistics).
    """
    return _chrf(corpus_segments(hypotheses, references, "chrF"))


def sentence_chrf(hypothesis, references):
    """chrF of one sentence against a list of its reference strings, as `sacrebleu.CHRF().sentence_score`."""
    return _chrf(sentence_segments(hypothesis, references, "chrF"))
