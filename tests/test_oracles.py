"""tests/oracles.py, the one import helper of the oracle tests: a missing oracle skips, or fails
where TINYGRAD_LM_REQUIRE_ORACLES is set (CI's oracle run); a test without the oracle mark fails."""
import pytest

import oracles
from oracles import oracle

MISSING = "tinygrad_lm_no_such_oracle"


class Marked:
    """Stands in for a pytest item carrying @pytest.mark.oracle."""
    nodeid = "tests/test_x.py::test_x"

    def get_closest_marker(self, name):
        return pytest.mark.oracle.mark if name == "oracle" else None


def test_an_installed_oracle_is_returned(monkeypatch):
    monkeypatch.setattr(oracles, "current_test", Marked())
    assert oracle("json").__name__ == "json"


def test_a_missing_oracle_skips_and_fails_where_ci_requires_it(monkeypatch):
    monkeypatch.setattr(oracles, "current_test", Marked())
    monkeypatch.delenv(oracles.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"oracle tinygrad_lm_no_such_oracle is not installed .*\[oracle\]"):
        oracle(MISSING)
    monkeypatch.setenv(oracles.REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match=r"missing .*TINYGRAD_LM_REQUIRE_ORACLES is set"):
        oracle(MISSING)


def test_a_test_without_the_oracle_mark_fails_even_where_the_oracle_is_installed():
    # this test is not marked: `-m oracle` would never select it, so the helper refuses it
    with pytest.raises(pytest.fail.Exception, match=r"test_oracles\.py::test_a_test_without.* no @pytest\.mark\.oracle"):
        oracle("json")


def test_at_import_time_the_module_mark_counts(monkeypatch):
    monkeypatch.setattr(oracles, "current_test", None)  # as while a test module is collected
    marked = {"oracle": oracle, "pytestmark": [pytest.mark.oracle]}
    exec("module = oracle('json')", marked)
    assert marked["module"].__name__ == "json"
    with pytest.raises(pytest.fail.Exception, match="no @pytest.mark.oracle"):
        exec("module = oracle('json')", {"oracle": oracle, "__name__": "tests.test_unmarked"})
