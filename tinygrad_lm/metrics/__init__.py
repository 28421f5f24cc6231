"""Metrics: pure functions of predictions and labels (NumPy and the standard library only).

    classification.py  confusion matrix, accuracy, precision / recall / F1 (macro, micro, per
                       class), following scikit-learn; the classifier fine-tuning reports these
    language.py        perplexity and bits per byte from a language model's loss
    bleu.py            corpus and sentence BLEU with the 13a tokenizer, as sacreBLEU's defaults
    chrf.py            corpus and sentence chrF (character 6-grams, beta 2), as sacreBLEU's defaults

It imports nothing else of the package, so any layer may use it (tests/test_layers.py).

    >>> from tinygrad_lm.metrics import corpus_bleu, corpus_chrf, perplexity
    >>> hyps = ["the cat sat on the mat", "a dog barked"]
    >>> refs = [["the cat sat on the mat", "the dog barked"]]   # one reference stream
    >>> round(corpus_bleu(hyps, refs).score, 2), round(corpus_chrf(hyps, refs).score, 2)
    (88.36, 88.75)
"""
from .bleu import BLEUScore, corpus_bleu, sentence_bleu, tokenize_13a
from .chrf import CHRFScore, corpus_chrf, sentence_chrf
from .classification import (accuracy, confusion_matrix, f1, f1_per_class, format_confusion, macro_f1, precision,
                             precision_recall_f1, recall, scores_from_confusion)
from .language import bits_per_byte, perplexity

__all__ = [
    "confusion_matrix", "accuracy", "precision", "recall", "f1", "precision_recall_f1", "scores_from_confusion",
    "f1_per_class", "macro_f1", "format_confusion",
    "perplexity", "bits_per_byte",
    "corpus_bleu", "sentence_bleu", "BLEUScore", "tokenize_13a",
    "corpus_chrf", "sentence_chrf", "CHRFScore",
]
