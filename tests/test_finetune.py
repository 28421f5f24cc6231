"""Fine-tuning: the classifier head, loading a pretrained body, labelled data, metrics, loop, CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import checkpoint
from tinygrad_lm.run.baselines import BagOfWordsLogReg, majority_baseline
from tinygrad_lm.run.finetune import FinetuneConfig, evaluate, finetune, load_classifier
from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification
from tinygrad_lm.metrics import accuracy, confusion_matrix, format_confusion, macro_f1
from tinygrad_lm.run.labeled import load_labeled, pad_batch, read_jsonl
from tinygrad_lm.run.labeled import encode_text, epoch_order, train_batch_indices
from tinygrad_lm.metrics import f1_per_class
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.models.gpt import GPTConfig
from tinygrad_lm.run.train import load_model
from tinygrad_lm.optim import param_groups
from tinygrad_lm.tokenizer import CharTokenizer
from tinygrad_lm.testing import check_gradients
from tinygrad_lm.run.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
CORPUS = "the cat sat on the mat.\nthe dog ran to the log.\n" * 30
TINY = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=8)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny GPT checkpoint made by the real pretraining loop (5 steps)."""
    root = tmp_path_factory.mktemp("pre")
    text = root / "corpus.txt"
    text.write_text(CORPUS, encoding="utf-8")
    old = os.environ.get("TINYGRAD_LM_CACHE")
    os.environ["TINYGRAD_LM_CACHE"] = str(root / "cache")
    try:
        train(from_flat(TrainConfig, data=str(text), max_iters=5, n_layer=1, n_embd=16, n_head=2, block_size=16,
                        batch_size=4, eval_interval=5, eval_iters=1, out_dir=str(root / "run"), quiet=True,
                        sample_tokens=0))
    finally:
        if old is None:
            del os.environ["TINYGRAD_LM_CACHE"]
        else:
            os.environ["TINYGRAD_LM_CACHE"] = old
    return root / "run" / "best.npz"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_rows(n, seed):
    """Labelled lines: "cat" sentences vs "dog" sentences (a task a tiny model can learn)."""
    r = np.random.default_rng(seed)
    cat = ["the cat sat.", "a cat on the mat.", "the mat cat.", "cat sat on mat."]
    dog = ["the dog ran.", "a dog to the log.", "the log dog.", "dog ran to log."]
    rows = []
    for _ in range(n):
        label = "cat" if r.random() < 0.5 else "dog"
        rows.append({"text": str(r.choice(cat if label == "cat" else dog)), "label": label})
    return rows


# ----------------------------------------------------------------------------------- metrics
def test_confusion_matrix_accuracy_and_macro_f1_on_a_hand_computed_case():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows true, columns predicted
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    # F1_0 = 2*2/(2*2+0+1) = 4/5, F1_1 = 2/(2+1+1) = 1/2, F1_2 = 2/(2+1+0) = 2/3
    assert f1_per_class(cm) == pytest.approx([4 / 5, 1 / 2, 2 / 3])
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)


def test_macro_f1_punishes_the_majority_class_and_ignores_absent_classes():
    y_true = [0, 0, 0, 1]
    y_pred = [0, 0, 0, 0]
    # F1_0 = 6/7, F1_1 = 0 (never predicted); class 2 occurs nowhere and does not count
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((6 / 7 + 0) / 2)
    assert macro_f1(y_true, y_pred) == macro_f1(y_true, y_pred, 3)
    assert macro_f1([1, 2], [1, 2], 5) == 1.0
    assert accuracy(y_true, y_pred) == 0.75


def test_metric_errors_and_confusion_table():
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="at least one"):
        macro_f1([], [])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 0], 3)
    table = format_confusion([[2, 0], [1, 3]], ["cat", "dog"])
    assert table.splitlines()[0].split()[-2:] == ["cat", "dog"]
    assert table.splitlines()[2].split() == ["dog", "1", "3"]


# ----------------------------------------------------------------------------------- batches
def test_pad_batch_right_pads_with_a_mask():
    ids, mask = pad_batch([np.array([3, 4]), np.array([5, 6, 7]), np.array([1])], pad_id=9)
    assert ids.tolist() == [[3, 4, 9], [5, 6, 7], [1, 9, 9]]
    assert mask.tolist() == [[True, True, False], [True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="empty"):
        pad_batch([np.array([1]), np.array([], dtype=np.int64)])


def test_training_batches_are_shuffled_epochs_determined_by_the_step():
    n, B = 10, 4
    stream = np.concatenate([train_batch_indices(n, s, B, seed=3) for s in range(5)])  # 20 = two epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10].tolist() == epoch_order(n, 0, 3).tolist()
    assert stream[:10].tolist() != stream[10:].tolist()
    assert train_batch_indices(n, 2, B, seed=3).tolist() == stream[8:12].tolist()


# ----------------------------------------------------------------------------------- the head
def tiny_classifier(num_labels=3, config=TINY, pooling="last"):
    return GPTForSequenceClassification(config, num_labels, pooling=pooling).to(dtype=np.float64)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_head_and_body_gradients_pass_gradcheck(pooling):
    model = tiny_classifier(pooling=pooling)
    rng = np.random.default_rng(1)
    ids, mask = pad_batch([rng.integers(0, 11, 5), rng.integers(0, 11, 3), rng.integers(0, 11, 1)])
    named = dict(model.named_parameters())
    params = {k: named[k] for k in ("score.weight", "score.bias", "transformer.h.1.ln_2.weight",
                                    "transformer.h.0.attn.c_attn.bias", "transformer.wpe.weight")}
    assert check_gradients(lambda: model(ids, mask)[0], params=params)
    labels = np.array([2, 0, 1])
    loss = lambda: model(ids, mask, labels)[1]  # noqa: E731  (the scalar loss through the head)
    assert check_gradients(loss, params={"score.weight": named["score.weight"]})


def test_pooling_takes_the_last_real_token():
    model = tiny_classifier()
    ids, mask = pad_batch([np.array([1, 2, 3]), np.array([4])])
    h = model.transformer(ids, mask).numpy()  # (2, 3, C)
    pooled = model.pool(model.transformer(ids, mask), mask).numpy()  # (2, C)
    assert np.array_equal(pooled, h[[0, 1], [2, 0]])
    mean = tiny_classifier(pooling="mean")
    h = mean.transformer(ids, mask).numpy()
    pooled = mean.pool(mean.transformer(ids, mask), mask).numpy()
    np.testing.assert_allclose(pooled, [h[0].mean(axis=0), h[1, 0]], rtol=0, atol=1e-15)


@settings(max_examples=16)
@given(st.lists(st.integers(1, 12), min_size=2, max_size=4), st.integers(0, 2 ** 31 - 1),
       st.sampled_from(["last", "mean"]))
def test_padding_does_not_change_a_sequences_logits(lengths, seed, pooling):
    tinygrad_lm.manual_seed(0)
    model = tiny_classifier(pooling=pooling).eval()
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 11, n) for n in lengths]
    ids, mask = pad_batch(seqs, pad_id=int(rng.integers(0, 11)))
    ids[~mask] = rng.integers(0, 11, int((~mask).sum()))  # whatever sits in the padding
    batched = model(ids, mask)[0].numpy()
    for b, s in enumerate(seqs):
        alone = model(s[None, :])[0].numpy()  # no padding, no mask
        np.testing.assert_allclose(batched[b], alone[0], rtol=0, atol=1e-12)


def test_a_left_padded_or_empty_mask_is_rejected():
    model = tiny_classifier()
    with pytest.raises(ValueError, match="right-padded"):
        model(np.array([[0, 1, 2]]), np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="no real token"):
        model(np.array([[0, 1]]), np.array([[0, 0]]))
    with pytest.raises(ValueError, match="0..2"):
        model(np.array([[0, 1]]), None, np.array([3]))


# ----------------------------------------------------------------------------------- loading
def test_from_pretrained_reproduces_the_gpt_hidden_states_exactly(pretrained, capsys):
    gpt, tokenizer, _ = load_model(pretrained)
    clf = GPTForSequenceClassification.from_pretrained(pretrained, num_labels=4)
    report = clf.load_report
    assert "loaded" in capsys.readouterr().out
    ids = np.array([tokenizer.encode("the cat sat"), tokenizer.encode("the dog ran")])
    gpt.eval(), clf.eval()
    assert np.array_equal(clf.transformer(ids).numpy(), gpt.transformer(ids).numpy())
    body = [k for k in gpt.state_dict() if k != "lm_head.weight"]
    assert sorted(report.loaded) == sorted(body)
    assert report.initialized == ["score.weight", "score.bias"]
    assert report.unused == ["lm_head.weight"]
    assert clf.tokenizer.to_dict() == tokenizer.to_dict()
    assert {k for k, _ in clf.named_parameters()} == set(body) | {"score.weight", "score.bias"}


def test_freeze_body_trains_only_the_head(pretrained):
    clf = GPTForSequenceClassification.from_pretrained(pretrained, num_labels=2, freeze_body=True, verbose=False)
    assert clf.load_report.frozen == sum(p.size for _, p in clf.transformer.named_parameters())
    ids, mask = pad_batch([np.array([1, 2, 3]), np.array([4, 5])])
    _, loss = clf(ids, mask, np.array([0, 1]))
    loss.backward()
    assert all(p.grad is None for p in clf.transformer.parameters())
    assert clf.score.weight.grad is not None and clf.score.bias.grad is not None
    groups = param_groups(clf.named_parameters(), 0.1)
    assert [p for g in groups for p in g["params"]] == [clf.score.weight, clf.score.bias]


# ----------------------------------------------------------------------------------- labelled data
TOK = CharTokenizer("abcdefghijklmnopqrstuvwxyz .")


def test_labels_come_sorted_from_the_training_file_and_long_texts_keep_their_first_tokens(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "abcdefghij", "label": "zeta"},
                                                  {"text": "ab", "label": "alpha", "extra": 1}])
    data = load_labeled(path, TOK, block_size=4)
    assert data.label_names == ["alpha", "zeta"] and data.labels.tolist() == [1, 0]
    assert data.ids[0].tolist() == TOK.encode("abcd") and data.truncated == 1
    ints = load_labeled(write_jsonl(tmp_path / "i.jsonl", [{"text": "a", "label": 10}, {"text": "b", "label": 9}]),
                        TOK, 4)
    assert ints.label_names == [9, 10]


def test_an_unknown_label_names_the_label_file_and_line(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", [{"text": "ab", "label": "x"}, {"text": "cd", "label": "y"}])
    val_path = tmp_path / "val.jsonl"
    val_path.write_text('{"text": "ab", "label": "x"}\n\n{"text": "ab", "label": "w"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"val\.jsonl, line 3: label 'w' is not in the training set") as e:
        load_labeled(val_path, TOK, 8, ["x", "y"], train_path=train_path)
    assert "['x', 'y']" in str(e.value) and "train.jsonl" in str(e.value)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("\n  \n", "no examples"),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', r"line 2: malformed JSON"),
    ('{"text": "a", "label": "x"}\n["a", "x"]\n', r"line 2: expected a JSON object"),
    ('{"text": "a"}\n', r"line 1: missing the 'label' key"),
    ('{"label": "a"}\n', r"line 1: missing the 'text' key"),
    ('{"text": 5, "label": "x"}\n', r"line 1: \"text\" must be a string"),
    ('{"text": "", "label": "x"}\n', r"line 1: \"text\" is empty"),
    ('{"text": "a", "label": [1]}\n', r"line 1: \"label\" must be a string or an integer"),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": 1}\n', "mix strings and integers"),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', "only one label"),
])
def test_malformed_files_raise_errors_naming_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as e:
        load_labeled(path, TOK, 8)
    assert str(path) in str(e.value)


def test_missing_file_and_unknown_characters(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "nope.jsonl")
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "ab", "label": "x"}, {"text": "aQb", "label": "y"}])
    with pytest.raises(ValueError, match=r"t\.jsonl, line 2: character 'Q'"):
        load_labeled(path, TOK, 8)
    data = load_labeled(path, TOK, 8, unknown="drop")
    assert data.ids[1].tolist() == TOK.encode("ab") and data.dropped_chars == 1
    with pytest.raises(ValueError, match="every character"):
        encode_text(TOK, "QQ", 8, unknown="drop", where="x")


# ----------------------------------------------------------------------------------- baselines
def test_majority_and_bag_of_words_baselines():
    label, pred = majority_baseline([0, 2, 2, 1], 3)
    assert label == 2 and pred.tolist() == [2, 2, 2]
    rows = toy_rows(40, seed=0)
    names = ["cat", "dog"]
    texts, labels = [r["text"] for r in rows], [names.index(r["label"]) for r in rows]
    model = BagOfWordsLogReg(2, steps=100, lr=0.1)
    losses = model.fit(texts, labels)
    assert losses[-1] < losses[0] / 4
    assert accuracy(labels, model.predict(texts)) == 1.0
    assert "cat" in model.vocab and model.logits(["a dog"]).shape == (1, 2)


# ----------------------------------------------------------------------------------- the loop
def ft_cfg(pretrained, tmp_path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_rows(48, seed=1))
    val_path = write_jsonl(tmp_path / "val.jsonl", toy_rows(16, seed=2))
    cfg = dict(ckpt=str(pretrained), data=str(train_path), val=str(val_path), test=str(val_path), batch_size=8,
               max_iters=30, lr=3e-3, warmup_iters=3, eval_interval=10, log_interval=5,
               out_dir=str(tmp_path / "ft"), quiet=True)
    cfg.update(kw)
    return from_flat(FinetuneConfig, **cfg)


def test_finetune_learns_a_toy_task_and_keeps_the_best_checkpoint(pretrained, tmp_path):
    result = finetune(ft_cfg(pretrained, tmp_path, max_iters=60))
    assert np.mean(result["history"][-10:]) < np.mean(result["history"][:10])
    assert result["val"]["accuracy"] >= 0.9
    assert result["label_names"] == ["cat", "dog"]
    out = tmp_path / "ft"
    records = [json.loads(line) for line in open(out / "log.jsonl")]
    evals = [r for r in records if "val_macro_f1" in r]
    assert [r["step"] for r in evals] == [10, 20, 30, 40, 50, 60]
    assert any("test_accuracy" in r for r in records)
    model, tok, meta = load_classifier(out / "best.npz")
    assert meta["label_names"] == ["cat", "dog"] and meta["best"]["macro_f1"] == max(r["val_macro_f1"] for r in evals)
    val = load_labeled(tmp_path / "val.jsonl", tok, model.config.block_size, ["cat", "dog"])
    assert evaluate(model, val)["accuracy"] == result["val"]["accuracy"]
    with pytest.raises(ValueError, match="not a fine-tuned classifier"):
        load_classifier(pretrained)


def test_a_float64_classifier_checkpoint_loads_as_float64(pretrained, tmp_path):
    finetune(ft_cfg(pretrained, tmp_path, max_iters=2, eval_interval=2))
    meta, state, optim = checkpoint.load(tmp_path / "ft" / "ckpt.npz")
    wide = {k: v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v for k, v in state.items()}
    checkpoint.save(tmp_path / "f64.npz", wide, optim, meta)
    model, tok, _ = load_classifier(tmp_path / "f64.npz")
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float64)}   # not cast down to float32
    got = model.state_dict()
    assert all(np.array_equal(got[k], wide[k]) for k in wide)


def test_finetune_resumes_exactly_and_scratch_differs_from_pretrained(pretrained, tmp_path):
    full = finetune(ft_cfg(pretrained, tmp_path / "a", dropout=0.1))
    part = finetune(ft_cfg(pretrained, tmp_path / "b", dropout=0.1), stop_at=13)
    assert part["interrupted"] and part["step"] == 13
    rest = finetune(ft_cfg(pretrained, tmp_path / "b", dropout=0.1), resume=True)
    assert part["history"] + rest["history"] == full["history"]
    scratch = finetune(ft_cfg(pretrained, tmp_path / "c", dropout=0.1, init="scratch", max_iters=5))
    assert scratch["history"][0] != full["history"][0]


def test_finetune_stopped_at_an_evaluation_step_evaluates_it_after_resuming(pretrained, tmp_path):
    finetune(ft_cfg(pretrained, tmp_path / "b", max_iters=20, eval_interval=5), stop_at=10)  # step 10: due
    finetune(ft_cfg(pretrained, tmp_path / "b", max_iters=20, eval_interval=5), resume=True)
    records = [json.loads(line) for line in open(tmp_path / "b" / "ft" / "log.jsonl")]
    assert [r["step"] for r in records if "val_macro_f1" in r] == [5, 10, 15, 20]


def test_finetune_with_threads_follows_the_plain_loop_and_resumes_exactly(pretrained, tmp_path):
    plain = finetune(ft_cfg(pretrained, tmp_path / "a", dropout=0.0, max_iters=8))
    split = finetune(ft_cfg(pretrained, tmp_path / "b", dropout=0.0, max_iters=8, threads=3))
    np.testing.assert_allclose(split["history"], plain["history"], rtol=1e-4)  # float32, same batches
    assert split["val"]["accuracy"] == plain["val"]["accuracy"]
    full = finetune(ft_cfg(pretrained, tmp_path / "c", dropout=0.1, threads=2))
    part = finetune(ft_cfg(pretrained, tmp_path / "d", dropout=0.1, threads=2), stop_at=13)
    rest = finetune(ft_cfg(pretrained, tmp_path / "d", dropout=0.1, threads=2), resume=True)
    assert part["history"] + rest["history"] == full["history"]  # bit-for-bit with dropout, 2 threads
    with pytest.raises(ValueError, match="threads=0"):
        finetune(ft_cfg(pretrained, tmp_path / "e", threads=0))


def test_finetune_fast_and_reference_paths_reach_the_same_loss(pretrained, tmp_path):
    from tinygrad_lm import fast

    fast_run = finetune(ft_cfg(pretrained, tmp_path / "a", dropout=0.1, max_iters=20, threads=1))  # the same draws
    reference = finetune(ft_cfg(pretrained, tmp_path / "b", dropout=0.1, max_iters=20, reference=True))
    np.testing.assert_allclose(fast_run["history"], reference["history"], rtol=1e-5)  # float32 noise
    assert fast_run["val"]["accuracy"] == reference["val"]["accuracy"]
    fused = [type(m) for m in fast.fuse(load_classifier(tmp_path / "a" / "ft" / "ckpt.npz")[0]).modules()]
    assert set(fused) & set(fast.FUSED.values())  # the classifier has layers the fast path swaps
    with pytest.raises(ValueError, match="--reference"):
        finetune(ft_cfg(pretrained, tmp_path / "c", reference=True, threads=2))


def test_finetune_holds_out_validation_when_no_val_file_is_given(pretrained, tmp_path):
    cfg = ft_cfg(pretrained, tmp_path, val=None, test=None, max_iters=4, eval_interval=2, freeze_body=True,
                 pooling="mean", threads=2)  # a frozen body on the split batch too
    result = finetune(cfg)
    assert int(result["val"]["confusion"].sum()) == 5  # round(0.1 * 48)
    assert load_classifier(tmp_path / "ft" / "best.npz")[0].pooling == "mean"
    _, body, _ = checkpoint.load(pretrained)
    _, tuned, _ = checkpoint.load(tmp_path / "ft" / "ckpt.npz")
    for k in body:  # the frozen body did not move; the head did train
        if k.startswith("transformer."):
            np.testing.assert_array_equal(tuned[k], body[k])
    assert len(result["history"]) == 4


# ----------------------------------------------------------------------------------- CLI
def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tinygrad_lm", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_cli_finetune_runs_and_reports_metrics(pretrained, tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", toy_rows(24, seed=3))
    val_path = write_jsonl(tmp_path / "val.jsonl", toy_rows(8, seed=4))
    proc = run_cli("finetune", "--ckpt", str(pretrained), "--data", str(train_path), "--val", str(val_path),
                   "--max-iters", "4", "--eval-interval", "2", "--batch-size", "4", "--out-dir",
                   str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "macro-F1" in proc.stdout and "true \\ pred" in proc.stdout and "loaded" in proc.stdout
    meta, _, _ = checkpoint.load(tmp_path / "run" / "best.npz")
    assert meta["label_names"] == ["cat", "dog"]


def test_cli_finetune_bad_line_is_one_error_line(pretrained, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a cat", "label": "cat"}\n{"text": "a dog" "label": "dog"}\n', encoding="utf-8")
    proc = run_cli("finetune", "--ckpt", str(pretrained), "--data", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "line 2: malformed JSON" in proc.stderr and "Traceback" not in proc.stderr
