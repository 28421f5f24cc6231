"""`--threads auto`, the default of train, finetune (both tasks) and MLM pretraining (run/cores.py):
the cores this process may run on (its affinity mask), at most the rows of a micro-batch, shared
by the MPI ranks on the host; 1 with --reference or CUDA, saying why; an explicit N wins. The
start line says what was chosen (and respects --quiet); the saved config keeps "auto" or N, and
either resumes. Bad values (0, -1, x) are refused naming --threads and what it takes.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run import cli, cores
from tinygrad_lm.run.config import RunConfig, from_flat, settings_from_toml
from tinygrad_lm.run.finetune import FinetuneConfig, finetune
from tinygrad_lm.run.train import TrainConfig, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 30)


@pytest.fixture(autouse=True)
def split_any_model(monkeypatch):
    """These tests train tiny models to see what auto prints and saves: let auto split them
    (cores.MIN_WORK, the least work a thread gets, would keep them on one thread)."""
    monkeypatch.setattr(cores, "MIN_WORK", 1)


def test_auto_keeps_a_small_model_on_one_thread(monkeypatch):
    monkeypatch.setattr(cores, "MIN_WORK", 40_000_000)
    from tinygrad_lm.models.gpt import GPT, GPTConfig

    small = cores.row_work(GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64)))
    default = cores.row_work(GPT(GPTConfig(vocab_size=114)))  # the default command's model
    assert small == 32 * sum(p.data.size for p in GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2,
                                                                  n_embd=64)).parameters())
    n, line = cores.resolve(RunConfig(), 8, 1, 2, small)  # 8 x 32 tokens: 2 threads took 1.31x one's step
    assert n == 1 and "too small to split further" in line
    assert cores.resolve(RunConfig(), 12, 1, 2, default) == (2, "threads: 2 (auto)")
    mid = cores.row_work(GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=64)))
    assert cores.resolve(RunConfig(), 12, 1, 2, mid)[0] == 2  # 12 x 64 tokens: 2 threads took 0.92x one's step
    assert cores.resolve(RunConfig(), 12, 1, 8, mid)[0] == 12 * mid // 40_000_000 < 8  # 8 cores: capped by the work
    assert cores.resolve(RunConfig(threads=2), 8, 1, 2, small)[0] == 2  # an explicit count wins


def tiny(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), block_size=16, n_layer=1, n_head=2, n_embd=16, batch_size=4, max_iters=2,
               eval_interval=2, eval_iters=1, log_interval=1, out_dir=str(out_dir), sample_tokens=0, quiet=False)
    return from_flat(TrainConfig, **{**cfg, **kw})


def start_lines(capsys):
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("threads:")]


# ---------------------------------------------------------------------------- what auto resolves to
def test_auto_takes_the_affinity_mask_not_the_machines_core_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert cores.available_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    assert cores.available_cores() == 64


@pytest.mark.parametrize("run, rows, ranks, n_cores, want", [
    (RunConfig(), 12, 1, 4, (4, "threads: 4 (auto)")),
    (RunConfig(), 12, 1, 1, (1, "threads: 1 (auto: this process may run on 1 core)")),
    (RunConfig(), 3, 1, 8, (3, "threads: 3 (auto: a micro-batch of this run has 3 rows)")),
    (RunConfig(), 1, 1, 2, (1, "threads: 1 (auto: a micro-batch of this run has 1 row)")),
    (RunConfig(), 6, 2, 2, (1, "threads: 1 (auto: 2 cores shared by 2 MPI ranks on this host)")),
    (RunConfig(), 6, 2, 8, (4, "threads: 4 (auto: 8 cores shared by 2 MPI ranks on this host)")),
    (RunConfig(), 6, 3, 2, (1, "threads: 1 (auto: 2 cores shared by 3 MPI ranks on this host)")),
    (RunConfig(reference=True), 12, 1, 4, (1, "threads: 1 (auto: --reference runs the textbook step on one thread)")),
    (RunConfig(device="cuda"), 12, 1, 4, (1, "threads: 1 (auto: --device cuda runs each op in parallel on the "
                                             "device)")),
    (RunConfig(threads=3), 12, 1, 1, (3, "threads: 3")),  # explicit wins, even over the cores
    (RunConfig(threads=1), 12, 1, 8, (1, "threads: 1")),
    (RunConfig(threads=4), 2, 1, 8, (4, "threads: 4 (2 used: a micro-batch of this run has 2 rows)")),
], ids=["cores", "one-core", "rows", "one-row", "mpi-2-on-2", "mpi-2-on-8", "mpi-3-on-2", "reference", "cuda",
        "explicit", "explicit-1", "explicit-over-rows"])
def test_resolve(run, rows, ranks, n_cores, want):
    assert cores.resolve(run, rows, ranks, cores=n_cores) == want


def test_the_rows_are_one_micro_batch_of_this_rank():
    cfg = from_flat(TrainConfig, batch_size=6, grad_accum=4)

    class Group:  # a 3-rank job, all on this host
        size, comm = 3, None

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cores, "available_cores", lambda: 16)
        assert cores.batch_split(cfg)[0]["threads"] == 6  # one micro-batch: 6 rows, whatever --grad-accum
        mp.setattr(cores, "ranks_on_host", lambda group: 3)
        assert cores.batch_split(cfg, Group())[0]["threads"] == 2  # 6 rows over 3 ranks: 2 each


# ---------------------------------------------------------------------------- bad values, at the door
@pytest.mark.parametrize("command", [["train"], ["finetune", "--ckpt", "c.npz", "--data", "d.jsonl"], ["bench"]])
@pytest.mark.parametrize("value", ["0", "-1", "x", "2.5", ""])
def test_bad_threads_on_the_command_line_are_argparse_errors_naming_the_flag(command, value, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args([*command, "--threads", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads" in err and "a positive integer or auto" in err and repr(value) in err


@pytest.mark.parametrize("value", [0, -1, "x", "2", 1.0, True, None])
def test_bad_threads_in_a_python_config_name_the_setting_and_the_accepted_values(value):
    with pytest.raises(ValueError, match=r"threads=.*--threads takes a positive integer or auto"):
        RunConfig(threads=value)
    with pytest.raises(ValueError, match="a positive integer or auto"):
        from_flat(FinetuneConfig, ckpt="c.npz", data="d.jsonl", threads=value)


def test_good_values_on_the_command_line_python_and_toml(tmp_path):
    parser = cli.build_parser()
    assert parser.parse_args(["train"]).threads == "auto" and RunConfig().threads == "auto"
    assert parser.parse_args(["train", "--threads", "3"]).threads == 3
    assert parser.parse_args(["finetune", "--threads", "auto"]).threads == "auto"
    assert RunConfig(threads=2).threads == 2
    toml = tmp_path / "run.toml"
    toml.write_text('threads = "auto"\n')
    assert settings_from_toml(TrainConfig, toml) == {"threads": "auto"}
    toml.write_text('[run]\nthreads = 2\n')
    assert settings_from_toml(TrainConfig, toml) == {"threads": 2}
    toml.write_text('threads = 0\n')
    with pytest.raises(ValueError, match=r"run.toml: key 'threads'.*a positive integer or auto"):
        settings_from_toml(TrainConfig, toml)


def test_explicit_threads_keep_todays_refusals():
    with pytest.raises(ValueError, match="drop --threads 2"):
        RunConfig(threads=2, reference=True)
    with pytest.raises(ValueError, match="use --threads 1"):
        RunConfig(threads=2, device="cuda")
    RunConfig(reference=True), RunConfig(threads=1, reference=True)  # auto and 1: one thread, no refusal


# ---------------------------------------------------------------------------- the runs
def test_train_and_mlm_print_the_threads_line_and_respect_quiet(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cores, "available_cores", lambda: 2)
    result = train(tiny(text_file, tmp_path / "auto"))
    assert start_lines(capsys) == ["threads: 2 (auto)"]
    assert result["config"].run.threads == "auto"
    assert type(result["model"]).__name__ == "GPT"
    train(tiny(text_file, tmp_path / "ref", reference=True))
    assert start_lines(capsys) == ["threads: 1 (auto: --reference runs the textbook step on one thread)"]
    train(tiny(text_file, tmp_path / "three", threads=3))
    assert start_lines(capsys) == ["threads: 3"]
    train(tiny(text_file, tmp_path / "mlm", objective="mlm", batch_size=1))
    assert start_lines(capsys) == ["threads: 1 (auto: a micro-batch of this run has 1 row)"]
    train(tiny(text_file, tmp_path / "quiet", quiet=True))
    assert capsys.readouterr().out == ""


def test_the_saved_config_keeps_what_was_asked_and_either_resumes(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cores, "available_cores", lambda: 2)
    for saved, then in (("auto", 1), (2, "auto")):
        out = tmp_path / f"run-{saved}"
        train(tiny(text_file, out, threads=saved, max_iters=4), stop_at=2)
        assert checkpoint.load(out / "ckpt.npz")[0]["train_config"]["run"]["threads"] == saved  # as given: "auto" or N
        capsys.readouterr()
        result = train(tiny(text_file, out, threads=then, max_iters=4), resume=True, given={"threads"})
        assert result["step"] == 4 and result["config"].run.threads == then
        assert start_lines(capsys) == [{1: "threads: 1", "auto": "threads: 2 (auto)"}[then]]


FT_ROWS = [{"text": t, "label": t.split()[0]} for t in ("Speak, speak.", "All: speak.", "Speak all.", "All speak.")]
GEN_ROWS = [{"prompt": "Speak", "completion": ", speak."}, {"prompt": "All", "completion": ": speak."}]


@pytest.mark.parametrize("task, rows", [("classify", FT_ROWS), ("generate", GEN_ROWS)])
def test_finetune_prints_the_threads_line(text_file, tmp_path, capsys, monkeypatch, task, rows):
    monkeypatch.setattr(cores, "available_cores", lambda: 2)
    train(tiny(text_file, tmp_path / "pre", quiet=True))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4), encoding="utf-8")
    common = dict(ckpt=str(tmp_path / "pre" / "best.npz"), data=str(data), val=str(data), task=task, batch_size=4,
                  max_iters=1, eval_interval=1, log_interval=1)
    result = finetune(from_flat(FinetuneConfig, out_dir=str(tmp_path / "ft"), **common))
    assert start_lines(capsys) == ["threads: 2 (auto)"] and result["config"].run.threads == "auto"
    finetune(from_flat(FinetuneConfig, out_dir=str(tmp_path / "ref"), reference=True, **common))
    assert start_lines(capsys) == ["threads: 1 (auto: --reference runs the textbook step on one thread)"]


def test_two_mpi_ranks_on_this_host_share_its_cores(text_file, tmp_path):
    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + an MPI) is not installed")
    mpiexec = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()), None) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on the PATH (pip install mpich)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "tinygrad_lm", "train", "--dist", "mpi",
                           "--data", str(text_file), "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
                           "--block-size", "16", "--batch-size", "8", "--max-iters", "1", "--eval-interval", "1",
                           "--eval-iters", "1", "--sample-tokens", "0", "--out-dir", str(tmp_path / "mpi")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("threads:")]
    n = max(1, cores.available_cores() // 2)  # each rank: its share of this host's cores (rank 0 prints)
    assert lines == [f"threads: {n} (auto: {cores.available_cores()} cores shared by 2 MPI ranks on this host)"]


def test_bench_passes_threads_and_blas_threads_to_the_script_under_their_names(monkeypatch):
    import runpy

    seen = {}
    monkeypatch.setattr(runpy, "run_path", lambda path, run_name: seen.update(path=path, argv=list(sys.argv)))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # _cmd_bench sets the script's argv
    assert cli.main(["bench", "--steps", "2", "--threads", "3", "--blas-threads", "1"]) == 0
    assert Path(seen["path"]).is_file() and Path(seen["path"]).name == "bench_train.py"
    assert seen["argv"][1:] == ["--speed-only", "--steps", "2", "--threads", "3", "--blas-threads", "1"]
    assert cli.main(["bench", "--steps", "2"]) == 0
    assert seen["argv"][1:] == ["--speed-only", "--steps", "2", "--threads", "auto"]  # BLAS: the script's default
