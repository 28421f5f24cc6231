"""Classification metrics as pure NumPy functions: confusion matrix, accuracy, precision, recall, F1.

Conventions follow scikit-learn (`sklearn.metrics`, 1.3 and later):
  * the confusion matrix has one row per TRUE label and one column per PREDICTED label;
  * the classes that count are those that occur in y_true or y_pred (sklearn's default
    `labels=None`): a class absent from both has no precision, recall or F1 (NaN in the
    per-class arrays) and never enters an average, so passing `num_labels` never changes a score;
  * precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN) (the
    harmonic mean of the two, written with counts as sklearn computes it);
  * average="macro" is the unweighted mean over the classes that count; average="micro" sums
    TP, FP and FN over them first, which for single-label data makes micro precision, recall
    and F1 all equal to the accuracy; average=None returns the per-class arrays;
  * zero division: precision of a class that is never predicted (TP + FP = 0) and recall of a
    class that never occurs in y_true (TP + FN = 0) are 0/0; they take the value
    `zero_division` (0.0 by default, which is sklearn's default "warn" without the warning;
    1.0 and NaN as in sklearn, NaN leaving the class out of the macro mean). F1's denominator
    2 TP + FP + FN is 0 only for a class that counts nowhere, so F1 never needs it.
Leaves out: the "weighted" and "samples" averages, sample weights, multi-label targets,
F-beta for beta != 1, precision/recall curves and probabilistic scores.

    >>> y_true, y_pred = [0, 0, 1, 2], [0, 1, 1, 1]
    >>> confusion_matrix(y_true, y_pred, 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    >>> accuracy(y_true, y_pred), round(macro_f1(y_true, y_pred, 3), 4)
    (0.5, 0.3889)
    >>> [round(v, 4) for v in precision_recall_f1(y_true, y_pred, average="macro")]
    [0.4444, 0.5, 0.3889]

(per class: F1_0 = 2*1/(2+0+1) = 2/3, F1_1 = 2*1/(2+2+0) = 1/2, F1_2 = 0; mean 7/18. Precision
1, 1/3, 0 (class 2 is never predicted: 0/0, the zero_division 0); recall 1/2, 1, 0.)
"""
import math

import numpy as np

AVERAGES = ("macro", "micro", None)


def _labels(y, name):
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer label ids, got shape {y.shape} dtype {y.dtype}")
    return y.astype(np.int64)


def _pair(y_true, y_pred):
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same length")
    if y_true.size == 0:
        raise ValueError("metrics need at least one example")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_labels):
    """(num_labels, num_labels) int64 counts: entry [i, j] = examples of true label i predicted j.

    Args:
        y_true, y_pred: 1-D integer arrays of label ids in 0..num_labels-1, same length.
        num_labels: number of classes L.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_labels:
            raise ValueError(f"{name} holds label ids outside 0..{num_labels - 1}")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def accuracy(y_true, y_pred):
    """Fraction of examples whose predicted label equals the true one (a Python float)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def _divide(num, den, fill):
    """num / den elementwise, `fill` where den == 0 (no warning)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), fill)


def _check_zero_division(zero_division):
    z = float(zero_division)
    if not (z in (0.0, 1.0) or math.isnan(z)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or NaN (as in scikit-learn), got {zero_division!r}")
    return z


def scores_from_confusion(cm, average=None, zero_division=0.0):
    """Precision, recall and F1 read off a confusion matrix (rows true, columns predicted).

    Args:
        cm: (L, L) counts, as `confusion_matrix` returns.
        average: None (per-class arrays of length L), "macro" or "micro" (Python floats).
        zero_division: the value of a 0/0 precision or recall (module docstring).
    Returns:
        (precision, recall, f1). Per class, a class absent from both the true and the predicted
        labels gets NaN in all three; an average over no class at all is NaN.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    zero_division = _check_zero_division(zero_division)
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square (L, L), got shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    predicted, true = cm.sum(axis=0), cm.sum(axis=1)  # TP + FP, TP + FN per class
    present = (predicted + true) > 0
    if average == "micro":  # one pool of counts over the classes that count
        tp, predicted, true = tp[present].sum(), predicted[present].sum(), true[present].sum()
        return (float(_divide(tp, predicted, zero_division)), float(_divide(tp, true, zero_division)),
                float(_divide(2 * tp, predicted + true, zero_division)))
    per_class = [np.where(present, s, np.nan) for s in (_divide(tp, predicted, zero_division),
                                                        _divide(tp, true, zero_division),
                                                        _divide(2 * tp, predicted + true, zero_division))]
    if average is None:
        return tuple(per_class)
    return tuple(float(np.mean(s[~np.isnan(s)])) if (~np.isnan(s)).any() else math.nan for s in per_class)


def precision_recall_f1(y_true, y_pred, num_labels=None, average="macro", zero_division=0.0):
    """Precision, recall and F1 of label predictions, as scikit-learn's `precision_recall_fscore_support`.

    Args:
        y_true, y_pred: 1-D integer arrays of label ids, same length.
        num_labels: number of classes L (default: 1 + the largest id seen); classes absent from
            both arrays do not count, so it only sets the length of the per-class arrays.
        average: "macro" (unweighted mean over the classes that count), "micro" (pooled counts:
            the accuracy, for single-label data) or None (per-class arrays of length L).
        zero_division: the value of a 0/0 precision or recall: 0.0 (default), 1.0 or NaN.
    Returns:
        (precision, recall, f1): Python floats, or three float64 arrays with average=None.

    >>> precision_recall_f1([0, 0, 1], [0, 0, 0], average=None, zero_division=1.0)[0].tolist()
    [0.6666666666666666, 1.0]
    """
    y_true, y_pred = _pair(y_true, y_pred)
    L = int(num_labels) if num_labels is not None else int(max(y_true.max(), y_pred.max())) + 1
    return scores_from_confusion(confusion_matrix(y_true, y_pred, L), average, zero_division)


def precision(y_true, y_pred, num_labels=None, average="macro", zero_division=0.0):
    """Precision TP / (TP + FP): `precision_recall_f1(...)[0]`."""
    return precision_recall_f1(y_true, y_pred, num_labels, average, zero_division)[0]


def recall(y_true, y_pred, num_labels=None, average="macro", zero_division=0.0):
    """Recall TP / (TP + FN): `precision_recall_f1(...)[1]`."""
    return precision_recall_f1(y_true, y_pred, num_labels, average, zero_division)[1]


def f1(y_true, y_pred, num_labels=None, average="macro", zero_division=0.0):
    """F1 2 TP / (2 TP + FP + FN): `precision_recall_f1(...)[2]`."""
    return precision_recall_f1(y_true, y_pred, num_labels, average, zero_division)[2]


def f1_per_class(cm):
    """Per-class F1 = 2 TP / (2 TP + FP + FN) from a confusion matrix; NaN for a class that
    is neither true nor predicted anywhere (0/0)."""
    return scores_from_confusion(cm)[2]


def macro_f1(y_true, y_pred, num_labels=None):
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred.

    A class the model never predicts but that occurs in y_true scores 0 and counts in the
    mean, which is what makes macro-F1 punish always answering the majority class.

    Args:
        y_true, y_pred: 1-D integer arrays of label ids, same length.
        num_labels: number of classes (default: 1 + the largest id seen); classes absent from
            both arrays do not count, so passing it never changes the result.
    """
    return f1(y_true, y_pred, num_labels, average="macro")


def format_confusion(cm, names, width=10):
    """A small text table of a confusion matrix: rows true, columns predicted, names cut to `width`.

    >>> print(format_confusion([[2, 0], [1, 3]], ["cat", "dog"]))
    true \\ pred        cat        dog
    cat                  2          0
    dog                  1          3
    """
    cm = np.asarray(cm)
    short = [str(n)[:width] for n in names]
    first = max(len("true \\ pred"), *(len(s) for s in short))
    lines = ["true \\ pred".ljust(first) + "".join(s.rjust(width + 1) for s in short)]
    for name, row in zip(short, cm):
        lines.append(name.ljust(first) + "".join(str(int(v)).rjust(width + 1) for v in row))
    return "\n".join(lines)
