"""Every command in README.md's ```bash blocks runs, in order, as a new user would run them.

The walk: each ```bash block is read top to bottom; a line ending in a backslash continues on
the next; `a && b` is two commands; `# ...` comments are dropped (shlex). Every command must
match a rule: first SKIP (not run, with the reason named), else RUN (run, made small by the
SMALL table). A command that matches neither fails `test_every_readme_command_is_run_or_skipped`
(the fast part, run by default) with its README line, so a new command cannot go untested
unnoticed: add it to RUN (and say in SMALL how to make it small) or to SKIP (with the reason).
RUN names each subcommand it runs, so a new subcommand is unhandled until added. A heredoc
(`cat > run.toml <<'TOML'` ... `TOML`) and a `printf '...' > FILE` are SHELL commands: bash runs
them as written, since they only write a file that the next command reads.

How the walk is made small and offline (`test_readme_walk`, in the default run so the README
cannot drift: about half a minute on the 2-core machine):
  * SMALL rewrites the step and evaluation flags of `train`, `finetune` and `sample` (given
    values shrink; on a new run, absent ones are added at the shrunk default; a `--resume`
    keeps its saved settings, so only flags it gives are shrunk). Nothing else is changed.
  * `data shakespeare` runs as written: it takes Tiny Shakespeare from the path in the
    environment variable TINYGRAD_LM_SHAKESPEARE (here ../shared/data/tinyshakespeare.txt;
    the walk skips without it), and https_proxy/http_proxy point at a closed local port, so
    any attempt to reach the network fails instead of passing by luck.
  * The commands run in a temporary folder, cwd = tmp_path, with PYTHONPATH = this checkout,
    `scripts/` and README.md linked in (a clone's root), `python` meaning this interpreter (also after `mpiexec -n 2`),
    TINYGRAD_LM_CACHE in tmp_path, and one BLAS thread (the machine is shared).
  * Each command must exit 0; the walk prints each one's wall and CPU seconds (`pytest -s`).
"""
import importlib.util
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# ---- commands not run: (regex searched in the command, why not, when it applies)
ALWAYS = None
SKIP = [
    (r"^python3? -m venv\b", "creates a virtual environment; the walk uses the environment the tests run in", ALWAYS),
    (r"^(\.|source) \S*bin/activate$", "activates that virtual environment", ALWAYS),
    (r"^pip install\b", "installs packages (network); the walk uses the environment the tests run in", ALWAYS),
    (r"^python -m pytest\b", "the test suite itself, of which this walk is part", ALWAYS),
    (r"^(hf|huggingface-cli) download\b", "downloads GPT-2 from the Hugging Face Hub (network)", ALWAYS),
    (r"--(hf|init-from) gpt2\b", "needs the GPT-2 folder that `hf download` writes (network)", ALWAYS),
    (r"\bruns/gpt2-ft\b", "continues the GPT-2 fine-tuning run, which needs the download", ALWAYS),
    (r"--device cuda\b", "needs an NVIDIA GPU and CuPy", ALWAYS),
    (r"^mpiexec -f ", "needs the several hosts its hostfile names", ALWAYS),
    (r"^mpiexec\b", "needs mpiexec and mpi4py (pip install -e .[dist])",
     lambda: shutil.which("mpiexec") is None or importlib.util.find_spec("mpi4py") is None),
    (r"^python -m tinygrad_lm (plot|attention)\b", "needs matplotlib (pip install -e .[plot])",
     lambda: importlib.util.find_spec("matplotlib") is None),
    (r"^python -m tinygrad_lm evaluate\b.* --plot\b", "needs matplotlib (pip install -e .[plot])",
     lambda: importlib.util.find_spec("matplotlib") is None),
]

# ---- commands run: (regex matched at the start of the command, what it is)
SHELL = [  # run by bash as written, not split into words: they write a file the next command reads
    (r"cat > \S+ <<'\w+'\n", "a heredoc writing a file"),
    (r"printf '[^']*' > \S+$", "printf writing a file"),
]
RUN = [
    (r"python -m tinygrad_lm (train|sample|tokenize|finetune|evaluate|export|data|plot|attention)\b",
     "a tinygrad_lm subcommand"),
    (r"mpiexec -n \d+ python -m tinygrad_lm (train|finetune)\b", "a subcommand over MPI ranks"),
    (r"python scripts/make_speaker_dataset\.py\b", "builds the fine-tuning dataset"),
    (r"python scripts/make_piglatin_dataset\.py\b", "builds the generative fine-tuning dataset"),
]

# ---- how a run command is made small: subcommand -> {flag: (default when absent, shrink)}
SMALL = {
    "train": {"--max-iters": (2000, lambda n: max(10, n // 200)),  # 2000 -> 10; an extension to 4000 -> 20
              "--eval-interval": (250, lambda n: 5),
              "--eval-iters": (20, lambda n: 2),
              "--sample-tokens": (200, lambda n: min(n, 20))},
    "finetune": {"--max-iters": (300, lambda n: max(10, n // 200)),
                 "--eval-interval": (50, lambda n: 5)},
    "sample": {"--max-new-tokens": (300, lambda n: min(n, 20))},
}


def readme_commands(text):
    """[(README line number, command text)] of every ```bash block, in order."""
    commands, in_bash, pending, start, heredoc, heredoc_tag = [], False, "", 0, None, None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        if heredoc is not None:  # `cat > FILE <<'TAG'` ... `TAG`: one shell command, run as written
            heredoc += "\n" + line
            if line.strip() == heredoc_tag:
                commands.append((start, heredoc))
                heredoc = None
            continue
        if not pending:
            start = number
        opens = re.match(r"cat > \S+ <<'(\w+)'$", line.strip())
        if opens and not pending:
            heredoc, heredoc_tag = line.strip(), opens.group(1)
            continue
        if line.startswith("printf ") and not pending:  # a redirection: kept as written, for bash
            commands.append((start, line.split(" #")[0].strip()))
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = shlex.split(pending, comments=True)
        pending = ""
        while words:  # `a && b` is two commands
            cut = words.index("&&") if "&&" in words else len(words)
            if words[:cut]:
                commands.append((start, shlex.join(words[:cut])))
            words = words[cut + 1:]
    return commands


def classify(command):
    """("skip", reason) or ("run", what) or (None, None) when no rule applies."""
    for pattern, reason, applies in SKIP:
        if re.search(pattern, command) and (applies is None or applies()):
            return "skip", reason
    for pattern, what in SHELL:
        if re.match(pattern, command):
            return "shell", what
    for pattern, what in RUN:
        if re.match(pattern, command):
            return "run", what
    return None, None


def make_small(words):
    """The command's words with SMALL applied (a new list)."""
    words = list(words)
    sub = next((w for w in words if w in SMALL), None)
    if sub is None or "--help" in words:
        return words
    resume = "--resume" in words
    for flag, (default, shrink) in SMALL[sub].items():
        if flag in words:
            i = words.index(flag) + 1
            words[i] = str(shrink(int(words[i])))
        elif not resume:  # a resumed run keeps its saved settings
            words += [flag, str(shrink(default))]
    return words


def test_every_readme_command_is_run_or_skipped():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 10, "README.md's ```bash blocks were not found"
    unhandled = [f"README.md line {n}: {c}" for n, c in commands if classify(c)[0] is None]
    assert not unhandled, ("README commands neither run nor skipped by tests/test_readme_commands.py; add each to "
                           "RUN (and say in SMALL how to make it small) or to SKIP (with the reason):\n  "
                           + "\n  ".join(unhandled))


def test_the_parser_and_the_table_on_a_made_up_readme():
    text = ("```bash\npip install -e . && python -m tinygrad_lm train   # comment\n```\n```python\nx = 1\n```\n"
            "```bash\npython -m tinygrad_lm finetune --ckpt a.npz \\\n    --max-iters 300 --prompt \"A: b\"\n"
            "python -m tinygrad_lm frobnicate runs/a\n"
            "printf 'A:\\n' > p.txt   # a prompt\ncat > r.toml <<'TOML'\nlr = 1e-3\nTOML\n```\n")
    commands = readme_commands(text)
    assert commands == [(2, "pip install -e ."), (2, "python -m tinygrad_lm train"),
                        (8, "python -m tinygrad_lm finetune --ckpt a.npz --max-iters 300 --prompt 'A: b'"),
                        (10, "python -m tinygrad_lm frobnicate runs/a"), (11, "printf 'A:\\n' > p.txt"),
                        (12, "cat > r.toml <<'TOML'\nlr = 1e-3\nTOML")]
    assert [classify(c)[0] for _, c in commands] == ["skip", "run", "run", None, "shell", "shell"]
    venv = readme_commands("```bash\npython3 -m venv .venv && . .venv/bin/activate && pip install -e .\n```\n")
    assert [classify(c)[0] for _, c in venv] == ["skip", "skip", "skip"]
    assert make_small(shlex.split(commands[1][1])) == [
        "python", "-m", "tinygrad_lm", "train", "--max-iters", "10", "--eval-interval", "5", "--eval-iters", "2",
        "--sample-tokens", "20"]
    assert make_small(["python", "-m", "tinygrad_lm", "train", "--resume", "--max-iters", "4000"]) == [
        "python", "-m", "tinygrad_lm", "train", "--resume", "--max-iters", "20"]
    assert make_small(["python", "-m", "tinygrad_lm", "train", "--help"])[-1] == "--help"


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def walk_env(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["TINYGRAD_LM_CACHE"] = str(tmp_path / "cache")
    env["TINYGRAD_LM_SHAKESPEARE"] = str(SHAKESPEARE)  # how `data shakespeare` works offline here
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[proxy] = "http://127.0.0.1:9"  # a closed port: no command may reach the network
    env.pop("no_proxy", None), env.pop("NO_PROXY", None)
    env.pop("TINYGRAD_LM_DEBUG", None)
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"  # no BLAS threads spinning on a shared machine
    return env


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="needs ../shared/data/tinyshakespeare.txt (offline `data`)")
def test_readme_walk(tmp_path):
    (tmp_path / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    (tmp_path / "README.md").symlink_to(README)  # a clone's root has it: `evaluate --data README.md` reads it
    env = walk_env(tmp_path)
    ran, skipped, t0, cpu0 = [], [], time.perf_counter(), children_cpu()
    for number, command in readme_commands(README.read_text(encoding="utf-8")):
        kind, why = classify(command)
        assert kind is not None, f"README.md line {number}: {command}: not in RUN or SKIP"
        if kind == "skip":
            skipped.append(f"line {number}: {command} ({why})")
            continue
        if kind == "shell":
            words = ["bash", "-c", command]
        else:
            words = [sys.executable if w == "python" else w for w in make_small(shlex.split(command))]
        t, cpu = time.perf_counter(), children_cpu()
        r = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        ran.append(f"{time.perf_counter() - t:5.1f} s ({children_cpu() - cpu:5.1f} s CPU)  line {number}: "
                   f"{shlex.join(words[1:])}")
        assert r.returncode == 0, (f"README.md line {number}: `{command}`, run as `{shlex.join(words)}` in "
                                   f"{tmp_path}, exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    print(f"\nran {len(ran)} README commands in {time.perf_counter() - t0:.0f} s ({children_cpu() - cpu0:.0f} s CPU; "
          f"load {os.getloadavg()[0]:.1f}):\n  " + "\n  ".join(ran))
    print(f"skipped {len(skipped)}:\n  " + "\n  ".join(skipped))
    assert (tmp_path / "input.txt").stat().st_size == 1_115_394  # `data shakespeare` wrote the file the README reads
