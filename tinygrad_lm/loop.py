"""What both training loops do around their step (nanoGPT's train.py: `get_lr`, logging, checkpoints).

The loops themselves (`train.train`, `finetune.loop.finetune`) are plain `while` loops that show
their step; this file holds the parts they share:

    learning_rate(step, optim)   linear warmup, then cosine to min_lr (or constant at lr)
    Run(cfg.run, save, step)     the run folder, `log.jsonl`, progress lines and step timing:
      .should_evaluate(step)       every eval_interval steps, not at the step a run starts at
      .stop_if_not_finite(...)     a NaN/inf loss raises TrainingStopped before the update, so
                                   the last good checkpoint is what stays on disk
      .log_step(...)               every log_interval steps: a progress line and a log record
      .evaluated(...)              an evaluation's record; ckpt.npz, and best.npz when improved
      .interrupted(step)           Ctrl-C (KeyboardInterrupt): save ckpt.npz, say how to resume

`save(path)` is the loop's own function writing a checkpoint of its current state, so this file
knows nothing of models or data. The resumed config comes from `config.resumed`.
Leaves out: gradient accumulation, early stopping and experiment trackers (wandb).
"""
import json
import math
import time
from pathlib import Path

from .optim import cosine_warmup_lr


class TrainingStopped(RuntimeError):
    """Raised when the loss becomes NaN or infinite."""


def learning_rate(step, optim):
    """The learning rate at `step` (0 for the first update) under the OptimConfig `optim`.

    Warmup is capped at the run's length, so a short run (--max-iters 20) still works, and the
    cosine's floor at lr, so --lr below --min-lr decays to nothing rather than upwards.
    """
    warmup = min(optim.warmup_iters, optim.max_iters)
    if optim.schedule == "constant":
        return optim.lr * min(1.0, (step + 1) / (warmup + 1))
    return cosine_warmup_lr(step, optim.lr, warmup, optim.max_iters, min(optim.min_lr, optim.lr))


def _fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Run:
    """One run's folder and output: progress lines, `log.jsonl` records, step timing, checkpoints.

    Args:
        cfg: the RunConfig (out_dir, eval_interval, log_interval, quiet).
        save: save(path) writes a checkpoint of the loop's current state.
        start_step: the step the run starts (or resumes) at.
        group: the distributed.Group of a run over MPI ranks, or None. Only rank 0 writes the
            folder (logs, checkpoints) and prints; the other ranks run silently.
    """

    def __init__(self, cfg, save, start_step=0, group=None):
        self.cfg, self.start_step = cfg, start_step
        self.writer = group is None or group.rank == 0
        self.save = save if self.writer else (lambda path: None)
        self.out_dir = Path(cfg.out_dir)
        self.log_file = None
        if self.writer:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.log_file = open(self.out_dir / "log.jsonl", "a", encoding="utf-8")
        self.t_start = self.t_last = time.perf_counter()
        self.steps_timed = 0

    def print(self, message):
        if not self.cfg.quiet and self.writer:
            print(message, flush=True)

    def record(self, record):
        """Append one JSON line to log.jsonl (flushed, so a crash keeps it)."""
        if self.log_file is not None:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()

    def should_evaluate(self, step):
        return step % self.cfg.eval_interval == 0 and step != self.start_step

    def stop_if_not_finite(self, loss_value, step):
        if not math.isfinite(loss_value):
            raise TrainingStopped(f"loss became {loss_value} at step {step}; stopping. The last good checkpoint "
                                  f"({self.out_dir / 'ckpt.npz'}) is kept; try a lower --lr or --grad-clip")

    def log_step(self, step, max_iters, loss_value, lr, tokens_per_step=None):
        """Count a finished step; every log_interval steps (and at the last) print and record it.

        `step` is the number of steps done; the time per step is averaged since the last line.
        """
        self.steps_timed += 1
        if step % self.cfg.log_interval and step != max_iters:
            return
        now = time.perf_counter()
        dt = (now - self.t_last) / self.steps_timed
        self.t_last, self.steps_timed = now, 0
        record = {"step": step, "loss": loss_value, "lr": lr, "ms_per_step": dt * 1e3}
        line = f"step {step:5d}/{max_iters} | loss {loss_value:.4f} | lr {lr:.2e} | {dt * 1e3:6.1f} ms/step"
        if tokens_per_step is not None:
            record["tokens_per_s"] = tokens_per_step / dt
            line += f" | {record['tokens_per_s']:8,.0f} tok/s"
        self.record(record)
        self.print(line + f" | ETA {_fmt_time(dt * (max_iters - step))}")

    def evaluated(self, record, improved, message):
        """After an evaluation: its record, ckpt.npz, best.npz when `improved`, and a line."""
        self.record(record)
        self.save(self.out_dir / "ckpt.npz")
        if improved:
            self.save(self.out_dir / "best.npz")
        self.print(message + (" (best, saved)" if improved else ""))

    def interrupted(self, step):
        """Ctrl-C: save ckpt.npz so that `--resume` continues exactly from here."""
        self.save(self.out_dir / "ckpt.npz")
        self.print(f"\ninterrupted at step {step}: checkpoint saved to {self.out_dir / 'ckpt.npz'}; "
                   "continue with --resume")

    @property
    def seconds(self):
        return time.perf_counter() - self.t_start

    def close(self):
        if self.log_file is not None:
            self.log_file.close()


__all__ = ["Run", "TrainingStopped", "learning_rate"]
