"""Gradient accumulation (`--grad-accum K`): K micro-batches of B rows give the gradient, the
loss and the update of one batch of K*B rows, in float64, on every path (reference, fast,
threads), in pretraining and fine-tuning; resume stays bit for bit."""
import numpy as np
import pytest

from tinygrad_lm.run import loop as step_module
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.data import micro_batch_rows
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.run.train import TrainConfig, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def cfg64(text_file, out_dir, **kw):
    values = dict(data=str(text_file), block_size=8, n_layer=1, n_head=2, n_embd=16, max_iters=1, warmup_iters=0,
                  eval_interval=100, eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(out_dir), dropout=0.0,
                  dtype="float64", lr=1e-2)
    values.update(kw)
    return from_flat(TrainConfig, **values)


def record_clipped_grads(loop_module, monkeypatch):
    """A list that gets, at every step, float64 copies of the gradients `train_step` (in
    `loop_module`, shared by every loop) hands to clip_grad_norm_ (the step's whole gradient,
    before the update)."""
    seen = []
    clip = loop_module.clip_grad_norm_

    def record(params, max_norm):
        params = list(params)
        seen.append([np.array(p.grad, dtype=np.float64) for p in params])
        return clip(params, max_norm)

    monkeypatch.setattr(loop_module, "clip_grad_norm_", record)
    return seen


def first_step_grads(cfg, monkeypatch):
    """The gradients the first optimizer step sees, and the run."""
    seen = record_clipped_grads(step_module, monkeypatch)
    result = train(cfg)
    return seen[0], result


def test_micro_batches_weight_each_by_its_share_of_the_counted_targets():
    y = np.array([[1, 2, -1], [-1, -1, 3], [4, 5, 6], [7, -1, -1]])  # 2, 1, 3, 1 counted targets
    assert micro_batch_rows(y, 2) == [(slice(0, 2), 3 / 7), (slice(2, 4), 4 / 7)]
    assert micro_batch_rows(y, 1) == [(slice(0, 4), 1.0)]
    assert [w for _, w in micro_batch_rows(np.zeros((6, 2)), 3)] == [1 / 3] * 3


def test_weighted_micro_batch_gradients_sum_to_the_big_batch_gradient_with_ignored_targets():
    """The rule behind the loop, with uneven counts (-1 targets): the weighted micro-batch losses
    sum to the big batch's mean, and their gradients to its gradient (float64)."""
    model = GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=1, n_head=2, n_embd=8, dropout=0.0)).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, size=(6, 5))
    y = rng.integers(0, 11, size=(6, 5))
    y[0, :4] = -1
    y[3, 1:] = -1
    y[5, 2] = -1
    _, loss = model(x, y)
    loss.backward()
    big = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    total = 0.0
    for rows, weight in micro_batch_rows(y, 3):
        _, part = model(x[rows], y[rows])
        (part * weight).backward()
        total += weight * part.item()
    assert total == pytest.approx(loss.item(), rel=1e-13)
    for a, b in zip(big, [p.grad for p in model.parameters()]):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-14)
    model.zero_grad()  # and the unweighted sum would not pass: the test can fail
    for rows, _ in micro_batch_rows(y, 3):
        model(x[rows], y[rows])[1].backward()
    assert not np.allclose(big[0], model.parameters()[0].grad, rtol=1e-3)


@pytest.mark.parametrize("path", [dict(reference=True), dict(), dict(threads=2), dict(objective="mlm"),
                                  dict(objective="mlm", reference=True)],
                         ids=["reference", "fast", "threads", "mlm", "mlm-reference"])
def test_k_micro_batches_give_the_big_batch_gradient_loss_and_update(text_file, tmp_path, monkeypatch, path):
    big_grads, big = first_step_grads(cfg64(text_file, tmp_path / "big", batch_size=4, **path), monkeypatch)
    for k in (2, 4):
        grads, acc = first_step_grads(cfg64(text_file, tmp_path / f"k{k}", batch_size=4 // k, grad_accum=k, **path),
                                      monkeypatch)
        assert acc["losses"][0] == pytest.approx(big["losses"][0], rel=1e-13)
        for a, b in zip(big_grads, grads):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13)
        for (name, p), q in zip(big["model"].named_parameters(), acc["model"].parameters()):
            np.testing.assert_allclose(q.data, p.data, rtol=1e-10, atol=1e-13, err_msg=name)
    other, _ = first_step_grads(cfg64(text_file, tmp_path / "small", batch_size=2, **path), monkeypatch)
    assert not np.allclose(other[0], big_grads[0], rtol=1e-3)  # another batch: the comparison can fail


def test_grad_accum_counts_every_micro_batch_in_tokens_per_second(text_file, tmp_path):
    import json

    train(cfg64(text_file, tmp_path / "r", batch_size=2, grad_accum=3, max_iters=2, log_interval=1, dtype="float32"))
    records = [json.loads(line) for line in open(tmp_path / "r" / "log.jsonl")]
    step = [r for r in records if "tokens_per_s" in r][0]
    assert step["tokens_per_s"] == pytest.approx(2 * 3 * 8 / (step["ms_per_step"] / 1e3), rel=1e-6)


def test_grad_accum_resumes_bit_for_bit(text_file, tmp_path):
    kw = dict(batch_size=2, grad_accum=2, max_iters=6, eval_interval=3, dtype="float32", dropout=0.1)
    full = train(cfg64(text_file, tmp_path / "a", **kw))
    train(cfg64(text_file, tmp_path / "b", **kw), stop_at=2)
    resumed = train(cfg64(text_file, tmp_path / "b", **kw), resume=True)
    assert resumed["losses"] == full["losses"][2:]
    for p, q in zip(full["model"].parameters(), resumed["model"].parameters()):
        assert np.array_equal(p.data, q.data)


def test_resume_refuses_another_grad_accum(text_file, tmp_path):
    train(cfg64(text_file, tmp_path / "a", batch_size=2, grad_accum=2, max_iters=2))
    with pytest.raises(ValueError, match=r"--grad-accum 4 \(the run has 2\) would change what it computes"):
        train(cfg64(text_file, tmp_path / "a", batch_size=2, grad_accum=4, max_iters=4), resume=True,
              given={"grad_accum", "max_iters"})


@pytest.mark.parametrize("bad", [0, -2])
def test_grad_accum_must_be_positive(bad):
    with pytest.raises(ValueError, match=f"grad_accum must be a positive integer, got {bad}"):
        from_flat(TrainConfig, grad_accum=bad)


def test_finetune_micro_batches_give_the_big_batch_gradient(tmp_path, monkeypatch):
    import json

    from tinygrad_lm.run.finetune import FinetuneConfig, finetune

    text = tmp_path / "corpus.txt"
    text.write_text(TEXT, encoding="utf-8")
    train(cfg64(text, tmp_path / "pre", batch_size=4, max_iters=2))
    rows = [{"text": t, "label": lab} for t, lab in [("Speak, speak.", "a"), ("hear me", "b"), ("All: proceed", "a"),
                                                      ("Before we", "b"), ("First Citizen", "a"), ("any further", "b"),
                                                      ("speak me", "a"), ("we hear", "b")] * 2]
    jsonl = tmp_path / "ft.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def grads(out, **kw):
        seen = record_clipped_grads(step_module, monkeypatch)
        cfg = from_flat(FinetuneConfig, ckpt=str(tmp_path / "pre" / "ckpt.npz"), data=str(jsonl), max_iters=1,
                        eval_interval=100, quiet=True, out_dir=str(tmp_path / out), dropout=0.0, warmup_iters=0,
                        val_fraction=0.25, pooling="mean", **kw)
        result = finetune(cfg)
        return seen[0], result["history"][0]

    big, big_loss = grads("big", batch_size=6)  # fine-tuning runs in float32: float32 tolerances
    acc, acc_loss = grads("acc", batch_size=2, grad_accum=3)
    assert acc_loss == pytest.approx(big_loss, rel=1e-6)
    scale = max(float(np.abs(g).max()) for g in big)
    for a, b in zip(big, acc):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * scale)
    other, _ = grads("other", batch_size=2)
    assert not np.allclose(other[-1], big[-1], rtol=1e-2)  # another batch: the comparison can fail


def test_two_mpi_ranks_with_grad_accum_end_as_two_threads(text_file, tmp_path):
    """Over MPI every micro-batch is split over the ranks and the gradients summed once per step:
    the state of --threads 2 with the same --grad-accum and dropout masks, up to the order of the
    sums (a rank adds its micro-batches first, then the ranks are added; threads the other way
    round), so compared in float64."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
    mpiexec = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on the PATH (pip install mpich)")
    import os

    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(Path(__file__).parents[1]))
    flags = ["-m", "tinygrad_lm", "train", "--data", str(text_file), "--n-layer", "1", "--n-embd", "16", "--n-head",
             "2", "--block-size", "8", "--batch-size", "4", "--grad-accum", "2", "--max-iters", "3", "--eval-interval",
             "3", "--eval-iters", "1", "--sample-tokens", "0", "--dropout", "0.2", "--dtype", "float64", "--quiet"]
    for cmd in ([mpiexec, "-n", "2", sys.executable, *flags, "--dist", "mpi", "--out-dir", "ranks"],
                [sys.executable, *flags, "--threads", "2", "--out-dir", "threads"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    with np.load(tmp_path / "ranks" / "ckpt.npz") as a, np.load(tmp_path / "threads" / "ckpt.npz") as b:
        assert a.files == b.files
        for k in a.files:
            if k != "meta":
                np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_mlm_micro_batches_with_no_picked_position_are_skipped_not_nan(text_file, tmp_path, monkeypatch):
    """Masked LM picks 15% of the positions, so a micro-batch of one short row often has none:
    its loss would be 0/0. The loop skips it (its weight is 0), and the update is still the big batch's."""
    kw = dict(objective="mlm", block_size=4)  # 2 positions per row between [CLS] and [SEP]
    big_grads, big = first_step_grads(cfg64(text_file, tmp_path / "big", batch_size=8, **kw), monkeypatch)
    grads, acc = first_step_grads(cfg64(text_file, tmp_path / "k8", batch_size=1, grad_accum=8, **kw), monkeypatch)
    from tinygrad_lm.run import mlm

    labels = mlm.MLMCollator(big["tokenizer"]).get_batch(big_ids(text_file, big), 8, 4,
                                                           np.random.default_rng(big["config"].run.seed))["labels"]
    assert (labels < 0).all(axis=1).any(), "the test needs a row with no picked position"
    assert np.isfinite(acc["losses"][0]) and acc["losses"][0] == pytest.approx(big["losses"][0], rel=1e-13)
    for a, b in zip(big_grads, grads):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13)


def big_ids(text_file, result):
    from tinygrad_lm.run.data import TokenData

    return TokenData(text_file.read_text(encoding="utf-8"), result["tokenizer"]).train
