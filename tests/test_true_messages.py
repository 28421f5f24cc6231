"""Messages that are true in the situation that triggers them (issue #28, item 5).

Each case is a command a user got wrong, or a state a run is in, and the message it printed that
was untrue or unhelpful: `--out-dir` naming a file ([Errno 17] File exists), a `--start`,
`--text-file` or finetune `--data` that is missing or empty (a message about `--data` and "the
built-in corpus", which those commands do not have), and a resumed run that did not say where it
resumed. In-process through `cli.main`, with one tiny pretraining run shared by the module.
"""
import json

import pytest

from tinygrad_lm.run.cli import main
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.finetune import FinetuneConfig, finetune
from tinygrad_lm.run.train import TrainConfig, train

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 30
TINY = dict(block_size=8, n_layer=1, n_head=2, n_embd=16, batch_size=2, eval_iters=1, sample_tokens=0,
            reference=True)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre")
    (tmp / "corpus.txt").write_text(TEXT, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGRAD_LM_CACHE", str(tmp / "cache"))
        train(from_flat(TrainConfig, data=str(tmp / "corpus.txt"), max_iters=2, eval_interval=2, quiet=True,
                        out_dir=str(tmp / "run"), **TINY))
    return tmp


def error_of(capsys, *argv):
    """The stderr of a command that stops with exit status 2 (cli.main's one-line errors)."""
    return outputs_of_error(capsys, *argv)[1]


def outputs_of_error(capsys, *argv):
    """(stdout, stderr) of a command that stops with exit status 2."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err and "Errno" not in err, err
    return out, err


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_an_out_dir_that_is_a_file_says_so_before_any_work(tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    given = ["--data", tmp_path / "never-read.txt"] + (["--ckpt", tmp_path / "never-read.npz"]
                                                        if command == "finetune" else [])
    err = error_of(capsys, command, *given, "--out-dir", tmp_path / "notes.txt")
    assert f"--out-dir {tmp_path / 'notes.txt'} is a file, not a folder; choose another --out-dir" in err, err
    assert "never-read" not in err
    err = error_of(capsys, command, *given, "--out-dir", tmp_path / "notes.txt" / "run")
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in err, err
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_sample_start_names_its_own_flags(pretrained, tmp_path, capsys):
    ckpt = pretrained / "run" / "best.npz"
    err = error_of(capsys, "sample", "--ckpt", ckpt, "--start", "hello world")
    assert "--start hello world: no such file" in err and "--prompt" in err, err
    assert "--data" not in err and "built-in corpus" not in err, err
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    err = error_of(capsys, "sample", "--ckpt", ckpt, "--start", tmp_path / "empty.txt")
    assert "is empty" in err and "training corpus" not in err and "--start" in err, err


def test_attention_text_file_names_its_own_flags(pretrained, capsys):
    pytest.importorskip("matplotlib")
    err = error_of(capsys, "attention", "--ckpt", pretrained / "run" / "best.npz", "--text-file", "nope.txt",
                   "--out", pretrained / "a.png")
    assert "--text-file nope.txt: no such file" in err and "--text" in err, err
    assert "--data" not in err and "built-in corpus" not in err, err


def test_finetune_data_that_is_missing_does_not_offer_a_built_in_corpus(pretrained, tmp_path, capsys):
    err = error_of(capsys, "finetune", "--ckpt", pretrained / "run" / "best.npz", "--data", tmp_path / "nope.jsonl",
                   "--out-dir", tmp_path / "ft")
    assert "nope.jsonl: no such file" in err and "JSONL" in err, err
    assert "omit --data" not in err and "built-in corpus" not in err, err


def test_a_resumed_train_run_says_where_and_at_which_step(pretrained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(pretrained / "cache"))
    values = dict(data=str(pretrained / "corpus.txt"), out_dir=str(tmp_path / "r"), eval_interval=2, **TINY)
    train(from_flat(TrainConfig, max_iters=2, **values))
    capsys.readouterr()
    train(from_flat(TrainConfig, max_iters=4, **values), resume=True, given={"max_iters"})
    out = capsys.readouterr().out
    assert f"resuming {tmp_path / 'r'} at step 2 of 4" in out, out
    train(from_flat(TrainConfig, max_iters=4, **values), resume=True, given={"max_iters"})
    out = capsys.readouterr().out
    assert f"resuming {tmp_path / 'r'} at step 4 of 4: nothing left to train; give a larger --max-iters" in out, out


def test_a_resumed_finetune_run_says_where_and_at_which_step(pretrained, tmp_path, capsys):
    rows = [{"text": "Speak, speak." if i % 2 else "hear me", "label": "a" if i % 2 else "b"} for i in range(24)]
    (tmp_path / "ft.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    values = dict(ckpt=str(pretrained / "run" / "best.npz"), data=str(tmp_path / "ft.jsonl"),
                  out_dir=str(tmp_path / "ft"), eval_interval=2, batch_size=4, reference=True)
    finetune(from_flat(FinetuneConfig, max_iters=2, quiet=True, **values))
    finetune(from_flat(FinetuneConfig, max_iters=3, **values), resume=True, given={"max_iters"})
    out = capsys.readouterr().out
    assert f"resuming {tmp_path / 'ft'} at step 2 of 3" in out, out


@pytest.mark.parametrize("cls, has, lacks", [
    (TrainConfig, ["--eval-iters", "--sample-tokens", "--max-iters"], ["--eval-batch-size"]),
    (FinetuneConfig, ["--eval-batch-size", "--max-iters"], ["--eval-iters", "--sample-tokens"]),
])
def test_a_refused_resume_lists_only_the_flags_the_command_has(cls, has, lacks):
    from dataclasses import asdict

    from tinygrad_lm.run.config import resumed

    paths = dict(ckpt="a.npz", data="d.jsonl") if cls is FinetuneConfig else {}
    with pytest.raises(ValueError) as e:
        resumed(asdict(from_flat(cls, **paths)), from_flat(cls, lr=0.1, min_lr=0.0, **paths), given={"lr"})
    message = str(e.value)
    assert "a resumed run may change only" in message, message
    assert all(flag in message for flag in has) and not any(flag in message for flag in lacks), message


def test_running_out_of_memory_is_one_line_that_says_what_to_shrink(monkeypatch, capsys):
    import tinygrad_lm.run.cli as cli

    def huge(args):
        raise MemoryError("Unable to allocate 149. GiB for an array with shape (2, 2, 100000, 100000)")

    monkeypatch.setattr(cli, "_cmd_train", huge)
    err = error_of(capsys, "train", "--block-size", "100000")
    assert "out of memory (Unable to allocate 149. GiB" in err and "--batch-size" in err and "--block-size" in err


def test_tokenize_checks_where_it_will_write_before_training(tmp_path, capsys):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    for flag in ("--save", "--save-tiktoken", "--encode-to"):
        out, err = outputs_of_error(capsys, "tokenize", "--data", tmp_path / "text.txt", "--vocab-size", "300",
                                    flag, tmp_path / "no-such-folder" / "out")
        missing = tmp_path / "no-such-folder"
        assert f"{flag} {missing / 'out'}: the folder {missing} does not exist" in err, err
        assert "trained" not in out  # refused before the (slow) training
        err = error_of(capsys, "tokenize", "--data", tmp_path / "text.txt", flag, tmp_path)
        assert f"{flag} {tmp_path} is a folder" in err, err
    err = error_of(capsys, "tokenize", "--load", tmp_path / "nope.model")
    assert f"--load {tmp_path / 'nope.model'}: no such file" in err and "tokenize --save" in err, err


def test_export_into_a_file_says_it_writes_a_folder(pretrained, tmp_path, capsys):
    (tmp_path / "taken.txt").write_text("mine", encoding="utf-8")
    err = error_of(capsys, "export", "--ckpt", pretrained / "run" / "best.npz", "--hf-dir", tmp_path / "taken.txt")
    assert f"--hf-dir {tmp_path / 'taken.txt'} is a file; export writes a folder" in err, err
    assert "expected a Hugging Face model folder" not in err


def test_tokenize_encode_to_without_data_is_refused_before_training(tmp_path, capsys):
    out, err = outputs_of_error(capsys, "tokenize", "--vocab-size", "257", "--encode-to", tmp_path / "x.bin")
    assert "--encode-to needs --data" in err and "trained" not in out


def test_resume_where_nothing_was_saved_says_so(tmp_path, capsys):
    for command in (["train"], ["finetune", "--ckpt", tmp_path / "a.npz", "--data", tmp_path / "d.jsonl"]):
        err = error_of(capsys, *command, "--resume", "--out-dir", tmp_path / "fresh")
        assert f"--resume: {tmp_path / 'fresh'} holds no run to continue (no ckpt.npz)" in err, err
        assert "drop --resume to start one there" in err, err
