"""The `data` subcommand: fetch a known text corpus into a file, checked byte for byte.

    python -m tinygrad_lm data shakespeare                  # writes input.txt (online)
    python -m tinygrad_lm data shakespeare --from FILE      # offline: check and copy a copy you have

Implements one corpus, Tiny Shakespeare (Karpathy's char-rnn `input.txt`, 1,115,394 bytes, the
file nanoGPT's shakespeare_char example trains on). Where the bytes come from, in order: `--from
PATH`, else the path in the environment variable TINYGRAD_LM_SHAKESPEARE (for offline machines
and tests), else a download from the char-rnn repository. Whatever the source, the bytes must
have the known size and SHA-256 before anything is written; the file is then written to a
temporary name and renamed (`os.replace`), so an interrupted run never leaves half a file.
An existing file that already holds these bytes is left alone; a different file is never
overwritten without `--force`. Offline, the error is one line that says how to get the file.
Leaves out: other corpora, resuming partial downloads, proxies beyond what urllib reads from
the environment. Follows nanoGPT's data/shakespeare_char/prepare.py (download if missing).
"""
import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write


@dataclass(frozen=True)
class Corpus:
    name: str
    url: str
    size: int  # bytes
    sha256: str
    env: str  # environment variable that may hold the path of a local copy
    about: str


SHAKESPEARE = Corpus(
    name="shakespeare",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    size=1_115_394,
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    env="TINYGRAD_LM_SHAKESPEARE",
    about="Tiny Shakespeare (40,000 lines of several plays, public domain)",
)
CORPORA = {SHAKESPEARE.name: SHAKESPEARE}
TIMEOUT_S = 30  # per network operation


def check(data, corpus, where):
    """Raise ValueError naming `where` unless `data` (bytes) is exactly the corpus's file."""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != corpus.size or digest != corpus.sha256:
        raise ValueError(f"{where}: {len(data):,} bytes with SHA-256 {digest[:12]}..., but {corpus.name} is "
                         f"{corpus.size:,} bytes with SHA-256 {corpus.sha256[:12]}...; not written (a cut or "
                         f"changed download, or another file: fetch it again from {corpus.url})")


def download(corpus, out="input.txt"):
    """The corpus's bytes from its URL; offline, a ConnectionError (an OSError) whose message says
    how to get the file another way (the command to rerun names `out` unless it is the default)."""
    try:
        with urllib.request.urlopen(corpus.url, timeout=TIMEOUT_S) as r:
            return r.read()
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts and resets are OSErrors
        reason = getattr(e, "reason", None) or e
        raise ConnectionError(f"could not download {corpus.name} from {corpus.url} ({reason}); on a machine that is "
                              f"online, fetch that URL and bring the file here, then run: python -m tinygrad_lm "
                              f"data {corpus.name} --from FILE"
                              + (f" --out {out}" if Path(out) != Path("input.txt") else "")) from None


def read_local(path, corpus):
    """The bytes of a local copy at `path`, with errors naming the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass the {corpus.name} text file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the local copy of {corpus.name} to check and copy)")
    return path.read_bytes()


def write_atomic(path, data):
    """Write bytes to `path` through a temporary file in the same folder and os.replace (files.py)."""
    atomic_write(path, data, what="it", fix="pass another --out")


def fetch(corpus, out, source=None, force=False):
    """Write `corpus` to `out`; returns a sentence saying what was done.

    source: path of a local copy (None: the corpus's environment variable, else download).
    An `out` that already holds the corpus is kept; any other file at `out` needs force=True."""
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; pass a file name with --out, e.g. --out {out / 'input.txt'}")
    if out.is_file() and not force:
        existing = out.read_bytes()
        try:
            check(existing, corpus, out)
        except ValueError:
            raise FileExistsError(f"{out} exists and is not {corpus.name}; pass another --out, or --force to "
                                  "replace it") from None
        return f"{out} already holds {corpus.name} ({corpus.size:,} bytes, SHA-256 checked); nothing to do"
    source = source or os.environ.get(corpus.env) or None
    if source is not None:
        data, where = read_local(source, corpus), str(source)
    else:
        data, where = download(corpus, out), corpus.url
    check(data, corpus, where)
    write_atomic(out, data)
    return f"wrote {out} ({corpus.size:,} bytes, SHA-256 checked) from {where}"


def add_arguments(parser):
    """The `data` subcommand's arguments."""
    parser.add_argument("name", choices=sorted(CORPORA), help="corpus: " + "; ".join(
        f"{c.name}: {c.about}" for c in CORPORA.values()))
    parser.add_argument("--out", default="input.txt", help="file to write (default: input.txt)")
    parser.add_argument("--from", dest="source", metavar="PATH", default=None,
                        help="check and copy a local copy instead of downloading (also read from the environment "
                             f"variable {SHAKESPEARE.env})")
    parser.add_argument("--force", action="store_true", help="replace an --out file that holds something else")


def run(args):
    """Run the `data` subcommand; errors are OSError/ValueError, printed by cli.main as one line."""
    corpus = CORPORA[args.name]
    print(fetch(corpus, args.out, args.source, args.force))
    print(f"train on it: python -m tinygrad_lm train --data {args.out}")
    return 0
