"""Signals and pipes (issue #28, item 4): SIGHUP saves like SIGTERM, and a closed stdout or
stderr never costs the run.

Each case is a real `python -m tinygrad_lm train` in a subprocess: SIGHUP (a closed terminal, a
dropped SSH session) stops it between two steps with a checkpoint that `--resume` continues,
exit status 129; under nohup (SIGHUP ignored) the run goes on; `train ... | head -3` finishes
its run, exit status 0, log.jsonl and the checkpoint complete; a terminal that went away (a
pty whose other end closed: writes fail with EIO) and then sent SIGHUP still gets its
checkpoint. In one process: a stdout whose writes fail does not stop `train()`.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, train
from run_helpers import cli_env, write_words_corpus

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform (Windows)")
FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
         "--eval-interval", "50", "--eval-iters", "1", "--log-interval", "1", "--sample-tokens", "0"]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    return write_words_corpus(tmp_path / "corpus.txt")


env = cli_env


def command(corpus, *args):
    return [sys.executable, "-m", "tinygrad_lm", "train", "--data", str(corpus), "--out-dir", "run", *FLAGS,
            *map(str, args)]


def logged_steps(run_dir):
    try:
        lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def ckpt_step(path):
    with np.load(path) as z:
        return json.loads(str(z["meta"]))["step"]


def wait_for_steps(run_dir, n, proc, timeout=60):
    """Until log.jsonl holds `n` step records (the process must stay alive meanwhile)."""
    end = time.monotonic() + timeout
    while len(logged_steps(run_dir)) < n:
        assert proc.poll() is None, f"the run ended with status {proc.returncode}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_sighup_stops_between_steps_with_a_checkpoint_that_resumes(corpus, tmp_path):
    proc = subprocess.Popen(command(corpus, "--max-iters", 1000000), cwd=tmp_path, env=env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_steps(tmp_path / "run", 3, proc)
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129, out
    steps = logged_steps(tmp_path / "run")
    assert "stopped by SIGHUP at step" in out, out
    assert ckpt_step(tmp_path / "run" / "ckpt.npz") == steps[-1]  # the step in flight finished and was saved
    done = subprocess.run(command(corpus, "--resume", "--max-iters", steps[-1] + 2, "--quiet"), cwd=tmp_path,
                          env=env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert logged_steps(tmp_path / "run") == list(range(1, steps[-1] + 3))


TWO_HANGUPS = r'''
import os, signal, sys
from tinygrad_lm.engine.tensor import Tensor
from tinygrad_lm.run import cli

calls = {"n": 0}
real_backward = Tensor.backward
def backward(self, *a, **k):  # the step's own backward (train_step's), once per step; not the thread slices'
    calls["n"] += sys._getframe(1).f_code.co_name == "train_step"
    if calls["n"] == 5 and not calls.get("fired"):
        calls["fired"] = True  # inside the 5th step the terminal closes: the kernel and then the shell send SIGHUP
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGHUP)
    return real_backward(self, *a, **k)
Tensor.backward = backward
sys.exit(cli.main(sys.argv[1:]))
'''


def test_a_second_sighup_does_not_tear_the_step_in_flight(corpus, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(TWO_HANGUPS, encoding="utf-8")
    done = subprocess.run([sys.executable, str(worker), *command(corpus, "--max-iters", 100)[3:]], cwd=tmp_path,
                          env=env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 129, done.stdout + done.stderr
    assert "nothing saved" not in done.stderr, done.stderr
    assert ckpt_step(tmp_path / "run" / "ckpt.npz") == 5  # the 5th step finished whole and was saved


def test_under_nohup_sighup_is_ignored_and_the_run_goes_on(corpus, tmp_path):
    proc = subprocess.Popen(command(corpus, "--max-iters", 1000000, "--quiet"), cwd=tmp_path, env=env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does
    try:
        wait_for_steps(tmp_path / "run", 3, proc)
        proc.send_signal(signal.SIGHUP)
        wait_for_steps(tmp_path / "run", len(logged_steps(tmp_path / "run")) + 5, proc)  # still training
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err


def test_a_pipe_into_head_does_not_cost_the_run(corpus, tmp_path):
    """`train ... | head -3`: head exits after three lines; the run finishes, exit status 0. The run
    prints more than a pipe's buffer (64 KiB), so its writes meet the closed pipe however late head ran."""
    train_cmd = " ".join(map(repr, command(corpus, "--max-iters", 800, "--eval-interval", 400, "--sample-tokens", 50)))
    done = subprocess.run(["bash", "-c", f"{train_cmd} | head -3; exit ${{PIPESTATUS[0]}}"], cwd=tmp_path,
                          env=env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "Broken pipe" in done.stderr, done.stderr  # said once, on stderr
    assert logged_steps(tmp_path / "run") == list(range(1, 801))  # log.jsonl keeps everything
    assert ckpt_step(tmp_path / "run" / "ckpt.npz") == 800


def test_a_terminal_that_went_away_then_sighup_still_saves(corpus, tmp_path):
    """The terminal closes: every write to it fails (EIO), then SIGHUP comes."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(command(corpus, "--max-iters", 1000000), cwd=tmp_path, env=env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        wait_for_steps(tmp_path / "run", 3, proc)
        os.close(master)  # the terminal is gone: writes to the run's stdout and stderr now fail with EIO
        # printing fails from here on; training goes on
        wait_for_steps(tmp_path / "run", len(logged_steps(tmp_path / "run")) + 5, proc)
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129
    assert ckpt_step(tmp_path / "run" / "ckpt.npz") == logged_steps(tmp_path / "run")[-1]


class ClosedPipe:
    """A stdout whose reader has gone: every write fails as a closed pipe's does."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_in_one_process_a_failing_stdout_does_not_stop_train(corpus, tmp_path, monkeypatch):
    closed = ClosedPipe()
    monkeypatch.setattr(sys, "stdout", closed)
    cfg = from_flat(TrainConfig, data=str(corpus), n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4,
                    max_iters=6, eval_interval=3, eval_iters=1, log_interval=1, sample_tokens=0,
                    out_dir=str(tmp_path / "run"))
    result = train(cfg)
    assert result["step"] == 6 and not result["interrupted"]
    assert logged_steps(tmp_path / "run") == list(range(1, 7))
    assert sys.stdout is closed  # given back as it was
