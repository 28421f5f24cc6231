"""A confusion matrix as a PNG: `evaluate --ckpt CLASSIFIER --data test.jsonl --plot cm.png`.

One heatmap, rows the true labels and columns the predicted ones (scikit-learn's
`ConfusionMatrixDisplay` layout, as `format_confusion` prints it), each cell holding its count and
coloured by its share of the row (the recall of that true label), so a small class is as readable
as a large one. The title says what was evaluated and its accuracy and macro-F1.
matplotlib is optional (`pip install -e '.[plot]'`) and imported here only; `check_plot_path` and
`pyplot` refuse a bad path and a missing matplotlib before any model runs. The image is written to
a temporary name in the same folder, then renamed into place (files.py): never half an image under the name.
Leaves out: normalised counts as text, label sorting, and formats other than PNG.
"""
import os
from pathlib import Path

import numpy as np

from ..files import atomic_write

INSTALL_HINT = "--plot needs matplotlib: pip install -e '.[plot]' (or: pip install matplotlib)"


def check_plot_path(out):
    """Refuse, before any work, a --plot path that is not a .png in an existing, writable folder."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--plot {out}: the image must end in .png (e.g. {out.with_suffix('.png')})")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--plot {out}: the folder {out.parent} does not exist; create it (mkdir -p "
                                f"{out.parent}) or write somewhere else")
    if out.is_dir():
        raise IsADirectoryError(f"--plot {out} is a folder; give a file name such as {out / 'confusion.png'}")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--plot {out}: cannot write in {out.parent}; write somewhere else")
    return out


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); ImportError with the install hint."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm, names, out, title=None):
    """Draw the (L, L) confusion matrix `cm` (rows true, columns predicted) with label `names` into `out`.

    Returns the path written.
    """
    cm = np.asarray(cm)
    plt = pyplot()
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # (L, L): each row's share, its recall
    size = min(max(4.0, 0.6 * len(names) + 2.5), 14.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, [str(n) for n in names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(n) for n in names])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    fig.colorbar(image, ax=ax, label="share of the true label's examples")
    ax.set_title(title or "confusion matrix", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100), what="the confusion matrix picture",
                     fix="pass another --plot")
    finally:
        plt.close(fig)
    return out


__all__ = ["check_plot_path", "pyplot", "plot_confusion", "INSTALL_HINT"]
