"""The command line's flags as a hurried user types them (issue #28, item 5).

A mistyped flag is an error of the subcommand it was given to: its usage, and the nearest valid
flag ("did you mean --max-iters?"). Abbreviations are not taken: argparse would otherwise read
`--max-iter 5` as `--max-iters 5` and `--lr` typed as `--l` would be whichever flag starts with
it. A mistyped choice (`--tokenizer bep`) names the nearest choice too. The `config:` line a
run prints is flags that, pasted back after the subcommand, give the same config. Every
README command still parses. All in-process (argparse only): fast.
"""
import re
import shlex

import pytest

from tinygrad_lm.run.cli import build_parser, main
from tinygrad_lm.run.config import describe, from_args, from_flat
from tinygrad_lm.run.finetune import FinetuneConfig
from tinygrad_lm.run.train import TrainConfig


def parse_error(capsys, *argv):
    """The stderr of a command line that argparse refuses (exit status 2)."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, typo, meant", [
    (["train", "--max-itres", "5"], "--max-itres", "--max-iters"),
    (["train", "--n-layers", "2"], "--n-layers", "--n-layer"),
    (["train", "--no-bais"], "--no-bais", "--no-bias"),
    (["sample", "--ckpt", "c.npz", "--temprature", "0.5"], "--temprature", "--temperature"),
    (["finetune", "--ckpt", "c.npz", "--data", "d.jsonl", "--freeze-bdy"], "--freeze-bdy", "--freeze-body"),
    (["tokenize", "--vocab-szie", "300"], "--vocab-szie", "--vocab-size"),
    (["plot", "runs/a", "--lgo-y"], "--lgo-y", "--log-y"),
    (["attention", "--ckpt", "c.npz", "--text", "hi", "--out", "a.png", "--treshold", "0.4"], "--treshold",
     "--threshold"),
    (["export", "--ckpt", "c.npz", "--hf-dri", "out"], "--hf-dri", "--hf-dir"),
])
def test_a_mistyped_flag_gets_the_subcommands_usage_and_the_nearest_flag(capsys, argv, typo, meant):
    err = parse_error(capsys, *argv)
    assert f"usage: tinygrad-lm {argv[0]}" in err, err  # the subcommand's usage, not the top level's
    assert f"{typo}: did you mean {meant}?" in err, err


def test_a_mistyped_flag_with_its_value_after_an_equals_sign(capsys):
    err = parse_error(capsys, "train", "--max-itres=5")
    assert "--max-itres: did you mean --max-iters?" in err, err


def test_a_stray_word_is_named_without_a_made_up_flag(capsys):
    err = parse_error(capsys, "train", "--lr", "0.1", "0.2")
    assert "usage: tinygrad-lm train" in err and "'0.2'" in err and "did you mean" not in err, err


@pytest.mark.parametrize("argv, short, meant", [
    (["train", "--max-iter", "5"], "--max-iter", "--max-iters"),
    (["train", "--sample", "0"], "--sample", "--sample-tokens"),
    (["sample", "--ckpt", "c.npz", "--temp", "0.5"], "--temp", "--temperature"),
    (["tokenize", "--encode", "x.bin"], "--encode", "--encode-to"),
])
def test_abbreviations_are_not_silently_taken(capsys, argv, short, meant):
    err = parse_error(capsys, *argv)
    assert f"{short}: did you mean {meant}?" in err, err


def test_exact_flags_negations_and_equals_signs_still_parse():
    parser = build_parser()
    args = parser.parse_args(["train", "--max-iters=5", "--no-bias", "--no-tie-weights", "--reference", "--lr", "3e-4"])
    assert (args.max_iters, args.bias, args.tie_weights, args.reference, args.lr) == (5, False, False, True, 3e-4)
    args = parser.parse_args(["sample", "--ckpt", "c.npz", "--no-kv-cache", "--temperature", "0"])
    assert args.kv_cache is False and args.temperature == 0.0
    assert parser.parse_args(["bench", "--blas-threads", "2"]).blas_threads == 2
    assert parser.parse_args(["bench", "--threads", "2"]).threads == 2  # train's meaning, not BLAS's


@pytest.mark.parametrize("argv, meant", [
    (["train", "--tokenizer", "bep"], "'bpe'"),
    (["trian", "--max-iters", "5"], "'train'"),
    (["sample", "--ckpt", "c.npz", "--device", "cdua"], "'cuda'"),
])
def test_a_mistyped_choice_or_command_names_the_nearest(capsys, argv, meant):
    err = parse_error(capsys, *argv)
    assert f"did you mean {meant}?" in err, err


def test_every_readme_command_still_parses(tmp_path, monkeypatch):
    """No README command relied on an abbreviation (the README walk runs them; this only parses,
    in a folder holding the files the README's heredocs write: `--config run.toml` reads its file)."""
    from test_readme_commands import README, readme_commands  # tests/: the README's ```bash commands

    monkeypatch.chdir(tmp_path)
    parser, parsed = build_parser(), 0
    for number, command in readme_commands(README.read_text(encoding="utf-8")):
        heredoc = re.match(r"cat > (\S+) <<'(\w+)'\n(.*)\n\2$", command, re.S)
        if heredoc:
            (tmp_path / heredoc.group(1)).write_text(heredoc.group(3) + "\n", encoding="utf-8")
            continue
        words = shlex.split(command)
        if words[:3] != ["python", "-m", "tinygrad_lm"] or "--help" in words:
            continue
        try:
            parser.parse_args(words[3:])
        except SystemExit:
            pytest.fail(f"README.md line {number}: {command} no longer parses")
        parsed += 1
    assert parsed > 10


TRAIN_CONFIGS = [
    dict(reference=True, n_layer=2, lr=0.003),
    dict(bias=False, tie_weights=False, data="my corpus.txt", out_dir="runs/a b", dropout=0.1),
    dict(tokenizer="bpe", vocab_size=300, schedule="constant", pos_encoding="sinusoidal", quiet=True,
         diagnostics=True, seed=0, min_lr=0.0, warmup_iters=0),
    dict(data="it's \"quoted\" $HOME;.txt", tokens=None, grad_clip=0.0, beta2=0.95, sample_tokens=0),
    dict(tokenizer_file="tok.model", tokens="train.bin", dtype="float64", threads=2, all_ranks_print=True),
]


def flags_of(line):
    """The flags of a `config:` line, as a shell reads the line pasted after the subcommand."""
    assert line.startswith("config: "), line
    return shlex.split(line[len("config: "):], comments=True)


@pytest.mark.parametrize("values", TRAIN_CONFIGS, ids=lambda v: ",".join(v))
def test_the_config_line_pasted_back_as_flags_gives_the_same_train_config(values):
    cfg = from_flat(TrainConfig, **values)
    line = describe(cfg)
    assert "True" not in line.split("#")[0], line  # a switch is --reference, not --reference True
    args = build_parser().parse_args(["train", *flags_of(line)])
    assert from_args(TrainConfig, args) == cfg, line


def test_the_config_line_of_finetune_pastes_back_too():
    cfg = from_flat(FinetuneConfig, ckpt="runs/pre train/best.npz", data="ft.jsonl", freeze_body=True,
                    pooling="mean", lr=1e-3, min_lr=1e-4, reference=True, dropout=0.2)
    line = describe(cfg)
    args = build_parser().parse_args(["finetune", *flags_of(line)])
    assert from_args(FinetuneConfig, args) == cfg, line


def test_a_default_config_says_so_in_words():
    line = describe(TrainConfig())
    assert line.startswith("config: ") and flags_of(line) == [], line


def test_a_value_that_begins_with_a_dash_is_told_to_join_its_flag(capsys):
    err = parse_error(capsys, "sample", "--ckpt", "c.npz", "--prompt", "-hello")
    assert "--prompt -hello: a value that begins with '-' must be joined to its flag: write --prompt=-hello" in err
    assert build_parser().parse_args(["sample", "--ckpt", "c.npz", "--prompt=-hello"]).prompt == "-hello"
    assert build_parser().parse_args(["train", "--seed", "-1"]).seed == -1  # a number is a value (refused later)
