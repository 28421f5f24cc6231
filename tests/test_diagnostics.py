"""`--diagnostics` (run/diagnostics.py) and `plot RUN --diagnostics` (run/plot_diagnostics.py).

Pinned: a record at every logged step (Run.log_step's steps, the last included) naming every
trained parameter, layer and block; its numbers equal a hand computation (gradient norms of the
.grad the update used, after clipping; ||dw||/||w|| from the weights before and after; block
output mean/std and GELU saturation from run_with_cache on the same batch, padding left out);
--threads 2 with 2 micro-batches gives the numbers of one thread and one batch; off by default
nothing is attached; a resumed run may turn it on, and its first record matches the saved weights;
finetune and `--objective mlm` log it too; the plot draws a PNG and refuses a run without records.
"""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.models.bert import BertConfig
from tinygrad_lm.models.bert_classifier import BertForSequenceClassification
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification
from tinygrad_lm.optim import AdamW, param_groups
from tinygrad_lm.run import cli, plot
from tinygrad_lm.run.config import from_flat, with_flat
from tinygrad_lm.run.diagnostics import GELU_FLAT, Diagnostics, layer_names, logs
from tinygrad_lm.run.finetune import FinetuneConfig, finetune
from tinygrad_lm.run.loop import train_step
from tinygrad_lm.run.train import TrainConfig, _start, train
from tinygrad_lm.testing.backends import cuda_devices

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def tiny_cfg(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), block_size=16, n_layer=2, n_head=2, n_embd=16, batch_size=4, max_iters=7,
               warmup_iters=2, eval_interval=100, eval_iters=1, log_interval=3, out_dir=str(out_dir),
               sample_tokens=0, quiet=True, dropout=0.0, diagnostics=True)
    cfg.update(kw)
    return from_flat(TrainConfig, **cfg)


def records(run_dir, kind):
    lines = [json.loads(line) for line in open(run_dir / "log.jsonl", encoding="utf-8")]
    return [r for r in lines if plot._kind(r) == kind]


def numbers(record):
    """Every number of a diagnostics record, by its path: {("params", name, key): value}."""
    return {(section, name, key): value for section in ("params", "layers", "blocks")
            for name, stats in record["diagnostics"][section].items() for key, value in stats.items()}


# ----------------------------------------------------------------------------- the loop's records
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_a_record_at_every_logged_step_names_every_parameter_layer_and_block(text_file, tmp_path, objective, capsys):
    out = tmp_path / "run"
    result = train(tiny_cfg(text_file, out, objective=objective, pos_encoding="learned", quiet=False))
    diag, steps = records(out, "diagnostics"), records(out, "step")
    assert [r["step"] for r in diag] == [r["step"] for r in steps] == [3, 6, 7]  # Run.log_step's, the last too
    model = result["model"]
    trained = [n for n, p in model.named_parameters() if objective == "clm" or not n.startswith("bert.pooler")]
    blocks = [f"transformer.h.{i}" if objective == "clm" else f"bert.encoder.layer.{i}" for i in range(2)]
    for r in diag:
        d = r["diagnostics"]
        assert list(d["params"]) == trained  # MLM's pooler takes no part in the loss: no gradient, left out
        assert set(d["params"][trained[0]]) == {"grad_norm", "weight_norm", "update_norm", "update_ratio"}
        assert list(d["layers"]) == ["embeddings", *blocks, "head"]
        assert list(d["blocks"]) == blocks
        for stats in d["blocks"].values():
            assert set(stats) == {"mean", "std", "saturation"} and stats["std"] > 0 and 0 <= stats["saturation"] <= 1
    printed = [line for line in capsys.readouterr().out.splitlines() if "diagnostics @" in line]
    assert [line.split("@ ")[1].split(" ")[0] for line in printed] == ["3", "6", "7"]
    assert "update/data median" in printed[0] and "block output std" in printed[0]
    warnings = []
    log = plot.read_log(out, warn=warnings.append)  # the plot's reader knows the new record: no warning
    assert not warnings and log.steps == [3, 6, 7] and [r["step"] for r in log.diagnostics] == [3, 6, 7]
    assert not any(m._forward_hooks for m in model.modules())  # detached at the end


def test_logs_is_run_log_steps_rule():
    assert [s for s in range(1, 24) if logs(s, 5, 23)] == [5, 10, 15, 20, 23]
    assert [s for s in range(1, 21) if logs(s, 5, 20)] == [5, 10, 15, 20]


def test_layers_are_the_blocks_with_what_comes_before_and_after():
    names = ["wte.weight", "h.0.a.weight", "h.1.a.weight", "h.10.a.weight", "ln_f.weight", "head.weight"]
    assert layer_names(names, ["h.0", "h.1", "h.10"]) == {
        "wte.weight": "embeddings", "h.0.a.weight": "h.0", "h.1.a.weight": "h.1", "h.10.a.weight": "h.10",
        "ln_f.weight": "head", "head.weight": "head"}


# ----------------------------------------------------------------------------- the numbers, by hand
def model_and_batch(kind, rng):
    """A float64 model with its MLP input weights scaled up (so some GELU inputs fall below -3), and a batch."""
    B, T = 3, 6
    idx = rng.integers(0, 11, (B, T))
    if kind == "gpt":
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
        batch = {"idx": idx, "targets": rng.integers(0, 11, (B, T))}
    else:
        mask = np.ones((B, T), dtype=np.int64)
        mask[0, 4:] = mask[2, 2:] = 0  # right padding
        if kind == "gpt-classifier":
            model = GPTForSequenceClassification(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2,
                                                           n_embd=8), 3)
        else:
            model = BertForSequenceClassification(BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=2,
                                                             num_attention_heads=2, intermediate_size=16,
                                                             max_position_embeddings=8, hidden_dropout_prob=0.0,
                                                             attention_probs_dropout_prob=0.0), 3)
        batch = {"idx": idx, "attention_mask": mask, "labels": rng.integers(0, 3, B)}
    model.to(dtype=np.float64)
    for name, p in model.named_parameters():
        if name.endswith(("mlp.c_fc.weight", "intermediate.dense.weight")):
            p.data = p.data * 60.0  # N(0, 0.02) init: GELU inputs of std about 3
    return model, batch


def hand_block_stats(model, batch, blocks):
    """Mean, std and share of GELU inputs < -3 of each block's output on `batch`, real tokens only."""
    inputs = {k: v for k, v in batch.items() if k not in ("targets", "labels")}
    model.eval()  # dropout is 0: the training forward's values; diagnostics hooks skip eval forwards
    _, cache = model.run_with_cache(**inputs)
    model.train()
    real = batch.get("attention_mask", np.ones(batch["idx"].shape)).astype(bool)  # (B, T)
    out = {}
    for name in blocks:
        x = cache[name].data[real]  # (real tokens, C)
        gelu_in = next(cache[f"{name}.{m}"].data[real] for m in ("mlp.c_fc", "intermediate.dense")
                       if f"{name}.{m}" in cache)  # (real tokens, 4C)
        out[name] = {"mean": x.mean(), "std": x.std(), "saturation": (gelu_in < GELU_FLAT).mean()}
    return out


@pytest.mark.parametrize("kind", ["gpt", "gpt-classifier", "bert-classifier"])
def test_the_numbers_equal_a_hand_computation(kind, rng):
    model, batch = model_and_batch(kind, rng)
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=0.01)
    logged, printed = [], []
    run = SimpleNamespace(record=logged.append, print=printed.append)
    diag = Diagnostics(model, optimizer, run, start_step=0, max_iters=2, log_interval=2)
    blocks = [name for name, _ in diag.blocks]
    train_step(model, optimizer, [(batch, 1.0)], grad_clip=0.05)
    assert not logged  # step 1: not logged
    expected = hand_block_stats(model, batch, blocks)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    train_step(model, optimizer, [(batch, 1.0)], grad_clip=0.05)  # step 2: logged
    (record,) = logged
    assert record["step"] == 2 and len(printed) == 1
    d = record["diagnostics"]
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}  # what the update used
    assert list(d["params"]) == list(grads)
    for name, stats in d["params"].items():
        p = dict(model.named_parameters())[name]
        update, weight = np.linalg.norm(p.data - before[name]), np.linalg.norm(before[name])
        assert stats["grad_norm"] == pytest.approx(np.linalg.norm(grads[name]), rel=1e-12)
        assert stats["update_norm"] == pytest.approx(update, rel=1e-12, abs=1e-300)
        assert stats["update_ratio"] == (pytest.approx(update / weight, rel=1e-12) if weight else None)
    assert d["grad_norm"] == pytest.approx(0.05, rel=1e-4)  # after clipping: max_norm / (norm + 1e-6) * norm
    for layer, stats in d["layers"].items():
        mine = [s for n, s in d["params"].items() if diag.layer_of[n] == layer]
        assert stats["update_norm"] == pytest.approx(math.sqrt(sum(s["update_norm"] ** 2 for s in mine)), rel=1e-12)
        assert stats["update_ratio"] == pytest.approx(stats["update_norm"] / math.sqrt(
            sum(s["weight_norm"] ** 2 for s in mine)), rel=1e-12)
    assert list(d["blocks"]) == blocks
    for name in blocks:
        for key in ("mean", "std", "saturation"):
            assert d["blocks"][name][key] == pytest.approx(expected[name][key], rel=1e-9, abs=1e-12), (name, key)
    assert any(d["blocks"][b]["saturation"] > 0 for b in blocks)  # the scaled weights put some inputs below -3
    diag.detach()
    assert not any(m._forward_hooks for m in model.modules()) and "step" not in vars(optimizer)


def test_a_resumed_run_may_turn_it_on_and_its_first_update_is_the_saved_weights_to_the_new(text_file, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(text_file, out, diagnostics=False, max_iters=3, log_interval=1), stop_at=2)  # ckpt.npz: step 2
    _, w2, _ = checkpoint.load(out / "ckpt.npz")
    assert not records(out, "diagnostics")
    train(tiny_cfg(text_file, out, max_iters=3, log_interval=1), resume=True, given={"diagnostics"})
    _, w3, _ = checkpoint.load(out / "ckpt.npz")
    (record,) = records(out, "diagnostics")
    assert record["step"] == 3
    for name, stats in record["diagnostics"]["params"].items():
        assert stats["weight_norm"] == pytest.approx(np.linalg.norm(w2[name].astype(np.float64)), rel=1e-6)
        assert stats["update_norm"] == pytest.approx(
            np.linalg.norm(w3[name].astype(np.float64) - w2[name]), rel=1e-6, abs=1e-12)


def test_threads_and_micro_batches_give_the_numbers_of_one_thread_and_one_batch(text_file, tmp_path):
    kw = dict(max_iters=4, log_interval=2, n_layer=2)
    train(tiny_cfg(text_file, tmp_path / "one", batch_size=8, **kw))
    train(tiny_cfg(text_file, tmp_path / "split", batch_size=4, grad_accum=2, threads=2, **kw))
    one, split = records(tmp_path / "one", "diagnostics"), records(tmp_path / "split", "diagnostics")
    assert [r["step"] for r in one] == [r["step"] for r in split] == [2, 4]
    for a, b in zip(one, split):
        a, b = numbers(a), numbers(b)
        assert a.keys() == b.keys()
        for key in a:  # float32 forward and backward, summed in another order
            assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-7), key


def test_off_by_default_nothing_is_attached(text_file, tmp_path):
    cfg = tiny_cfg(text_file, tmp_path / "off", diagnostics=False, threads=2)
    assert not from_flat(TrainConfig).run.diagnostics
    _, model, optimizer, *_, state, run, _ = _start(cfg, False, False, None)
    try:
        assert state["diagnostics"] is None
        assert not any(m._forward_hooks for m in model.module.modules())
        split_step = vars(optimizer)["step"]  # --threads 2: fast.split_optimizer_step's, nobody else's
        assert split_step.__qualname__ == "split_optimizer_step.<locals>.step"
    finally:
        run.close()
    _, model, optimizer, *_, state, run, _ = _start(with_flat(cfg, diagnostics=True, out_dir=str(tmp_path / "on")),
                                                    False, False, None)
    try:
        assert optimizer.step == state["diagnostics"].step
        assert sum(bool(m._forward_hooks) for m in model.module.modules()) == 4  # 2 blocks, 2 GELU inputs
        state["diagnostics"].detach()
        assert vars(optimizer)["step"].__qualname__ == split_step.__qualname__  # (another optimizer's: another run)
        assert not any(m._forward_hooks for m in model.module.modules())
    finally:
        run.close()
    train(tiny_cfg(text_file, tmp_path / "plain", diagnostics=False))
    assert not records(tmp_path / "plain", "diagnostics") and records(tmp_path / "plain", "step")


def test_finetune_logs_diagnostics(text_file, tmp_path):
    train(tiny_cfg(text_file, tmp_path / "pre", diagnostics=False, max_iters=2, eval_interval=2))
    rows = [{"text": t, "label": t.split()[0]} for t in ("Speak, speak.", "All: speak.", "Speak all.", "All speak.")]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4), encoding="utf-8")
    finetune(from_flat(FinetuneConfig, ckpt=str(tmp_path / "pre" / "best.npz"), data=str(data), val=str(data),
                       batch_size=4, max_iters=4, eval_interval=4, log_interval=2, out_dir=str(tmp_path / "ft"),
                       quiet=True, diagnostics=True))
    diag = records(tmp_path / "ft", "diagnostics")
    assert [r["step"] for r in diag] == [2, 4]
    d = diag[0]["diagnostics"]
    assert list(d["blocks"]) == ["transformer.h.0", "transformer.h.1"]
    assert {"score.weight", "score.bias"} <= set(d["params"]) and d["layers"]["head"]["update_norm"] > 0


# ----------------------------------------------------------------------------- reading and drawing
def test_a_resumed_run_replaces_the_diagnostics_it_redid(tmp_path):
    lines = []
    for s in (10, 20, 30, 20, 30):  # killed after 30, resumed from the step-10 checkpoint... or 20's
        lines += [{"step": s, "diagnostics": {"params": {}, "layers": {}, "blocks": {}, "grad_norm": s}},
                  {"step": s, "loss": 1.0, "lr": 1e-3}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    log = plot.read_log(tmp_path)
    assert [r["step"] for r in log.diagnostics] == [10, 20, 30] and log.steps == [10, 20, 30]


def test_plot_draws_the_diagnostics_and_refuses_a_run_without_them(text_file, tmp_path, capsys, monkeypatch):
    train(tiny_cfg(text_file, tmp_path / "plain", diagnostics=False))
    assert cli.main(["plot", str(tmp_path / "plain"), "--diagnostics"]) == 2
    err = capsys.readouterr().err
    assert "no diagnostics records; run it with --diagnostics" in err and "Traceback" not in err
    pytest.importorskip("matplotlib")
    train(tiny_cfg(text_file, tmp_path / "diag"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plot", "diag", "--diagnostics"]) == 0
    assert "wrote diagnostics.png (3 diagnostics records of diag, steps 3 to 7)" in capsys.readouterr().out
    assert (tmp_path / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["plot", "diag", "plain", "--diagnostics"]) == 2
    assert "--diagnostics draws one run" in capsys.readouterr().err


def test_two_mpi_ranks_log_the_whole_batchs_numbers(text_file, tmp_path):
    """Each rank sees half the rows: the activation sums are all-reduced, so rank 0 logs what
    --threads 2 logs (whose hooks see the joined batch: an exact sum, where the ranks add two
    rounded halves, so equal up to the last bit of a float64)."""
    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
    mpiexec = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on the PATH (pip install mpich)")
    flags = ["--data", str(text_file), "--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
             "--batch-size", "4", "--max-iters", "4", "--eval-interval", "4", "--eval-iters", "1", "--log-interval",
             "2", "--sample-tokens", "0", "--diagnostics", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for launch, out in (([mpiexec, "-n", "2"], "mpi"), ([], "threads")):
        extra = ["--dist", "mpi"] if launch else ["--threads", "2"]
        done = subprocess.run([*launch, sys.executable, "-m", "tinygrad_lm", "train", *flags, *extra, "--out-dir",
                               str(tmp_path / out)], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    ranks, threads = records(tmp_path / "mpi", "diagnostics"), records(tmp_path / "threads", "diagnostics")
    assert [r["step"] for r in ranks] == [r["step"] for r in threads] == [2, 4]
    for a, b in zip(ranks, threads):
        a, b = numbers(a), numbers(b)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-300) for k in a)


@pytest.mark.parametrize("device", cuda_devices())
def test_on_the_device_the_numbers_are_the_cpus(device, text_file, tmp_path):
    """CuPy arrays (a GPU, or the suite's CuPy stand-in): the norms and sums run where the arrays live."""
    train(tiny_cfg(text_file, tmp_path / "cpu", max_iters=4, log_interval=2))
    train(tiny_cfg(text_file, tmp_path / "gpu", max_iters=4, log_interval=2, device=device))
    cpu, gpu = records(tmp_path / "cpu", "diagnostics"), records(tmp_path / "gpu", "diagnostics")
    assert [r["step"] for r in gpu] == [2, 4]
    for a, b in zip(map(numbers, cpu), map(numbers, gpu)):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-7), key


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf step's NaN arithmetic
def test_a_run_stopped_by_a_nan_loss_leaves_no_hook_and_no_wrapped_step(text_file, tmp_path, monkeypatch):
    from tinygrad_lm.run import train as train_module
    from tinygrad_lm.run.loop import TrainingStopped

    started = []
    real_start = train_module._start
    monkeypatch.setattr(train_module, "_start", lambda *a: started.append(real_start(*a)) or started[-1])
    with pytest.raises(TrainingStopped):
        train(tiny_cfg(text_file, tmp_path / "nan", lr=1e30))
    _, model, optimizer, *_ = started[0]
    assert not any(m._forward_hooks for m in model.modules())
    own = vars(optimizer).get("step")  # the class's own step again, or --threads auto's split step (2+ cores)
    assert own is None or own.__qualname__ == "split_optimizer_step.<locals>.step"
