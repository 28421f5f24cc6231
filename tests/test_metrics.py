"""tinygrad_lm.metrics without an oracle: hand-computed cases for every function, the docstring
examples, and the clear errors. The comparison with sacreBLEU is tests/test_metrics_sacrebleu.py."""
import ast
import doctest
import importlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import metrics
from tinygrad_lm.metrics import (accuracy, bits_per_byte, confusion_matrix, corpus_bleu, corpus_chrf, f1,
                                 f1_per_class, macro_f1, perplexity, precision, precision_recall_f1, recall,
                                 scores_from_confusion, sentence_bleu, sentence_chrf, tokenize_13a)

PACKAGE = Path(metrics.__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["", ".classification", ".language", ".bleu", ".chrf"])
def test_docstring_examples(name):
    mod = importlib.import_module("tinygrad_lm.metrics" + name)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_one_copy_used_by_the_run_and_no_sacrebleu_in_the_package():
    from tinygrad_lm.run import finetune, train
    assert importlib.util.find_spec("tinygrad_lm.run.metrics") is None  # moved here, not copied
    assert finetune.macro_f1 is metrics.macro_f1 and finetune.confusion_matrix is metrics.confusion_matrix
    assert train.perplexity is metrics.perplexity and train.bits_per_byte is metrics.bits_per_byte
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "sacrebleu" for n in names), path


# ------------------------------------------------------------------------------- classification
# rows true, columns predicted:  [[2, 1, 0],
#                                 [0, 1, 1],
#                                 [0, 0, 1]]
Y_TRUE, Y_PRED = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]


def test_precision_recall_f1_per_class_macro_and_micro_by_hand():
    p, r, f = precision_recall_f1(Y_TRUE, Y_PRED, average=None)
    assert p.tolist() == pytest.approx([2 / 2, 1 / 2, 1 / 2])  # TP / column sum
    assert r.tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 1])  # TP / row sum
    assert f.tolist() == pytest.approx([4 / 5, 1 / 2, 2 / 3])  # 2 TP / (row + column)
    macro = precision_recall_f1(Y_TRUE, Y_PRED, average="macro")
    assert macro == pytest.approx((2 / 3, 13 / 18, (4 / 5 + 1 / 2 + 2 / 3) / 3))
    # micro pools TP (4), FP (2), FN (2): for single-label data all three are the accuracy
    assert precision_recall_f1(Y_TRUE, Y_PRED, average="micro") == pytest.approx((4 / 6,) * 3)
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert (precision(Y_TRUE, Y_PRED), recall(Y_TRUE, Y_PRED), f1(Y_TRUE, Y_PRED)) == macro
    assert macro_f1(Y_TRUE, Y_PRED) == macro[2]
    assert scores_from_confusion(confusion_matrix(Y_TRUE, Y_PRED, 3), "macro") == macro


def test_zero_division_and_absent_classes_follow_scikit_learn():
    y_true, y_pred = [0, 0, 1], [0, 0, 0]  # class 1 never predicted: its precision is 0/0
    p, r, f = precision_recall_f1(y_true, y_pred, num_labels=3, average=None)
    assert p[:2].tolist() == [2 / 3, 0.0] and r[:2].tolist() == [1.0, 0.0] and f[:2].tolist() == [0.8, 0.0]
    assert np.isnan([p[2], r[2], f[2]]).all()  # class 2 occurs nowhere: no score, and in no average
    assert precision(y_true, y_pred, 3, zero_division=1.0, average=None)[1] == 1.0
    assert precision(y_true, y_pred, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert precision(y_true, y_pred, 3, zero_division=1.0) == pytest.approx((2 / 3 + 1) / 2)
    assert precision(y_true, y_pred, 3, zero_division=np.nan) == pytest.approx(2 / 3)  # NaN leaves it out
    assert recall([0, 0], [0, 1], zero_division=1.0, average=None).tolist() == [0.5, 1.0]  # class 1 never true
    assert f1(y_true, y_pred, 3, zero_division=1.0) == f1(y_true, y_pred, 3)  # F1 never divides by 0
    assert f1(y_true, y_pred, 3) == f1(y_true, y_pred)  # num_labels never changes a score
    assert f1_per_class(confusion_matrix(y_true, y_pred, 3))[:2].tolist() == [0.8, 0.0]


def test_classification_errors():
    with pytest.raises(ValueError, match="average must be one of"):
        f1(Y_TRUE, Y_PRED, average="weighted")
    with pytest.raises(ValueError, match="zero_division must be"):
        precision(Y_TRUE, Y_PRED, zero_division=0.5)
    with pytest.raises(ValueError, match="same length"):
        precision_recall_f1([0, 1], [0])
    with pytest.raises(ValueError, match="integer label ids"):
        f1([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="square"):
        scores_from_confusion(np.ones((2, 3)))


# ------------------------------------------------------------------------------------ language
def test_perplexity_by_hand():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(65)) == pytest.approx(65)  # a uniform guess over 65 characters
    assert perplexity([1.0, 3.0]) == pytest.approx(math.exp(2.0))  # exp of the mean, not mean of exps
    assert perplexity(np.float32(2.0)) == pytest.approx(math.exp(2.0))
    assert perplexity(709.0) == math.exp(709.0) and perplexity(710.0) == math.inf  # no OverflowError
    assert math.isnan(perplexity(float("nan")))
    with pytest.raises(ValueError, match="never negative"):
        perplexity(-0.5)
    with pytest.raises(ValueError, match="empty"):
        perplexity([])
    with pytest.raises(TypeError, match="loss must be a number"):
        perplexity("2.0x")


def test_bits_per_byte_by_hand():
    # 100 tokens at 2 nats each stand for 400 bytes: 200 nats = 200 / ln 2 bits over 400 bytes
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(200 / math.log(2) / 400)
    assert bits_per_byte(2.0, tokens=1, bytes=4) == bits_per_byte(2.0, 100, 400)  # only the ratio matters
    assert bits_per_byte(math.log(256), 1, 1) == pytest.approx(8.0)  # a uniform byte: 8 bits
    with pytest.raises(ValueError, match="positive"):
        bits_per_byte(2.0, 10, 0)


# ---------------------------------------------------------------------------------------- BLEU
def test_bleu_of_identical_sentences_is_100_and_of_disjoint_ones_0():
    s = corpus_bleu(["the cat sat on the mat ."], [["the cat sat on the mat ."]])
    assert s.score == pytest.approx(100.0) and s.bp == 1.0 and s.counts == s.totals == [7, 6, 5, 4]
    assert corpus_bleu(["a b c d"], [["w x y z"]]).score == 0.0


def test_brevity_penalty_on_a_short_hypothesis():
    s = corpus_bleu(["a b c d"], [["a b c d e f"]])  # every n-gram matches, 4 tokens against 6
    assert s.precisions == [100.0] * 4 and (s.sys_len, s.ref_len) == (4, 6)
    assert s.bp == pytest.approx(math.exp(1 - 6 / 4)) and s.score == pytest.approx(100 * math.exp(-0.5))
    assert corpus_bleu(["a b c d e f g"], [["a b c d e f"]]).bp == 1.0  # longer: no penalty
    empty = corpus_bleu([""], [["a b"]])
    assert (empty.score, empty.bp, empty.sys_len) == (0.0, 0.0, 0)
    assert corpus_bleu([""], [[""]]).score == 0.0


def test_exponential_smoothing_of_zero_match_orders():
    s = corpus_bleu(["a b c d e f"], [["x b c y e f"]])
    # 1-grams b c e f: 4/6; 2-grams bc ef: 2/5; no 3- or 4-gram matches: 1/(2*4), then 1/(4*3)
    assert s.counts == [4, 2, 0, 0] and s.totals == [6, 5, 4, 3]
    assert s.precisions == pytest.approx([400 / 6, 40.0, 100 / 8, 100 / 12])
    assert s.score == pytest.approx(math.exp(sum(math.log(p) for p in s.precisions) / 4))


def test_multiple_references_clip_and_pick_the_closest_length():
    # clipping: "the" may count as often as the reference that has most of it (2)
    s = corpus_bleu(["the the the the"], [["the cat"], ["the the"]])
    assert s.counts[0] == 2 and s.totals[0] == 4
    # 2 tokens against references of 1 and 3 tokens: equally close, the shorter one (1) counts
    assert corpus_bleu(["a b"], [["a"], ["a b c"]]).ref_len == 1
    # None: no reference in that stream for that sentence
    s = corpus_bleu(["a b c d", "e f g h"], [["a b c d", None], [None, "e f g h"]])
    assert s.score == pytest.approx(100.0) and s.ref_len == 8


def test_sentence_bleu_uses_the_effective_order():
    assert corpus_bleu(["a b"], [["a b"]]).score == 0.0  # no 3- or 4-grams at all: 0 at corpus level
    assert sentence_bleu("a b", ["a b"]).score == pytest.approx(100.0)  # orders 1 and 2 only
    assert sentence_bleu("a b c d", ["a b c d"]).score == pytest.approx(corpus_bleu(["a b c d"], [["a b c d"]]).score)


def test_the_13a_tokenizer_by_hand():
    assert tokenize_13a("Hello, world! It's 3.14 or 1,000.") == [
        "Hello", ",", "world", "!", "It's", "3.14", "or", "1,000", "."]
    assert tokenize_13a("well-known 2-3 (a) &lt;b&gt;") == ["well-known", "2", "-", "3", "(", "a", ")", "<", "b", ">"]
    assert tokenize_13a("café 東京😀 naïve") == ["café", "東京😀", "naïve"]  # non-ASCII is left alone
    assert tokenize_13a("  ") == [] and tokenize_13a("a<skipped>b") == ["ab"]


# ---------------------------------------------------------------------------------------- chrF
def test_chrf_by_hand():
    assert corpus_chrf(["a cat"], [["a cat"]]).score == pytest.approx(100.0)
    assert corpus_chrf(["a cat"], [["acat"]]).score == pytest.approx(100.0)  # whitespace is removed
    # "ab" against "abc": orders 1, 2 count (the hypothesis has no 3-gram): P = 1, R = (2/3 + 1/2)/2 = 7/12
    s = corpus_chrf(["ab"], [["abc"]])
    assert s.score == pytest.approx(100 * 5 * 1 * (7 / 12) / (4 * 1 + 7 / 12))  # 100 * 7/11
    assert (s.precision, s.recall) == pytest.approx((100.0, 100 * 7 / 12))
    assert s.statistics[:3] == [(2, 3, 2), (1, 2, 1), (0, 1, 0)]
    # "abc" against "ab": the reference has no 3-gram, so the hypothesis' one does not count:
    # P = (2/3 + 1/2)/2 = 7/12, R = 1, F = 5 * 7/12 / (4 * 7/12 + 1) = 35/40
    assert corpus_chrf(["abc"], [["ab"]]).score == pytest.approx(87.5)
    assert corpus_chrf([""], [["abc"]]).score == 0.0 and corpus_chrf(["abc"], [[""]]).score == 0.0


def test_chrf_keeps_the_best_reference_and_sums_statistics_over_the_corpus():
    assert corpus_chrf(["ab"], [["xyz"], ["ab"]]).score == pytest.approx(100.0)
    assert sentence_chrf("ab", ["xyz", "ab"]).score == pytest.approx(100.0)
    # corpus chrF is the F-score of summed counts, not the mean of sentence scores
    both = corpus_chrf(["ab", "abc"], [["abc", "ab"]])
    assert both.statistics[0] == (5, 5, 4)
    assert both.score != pytest.approx((sentence_chrf("ab", ["abc"]).score + sentence_chrf("abc", ["ab"]).score) / 2)


# -------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("metric", [corpus_bleu, corpus_chrf])
def test_bad_text_inputs_give_clear_errors(metric):
    with pytest.raises(ValueError, match=r"references\[0\] has 1 lines but there are 2 hypotheses"):
        metric(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match=r"pass \[refs\], not refs"):
        metric(["a", "b"], ["a", "b"])  # one stream given without its list
    with pytest.raises(TypeError, match=r"hypotheses\[1\] has type int, not str"):
        metric(["a", 3], [["a", "b"]])
    with pytest.raises(TypeError, match=r"references\[0\]\[0\] has type bytes, not str \(or None"):
        metric(["a"], [[b"a"]])
    with pytest.raises(TypeError, match="hypotheses must be a list of strings, got a single str"):
        metric("a b", [["a b"]])
    with pytest.raises(ValueError, match="at least one hypothesis"):
        metric([], [[]])
    with pytest.raises(ValueError, match="at least one reference stream"):
        metric(["a"], [])
    with pytest.raises(ValueError, match="sentence 0 has no reference"):
        metric(["a"], [[None], [None]])


@pytest.mark.parametrize("metric", [sentence_bleu, sentence_chrf])
def test_bad_sentence_inputs_give_clear_errors(metric):
    with pytest.raises(TypeError, match="hypothesis must be a str"):
        metric(["a"], ["a"])
    with pytest.raises(TypeError, match="references must be a list of strings, got a single str"):
        metric("a", "a")
