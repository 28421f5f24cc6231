"""log.jsonl is whole, and says each step once (issue #28, item 2): run/log_file.py and loop.Run.

Reproduced: a run stopped between two checkpoints (as a kill stops it: nothing saved after its
last checkpoint) and resumed logs each step once, exactly the records of the run never stopped;
a torn last line (a kill or a full disk in the middle of a record) is cut before the resumed run
appends; a full disk while a record is written stops the run with one message naming log.jsonl
and what was kept, and leaves no part of a record; a checkpoint that cannot be written says which
checkpoint the run still has (or that it has none yet), not a --resume that cannot work.
"""
import errno
import json
import random

import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run import cli, plot
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.loop import Run
from tinygrad_lm.run.train import TrainConfig, train

from full_disk import disk_full  # noqa: F401  (tests/full_disk.py: the fixture)

WORDS = "the cat sat on a mat while the dog ran to the log and nobody saw them go".split()
TEXT = " ".join(random.Random(0).choice(WORDS) for _ in range(1500)) + "\n"
FLAGS = dict(n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=12, eval_interval=4,
             eval_iters=1, log_interval=1, sample_tokens=0, quiet=True)

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def cfg(text_file, out_dir, **kw):
    return from_flat(TrainConfig, data=str(text_file), out_dir=str(out_dir), **{**FLAGS, **kw})


def lines(run_dir):
    return (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()


def records(run_dir):
    """(kind, step) of every line of the run's log; a line that is not JSON fails the test."""
    return [(plot._kind(r), r["step"]) for r in map(json.loads, lines(run_dir))]


class Killed(BaseException):
    """Ends a run where a kill would: no checkpoint after the last one written."""


def stopped_after(monkeypatch, step):
    """From now on, a run dies right after logging `step` (past its checkpoint of step 4)."""
    real = Run.log_step

    def log_step(self, done, *args, **kwargs):
        real(self, done, *args, **kwargs)
        if done == step:
            raise Killed

    monkeypatch.setattr(Run, "log_step", log_step)


@pytest.fixture
def whole(text_file, tmp_path):
    train(cfg(text_file, tmp_path / "whole"))
    return records(tmp_path / "whole")


def test_a_run_resumed_after_a_kill_logs_each_step_once(text_file, tmp_path, monkeypatch, whole):
    run_dir = tmp_path / "cut"
    with monkeypatch.context() as m:
        stopped_after(m, 6)
        with pytest.raises(Killed):
            train(cfg(text_file, run_dir))
    assert checkpoint.load(run_dir / "ckpt.npz")[0]["step"] == 4 and ("step", 6) in records(run_dir)
    train(cfg(text_file, run_dir), resume=True)
    assert records(run_dir) == whole  # steps 5 and 6 once, as redone; nothing missing


def test_a_torn_last_line_is_cut_before_the_resumed_run_appends(text_file, tmp_path, monkeypatch, whole):
    run_dir = tmp_path / "cut"
    with monkeypatch.context() as m:
        stopped_after(m, 6)
        with pytest.raises(Killed):
            train(cfg(text_file, run_dir))
    with open(run_dir / "log.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 7, "loss": 3.1')  # killed in the middle of writing step 7's record
    train(cfg(text_file, run_dir), resume=True)
    assert records(run_dir) == whole


def test_a_full_disk_while_logging_names_the_log_and_leaves_no_part_of_a_record(text_file, tmp_path, disk_full,
                                                                               capsys):
    run_dir = tmp_path / "run"
    train(cfg(text_file, run_dir), stop_at=4)  # ckpt.npz at step 4, as a Ctrl-C leaves it
    before = (run_dir / "log.jsonl").read_bytes()
    disk_full()
    rc = cli.main(["train", "--data", str(text_file), "--out-dir", str(run_dir), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    log = run_dir / "log.jsonl"
    assert f"{log}: could not write the run log (No space left on device)" in err, err
    assert f"{run_dir / 'ckpt.npz'} (step 4)" in err and "--resume" in err, err
    assert (run_dir / "log.jsonl").read_bytes() == before  # the half record written is cut off again
    assert checkpoint.load(run_dir / "ckpt.npz")[0]["step"] == 4


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_that_cannot_be_written_at_the_first_evaluation_does_not_offer_resume(text_file, tmp_path,
                                                                                           monkeypatch, capsys):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(checkpoint.np, "savez", _no_space)
    rc = cli.main(["train", "--data", str(text_file), "--out-dir", str(run_dir), "--quiet", "--max-iters", "4",
                   "--eval-interval", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{run_dir / 'best.npz'}: could not write the checkpoint (No space left on device)" in err, err
    assert "no checkpoint of this run was written yet" in err and "--resume" not in err, err


def test_a_checkpoint_that_cannot_be_written_later_names_the_one_kept(text_file, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    train(cfg(text_file, run_dir, max_iters=8), stop_at=5)
    monkeypatch.setattr(checkpoint.np, "savez", _no_space)
    rc = cli.main(["train", "--data", str(text_file), "--out-dir", str(run_dir), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "could not write the checkpoint (No space left on device)" in err, err
    assert f"the run's last checkpoint is {run_dir / 'ckpt.npz'} (step 5)" in err, err
    assert "continue from it with --resume" in err, err


@pytest.mark.parametrize("tail", [8, 40, 1 << 20])  # bytes read from the end first (log_file.TAIL)
def test_open_log_cuts_after_the_last_record_of_the_resume_step(tmp_path, monkeypatch, tail):
    from tinygrad_lm.run import log_file

    monkeypatch.setattr(log_file, "TAIL", tail)
    log = tmp_path / "log.jsonl"
    kept = [{"step": 0, "val_loss": 4.0}, {"step": 1, "loss": 3.0, "lr": 0.1}, "not json, kept: before the cut",
            {"step": 2, "loss": 2.9, "lr": 0.1}, {"step": 2, "diagnostics": {}}]
    dropped = [{"step": 3, "loss": 2.8, "lr": 0.1}, "garbage after the cut", {"step": 4, "loss": 2.7, "lr": 0.1}]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in kept + dropped]
    log.write_text("\n".join(lines) + '\n{"step": 5, "lo', encoding="utf-8")
    f = log_file.open_log(log, 2)
    f.write(json.dumps({"step": 3, "loss": 1.0, "lr": 0.1}) + "\n")
    f.close()
    assert log.read_text(encoding="utf-8").splitlines() == lines[:len(kept)] + ['{"step": 3, "loss": 1.0, "lr": 0.1}']
    f = log_file.open_log(log, 0)  # nothing after step 0 survives; before it, everything
    f.close()
    assert log.read_text(encoding="utf-8").splitlines() == lines[:1]
