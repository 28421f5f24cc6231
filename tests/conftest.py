"""Shared test fixtures: a hypothesis profile, global seeding, the Shakespeare corpus path, the
CuPy stand-in (`cupy_standin.py`, a test double) for the "cuda" tests where no GPU is, for
the training tests a cache folder per test and a small corpus file (`isolated_cache`, `text_file`),
and the running test handed to `oracles.py` (the PyTorch/transformers/tiktoken import helper).

Keep this file small: fixtures used by one test file belong in that file.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_lm
from tinygrad_lm.testing import backends

import cupy_standin  # noqa: E402  (tests/: the test double; only this conftest activates it)
import oracles  # noqa: E402  (tests/: `oracle(name)`, which checks the running test's oracle mark)

# devices() offers a third "cuda" parameter, id cupy-standin, where no real GPU is usable: the
# tests parametrized over devices() run their CuPy half on the stand-in on every commit
backends.register_standin(cupy_standin.install)

# deadline=None: gradchecks do two forwards per element and the machine is shared, so
# per-example timings are noise. derandomize: every run draws the same examples (seeded).
settings.register_profile(
    "tinygrad_lm", deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tinygrad_lm")

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def pytest_configure(config):
    config.addinivalue_line("markers", "cupy_standin: runs with tests/cupy_standin.py (a CuPy test double) "
                            "installed as tinygrad_lm.engine.backend.cupy")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture of the test is set up (module-scoped ones included): `oracle(name)`
    needs to know whether the test carries the oracle mark."""
    oracles.current_test = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    oracles.current_test = None


@pytest.fixture(autouse=True)
def _cupy_standin(request, monkeypatch):
    """For tests carrying the cupy_standin mark (devices()'s third parameter): the stand-in is
    CuPy, and a GPU is reported present, for that test only."""
    if request.node.get_closest_marker("cupy_standin") is not None:
        cupy_standin.install(monkeypatch)
    yield
    tinygrad_lm.engine.backend._pending_checks.clear()  # a device check no host read collected stays with its test


@pytest.fixture(autouse=True)
def _seed_everything():
    """Reseed the package's global generator (dropout, init, sampling) before every test."""
    tinygrad_lm.manual_seed(0)
    yield


@pytest.fixture
def rng():
    """A fresh seeded NumPy Generator for the test's own random data."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shakespeare_path():
    """Path to tinyshakespeare.txt (in /work/shared/data); skips the test when it is absent."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"corpus not found at {SHAKESPEARE}")
    return SHAKESPEARE


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """TINYGRAD_LM_CACHE inside the test's tmp_path: the token files and tokenizers one test caches
    never reach another test (use with `pytestmark = pytest.mark.usefixtures("isolated_cache")`)."""
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def text_file(tmp_path, request):
    """`corpus.txt` in tmp_path holding the test module's TEXT (a few hundred words of play text)."""
    path = tmp_path / "corpus.txt"
    path.write_text(request.module.TEXT, encoding="utf-8")
    return path
