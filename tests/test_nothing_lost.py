"""Nothing lost, ever: interrupts, kills, full disks, re-runs and damaged files, each reproduced.

How the interrupts are made: `python -m tinygrad_lm train` runs in a subprocess through a small
worker (WORKER below) that sends the process a signal at a chosen point of a chosen step: just
after the batch stream advanced, inside backward, between two parameters' AdamW updates, or
inside an evaluation. Each case checks what the user gets:
  * the step in flight finishes whole, the checkpoint holds exactly that step, the exit status
    is 130 (SIGINT) or 143 (SIGTERM), no temporary file is left;
  * `--resume` then ends with the weights, AdamW state and evaluations of the run that was never
    interrupted, bit for bit;
  * a second Ctrl-C stops at once and saves nothing, leaving the last checkpoint;
  * a kill between writing best.npz and ckpt.npz leaves the two agreeing.
Then: re-runs into a used folder, --resume with changed flags, a full disk, orphan temporary
files, truncated or damaged caches and checkpoints, and the small cases of the issue.
The soak test (slow) kills a run at 20 random moments, with kill -9, SIGINT or SIGTERM, resuming
after each.
"""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run import cli
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the cat sat on a mat while the dog ran to the log and nobody saw them go".split()
FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
         "--max-iters", "12", "--eval-interval", "4", "--eval-iters", "2", "--log-interval", "1",
         "--sample-tokens", "0", "--warmup-iters", "2", "--dropout", "0.1", "--quiet"]

WORKER = r'''
import os, signal, sys, threading
from tinygrad_lm.run import cli, loop, train as T
from tinygrad_lm.fast import adamw
from tinygrad_lm.engine.tensor import Tensor

point, after, signals = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
done = {"steps": -1, "fired": False}  # steps finished so far (set once the loop logs one)

real_log_step = loop.Run.log_step
def log_step(self, step, *a, **k):
    done["steps"] = step
    return real_log_step(self, step, *a, **k)
loop.Run.log_step = log_step

def fire():  # from the main thread only: signals sent back to back from a --threads worker coalesce into one
    # before the main thread runs its handler (a user's Ctrl-C reaches the main thread, wherever the step is)
    if not done["fired"] and done["steps"] == after and threading.current_thread() is threading.main_thread():
        done["fired"] = True
        for name in signals:
            os.kill(os.getpid(), getattr(signal, name))

real_batch = T.next_token_batch
def next_token_batch(*a, **k):
    out = real_batch(*a, **k)
    if point == "batch" and sys._getframe(1).f_code.co_name == "train":
        fire()  # the batch stream has advanced, nothing else of the step has run
    return out
T.next_token_batch = next_token_batch

real_backward = Tensor.backward
def backward(self, *a, **k):
    if point == "backward":
        fire()
    return real_backward(self, *a, **k)
Tensor.backward = backward

real_update = adamw.FusedAdamW._update
def update(self, *a, **k):
    out = real_update(self, *a, **k)
    if point == "update":
        fire()  # one parameter updated, the others not yet
    return out
adamw.FusedAdamW._update = update

real_estimate = T.estimate_loss
def estimate_loss(*a, **k):
    if point == "eval":
        fire()
    return real_estimate(*a, **k)
T.estimate_loss = estimate_loss

if point == "save-gap":  # die (as kill -9 would) between writing best.npz and ckpt.npz
    from tinygrad_lm import checkpoint
    real_save = checkpoint.save
    def save(path, *a, **k):
        if str(path).endswith("ckpt.npz") and done["steps"] == after:
            os._exit(137)
        return real_save(path, *a, **k)
    checkpoint.save = save

sys.exit(cli.main(sys.argv[4:]))
'''


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(random.Random(0).choice(WORDS) for _ in range(3000)) + "\n", encoding="utf-8")
    return path


def env(tmp_path):
    return dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))


def run_cli(tmp_path, *args, timeout=120):
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, env=env(tmp_path), timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def run_worker(tmp_path, point, after, signals, *args):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    done = subprocess.run([sys.executable, str(worker), point, str(after), signals, *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path), timeout=120)
    return done.returncode, done.stdout + done.stderr


def arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def meta(path):
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def evaluations(run_dir):
    return [r["step"] for r in map(json.loads, (Path(run_dir) / "log.jsonl").read_text().splitlines())
            if "val_loss" in r]


def leftovers(*folders):
    return [p for folder in folders for p in Path(folder).rglob("*.tmp*")]


@pytest.fixture
def whole(corpus, tmp_path):
    """The run never interrupted: what every interrupted-and-resumed run must end as."""
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", *FLAGS)
    assert rc == 0, out
    return tmp_path / "whole"


def assert_same_run(a, b):
    for name in ("ckpt.npz", "best.npz"):
        x, y = arrays(Path(a) / name), arrays(Path(b) / name)
        assert x.keys() == y.keys()
        differ = [k for k in x if not np.array_equal(x[k], y[k])]
        assert not differ, f"{name}: {differ[:3]}"
    assert sorted(set(evaluations(a))) == sorted(set(evaluations(b)))


@pytest.mark.parametrize("point", ["batch", "backward", "update", "eval"])
@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_anywhere_in_a_step_stops_after_it_and_the_resumed_run_is_bit_identical(
        corpus, tmp_path, whole, point, sig, code):
    after = 4 if point == "eval" else 5  # steps done when the signal comes (the eval runs at step 4)
    rc, out = run_worker(tmp_path, point, after, sig, "train", "--data", corpus, "--out-dir", "cut", *FLAGS)
    assert rc == code, out
    assert meta(tmp_path / "cut" / "ckpt.npz")["step"] == after + 1  # the step in flight finished whole
    assert not leftovers(tmp_path / "cut")
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "cut", "--resume", *FLAGS)
    assert rc == 0, out
    assert_same_run(tmp_path / "cut", whole)


def test_a_second_ctrl_c_stops_at_once_saves_nothing_and_the_last_checkpoint_resumes(corpus, tmp_path, whole):
    rc, out = run_worker(tmp_path, "update", 6, "SIGINT,SIGINT", "train", "--data", corpus, "--out-dir", "cut",
                         *FLAGS)
    assert rc == 130, out
    assert "interrupted twice, in the middle of step 7: nothing saved; the last checkpoint is" in out, out
    assert meta(tmp_path / "cut" / "ckpt.npz")["step"] == 4  # the evaluation's, untouched by the torn step
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "cut", "--resume", *FLAGS)
    assert rc == 0, out
    assert_same_run(tmp_path / "cut", whole)


def test_a_kill_between_best_and_ckpt_leaves_them_agreeing(corpus, tmp_path, whole):
    rc, out = run_worker(tmp_path, "save-gap", 8, "", "train", "--data", corpus, "--out-dir", "cut", *FLAGS)
    assert rc == 137, out
    best, ckpt = meta(tmp_path / "cut" / "best.npz"), meta(tmp_path / "cut" / "ckpt.npz")
    assert (best["step"], ckpt["step"]) == (8, 4)  # best.npz was written first; ckpt.npz is the earlier one
    assert ckpt["best_val"] >= best["best_val"]  # what ckpt.npz records as best is never newer than best.npz
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "cut", "--resume", *FLAGS)
    assert rc == 0, out
    assert_same_run(tmp_path / "cut", whole)


# ----------------------------------------------------------------- re-runs and --resume
def test_a_used_run_folder_is_refused_without_resume_or_overwrite(corpus, tmp_path, whole):
    before = arrays(whole / "ckpt.npz")
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", *FLAGS)
    assert rc == 2, out
    assert "whole holds a previous run (ckpt.npz, best.npz, log.jsonl); continue it with --resume" in out, out
    assert all(np.array_equal(v, arrays(whole / "ckpt.npz")[k]) for k, v in before.items())
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", "--overwrite", *FLAGS)
    assert rc == 0, out
    assert evaluations(whole) == [4, 8, 12]  # a fresh log, not the old one appended to


def test_resume_applies_more_max_iters_and_says_so(corpus, tmp_path, whole):
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", "--resume", *FLAGS,
                      "--max-iters", "16", "--eval-interval", "8", "--no-quiet")
    assert rc == 0, out
    assert "resuming at step 12 with --max-iters 12 -> 16 (the learning-rate schedule now ends there)" in out
    assert meta(whole / "ckpt.npz")["step"] == 16
    assert meta(whole / "ckpt.npz")["train_config"]["optim"]["max_iters"] == 16


@pytest.mark.parametrize("flag, value, shown", [("--lr", "0.01", "--lr 0.01 (the run has 0.001)"),
                                                ("--n-layer", "2", "--n-layer 2 (the run has 1)")])
# (a new --data path on resume: tests/test_tokens_file.py, test_resume_*_data_*)
def test_resume_refuses_a_flag_that_would_change_what_is_computed(corpus, tmp_path, whole, flag, value, shown):
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", "--resume", *FLAGS, flag, value)
    assert rc == 2, out
    assert f"--resume continues the saved run as it was, but {shown}" in out, out


def test_resume_refuses_max_iters_below_the_step_reached(corpus, tmp_path, whole):
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", "--resume", *FLAGS, "--max-iters", "8")
    assert rc == 2 and "--max-iters 8 is below step 12, where the saved run stands" in out, out


# ----------------------------------------------------------------- disks and files
def small_cfg(corpus, out_dir, **kw):
    values = dict(data=str(corpus), n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=4,
                  eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(out_dir))
    values.update(kw)
    return from_flat(TrainConfig, **values)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "full"
    train(small_cfg(corpus, run_dir, max_iters=2))
    before = arrays(run_dir / "ckpt.npz")

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", no_space)
    rc = cli.main(["train", "--data", str(corpus), "--out-dir", str(run_dir), "--resume", "--max-iters", "4",
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("tinygrad-lm train: error: ") and "Traceback" not in err, err
    assert f"{run_dir / 'best.npz'}: could not write the checkpoint (No space left on device)" in err, err
    assert all(np.array_equal(v, arrays(run_dir / "ckpt.npz")[k]) for k, v in before.items())
    assert not leftovers(run_dir)


def test_orphan_temporary_files_of_dead_writers_are_removed(corpus, tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    run_dir.mkdir()
    cache.mkdir(exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has ended
    orphans = [run_dir / f".ckpt.npz.tmp{dead}", cache / f"tokens_x.uint16.tmp{dead}"]
    alive = run_dir / f".best.npz.tmp{os.getppid()}"  # a writer still running: left alone
    for p in orphans + [alive]:
        p.write_bytes(b"half a file")
    train(small_cfg(corpus, run_dir, max_iters=2))
    assert not any(p.exists() for p in orphans) and alive.exists()


def test_a_truncated_token_cache_is_rebuilt_not_trained_on(corpus, tmp_path):
    first = train(small_cfg(corpus, tmp_path / "a", max_iters=2))
    (token_file,) = (tmp_path / "cache").glob("tokens_*.uint16")
    size = token_file.stat().st_size
    with open(token_file, "r+b") as f:
        f.truncate(size // 3)
    second = train(small_cfg(corpus, tmp_path / "b", max_iters=2))
    assert token_file.stat().st_size == size
    assert second["bytes_per_token"] == first["bytes_per_token"]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(first["model"].parameters(),
                                                                second["model"].parameters()))


def test_a_damaged_bpe_cache_is_rebuilt(corpus, tmp_path):
    from tinygrad_lm.run.data import build_tokenizer

    text = corpus.read_text(encoding="utf-8")
    first = build_tokenizer("bpe", text, 300)
    (cached,) = (tmp_path / "cache").glob("bpe_*.json")
    raw = bytearray(cached.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit: still JSON, perhaps, but not the tokenizer that was saved
    cached.write_bytes(bytes(raw))
    again = build_tokenizer("bpe", text, 300)
    assert again.merges == first.merges
    assert cached.read_bytes() != bytes(raw)  # rewritten


def test_checkpoint_meta_missing_a_key_names_the_file_and_key(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train(small_cfg(corpus, run_dir, max_iters=2))
    m, model_state, optim_state = checkpoint.load(run_dir / "ckpt.npz")
    del m["step"]
    checkpoint.save(run_dir / "ckpt.npz", model_state, optim_state, {k: v for k, v in m.items()
                                                                      if k not in ("format", "version")})
    with pytest.raises(ValueError, match=r"ckpt.npz: the checkpoint's metadata has no 'step' entry"):
        train(small_cfg(corpus, run_dir, max_iters=4), resume=True)


def test_a_flipped_byte_in_an_array_header_is_a_clear_error(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train(small_cfg(corpus, run_dir, max_iters=2))
    path = run_dir / "ckpt.npz"
    raw = bytearray(path.read_bytes())
    at = raw.index(b"{'descr'")
    raw[at] = ord("(")  # the .npy header is a Python literal: this makes it a SyntaxError to parse
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"ckpt.npz is not a readable checkpoint \(truncated or corrupted\?\)"):
        checkpoint.load(path)


# ----------------------------------------------------------------- the small cases
def test_evaluation_that_gives_nan_saves_nothing(corpus, tmp_path, monkeypatch):
    from tinygrad_lm.run import train as T
    from tinygrad_lm.run.loop import TrainingStopped

    run_dir = tmp_path / "run"
    train(small_cfg(corpus, run_dir, max_iters=2))
    saved = arrays(run_dir / "ckpt.npz")
    monkeypatch.setattr(T, "estimate_loss", lambda *a, **k: {"train": float("nan"), "val": float("nan")})
    with pytest.raises(TrainingStopped, match="evaluation at step 4 gave .*nan.*; stopping without saving"):
        train(small_cfg(corpus, run_dir, max_iters=4), resume=True)
    assert all(np.array_equal(v, arrays(run_dir / "ckpt.npz")[k]) for k, v in saved.items())


def test_a_char_corpus_without_newlines_trains_and_samples(tmp_path):
    text = tmp_path / "flat.txt"
    text.write_text("abcab " * 400, encoding="utf-8")
    rc, out = run_cli(tmp_path, "train", "--data", text, "--out-dir", "flat", "--max-iters", "2", "--n-layer", "1",
                      "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--eval-interval", "2",
                      "--eval-iters", "1", "--sample-tokens", "10")
    assert rc == 0, out
    assert "---- sample ----" in out
    rc, out = run_cli(tmp_path, "sample", "--ckpt", "flat/best.npz", "--max-new-tokens", "5")
    assert rc == 0, out


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    from tinygrad_lm.run.labeled import read_jsonl

    rows = [{"text": "one\u2028two", "label": "a"}, {"text": "three\u2029four\u0085", "label": "b"}, {"x": 1}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match=r"d.jsonl, line 3"):  # the line numbers are the file's
        read_jsonl(path)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2]), encoding="utf-8")
    assert [(n, t) for n, t, _ in read_jsonl(path)] == [(1, "one\u2028two"), (2, "three\u2029four\u0085")]


def test_a_split_pattern_that_skips_text_is_an_error_not_a_silent_drop():
    from tinygrad_lm.tokenizer import BPETokenizer

    tok = BPETokenizer(r"[a-z]+")
    with pytest.raises(ValueError, match=r"matches no chunk at offset 3 \(' world'\)"):
        tok.encode_ordinary("abc world")
    assert tok.decode(tok.encode_ordinary("abc")) == "abc"


def test_long_chunks_merge_as_the_plain_loop_does():
    from tinygrad_lm.tokenizer import BPETokenizer, bpe

    rng = random.Random(0)
    tok = BPETokenizer("gpt4")
    tok.train(" ".join(rng.choice(WORDS) for _ in range(3000)), 400)
    for _ in range(40):
        chunk = "".join(rng.choice("thecatsdogmlwn") for _ in range(rng.randint(bpe.LONG_CHUNK + 1, 3000)))
        ids = list(chunk.encode().translate(tok._byte_ids))
        plain = tok._encode_chunk(chunk.encode(), max_rank=float(10 ** 9))  # max_rank < inf: skips the whole-chunk lookup
        saved, bpe.LONG_CHUNK = bpe.LONG_CHUNK, 10 ** 9
        try:
            loop = tok._encode_chunk(chunk.encode(), max_rank=float(10 ** 9))
        finally:
            bpe.LONG_CHUNK = saved
        assert plain == loop == tok._merge_long(ids)
        assert tok.decode(plain) == chunk


# ----------------------------------------------------------------- soak
@pytest.mark.slow
def test_soak_twenty_random_kills_then_resumes_end_bit_identical(corpus, tmp_path):
    """20 rounds: start (or resume) the run, wait until it has logged 1 to 3 more records (200
    steps each) and a random moment more, then kill -9, SIGINT or SIGTERM it. Waiting on the
    log, not on the clock, lands every kill in the middle of the run however loaded the machine."""
    flags = list(FLAGS)
    flags[flags.index("--max-iters") + 1] = "20000"
    flags[flags.index("--eval-interval") + 1] = "500"
    flags[flags.index("--log-interval") + 1] = "200"
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "whole", *flags, timeout=300)
    assert rc == 0, out
    rng = random.Random(1)
    log = tmp_path / "soak" / "log.jsonl"
    history = []  # (signal, exit status, step of ckpt.npz after) per round, for the failure message
    def logged():  # records in log.jsonl; none while an --overwrite run has just deleted it
        try:
            return len(log.read_text().splitlines())
        except FileNotFoundError:
            return 0

    for _ in range(20):
        resume = ["--resume"] if (tmp_path / "soak" / "ckpt.npz").exists() else ["--overwrite"]
        target = logged() + rng.randint(1, 3)
        proc = subprocess.Popen([sys.executable, "-m", "tinygrad_lm", "train", "--data", str(corpus), "--out-dir",
                                 "soak", *resume, *flags], cwd=tmp_path, env=env(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while proc.poll() is None and logged() < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.1))  # a random moment inside the next steps
        kind = rng.choice(["SIGKILL", "SIGINT", "SIGTERM"])
        assert proc.poll() is None, f"the run ended before round {len(history) + 1}'s kill: {history}"
        proc.send_signal(getattr(signal, kind))
        out, _ = proc.communicate(timeout=120)
        step = meta(tmp_path / "soak" / "ckpt.npz")["step"] if (tmp_path / "soak" / "ckpt.npz").exists() else None
        history.append((kind, proc.returncode, step))
        expected = {"SIGKILL": -9, "SIGINT": 130, "SIGTERM": 143}[kind]
        assert proc.returncode == expected, (history, out)
    rc, out = run_cli(tmp_path, "train", "--data", corpus, "--out-dir", "soak", "--resume", *flags, timeout=300)
    assert rc == 0, out
    assert meta(tmp_path / "soak" / "ckpt.npz")["step"] == 20000
    assert_same_run(tmp_path / "soak", tmp_path / "whole")
    assert not leftovers(tmp_path / "soak", tmp_path / "cache")


def test_generate_refuses_a_nan_temperature_and_nan_logits():
    from tinygrad_lm.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    with pytest.raises(ValueError, match="temperature must be a number >= 0, got nan"):
        model.generate(np.zeros((1, 1), dtype=np.int64), 2, temperature=float("nan"))
    model.lm_head.weight.data[...] = np.nan  # a diverged run's weights
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match="the model's logits are NaN or infinite"):
            model.generate(np.zeros((1, 1), dtype=np.int64), 2, temperature=temperature)


def test_a_checkpoint_whose_tokenizer_outgrows_its_model_is_refused(corpus, tmp_path):
    from tinygrad_lm.run.train import load_model
    from tinygrad_lm.tokenizer import CharTokenizer

    run_dir = tmp_path / "run"
    train(small_cfg(corpus, run_dir, max_iters=2))
    m, model_state, optim_state = checkpoint.load(run_dir / "best.npz")
    m["tokenizer"] = CharTokenizer("".join(chr(c) for c in range(40, 200))).to_dict()  # 160 characters
    checkpoint.save(run_dir / "mixed.npz", model_state, optim_state,
                    {k: v for k, v in m.items() if k not in ("format", "version")})
    with pytest.raises(ValueError, match=r"mixed.npz: its tokenizer has 160 tokens but the model only \d+"):
        load_model(run_dir / "mixed.npz")
