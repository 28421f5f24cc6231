"""`mpiexec -n 2 python -m tinygrad_lm train --dist mpi` (and `finetune`), end to end with 2 real ranks.

What is pinned: a 2-rank run ends with the weights, optimizer state and logged losses of one
process with `--threads 2`, bit for bit, dropout on; it agrees with one thread to float32
rounding, dropout off, and dropout on over 50 steps (fast and reference paths); a 2-rank run interrupted (by `stop_at`, or by Ctrl-C on one rank) and
resumed ends where the uninterrupted run ends, bit for bit; rank 0 alone writes the run folder;
bad launches end every rank with one message (a batch that does not split, ranks given different
flags, a rank whose data file is missing). Each launch is a subprocess with a timeout, so a hang
fails the test instead of stalling CI. Skipped where mpi4py or mpiexec is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
# the mpiexec of this Python's environment (the mpich wheel puts it beside python), else the PATH's
MPIEXEC = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
    or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec is not on the PATH (pip install mpich)")

WORDS = "the cat sat on a mat while the dog ran to the log and nobody saw them go".split()
FLAGS = ["--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
         "--max-iters", "8", "--eval-interval", "4", "--eval-iters", "2", "--log-interval", "1",
         "--sample-tokens", "0", "--warmup-iters", "2"]


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(WORDS, 3000)) + "\n", encoding="utf-8")
    return path


def env(tmp_path):
    return dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))


def launch(args, tmp_path, ranks=None, timeout=120):
    """Run `python -m tinygrad_lm ARGS` (under `mpiexec -n ranks` when given); (rc, stdout + stderr)."""
    cmd = [sys.executable, "-m", "tinygrad_lm"] + [str(a) for a in args]
    if ranks:
        cmd = [MPIEXEC, "-n", str(ranks)] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env(tmp_path))
    return done.returncode, done.stdout + done.stderr


def mpi_python(code, tmp_path, ranks=2, timeout=120):
    """Run a Python script on `ranks` ranks; (rc, output)."""
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-c", textwrap.dedent(code)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env(tmp_path))
    return done.returncode, done.stdout + done.stderr


def state(run_dir):
    """Every array of ckpt.npz (model and optimizer), and the logged training losses."""
    with np.load(Path(run_dir) / "ckpt.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    losses = [r["loss"] for r in map(json.loads, (Path(run_dir) / "log.jsonl").read_text().splitlines()) if "loss" in r]
    return arrays, losses


def assert_same(a, b):
    (arrays_a, losses_a), (arrays_b, losses_b) = a, b
    assert arrays_a.keys() == arrays_b.keys()
    differ = [k for k in arrays_a if not np.array_equal(arrays_a[k], arrays_b[k])]
    assert not differ, f"{len(differ)} arrays differ, first {differ[:3]}"
    assert losses_a == losses_b


def test_two_ranks_end_with_the_state_of_two_threads_bit_for_bit_with_dropout(corpus, tmp_path):
    common = ["train", "--data", corpus, "--dropout", "0.2"] + FLAGS
    rc, out = launch(common + ["--dist", "mpi", "--out-dir", "ranks"], tmp_path, ranks=2)
    assert rc == 0, out
    assert out.count("step     8/8") == 1, out  # rank 0 alone prints
    rc, out = launch(common + ["--threads", "2", "--out-dir", "threads", "--quiet"], tmp_path)
    assert rc == 0, out
    assert_same(state(tmp_path / "ranks"), state(tmp_path / "threads"))
    assert sorted(p.name for p in (tmp_path / "ranks").iterdir()) == ["best.npz", "ckpt.npz", "log.jsonl"]


def test_other_ranks_print_only_when_asked(corpus, tmp_path):
    common = ["train", "--data", corpus, "--dist", "mpi"] + FLAGS
    rc, out = launch(common + ["--out-dir", "quiet"], tmp_path, ranks=2)
    assert rc == 0 and "[rank 1]" not in out and out.count("step     8/8") == 1, out
    rc, out = launch(common + ["--out-dir", "loud", "--all-ranks-print"], tmp_path, ranks=2)
    assert rc == 0 and out.count("[rank 1] step     8/8") == 1 and out.count("step     8/8") == 2, out


def test_two_ranks_agree_with_one_thread_to_float32_rounding(corpus, tmp_path):
    common = ["train", "--data", corpus, "--quiet"] + FLAGS
    rc, out = launch(common + ["--dist", "mpi", "--out-dir", "ranks"], tmp_path, ranks=2)
    assert rc == 0, out
    rc, out = launch(common + ["--out-dir", "one"], tmp_path)
    assert rc == 0, out
    (ranks, ranks_losses), (one, one_losses) = state(tmp_path / "ranks"), state(tmp_path / "one")
    np.testing.assert_allclose(ranks_losses, one_losses, rtol=1e-5)
    for k in ranks:
        if k.startswith("model/"):
            np.testing.assert_allclose(ranks[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("path", [[], ["--reference"]], ids=["fast", "reference"])
def test_two_ranks_train_the_run_of_one_process_with_dropout_on(corpus, tmp_path, path):
    """The dropout masks are keyed by each row's place in the whole batch (engine/rng.py), so the
    ranks draw the masks one process draws: the same run up to float32 summation order."""
    common = ["train", "--data", corpus, "--quiet", "--dropout", "0.1", "--n-layer", "2", "--n-embd", "32",
              "--n-head", "2", "--block-size", "16", "--batch-size", "6", "--max-iters", "50",
              "--eval-interval", "25", "--eval-iters", "2", "--log-interval", "1", "--sample-tokens", "0",
              "--warmup-iters", "5"] + path
    rc, out = launch(common + ["--dist", "mpi", "--out-dir", "ranks"], tmp_path, ranks=2)
    assert rc == 0, out
    rc, out = launch(common + ["--out-dir", "one"], tmp_path)
    assert rc == 0, out
    (_, ranks_losses), (_, one_losses) = state(tmp_path / "ranks"), state(tmp_path / "one")
    assert len(one_losses) == 50
    np.testing.assert_allclose(ranks_losses, one_losses, rtol=1e-5)


RESUME = """
    import sys
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, train
    cfg = from_flat(TrainConfig, data=sys.argv[1], dist="mpi", out_dir=sys.argv[2], quiet=True, dropout=0.2,
                    n_layer=2, n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=8, eval_interval=4,
                    eval_iters=2, log_interval=1, sample_tokens=0, warmup_iters=2)
    from tinygrad_lm import distributed
    try:  # an error on one rank must end both (else the other waits in a collective until the timeout)
        first = train(cfg, stop_at=int(sys.argv[3]))
        assert first["interrupted"] and first["step"] == int(sys.argv[3])
        last = train(cfg, resume=True)  # straight after: every rank reads what rank 0 wrote
        assert not last["interrupted"] and last["step"] == 8
    except BaseException as e:
        distributed.current().fail(e)
"""


def test_an_interrupted_two_rank_run_resumes_bit_for_bit(corpus, tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(textwrap.dedent(RESUME), encoding="utf-8")
    for stop in (3, 5):  # before and after the evaluation at step 4
        done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), str(corpus), f"stopped{stop}",
                               str(stop)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env=env(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
    rc, out = launch(["train", "--data", corpus, "--dropout", "0.2", "--dist", "mpi", "--out-dir", "whole",
                      "--quiet"] + FLAGS, tmp_path, ranks=2)
    assert rc == 0, out
    whole = state(tmp_path / "whole")[0]
    for stop in (3, 5):
        resumed = state(tmp_path / f"stopped{stop}")[0]
        assert all(np.array_equal(resumed[k], whole[k]) for k in whole), stop


CTRL_C = """
    import os, signal, sys, threading
    from tinygrad_lm import distributed
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, train
    group = distributed.init()
    if group.rank == 1:  # Ctrl-C reaches rank 1 alone, in the middle of the run
        threading.Timer(float(sys.argv[3]), lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    cfg = from_flat(TrainConfig, data=sys.argv[1], dist="mpi", out_dir=sys.argv[2], quiet=True, n_layer=2,
                    n_embd=16, n_head=2, block_size=16, batch_size=4, max_iters=int(sys.argv[4]),
                    eval_interval=100000, eval_iters=1, sample_tokens=0)
    try:
        result = train(cfg)
    except BaseException as e:
        group.fail(e)
    steps = group.comm.gather((result["interrupted"], result["step"]), root=0)
    if group.rank == 0:
        print("STOPPED", steps)
"""


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step_and_the_run_resumes_exactly(corpus, tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(textwrap.dedent(CTRL_C), encoding="utf-8")
    max_iters = 3000
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), str(corpus), "stopped", "1.0",
                           str(max_iters)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=env(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    line = next(line for line in out.splitlines() if line.startswith("STOPPED"))
    (i0, s0), (i1, s1) = eval(line.split(" ", 1)[1])
    assert i0 and i1 and s0 == s1 < max_iters, line  # both interrupted, after the same step
    print(line)
    with np.load(tmp_path / "stopped" / "ckpt.npz") as z:
        assert json.loads(str(z["meta"]))["step"] == s0
    common = ["train", "--data", corpus, "--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
              "--batch-size", "4", "--max-iters", str(max_iters), "--eval-interval", "100000", "--eval-iters", "1",
              "--sample-tokens", "0", "--dist", "mpi", "--quiet"]
    rc, out = launch(common + ["--out-dir", "stopped", "--resume"], tmp_path, ranks=2, timeout=300)
    assert rc == 0, out
    rc, out = launch(common + ["--out-dir", "whole"], tmp_path, ranks=2, timeout=300)
    assert rc == 0, out
    resumed, whole = state(tmp_path / "stopped")[0], state(tmp_path / "whole")[0]
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)


def test_a_batch_that_does_not_split_over_the_ranks_ends_both_with_one_message(corpus, tmp_path):
    rc, out = launch(["train", "--data", corpus, "--dist", "mpi", "--out-dir", "r"] + FLAGS + ["--batch-size", "3"],
                     tmp_path, ranks=2, timeout=60)
    assert rc == 2, out
    message = "--batch-size 3 does not split evenly over 2 ranks"
    assert out.count(message) == 1, out


def test_ranks_launched_with_different_flags_are_refused_naming_the_flag(corpus, tmp_path):
    base = [sys.executable, "-m", "tinygrad_lm", "train", "--data", str(corpus), "--dist", "mpi", "--out-dir", "r"]
    base += FLAGS
    cmd = [MPIEXEC, "-n", "1"] + base + ["--lr", "0.001", ":", "-n", "1"] + base + ["--lr", "0.002"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert out.count("the ranks disagree on the config: rank 1 has optim.lr=0.002 where rank 0 has 0.001") == 1, out


def test_a_rank_that_fails_ends_every_rank_with_its_message(corpus, tmp_path):
    base = [sys.executable, "-m", "tinygrad_lm", "train", "--dist", "mpi", "--out-dir", "r"] + FLAGS
    cmd = [MPIEXEC, "-n", "1"] + base + ["--data", str(corpus), ":", "-n", "1"] + base + ["--data", "missing.txt"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "tinygrad-lm train: error on rank 1 of 2: FileNotFoundError" in out and "missing.txt" in out, out


FINETUNE = """
    import json, sys
    import numpy as np
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, train
    rng = np.random.default_rng(0)
    with open("train.jsonl", "w") as f:
        for _ in range(40):
            label = "cat" if rng.random() < 0.5 else "dog"
            f.write(json.dumps({"text": f"the {label} sat on the mat", "label": label}) + "\\n")
    train(from_flat(TrainConfig, data=sys.argv[1], max_iters=3, n_layer=1, n_embd=16, n_head=2, block_size=16,
                    batch_size=4, eval_interval=3, eval_iters=1, out_dir="pre", quiet=True, sample_tokens=0))
"""


def test_finetune_over_two_ranks_ends_with_the_weights_of_two_threads(corpus, tmp_path):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(FINETUNE), str(corpus)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    common = ["finetune", "--ckpt", "pre/best.npz", "--data", "train.jsonl", "--batch-size", "8", "--max-iters", "6",
              "--eval-interval", "3", "--dropout", "0.1", "--quiet"]
    rc, out = launch(common + ["--dist", "mpi", "--out-dir", "ft_ranks"], tmp_path, ranks=2)
    assert rc == 0, out
    rc, out = launch(common + ["--threads", "2", "--out-dir", "ft_threads"], tmp_path)
    assert rc == 0, out
    ranks, threads = state(tmp_path / "ft_ranks")[0], state(tmp_path / "ft_threads")[0]
    assert all(np.array_equal(ranks[k], threads[k]) for k in threads)
