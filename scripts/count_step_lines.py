"""Count the lines a reader reads to follow one reference training step, from `train()` down to the ops.

Usage:
    python scripts/count_step_lines.py [--all-modes] [--json PATH] [-- EXTRA TRAIN ARGS...]

Which package is measured: whichever `import tinygrad_lm` finds (set PYTHONPATH to measure another
checkout, e.g. a `git worktree`); its path is printed in the header.

Definition (issue #12, item 7):

* The real CLI runs in-process: `tinygrad_lm.run.cli.main(["train", "--max-iters", "1", "--eval-interval",
  "1000", "--sample-tokens", "0", "--quiet", "--out-dir", TMP, *EXTRA])`, where TMP is a temporary
  folder removed afterwards and EXTRA is whatever follows `--` on this script's command line.
  `--reference` is added automatically when `python -m tinygrad_lm train --help` mentions it
  (the output says whether it was). `--all-modes` also measures without `--reference`; each mode
  then runs in a fresh child process, so that one mode's first-call work does not hide the other's.
* The run is traced with `sys.settrace`. The step is every Python call made while the frame of
  `train` (code name `train`, in the pretraining module: `tinygrad_lm/run/train.py`, or `tinygrad_lm/train.py`
  in the tree before issue #25) is on a line of the body of
  the first `while` loop of `train` (found with `ast`). With `--max-iters 1` and a large eval
  interval this is exactly one optimisation step. A call is in the step if walking `f_back` from
  the called frame reaches that train frame while the train frame's current line is in that range.
  Only code objects whose file lies inside the package directory are kept (numpy and the standard
  library are not counted). Calls made in other threads are not traced (`sys.settrace` is per
  thread), so code run only on worker threads is missed; the reference step is single-threaded.
* What a reader reads: the whole of `train()`, plus the whole of every function or method that
  was called in the step (the whole function, not just its executed lines; decorators are part
  of the function), plus, for every class owning such a method, the class's own lines outside its
  methods and nested classes (the `class` line, class attributes, `__slots__`, ...). A lambda
  counts as its own lines; a comprehension or generator expression counts as the function that
  contains it. Module-level code run during the step (a lazy import) is listed, not counted.
* A line counts if it holds code: blank lines, comment-only lines and docstrings (module, class
  and function; found with `ast`) are left out, comment-only lines being found with `tokenize`.
  `def` and `class` header lines count; lines of a multi-line statement each count. Per file the
  union of line numbers is counted, so a nested function inside a counted function counts once.
* Of the counted lines, those that only check arguments are reported apart (they still count):
  an `if` statement without `else` whose body only raises (its test lines and its body), and an
  `except` handler that only raises (a clearer error). They are the price of the brief's rule
  that bad input gets an error naming the problem, not a traceback from deep inside NumPy.
* A counted file is "about threads, allocators or BLAS" if its source, outside comments and
  docstrings, contains any of the words thread, threading, mallopt, allocator, blas, openblas
  (case-insensitive, anywhere in a name or string: `blas_threads` matches `blas` and `thread`).

Output: git commit (and whether the tree is dirty), Python and NumPy versions, the package path
and the CLI arguments; a table with one row per file (path relative to the package, lines
counted, functions/classes reached there), most lines first; `N lines in M files`; and the
speed-machinery files with their matching words, or `none`. `--json PATH` writes the same figures.
Standard library only, plus the package being measured; takes a few seconds.
"""
import argparse
import ast
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from contextlib import redirect_stdout
from pathlib import Path

BASE_ARGS = ["train", "--max-iters", "1", "--eval-interval", "1000", "--sample-tokens", "0", "--quiet"]
SPEED_WORDS = ("thread", "threading", "mallopt", "allocator", "blas", "openblas")
_NON_CODE_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                    tokenize.ENCODING, tokenize.ENDMARKER}
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


# ---------------------------------------------------------------- reading one source file

def _start(node):
    """First line of a def/class including its decorators."""
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno] + [d.lineno for d in decorators])


class SourceFile:
    """One Python file: which of its lines hold code, and its functions and classes."""

    def __init__(self, path, text=None):
        self.path = Path(path)
        self.text = self.path.read_text(encoding="utf-8") if text is None else text
        self.tree = ast.parse(self.text)
        lines = self.text.splitlines()
        self.docstring_lines = self._docstring_lines()
        self.code_lines = set()  # non-blank lines touched by a token that is not a comment or whitespace
        self.code_tokens = []  # (line, token text) of every code token outside docstrings
        for tok in tokenize.generate_tokens(io.StringIO(self.text).readline):
            if tok.type in _NON_CODE_TOKENS:
                continue
            for line in range(tok.start[0], tok.end[0] + 1):
                if line <= len(lines) and lines[line - 1].strip() and line not in self.docstring_lines:
                    self.code_lines.add(line)
            if not (tok.type == tokenize.STRING and tok.start[0] in self.docstring_lines):
                self.code_tokens.append((tok.start[0], tok.string))
        self.scopes = []  # (node, qualname, enclosing scope nodes outermost first)
        self._index(self.tree, [], [])
        self.check_lines = self._check_lines()

    def _check_lines(self):
        """Code lines of argument checks: `if` without else whose body only raises, and `except`
        handlers whose body only raises."""
        out = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.If) and not node.orelse and all(isinstance(b, ast.Raise) for b in node.body):
                out.update(range(node.lineno, node.end_lineno + 1))
            elif isinstance(node, ast.ExceptHandler) and all(isinstance(b, ast.Raise) for b in node.body):
                out.update(range(node.lineno, node.end_lineno + 1))
        return out & self.code_lines

    def _docstring_lines(self):
        out = set()
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Module, ast.ClassDef) + _DEFS) and node.body:
                first = node.body[0]
                if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                        and isinstance(first.value.value, str)):
                    header = getattr(node, "lineno", None)  # `def f(): "doc"` on one line: the header counts
                    out.update(n for n in range(first.lineno, first.end_lineno + 1) if n != header)
        return out

    def _index(self, node, names, parents):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _SCOPES):
                name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
                qual = names + [name]
                self.scopes.append((child, ".".join(qual), list(parents)))
                inner = qual + (["<locals>"] if isinstance(child, _DEFS + (ast.Lambda,)) else [])
                self._index(child, inner, parents + [child])
            else:
                self._index(child, names, parents)

    def lines_of(self, node):
        """Code lines of a whole def/class/lambda (decorators and header included)."""
        return {n for n in range(_start(node), node.end_lineno + 1) if n in self.code_lines}

    def own_class_lines(self, cls):
        """Code lines of a class outside its methods and nested classes."""
        inner = set()
        for node, _, parents in self.scopes:
            if parents and parents[-1] is cls and not isinstance(node, ast.Lambda):
                inner.update(range(_start(node), node.end_lineno + 1))
        return self.lines_of(cls) - inner

    def find_code(self, name, firstlineno):
        """The def/lambda a code object was compiled from: (node, qualname, parents), or None.

        A comprehension or generator expression maps to the innermost function containing it."""
        for entry in self.scopes:
            node = entry[0]
            if not isinstance(node, ast.ClassDef) and node_name(node) == name and _start(node) == firstlineno:
                return entry
        best = None
        for entry in self.scopes:
            node = entry[0]
            if isinstance(node, ast.ClassDef) or not (_start(node) <= firstlineno <= node.end_lineno):
                continue
            if name.startswith("<") and name != "<lambda>" or node_name(node) == name:
                if best is None or _start(node) >= _start(best[0]):
                    best = entry
        return best

    def speed_words(self):
        """{word: occurrences} of SPEED_WORDS in code tokens (names, strings, ...) outside comments/docstrings."""
        found = {}
        for _, text in self.code_tokens:
            low = text.lower()
            for word in SPEED_WORDS:
                n = low.count(word)
                if n:
                    found[word] = found.get(word, 0) + n
        return found


def node_name(node):
    return "<lambda>" if isinstance(node, ast.Lambda) else node.name


def find_train_loop(source):
    """(train FunctionDef, first line, last line) of the body of the first `while` inside train()."""
    for node in source.tree.body:
        if isinstance(node, _DEFS) and node.name == "train":
            for inner in ast.walk(node):  # breadth first: the outermost while comes first
                if isinstance(inner, ast.While):
                    return node, inner.body[0].lineno, inner.body[-1].end_lineno
            raise SystemExit(f"{source.path}: train() has no while loop")
    raise SystemExit(f"{source.path}: no top-level function train()")


# ---------------------------------------------------------------- tracing the step

def trace_step(cli_main, argv, train_file, loop_first, loop_last, package_dir):
    """Run cli_main(argv) under sys.settrace; return ({(filename, name, firstlineno)}, CLI exit code, stdout)."""
    package_prefix = os.path.join(os.path.realpath(package_dir), "")
    train_file = os.path.realpath(train_file)
    reached = set()
    in_package, train_files = {}, {}

    def is_train_file(filename):
        if filename not in train_files:
            train_files[filename] = os.path.realpath(filename) == train_file
        return train_files[filename]

    def tracer(frame, event, arg):
        if event != "call":
            return None
        code = frame.f_code
        filename = code.co_filename
        keep = in_package.get(filename)
        if keep is None:
            keep = in_package[filename] = os.path.realpath(filename).startswith(package_prefix)
        if not keep:
            return None
        f = frame.f_back
        while f is not None:
            fc = f.f_code
            if fc.co_name == "train" and is_train_file(fc.co_filename):
                if loop_first <= f.f_lineno <= loop_last:
                    reached.add((os.path.realpath(filename), code.co_name, code.co_firstlineno))
                break
            f = f.f_back
        return None  # no line events: f_lineno is still computed from the instruction pointer

    captured = io.StringIO()
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with redirect_stdout(captured):
            rc = cli_main(argv)
    finally:
        sys.settrace(previous)
    return reached, rc, captured.getvalue()


# ---------------------------------------------------------------- turning calls into lines

def count_lines(package_dir, train_path, reached, sources=None):
    """Per-file figures for train() plus the reached code objects.

    Returns (files, module_code): files maps the path relative to the package to
    {"lines": set of line numbers, "reached": set of names}; module_code lists module-level
    code objects seen in the step (not counted)."""
    package_dir = Path(os.path.realpath(package_dir))
    sources = {} if sources is None else sources

    def source(path):
        path = os.path.realpath(path)
        if path not in sources:
            sources[path] = SourceFile(path)
        return sources[path]

    files, module_code = {}, []

    def add(path, lines, name):
        rel = Path(os.path.realpath(path)).relative_to(package_dir).as_posix()
        entry = files.setdefault(rel, {"lines": set(), "reached": set()})
        entry["lines"] |= lines
        entry["reached"].add(name)

    train_src = source(train_path)
    train_node, _, _ = find_train_loop(train_src)
    add(train_path, train_src.lines_of(train_node), "train")
    for filename, name, firstlineno in sorted(reached):
        src = source(filename)
        if name == "<module>":
            module_code.append(Path(filename).relative_to(package_dir).as_posix())
            continue
        found = src.find_code(name, firstlineno)
        if found is None:  # a class body run during the step, or code we cannot place: not a function
            module_code.append(f"{Path(filename).relative_to(package_dir).as_posix()}:{firstlineno} {name}")
            continue
        node, qualname, parents = found
        add(filename, src.lines_of(node), qualname.replace(".<locals>", ""))
        for parent in parents[-1:]:
            if isinstance(parent, ast.ClassDef):  # a method: its class's own lines too
                add(filename, src.own_class_lines(parent), "class " + parent.name)
    return files, module_code


# ---------------------------------------------------------------- one measurement, reporting

def _git(package_dir, *args):
    try:
        out = subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(tinygrad_lm):
    package_dir = Path(tinygrad_lm.__file__).resolve().parent
    import numpy

    commit = _git(package_dir, "rev-parse", "--short", "HEAD")
    status = _git(package_dir, "status", "--porcelain", "--untracked-files=normal")
    pkg_status = _git(package_dir, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "changed_paths": len(status.splitlines()) if status else 0,
            "changed_paths_in_package": len(pkg_status.splitlines()) if pkg_status else 0,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "package": str(Path(tinygrad_lm.__file__).resolve())}


def supports_reference(package_dir):
    """Whether `python -m tinygrad_lm train --help` (this package) mentions --reference."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(package_dir).parent)] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    out = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"`python -m tinygrad_lm train --help` failed:\n{out.stderr}")
    return "--reference" in out.stdout


def measure(reference, extra):
    """Trace one step in this process; return the figures as a JSON-ready dict."""
    import importlib

    import tinygrad_lm

    package_dir = Path(tinygrad_lm.__file__).resolve().parent
    # the layered tree (run/); before issue #25 the modules sat at the top of the package
    prefix = "tinygrad_lm.run." if (package_dir / "run" / "train.py").is_file() else "tinygrad_lm."
    cli, train_module = (importlib.import_module(prefix + m) for m in ("cli", "train"))
    train_path = Path(train_module.__file__).resolve()
    train_src = SourceFile(train_path)
    _, loop_first, loop_last = find_train_loop(train_src)
    out_dir = tempfile.mkdtemp(prefix="count_step_lines_")
    argv = BASE_ARGS + ["--out-dir", out_dir] + (["--reference"] if reference else []) + list(extra)
    try:
        reached, rc, stdout = trace_step(cli.main, argv, train_path, loop_first, loop_last, package_dir)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if rc not in (0, None):
        raise SystemExit(f"tinygrad_lm.run.cli.main({argv}) returned {rc}; output:\n{stdout}")
    if not reached:
        raise SystemExit("no package code was called inside the while loop of train(): did the step run?")
    sources = {str(train_path): train_src}
    files, module_code = count_lines(package_dir, train_path, reached, sources)
    rows = []
    for rel, entry in files.items():
        words = sources[os.path.realpath(package_dir / rel)].speed_words()
        checks = entry["lines"] & sources[os.path.realpath(package_dir / rel)].check_lines
        rows.append({"file": rel, "lines": len(entry["lines"]), "check_lines": len(checks),
                     "reached": sorted(entry["reached"]), "speed_words": words})
    rows.sort(key=lambda r: (-r["lines"], r["file"]))
    return {"reference": reference, "argv": [a if a != out_dir else "<tmpdir>" for a in argv],
            "train_loop_lines": [loop_first, loop_last], "files": rows,
            "total_lines": sum(r["lines"] for r in rows), "total_files": len(rows),
            "check_lines": sum(r["check_lines"] for r in rows),
            "speed_files": [r["file"] for r in rows if r["speed_words"]],
            "module_code_in_step": module_code, "code_objects_reached": len(reached)}


def report(result, supported):
    mode = "reference" if result["reference"] else "default (no --reference)"
    lines = [f"mode: {mode}; --reference {'passed' if result['reference'] else 'not passed'}"
             f" ({'train --help mentions it' if supported else 'train --help does not mention it'})",
             "cli: tinygrad_lm.run.cli.main(" + " ".join(result["argv"]) + ")",
             f"step: calls made while train() was on lines {result['train_loop_lines'][0]}-"
             f"{result['train_loop_lines'][1]} (its while body); {result['code_objects_reached']} "
             "package code objects reached", ""]
    width = max([4] + [len(r["file"]) for r in result["files"]])
    lines.append(f"{'file':<{width}}  lines  reached")
    for r in result["files"]:
        lines.append(f"{r['file']:<{width}}  {r['lines']:5d}  {', '.join(r['reached'])}")
    lines.append("")
    lines.append(f"{result['total_lines']} lines in {result['total_files']} files")
    if "check_lines" in result:
        lines.append(f"  of which argument checks (an if that only raises, an except that only raises): "
                     f"{result['check_lines']} lines; the rest: {result['total_lines'] - result['check_lines']}")
    speed = [r for r in result["files"] if r["speed_words"]]
    if speed:
        lines.append("about threads, allocators or BLAS: " + "; ".join(
            f"{r['file']} ({', '.join(f'{w} x{n}' for w, n in sorted(r['speed_words'].items()))}; "
            f"{r['lines']} lines)" for r in speed))
        lines.append(f"  ({sum(r['lines'] for r in speed)} of the {result['total_lines']} lines are in these files)")
    else:
        lines.append("about threads, allocators or BLAS: none")
    if result["module_code_in_step"]:
        lines.append("module-level code run during the step (not counted): " + ", ".join(result["module_code_in_step"]))
    return "\n".join(lines)


def _import_package():
    try:
        import tinygrad_lm  # noqa: F401
    except ModuleNotFoundError as e:  # run from a checkout that is not installed: use the repository root
        if e.name != "tinygrad_lm":
            raise
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import tinygrad_lm  # noqa: F401
    return sys.modules["tinygrad_lm"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-modes", action="store_true", help="also measure without --reference")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--worker", choices=["reference", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tinygrad_lm = _import_package()

    if args.worker:  # a child of --all-modes: one measurement, JSON on stdout's last line
        result = measure(args.worker == "reference", extra)
        print(json.dumps(result))
        return 0

    env = environment(tinygrad_lm)
    package_dir = Path(env["package"]).parent
    supported = supports_reference(package_dir)
    dirty = {None: "unknown", False: "clean"}.get(
        env["dirty"], f"dirty: {env['changed_paths']} changed paths, {env['changed_paths_in_package']} "
                      "in the package")
    print(f"commit {env['commit']} ({dirty}) | Python {env['python']} | NumPy {env['numpy']}")
    print(f"package: {env['package']}")
    modes = [supported] + ([False] if args.all_modes and supported else [])
    if args.all_modes and not supported:
        print("--all-modes: train --help has no --reference, so the default mode is the only one")
    results = []
    for reference in modes:
        if len(modes) == 1:
            results.append(measure(reference, extra))
        else:  # a fresh process per mode, so that one mode's first-call work cannot hide the other's
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
                   "reference" if reference else "default", "--", *extra]
            child_env = dict(os.environ)
            child_env["PYTHONPATH"] = os.pathsep.join([str(package_dir.parent)] + (
                [child_env["PYTHONPATH"]] if child_env.get("PYTHONPATH") else []))
            out = subprocess.run(cmd, capture_output=True, text=True, env=child_env)
            if out.returncode != 0:
                raise SystemExit(f"measuring {'with' if reference else 'without'} --reference failed:\n"
                                 f"{out.stdout}\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print()
        print(report(results[-1], supported))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "reference_flag_supported": supported,
                                               "measurements": results}, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
