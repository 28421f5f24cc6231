"""The README's metrics example ("Generative fine-tuning and evaluation") runs as written in a
fresh process and prints what its comments say."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Generative fine-tuning and evaluation"


def test_the_metrics_example_prints_what_its_comments_say(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    body = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", body, re.S)
    said = [line.split("  # ", 1)[1] for line in code.splitlines() if line.startswith("print(")]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == said
