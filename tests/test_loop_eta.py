"""The progress line's timing (loop.Run.log_step): ms/step leaves evaluations out, and the ETA
uses a smoothed step time, so one slow step or an evaluation does not make it jump."""
import json
import re

import pytest

from tinygrad_lm.run import loop
from tinygrad_lm.run.config import RunConfig


class Clock:
    """A fake time.perf_counter that the test moves forward."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(loop.time, "perf_counter", c)
    return c


def make_run(tmp_path, eval_interval=1000, log_interval=10):
    cfg = RunConfig(out_dir=str(tmp_path / "run"), eval_interval=eval_interval, log_interval=log_interval)
    return loop.Run(cfg, save=lambda path, step: None)


def eta_seconds(line):
    h, m, s = re.search(r"ETA (\d+):(\d\d):(\d\d)", line).groups()
    return int(h) * 3600 + int(m) * 60 + int(s)


def run_steps(run, clock, capsys, first, last, max_iters, seconds_per_step, slow=None):
    """Steps first..last (1-based: the number done after each), each taking seconds_per_step, or
    slow[step] seconds for the steps in `slow`; returns {step: ETA in seconds} of the printed lines."""
    etas = {}
    for step in range(first, last + 1):
        clock.now += (slow or {}).get(step, seconds_per_step)
        run.log_step(step, max_iters, 1.0, 1e-3)
        out = capsys.readouterr().out
        if out:
            etas[step] = eta_seconds(out)
    return etas


def test_one_slow_step_does_not_make_the_eta_jump(tmp_path, clock, capsys):
    run = make_run(tmp_path)
    max_iters = 2000
    etas = run_steps(run, clock, capsys, 1, 100, max_iters, 0.1)
    assert etas[100] == pytest.approx(1900 * 0.1, abs=1)  # steady: steps left x step time
    # one step 30x slower (the last 10 steps' mean alone would be 3.9x, and so would the ETA)
    etas = run_steps(run, clock, capsys, 101, 110, max_iters, 0.1, slow={105: 3.0})
    steady = 1890 * 0.1
    assert steady <= etas[110] < 1.35 * steady
    run.close()


def test_a_lasting_slowdown_takes_over_the_eta(tmp_path, clock, capsys):
    run = make_run(tmp_path)
    max_iters = 2000
    run_steps(run, clock, capsys, 1, 100, max_iters, 0.1)
    etas = run_steps(run, clock, capsys, 101, 600, max_iters, 0.2)  # the machine got busy for good
    assert etas[600] == pytest.approx(1400 * 0.2, rel=0.05)
    run.close()


def test_evaluations_are_left_out_of_ms_per_step_and_added_to_the_eta(tmp_path, clock, capsys):
    run = make_run(tmp_path, eval_interval=50)
    max_iters = 200
    run_steps(run, clock, capsys, 1, 50, max_iters, 0.1)
    assert run.should_evaluate(50)
    clock.now += 5.0  # a 5-second evaluation, checkpoint included
    run.evaluated({"step": 50, "val_loss": 1.0}, improved=False, message="step 50: val loss 1.0")
    capsys.readouterr()
    etas = run_steps(run, clock, capsys, 51, 60, max_iters, 0.1)
    # 140 steps at 0.1 s, and 3 evaluations left (at 100, 150 and the last) at 5 s each
    assert etas[60] == pytest.approx(140 * 0.1 + 3 * 5.0, abs=1)
    run.close()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    at_60 = next(r for r in records if r["step"] == 60 and "ms_per_step" in r)
    assert at_60["ms_per_step"] == pytest.approx(100.0)


def test_the_eta_at_the_last_step_is_the_final_evaluation(tmp_path, clock, capsys):
    run = make_run(tmp_path, eval_interval=10, log_interval=10)
    run_steps(run, clock, capsys, 1, 10, 20, 0.1)
    assert run.should_evaluate(10)
    clock.now += 7.0
    run.evaluated({"step": 10, "val_loss": 1.0}, improved=False, message="eval")
    capsys.readouterr()
    etas = run_steps(run, clock, capsys, 11, 20, 20, 0.1)
    assert etas[20] == 7  # no steps left; the evaluation after the last step, at the mean so far
    run.close()
