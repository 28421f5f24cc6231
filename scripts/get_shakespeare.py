"""Tiny Shakespeare into a file: a thin wrapper over `python -m tinygrad_lm data shakespeare`.

    python scripts/get_shakespeare.py [--out input.txt] [--from FILE] [--force]

Everything (download, size and SHA-256 check, atomic write, the one-line offline advice) is in
tinygrad_lm/run/datasets.py; this script only keeps the old command working from a source checkout.
Tests and benchmarks never download: they read ../shared/data/tinyshakespeare.txt when present.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_lm.run.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["data", "shakespeare"] + sys.argv[1:]))
