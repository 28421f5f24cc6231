"""Shared test fixtures: a hypothesis profile, global seeding, and the Shakespeare corpus path.

Keep this file small: fixtures used by one test file belong in that file.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_lm

# deadline=None: gradchecks do two forwards per element and the machine is shared, so
# per-example timings are noise. derandomize: every run draws the same examples (seeded).
settings.register_profile(
    "tinygrad_lm", deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tinygrad_lm")

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


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
