"""The optional oracles: PyTorch, transformers, tiktoken, sacreBLEU (and safetensors, for the Hugging
Face folders), imported through one helper, `oracle(name)`.

Every test that needs one of them carries `@pytest.mark.oracle` (or `pytestmark =
pytest.mark.oracle` above the module's `oracle(...)` call) and imports it with `oracle("torch")`:
  * installed: the module is returned;
  * missing: the test is skipped (`python -m pytest -q`, the light run, where no oracle is
    installed), or it fails when the environment variable TINYGRAD_LM_REQUIRE_ORACLES is set
    (CI's oracle run, `pip install -e '.[oracle]'` then `python -m pytest -q -m oracle`), so a
    missing oracle there can never pass as a skip;
  * called from a test without the mark: the test fails, since `-m oracle` would never select it.
conftest.py tells this module which test is running (`current_test`).
"""
import importlib
import os
import sys

import pytest

REQUIRE = "TINYGRAD_LM_REQUIRE_ORACLES"
INSTALL = "pip install -e '.[oracle]'"
current_test = None  # the pytest item being set up or run; None while modules are collected


def _marked(caller_globals):
    """Whether the running test (or, at import time, the calling module) carries the oracle mark."""
    if current_test is not None:
        return current_test.get_closest_marker("oracle") is not None
    marks = caller_globals.get("pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return any(getattr(m, "name", None) == "oracle" for m in marks)


def oracle(name):
    """Import and return the module `name` (e.g. "torch", "safetensors.numpy"), or skip the test
    without it; fail instead where TINYGRAD_LM_REQUIRE_ORACLES is set, or where the test is unmarked."""
    if not _marked(sys._getframe(1).f_globals):
        where = current_test.nodeid if current_test is not None else sys._getframe(1).f_globals.get("__name__")
        pytest.fail(f"{where} imports the oracle {name} but has no @pytest.mark.oracle (or module-level "
                     "`pytestmark = pytest.mark.oracle` before the import): CI's `-m oracle` run would never run it",
                     pytrace=False)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing = e  # skip or fail outside the handler: the report shows one message, not a chained traceback
    if os.environ.get(REQUIRE):
        pytest.fail(f"the oracle {name} is missing ({missing}) and {REQUIRE} is set: {INSTALL}", pytrace=False)
    pytest.skip(f"the oracle {name} is not installed ({INSTALL})", allow_module_level=True)
