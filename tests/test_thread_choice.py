"""`--threads auto` on a busy machine (fast/thread_choice.py): the slices run on threads or one
after another, whichever the last trial timed faster, and both modes train the same run bit for bit."""
import numpy as np
import pytest

import tinygrad_lm as tg
from tinygrad_lm import fast
from tinygrad_lm.fast.thread_choice import ThreadChoice
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.optim import AdamW


def drive(choice, seconds_of, steps):
    """Run `steps` steps through `choice`, each taking seconds_of(parallel, step); returns the modes."""
    modes = []
    for step in range(steps):
        modes.append(choice.parallel)
        choice.record(seconds_of(choice.parallel, step))
    return modes


@pytest.mark.parametrize("faster", [True, False])
def test_the_trial_keeps_the_faster_mode(faster):
    choice = ThreadChoice(warmup=2, trial=3, period=20)
    modes = drive(choice, lambda parallel, step: 1.0 if parallel == faster else 1.5, 60)
    assert modes[:2] == [True, True]  # warm-up on threads
    assert modes[3:6] == [True] * 3 and modes[6:10] == [False] * 4  # the trial: 1 + 3 each way
    after = modes[10:]
    trials = [i for i in range(len(after)) if after[i] != faster]
    assert all(m == faster for i, m in enumerate(after) if i not in trials)  # the faster mode between trials
    assert len(trials) <= 2 * 4 * 2  # later trials: at most 8 steps each in the slower mode, 2 trials in 50 steps
    assert choice.kept == faster


@pytest.mark.parametrize("threads_seconds, kept", [(0.9, True), (0.94, True), (0.96, False), (1.02, False)])
def test_threads_are_kept_only_when_clearly_faster(threads_seconds, kept):
    """One after another takes 1.0 s a step: threads must be at least MARGIN (5%) faster to be kept."""
    choice = ThreadChoice(warmup=2, trial=3, period=20)
    modes = drive(choice, lambda parallel, step: threads_seconds if parallel else 1.0, 40)
    assert choice.kept is kept and modes[10:30] == [kept] * 20


def test_a_later_trial_follows_the_load():
    """Threads win while the machine is idle; from step 40 another program makes them lose."""
    choice = ThreadChoice(warmup=2, trial=3, period=20)
    modes = drive(choice, lambda parallel, step: (1.0 if parallel else 1.4) if step < 40 else
                  (2.0 if parallel else 1.4), 120)
    assert modes[10:30] == [True] * 20  # until the second trial (steps 30-37)
    assert modes[66:86] == [False] * 20  # the trial of steps 58-65 found threads slower: one after another
    assert choice.switches == [(66, False)] and choice.kept is False


def test_both_modes_train_the_same_run_bit_for_bit():
    def run(parallel):
        tg.manual_seed(0)
        m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1))
        model, opt = fast.speed_up(m, AdamW(m.parameters(), lr=1e-3), threads=2, choose=True)
        model.choice.record = lambda seconds: None  # hold the mode
        model.choice.parallel = parallel
        rows = np.random.default_rng(1)
        for _ in range(4):
            x, y = rows.integers(0, 50, (6, 16)), rows.integers(0, 50, (6, 16))  # (B, T) each
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.data.copy() for p in m.parameters()]

    on_threads, in_turn = run(True), run(False)
    assert all(np.array_equal(p, q) for p, q in zip(on_threads, in_turn))
    tg.manual_seed(0)
    assert not np.array_equal(on_threads[0], GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2,
                                                           n_embd=32)).parameters()[0].data)  # it trained


def test_auto_chooses_and_an_explicit_count_does_not():
    from tinygrad_lm.run import cores
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig

    auto, _ = cores.batch_split(from_flat(TrainConfig, batch_size=4))
    two, _ = cores.batch_split(from_flat(TrainConfig, batch_size=4, threads=2))
    assert two == {"threads": 2, "choose": False}
    assert auto["choose"] == (auto["threads"] > 1)
