"""The README's "Look inside a model" section is true: each of its Python blocks runs as written
in a fresh process and empty folder (as a reader pastes it), prints what its comments say, and
writes the files it names. Its bash commands (attention, train --diagnostics, plot) are run by the
README walk (test_readme_commands.py).
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Look inside a model"


def python_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    if HEADING not in text:
        pytest.fail(f"README.md has no section {HEADING!r}")
    body = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def run_block(code, folder):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_section_has_its_two_python_examples():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "register_forward_hook" in blocks[0] and "run_with_cache" in blocks[0]
    assert "draw_graph" in blocks[1] and "record_modules" in blocks[1]


def test_hooks_and_cache_example_prints_what_its_comments_say(tmp_path):
    code = python_blocks()[0]
    printed = run_block(code, tmp_path)
    # each printed line, as the block's comments give it ("prints: X" or "# X: ...")
    said = ["Block (1, 16, 64)", "(1, 16, 65)", "(1, 16, 64)", "(1, 4, 16, 16) 1.0"]
    for line in said:
        assert f"# {line}" in code or f"# prints: {line}" in code, f"the README block no longer says {line!r}"
    assert printed == said  # the hook printed once: remove() detached it before run_with_cache


def test_graph_example_writes_the_module_chain_and_every_op(tmp_path):
    run_block(python_blocks()[1], tmp_path)
    by_module = (tmp_path / "gpt_graph.dot").read_text()
    every_op = (tmp_path / "gpt_ops.dot").read_text()
    assert by_module.startswith("digraph") and every_op.startswith("digraph")
    node = {label: nid for nid, label in re.findall(r'^\s*(\w+) \[label="([\w.]+)\\n', by_module, re.M)}
    edges = set(re.findall(r"^\s*(\w+) -> (\w+)", by_module, re.M))
    chain = ["transformer.h.0", "transformer.h.1", "transformer.ln_f", "lm_head", "loss_fn"]
    assert all((node[a], node[b]) in edges for a, b in zip(chain, chain[1:])), (node, edges)
    assert {"transformer.wte", "transformer.wpe"} <= node.keys()
    assert "MatMul" in every_op and "transformer.h.0.attn.c_attn.weight" in every_op
    assert every_op.count("->") > 5 * by_module.count("->")
