"""The README's "Property-based tests for your own op" section is true: its test file passes as
written, and with the README's bug planted it fails with the report the README shows (same lines,
modulo pytest's indentation). Each run is a fresh pytest process in a temporary folder, as a user
would run it, with a fixed Hypothesis seed so the shrunk example is the one printed in the README.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Property-based tests for your own op"


def section():
    text = README.read_text(encoding="utf-8")
    if HEADING not in text:
        pytest.fail(f"README.md has no section {HEADING!r}")
    body = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", body, re.S)[1]
    report = re.search(r"```text\n(.*?)```", body, re.S)[1]
    return code, report


def normal(line):
    """A report line without pytest's "E" and indentation, in one Hypothesis version's wording
    (older releases say "Falsifying example:" and add no "# or any other generated value")."""
    line = re.sub(r"\s+# or any other generated value$", "", line.removeprefix("E").strip())
    return line.replace("Falsifying example:", "Failing test case:")


def run_pytest(tmp_path, source):
    (tmp_path / "test_my_op.py").write_text(source, encoding="utf-8")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0", "test_my_op.py"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_the_readme_test_file_passes_as_written(tmp_path):
    code, _ = section()
    rc, out = run_pytest(tmp_path, code)
    assert rc == 0 and re.search(r"\b2 passed", out), out


def run_with_bug(tmp_path, right, wrong):
    """The README's test file with the line `right` replaced by `wrong`: it must fail; its output."""
    code, _ = section()
    assert right in code
    rc, out = run_pytest(tmp_path, code.replace(right, wrong))
    assert rc == 1, out
    return out


def test_the_planted_bug_gives_the_report_the_readme_shows(tmp_path):
    right = "gy * self.a / self.h, gy * self.b / self.h"
    out = run_with_bug(tmp_path, right, right.replace("self.b", "self.a"))  # gb computed from a
    shown = [normal(line) for line in section()[1].strip().splitlines()]
    printed = {normal(line) for line in out.splitlines()}
    missing = [line for line in shown if line not in printed]
    assert not missing, f"README lines not printed: {missing}\n{out}"


def test_dropping_unbroadcast_gives_the_shape_message_the_readme_quotes(tmp_path):
    out = run_with_bug(tmp_path, "return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)", "return ga, gb")
    quoted = re.search(r"for example\s+`(Hypot\.backward returned [^`]*)`", README.read_text(encoding="utf-8"))[1]
    assert quoted in out, out
