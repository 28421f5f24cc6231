"""`--config run.toml` (config.add_flags): any setting as a key, flat or in [model]/[optim]/[run]
tables, command-line flags override it, unknown keys and wrong types are errors naming the key
and the file; its settings count as given for --resume; both train and finetune have it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run.cli import build_parser
from tinygrad_lm.run.config import from_args, given_flags
from tinygrad_lm.run.finetune import FinetuneConfig
from tinygrad_lm.run.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


def parse(*argv):
    return build_parser().parse_args([str(a) for a in argv])


def write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_flat_keys_with_underscores_or_dashes_and_section_tables(tmp_path):
    path = write(tmp_path, 'n_layer = 3\nn-head = 4\nlr = 1\ntokenizer = "bpe"\n[optim]\nbatch-size = 5\n'
                           'grad_accum = 2\n[run]\nout_dir = "runs/x"\nreference = true\n[model]\ndropout = 0.25\n')
    args = parse("train", "--config", path)
    cfg = from_args(TrainConfig, args)
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.dropout) == (3, 4, 0.25)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # a TOML integer for a float setting
    assert (cfg.optim.batch_size, cfg.optim.grad_accum, cfg.run.out_dir, cfg.run.reference) == (5, 2, "runs/x", True)
    assert cfg.tokenizer == "bpe"
    assert given_flags(args) == {"n_layer", "n_head", "lr", "tokenizer", "batch_size", "grad_accum", "out_dir",
                                 "reference", "dropout"}


def test_command_line_flags_override_the_file_before_or_after_it(tmp_path):
    path = write(tmp_path, "n_layer = 3\nlr = 0.5\nbias = true\n")
    for argv in (["--n-layer", "5", "--no-bias", "--config", path], ["--config", path, "--n-layer", "5", "--no-bias"]):
        cfg = from_args(TrainConfig, parse("train", *argv))
        assert (cfg.model.n_layer, cfg.optim.lr, cfg.model.bias) == (5, 0.5, False)


@pytest.mark.parametrize("text, message", [
    ("n_layers = 3\n", "run.toml: key 'n_layers' is not a setting (did you mean n_layer?)"),
    ("[optim]\nn_layer = 3\n", "run.toml: [optim] key 'n_layer' belongs in [model], not in [optim]"),
    ("[model]\nwhatever = 1\n", "run.toml: [model] key 'whatever' is not a setting"),
    ("n_layer = 2.5\n", "run.toml: key 'n_layer': 2.5 is not an int"),
    ("n_layer = true\n", "run.toml: key 'n_layer': True is not an int"),
    ("lr = \"fast\"\n", "run.toml: key 'lr': 'fast' is not a float"),
    ("bias = 1\n", "run.toml: key 'bias': 1 is not a bool (true or false)"),
    ("tokenizer = \"word\"\n", "run.toml: key 'tokenizer': 'word' is not one of ['char', 'bpe']"),
    ("n_layer = 2\nn-layer = 3\n", "run.toml: key 'n-layer' is set twice"),
    ("n_layer = \n", "run.toml is not valid TOML"),
])
def test_bad_files_are_one_error_naming_the_key_and_the_file(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SystemExit) as e:
        parse("train", "--config", path)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert str(path) in err


def test_a_missing_config_file_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse("train", "--config", tmp_path / "nope.toml")
    assert "nope.toml: no such config file" in capsys.readouterr().err


def test_the_checkpoint_stores_the_effective_config_and_the_start_prints_it(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    write(tmp_path, 'data = "corpus.txt"\nblock_size = 8\nmax_iters = 2\n[model]\nn_layer = 1\nn_embd = 16\n'
                    'n_head = 2\n[optim]\nbatch_size = 2\nlr = 0.002\n[run]\neval_interval = 2\nout_dir = "r"\n'
                    'eval_iters = 1\nsample_tokens = 0\n')
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--config", "run.toml", "--lr", "0.003"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(s for s in done.stdout.splitlines() if s.startswith("config: "))
    assert "--data corpus.txt" in line and "--n-layer 1" in line and "--lr 0.003" in line and "--block-size 8" in line
    meta, _, _ = checkpoint.load(tmp_path / "r" / "ckpt.npz")
    saved = meta["train_config"]
    assert saved["optim"]["lr"] == 0.003 and saved["model"]["n_layer"] == 1 and saved["data"] == "corpus.txt"
    # resuming with the same file continues; a file that changes what is computed is refused by name
    more = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--config", "run.toml", "--lr", "0.003",
                           "--resume", "--max-iters", "4"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert more.returncode == 0, more.stderr
    refused = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--config", "run.toml", "--resume",
                              "--max-iters", "6"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert refused.returncode == 2
    assert "--lr 0.002 (the run has 0.003) would change what it computes" in refused.stderr


def test_finetune_reads_a_config_file_too_and_its_required_settings_may_come_from_it(tmp_path):
    path = write(tmp_path, 'ckpt = "pre/best.npz"\ndata = "ft.jsonl"\npooling = "mean"\n[optim]\nbatch_size = 4\n')
    cfg = from_args(FinetuneConfig, parse("finetune", "--config", path, "--lr", "0.01"))
    assert (cfg.ckpt, cfg.data, cfg.pooling, cfg.optim.batch_size, cfg.optim.lr) == ("pre/best.npz", "ft.jsonl",
                                                                                       "mean", 4, 0.01)
    with pytest.raises(ValueError, match="--ckpt, --data must be given"):
        from_args(FinetuneConfig, parse("finetune", "--lr", "0.01"))
