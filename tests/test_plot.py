"""`tinygrad-lm plot` (plot.py): reading log.jsonl as loop.Run writes it, its errors, the install
hint without matplotlib, and (when matplotlib is installed) the picture itself."""
import json
import sys

import pytest

from tinygrad_lm.run import cli, plot
from tinygrad_lm.run.config import RunConfig
from tinygrad_lm.run.loop import Run


def write_run(folder, max_iters=40, eval_interval=20, log_interval=5, lr=1e-3, finetune=False):
    """A log.jsonl written by loop.Run itself, as a training loop writes it."""
    run = Run(RunConfig(out_dir=str(folder), eval_interval=eval_interval, log_interval=log_interval, quiet=True),
              save=lambda path, step: None)
    for step in range(1, max_iters + 1):
        if run.should_evaluate(step - 1):
            record = {"step": step - 1, "val_loss": 5.0 / step}
            if not finetune:
                record["train_loss"] = 4.5 / step
            run.evaluated(record, improved=True, message="")
        run.log_step(step, max_iters, 4.0 / step, lr * step / max_iters)
    run.evaluated({"step": max_iters, "val_loss": 5.0 / max_iters, **({} if finetune else {"train_loss": 0.1})},
                  improved=False, message="")
    run.close()
    return folder


def test_read_log_reads_what_the_loop_writes(tmp_path):
    log = plot.read_log(write_run(tmp_path / "r1"))
    assert log.name == "r1"
    assert log.steps == list(range(5, 41, 5))
    assert log.losses == pytest.approx([4.0 / s for s in log.steps])
    assert log.lrs == pytest.approx([1e-3 * s / 40 for s in log.steps])
    assert [e["step"] for e in log.evals] == [20, 40]
    assert plot.read_log(tmp_path / "r1" / "log.jsonl").steps == log.steps  # the file itself works too


def test_a_damaged_line_is_skipped_with_a_warning_naming_file_and_line(tmp_path):
    folder = write_run(tmp_path / "r1")
    with open(folder / "log.jsonl", "a") as f:
        f.write('{"step": 45, "loss": 0.0')  # killed in the middle of writing
    warnings = []
    log = plot.read_log(folder, warn=warnings.append)
    assert log.steps[-1] == 40
    assert len(warnings) == 1 and "log.jsonl: skipped 1 line(s)" in warnings[0] and "line 11;" in warnings[0]


def test_many_damaged_lines_give_one_warning(tmp_path):
    folder = write_run(tmp_path / "r1")
    with open(folder / "log.jsonl", "a") as f:
        f.write("".join(f'{{"step": {s}, "loss": "x", "lr": 1}}\n' for s in range(50, 60)))  # loss not a number
    warnings = []
    assert plot.read_log(folder, warn=warnings.append).steps[-1] == 40
    assert len(warnings) == 1 and "skipped 10 line(s)" in warnings[0]
    assert "line 11, 12, 13, 14, 15 and 5 more" in warnings[0]


def test_a_resumed_run_replaces_the_steps_it_redid(tmp_path):
    lines = [{"step": s, "loss": 10.0 - s / 10, "lr": 1e-3} for s in (10, 20, 30)] + [
        {"step": 20, "val_loss": 9.0, "train_loss": 9.1}] + [
        {"step": s, "loss": 1.0, "lr": 1e-3} for s in (25, 30, 35)]  # killed at 30, resumed from the step-20 checkpoint
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    log = plot.read_log(tmp_path)
    assert log.steps == [10, 20, 25, 30, 35]
    assert log.losses == [9.0, 8.0, 1.0, 1.0, 1.0]
    assert [e["step"] for e in log.evals] == [20]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no such run folder"),
    (lambda d: d.mkdir(), "no log.jsonl in this folder"),
    (lambda d: (d.mkdir(), (d / "log.jsonl").write_text("")), "no step or evaluation records"),
    (lambda d: (d.mkdir(), (d / "log.jsonl").write_text("garbage\n")), "no step or evaluation records"),
    (lambda d: (d.mkdir(), (d / "ckpt.npz").write_bytes(b"PK")), "no log.jsonl in this folder"),
])
def test_errors_name_the_folder_in_one_line(tmp_path, capsys, make, message):
    folder = tmp_path / "myrun"
    make(folder)
    assert cli.main(["plot", str(folder), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(folder) in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_a_file_other_than_a_log_is_refused(tmp_path, capsys):
    (tmp_path / "ckpt.npz").write_bytes(b"PK\x03\x04")
    assert cli.main(["plot", str(tmp_path / "ckpt.npz")]) == 2
    err = capsys.readouterr().err
    assert "ckpt.npz: not a run folder or its log.jsonl" in err and len(err.strip().splitlines()) == 2


def test_without_matplotlib_one_line_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    folder = write_run(tmp_path / "r1")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert cli.main(["plot", str(folder), "--out", str(tmp_path / "loss.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e .[plot]" in err and "pip install matplotlib" in err
    assert not (tmp_path / "loss.png").exists()


def colour_pixels(png, hex_colour, tol=0.06):
    """How many pixels of `png` are within tol of hex_colour."""
    import matplotlib.image
    import numpy as np

    img = matplotlib.image.imread(png)[..., :3]  # (H, W, 3) in [0, 1]
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img - rgb).max(axis=-1) < tol).sum())


def test_two_runs_are_drawn_overlaid_into_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    r1, r2 = write_run(tmp_path / "r1"), write_run(tmp_path / "r2", lr=3e-3)
    out = tmp_path / "plots" / "loss.png"  # the folder is created
    assert cli.main(["plot", str(r1), str(r2), "--out", str(out)]) == 0
    assert f"wrote {out} (2 runs: r1, r2)" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert colour_pixels(out, "#1f77b4") > 200 and colour_pixels(out, "#ff7f0e") > 200  # both runs' colours


def test_one_run_alone_draws_in_one_colour(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot.plot_runs([plot.read_log(write_run(tmp_path / "r1"))], tmp_path / "one.png", log_y=True)
    assert colour_pixels(out, "#1f77b4") > 200 and colour_pixels(out, "#ff7f0e") == 0


def test_finetuning_logs_and_folders_of_the_same_name(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = write_run(tmp_path / "a" / "ft", finetune=True)  # evaluations without train_loss
    b = write_run(tmp_path / "b" / "ft", finetune=True)
    assert cli.main(["plot", str(a), str(b), "--out", str(tmp_path / "ft.png")]) == 0
    assert f"2 runs: {a}, {b}" in capsys.readouterr().out  # labelled by path, not by the shared name


def test_finetunes_test_record_is_read_without_a_warning(tmp_path):
    folder = write_run(tmp_path / "ft", finetune=True)
    with open(folder / "log.jsonl", "a") as f:  # what finetune --test appends after its loop
        f.write(json.dumps({"step": 40, "best_step": 20, "test_loss": 1.2, "test_accuracy": 0.5,
                            "test_macro_f1": 0.4}) + "\n")
    warnings = []
    log = plot.read_log(folder, warn=warnings.append)
    assert warnings == [] and log.steps[-1] == 40 and [e["step"] for e in log.evals] == [20, 40]
