"""The picture of a run's training diagnostics: `python -m tinygrad_lm plot RUN_DIR --diagnostics [--out F.png]`.

Reads the `{"step", "diagnostics"}` records that `train --diagnostics` (or `finetune
--diagnostics`) writes to log.jsonl (diagnostics.py says what each number is) and draws one PNG
of five panels against the step, one line per layer, coloured from the first block (dark) to
the last (light), with the embeddings and the head in grey and black:

    gradient norm       per layer, log scale (the gradient the update used: after --grad-clip)
    update / data       ||dw|| / ||w|| per layer, log scale, with a dashed line at 1e-3 (the
                        "about 1e-3 is healthy" rule of thumb, Karpathy's makemore part 3)
    output mean, std    of each block's output (the residual stream after the block)
    GELU saturation     the share of each block's GELU inputs below -3 (GELU's flat side), in %

The sixth cell holds the legend. A run with no diagnostics records is refused, saying to run it
with --diagnostics. matplotlib is the `plot` extra, as for the loss curves (plot.py).
Leaves out: several runs in one picture (each run has its own layers), per-parameter lines
(they are in log.jsonl), smoothing.
"""
import math
import sys

from .diagnostics import GELU_FLAT, short_name
from .plot import INSTALL_HINT, _pyplot, read_log, save_figure

HEALTHY_RATIO = 1e-3  # the reference line of the update/data panel
LABELS = {"embeddings": "embeddings (before the blocks)", "head": "head (after the blocks)"}


def _series(records, section, key):
    """{layer: [value per record]} of one quantity; None (no value that step) and non-positive values
    where a log axis cannot show them become NaN, which matplotlib leaves as a gap."""
    names = []
    for r in records:  # every layer any record has, in the order they first appear
        names += [n for n in r["diagnostics"].get(section, {}) if n not in names]
    out = {}
    for name in names:
        values = []
        for r in records:
            v = r["diagnostics"].get(section, {}).get(name, {}).get(key)
            values.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan)
        out[name] = values
    return out


def _style(name, blocks, cmap):
    """Line colour and style of a layer: blocks along the colour map, embeddings grey, head black."""
    if name in blocks:
        i = blocks.index(name)
        return {"color": cmap(0.85 * i / max(len(blocks) - 1, 1)), "linestyle": "-"}
    return {"color": "0.55" if name == "embeddings" else "black", "linestyle": "--" if name == "embeddings" else ":"}


def plot_diagnostics(log, out, title=None):
    """Draw the RunLog's diagnostics records into the PNG `out`; returns its path."""
    plt = _pyplot()
    records = log.diagnostics
    steps = [r["step"] for r in records]
    blocks = list(_series(records, "blocks", "std"))
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(3, 2, figsize=(12, 10.5))
    panels = [  # (axis, section, key, y label, log scale, scale of the values)
        (axes[0, 0], "layers", "grad_norm", "gradient norm ||g|| (after clipping)", True, 1),
        (axes[0, 1], "layers", "update_ratio", "update / data  ||dw|| / ||w||", True, 1),
        (axes[1, 0], "blocks", "mean", "block output mean", False, 1),
        (axes[1, 1], "blocks", "std", "block output std", False, 1),
        (axes[2, 0], "blocks", "saturation", f"GELU inputs < {GELU_FLAT:g} (%)", False, 100),
    ]
    handles = {}
    for ax, section, key, label, log_y, scale in panels:
        for name, values in _series(records, section, key).items():
            values = [v * scale if not (log_y and v <= 0) else math.nan for v in values]
            line, = ax.plot(steps, values, linewidth=1.4, marker="o" if len(steps) < 30 else None, markersize=3,
                            label=LABELS.get(name, short_name(name)), **_style(name, blocks, cmap))
            handles.setdefault(name, line)
        if log_y:
            ax.set_yscale("log")
        elif key == "saturation":
            ax.set_ylim(bottom=0)  # a share: nothing below 0
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    reference = axes[0, 1].axhline(HEALTHY_RATIO, color="tab:red", linestyle="--", linewidth=1.2,
                                   label="update/data 1e-3 (healthy)")  # on the 10^-3 tick; named in the legend
    axes[1, 0].axhline(0.0, color="0.7", linewidth=0.8)
    for ax in (axes[2, 0], axes[1, 1]):  # the bottom panel of each column
        ax.set_xlabel("step")
    legend_ax = axes[2, 1]
    legend_ax.axis("off")
    entries = list(handles.values()) + [reference]
    columns = 1 if len(entries) <= 11 else 2  # a deep model: its blocks in two columns
    legend = legend_ax.legend(handles=entries, labels=[h.get_label() for h in entries], loc="center",
                              fontsize=10 if columns == 1 else 9, ncol=columns, frameon=False, title_fontsize=10,
                              title="layer (blocks: first dark, last light)")
    legend.set_in_layout(False)  # the panels keep their sizes, however wide the legend
    fig.suptitle(title or f"training diagnostics of {log.name} (every {_interval(steps)} steps)", fontsize=13)
    fig.tight_layout()
    return save_figure(fig, out, dpi=100)


def _interval(steps):
    gaps = sorted(b - a for a, b in zip(steps, steps[1:]))
    return gaps[len(gaps) // 2] if gaps else "?"


def run_diagnostics(args):
    """`plot RUN_DIR --diagnostics`: one run's diagnostics records into one PNG (default diagnostics.png)."""
    if len(args.run_dirs) != 1:
        raise ValueError(f"--diagnostics draws one run, got {len(args.run_dirs)} RUN_DIRs; plot each run on its own "
                         "(with --out NAME.png for each)")
    log = read_log(args.run_dirs[0])
    if not log.diagnostics:
        raise ValueError(f"{log.path}: its log.jsonl has no diagnostics records; run it with --diagnostics "
                         f"(`train --diagnostics --out-dir {log.path}` or `finetune --diagnostics`; a resumed run "
                         "may turn them on with --resume --diagnostics)")
    try:
        _pyplot()
    except ImportError:
        print(f"tinygrad-lm plot: {INSTALL_HINT}", file=sys.stderr)
        return 2
    out = plot_diagnostics(log, args.out or "diagnostics.png", title=args.title)
    print(f"wrote {out} ({len(log.diagnostics)} diagnostics records of {log.name}, steps {log.diagnostics[0]['step']}"
          f" to {log.diagnostics[-1]['step']})")
    return 0


__all__ = ["plot_diagnostics", "run_diagnostics"]
