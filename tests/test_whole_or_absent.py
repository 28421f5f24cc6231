"""Every file the package writes is whole or absent (issue #28, item 2), reproduced for each kind.

How the failures are made:
  * a full disk: `open` is wrapped so that a file opened for writing under the test's folder takes
    half of its first write and then raises OSError(ENOSPC), as a disk that fills up does;
  * a kill in the middle of a write: a subprocess lowers its file-size limit (RLIMIT_FSIZE) just
    before the write, so the kernel stops it with SIGXFSZ once the file reaches that size;
  * a file where a folder is expected, and (not as root, who writes anywhere) a read-only folder.
Each case checks what the user gets: the old file (or folder) unchanged, byte for byte, no
temporary file left behind by a write that failed, and one message naming the file and the reason.
Covered: tokenizer files (tinygrad_lm's own, char JSON, .tiktoken, GPT-2's vocab.json + merges.txt),
`tokenize --save`, caches and their sidecars, `data`, plots (`plot`, `plot --diagnostics`,
attention maps), the graph's DOT text, `export` (a Hugging Face folder, which also drops the
tokenizer files of the other kind), and the helper itself (tinygrad_lm/files.py).
Token files (`--encode-to`) are tested in test_tokens_file.py; checkpoints in test_nothing_lost.py;
log.jsonl in test_run_log.py.
"""
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.run import cli
from tinygrad_lm.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, load_tokenizer

from full_disk import disk_full  # noqa: F401  (tests/full_disk.py: the fixture)
from oracles import oracle  # tests/oracles.py

ROOT = Path(__file__).resolve().parents[1]
_rng = random.Random(0)
TEXT = " ".join("".join(_rng.choice("abcdefgh") for _ in range(_rng.randint(2, 6))) for _ in range(600)) + "\n"


def temporaries(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if ".tmp" in p.name)


def trained(vocab_size, pattern="gpt4", text=TEXT):
    tok = BPETokenizer(pattern)
    tok.train(text, vocab_size)
    return tok


# ---- tokenizer files ------------------------------------------------------------------------------

def _save_gpt2_files(tok, folder):
    from tinygrad_lm.tokenizer.gpt2_files import write_gpt2_vocab

    write_gpt2_vocab(tok, folder / "vocab.json", folder / "merges.txt")


SAVERS = {  # name -> (the two tokenizers to write one over the other, save(tok, folder), the files it writes)
    "bpe": (lambda: (trained(270), trained(300)), lambda tok, d: tok.save(d / "tok.model"), ["tok.model"]),
    "char": (lambda: (CharTokenizer("abc"), CharTokenizer(TEXT)), lambda tok, d: tok.save(d / "tok.json"),
             ["tok.json"]),
    "tiktoken": (lambda: (trained(270), trained(300)), lambda tok, d: tok.save_tiktoken(d / "t.tiktoken"),
                 ["t.tiktoken"]),
    "gpt2-files": (lambda: (trained(270, "gpt2"), trained(300, "gpt2")), _save_gpt2_files,
                   ["vocab.json", "merges.txt"]),
}


@pytest.mark.parametrize("kind", sorted(SAVERS))
def test_a_tokenizer_saved_over_a_full_disk_leaves_the_old_file_and_names_it(tmp_path, disk_full, kind):
    make, save, names = SAVERS[kind]
    old, new = make()
    folder = tmp_path / "tok"
    folder.mkdir()
    save(old, folder)
    before = {n: (folder / n).read_bytes() for n in names}
    disk_full()
    with pytest.raises(OSError) as caught:
        save(new, folder)
    message = str(caught.value)
    assert f"{folder / names[0]}: could not write" in message and "No space left on device" in message, message
    assert "is unchanged" in message and "free some space" in message, message
    assert {n: (folder / n).read_bytes() for n in names} == before
    assert temporaries(folder) == []


def test_tokenize_save_on_a_full_disk_is_one_line_naming_the_file(tmp_path, disk_full, capsys):
    corpus, saved = tmp_path / "corpus.txt", tmp_path / "tok.model"
    corpus.write_text(TEXT, encoding="utf-8")
    trained(270).save(saved)
    before = saved.read_bytes()
    disk_full()
    rc = cli.main(["tokenize", "--data", str(corpus), "--vocab-size", "300", "--save", str(saved)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert f"tinygrad-lm tokenize: error: {saved}: could not write the tokenizer (No space left on device)" in err, err
    assert saved.read_bytes() == before and temporaries(tmp_path) == []


def test_a_tokenizer_file_under_a_file_says_that_the_folder_is_a_file(tmp_path):
    (tmp_path / "notes").write_text("a file, not a folder")
    with pytest.raises(OSError) as caught:
        trained(270).save(tmp_path / "notes" / "tok.model")
    assert f"{tmp_path / 'notes'} is a file, not a folder" in str(caught.value), caught.value
    with pytest.raises(IsADirectoryError, match="is a folder; pass a file name"):
        trained(270).save(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_named_with_the_reason(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OSError) as caught:
            CharTokenizer("abc").save(folder / "tok.json")
    finally:
        folder.chmod(0o755)
    assert f"{folder / 'tok.json'}: could not write" in str(caught.value)
    assert "no permission to write in" in str(caught.value), caught.value


CUT_SAVE = r'''
import resource, signal, sys
from tinygrad_lm.tokenizer import load_tokenizer
tok = load_tokenizer(sys.argv[1])
limit = int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; its default action ends the process
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # past `limit` bytes the kernel sends SIGXFSZ
tok.save(sys.argv[2])
'''


def _child(tmp_path, script, *args):
    """Run `script` in a subprocess (no .pyc writes: a file-size limit there must hit the write under test)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", TINYGRAD_LM_CACHE=str(tmp_path / "c"))
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_tokenizer_save_killed_in_the_middle_leaves_the_old_file(tmp_path):
    path, bigger = tmp_path / "tok.model", tmp_path / "bigger.model"
    old, new = trained(270), trained(330)
    old.save(path)
    new.save(bigger)
    before = path.read_bytes()
    limit = bigger.stat().st_size // 2
    done = _child(tmp_path, CUT_SAVE, bigger, path, limit)
    assert done.returncode == -25, (done.returncode, done.stderr)  # SIGXFSZ: killed in the middle of the write
    assert path.read_bytes() == before  # whole: the old file, not half of the new one
    assert load_tokenizer(path).merges == old.merges
    new.save(path)  # the next save clears what the killed one left behind
    assert load_tokenizer(path).merges == new.merges and temporaries(tmp_path) == []


# ---- caches and `data` ----------------------------------------------------------------------------

def test_a_cache_written_over_a_full_disk_keeps_the_old_entry(tmp_path, disk_full, monkeypatch):
    from tinygrad_lm.run.data import read_cached, write_cached

    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path))
    path = tmp_path / "entry.bin"
    write_cached(path, b"old bytes " * 100)
    disk_full()
    with pytest.raises(OSError) as caught:
        write_cached(path, b"new bytes " * 100)
    assert f"{path}: could not write the cache file (No space left on device)" in str(caught.value), caught.value
    assert "TINYGRAD_LM_CACHE" in str(caught.value)
    assert read_cached(path) == b"old bytes " * 100 and temporaries(tmp_path) == []


def test_data_over_a_full_disk_leaves_no_file(tmp_path, disk_full, capsys, monkeypatch):
    from tinygrad_lm.run import datasets

    fake = datasets.Corpus("shakespeare", "http://nowhere.invalid", 12, __import__("hashlib").sha256(
        b"hello world\n").hexdigest(), "X", "test")
    monkeypatch.setitem(datasets.CORPORA, "shakespeare", fake)
    (tmp_path / "copy.txt").write_bytes(b"hello world\n")
    disk_full()
    rc = cli.main(["data", "shakespeare", "--from", str(tmp_path / "copy.txt"), "--out", str(tmp_path / "in.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'in.txt'}: could not write" in err and "No space left on device" in err, err
    assert not (tmp_path / "in.txt").exists() and temporaries(tmp_path) == []


# ---- pictures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diagnostics_run(tmp_path_factory):
    """A tiny run with --diagnostics: its log.jsonl feeds `plot` and `plot --diagnostics`."""
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("diag")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    old = os.environ.get("TINYGRAD_LM_CACHE")
    os.environ["TINYGRAD_LM_CACHE"] = str(folder / "cache")
    try:
        train(from_flat(TrainConfig, data=str(folder / "corpus.txt"), block_size=16, n_layer=1, n_head=2, n_embd=16,
                        batch_size=4, max_iters=4, eval_interval=2, eval_iters=1, log_interval=2, sample_tokens=0,
                        quiet=True, diagnostics=True, out_dir=str(folder / "run")))
    finally:
        os.environ.pop("TINYGRAD_LM_CACHE") if old is None else os.environ.__setitem__("TINYGRAD_LM_CACHE", old)
    return folder / "run"


@pytest.mark.parametrize("extra", [[], ["--diagnostics"]], ids=["loss", "diagnostics"])
def test_a_plot_over_a_full_disk_keeps_the_old_picture(tmp_path, disk_full, capsys, diagnostics_run, extra):
    pytest.importorskip("matplotlib")
    out = tmp_path / "pictures" / "p.png"
    assert cli.main(["plot", str(diagnostics_run), "--out", str(out), *extra]) == 0
    before = out.read_bytes()
    disk_full()
    rc = cli.main(["plot", str(diagnostics_run), "--out", str(out), "--title", "again", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and f"{out}: could not write the picture (No space left on device)" in err, err
    assert out.read_bytes() == before and temporaries(tmp_path) == []


def test_a_plot_into_a_file_instead_of_a_folder_names_it(tmp_path, capsys, diagnostics_run):
    pytest.importorskip("matplotlib")
    (tmp_path / "notes").write_text("a file")
    rc = cli.main(["plot", str(diagnostics_run), "--out", str(tmp_path / "notes" / "p.png")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'notes'} is a file, not a folder" in err and "Errno" not in err, err


def test_attention_maps_over_a_full_disk_keep_the_old_picture(tmp_path, disk_full):
    pytest.importorskip("matplotlib")
    from tinygrad_lm.viz.attention import plot_attention

    w = np.full((1, 1, 3, 3), 1 / 3)
    out = plot_attention(w, ["a", "b", "c"], tmp_path / "a.png")
    before = out.read_bytes()
    disk_full()
    with pytest.raises(OSError, match="could not write the picture"):
        plot_attention(w, ["x", "y", "z"], out)
    assert out.read_bytes() == before and temporaries(tmp_path) == []


def test_the_graph_text_saved_without_graphviz_is_whole_or_absent(tmp_path, disk_full, monkeypatch):
    import importlib

    render_module = importlib.import_module("tinygrad_lm.viz.render")

    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)  # no `dot`: the text is saved instead
    with pytest.raises(render_module.GraphvizNotFound):
        render_module.render("digraph { a -> b }", tmp_path / "g.svg")
    before = (tmp_path / "g.dot").read_bytes()
    disk_full()
    with pytest.raises(OSError, match="could not write the graph's DOT text"):
        render_module.render("digraph { a -> b -> c }", tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_bytes() == before and temporaries(tmp_path) == []


# ---- export: a Hugging Face folder ----------------------------------------------------------------

def _checkpoint(path, tokenizer, seed):
    """A small GPT checkpoint as train writes one (the parts `export` reads)."""
    import tinygrad_lm

    tinygrad_lm.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    checkpoint.save(path, model.state_dict(), None, {"model_config": model.config.to_dict(),
                                                     "tokenizer": tokenizer.to_dict(), "step": 0})
    return model


def _same_weights(model, folder):
    loaded = GPT.from_pretrained(folder)
    return all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


@pytest.fixture
def two_checkpoints(tmp_path):
    oracle("safetensors")
    gpt2_like = trained(280, GPT2_SPLIT_PATTERN)
    a = _checkpoint(tmp_path / "a.npz", gpt2_like, 1)
    b = _checkpoint(tmp_path / "b.npz", CharTokenizer(TEXT), 2)
    assert cli.main(["export", "--ckpt", str(tmp_path / "a.npz"), "--hf-dir", str(tmp_path / "hf")]) == 0
    return a, b, gpt2_like


@pytest.mark.oracle
def test_an_export_over_a_full_disk_keeps_the_old_folder(tmp_path, two_checkpoints, disk_full, capsys):
    a, b, tok = two_checkpoints
    folder = tmp_path / "hf"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    disk_full()
    rc = cli.main(["export", "--ckpt", str(tmp_path / "b.npz"), "--hf-dir", str(folder)])
    err = capsys.readouterr().err
    assert rc == 2 and "could not write" in err and "No space left on device" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert _same_weights(a, folder) and temporaries(tmp_path) == []


@pytest.mark.oracle
def test_an_export_killed_in_the_middle_leaves_the_old_folder(tmp_path, two_checkpoints):
    a, b, tok = two_checkpoints
    folder = tmp_path / "hf"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    script = ("import resource, signal, sys\nfrom tinygrad_lm.run import cli\nlimit = int(sys.argv[3])\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
              "cli.main(['export', '--ckpt', sys.argv[1], '--hf-dir', sys.argv[2]])\n")
    _checkpoint(tmp_path / "big.npz", tok, 3)  # the same sizes: a half-written folder would still load
    limit = (folder / "model.safetensors").stat().st_size // 2
    done = _child(tmp_path, script, tmp_path / "big.npz", folder, limit)
    assert done.returncode == -25, (done.returncode, done.stderr)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert _same_weights(a, folder)


@pytest.mark.oracle
def test_an_export_whose_weights_cannot_be_written_is_one_line_and_keeps_the_old_folder(tmp_path, two_checkpoints):
    """The file-size limit again, with SIGXFSZ ignored (Python's default): the write fails with EFBIG
    inside safetensors' own writer (Rust), which must come out as the same one-line error."""
    a, b, tok = two_checkpoints
    folder = tmp_path / "hf"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    script = ("import resource, sys\nfrom tinygrad_lm.run import cli\nlimit = int(sys.argv[3])\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
              "sys.exit(cli.main(['export', '--ckpt', sys.argv[1], '--hf-dir', sys.argv[2]]))\n")
    _checkpoint(tmp_path / "big.npz", tok, 3)
    done = _child(tmp_path, script, tmp_path / "big.npz", folder, (folder / "model.safetensors").stat().st_size // 2)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{folder / 'model.safetensors'}: could not write it (File too large)" in done.stderr, done.stderr
    assert f"the folder {folder} is unchanged" in done.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before and temporaries(tmp_path) == []


@pytest.mark.oracle
def test_an_export_stopped_between_its_files_never_loads_as_a_mixture(tmp_path, two_checkpoints):
    """Killed after each of the renames that put the new files in place: the folder is the old
    export, or the new one, or has no config.json (refused with a message), never old and new mixed."""
    a, b, tok = two_checkpoints
    folder = tmp_path / "hf"
    script = ("import os, sys\nfrom tinygrad_lm.run import cli\nafter, calls = int(sys.argv[3]), []\n"
              "real = os.replace\n"
              "def replace(*args):\n    real(*args)\n    calls.append(args)\n"
              "    if len(calls) == after: os._exit(137)\n"
              "os.replace = replace\n"
              "cli.main(['export', '--ckpt', sys.argv[1], '--hf-dir', sys.argv[2]])\n")
    c = _checkpoint(tmp_path / "c.npz", tok, 4)
    outcomes = set()
    for after in range(1, 8):
        done = _child(tmp_path, script, tmp_path / "c.npz", folder, after)
        if done.returncode == 0:
            outcomes.add("finished")
            break
        try:
            loaded = "old" if _same_weights(a, folder) else "new" if _same_weights(c, folder) else "mixed"
        except FileNotFoundError as e:
            assert "config.json" in str(e) and "did not finish" in str(e), e
            loaded = "refused"
        assert loaded != "mixed"
        outcomes.add(loaded)
        assert cli.main(["export", "--ckpt", str(tmp_path / "a.npz"), "--hf-dir", str(folder)]) == 0  # back to a
        assert _same_weights(a, folder)
    assert outcomes == {"refused", "new", "finished"}, outcomes  # (old: a kill before the first rename)
    assert temporaries(tmp_path) == []


@pytest.mark.oracle
def test_a_re_export_with_another_kind_of_tokenizer_drops_the_old_tokenizer_files(tmp_path, two_checkpoints, capsys):
    """GPT-2 files from an earlier export would be read before the new char tokenizer's file."""
    from tinygrad_lm.run.cli import _load_hf

    a, b, tok = two_checkpoints
    folder = tmp_path / "hf"
    assert (folder / "vocab.json").is_file()
    assert cli.main(["export", "--ckpt", str(tmp_path / "b.npz"), "--hf-dir", str(folder)]) == 0
    model, tokenizer = _load_hf(folder)
    assert isinstance(tokenizer, CharTokenizer) and _same_weights(b, folder)
    assert not (folder / "vocab.json").exists() and not (folder / "merges.txt").exists()
    assert cli.main(["export", "--ckpt", str(tmp_path / "a.npz"), "--hf-dir", str(folder)]) == 0
    model, tokenizer = _load_hf(folder)
    assert tokenizer.merges == tok.merges and not (folder / "tinygrad_lm_tokenizer.txt").exists()


@pytest.mark.oracle
def test_an_export_into_a_file_names_it(tmp_path, two_checkpoints, capsys):
    (tmp_path / "notes").write_text("a file")
    rc = cli.main(["export", "--ckpt", str(tmp_path / "a.npz"), "--hf-dir", str(tmp_path / "notes")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'notes'} is a file" in err, err
