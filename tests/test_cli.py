"""The command line, run as users run it: in a subprocess."""
import os
import re
import subprocess
import sys

import pytest


def run(args, tmp_path, check=True):
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "tinygrad_lm", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_train_20_steps_on_the_builtin_corpus_then_sample(tmp_path):
    out = tmp_path / "run"
    proc = run(["train", "--max-iters", "20", "--eval-interval", "10", "--eval-iters", "2", "--log-interval", "10",
                "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "32", "--batch-size", "4",
                "--sample-tokens", "30", "--out-dir", str(out)], tmp_path)
    assert "step    20/20" in proc.stdout and "fast path" in proc.stdout
    assert "val loss" in proc.stdout and "---- sample ----" in proc.stdout
    assert (out / "ckpt.npz").exists() and (out / "best.npz").exists()
    proc = run(["sample", "--ckpt", str(out / "best.npz"), "--prompt", "Return the", "--max-new-tokens", "25",
                "--seed", "1"], tmp_path)
    assert proc.stdout.startswith("Return the")
    again = run(["sample", "--ckpt", str(out / "best.npz"), "--prompt", "Return the", "--max-new-tokens", "25",
                 "--seed", "1"], tmp_path)
    assert again.stdout == proc.stdout


@pytest.mark.parametrize("command", ["train", "sample", "tokenize", "bench", "finetune"])
def test_help_lists_every_option(command, tmp_path):
    proc = run([command, "--help"], tmp_path)
    assert "usage:" in proc.stdout
    if command == "train":
        for flag in ["--data", "--tokenizer", "--n-layer", "--lr", "--resume", "--device", "--out-dir", "--grad-clip"]:
            assert flag in proc.stdout
    if command in ("train", "finetune"):  # every setting of the (nested) config, each with its default
        from tinygrad_lm.config import flat_fields
        from tinygrad_lm.finetune import FinetuneConfig
        from tinygrad_lm.train import TrainConfig

        text = " ".join(proc.stdout.split("options:", 1)[1].split())  # the table (argparse wraps its lines)
        for name, _, default, _ in flat_fields(TrainConfig if command == "train" else FinetuneConfig):
            flag = "--" + name.replace("_", "-")  # its entry: the flag, its metavar or choices, help, default
            entry = re.search(flag + r"(?: [A-Z0-9_]+| \{[^}]*\}|, --no-" + flag[2:] + r") .*?\(default: (.*?)\)", text)
            assert entry and entry.group(1) == str(default), name
        assert "--reference" in text and "--threads" in text and "(default: 1)" in text


def test_user_errors_print_one_line_and_exit_2(tmp_path):
    proc = run(["train", "--data", str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path / "r")], tmp_path,
               check=False)
    assert proc.returncode == 2
    assert "missing.txt" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(["sample", "--ckpt", str(tmp_path / "nope.npz")], tmp_path, check=False)
    assert proc.returncode == 2 and "nope.npz" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(["train", "--reference", "--threads", "2", "--out-dir", str(tmp_path / "r")], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--reference" in proc.stderr and "drop --threads 2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2  # the error, and the hint about TINYGRAD_LM_DEBUG
    proc = run(["train", "--device", "cuda", "--out-dir", str(tmp_path / "r")], tmp_path, check=False)
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert proc.returncode == 2 and "CuPy" in proc.stderr and "pip install" in proc.stderr
