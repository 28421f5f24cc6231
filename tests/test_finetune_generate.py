"""Prompt -> completion fine-tuning (`finetune --task generate`): the data and its errors, the loss
mask (exactly zero gradient on the prompt), the grown embedding, truncation, decoding that stops
at the end token, and the loop end to end (learning, resume, threads, gradient accumulation,
the CLI and `sample` on its checkpoint)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import checkpoint, fast
from tinygrad_lm.engine.tensor import Tensor
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.nn import CrossEntropyLoss
from tinygrad_lm.run.completions import (END_TOKEN, add_end_token, end_token_id, fit_length, lm_batch,
                                         load_completions)
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.finetune import FinetuneConfig, finetune
from tinygrad_lm.run.finetune_generate import evaluate, generate_completions, load_completion_model, text_scores
from tinygrad_lm.run.train import TrainConfig, load_model, train
from tinygrad_lm.testing.backends import cuda_devices
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer

REPO = Path(__file__).resolve().parents[1]
CORPUS = "the cat sat on the mat.\nthe dog ran to the log.\n" * 30
MAP = {"cat": "dog", "sat": "ran", "mat": "log", "the": "to"}  # the task: a word -> another word

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny char-level GPT checkpoint made by the real pretraining loop (5 steps)."""
    root = tmp_path_factory.mktemp("pre")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGRAD_LM_CACHE", str(root / "cache"))
        train(from_flat(TrainConfig, data=str(root / "corpus.txt"), max_iters=5, n_layer=2, n_embd=32, n_head=2,
                        block_size=16, batch_size=4, eval_interval=5, eval_iters=1, out_dir=str(root / "run"),
                        quiet=True, sample_tokens=0))
    return root / "run" / "best.npz"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def task_files(folder, n_train=32, seed=1):
    """train.jsonl (n_train drawn pairs) and val.jsonl (each pair once) of the MAP task."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = np.random.default_rng(seed).choice(list(MAP), n_train)
    train_path = write_jsonl(folder / "train.jsonl", [{"prompt": f"{k}.", "completion": MAP[k]} for k in keys])
    val_path = write_jsonl(folder / "val.jsonl", [{"prompt": f"{k}.", "completion": v} for k, v in MAP.items()])
    return train_path, val_path


def gen_cfg(pretrained, folder, **kw):
    train_path, val_path = task_files(folder)
    cfg = dict(task="generate", ckpt=str(pretrained), data=str(train_path), val=str(val_path), batch_size=8,
               max_iters=20, lr=1e-2, warmup_iters=3, eval_interval=10, log_interval=5, dropout=0.0,
               out_dir=str(folder / "ft"), quiet=True)
    cfg.update(kw)
    return from_flat(FinetuneConfig, **cfg)


def char_tokenizer():
    tok = CharTokenizer(CORPUS)
    add_end_token(tok)
    return tok


# ----------------------------------------------------------------------------------- data and its errors
@pytest.mark.parametrize("content, message", [
    ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', "line 2: missing the 'completion' key"),
    ('{"completion": "b"}\n', "line 1: missing the 'prompt' key"),
    ('{"text": "a", "label": "b"}\n', "(labelled lines are for --task classify)"),
    ('\n{"prompt": 3, "completion": "b"}\n', 'line 2: "prompt" must be a string, got int'),
    ('{"prompt": "a", "completion": null}\n', '"completion" must be a string, got NoneType'),
    ('{"prompt": "a", "completion": ""}\n', 'line 1: "completion" is empty'),
    ('{"prompt": "a", "completion": "b"\n', "line 1: malformed JSON"),
    ('["a", "b"]\n', "line 1: expected a JSON object"),
    ("", "the file is empty"),
    ("\n\n", "no examples"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="data.jsonl") as e:
        load_completions(path, char_tokenizer(), 16, 0)
    assert message in str(e.value)


def test_bad_data_leaves_no_run_folder(pretrained, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "cat.", "completion": "dog"}, {"prompt": "the."}])
    cfg = gen_cfg(pretrained, tmp_path, data=str(bad))
    with pytest.raises(ValueError, match="bad.jsonl, line 2: missing the 'completion' key"):
        finetune(cfg)
    assert not (tmp_path / "ft").exists()


def test_encoding_unknown_characters_empty_prompts_and_special_strings(tmp_path):
    tok = char_tokenizer()
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "", "completion": "dog"},
                                              {"prompt": "cat!", "completion": "dog"}])
    with pytest.raises(ValueError, match=r"d.jsonl, line 2: character '!'"):
        load_completions(path, tok, 16, end_token_id(tok))
    data = load_completions(path, tok, 16, end_token_id(tok), unknown="drop")
    assert data.dropped_chars == 1 and tok.decode(data.prompt_ids[1].tolist()) == "cat"
    assert data.prompt_ids[0].tolist() == [end_token_id(tok)]  # an empty prompt is the end token alone
    # BPE: the end token's text inside a prompt is plain text, never the end token's id
    bpe = BPETokenizer()
    bpe.train("some text to learn a few merges from " * 5, 260)
    end = add_end_token(bpe)
    assert end == 260 and bpe.vocab_size == 261 and add_end_token(bpe) == 260  # added once
    path = write_jsonl(tmp_path / "e.jsonl", [{"prompt": f"a {END_TOKEN} b", "completion": "c"}])
    ids = load_completions(path, bpe, 64, end).prompt_ids[0]
    assert end not in ids.tolist() and bpe.decode(ids.tolist()) == f"a {END_TOKEN} b"


def test_a_tokenizer_with_the_end_token_keeps_it_and_the_model_its_size():
    tok = BPETokenizer(special_tokens=[END_TOKEN])  # as GPT-2's tokenizer: <|endoftext|> after the vocabulary
    assert end_token_id(tok) == 256 and add_end_token(tok) == 256 and tok.vocab_size == 257


# ----------------------------------------------------------------------------------- batches and the loss mask
def test_lm_batch_masks_the_prompt_and_the_padding():
    idx, targets = lm_batch([np.array([1, 2, 3]), np.array([4])], [np.array([5, 6]), np.array([7])], end_id=9)
    assert idx.tolist() == [[1, 2, 3, 5, 6], [4, 7, 9, 9, 9]]  # right-padded with the end token
    assert targets.tolist() == [[-1, -1, 5, 6, 9], [7, 9, -1, -1, -1]]  # completion + END only


@pytest.mark.parametrize("fused", [False, True])
def test_prompt_positions_get_exactly_zero_gradient(fused):
    rng = np.random.default_rng(0)
    idx, targets = lm_batch([np.array([1, 2, 3]), np.array([4, 5])], [np.array([5, 6]), np.array([7])], 9)
    logits = Tensor(rng.normal(size=idx.shape + (10,)).astype(np.float32), requires_grad=True)  # (B, T, V)
    loss_fn = fast.fuse(CrossEntropyLoss(ignore_index=-1)) if fused else CrossEntropyLoss(ignore_index=-1)
    loss = loss_fn(logits, targets)
    loss.backward()
    ignored = targets < 0
    assert ignored.sum() == 5 and (logits.grad[ignored] == 0).all()  # prompt and padding: exactly zero
    assert (np.abs(logits.grad[~ignored]).sum(axis=-1) > 0).all()
    x = logits.data.astype(np.float64)  # the loss is the mean over completion tokens and END alone
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    want = -np.mean([logp[b, t, targets[b, t]] for b, t in zip(*np.nonzero(~ignored))])
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_the_masked_loss_has_the_gradient_of_the_completion_positions_alone():
    """Every parameter's gradient equals that of a loss over the completion positions picked out
    by hand: the prompt's positions (and the padding) contribute nothing."""
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    p, c = [np.array([1, 2, 3]), np.array([4])], [np.array([5, 6]), np.array([7, 8])]
    idx, targets = lm_batch(p, c, 9)
    model(idx, targets)[1].backward()
    masked = [q.grad.copy() for q in model.parameters()]
    model.zero_grad()
    rows, cols = [0, 0, 0, 1, 1, 1], [2, 3, 4, 0, 1, 2]  # the positions that read prompt's last token onwards
    logits, _ = model(idx, targets)  # (B, T, V)
    picked = logits[np.array(rows), np.array(cols)]  # (6, V)
    CrossEntropyLoss()(picked, np.array([5, 6, 9, 7, 8, 9])).backward()
    for a, q in zip(masked, model.parameters()):
        np.testing.assert_allclose(a, q.grad, rtol=1e-5, atol=1e-7)


def test_padding_does_not_change_a_sequences_logits():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8)).eval()
    p, c = [np.array([1, 2]), np.array([3, 4, 5, 6])], [np.array([7]), np.array([8, 1])]
    idx, targets = lm_batch(p, c, 9)  # row 0 padded by 3
    alone, _ = lm_batch(p[:1], c[:1], 9)
    padded, _ = model(idx, targets)
    single, _ = model(alone, np.zeros_like(alone))
    np.testing.assert_allclose(padded.data[0, :alone.shape[1]], single.data[0], rtol=1e-5, atol=1e-6)  # float32
    assert not np.allclose(padded.data[0, alone.shape[1]:], 0)  # (the padded positions do compute something)


# ----------------------------------------------------------------------------------- lengths
def test_too_long_examples_are_refused_or_their_prompt_cut_from_the_left(tmp_path):
    tok = char_tokenizer()
    end = end_token_id(tok)
    path = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "the cat.", "completion": "dog"},
                                                 {"prompt": "the dog sat on the mat.", "completion": "log"}])
    with pytest.raises(ValueError, match=r"long.jsonl, line 2: prompt 23 \+ completion 3 tokens = 26 > block_size "
                                         r"16.*--truncate"):
        load_completions(path, tok, 16, end)
    data = load_completions(path, tok, 16, end, truncate=True)
    assert tok.decode(data.prompt_ids[1].tolist()) == "t on the mat."  # the last 13 tokens of the prompt
    assert data.truncated == 1 and data.cut_tokens == 10 and "1 prompts truncated from the left (10 tokens" in \
        data.summary()
    assert len(data.prompt_ids[1]) + len(data.completion_ids[1]) == 16  # the whole context, END only a target
    with pytest.raises(ValueError, match="the completion alone leaves no room"):
        fit_length(np.arange(3), np.arange(16), 16, True, "x")
    assert fit_length(np.arange(3), np.arange(13), 16, False, "x")[1] == 0  # 16 tokens fit exactly


# ----------------------------------------------------------------------------------- the grown embedding
@pytest.mark.parametrize("tied", [True, False])
def test_resize_token_embeddings_adds_mean_rows_and_keeps_the_old_ones(tied):
    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8, tie_weights=tied))
    wte, head = model.transformer.wte.weight.data.copy(), model.lm_head.weight.data.copy()
    model.resize_token_embeddings(9)
    new_wte, new_head = model.transformer.wte.weight.data, model.lm_head.weight.data
    assert new_wte.shape == (9, 8) and model.config.vocab_size == 9 and model.transformer.config.vocab_size == 9
    np.testing.assert_array_equal(new_wte[:7], wte)
    np.testing.assert_allclose(new_wte[7:], np.repeat(wte.mean(0, keepdims=True), 2, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(new_head[:7], head)
    np.testing.assert_allclose(new_head[7:], np.repeat(head.mean(0, keepdims=True), 2, axis=0), rtol=1e-6)
    assert (model.lm_head.weight is model.transformer.wte.weight) == tied
    assert len(model.parameters()) == len(GPT(model.config).parameters())  # registered, a tied pair once
    logits, _ = model(np.array([[7, 8, 1]]), np.array([[8, 7, 1]]))
    assert logits.shape == (1, 3, 9)
    with pytest.raises(ValueError, match="current vocab_size 9"):
        model.resize_token_embeddings(8)


# ----------------------------------------------------------------------------------- decoding
def test_generate_stops_at_the_end_token():
    model = GPT(GPTConfig(vocab_size=6, block_size=16, n_layer=1, n_head=2, n_embd=8))
    prompts = [np.array([1, 2]), np.array([3, 4]), np.array([5])]
    free = model.generate(np.stack(prompts[:2]), 10, temperature=0)[:, 2:]  # (2, 10) greedy tokens, no end token
    j = next(j for j in range(1, 10) if free[0, j] not in free[0, :j])  # a token row 0 first makes at step j
    eos = int(free[0, j])
    ends = [int(np.flatnonzero(row == eos)[0]) + 1 if (row == eos).any() else 10 for row in free]  # tokens made
    out = model.generate(np.stack(prompts[:2]), 10, temperature=0, eos_id=eos)[:, 2:]
    assert ends[0] == j + 1 and out.shape == (2, max(ends))  # stops once every row has made the end token
    for row, full, n in zip(out, free, ends):
        np.testing.assert_array_equal(row[:n], full[:n])  # the same tokens up to the end token
        assert (row[n:] == eos).all()  # then only the end token, while another row goes on
    got = generate_completions(model, prompts, eos, 10)  # the end token and what follows removed
    assert got[0] == free[0, :j].tolist() and got[1] == [t for t in free[1, :ends[1]].tolist() if t != eos]
    assert eos not in got[2] and len(got[2]) <= 10


def test_text_scores_exact_match_bleu_and_chrf():
    from tinygrad_lm.metrics import corpus_bleu, corpus_chrf

    hyps, refs = ["the dog ran", "log", "x y"], ["the dog ran", "log ", "x z"]
    scores = text_scores(hyps, refs)
    assert scores["exact_match"] == pytest.approx(1 / 3)  # "log" != "log ": no normalisation
    assert scores["bleu"] == corpus_bleu(hyps, [refs]).score and scores["chrf"] == corpus_chrf(hyps, [refs]).score
    same = ["the cat sat on the mat", "a dog ran to the log"]
    assert text_scores(same, same) == {"exact_match": 1.0, "bleu": pytest.approx(100), "chrf": pytest.approx(100)}
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        text_scores(["a", "b"], ["a"])


# ----------------------------------------------------------------------------------- the loop end to end
def test_generate_finetuning_learns_the_task_and_samples_stop_at_the_end(pretrained, tmp_path):
    result = finetune(gen_cfg(pretrained, tmp_path, max_iters=60))
    evals = result["evals"]
    assert [e["step"] for e in evals] == [10, 20, 30, 40, 50, 60]
    assert evals[0]["val_exact_match"] < 1.0 and result["val"]["exact_match"] == 1.0
    assert result["val"]["hypotheses"] == list(MAP.values())
    assert result["val"]["chrf"] == pytest.approx(100) and evals[0]["val_chrf"] < 100
    records = [json.loads(line) for line in open(tmp_path / "ft" / "log.jsonl")]
    assert [r["step"] for r in records if "val_exact_match" in r] == [10, 20, 30, 40, 50, 60]
    model, tok, meta = load_completion_model(tmp_path / "ft" / "best.npz")
    assert meta["kind"] == "completion-lm" and meta["end_id"] == end_token_id(tok) == tok.vocab_size - 1
    assert meta["best"]["loss"] == min(e["val_loss"] for e in evals)  # best.npz: the lowest validation loss
    assert model.config.vocab_size == load_model(pretrained)[0].config.vocab_size + 1
    _, val = task_files(tmp_path)
    data = load_completions(val, tok, model.config.block_size, meta["end_id"])
    assert evaluate(model, data)["exact_match"] == 1.0
    with pytest.raises(ValueError, match="not a checkpoint of `finetune --task generate`"):
        load_completion_model(pretrained)
    # sample on the checkpoint: the completion, then nothing (the end token stops it and is not printed)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", "sample", "--ckpt", str(tmp_path / "ft" / "best.npz"),
                           "--prompt", "mat.", "--temperature", "0", "--max-new-tokens", "12"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "mat.log\n"


def test_resume_is_exact_and_threads_follow_one_thread(pretrained, tmp_path):
    full = finetune(gen_cfg(pretrained, tmp_path / "a", dropout=0.1))
    part = finetune(gen_cfg(pretrained, tmp_path / "b", dropout=0.1), stop_at=13)
    assert part["interrupted"] and part["step"] == 13
    rest = finetune(gen_cfg(pretrained, tmp_path / "b", dropout=0.1, task="classify"), resume=True, given=set())
    assert part["history"] + rest["history"] == full["history"]  # the task came from the checkpoint
    assert rest["evals"] == full["evals"][1:]  # the evaluation at step 20, the same
    one = finetune(gen_cfg(pretrained, tmp_path / "c", max_iters=8, eval_interval=4))
    two = finetune(gen_cfg(pretrained, tmp_path / "d", max_iters=8, eval_interval=4, threads=2))
    np.testing.assert_allclose(two["history"], one["history"], rtol=1e-4)  # float32, the same batches
    np.testing.assert_allclose([e["val_loss"] for e in two["evals"]], [e["val_loss"] for e in one["evals"]],
                               rtol=1e-4)


@pytest.mark.parametrize("device", cuda_devices())  # a real GPU, or the CuPy stand-in where there is none
def test_on_the_device_it_evaluates_and_resumes_bit_for_bit(pretrained, tmp_path, device):
    full = finetune(gen_cfg(pretrained, tmp_path / "a", dropout=0.1, max_iters=12, eval_interval=6, device=device))
    part = finetune(gen_cfg(pretrained, tmp_path / "b", dropout=0.1, max_iters=12, eval_interval=6, device=device),
                    stop_at=7)
    rest = finetune(gen_cfg(pretrained, tmp_path / "b", dropout=0.1, max_iters=12, eval_interval=6, device=device),
                    resume=True)
    assert part["history"] + rest["history"] == full["history"] and np.isfinite(full["history"]).all()
    assert rest["evals"] == full["evals"][1:] and 0 <= full["val"]["chrf"] <= 100


def test_gradient_accumulation_weighs_micro_batches_by_their_targets(pretrained, tmp_path):
    whole = finetune(gen_cfg(pretrained, tmp_path / "a", max_iters=3, batch_size=8, eval_interval=3))
    parts = finetune(gen_cfg(pretrained, tmp_path / "b", max_iters=3, batch_size=4, grad_accum=2, eval_interval=3,
                             diagnostics=True, log_interval=1))
    np.testing.assert_allclose(parts["history"], whole["history"], rtol=1e-5)  # micro-batches of unequal targets
    records = [json.loads(line) for line in open(tmp_path / "b" / "ft" / "log.jsonl")]
    diagnosed = [r for r in records if "diagnostics" in r]  # --diagnostics: the same records as pretraining's
    assert [r["step"] for r in diagnosed] == [1, 2, 3] and "transformer.wte.weight" in str(diagnosed[0])


def test_flags_of_the_other_task_are_refused(pretrained, tmp_path):
    with pytest.raises(ValueError, match="--pooling and --freeze-body are for --task classify"):
        finetune(gen_cfg(pretrained, tmp_path, pooling="mean"))
    train_path, _ = task_files(tmp_path)
    with pytest.raises(ValueError, match="--truncate and --max-new-tokens are for --task generate"):
        finetune(from_flat(FinetuneConfig, ckpt=str(pretrained), data=str(train_path), truncate=True))
    with pytest.raises(ValueError, match="line 1: missing the 'text' key .* use --task generate"):
        finetune(from_flat(FinetuneConfig, ckpt=str(pretrained), data=str(train_path), out_dir=str(tmp_path / "c")))
    with pytest.raises(ValueError, match="task must be 'classify' or 'generate'"):
        finetune(gen_cfg(pretrained, tmp_path, task="translate"))


def test_cli_finetune_generate_and_a_bad_line(pretrained, tmp_path):
    train_path, val_path = task_files(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tinygrad_lm", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)

    done = cli("finetune", "--task", "generate", "--ckpt", pretrained, "--data", train_path, "--val", val_path,
               "--max-iters", "4", "--eval-interval", "2", "--batch-size", "4", "--out-dir", "run")
    assert done.returncode == 0, done.stderr
    assert "added the end token '<|endoftext|>'" in done.stdout and "exact match" in done.stdout
    assert "sample --ckpt run/best.npz" in done.stdout
    (tmp_path / "bad.jsonl").write_text('{"prompt": "cat.", "completion": ""}\n', encoding="utf-8")
    done = cli("finetune", "--task", "generate", "--ckpt", pretrained, "--data", "bad.jsonl", "--out-dir", "bad")
    assert done.returncode == 2 and "bad.jsonl, line 1: \"completion\" is empty" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "bad").exists()


def test_two_mpi_ranks_end_with_the_weights_of_two_threads(pretrained, tmp_path):
    """`--dist mpi` on 2 ranks, dropout on: bit for bit the weights of one process with --threads 2."""
    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
    import shutil

    mpiexec = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on the PATH (pip install mpich)")
    train_path, val_path = task_files(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    common = [sys.executable, "-m", "tinygrad_lm", "finetune", "--task", "generate", "--ckpt", str(pretrained),
              "--data", str(train_path), "--val", str(val_path), "--batch-size", "8", "--max-iters", "4",
              "--eval-interval", "2", "--dropout", "0.1", "--quiet"]
    for name, launch in (("ranks", [mpiexec, "-n", "2", *common, "--dist", "mpi"]),
                         ("threads", [*common, "--threads", "2"])):
        done = subprocess.run(launch + ["--out-dir", name], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    ranks, threads = (checkpoint.load(tmp_path / name / "ckpt.npz")[1] for name in ("ranks", "threads"))
    assert ranks.keys() == threads.keys() and all(np.array_equal(ranks[k], threads[k]) for k in threads)
