"""Classification metrics as pure NumPy functions: confusion matrix, accuracy, macro-F1.

Conventions follow scikit-learn: the confusion matrix has one row per TRUE label and one
column per PREDICTED label; macro-F1 is the unweighted mean of the per-class F1 scores over
the classes that occur in the true or the predicted labels (`f1_score(average="macro")`).
Leaves out: micro/weighted averages, precision/recall curves and probabilistic scores.

    >>> y_true, y_pred = [0, 0, 1, 2], [0, 1, 1, 1]
    >>> confusion_matrix(y_true, y_pred, 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    >>> accuracy(y_true, y_pred), round(macro_f1(y_true, y_pred, 3), 4)
    (0.5, 0.3889)

(per class: F1_0 = 2*1/(2+0+1) = 2/3, F1_1 = 2*1/(2+2+0) = 1/2, F1_2 = 0; mean 7/18.)
"""
import numpy as np


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


def f1_per_class(cm):
    """Per-class F1 = 2 TP / (2 TP + FP + FN) from a confusion matrix; NaN for a class that
    is neither true nor predicted anywhere (0/0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # (TP + FP) + (TP + FN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def macro_f1(y_true, y_pred, num_labels=None):
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred.

    A class the model never predicts but that occurs in y_true scores 0 and counts in the
    mean, which is what makes macro-F1 punish always answering the majority class.

    Args:
        y_true, y_pred: 1-D integer arrays of label ids, same length.
        num_labels: number of classes (default: 1 + the largest id seen); classes absent from
            both arrays do not count, so passing it never changes the result.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    L = int(num_labels) if num_labels is not None else int(max(y_true.max(), y_pred.max())) + 1
    f1 = f1_per_class(confusion_matrix(y_true, y_pred, L))
    return float(np.nanmean(f1))


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
