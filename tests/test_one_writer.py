"""One writer per run folder (issue #28, item 1): a run holds an OS lock on its --out-dir.

Each case as a user meets it: a second `train` started into the folder of a run that is still
training is refused (plain, --overwrite and --resume alike), naming the folder and the holder's
PID, and the first run's files stay whole; a run killed with kill -9 leaves a lock file that
does not block the next run; a run that ends (or fails while starting) lets go of the folder
within the same Python process; over MPI the refusal ends every rank with one message.
The real runs are subprocesses of `python -m tinygrad_lm`, waited on through their files.
"""
import json
import os
import shutil
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

pytest.importorskip("fcntl", reason="no fcntl (Windows): runs take no folder lock there")
FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
         "--eval-interval", "5", "--eval-iters", "1", "--log-interval", "1", "--sample-tokens", "0", "--quiet"]
HOLD = "import sys, time; from tinygrad_lm.run.folder_lock import lock_folder; lock = lock_folder(sys.argv[1]); " \
       "print('held', flush=True); time.sleep(120)"  # a process that holds a folder's lock through the API


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    return write_words_corpus(tmp_path / "corpus.txt")


env = cli_env


def run_cli(tmp_path, *args, timeout=60):
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, env=env(tmp_path), timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "tinygrad_lm", *map(str, args)], cwd=tmp_path, env=env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, proc, timeout=60):
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def hold(tmp_path, folder):
    """A helper process holding `folder`'s lock (through the API) until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=tmp_path, env=env(tmp_path),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def logged_steps(run_dir):
    return [r["step"] for r in map(json.loads, (Path(run_dir) / "log.jsonl").read_text().splitlines()) if "loss" in r]


def ckpt_step(path):
    with np.load(path) as z:
        return json.loads(str(z["meta"]))["step"]


def test_a_second_run_into_a_folder_in_use_is_refused_whatever_its_flags(corpus, tmp_path):
    run_dir = tmp_path / "run"
    first = start(tmp_path, "train", "--data", corpus, "--out-dir", "run", *FLAGS, "--max-iters", "1000000")
    try:
        wait_for(lambda: (run_dir / "ckpt.npz").exists(), first)
        for extra in (["--overwrite"], ["--resume"], []):
            rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "run", *FLAGS, "--max-iters",
                              "1000000", *extra, timeout=30)
            assert rc == 2, (extra, out)
            assert f"run is in use by another run (PID {first.pid}" in out, out
            assert "Traceback" not in out
            assert first.poll() is None  # the first run goes on
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, out
    steps = logged_steps(run_dir)  # the first run's log, whole: every step once, in order
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 5
    assert ckpt_step(run_dir / "ckpt.npz") == steps[-1]
    assert not (run_dir / ".lock").exists()  # a run that ends removes its lock file


def test_the_lock_file_of_a_killed_run_does_not_block_the_next(corpus, tmp_path):
    run_dir = tmp_path / "run"
    first = start(tmp_path, "train", "--data", corpus, "--out-dir", "run", *FLAGS, "--max-iters", "1000000")
    try:
        wait_for(lambda: (run_dir / "ckpt.npz").exists(), first)
    finally:
        first.kill()  # kill -9: nothing of the process runs, its lock file stays
        first.wait()
    assert str(first.pid) in (run_dir / ".lock").read_text()
    step = ckpt_step(run_dir / "ckpt.npz")
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "run", *FLAGS, "--resume", "--max-iters",
                      step + 2)
    assert rc == 0, out
    assert ckpt_step(run_dir / "ckpt.npz") == step + 2


def small_cfg(corpus, out_dir, **kw):
    values = dict(data=str(corpus), n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=2,
                  eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(out_dir))
    values.update(kw)
    return from_flat(TrainConfig, **values)


def test_in_one_process_a_held_folder_is_refused_and_a_finished_or_failed_run_lets_go(corpus, tmp_path):
    from tinygrad_lm.run.folder_lock import FolderInUse, lock_folder

    run_dir = tmp_path / "run"
    with lock_folder(run_dir):
        with pytest.raises(FolderInUse, match=rf"{run_dir} is in use by another run \(PID {os.getpid()}, this "
                                              r"process"):
            train(small_cfg(corpus, run_dir))
        assert not (run_dir / "log.jsonl").exists()  # refused before anything was written
    train(small_cfg(corpus, run_dir))
    with pytest.raises(ValueError, match="--n-layer 2"):  # refused while starting, after taking the lock
        train(small_cfg(corpus, run_dir, max_iters=4, n_layer=2), resume=True)
    with lock_folder(run_dir):  # free again
        pass
    train(small_cfg(corpus, run_dir, max_iters=4), resume=True)


def test_a_failed_start_leaves_no_folder_behind(corpus, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 ".encode("latin-1") * 500)  # not UTF-8: refused when the run reads it
    with pytest.raises(ValueError, match="latin1.txt"):
        train(small_cfg(bad, tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def test_an_out_dir_that_is_a_file_is_one_true_line(corpus, tmp_path):
    (tmp_path / "taken").write_text("not a folder\n")
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "taken", *FLAGS, "--max-iters", "2")
    assert rc == 2, out
    assert "--out-dir taken is a file, not a folder" in out and "Errno" not in out, out
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ckpt.npz").write_bytes(b"")
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "run/ckpt.npz", "--resume", *FLAGS)
    assert rc == 2 and "pass --out-dir run (the checkpoint's folder)" in out, out


MPIEXEC = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
    or shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None, reason="mpiexec is not on the PATH (pip install mpich)")
def test_over_mpi_a_folder_in_use_ends_every_rank_with_one_message(corpus, tmp_path):
    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
    holder = hold(tmp_path, tmp_path / "run")
    try:
        done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "tinygrad_lm", "train", "--dist", "mpi",
                               "--data", str(corpus), "--out-dir", "run", *FLAGS, "--max-iters", "4"],
                              capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path), timeout=60)
    finally:
        holder.kill()
        holder.wait()
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert out.count(f"is in use by another run (PID {holder.pid}") == 1, out
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_finetune_takes_the_same_lock(corpus, tmp_path):
    from tinygrad_lm.run.finetune import FinetuneConfig, finetune
    from tinygrad_lm.run.folder_lock import FolderInUse, lock_folder

    train(small_cfg(corpus, tmp_path / "pre"))
    rows = [{"text": f"the {w} sat", "label": w} for w in ("cat", "dog") * 8]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = from_flat(FinetuneConfig, ckpt=str(tmp_path / "pre" / "best.npz"), data=str(tmp_path / "d.jsonl"),
                    val=str(tmp_path / "d.jsonl"), batch_size=4, max_iters=2, eval_interval=2,
                    out_dir=str(tmp_path / "ft"), quiet=True)
    with lock_folder(tmp_path / "ft"):
        with pytest.raises(FolderInUse, match=rf"ft is in use by another run \(PID {os.getpid()}"):
            finetune(cfg, overwrite=True)
    assert finetune(cfg)["step"] == 2
    assert not (tmp_path / "ft" / ".lock").exists()  # let go when finetune returned
