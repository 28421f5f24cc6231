"""DOT text to a picture with Graphviz's `dot` program: `render(dot_text, "graph.svg")`.

`dot` is a system program, not a Python package (`apt-get install graphviz`, `brew install
graphviz`, `conda install graphviz`, or https://graphviz.org/download/); it is run here through
subprocess, so no Python dependency is needed. Without it, `render` saves the DOT text beside
the picture it was asked for (graph.dot for graph.svg), so the drawing is not lost, and says
what to install. Both files are written whole or not at all (files.py). In Jupyter, the Python
`graphviz` package (the `viz` extra: `pip install -e '.[viz]'`) shows the text inline:
`graphviz.Source(dot_text)`; it too needs the `dot` program.
Leaves out: layout options (edit the text, or pass them to `dot` yourself), viewers.
"""
import shutil
import subprocess
from pathlib import Path

from ..files import atomic_write, writing

FORMATS = ("svg", "png", "pdf")
INSTALL = ("Graphviz's `dot` program is not installed (or not on PATH); install Graphviz: `sudo apt-get install "
           "graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS), `conda install graphviz`, or "
           "https://graphviz.org/download/. The DOT text itself needs nothing: open it with any Graphviz viewer")


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is missing: what to install is in the message."""


def render(dot_text, path, format=None):
    """Draw DOT text (from `draw_graph`) into a picture file; returns its Path.

    Args:
        dot_text: the DOT text.
        path: where to write, e.g. "gpt_graph.svg"; its folder must exist.
        format: "svg", "png" or "pdf"; by default the path's suffix says.
    Raises:
        GraphvizNotFound when `dot` is missing (the text is saved as <path>.dot first);
        RuntimeError with dot's own message when dot refuses the text.
    """
    if not isinstance(dot_text, str):
        raise TypeError(f"render: expects DOT text (a str, from draw_graph), got {type(dot_text).__name__}")
    path = Path(path)
    format = format or path.suffix.lstrip(".").lower()
    if format not in FORMATS:
        raise ValueError(f"render: cannot tell the picture format of {str(path)!r}; give the path a suffix out of "
                         f"{', '.join('.' + f for f in FORMATS)} or pass format=")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"render: the folder {str(path.parent)!r} does not exist; create it first")
    dot = shutil.which("dot")
    if dot is None:
        saved = atomic_write(path.with_suffix(".dot"), dot_text, what="the graph's DOT text")
        raise GraphvizNotFound(f"render: {INSTALL}; the text is saved in {saved} (`dot -T{format} {saved} -o {path}` "
                               "draws it once Graphviz is installed)")
    with writing(path, what="the picture") as tmp:  # dot writes a temporary file, renamed once whole
        done = subprocess.run([dot, f"-T{format}", "-o", str(tmp)], input=dot_text.encode("utf-8"),
                              capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"render: dot exited with status {done.returncode}: "
                               f"{done.stderr.decode('utf-8', 'replace').strip()}")
    return path


__all__ = ["GraphvizNotFound", "render"]
