"""What a run says when it stops or is refused is true (issue #28, item 5, the run's own messages).

A loss that turns NaN before any checkpoint was written does not claim "the last good checkpoint
is kept"; the folder it leaves is then either free for a new run (nothing was logged) or refused
with a message that says there is nothing to --resume and what to do; `--resume` of a folder
without a checkpoint says why, not "no such checkpoint file"; a NaN after a checkpoint names
it and says that --resume would keep the same --lr. The step named is the progress lines'.
In one process, with the step's loss (or the evaluation) replaced by NaN at a chosen step.
"""
import math

import pytest

from tinygrad_lm.run import train as T
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.loop import TrainingStopped
from tinygrad_lm.run.train import TrainConfig, train
from run_helpers import write_words_corpus



@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    return write_words_corpus(tmp_path / "corpus.txt")


def small_cfg(corpus, out_dir, **kw):
    values = dict(data=str(corpus), n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=8,
                  eval_interval=4, eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(out_dir))
    values.update(kw)
    return from_flat(TrainConfig, **values)


@pytest.fixture
def nan_at(monkeypatch):
    """nan_at(i): from the step of index i on (the (i+1)-th step), the step's loss is NaN."""
    def arm(index):
        calls = {"n": 0}
        real = T.train_step

        def step(*a, **k):
            loss = real(*a, **k)
            calls["n"] += 1
            return math.nan if calls["n"] > index else loss
        monkeypatch.setattr(T, "train_step", step)
    return arm


def test_nan_before_any_checkpoint_says_so_and_the_unlogged_folder_is_free(corpus, tmp_path, nan_at, monkeypatch):
    run_dir = tmp_path / "run"
    nan_at(1)
    with pytest.raises(TrainingStopped) as stopped:
        train(small_cfg(corpus, run_dir, log_interval=10))
    message = str(stopped.value)
    assert message.startswith("loss became nan in step 2; stopping:"), message  # the progress lines' "step 2"
    assert "kept" not in message and "no checkpoint was written yet" in message, message
    assert "run again" in message, message
    monkeypatch.undo()
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    assert train(small_cfg(corpus, run_dir, log_interval=10))["step"] == 8  # the same folder, no --overwrite


def test_nan_before_any_checkpoint_with_a_log_says_there_is_nothing_to_resume(corpus, tmp_path, nan_at):
    run_dir = tmp_path / "run"
    nan_at(2)
    with pytest.raises(TrainingStopped, match=r"no checkpoint was written yet.*--overwrite"):
        train(small_cfg(corpus, run_dir, log_interval=1))
    with pytest.raises(FileExistsError, match=r"run holds a run that stopped before its first checkpoint "
                                              r"\(log.jsonl\): there is nothing to --resume; start over with "
                                              r"--overwrite"):
        train(small_cfg(corpus, run_dir, log_interval=1))
    with pytest.raises(FileNotFoundError, match=r"--resume: the run in .*run stopped before its first checkpoint "
                                                r"\(it left log.jsonl, no ckpt.npz\): there is nothing to resume"):
        train(small_cfg(corpus, run_dir, log_interval=1), resume=True)


def test_resume_of_a_folder_without_a_run_says_so(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--resume: .*fresh holds no run to continue \(no ckpt.npz\); "
                                                r"drop --resume to start one there"):
        train(small_cfg(corpus, tmp_path / "fresh"), resume=True)


def test_nan_after_a_checkpoint_names_it_and_says_what_resume_would_do(corpus, tmp_path, nan_at):
    run_dir = tmp_path / "run"
    nan_at(5)
    with pytest.raises(TrainingStopped) as stopped:
        train(small_cfg(corpus, run_dir))
    message = str(stopped.value)
    assert message.startswith("loss became nan in step 6; stopping:"), message
    assert f"the last good checkpoint ({run_dir / 'ckpt.npz'}) is kept" in message, message
    assert "--resume would continue it with the same --lr" in message, message


def test_nan_in_the_first_evaluation_does_not_claim_a_checkpoint(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "estimate_loss", lambda *a, **k: {"train": math.nan, "val": math.nan})
    with pytest.raises(TrainingStopped) as stopped:
        train(small_cfg(corpus, tmp_path / "run"))
    message = str(stopped.value)
    assert message.startswith("evaluation at step 4 gave"), message
    assert "kept" not in message and "no checkpoint was written yet" in message, message


def test_resume_with_the_other_command_names_the_one_that_wrote_the_folder(corpus, tmp_path):
    import json
    from dataclasses import replace

    from tinygrad_lm.run.finetune import FinetuneConfig, finetune

    train(small_cfg(corpus, tmp_path / "pre", max_iters=4))
    rows = [{"text": f"the {w} sat", "label": w} for w in ("cat", "dog") * 8]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ft = from_flat(FinetuneConfig, ckpt=str(tmp_path / "pre" / "best.npz"), data=str(tmp_path / "d.jsonl"),
                   val=str(tmp_path / "d.jsonl"), batch_size=4, max_iters=2, eval_interval=2,
                   out_dir=str(tmp_path / "ft"), quiet=True)
    finetune(ft)
    with pytest.raises(ValueError, match=r"ft.ckpt.npz is a fine-tuned classifier's checkpoint \(written by "
                                         r"`finetune`\): continue that run with `finetune --resume"):
        train(small_cfg(corpus, tmp_path / "ft", max_iters=8), resume=True)
    with pytest.raises(ValueError, match=r"pre.ckpt.npz is a pretraining checkpoint \(written by `train`\): continue "
                                         r"that run with `train --resume"):
        finetune(replace(ft, run=replace(ft.run, out_dir=str(tmp_path / "pre"))), resume=True)
