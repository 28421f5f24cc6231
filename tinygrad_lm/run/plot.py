"""Loss curves of runs: `python -m tinygrad_lm plot RUN_DIR [RUN_DIR ...] [--out loss.png]`.

Reads the `log.jsonl` each run folder holds (loop.Run writes it) and draws one PNG with the runs
overlaid, one colour per run, labelled by folder name:

    top panel     the loss against steps: the training batches' loss (a record every
                  --log-interval steps; thin), and at each evaluation the val loss (thick, dots)
                  and, for pretraining runs, the train split's loss (dashed)
    bottom panel  the learning rate against steps (warmup, then the cosine)

`read_log(path)` is the reading alone, without matplotlib: a step record is one with "loss"
and "lr", an evaluation record one with "val_loss", a diagnostics record (`train --diagnostics`,
diagnostics.py) one with a "diagnostics" dict. Lines that are none of these (a run killed in
the middle of writing one) are skipped with one warning naming the file and lines. A run resumed
after being killed re-does the steps since its last checkpoint: the records written after a
restart replace those of the same steps before it (a log written before run/log_file.py cut
them when the run resumed).
`plot RUN --diagnostics` draws a run's diagnostics records instead (plot_diagnostics.py).
The picture is written whole or not at all (`save_figure`, files.py): a full disk or a kill leaves
the old picture.
matplotlib is an optional dependency (`pip install -e .[plot]`); without it the command prints
how to install it and exits with status 2. The Agg backend draws without a display.
Leaves out: smoothing, wall-clock axes, fine-tuning's accuracy curves (its losses are drawn).
"""
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write

INSTALL_HINT = "needs matplotlib: pip install -e .[plot] (or: pip install matplotlib)"


@dataclass
class RunLog:
    """One run's records: (step, loss, lr) per logged step, and the evaluations."""
    name: str
    path: Path
    steps: list = field(default_factory=list)  # [step, ...] of the step records
    losses: list = field(default_factory=list)  # the training batch's loss at each
    lrs: list = field(default_factory=list)  # the learning rate at each
    evals: list = field(default_factory=list)  # the evaluation records (dicts with step, val_loss, ...)
    diagnostics: list = field(default_factory=list)  # the --diagnostics records ({"step", "diagnostics"})


def _keep_before(records, step):
    """Records of steps before `step`: what a restart at `step` keeps of what came before."""
    return [r for r in records if r["step"] < step]


def _kind(record):
    """"step" for a step record (step, loss, lr numbers), "eval" for an evaluation (step, val_loss),
    "diagnostics" for a --diagnostics record (step, a "diagnostics" dict), "test" for finetune --test's
    result (step, test_loss), None for anything else."""
    def number(key):
        return isinstance(record.get(key), (int, float)) and not isinstance(record.get(key), bool)

    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        return None
    if number("loss") and number("lr"):
        return "step"
    if isinstance(record.get("diagnostics"), dict):
        return "diagnostics"
    if number("test_loss"):  # finetune --test's last record: read, not drawn
        return "test"
    return "eval" if number("val_loss") else None


def read_log(run_dir, warn=None):
    """Read a run's log.jsonl into a RunLog.

    Args:
        run_dir: the run folder (`--out-dir`), or its log.jsonl itself.
        warn: called with one message naming the lines skipped, if any (default: print it on stderr).
    Raises:
        FileNotFoundError: no such folder, or no log.jsonl in it.
        ValueError: a file that is not a .jsonl log, or a log with no step or evaluation record.
    """
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder (give the --out-dir of a train or finetune run)")
    if path.is_file() and path.suffix != ".jsonl":
        raise ValueError(f"{path}: not a run folder or its log.jsonl; give the folder (--out-dir) of the run")
    log = path if path.is_file() else path / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{path}: no log.jsonl in this folder; is it a run folder? `train --out-dir {path}` "
                                "writes one")
    kinds, skipped = {"step": [], "eval": [], "diagnostics": [], "test": []}, []
    with open(log, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            kind = _kind(record)
            if kind is None:
                skipped.append(lineno)
                continue
            same_kind = kinds[kind]
            if same_kind and record["step"] <= same_kind[-1]["step"]:  # a resumed run re-did these steps
                kinds = {k: _keep_before(records, record["step"]) for k, records in kinds.items()}
            kinds[kind].append(record)
    steps, evals = kinds["step"], kinds["eval"]
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warn(f"{log}: skipped {len(skipped)} line(s) that are not step or evaluation records (line {shown}; "
             "a run killed while writing one?)")
    if not steps and not evals:
        raise ValueError(f"{log}: no step or evaluation records yet (a run writes one every --log-interval steps)")
    name = log.parent.name if log.name == "log.jsonl" else log.stem
    return RunLog(name or str(path), path, [r["step"] for r in steps], [r["loss"] for r in steps],
                  [r["lr"] for r in steps], evals, kinds["diagnostics"])


def save_figure(fig, out, dpi):
    """Write a matplotlib figure to `out` whole or not at all (files.atomic_write), in the format
    its suffix names (PNG without one), and close it; returns `out` as a Path."""
    plt = _pyplot()
    out = Path(out)
    try:
        atomic_write(out, lambda f: fig.savefig(f, format=out.suffix[1:].lower() or "png", dpi=dpi),
                     what="the picture", fix="pass another --out")
    finally:
        plt.close(fig)
    return out


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); ImportError when not installed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_runs(logs, out, log_y=False, title=None):
    """Draw the RunLogs' losses (top) and learning rates (bottom) against steps into `out`."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    has_lr = any(log.lrs for log in logs)
    fig, axes = plt.subplots(2 if has_lr else 1, 1, sharex=True, figsize=(9, 6.5 if has_lr else 5),
                             gridspec_kw={"height_ratios": [3, 1]} if has_lr else None, squeeze=False)
    ax_loss = axes[0, 0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    run_handles = []
    for i, log in enumerate(logs):
        c = colours[i % len(colours)]
        wider = 2.4 * (len(logs) - 1 - i) / max(len(logs) - 1, 1)  # earlier runs wider: coinciding runs all show
        if log.steps:
            ax_loss.plot(log.steps, log.losses, color=c, linewidth=0.8, alpha=0.45)
        evals = [e for e in log.evals if math.isfinite(e["val_loss"])]
        if evals:
            ax_loss.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], color=c, linewidth=2 + wider,
                         marker="o", markersize=4 + wider)
            with_train = [e for e in evals if "train_loss" in e]
            if with_train:
                ax_loss.plot([e["step"] for e in with_train], [e["train_loss"] for e in with_train], color=c,
                             linewidth=1.5 + wider, linestyle="--", marker="s", markersize=3 + wider)
        if has_lr:
            axes[1, 0].plot(log.steps, log.lrs, color=c, linewidth=1.2 + wider)
        best = min((e["val_loss"] for e in evals), default=None)
        run_handles.append(Line2D([], [], color=c, linewidth=2, label=log.name + (
            f" (best val {best:.3f})" if best is not None else "")))
    kinds = [Line2D([], [], color="0.3", linewidth=0.8, alpha=0.6, label="train batches"),
             Line2D([], [], color="0.3", linewidth=1.5, linestyle="--", marker="s", markersize=3,
                    label="train (evaluation)"),
             Line2D([], [], color="0.3", linewidth=2, marker="o", markersize=4, label="val (evaluation)")]
    first = ax_loss.legend(handles=run_handles, loc="upper right", title="run", fontsize=9)
    ax_loss.add_artist(first)
    ax_loss.legend(handles=kinds, loc="upper center", fontsize=9)
    ax_loss.set_ylabel("loss (cross-entropy)")
    if log_y:  # plain numbers (2, 3, 4) on the ticks, not powers of ten: a loss spans less than a decade
        from matplotlib.ticker import FormatStrFormatter

        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax_loss.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax_loss.grid(True, which="both" if log_y else "major", alpha=0.3)
    ax_loss.set_title(title or "loss against steps")
    if has_lr:
        axes[1, 0].set_ylabel("learning rate")
        axes[1, 0].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        axes[1, 0].grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)


def add_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (--out-dir of train or "
                        "finetune), each holding a log.jsonl; several are overlaid")
    parser.add_argument("--out", default=None, help="image file to write (default: loss.png; diagnostics.png "
                        "with --diagnostics)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    parser.add_argument("--title", default=None, help="title above the losses (default: 'loss against steps')")
    parser.add_argument("--diagnostics", action="store_true", help="draw the run's --diagnostics records instead: "
                        "gradient norm, update/data ratio, block output mean and std, GELU saturation, one line "
                        "per layer (one RUN_DIR)")


def run(args):
    """The `plot` command: read every run's log (errors name the folder), then draw."""
    if args.diagnostics:
        from .plot_diagnostics import run_diagnostics

        return run_diagnostics(args)
    args.out = args.out or "loss.png"
    logs = [read_log(d) for d in args.run_dirs]
    names = [log.name for log in logs]
    for log in logs:
        if names.count(log.name) > 1:  # two folders of the same name: label them by the path given
            log.name = str(log.path)
    try:
        _pyplot()
    except ImportError:
        print(f"tinygrad-lm plot: {INSTALL_HINT}", file=sys.stderr)
        return 2
    out = plot_runs(logs, args.out, log_y=args.log_y, title=args.title)
    print(f"wrote {out} ({len(logs)} run{'s' if len(logs) > 1 else ''}: {', '.join(log.name for log in logs)})")
    return 0
