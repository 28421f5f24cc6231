"""What both training loops do around their step (nanoGPT's train.py: `get_lr`, logging, checkpoints).

The loops themselves (`train.train`, `finetune.finetune`) are plain `while` loops around one
call of `train_step` (below: forward, backward, clip, update, with gradient accumulation as a
plain loop around forward and backward); this file holds that step and what the loops share
around it:

    learning_rate(step, optim)   linear warmup, then cosine to min_lr (or constant at lr)
    Run(cfg.run, save, step)     the run folder, `log.jsonl`, progress lines and step timing:
      .should_evaluate(step)       every eval_interval steps, not at a step already evaluated
      .stop_if_not_finite(...)     a NaN/inf loss raises TrainingStopped, so the last good
                                   checkpoint is what stays on disk
      .log_step(...)               every log_interval steps: a progress line and a log record;
                                   ms/step leaves evaluations out, and the ETA is the steps left
                                   at a smoothed step time plus the evaluations left
      .evaluated(...)              an evaluation's record; best.npz when improved, then ckpt.npz
      .should_stop(step)           after a step: Ctrl-C, SIGTERM or SIGHUP came (or stop_at was reached)
      .interrupted(step)           save ckpt.npz, say how to resume (nothing, after a second Ctrl-C)
      .close()                     give back the signal handlers, stdout and stderr, and the folder's lock
    claim_folder(out_dir, ...)   before anything else: lock the folder (folder_lock.py), refuse to
                                 lose a previous run in it, check that --resume has a checkpoint

Nothing is lost and nothing saved is half-done:
  * One run at a time writes a folder: `claim_folder` takes the folder's lock (folder_lock.py)
    before it deletes (--overwrite) or reads (--resume) anything, and `Run.close` lets go. A
    second run into it is refused, whatever its flags, naming the holder's PID.
  * Ctrl-C (SIGINT), SIGTERM (what `timeout` and schedulers send) and SIGHUP (a closed terminal,
    a dropped SSH session) only set a flag; the loop looks at it between steps, so the step in
    flight finishes whole and the checkpoint written is exactly resumable. A second Ctrl-C or
    SIGTERM stops at once and saves nothing (the step in flight is torn), leaving the last
    checkpoint; a second SIGHUP is ignored (a closing terminal sends two). The exit
    status is then 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP), as shells report them. Under
    `nohup` (SIGHUP ignored) SIGHUP stays ignored.
  * A closed stdout or stderr (`train ... | head`, a terminal that went away) stops the printing,
    not the run (streams.py): log.jsonl and the checkpoints go on.
  * best.npz is written before ckpt.npz, so the best loss ckpt.npz records is always best.npz's.
  * An evaluation whose loss is NaN stops the run before anything is saved over the last good
    checkpoint (TrainingStopped); the message says whether there is one. A run stopped before
    its first checkpoint leaves nothing to resume: an empty log.jsonl is no run (the folder is
    free again), one with records is refused until --overwrite, with a message saying so.
  * A run folder left with temporary files by a killed write is cleaned when the next run
    starts (`files.remove_stale_temporaries`).
  * log.jsonl holds each step once, whole (log_file.py): a resumed run first drops the records
    of the steps it redoes and a torn last line; a record that cannot be written (a full disk)
    is cut off and ends the run with an error naming the file. A checkpoint that cannot be
    written says which checkpoint the run still has (`Run.kept`).

`save(path, step)` is the loop's own function writing a checkpoint of its state, so this file
knows nothing of models or data. The resumed config comes from `config.resumed`.
Leaves out: early stopping and experiment trackers (wandb).
"""
import json
import math
import signal
import sys
import time
from pathlib import Path

from . import streams
from .folder_lock import FolderLock, lock_folder
from ..files import os_error, remove_stale_temporaries
from ..optim import clip_grad_norm_, cosine_warmup_lr
from .log_file import close_log, open_log

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report
if hasattr(signal, "SIGHUP"):  # not on Windows
    EXIT_CODES[signal.SIGHUP] = 129
ETA_HORIZON = 100  # steps: the smoothed step time forgets a step's weight by a factor e over about this many


def train_step(model, optimizer, micro_batches, grad_clip=0.0, dist=None):
    """One optimisation step, shared by pretraining, masked-LM pretraining and fine-tuning.

    Args:
        model: called as `model(**batch)`, returns (logits, mean loss over the batch's targets).
        micro_batches: (batch, weight) pairs: the step's batch in K micro-batches, each weighted by
            its share of the targets (`data.micro_batches`); one pair (weight 1) is the plain step.
        grad_clip: clip the gradients' global norm to this (0: no clipping).
        dist: the MPI group when the batch is split over processes, else None.
    Returns:
        the step's mean loss, a Python float.
    """
    optimizer.zero_grad()
    step_loss = 0.0
    for batch, weight in micro_batches:  # gradient accumulation: each backward() adds into .grad
        logits, loss = model(**batch)  # forward: e.g. (B, T, V) logits and the mean cross-entropy
        (loss * weight).backward()  # backward: this micro-batch's share of every parameter's .grad
        step_loss += weight * loss.item()
    if dist:
        dist.all_reduce_grads(model)  # sum the processes' gradients: the whole batch's gradient
    if grad_clip > 0:
        clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()  # AdamW: the update
    return step_loss


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


RUN_FILES = ("ckpt.npz", "best.npz", "log.jsonl")


def claim_folder(out_dir, resume=False, overwrite=False, group=None):
    """Take `out_dir` for one run: lock it, then make sure starting the run there loses nothing.

    First the folder's lock (folder_lock.py; FolderInUse while another run holds it, whatever the
    flags). Then a fresh run (not `resume`) in a folder holding a run's files is refused with an
    error that says how to continue it (--resume) or start over (--overwrite); with `overwrite`,
    those files are deleted. An empty log.jsonl is no run. `resume` needs a ckpt.npz. Over MPI
    (`group`), rank 0 alone locks, checks and deletes, and every rank raises its error.

    Returns:
        the FolderLock (on the other ranks one that holds nothing), for the run to release when it
        ends: `Run(..., lock=lock)` does in close(), or use it as a `with` block.
    """
    check_out_dir(out_dir)  # a file where the folder should be: refused before anything is made
    lock, error = FolderLock(out_dir), None
    if group is None or group.rank == 0:
        try:
            lock = lock_folder(out_dir)
            _check_folder(Path(out_dir), resume, overwrite)
        except (OSError, ValueError, RuntimeError) as e:
            lock.release()
            error = e
    if group is not None and group.size > 1:
        error = group.comm.bcast(error, root=0)  # every rank raises rank 0's error: none is left waiting
    if error is not None:
        raise error
    return lock


def _holds(path):
    """Whether a run file is there (an empty log.jsonl, of a run that logged nothing, is not)."""
    return path.is_file() and (path.name != "log.jsonl" or path.stat().st_size > 0)


def _check_folder(folder, resume, overwrite):
    found = [name for name in RUN_FILES if _holds(folder / name)]
    if resume and "ckpt.npz" not in found:
        if found:
            raise FileNotFoundError(f"--resume: the run in {folder} stopped before its first checkpoint (it left "
                                    f"{', '.join(found)}, no ckpt.npz): there is nothing to resume; start over "
                                    "without --resume, with --overwrite (deletes them), or choose another --out-dir")
        raise FileNotFoundError(f"--resume: {folder} holds no run to continue (no ckpt.npz); drop --resume to start "
                                "one there")
    if resume:
        return
    if found and not overwrite:
        if "ckpt.npz" in found:
            raise FileExistsError(f"{folder} holds a previous run ({', '.join(found)}); continue it with --resume, "
                                  "start over with --overwrite (deletes them), or choose another --out-dir")
        raise FileExistsError(f"{folder} holds a run that stopped before its first checkpoint ({', '.join(found)}): "
                              "there is nothing to --resume; start over with --overwrite (deletes them), or choose "
                              "another --out-dir")
    if overwrite:
        for name in RUN_FILES:
            if (folder / name).is_file():
                (folder / name).unlink()


def resuming(out_dir, step, max_iters):
    """The line a resumed run starts with: where and at which step, or that nothing is left."""
    done = ": nothing left to train; give a larger --max-iters to train on" if step >= max_iters else ""
    return f"resuming {out_dir} at step {step} of {max_iters}{done}"


def check_out_dir(out_dir):
    """Refuse, before any work, an --out-dir that is a file or lies inside one (the folder could
    never be made: mkdir's "[Errno 17] File exists" came only after the data was read)."""
    folder = Path(out_dir)
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            where = "" if place == folder else f": {place}"
            checkpoint = place == folder and folder.suffix == ".npz"  # --out-dir run/ckpt.npz: meant run
            fix = f"pass --out-dir {folder.parent} (the checkpoint's folder)" if checkpoint else "choose another --out-dir"
            raise FileExistsError(f"--out-dir {folder}{where} is a file, not a folder; {fix}")
        if place.is_dir():
            break


def _fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Run:
    """One run's folder and output: progress lines, `log.jsonl` records, step timing, checkpoints.

    Args:
        cfg: the RunConfig (out_dir, eval_interval, log_interval, quiet).
        save: save(path, step) writes a checkpoint of the loop's state after `step` steps.
        start_step: the step the run starts (or resumes) at.
        evaluated_step: the last step whose evaluation ran (a resumed run's checkpoint records
            it); None: the start step. A run stopped just before a due evaluation resumes with it.
        group: the distributed.Group of a run over MPI ranks, or None. Only rank 0 writes the
            folder (logs, checkpoints) and prints; the other ranks run silently, unless the
            RunConfig's all_ranks_print asks them to print too.
        lock: the folder's lock (`claim_folder`), released by close(); None: none to release.
    From here to close(), a closed stdout or stderr stops the printing, not the run (streams.py).
    """

    def __init__(self, cfg, save, start_step=0, group=None, evaluated_step=None, lock=None):
        self.cfg, self.group, self.lock = cfg, group, lock
        self._streams = streams.guard()  # given back by close()
        # the last step evaluated (its checkpoint says; a fresh run: none before its start)
        self.evaluated_step = start_step if evaluated_step is None else evaluated_step
        self.writer = group is None or group.rank == 0
        self.save = self._saving(save) if self.writer else (lambda path, step: None)
        self.out_dir = Path(cfg.out_dir)
        self.log_file = None
        self.saved_step = None  # the step ckpt.npz holds, once this run has one (a resumed run: its start)
        if self.writer:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out_dir)
            # a torn last line cut, and the steps after start_step that a stopped run had logged dropped
            self.log_file = open_log(self.out_dir / "log.jsonl", start_step)
            self.saved_step = start_step if (self.out_dir / "ckpt.npz").is_file() else None
        self.t_start = self.t_last = time.perf_counter()
        self.steps_timed = 0
        self.step_time = None  # seconds per step, smoothed over about ETA_HORIZON steps (the ETA's rate)
        self.eval_began, self.eval_seconds, self.evals, self.eval_since_line = None, 0.0, 0, 0.0
        self.stop_signal = None  # SIGINT, SIGTERM or SIGHUP, once one asked the run to stop
        self.torn = False  # a second signal stopped the run in the middle of a step
        self._old_handlers = {}
        self.on_close = []  # called by close(), however the loop ends (diagnostics.py detaches its hooks)
        for sig in EXIT_CODES:
            if sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # nohup: the user asked the run to outlive the terminal
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # called away from the program's main flow, where Python allows no handler
                break

    def _saving(self, save):
        """`save` that notes the step of each ckpt.npz written and, when a checkpoint cannot be
        written (a full disk), says in the error which checkpoint the run still has."""
        def save_or_say(path, step):
            try:
                save(path, step)
            except OSError as e:
                raise os_error(e.errno, f"{e}; {self.kept()}") from None
            if Path(path).name == "ckpt.npz":
                self.saved_step = step
        return save_or_say

    def kept(self):
        """What the run has on disk to continue from, in words for an error message."""
        if self.saved_step is None:
            return "no checkpoint of this run was written yet"
        return (f"the run's last checkpoint is {self.out_dir / 'ckpt.npz'} (step {self.saved_step}): continue from it "
                "with --resume")

    def _on_signal(self, signum, frame):
        if self.stop_signal is not None and signum == getattr(signal, "SIGHUP", None):
            return  # a closing terminal sends it twice (the kernel, then the shell): no one asks to hurry
        if self.stop_signal is not None:  # the second one: stop now, in the middle of the step
            self.torn = True
            raise KeyboardInterrupt
        self.stop_signal = signum  # no printing here: the interrupted code may be inside a print
        if self.group is not None:  # rides in the next gradient Allreduce to every rank
            self.group.stop_requested = True

    def should_stop(self, step, stop_at=None):
        """True when the loop should stop before its next step: `stop_at` (tests) was reached,
        or a signal came (over MPI: to any rank; all ranks learn it in the same step)."""
        signalled = self.group.stopping if self.group is not None else self.stop_signal is not None
        return signalled or (stop_at is not None and step >= stop_at)

    @property
    def exit_code(self):
        """130, 143 or 129 after SIGINT, SIGTERM or SIGHUP (the shell's convention), else 0."""
        return EXIT_CODES.get(self.stop_signal, 0)

    def print(self, message):
        """Print on the writer; over MPI on every rank too when asked (all_ranks_print), labelled."""
        if not self.cfg.quiet and (self.writer or getattr(self.cfg, "all_ranks_print", False)):
            print(message if self.writer else f"[rank {self.group.rank}] {message.lstrip()}", flush=True)

    def record(self, record):
        """Append one JSON line to log.jsonl (flushed, so a crash keeps it)."""
        if self.log_file is not None:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()

    def should_evaluate(self, step):
        """True every eval_interval steps, unless that step was evaluated already (a run resumed from
        an evaluation's checkpoint); the time until `evaluated` counts as evaluation, not steps."""
        due = step % self.cfg.eval_interval == 0 and step != self.evaluated_step
        if due:
            self.eval_began = time.perf_counter()
        return due

    def stop_if_not_finite(self, loss_value, step):
        if not math.isfinite(loss_value):
            raise TrainingStopped(f"loss became {loss_value} in step {step + 1}; stopping: {self._left_behind()}")

    def log_step(self, step, max_iters, loss_value, lr, tokens_per_step=None):
        """Count a finished step; every log_interval steps (and at the last) print and record it.

        `step` is the number of steps done; the time per step is averaged since the last line,
        evaluations left out.
        """
        self.steps_timed += 1
        if step % self.cfg.log_interval and step != max_iters:
            return
        now = time.perf_counter()
        dt = (now - self.t_last - self.eval_since_line) / self.steps_timed
        eta = self._eta(dt, self.steps_timed, step, max_iters)
        self.t_last, self.steps_timed, self.eval_since_line = now, 0, 0.0
        record = {"step": step, "loss": loss_value, "lr": lr, "ms_per_step": dt * 1e3}
        line = f"step {step:5d}/{max_iters} | loss {loss_value:.4f} | lr {lr:.2e} | {dt * 1e3:6.1f} ms/step"
        if tokens_per_step is not None:
            record["tokens_per_s"] = tokens_per_step / dt
            line += f" | {record['tokens_per_s']:8,.0f} tok/s"
        self.record(record)
        self.print(line + f" | ETA {_fmt_time(eta)}")

    def _eta(self, dt, steps, step, max_iters):
        """Seconds left: the steps left at the smoothed step time, plus the evaluations left (every
        eval_interval steps and one at the end) at their mean time so far.

        The step time is an exponential moving average of the lines' `dt`, each of `steps` steps,
        with a horizon of ETA_HORIZON steps: one step k times slower than the others (a busy moment
        of the machine) raises it by about (k - 1) / ETA_HORIZON, and a lasting change takes over
        within a few hundred steps.
        """
        weight = 1 - (1 - 1 / ETA_HORIZON) ** steps
        self.step_time = dt if self.step_time is None else self.step_time + weight * (dt - self.step_time)
        every = self.cfg.eval_interval
        evals_left = (max_iters - 1) // every - (step - 1) // every + 1
        return self.step_time * (max_iters - step) + evals_left * (self.eval_seconds / max(self.evals, 1))

    def evaluated(self, record, improved, message):
        """After an evaluation: its record, best.npz when `improved`, then ckpt.npz, and a line.

        best.npz goes first: ckpt.npz records the best loss, and must never name a best.npz that
        a kill between the two writes left unwritten. A NaN loss saves nothing and stops the run.
        """
        losses = {k: v for k, v in record.items() if k.endswith("loss")}
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingStopped(f"evaluation at step {record['step']} gave {losses}; stopping without saving: "
                                  f"{self._left_behind()}")
        self.record(record)
        self.evaluated_step = record["step"]  # the checkpoints below record it: a resumed run does not redo it
        if improved:
            self.save(self.out_dir / "best.npz", record["step"])
        self.save(self.out_dir / "ckpt.npz", record["step"])
        self.print(message + (" (best, saved)" if improved and self.writer else ""))
        if self.eval_began is not None:  # timed from should_evaluate: its time is not the steps'
            spent, self.eval_began = time.perf_counter() - self.eval_began, None
            self.eval_seconds, self.evals, self.eval_since_line = (self.eval_seconds + spent, self.evals + 1,
                                                                   self.eval_since_line + spent)

    def _left_behind(self):
        """After a NaN stop: what the folder holds to go on from, and what to do next."""
        ckpt, log = self.out_dir / "ckpt.npz", self.out_dir / "log.jsonl"
        if ckpt.exists():
            return (f"the last good checkpoint ({ckpt}) is kept, but --resume would continue it with the same --lr; "
                    "to train with a lower --lr, start over with --overwrite or choose another --out-dir")
        if log.exists() and log.stat().st_size:
            return ("no checkpoint was written yet, so there is nothing to resume; start over with a lower --lr, "
                    f"adding --overwrite (it deletes {log}, which has records) or choosing another --out-dir")
        return ("no checkpoint was written yet, so there is nothing to resume; run again with a lower --lr "
                "(this --out-dir holds nothing that needs --overwrite)")

    def interrupted(self, step):
        """Stopped between steps: save ckpt.npz so that `--resume` continues exactly from here.
        Stopped by a second Ctrl-C in the middle of a step: save nothing (over MPI: end every rank)."""
        last = self.out_dir / "ckpt.npz"
        if self.torn:
            kept = f"the last checkpoint is {last}" if last.exists() else \
                "no checkpoint was written yet (nothing to resume)"
            if self.group is not None:
                self.group.abort(f"interrupted twice: every rank stopped at once, in the middle of step {step + 1}: "
                                 f"nothing saved; {kept}", 130)
            if self.writer:  # on stderr even with --quiet: the user must know nothing was saved
                print(f"\ninterrupted twice, in the middle of step {step + 1}: nothing saved; {kept}",
                      file=sys.stderr, flush=True)
            return
        self.save(last, step)
        why = f" by {signal.Signals(self.stop_signal).name}" if self.stop_signal else ""
        self.print(f"\nstopped{why} at step {step}: checkpoint saved to {last}; continue with the same command and "
                   f"--resume (--out-dir {self.out_dir})")

    @property
    def seconds(self):
        return time.perf_counter() - self.t_start

    def close(self):
        """Run `on_close`, give the signals their previous handlers, close log.jsonl, then give
        sys.stdout and sys.stderr their streams and release the folder's lock (the last: everything
        is written, also when closing the log raises).

        Closing the log comes after the handlers: when the run ends because a record could not be
        written (a full disk), the part of it written is cut off and the error is raised again,
        naming the file and what the run still has (log_file.close_log)."""
        for fn in self.on_close:
            fn()
        self.on_close = []
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}
        try:
            if self.log_file is not None:
                log, self.log_file = self.log_file, None
                close_log(log, self.out_dir / "log.jsonl", sys.exc_info()[1], self.kept())
        finally:
            streams.restore(self._streams)
            self._streams = []
            if self.lock is not None:
                self.lock.release()
                self.lock = None


__all__ = ["Run", "TrainingStopped", "check_out_dir", "claim_folder", "resuming", "learning_rate", "train_step"]
