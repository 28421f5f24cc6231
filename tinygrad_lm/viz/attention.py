"""Attention maps: where each head of each layer looks, as numbers and as a picture.

    stack_attention(cache)          the weights `run_with_cache` keeps, as one array (L, nh, T, T)
    head_patterns(weights)          per (layer, head): the mean weight on the previous token, on
                                    the first token and on the query itself, and which of the
                                    three the head attends to mostly ("mixed" when none)
    format_patterns(patterns)       those numbers as an aligned table
    token_labels(tokenizer, ids)    each token as the tokenizer split it, printable
    plot_attention(weights, tokens, out, head=None, title=None)
                                    a grid of heatmaps, layers x heads (or one head, large)

Which query rows the three scores average over: rows q = 2..T-1 only. There the first key (0),
the previous key (q-1) and the query's own key (q) are three different tokens; at q = 0 all
three are one token and at q = 1 the previous token is the first, so those rows cannot tell the
patterns apart in any model. The same rows serve a causal GPT (row q has keys 0..q) and a
bidirectional BERT (every row has all T keys; the first token is [CLS]). A row's weights sum to
1, so the three shares of one row sum to at most 1, and so do their means: with the default
threshold of 0.5 ("mostly": more than half of the weight, on average) at most one pattern can
pass, and the label is never a tie. What a head would get by chance differs: in a causal model
row q spreads over q+1 keys, so uniform attention puts 1/(q+1) on each (a mean of about 0.1 on
the first token at 30 tokens); in BERT 1/T.
The patterns are the ones Clark et al. 2019 ("What Does BERT Look At?", section 3) measure
(previous token, [CLS], broad) and that Elhage et al. 2021 / Olsson et al. 2022 call
previous-token heads; the grid of per-head heatmaps is the picture bertviz and TransformerLens
users know. Our own code.
matplotlib (the `plot` extra) is imported only by `plot_attention`; the rest needs NumPy only.
Leaves out: other patterns (next token, [SEP], punctuation, induction), attention from several
texts averaged, interactive views, and attention to cached keys (S != T).
"""
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.backend import to_device
from ..files import atomic_write

INSTALL_HINT = "drawing attention maps needs matplotlib: pip install -e '.[plot]' (or: pip install matplotlib)"
PATTERNS = ("previous", "first", "self")  # the labels head_patterns gives, besides "mixed"
IMAGE_FORMATS = ("png", "svg", "pdf")


def stack_attention(cache, row=0):
    """The attention weights in a `run_with_cache` cache as one float64 array (L, nh, T, S).

    Takes every `<attention layer>.weights` entry in the order the forward pass wrote them (layer
    0 first) and keeps batch row `row`. Raises ValueError when the cache holds none.
    """
    layers = [np.asarray(to_device(v.data, "cpu"), dtype=np.float64)[row] for k, v in cache.items()
              if k == "weights" or k.endswith(".weights")]  # each (nh, T, S)
    if not layers:
        raise ValueError("the cache holds no attention weights (no '<layer>.weights' entry): was it made by "
                         "run_with_cache of a model with attention layers?")
    return np.stack(layers)  # (L, nh, T, S)


@dataclass
class HeadPattern:
    """One head's mean attention share on the previous token, the first token and itself (rows
    q = 2..T-1), and its label: one of PATTERNS, or "mixed"."""
    layer: int
    head: int
    previous: float
    first: float
    itself: float
    label: str


def _check_weights(weights):
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"attention weights must have shape (layers, heads, T, T), got {w.shape}")
    return w


def head_patterns(weights, threshold=0.5):
    """Score every head of every layer on the three classic patterns.

    Args:
        weights: (L, nh, T, T) attention probabilities, query rows x key columns (stack_attention).
        threshold: the mean share a pattern must pass (more than) to name the head; in (0, 1).
    Returns:
        a list of HeadPattern, layer by layer, head by head. A head whose scores pass the
        threshold is labelled by the largest of them; else "mixed".
    Raises:
        ValueError: weights of another shape, fewer than 3 tokens, or a threshold outside (0, 1).

        >>> prev = np.eye(4, k=-1); prev[0, 0] = 1     # every query on the token before it
        >>> head_patterns(prev[None, None])[0].label
        'previous'
    """
    w = _check_weights(weights)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    n_layer, n_head, T, _ = w.shape
    if T < 3:
        raise ValueError(f"head patterns need at least 3 tokens (the first, a previous and a query token apart), "
                         f"got {T}")
    q = np.arange(2, T)  # the query rows where first, previous and self are three different keys
    previous = w[:, :, q, q - 1].mean(axis=-1)  # (L, nh)
    first = w[:, :, q, 0].mean(axis=-1)
    itself = w[:, :, q, q].mean(axis=-1)
    out = []
    for layer in range(n_layer):
        for head in range(n_head):
            scores = (previous[layer, head], first[layer, head], itself[layer, head])
            best = int(np.argmax(scores))
            label = PATTERNS[best] if scores[best] > threshold else "mixed"
            out.append(HeadPattern(layer, head, *(float(s) for s in scores), label))
    return out


def format_patterns(patterns):
    """An aligned text table, one line per head: layer, head, prev, first, self, pattern."""
    lines = [f"{'layer':>5}  {'head':>4}  {'prev':>5}  {'first':>5}  {'self':>5}  pattern"]
    for p in patterns:
        lines.append(f"{p.layer:>5}  {p.head:>4}  {p.previous:>5.2f}  {p.first:>5.2f}  {p.itself:>5.2f}  {p.label}")
    return "\n".join(lines)


def _visible(text):
    """A token's text with its whitespace made visible: space as '·', newline as '\\n', tab as
    '\\t', other control characters as '\\uXXXX'."""
    shown = {" ": "\u00b7", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "".join(shown.get(c) or (f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" else c) for c in text)


def token_labels(tokenizer, ids):
    """Each id decoded alone, as the tokenizer split the text, made printable: bytes that are not
    UTF-8 on their own (a byte-level BPE token holding part of a character) as '\\xNN', the rest
    as text with whitespace visible ('·' for a space, '\\n' for a newline).

        >>> from tinygrad_lm.tokenizer import BPETokenizer
        >>> token_labels(BPETokenizer(), list(" a\\n".encode()) + [226, 130])
        ['·', 'a', '\\\\n', '\\\\xe2', '\\\\x82']
    """
    labels = []
    for i in ids:
        if hasattr(tokenizer, "decode_bytes"):  # byte-level BPE: a token may be part of a character
            labels.append(_visible(tokenizer.decode_bytes([int(i)]).decode("utf-8", errors="backslashreplace")))
        else:
            labels.append(_visible(tokenizer.decode([int(i)])))
    return labels


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); ImportError with the install hint."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ticks(ax, tokens, step, fontsize, x=True, y=True):
    """Every `step`-th token as a tick label: keys along x (rotated), queries along y."""
    at = np.arange(0, len(tokens), step)
    names = [tokens[i] for i in at]
    upright = max(len(n) for n in names) == 1  # single characters read best upright; longer tokens turned
    ax.set_xticks(at, names if x else [], rotation=0 if upright else 90, fontsize=fontsize)
    ax.set_yticks(at, names if y else [], fontsize=fontsize)
    ax.tick_params(length=2, pad=1)


def _step(n_tokens, inches, fontsize):
    """Label every step-th token so that the labels along `inches` do not overlap."""
    room = max(1, int(inches * 72 / (fontsize * 1.2)))  # labels that fit: 1.2 x the font size apart
    return -(-n_tokens // room)


def plot_attention(weights, tokens, out, head=None, title=None):
    """Draw attention maps into an image file (PNG, SVG or PDF by `out`'s suffix), written atomically.

    Args:
        weights: (L, nh, T, T) attention probabilities (stack_attention).
        tokens: T token labels (token_labels) for both axes.
        out: the file to write; its folder is created when missing.
        head: None for the grid of every layer x head, or (layer, head) for that head alone, large.
        title: the figure's title (default: "attention weights").
    Returns:
        out as a Path.
    """
    w = _check_weights(weights)
    n_layer, n_head, T, _ = w.shape
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} token labels for attention over {T} tokens")
    out = Path(out)
    fmt = out.suffix[1:].lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"{out}: the image must end in {', '.join('.' + f for f in IMAGE_FORMATS)}")
    if head is not None:
        layer, h = head
        if not (0 <= layer < n_layer and 0 <= h < n_head):
            raise ValueError(f"head {layer}.{h} does not exist: layers 0..{n_layer - 1}, heads 0..{n_head - 1}")
        cells = [[(layer, h)]]
        cell, fontsize = min(max(5.0, 0.22 * T), 14.0), 8  # inches of the one heatmap
    else:
        cells = [[(layer, h) for h in range(n_head)] for layer in range(n_layer)]
        cell, fontsize = min(max(2.4, 0.12 * T), 3.6), 7  # 30 tokens: every one labelled
    rows, cols = len(cells), len(cells[0])
    step = _step(T, cell, fontsize)
    plt = _pyplot()
    from matplotlib.colors import PowerNorm

    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)  # a square-root colour scale: weights of 0.05 still show
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained",
                             figsize=(cols * cell + 1.8, rows * cell + 1.4))
    for r, line in enumerate(cells):
        for c, (layer, h) in enumerate(line):
            ax = axes[r, c]
            image = ax.imshow(w[layer, h], norm=norm, cmap="Blues", interpolation="nearest")
            _ticks(ax, tokens, step, fontsize, x=r == rows - 1, y=c == 0)
            if head is not None:
                ax.set_title(f"layer {layer}, head {h}", fontsize=fontsize + 3)
                ax.set_xlabel("key (token attended to)", fontsize=fontsize + 2)
                ax.set_ylabel("query (token attending)", fontsize=fontsize + 2)
            else:
                if r == 0:
                    ax.set_title(f"head {h}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"layer {layer}", fontsize=9)
    if head is None:
        fig.supxlabel("key (token attended to)", fontsize=10)
        fig.supylabel("query (token attending)", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6 if rows > 1 else 0.8, label="attention weight (square-root scale)")
    fig.suptitle(title or "attention weights", fontsize=10)
    try:  # never a half-written image under the name asked for
        atomic_write(out, lambda f: fig.savefig(f, format=fmt, dpi=100), what="the picture")
    finally:
        plt.close(fig)
    return out


__all__ = ["HeadPattern", "stack_attention", "head_patterns", "format_patterns", "token_labels", "plot_attention"]
