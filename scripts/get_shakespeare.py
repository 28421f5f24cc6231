"""Download Tiny Shakespeare (1.1 MB, public domain) for users who are online.

    python scripts/get_shakespeare.py [--out data/tinyshakespeare.txt]

Tests and benchmarks never call this: they read ../shared/data/tinyshakespeare.txt when it is
present and skip otherwise. Leaves out: checksum pinning beyond the size and sha256 printed.
"""
import argparse
import hashlib
import urllib.request
from pathlib import Path

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def main():
    p = argparse.ArgumentParser(description="Download Tiny Shakespeare.")
    p.add_argument("--out", default="data/tinyshakespeare.txt", help="where to write it")
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(URL, timeout=60) as r:
        data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"downloaded {len(data)} bytes with sha256 {digest}, expected {SHA256}; not saved")
    out.write_bytes(data)
    print(f"wrote {out} ({len(data):,} bytes, sha256 {digest})")
    print(f"train on it: python -m tinygrad_lm train --data {out}")


if __name__ == "__main__":
    main()
