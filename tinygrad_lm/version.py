"""The package's version, and the one refusal every versioned file format shares.

Each file format the package writes carries its own format number beside its data (a
checkpoint's meta, a tokenizer file's first line, a token file's sidecar, a tokenizer dict in a
checkpoint). A reader takes every number up to the one it writes; a larger one is a file from a
newer tinygrad_lm, refused with `newer_format` (the words are the same for every format) rather
than misread or failing on a key it does not know. A format's number goes up only when an older
reader would read the new files wrongly; a new optional field keeps it.
Leaves out: reading older formats than 1 (there are none) and conversion between formats.
It imports nothing of the package, so every layer may use it (tests/test_layers.py).
"""
import re

__version__ = "0.1.0"

UPGRADE = "pip install -U tinygrad-lm"


def newer_format(where, what, found, reads, writer=None):
    """The ValueError for a file of a newer format: `where` (the file), `what` format, the number
    `found` in it and the newest this tinygrad_lm `reads`; `writer` is the writer's version if known.

        >>> newer_format("t.bin.json", "token file", 2, 1).args[0].split(": upgrade")[0]
        't.bin.json: written by a newer tinygrad_lm (token file format 2, this tinygrad_lm 0.1.0 reads up to 1)'
    """
    by = f" {writer}" if writer else ""
    return ValueError(f"{where}: written by a newer tinygrad_lm{by} ({what} format {found}, this tinygrad_lm "
                      f"{__version__} reads up to {reads}): upgrade tinygrad_lm ({UPGRADE}) to read it")


def newer_writer(writer):
    """' (written by tinygrad_lm W, newer than this V: upgrade ...)' when the version string `writer`
    (a checkpoint's `tinygrad_lm_version`) is a later release than this one, else '': the note for a
    file of the same format that holds what only a newer tinygrad_lm knows (a new setting).

        >>> newer_writer("0.0.9"), newer_writer(None), newer_writer("9.0").startswith(" (written by tinygrad_lm 9.0")
        ('', '', True)
    """
    def release(version):  # "0.10.2rc1" -> (0, 10, 2): the leading number of each dotted part
        parts = []
        for part in version.split("."):
            digits = re.match(r"\d+", part)
            if not digits:
                break
            parts.append(int(digits.group()))
        return tuple(parts)

    if not isinstance(writer, str) or release(writer) <= release(__version__):
        return ""
    return f" (written by tinygrad_lm {writer}, newer than this {__version__}: upgrade tinygrad_lm, {UPGRADE})"


def is_newer(found, reads):
    """Whether the format number `found` (read from a file: maybe not a number at all) is newer than `reads`."""
    return isinstance(found, int) and not isinstance(found, bool) and found > reads
