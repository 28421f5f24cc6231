"""The command line, run as users run it: in a subprocess."""
import os
import re
import subprocess
import sys

import pytest

from oracles import oracle  # tests/oracles.py


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


@pytest.mark.parametrize("command", ["train", "sample", "tokenize", "bench", "finetune", "export", "plot"])
def test_help_lists_every_option(command, tmp_path):
    proc = run([command, "--help"], tmp_path)
    assert "usage:" in proc.stdout
    if command == "train":
        for flag in ["--data", "--tokenizer", "--n-layer", "--lr", "--resume", "--device", "--out-dir", "--grad-clip"]:
            assert flag in proc.stdout
    if command in ("train", "finetune"):  # every setting of the (nested) config, each with its default
        from tinygrad_lm.run.config import flat_fields
        from tinygrad_lm.run.finetune import FinetuneConfig
        from tinygrad_lm.run.train import TrainConfig

        text = " ".join(proc.stdout.split("options:", 1)[1].split())  # the table (argparse wraps its lines)
        for name, _, default, _ in flat_fields(TrainConfig if command == "train" else FinetuneConfig):
            flag = "--" + name.replace("_", "-")  # its entry: the flag, its metavar or choices, help, default
            entry = re.search(flag + r"(?: [A-Z0-9_]+| \{[^}]*\}|, --no-" + flag[2:] + r") .*?\((default: .*?|required)\)",
                              text)
            assert entry, name
            if default is None:  # what leaving it out means, in words (never "None"), or that it is required
                assert entry.group(1) not in ("default: None", "default: "), name
            else:
                assert entry.group(1) == f"default: {default}", name
        assert "None" not in text  # a missing value is said in words
        assert "--reference" in text and "--threads" in text and "(default: auto)" in text


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


# ---- Hugging Face GPT-2 folders: sample --hf, train --init-from, export --hf-dir
def test_hf_commands_report_bad_paths_in_one_line(tmp_path):
    for args, name in [(["sample", "--hf", str(tmp_path / "nowhere")], "nowhere: no such folder"),
                       (["train", "--init-from", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "r")],
                        "nowhere: no such folder"),
                       (["export", "--ckpt", str(tmp_path / "nope.npz"), "--hf-dir", str(tmp_path / "x")], "nope.npz")]:
        proc = run(args, tmp_path, check=False)
        assert proc.returncode == 2 and name in proc.stderr and "Traceback" not in proc.stderr, args
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"model_type": "gpt2"}')
    proc = run(["sample", "--hf", str(tmp_path / "half")], tmp_path, check=False)
    # without safetensors: how to install it; with it: the first missing key of config.json
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pip install" in proc.stderr or "missing key" in proc.stderr


@pytest.fixture
def gpt2_folder(tmp_path):
    """A tiny random GPT-2 with a small GPT-2-style tokenizer, saved as a Hugging Face folder."""
    oracle("safetensors")
    from tinygrad_lm.models.gpt import GPT, GPTConfig
    from tinygrad_lm.tokenizer import BPETokenizer

    text = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: Ay me!\n" * 40
    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train(text, 256 + 40 + 1)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    model.save_pretrained(tmp_path / "hf", tokenizer=tok)
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    return tmp_path / "hf", tmp_path / "text.txt"


@pytest.mark.oracle
def test_sample_from_a_hf_folder_with_and_without_the_cache(gpt2_folder, tmp_path):
    folder, _ = gpt2_folder
    args = ["sample", "--hf", str(folder), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "3"]
    cached = run(args, tmp_path)
    assert cached.stdout.startswith("ROMEO:") and len(cached.stdout) > len("ROMEO:\n")
    assert run(args + ["--no-kv-cache"], tmp_path).stdout == cached.stdout
    reference = run(args + ["--reference"], tmp_path)  # textbook layers: float rounding may differ, not the start
    assert reference.stdout.startswith("ROMEO:") and run(args + ["--reference", "--no-kv-cache"], tmp_path).stdout \
        == reference.stdout


@pytest.mark.oracle
def test_init_from_a_hf_folder_then_export_it(gpt2_folder, tmp_path):
    import numpy as np

    from tinygrad_lm.hf.gpt2 import load_tokenizer
    from tinygrad_lm.models.gpt import GPT
    from tinygrad_lm.run.train import load_model

    folder, text = gpt2_folder
    out = tmp_path / "ft"
    proc = run(["train", "--init-from", str(folder), "--data", str(text), "--block-size", "16", "--batch-size", "2",
                "--max-iters", "4", "--eval-interval", "2", "--eval-iters", "1", "--log-interval", "2",
                "--sample-tokens", "0", "--out-dir", str(out)], tmp_path)
    assert "step     4/4" in proc.stdout
    model, tokenizer, meta = load_model(out / "ckpt.npz")
    assert meta["model_config"]["block_size"] == 16 and meta["train_config"]["init_from"] == str(folder)
    start = GPT.from_pretrained(folder)  # fine-tuning moved the weights, from the folder's
    assert not np.array_equal(model.state_dict()["transformer.h.0.attn.c_attn.weight"],
                              start.state_dict()["transformer.h.0.attn.c_attn.weight"])
    assert tokenizer.to_dict() == load_tokenizer(folder).to_dict()  # the folder's own tokenizer
    proc = run(["export", "--ckpt", str(out / "ckpt.npz"), "--hf-dir", str(tmp_path / "exported")], tmp_path)
    assert "vocab.json, merges.txt" in proc.stdout
    exported = GPT.from_pretrained(tmp_path / "exported")
    for (name, a), b in zip(model.state_dict().items(), exported.state_dict().values()):
        assert np.array_equal(a, b), name
    proc = run(["sample", "--hf", str(tmp_path / "exported"), "--prompt", "JULIET:", "--max-new-tokens", "5"],
               tmp_path)
    assert proc.stdout.startswith("JULIET:")


@pytest.mark.oracle
def test_export_a_char_level_checkpoint_keeps_its_tokenizer_beside(tmp_path):
    oracle("safetensors")
    out = tmp_path / "run"
    run(["train", "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16",
         "--n-head", "2", "--block-size", "16", "--batch-size", "2", "--sample-tokens", "0", "--out-dir", str(out)],
        tmp_path)
    proc = run(["export", "--ckpt", str(out / "best.npz"), "--hf-dir", str(tmp_path / "hf")], tmp_path)
    assert "tinygrad_lm_tokenizer.txt" in proc.stdout
    proc = run(["sample", "--hf", str(tmp_path / "hf"), "--prompt", "The ", "--max-new-tokens", "10", "--seed", "1"],
               tmp_path)
    again = run(["sample", "--ckpt", str(out / "best.npz"), "--prompt", "The ", "--max-new-tokens", "10", "--seed", "1"],
                tmp_path)
    assert proc.stdout == again.stdout and proc.stdout.startswith("The ")


def test_bench_blas_threads_is_named_apart_from_train_threads():
    from tinygrad_lm.run.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["bench", "--blas-threads", "1"]).blas_threads == 1
    bench = parser.parse_args(["bench", "--threads", "2"])  # one meaning across commands: the batch split
    assert bench.threads == 2 and bench.blas_threads is None
    assert parser.parse_args(["bench"]).threads == parser.parse_args(["train"]).threads == "auto"
    assert parser.parse_args(["train", "--threads", "2"]).threads == 2  # train's: the batch split


@pytest.mark.parametrize("flags, message", [(["--eval-iters", "-5"], "eval_iters must be a positive integer, got -5"),
                                            (["--max-iters", "-5"], "max_iters must be a positive integer, got -5"),
                                            (["--grad-accum", "0"], "grad_accum must be a positive integer, got 0"),
                                            (["--sample-tokens", "-1"], "sample_tokens must be 0 (no sample)"),
                                            (["--seed", "-1"], "seed must be an integer >= 0"),
                                            (["--grad-clip", "-1"], "grad_clip must be >= 0 (0 disables clipping)")])
def test_counts_below_their_least_are_one_line_errors(tmp_path, flags, message):
    proc = run(["train", *flags, "--out-dir", str(tmp_path / "r")], tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2
