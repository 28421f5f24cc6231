"""`sample`: several samples under headers, the prompt from a file (--start), prompt characters
outside a char-level vocabulary (error naming them, or --unknown-chars drop), and the errors of
`sample` and `finetune` for a folder or a file that is no checkpoint (checkpoint.load)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sample")
    (tmp / "corpus.txt").write_text(TEXT, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGRAD_LM_CACHE", str(tmp / "cache"))
        train(from_flat(TrainConfig, data=str(tmp / "corpus.txt"), block_size=8, n_layer=1, n_head=2, n_embd=16,
                        batch_size=2, max_iters=2, eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True,
                        out_dir=str(tmp / "run")))
    return tmp / "run"


def cli(cwd, *args):
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(Path(cwd) / "cache"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_num_samples_prints_each_under_its_header_and_differs(run_dir, tmp_path):
    rc, out, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--num-samples", "3", "--seed", "1",
                       "--max-new-tokens", "30", "--prompt", "Speak")
    assert rc == 0, err
    parts = out.split("---- sample ")
    assert parts[0] == "" and [p.split(" ----")[0] for p in parts[1:]] == ["1/3", "2/3", "3/3"]
    texts = [p.split(" ----\n", 1)[1] for p in parts[1:]]
    assert all(t.startswith("Speak") for t in texts) and len(set(texts)) == 3  # independent samples
    rc, one, _ = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--seed", "1", "--max-new-tokens", "30",
                     "--prompt", "Speak")
    assert "---- sample" not in one and one == texts[0]  # one sample: no header, the first of the three


def test_start_reads_the_prompt_from_a_file(run_dir, tmp_path):
    (tmp_path / "prompt.txt").write_text("All:\nSpeak", encoding="utf-8")
    rc, out, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--start", "prompt.txt", "--seed", "0",
                       "--max-new-tokens", "5")
    assert rc == 0, err
    assert out.startswith("All:\nSpeak") and len(out.rstrip("\n")) >= len("All:\nSpeak")
    rc, _, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--start", "nope.txt")
    assert rc == 2 and "nope.txt: no such file" in err
    rc, _, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--start", "prompt.txt", "--prompt", "x")
    assert rc == 2 and "not allowed with argument" in err


def test_prompt_characters_outside_a_char_vocabulary(run_dir, tmp_path):
    rc, out, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--prompt", "Speak, Zoë!", "--seed", "0",
                       "--max-new-tokens", "3")
    assert rc == 2
    assert "--prompt: 3 character(s) are not in this char-level vocabulary: '!' 'Z' 'ë'" in err
    assert "--unknown-chars drop" in err and "Traceback" not in err
    rc, out, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", "--prompt", "Speak, Zoë!", "--seed", "0",
                       "--max-new-tokens", "3", "--unknown-chars", "drop")
    assert rc == 0, err
    assert "dropped 3 prompt character(s) outside the vocabulary: '!' 'Z' 'ë'" in err
    assert out.startswith("Speak, o")


@pytest.mark.parametrize("command", ["sample", "finetune"])
def test_a_folder_or_a_log_instead_of_a_checkpoint_says_which_file_to_pass(run_dir, tmp_path, command):
    extra = ["--data", "x.jsonl"] if command == "finetune" else []
    rc, _, err = cli(tmp_path, command, "--ckpt", run_dir, *extra)
    assert rc == 2 and f"{run_dir} is a folder; pass the checkpoint file in it: {run_dir / 'best.npz'} or " \
                       f"{run_dir / 'ckpt.npz'}" in err, err
    rc, _, err = cli(tmp_path, command, "--ckpt", run_dir / "log.jsonl", *extra)
    assert rc == 2 and f"{run_dir / 'log.jsonl'} is not a checkpoint" in err and "(the run log)" in err, err
    assert f"pass a checkpoint such as {run_dir / 'best.npz'}" in err
    rc, _, err = cli(tmp_path, command, "--ckpt", tmp_path, *extra)
    assert rc == 2 and f"{tmp_path} is a folder with no checkpoint in it" in err, err


def test_a_missing_checkpoint_lists_the_ones_beside_it(run_dir):
    with pytest.raises(FileNotFoundError, match=r"final.npz: no such checkpoint file; pass .*best.npz or .*ckpt.npz"):
        checkpoint.load(run_dir / "final.npz")


@pytest.mark.parametrize("args, message", [(["--max-new-tokens", "-5"], "-5 is too small: use 0 or more"),
                                           (["--num-samples", "0"], "0 is too small: use 1 or more"),
                                           (["--top-k", "x"], "'x' is not an integer")])
def test_sample_counts_are_checked(run_dir, tmp_path, args, message):
    rc, _, err = cli(tmp_path, "sample", "--ckpt", run_dir / "best.npz", *args)
    assert rc == 2 and message in err, err


def test_sampling_from_a_classifier_checkpoint_says_what_it_is(run_dir, tmp_path, monkeypatch):
    import json

    from tinygrad_lm.run.finetune import FinetuneConfig, finetune

    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    rows = [{"text": t, "label": lab} for t, lab in [("Speak, speak.", "a"), ("hear me", "b")] * 6]
    (tmp_path / "ft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    finetune(from_flat(FinetuneConfig, ckpt=str(run_dir / "best.npz"), data=str(tmp_path / "ft.jsonl"), max_iters=1,
                       eval_interval=1, quiet=True, out_dir=str(tmp_path / "ft")))
    rc, _, err = cli(tmp_path, "sample", "--ckpt", tmp_path / "ft" / "best.npz")
    assert rc == 2 and "best.npz is a fine-tuned classifier (written by `finetune`), not a language model" in err, err
