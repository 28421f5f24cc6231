"""distributed.py with 2 real MPI ranks (`mpiexec -n 2`, each test a subprocess with a timeout):
the sharded step's gradients equal `--threads 2`'s bit for bit (dropout on), the initial weights
are rank 0's, a stop request on one rank reaches every rank in the same step, and bad launches
(a batch that does not split, ranks with different configs, an error on one rank) end every rank
with one clear message instead of hanging. Skipped where mpi4py or mpiexec is missing; CI
installs both (`.[dist]`). The whole training command over MPI is tested in test_train_dist.py.
"""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
# the mpiexec of this Python's environment (the mpich wheel puts it beside python), else the PATH's
MPIEXEC = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
    or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec is not on the PATH (pip install mpich)")

PRELUDE = """
import numpy as np
import tinygrad_lm
from tinygrad_lm import distributed, fast
from tinygrad_lm.models.gpt import GPT, GPTConfig
group = distributed.init()
cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.2)
rng = np.random.default_rng(0)
x, y = rng.integers(0, 11, (4, 6)), rng.integers(0, 11, (4, 6))
y[0, :3] = -1  # ignored targets: the ranks' loss weights differ (9/21 and 12/21)
"""


def mpirun(code, ranks=2, timeout=120):
    """Run `code` (after PRELUDE) on `ranks` MPI ranks; returns (returncode, stdout + stderr)."""
    script = PRELUDE + textwrap.dedent(code)
    done = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def test_two_ranks_give_the_gradients_of_two_threads_bit_for_bit_with_dropout():
    rc, out = mpirun("""
        tinygrad_lm.manual_seed(1)
        model = fast.fuse(GPT(cfg))
        tinygrad_lm.manual_seed(5)
        _, loss = distributed.Sharded(model, group)(x, y)
        loss.backward()
        group.all_reduce_grads(model)
        if group.rank == 0:  # the same step in one process, the batch split over 2 threads
            tinygrad_lm.manual_seed(1)
            ref = fast.fuse(GPT(cfg))
            tinygrad_lm.manual_seed(5)
            _, ref_loss = fast.DataParallel(ref, 2)(x, y)
            ref_loss.backward()
            want = dict(ref.named_parameters())
            same = [np.array_equal(p.grad, want[n].grad) for n, p in model.named_parameters()]
            print("LOSS", loss.item() == ref_loss.item(), "GRADS", len(same), all(same))
    """)
    assert rc == 0, out
    assert "LOSS True GRADS 28 True" in out, out  # every parameter of the 2-layer GPT


def test_broadcast_gives_every_rank_rank_0s_weights_and_the_loss_is_the_same_everywhere():
    rc, out = mpirun("""
        tinygrad_lm.manual_seed(1)
        model = GPT(cfg)
        if group.rank == 1:
            for p in model.parameters():
                p.data[...] = 7.0
        group.broadcast_parameters(model)
        flat = np.concatenate([p.data.ravel() for p in model.parameters()])
        every = group.comm.allgather(flat)
        _, loss = distributed.Sharded(model.eval(), group)(x, y)
        losses = group.comm.allgather(loss.item())
        if group.rank == 0:
            print("WEIGHTS", np.array_equal(every[0], every[1]), (every[1] != 7.0).any(),
                  "LOSSES", losses[0] == losses[1])
    """)
    assert rc == 0, out
    assert "WEIGHTS True True LOSSES True" in out, out


def test_a_stop_request_on_one_rank_reaches_every_rank_in_the_same_step():
    rc, out = mpirun("""
        model = GPT(cfg)
        group.stop_requested = group.rank == 1  # as if rank 1 alone got Ctrl-C
        _, loss = distributed.Sharded(model, group)(x, y)
        loss.backward()
        group.all_reduce_grads(model)
        stopping = group.comm.gather(group.stopping, root=0)
        if group.rank == 0:
            print("STOPPING", stopping)
    """)
    assert rc == 0, out
    assert "STOPPING [True, True]" in out, out


def refused_on_every_rank(call):
    """Run one line `call` on 2 ranks, expecting a ValueError on each; rank 0's message, after
    checking that both ranks said the same."""
    rc, out = mpirun(f"""
        try:
            {call}
        except ValueError as e:
            said = group.comm.gather(str(e), root=0)
            if group.rank == 0:
                print("REFUSED", said[0] == said[1], said[0])
    """)
    assert rc == 0, out
    line = next((line for line in out.splitlines() if line.startswith("REFUSED True ")), None)
    assert line, out
    return line.removeprefix("REFUSED True ")


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    message = refused_on_every_rank("distributed.Sharded(GPT(cfg), group)(x[:3], y[:3])")
    assert message == "a batch of 3 rows does not split evenly over 2 ranks; use a --batch-size divisible by 2"


def test_ranks_with_different_configs_are_named():
    message = refused_on_every_rank('group.check_same_config({"optim": {"lr": 0.001 * (1 + group.rank)}, "seed": 1})')
    assert message.startswith("the ranks disagree on the config: rank 1 has optim.lr=0.002 where rank 0 has 0.001")


def test_an_error_on_one_rank_ends_every_rank_with_one_message():
    rc, out = mpirun("""
        import time
        try:
            if group.rank == 1:
                raise RuntimeError("disk on fire")
            group.barrier()  # rank 0 waits here for a rank that will never come
        except Exception as e:
            group.fail(e)
        print("NOT REACHED")
    """, timeout=60)
    assert rc != 0, out
    assert "error on rank 1 of 2: RuntimeError: disk on fire" in out, out
    assert "NOT REACHED" not in out


def test_without_mpi4py_the_error_says_how_to_install_it():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from tinygrad_lm import distributed\n"
            "try:\n    distributed.init()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "--dist mpi needs mpi4py and an MPI library" in out and "pip install -e .[dist]" in out, out
