"""tinygrad_lm.metrics without an oracle: hand-computed cases for every function, the docstring
examples, and the clear errors."""
import ast
import doctest
import importlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import metrics
from tinygrad_lm.metrics import (accuracy, bits_per_byte, confusion_matrix, f1, f1_per_class, macro_f1, perplexity,
                                 precision, precision_recall_f1, recall, scores_from_confusion)

PACKAGE = Path(metrics.__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["", ".classification", ".language"])
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
