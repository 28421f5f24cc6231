"""Baselines a fine-tuned GPT must be compared with: the majority class, and bag-of-words
logistic regression trained with this package's own Tensors and optimizer.

`majority_baseline(train_labels, n)` predicts the most frequent training label everywhere.
`BagOfWordsLogReg` is multinomial logistic regression on word-presence features:

    words     lower-cased runs of letters and apostrophes (`[a-z']+`), so "Romeo," -> "romeo"
    features  x[v] = 1 if vocabulary word v occurs in the text, then each row scaled to unit
              L2 norm; the vocabulary is the words seen at least `min_count` times in training
    model     logits = x W + b, W (V, L), b (L); loss = cross-entropy + l2/2 * ||W||^2
    fit       full-batch Adam for `steps` steps (the loss is convex; it converges in a few
              hundred steps)

Leaves out: n-grams, TF-IDF weighting, and any tuning here (choose `l2` on a validation split).
"""
import re
from collections import Counter

import numpy as np

from ..engine import functional as F
from ..optim import Adam
from ..engine.tensor import Tensor, no_grad

WORD = re.compile(r"[a-z']+")


def majority_baseline(train_labels, n):
    """(label id, predictions (n,) int64): the most frequent training label (lowest id on ties)."""
    label = int(np.bincount(np.asarray(train_labels)).argmax())
    return label, np.full(n, label, dtype=np.int64)


def words(text):
    """The lower-cased words of a text.

    >>> words("O Romeo, Romeo! wherefore art thou Romeo?")
    ['o', 'romeo', 'romeo', 'wherefore', 'art', 'thou', 'romeo']
    """
    return WORD.findall(text.lower())


class BagOfWordsLogReg:
    """Multinomial logistic regression on unit-normalised word-presence vectors (module doc).

    Args:
        num_labels: number of classes L.
        min_count: keep words seen at least this many times in the training texts.
        l2: weight of the L2 penalty on W.
        steps, lr: full-batch Adam steps and learning rate.
    """

    def __init__(self, num_labels, min_count=2, l2=1e-3, steps=300, lr=0.05):
        self.num_labels, self.min_count, self.l2, self.steps, self.lr = num_labels, min_count, l2, steps, lr
        self.vocab = None

    def features(self, texts):
        """(N, V) float32 matrix of unit-L2-norm word-presence rows (all-zero rows stay zero)."""
        X = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for i, t in enumerate(texts):
            cols = [self.vocab[w] for w in set(words(t)) if w in self.vocab]
            X[i, cols] = 1.0
        norms = np.linalg.norm(X, axis=1, keepdims=True)  # (N, 1)
        return X / np.maximum(norms, 1e-12)

    def fit(self, texts, labels):
        """Build the vocabulary from `texts` and fit W, b; returns the list of training losses."""
        counts = Counter(w for t in texts for w in set(words(t)))
        kept = sorted(w for w, c in counts.items() if c >= self.min_count)
        if not kept:
            raise ValueError(f"no word occurs {self.min_count} or more times in the training texts")
        self.vocab = {w: i for i, w in enumerate(kept)}
        X = Tensor(self.features(texts))
        y = np.asarray(labels, dtype=np.int64)
        self.W = Tensor(np.zeros((len(kept), self.num_labels), dtype=np.float32), requires_grad=True)
        self.b = Tensor(np.zeros(self.num_labels, dtype=np.float32), requires_grad=True)
        opt = Adam([self.W, self.b], lr=self.lr)
        losses = []
        for _ in range(self.steps):
            loss = F.cross_entropy(X @ self.W + self.b, y) + (self.W * self.W).sum() * (0.5 * self.l2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        return losses

    @no_grad()
    def logits(self, texts):
        """(N, L) NumPy logits."""
        if self.vocab is None:
            raise RuntimeError("call fit() before predicting")
        return (Tensor(self.features(texts)) @ self.W + self.b).numpy()

    def predict(self, texts):
        """(N,) int64 predicted label ids."""
        return self.logits(texts).argmax(axis=1)
