"""Metrics: pure functions of predictions and labels (NumPy and the standard library only).

    classification.py  confusion matrix, accuracy, precision / recall / F1 (macro, micro, per
                       class), following scikit-learn; the classifier fine-tuning reports these
    language.py        perplexity and bits per byte from a language model's loss

It imports nothing else of the package, so any layer may use it (tests/test_layers.py).

    >>> from tinygrad_lm.metrics import f1, perplexity
    >>> round(perplexity(2.0), 4), f1([0, 1, 1], [0, 1, 0], average="micro")
    (7.3891, 0.6666666666666666)
"""
from .classification import (accuracy, confusion_matrix, f1, f1_per_class, format_confusion, macro_f1, precision,
                             precision_recall_f1, recall, scores_from_confusion)
from .language import bits_per_byte, perplexity

__all__ = [
    "confusion_matrix", "accuracy", "precision", "recall", "f1", "precision_recall_f1", "scores_from_confusion",
    "f1_per_class", "macro_f1", "format_confusion",
    "perplexity", "bits_per_byte",
]
