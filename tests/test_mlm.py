"""Masked-language-model pretraining: BERT's masking statistics, the [CLS] text [SEP] sequences,
`train --objective mlm` (metrics, seeded, resumed bit for bit, threads), and its clear errors."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.mlm import (IGNORE_INDEX, SPECIAL_TOKENS, MLMCollator, SpecialIds, add_special_tokens,
                                 masked_accuracy)
from tinygrad_lm.engine.tensor import Tensor
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer
from tinygrad_lm.run.train import TrainConfig, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "Second Citizen:\nWould you proceed especially against Caius Marcius?\n\n") * 30


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def char_tokenizer():
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz")
    add_special_tokens(tok)
    return tok


def tiny_cfg(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), objective="mlm", block_size=16, n_layer=1, n_head=2, n_embd=16, batch_size=4,
               max_iters=30, warmup_iters=5, eval_interval=10, eval_iters=2, log_interval=5, out_dir=str(out_dir),
               sample_tokens=0, quiet=True, dropout=0.1)
    cfg.update(kw)
    return from_flat(TrainConfig, **cfg)


# ---- masking


def test_masking_statistics_are_berts_15_80_10_10_within_binomial_bounds():
    tok = char_tokenizer()
    ids = SpecialIds.of(tok)
    collator = MLMCollator(tok)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 63, size=4000)  # padded batch: [CLS] text [SEP] [PAD]...
    seqs, attention = collator.sequences([rng.integers(0, 26, size=n) for n in lengths], 64)
    inputs, labels = collator.mask_tokens(seqs, np.random.default_rng(1))
    special = np.isin(seqs, [ids.cls, ids.sep, ids.pad])
    picked = labels != IGNORE_INDEX

    def within(count, n, p, sigmas=5):  # a binomial count within `sigmas` standard deviations of n p
        return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))

    eligible = int((~special).sum())
    assert eligible == lengths.sum() and within(int(picked.sum()), eligible, 0.15)
    assert not (picked & special).any()  # [CLS], [SEP], [PAD] are never picked
    np.testing.assert_array_equal(labels[picked], seqs[picked])  # labels: the original id where picked ...
    assert (labels[~picked] == IGNORE_INDEX).all()  # ... and -100 exactly elsewhere
    np.testing.assert_array_equal(inputs[~picked], seqs[~picked])  # nothing else is touched
    n = int(picked.sum())
    to_mask = inputs[picked] == ids.mask
    changed = (inputs[picked] != seqs[picked]) & ~to_mask
    kept = inputs[picked] == seqs[picked]
    regular = 26  # a random token equal to the original counts as kept
    assert within(int(to_mask.sum()), n, 0.8)
    assert within(int(changed.sum()), n, 0.1 * (1 - 1 / regular))
    assert within(int(kept.sum()), n, 0.1 + 0.1 / regular)
    assert set(np.unique(inputs[picked][changed])) == set(range(26))  # random tokens: every regular id, no special
    assert (attention == ~(seqs == ids.pad)).all()


def test_random_replacements_skip_every_special_token_of_a_bpe_tokenizer():
    tok = BPETokenizer(special_tokens=["<|endoftext|>"])
    tok.train("low lower lowest " * 20, 270)
    ids = add_special_tokens(tok)
    collator = MLMCollator(tok, mask_rate=0.0, random_rate=1.0)  # every picked position gets a random token
    seqs, _ = collator.sequences([np.arange(256)] * 200, 258)
    inputs, labels = collator.mask_tokens(seqs, np.random.default_rng(0))
    drawn = inputs[labels != IGNORE_INDEX]
    specials = set(tok.special_tokens.values())
    assert specials == {tok.special_tokens["<|endoftext|>"], ids.cls, ids.sep, ids.mask, ids.pad}
    assert len(drawn) > 1000 and not specials & set(drawn.tolist())
    assert drawn.max() < tok.vocab_size


def test_a_batch_with_no_picked_position_gets_one():
    tok = char_tokenizer()
    collator = MLMCollator(tok, mlm_probability=1e-9)
    seqs, _ = collator.sequences([[1, 2, 3]], 8)
    inputs, labels = collator.mask_tokens(seqs, np.random.default_rng(0))
    assert (labels != IGNORE_INDEX).sum() == 1 and labels[0, 0] == IGNORE_INDEX and labels[0, -1] == IGNORE_INDEX


def test_sequences_are_cls_text_sep_then_pad_with_the_mask():
    tok = char_tokenizer()
    i = SpecialIds.of(tok)
    collator = MLMCollator(tok)
    seqs, mask = collator.sequences([[5, 6, 7, 8, 9, 10], [4], [1, 2]], block_size=6)  # the first is cut to 4
    assert seqs.tolist() == [[i.cls, 5, 6, 7, 8, i.sep], [i.cls, 4, i.sep, i.pad, i.pad, i.pad],
                             [i.cls, 1, 2, i.sep, i.pad, i.pad]]
    assert mask.astype(int).tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]
    with pytest.raises(ValueError, match="block_size=2"):
        collator.sequences([[1]], 2)


def test_pretraining_batches_are_corpus_windows_between_cls_and_sep_and_seeded():
    tok = char_tokenizer()
    i = SpecialIds.of(tok)
    collator = MLMCollator(tok)
    corpus = np.random.default_rng(5).integers(0, 26, size=3000)
    batch = collator.get_batch(corpus, 8, 20, np.random.default_rng(7))
    assert set(batch) == {"idx", "attention_mask", "labels"}
    x, labels = batch["idx"], batch["labels"]
    assert x.shape == labels.shape == batch["attention_mask"].shape == (8, 20) and batch["attention_mask"].all()
    assert (x[:, 0] == i.cls).all() and (x[:, -1] == i.sep).all()
    original = np.where(labels != IGNORE_INDEX, labels, x)[:, 1:-1]  # (8, 18): the uncorrupted windows
    windows = np.lib.stride_tricks.sliding_window_view(corpus, 18)
    for row in original:
        assert (windows == row).all(axis=1).any()  # each row is a contiguous window of the corpus
    again = collator.get_batch(corpus, 8, 20, np.random.default_rng(7))
    other = collator.get_batch(corpus, 8, 20, np.random.default_rng(8))
    for k in batch:
        np.testing.assert_array_equal(batch[k], again[k])
    assert not np.array_equal(batch["labels"], other["labels"])


def test_pretraining_batches_reach_the_last_window_of_the_corpus():
    collator = MLMCollator(char_tokenizer())

    def windows(corpus, draws):  # (draws, 18): the corpus windows between [CLS] and [SEP], uncorrupted
        batch = collator.get_batch(corpus, draws, 20, np.random.default_rng(0))
        return np.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["idx"])[:, 1:-1]

    corpus = np.arange(18)  # block_size - 2 tokens: the one window is the whole corpus
    np.testing.assert_array_equal(windows(corpus, 3), np.tile(corpus, (3, 1)))
    starts = windows(np.arange(25), 400)[:, 0]  # windows start at 0..7 (len - (block_size - 2))
    assert sorted(set(starts.tolist())) == list(range(8))

def test_masked_accuracy_counts_the_picked_positions_only():
    logits = np.zeros((1, 4, 5), dtype=np.float32)
    logits[0, [0, 1, 2, 3], [1, 2, 3, 4]] = 1.0  # argmax per position: 1, 2, 3, 4
    labels = np.array([[1, IGNORE_INDEX, 0, 4]])
    assert masked_accuracy(Tensor(logits), labels) == (2, 3)


def test_collator_needs_the_special_tokens():
    with pytest.raises(ValueError, match=r"no \[CLS\] \[SEP\] \[MASK\] \[PAD\].*--objective mlm"):
        MLMCollator(CharTokenizer("abc"))


# ---- train --objective mlm


@pytest.mark.slow
def test_mlm_training_lowers_the_loss_and_beats_guessing(text_file, tmp_path):
    result = train(tiny_cfg(text_file, tmp_path / "run", max_iters=60, lr=1e-2, dropout=0.0, n_embd=32,
                            batch_size=16, warmup_iters=10))
    assert np.mean(result["losses"][-10:]) < np.mean(result["losses"][:10]) - 0.2  # from ln(V) towards the unigram
    evals = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl") if "val_acc" in line]
    assert evals[-1]["val_acc"] > 3 / len(set(TEXT))  # well above guessing among the corpus's characters


def test_mlm_run_reports_masked_accuracy_and_records_objective_and_bert_config(text_file, tmp_path):
    train(tiny_cfg(text_file, tmp_path / "run", max_iters=20, n_embd=32))
    records = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20]
    for r in evals:
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["val_acc"] <= 1.0 and "val_bpb" not in r
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
    meta, state, _ = checkpoint.load(tmp_path / "run" / "best.npz")
    assert meta["objective"] == "mlm" and meta["train_config"]["objective"] == "mlm"
    assert meta["model_config"]["hidden_size"] == 32 and meta["model_config"]["max_position_embeddings"] == 16
    assert meta["model_config"]["num_hidden_layers"] == 1 and meta["model_config"]["intermediate_size"] == 128
    assert meta["model_config"]["vocab_size"] == len(set(TEXT)) + 4
    assert list(meta["tokenizer"]["special_tokens"]) == list(SPECIAL_TOKENS)
    assert "bert.encoder.layer.0.attention.self.query.weight" in state and "cls.predictions.bias" in state


def test_clm_runs_keep_the_plain_tokenizer_and_record_their_objective(text_file, tmp_path):
    result = train(tiny_cfg(text_file, tmp_path / "run", objective="clm", max_iters=2, eval_interval=2))
    meta, state, _ = checkpoint.load(tmp_path / "run" / "ckpt.npz")
    assert meta["objective"] == "clm" and "special_tokens" not in meta["tokenizer"]
    assert meta["tokenizer"] == CharTokenizer(TEXT).to_dict() and result["tokenizer"].vocab_size == len(set(TEXT))
    assert "transformer.wte.weight" in state


def test_mlm_resumed_run_matches_uninterrupted_run_exactly(text_file, tmp_path):
    full = train(tiny_cfg(text_file, tmp_path / "a"))
    part = train(tiny_cfg(text_file, tmp_path / "b"), stop_at=13)  # stops mid-interval, as Ctrl-C would
    assert part["interrupted"] and part["step"] == 13
    rest = train(tiny_cfg(text_file, tmp_path / "b"), resume=True)
    assert rest["step"] == 30
    assert part["losses"] + rest["losses"] == full["losses"]  # bit for bit: masking and dropout resumed
    _, wa, oa = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    _, wb, ob = checkpoint.load(tmp_path / "b" / "ckpt.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])
    other = train(tiny_cfg(text_file, tmp_path / "c", seed=7, max_iters=5))
    assert other["losses"] != full["losses"][:5]  # the seed decides the masking too


def test_mlm_threads_follow_the_plain_loop_without_dropout(text_file, tmp_path):
    # each slice's loss is a mean over its own picked positions: the weights count them (labels >= 0)
    plain = train(tiny_cfg(text_file, tmp_path / "a", dropout=0.0, dtype="float64", max_iters=8, reference=True))
    split = train(tiny_cfg(text_file, tmp_path / "b", dropout=0.0, dtype="float64", max_iters=8, threads=3))
    np.testing.assert_allclose(split["losses"], plain["losses"], rtol=1e-9)
    assert split["best_val"] == pytest.approx(plain["best_val"], rel=1e-9)


def test_mlm_config_errors_name_the_fix(text_file, tmp_path):
    for kw, match in [({"objective": "bert"}, "objective must be 'clm'.*or 'mlm'"),
                      ({"pos_encoding": "sinusoidal"}, "drop --pos-encoding sinusoidal"),
                      ({"tie_weights": False}, "drop --tie-weights False"),
                      ({"init_from": str(tmp_path)}, "--init-from.*drop one"),
                      ({"block_size": 2}, "--block-size 2 leaves no room")]:
        with pytest.raises(ValueError, match=match):
            train(tiny_cfg(text_file, tmp_path / "r", max_iters=2, **kw), overwrite=True)
    with pytest.raises(ValueError, match="--resume.*--objective 'clm'.*the run has 'mlm'"):
        train(tiny_cfg(text_file, tmp_path / "done", max_iters=2, eval_interval=2))
        train(tiny_cfg(text_file, tmp_path / "done", max_iters=4, objective="clm"), resume=True)


def _cli(args, tmp_path):
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tinygrad_lm", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)


def test_cli_trains_mlm_and_sample_refuses_its_checkpoint(text_file, tmp_path):
    out = tmp_path / "run"
    proc = _cli(["train", "--objective", "mlm", "--data", str(text_file), "--max-iters", "4", "--eval-interval", "2",
                 "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
                 "--batch-size", "2", "--out-dir", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "masked-token accuracy" in proc.stdout and "---- sample ----" not in proc.stdout
    assert f"finetune --ckpt {out}/best.npz" in proc.stdout
    for command in (["sample", "--ckpt", str(out / "best.npz")],
                    ["export", "--ckpt", str(out / "best.npz"), "--hf-dir", str(tmp_path / "hf")]):
        proc = _cli(command, tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "masked-language-model (BERT) checkpoint" in proc.stderr and "finetune --ckpt" in proc.stderr
    proc = _cli(["train", "--objective", "nsp", "--out-dir", str(tmp_path / "x")], tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'nsp'" in proc.stderr
