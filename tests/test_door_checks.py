"""Checks at the door (issue #28, item 5): a wrong setting or argument is refused where it enters
(the config, the CLI, the constructor or public function a user calls), before any data is read
or any step runs, with a message that names the argument, the value and the fix.

Numbers that must be finite, positive or ordered (the learning rates, warmup, AdamW's settings,
clipping, dropout, batch sizes), switches that must be True or False, dtypes that must be
floating, token ids that must be integers in range (and target -100, PyTorch's ignore_index, is
explained), and paths given as `str` or `pathlib.Path` alike. In-process; one tiny run.
"""
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import functional as F
from tinygrad_lm.engine.tensor import Tensor
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.nn import Embedding, LayerNorm, Linear, CrossEntropyLoss
from tinygrad_lm.optim import SGD, AdamW
from tinygrad_lm.run.cli import main
from tinygrad_lm.run.config import OptimConfig, from_flat
from tinygrad_lm.run.finetune import FinetuneConfig
from tinygrad_lm.run.train import TrainConfig, load_model, train

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("name, value, fix", [
    ("lr", NAN, "--lr 1e-3"), ("lr", INF, "--lr 1e-3"), ("lr", -1.0, "--lr 1e-3"), ("lr", 0.0, "--lr 1e-3"),
    ("lr", "0.1", "--lr 1e-3"),
    ("min_lr", NAN, "--min-lr 0"), ("min_lr", -1e-4, "--min-lr 0"),
    ("warmup_iters", -5, "0: no warmup"), ("warmup_iters", 2.5, "0: no warmup"),
    ("weight_decay", -0.1, "0: no decay"), ("weight_decay", NAN, "0: no decay"), ("weight_decay", INF, "0: no decay"),
    ("beta1", 1.0, "--beta1 0.9"), ("beta1", -0.1, "--beta1 0.9"), ("beta2", NAN, "--beta2 0.99"),
    ("grad_clip", INF, "0 disables clipping"), ("grad_clip", NAN, "0 disables clipping"),
])
def test_optimisation_numbers_are_checked_in_the_config(name, value, fix):
    with pytest.raises(ValueError) as e:
        from_flat(TrainConfig, **{name: value})
    message = str(e.value)
    assert message.startswith(f"{name} must be") and repr(value) in message and fix in message, message


def test_min_lr_above_lr_is_refused_with_both_values_and_the_fix():
    with pytest.raises(ValueError) as e:
        from_flat(TrainConfig, lr=5e-5)  # the default --min-lr 1e-4 is above it
    message = str(e.value)
    assert "min_lr 0.0001 is above lr 5e-05" in message and "--min-lr 5e-06" in message, message
    assert "--schedule constant" in message
    assert from_flat(TrainConfig, lr=5e-5, min_lr=5e-6).optim.min_lr == 5e-6
    assert from_flat(TrainConfig, lr=5e-5, schedule="constant").optim.lr == 5e-5  # constant: no min_lr to reach
    assert OptimConfig(lr=1e-3, min_lr=1e-3).min_lr == 1e-3  # equal: a flat schedule, allowed


def test_warmup_longer_than_the_run_is_allowed_and_capped():
    """A decision: --warmup-iters above --max-iters is capped at the run's length (the help says
    so), so that `--max-iters 20` works with the default warmup of 100."""
    assert from_flat(TrainConfig, max_iters=20).optim.warmup_iters == 100


@pytest.mark.parametrize("values, words", [
    (dict(dtype="int32"), ["dtype must be 'float32' or 'float64'", "'int32'"]),
    (dict(dtype="float16"), ["dtype must be 'float32' or 'float64'", "'float16'"]),
    (dict(vocab_size=0), ["vocab_size must be a positive integer", "got 0"]),
    (dict(tokenizer="word"), ["tokenizer must be 'char' or 'bpe'", "'word'"]),
    (dict(device="gpu"), ["device must be 'cpu' or 'cuda'", "'gpu'"]),
    (dict(reference="yes"), ["reference must be True or False", "'yes'"]),
    (dict(quiet=1), ["quiet must be True or False", "got 1"]),
    (dict(bias="no"), ["bias must be True or False", "'no'"]),
    (dict(dropout="0.1"), ["dropout must be a number in [0, 1)", "'0.1'"]),
    (dict(eval_iters=1.5), ["eval_iters must be a positive integer", "1.5"]),
    (dict(data=""), ["data is an empty path", "--data"]),
    (dict(out_dir=""), ["out_dir is an empty path", "--out-dir"]),
    (dict(out_dir=3), ["out_dir must be a path (str or pathlib.Path)", "got 3"]),
])
def test_other_train_settings_are_checked_in_the_config(values, words):
    with pytest.raises(ValueError) as e:
        from_flat(TrainConfig, **values)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("values, words", [
    (dict(eval_batch_size=0), ["eval_batch_size must be a positive integer", "got 0"]),
    (dict(val_fraction=1.5), ["val_fraction must be", "1.5"]),
    (dict(val_fraction=NAN), ["val_fraction must be", "nan"]),
    (dict(dropout=1.0), ["dropout must be", "1.0"]),
    (dict(pooling="max"), ["pooling must be", "'max'"]),
    (dict(init="random"), ["init must be 'pretrained' or 'scratch'", "'random'"]),
    (dict(freeze_body="no"), ["freeze_body must be True or False", "'no'"]),
    (dict(lr=INF), ["lr must be a finite number > 0", "inf"]),
])
def test_finetune_settings_are_checked_in_the_config(values, words):
    with pytest.raises(ValueError) as e:
        from_flat(FinetuneConfig, **values)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_paths_may_be_str_or_pathlib_and_are_stored_as_str(tmp_path):
    cfg = from_flat(FinetuneConfig, ckpt=tmp_path / "a.npz", data=Path("d.jsonl"), val=Path("v.jsonl"),
                    out_dir=tmp_path / "ft")
    assert (cfg.ckpt, cfg.data, cfg.val, cfg.run.out_dir) == (str(tmp_path / "a.npz"), "d.jsonl", "v.jsonl",
                                                              str(tmp_path / "ft"))
    json.dumps(asdict(cfg))  # what a checkpoint stores
    cfg = from_flat(TrainConfig, data=Path("c.txt"), tokenizer_file=None, out_dir=Path("runs/x"))
    assert (cfg.data, cfg.run.out_dir) == ("c.txt", "runs/x")


def test_a_run_configured_with_pathlib_paths_trains_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 50, encoding="utf-8")
    values = dict(data=corpus, out_dir=tmp_path / "run", block_size=8, n_layer=1, n_head=2, n_embd=16,
                  batch_size=2, max_iters=2, eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True,
                  reference=True)
    train(from_flat(TrainConfig, **values))
    assert train(from_flat(TrainConfig, **{**values, "max_iters": 3}), resume=True)["step"] == 3
    model, _, _ = load_model(tmp_path / "run" / "ckpt.npz")
    assert model.config.n_embd == 16


@pytest.mark.parametrize("flags, words", [
    (["--lr", "nan"], ["lr must be a finite number > 0, got nan", "--lr 1e-3"]),
    (["--lr", "1e-5"], ["min_lr 0.0001 is above lr 1e-05", "--min-lr 1e-06"]),
    (["--weight-decay", "-1"], ["weight_decay must be a finite number >= 0, got -1.0"]),
    (["--beta2", "1"], ["beta2 must be a number in [0, 1), got 1.0"]),
    (["--grad-clip", "inf"], ["grad_clip must be >= 0 (0 disables clipping) and finite, got inf"]),
])
def test_the_cli_refuses_bad_numbers_before_reading_any_data(tmp_path, capsys, flags, words):
    code = main(["train", "--data", str(tmp_path / "not-read.txt"), "--out-dir", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and all(w in err for w in words), err
    assert "not-read.txt" not in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, words", [
    (["--temperature", "nan"], ["--temperature", "'nan'", "a finite number >= 0"]),
    (["--temperature", "-1"], ["--temperature", "'-1'", "a finite number >= 0"]),
    (["--temperature", "inf"], ["--temperature", "'inf'", "a finite number >= 0"]),
    (["--seed", "-1"], ["--seed", "-1 is too small", "0 or more"]),
])
def test_sample_numbers_are_checked_by_the_cli_before_loading(tmp_path, capsys, flags, words):
    with pytest.raises(SystemExit) as stop:
        main(["sample", "--ckpt", str(tmp_path / "never-loaded.npz"), *flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and all(w in err for w in words) and "never-loaded" not in err, err


# ---- the public API: engine and layers

def test_cross_entropy_with_target_minus_100_explains_ignore_index():
    logits = Tensor(np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(IndexError) as e:
        F.cross_entropy(logits, np.array([0, 1, -100, 2]))
    message = str(e.value)
    assert "target -100 is out of range" in message and "0..4" in message, message
    assert "ignore_index=-100" in message and "PyTorch" in message and "here ignore_index is -1" in message, message
    with pytest.raises(IndexError, match=r"target -5 .*to skip positions, give them the target -1 \(ignore_index\)"):
        F.cross_entropy(logits, np.array([0, 1, -5, 2]))
    with pytest.raises(IndexError) as e:  # too large: no ignore_index hint, which would not help
        F.cross_entropy(logits, np.array([0, 1, 5, 2]))
    assert "target 5 is out of range" in str(e.value) and "ignore_index" not in str(e.value)
    assert math.isfinite(F.cross_entropy(logits, np.array([0, 1, -100, 2]), ignore_index=-100).item())


def test_cross_entropy_loss_checks_its_arguments_when_built():
    with pytest.raises(ValueError, match="reduction must be one of"):
        CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got nan"):
        CrossEntropyLoss(label_smoothing=NAN)


@pytest.mark.parametrize("fn, words", [
    (lambda: F.cross_entropy(Tensor(np.zeros((2, 3), dtype=np.float32)), np.array([0.0, 1.0])),
     ["cross_entropy targets: expected integer ids", "float64", ".astype(np.int64)"]),
    (lambda: Embedding(5, 3)(np.array([0.0, 1.0])), ["embedding ids: expected integer ids", "float64"]),
    (lambda: Embedding(5, 3)(np.array([True])), ["embedding ids: expected integer ids", "bool"]),
])
def test_float_ids_name_the_argument_and_the_fix(fn, words):
    with pytest.raises(TypeError) as e:
        fn()
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("build, words", [
    (lambda: Embedding(0, 3), ["Embedding: num_embeddings must be a positive integer", "got 0"]),
    (lambda: Embedding(2.5, 3), ["Embedding: num_embeddings must be a positive integer", "2.5"]),
    (lambda: Linear(-1, 3), ["Linear: in_features must be a positive integer", "-1"]),
    (lambda: Linear(3, "4"), ["Linear: out_features must be a positive integer", "'4'"]),
    (lambda: LayerNorm(0), ["LayerNorm: dim must be a positive integer", "got 0"]),
])
def test_layer_sizes_are_checked_when_built(build, words):
    with pytest.raises(ValueError) as e:
        build()
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("dtype", [np.int32, "int64", bool])
def test_a_model_cast_to_a_non_floating_dtype_is_refused(dtype):
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(TypeError, match=r"to\(dtype=.*\): parameters must be floating .*float32 or float64"):
        model.to(dtype=dtype)
    assert model.transformer.wte.weight.dtype == np.float32  # left as it was


@pytest.mark.parametrize("make, words", [
    (lambda p: AdamW(p, lr=INF), ["learning rate inf", "finite number >= 0"]),
    (lambda p: AdamW(p, lr=NAN), ["learning rate nan", "finite number >= 0"]),
    (lambda p: AdamW(p, lr="0.1"), ["learning rate '0.1'", "finite number >= 0"]),
    (lambda p: SGD(p, lr=INF), ["learning rate inf", "finite number >= 0"]),
    (lambda p: AdamW(p, eps=NAN), ["eps nan", "finite number >= 0"]),
    (lambda p: AdamW(p, weight_decay=INF), ["weight_decay inf", "finite number >= 0"]),
])
def test_optimizer_numbers_must_be_finite(make, words):
    params = [Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)]
    with pytest.raises(ValueError) as e:
        make(params)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("ids", [[1.5], [0, "1"], [np.float32(2.0)]])
def test_tokenizers_decode_only_integer_ids(ids):
    from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer

    bpe = BPETokenizer()
    bpe.train("hello world " * 20, 260)
    for tok in (CharTokenizer("abc"), bpe):
        with pytest.raises(TypeError, match=r"decode: token ids must be integers, got "):
            tok.decode(ids)
    assert CharTokenizer("abc").decode(np.array([0, 2])) == "ac"  # NumPy integers are integers
    with pytest.raises(ValueError, match=r"unknown token id\(s\) \[5\] for vocab_size 3"):
        CharTokenizer("abc").decode([5])


def test_a_checkpoint_saved_with_min_lr_above_lr_still_resumes_on_the_schedule_it_ran():
    """Older versions accepted --min-lr above --lr and ran a flat schedule at lr (learning_rate
    floors min_lr at lr); its checkpoints resume, with min_lr set to lr: the same numbers."""
    from tinygrad_lm.optim import cosine_warmup_lr
    from tinygrad_lm.run.config import resumed
    from tinygrad_lm.run.loop import learning_rate

    saved = asdict(from_flat(TrainConfig, lr=1e-4, min_lr=1e-4, warmup_iters=3, max_iters=20))
    saved["optim"]["lr"] = 1e-5  # what `train --lr 1e-5` wrote before min_lr <= lr was checked
    cfg, notes = resumed(saved, from_flat(TrainConfig, max_iters=30), "ckpt.npz: train_config", given={"max_iters"},
                         step=10)
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.max_iters) == (1e-5, 1e-5, 30)
    assert [learning_rate(s, cfg.optim) for s in range(30)] == [cosine_warmup_lr(s, 1e-5, 3, 30, 1e-5)
                                                                for s in range(30)]
    assert any(note.startswith("--min-lr 0.0001 -> 1e-05") for note in notes), notes


def test_a_checkpoint_whose_settings_this_version_refuses_says_it_cannot_be_resumed():
    from tinygrad_lm.run.config import resumed

    saved = asdict(from_flat(TrainConfig))
    saved["optim"]["lr"], saved["optim"]["min_lr"] = 0.0, 0.0  # an lr of 0 was accepted before
    with pytest.raises(ValueError) as e:
        resumed(saved, from_flat(TrainConfig), "runs/x/ckpt.npz: train_config", given=set())
    message = str(e.value)
    assert message.startswith("runs/x/ckpt.npz: train_config: the saved run's settings are refused") and \
        "lr must be a finite number > 0, got 0.0" in message and "start a new run" in message, message


def test_heads_that_do_not_divide_the_width_suggest_ones_that_do():
    with pytest.raises(ValueError, match=r"n_embd=16 must be divisible by n_head=3 .*try n_head 2 or 4"):
        GPTConfig(n_embd=16, n_head=3)
    with pytest.raises(ValueError, match=r"n_embd=7 must be divisible by n_head=2 .*try n_head 1 or 7"):
        GPTConfig(n_embd=7, n_head=2)
    with pytest.raises(ValueError, match=r"n_embd=4 must be divisible by n_head=8 .*try n_head 4$"):
        GPTConfig(n_embd=4, n_head=8)
