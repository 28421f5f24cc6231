"""Pretraining loop, data pipeline and checkpoints: resume, safety, clear errors, and the fast
path pinned to the reference path; the nested configs and their flat names."""
import json
import math
from dataclasses import asdict

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm import fast
from tinygrad_lm.run.config import OptimConfig, RunConfig, flat_dict, from_dict, from_flat
from tinygrad_lm.run.data import TokenData, builtin_corpus, get_batch, read_text
from tinygrad_lm.run.loop import learning_rate
from tinygrad_lm.models.gpt import GPT, sample_text
from tinygrad_lm.run.train import load_model
from tinygrad_lm.run.train import TrainConfig, TrainingStopped, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def tiny_cfg(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), block_size=16, n_layer=1, n_head=2, n_embd=16, batch_size=4, max_iters=30,
               warmup_iters=5, eval_interval=10, eval_iters=2, log_interval=5, out_dir=str(out_dir),
               sample_tokens=0, quiet=True, dropout=0.1)
    cfg.update(kw)
    return from_flat(TrainConfig, **cfg)


def test_training_lowers_the_loss_and_writes_log_and_checkpoints(text_file, tmp_path):
    result = train(tiny_cfg(text_file, tmp_path / "run", max_iters=60, lr=3e-3))
    losses = result["losses"]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
    records = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    evals = [r for r in records if "val_loss" in r]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30, 40, 50, 60]
    assert {"lr", "tokens_per_s", "ms_per_step"} <= set(steps[0])
    for r in evals:
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
        assert r["val_bpb"] == pytest.approx(r["val_loss"] / math.log(2) / result["bytes_per_token"])
    assert (tmp_path / "run" / "ckpt.npz").exists() and (tmp_path / "run" / "best.npz").exists()
    meta, _, _ = checkpoint.load(tmp_path / "run" / "best.npz")
    assert meta["best_val"] == pytest.approx(min(r["val_loss"] for r in evals))


def test_resumed_run_matches_uninterrupted_run_exactly(text_file, tmp_path):
    full = train(tiny_cfg(text_file, tmp_path / "a"))
    part = train(tiny_cfg(text_file, tmp_path / "b"), stop_at=13)  # stops mid-interval, as Ctrl-C would
    assert part["interrupted"] and part["step"] == 13
    rest = train(tiny_cfg(text_file, tmp_path / "b"), resume=True)
    assert rest["step"] == 30
    assert part["losses"] + rest["losses"] == full["losses"]  # bit-for-bit, with dropout on
    _, wa, _ = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    _, wb, _ = checkpoint.load(tmp_path / "b" / "ckpt.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])


def test_resuming_keeps_the_best_val_loss_and_best_npz(text_file, tmp_path):
    """A resumed run carries the best val loss on: a later, worse evaluation neither replaces it
    nor rewrites best.npz (with best_val reset to inf on resume, both would happen). At a constant
    lr of 1 and seed 1 the val loss is lowest at step 6 of 12 (the premise, checked below: another
    seed or other dropout masks give another trajectory); the run stops at step 7 and resumes."""
    def cfg(out):
        return tiny_cfg(text_file, tmp_path / out, max_iters=12, eval_interval=3, lr=1.0, schedule="constant",
                        warmup_iters=0, seed=1)

    def evals(out):
        return {r["step"]: r["val_loss"] for r in map(json.loads, open(tmp_path / out / "log.jsonl")) if "val_loss" in r}

    full = train(cfg("a"))
    val = evals("a")
    assert min(val, key=val.get) == 6 and full["best_val"] == val[6]  # the premise: the best comes before the stop
    assert train(cfg("b"), stop_at=7)["best_val"] == val[6]
    again = train(cfg("b"), resume=True, stop_at=8)  # resumed and stopped again before any evaluation
    assert again["best_val"] == val[6] and checkpoint.load(tmp_path / "b" / "ckpt.npz")[0]["best_val"] == val[6]
    rest = train(cfg("b"), resume=True)
    assert rest["best_val"] == full["best_val"] and evals("b") == val  # every evaluation, once, with the same loss
    (ma, wa, _), (mb, wb, _) = checkpoint.load(tmp_path / "a" / "best.npz"), checkpoint.load(tmp_path / "b" / "best.npz")
    assert (ma["step"], ma["best_val"]) == (mb["step"], mb["best_val"]) == (6, val[6])
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])
    assert checkpoint.load(tmp_path / "b" / "ckpt.npz")[0]["best_val"] == val[6]

def test_a_run_stopped_at_an_evaluation_step_evaluates_it_after_resuming(text_file, tmp_path):
    """The checkpoint records the last evaluated step: a run stopped right before a due evaluation
    runs it after resuming (it used to skip the start step, losing the evaluation and its best.npz)."""
    train(tiny_cfg(text_file, tmp_path / "a", max_iters=8, eval_interval=2))
    train(tiny_cfg(text_file, tmp_path / "b", max_iters=8, eval_interval=2), stop_at=6)  # step 6 is due an evaluation
    train(tiny_cfg(text_file, tmp_path / "b", max_iters=8, eval_interval=2), resume=True)
    steps = [[r["step"] for r in map(json.loads, open(tmp_path / out / "log.jsonl")) if "val_loss" in r] for out in "ab"]
    assert steps[1] == steps[0] == [2, 4, 6, 8]

def test_threaded_resumed_run_matches_uninterrupted_threaded_run_exactly(text_file, tmp_path):
    full = train(tiny_cfg(text_file, tmp_path / "a", threads=2))
    part = train(tiny_cfg(text_file, tmp_path / "b", threads=2), stop_at=13)
    rest = train(tiny_cfg(text_file, tmp_path / "b", threads=2), resume=True)
    assert part["losses"] + rest["losses"] == full["losses"]  # bit-for-bit, dropout on, 2 threads
    _, wa, _ = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    _, wb, _ = checkpoint.load(tmp_path / "b" / "ckpt.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])


def test_threads_follow_the_plain_loop_without_dropout(text_file, tmp_path):
    plain = train(tiny_cfg(text_file, tmp_path / "a", dropout=0.0, dtype="float64", max_iters=12))
    split = train(tiny_cfg(text_file, tmp_path / "b", dropout=0.0, dtype="float64", max_iters=12, threads=3))
    np.testing.assert_allclose(split["losses"], plain["losses"], rtol=1e-9)  # same batches, same gradients
    assert split["best_val"] == pytest.approx(plain["best_val"], rel=1e-9)  # evaluation shared out over threads
    with pytest.raises(ValueError, match="threads=0"):
        train(tiny_cfg(text_file, tmp_path / "c", threads=0))


def test_threads_2_match_threads_1_on_the_fast_path_in_float32(text_file, tmp_path):
    one = train(tiny_cfg(text_file, tmp_path / "a", dropout=0.0, max_iters=20, threads=1))
    two = train(tiny_cfg(text_file, tmp_path / "b", dropout=0.0, max_iters=20, threads=2))
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)  # float32: the order of sums differs
    assert two["best_val"] == pytest.approx(one["best_val"], rel=1e-5)


def _is_fused(model):
    return any(type(m) in fast.FUSED.values() for m in model.modules())


def test_fast_and_reference_paths_reach_the_same_loss(text_file, tmp_path):
    fast_run = train(tiny_cfg(text_file, tmp_path / "fast", max_iters=20, threads=1))  # dropout 0.1: the same draws
    reference = train(tiny_cfg(text_file, tmp_path / "ref", max_iters=20, reference=True))
    assert _is_fused(fast_run["model"]) and not _is_fused(reference["model"])  # two paths really ran
    np.testing.assert_allclose(fast_run["losses"], reference["losses"], rtol=1e-5)  # float32 noise
    assert fast_run["best_val"] == pytest.approx(reference["best_val"], rel=1e-5)


def test_a_fast_checkpoint_loads_into_the_reference_gpt_with_the_same_loss(text_file, tmp_path):
    result = train(tiny_cfg(text_file, tmp_path / "run", max_iters=10, threads=2))
    fused = result["model"].eval()
    reference, _, meta = load_model(tmp_path / "run" / "ckpt.npz")
    assert type(reference) is GPT and not _is_fused(reference.eval())
    data = TokenData(TEXT, result["tokenizer"])
    x, y = get_batch(data.val, 4, 16, np.random.default_rng(0))
    _, want = fused(x, y)
    _, got = reference(x, y)
    assert float(got.item()) == pytest.approx(float(want.item()), rel=1e-6)
    back = fast.fuse(reference)  # and back: the same weights under the fused classes
    assert _is_fused(back)
    for k, v in fused.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)


def test_reference_with_threads_is_a_clear_error(text_file, tmp_path):
    with pytest.raises(ValueError, match=r"--reference .*drop --threads 2"):
        train(tiny_cfg(text_file, tmp_path / "run", reference=True, threads=2))
    with pytest.raises(ValueError, match="threads=2 .*on cuda use --threads 1"):
        RunConfig(device="cuda", threads=2)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(text_file, tmp_path, monkeypatch):
    from tinygrad_lm.models import gpt as model_module

    cfg = tiny_cfg(text_file, tmp_path / "run", max_iters=30, threads=1)  # one forward per step
    original = model_module.GPT.forward
    calls = {"n": 0}

    def poisoned(self, idx, targets=None, attention_mask=None):
        logits, loss = original(self, idx, targets, attention_mask)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 15:  # the 15th training step (step index 14)
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(model_module.GPT, "forward", poisoned)
    with pytest.raises(TrainingStopped, match="in step 15;"):  # numbered as the progress lines: steps done
        train(cfg)
    meta, _, _ = checkpoint.load(tmp_path / "run" / "ckpt.npz")
    assert meta["step"] == 10  # the checkpoint of the last evaluation, untouched


def test_sample_from_checkpoint(text_file, tmp_path):
    train(tiny_cfg(text_file, tmp_path / "run", max_iters=10))
    model, tok, meta = load_model(tmp_path / "run" / "ckpt.npz")
    a = sample_text(model, tok, "Speak", 20, seed=3)
    assert a.startswith("Speak") and len(a) == len("Speak") + 20
    assert a == sample_text(model, tok, "Speak", 20, seed=3)


def test_checkpoint_errors_are_clear(text_file, tmp_path):
    train(tiny_cfg(text_file, tmp_path / "run", max_iters=10))
    path = tmp_path / "run" / "ckpt.npz"
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated.npz.*(truncated|corrupted)"):
        load_model(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_model(garbage)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")
    # a checkpoint whose weights do not fit its config (incompatible) names the keys
    meta, state, optim = checkpoint.load(path)
    state["transformer.wte.weight"] = state["transformer.wte.weight"][:, :8]
    state.pop("transformer.ln_f.bias")
    bad = tmp_path / "bad.npz"
    checkpoint.save(bad, state, optim, meta)
    with pytest.raises(ValueError, match=r"bad.npz.*missing keys.*ln_f.bias.*shape mismatches.*wte.weight"):
        load_model(bad)
    # resuming a run whose checkpoint holds another model config is refused, naming both configs
    meta, state, optim = checkpoint.load(path)
    meta["model_config"]["n_embd"] = 32
    checkpoint.save(tmp_path / "run2" / "ckpt.npz", state, optim, meta)
    with pytest.raises(ValueError, match="ckpt.npz: checkpoint model config .*does not match"):
        train(tiny_cfg(text_file, tmp_path / "run2"), resume=True)


def test_data_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        read_text(empty)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 ok".encode("utf-8") + b" and \xff here")
    with pytest.raises(ValueError, match=r"latin1.txt is not valid UTF-8: .*0xff at byte offset 13"):
        read_text(bad)


def test_corpus_shorter_than_block_size_is_refused(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny text.", encoding="utf-8")
    with pytest.raises(ValueError, match="too short.*block_size=16"):
        train(tiny_cfg(short, tmp_path / "run"))


def test_batches_are_shifted_windows_and_seeded(text_file):
    from tinygrad_lm.tokenizer import CharTokenizer

    tok = CharTokenizer(TEXT)
    data = TokenData(TEXT, tok)
    assert data.train.dtype == np.uint16
    assert len(data.train) + len(data.val) == len(TEXT)
    x, y = get_batch(data.train, 4, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    x2, _ = get_batch(data.train, 4, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    assert tok.decode(x[0].tolist()) in TEXT


def test_batches_reach_the_last_window_of_the_data():
    ids = np.arange(9, dtype=np.uint16)  # block_size + 1 tokens: the one window is the whole array
    x, y = get_batch(ids, 3, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(x, np.tile(ids[:-1], (3, 1)))
    np.testing.assert_array_equal(y, np.tile(ids[1:], (3, 1)))
    ids = np.arange(20, dtype=np.uint16)  # windows start at 0..11 (len - block_size - 1); x[:, 0] is the start
    x, y = get_batch(ids, 400, 8, np.random.default_rng(0))
    assert sorted(set(x[:, 0].tolist())) == list(range(12)) and y[:, -1].max() == 19  # the last token is a target

def test_builtin_corpus_is_deterministic_and_large():
    a = builtin_corpus()
    b = builtin_corpus()  # second call reads the cache
    assert a == b
    assert len(a.encode("utf-8")) > 1_000_000
    assert "Return" in a


# ----------------------------------------------------------------------------- configs and schedule
def test_configs_round_trip_through_asdict_and_flat_names():
    from tinygrad_lm.run.finetune import FinetuneConfig

    cfg = from_flat(TrainConfig, n_layer=2, lr=3e-3, threads=2, tokenizer="bpe", dropout=0.1)
    assert cfg.model.n_layer == 2 and cfg.optim.lr == 3e-3 and cfg.run.threads == 2 and cfg.tokenizer == "bpe"
    assert TrainConfig.from_dict(asdict(cfg)) == cfg
    assert from_dict(TrainConfig, asdict(TrainConfig())) == TrainConfig()
    assert from_flat(TrainConfig, **flat_dict(cfg)) == cfg
    assert "vocab_size" in flat_dict(cfg) and flat_dict(cfg)["vocab_size"] == 1024  # the BPE size, not the model's
    ft = from_flat(FinetuneConfig, ckpt="a.npz", data="d.jsonl", lr=1e-3, reference=True)
    assert FinetuneConfig.from_dict(asdict(ft)) == ft
    # each command keeps its own defaults for the shared sections, also for the settings left out
    assert (ft.optim.batch_size, ft.optim.max_iters, ft.run.out_dir) == (16, 300, "runs/finetune")
    assert (cfg.optim.batch_size, cfg.optim.max_iters, cfg.run.out_dir) == (12, 2000, "runs/default")
    assert FinetuneConfig.from_dict({"optim": {"lr": 0.5}, "run": {}}).optim.weight_decay == 0.01
    with pytest.raises(TypeError, match="n_layers"):
        from_flat(TrainConfig, n_layers=2)
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        from_flat(TrainConfig, n_embd=30)
    with pytest.raises(ValueError, match=r"not a TrainConfig.*missing sections \['model', 'optim', 'run'\].*older"):
        TrainConfig.from_dict(flat_dict(cfg))  # the flat dicts of checkpoints written before nesting
    with pytest.raises(ValueError, match=r"train_config.optim: .*unknown keys \['learning_rate'\]"):
        TrainConfig.from_dict({**asdict(cfg), "optim": {"learning_rate": 1.0}})


def test_resuming_an_old_flat_checkpoint_says_so(text_file, tmp_path):
    train(tiny_cfg(text_file, tmp_path / "run", max_iters=5))
    path = tmp_path / "run" / "ckpt.npz"
    meta, state, optim = checkpoint.load(path)
    meta["train_config"] = flat_dict(TrainConfig.from_dict(meta["train_config"]))  # the old, flat layout
    checkpoint.save(path, state, optim, meta)
    with pytest.raises(ValueError, match=r"ckpt.npz: train_config: .*older tinygrad_lm.*start a new run"):
        train(tiny_cfg(text_file, tmp_path / "run"), resume=True)
    model, _, _ = load_model(path)  # its weights still load
    assert model.config.n_embd == 16


def test_learning_rate_schedules():
    cosine = OptimConfig(lr=1.0, min_lr=0.1, warmup_iters=4, max_iters=10)
    assert [learning_rate(s, cosine) for s in (0, 3, 4, 7, 10, 12)] == pytest.approx([0.2, 0.8, 1.0, 0.55, 0.1, 0.1])
    constant = OptimConfig(lr=1.0, schedule="constant", warmup_iters=4, max_iters=10)
    assert [learning_rate(s, constant) for s in (0, 3, 4, 9)] == pytest.approx([0.2, 0.8, 1.0, 1.0])
    short = OptimConfig(lr=1.0, min_lr=0.0, warmup_iters=100, max_iters=3)  # warmup capped at the run's length
    assert [learning_rate(s, short) for s in range(3)] == pytest.approx([0.25, 0.5, 0.75])
    with pytest.raises(ValueError, match=r"min_lr 0.0001 is above lr 1e-05: the cosine schedule would rise"):
        OptimConfig(lr=1e-5, min_lr=1e-4, warmup_iters=0, max_iters=10)  # refused at the door (issue #28)
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'constant'"):
        OptimConfig(schedule="linear")


def test_tf32_is_off_by_default_and_needs_cuda():
    assert RunConfig().tf32 is False
    with pytest.raises(ValueError, match="--tf32 makes CUDA matmuls use TF32 tensor cores; it needs --device cuda"):
        from_flat(TrainConfig, tf32=True)
