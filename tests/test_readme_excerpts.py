"""README.md's code excerpts stay true to the source files they quote.

A ```python block whose first line is `# excerpt of NAME in PATH...` quotes PATH (relative to
the checkout): each of its other lines, without leading whitespace, must be a line of PATH (so
indented out of context, but never edited). The README's excerpt of train.py's `_start` once
kept `speed_up(model, optimizer, split)` after the code had become `**split`; this catches that.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def excerpts(text):
    """[(README line number, quoted path, [lines])] of every excerpt block."""
    found, block, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if block is not None:
                head = re.match(r"# excerpt of .+? in (\S+\.py)\b", block[0]) if block else None
                if head:
                    found.append((start, head.group(1), block[1:]))
                block = None
            elif line.strip() == "```python":
                block, start = [], number + 1
            continue
        if block is not None:
            block.append(line)
    return found


def missing_lines(quoted, source):
    """The quoted lines (stripped, blank ones left out) that are not a line of source."""
    lines = {line.strip() for line in source.splitlines()}
    return [q for q in quoted if q.strip() and q.strip() not in lines]


def test_every_excerpt_quotes_its_file_as_it_is():
    found = excerpts((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md has no '# excerpt of ... in PATH' block any more: update this test"
    for start, path, quoted in found:
        source = ROOT / path
        assert source.is_file(), f"README.md line {start}: the excerpt quotes {path}, which does not exist"
        wrong = missing_lines(quoted, source.read_text(encoding="utf-8"))
        assert not wrong, f"README.md line {start}: lines not in {path} (copy them from it again): {wrong}"


def test_an_edited_line_is_caught():
    readme = "```python\n# excerpt of f() in a.py\nx = g(y)\n    return x\n```\n"
    [(start, path, quoted)] = excerpts(readme)
    assert (start, path) == (2, "a.py")
    assert missing_lines(quoted, "def f():\n    x = g(y)\n    return x\n") == []
    assert missing_lines(quoted, "def f():\n    x = g(**y)\n    return x\n") == ["x = g(y)"]
