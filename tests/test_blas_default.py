"""The command line's BLAS default (fast/blas.py `default_blas_threads`, called by cli.main):
one BLAS thread unless the environment asks for a count, for the commands that compute."""
import pytest

from tinygrad_lm.run import cli
from tinygrad_lm.fast import blas


@pytest.fixture
def openblas():
    """OpenBLAS's (set, get) in this process, its thread count restored afterwards."""
    found = blas._find_openblas()
    if found is None:
        pytest.skip("no OpenBLAS found in this process (default_blas_threads is then a no-op)")
    before = found[1]()
    yield found
    found[0](before)


def test_without_an_environment_variable_blas_runs_on_one_thread(openblas):
    openblas[0](2)
    assert blas.default_blas_threads(environ={"PATH": "/bin"}) == "1 thread"
    assert openblas[1]() == 1


@pytest.mark.parametrize("name", blas.ASK_VARIABLES)
def test_a_count_asked_for_in_the_environment_is_left_alone(openblas, name):
    openblas[0](2)
    assert blas.default_blas_threads(environ={name: " 2 "}) == f"{name}=2"
    assert openblas[1]() == 2


def test_an_empty_variable_is_not_an_ask(openblas):
    openblas[0](2)
    assert blas.default_blas_threads(environ={"OPENBLAS_NUM_THREADS": ""}) == "1 thread"
    assert openblas[1]() == 1


@pytest.mark.parametrize("argv, called", [
    (["sample", "--ckpt", "no-such.npz"], True),
    (["train", "--data", "no-such.txt", "--max-iters", "1"], True),
    (["finetune", "--ckpt", "no-such.npz", "--data", "no-such.jsonl"], True),
    (["tokenize", "--data", "no-such.txt"], False),  # no matrix products
    (["export", "--ckpt", "no-such.npz", "--hf-dir", "x"], False),
])
def test_the_commands_that_compute_set_the_default_first(monkeypatch, tmp_path, argv, called):
    calls = []
    monkeypatch.setattr(blas, "default_blas_threads", lambda: calls.append(True))
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2  # the missing file, reported in one line
    assert bool(calls) == called
