"""`evaluate` (run/evaluate.py, run/perplexity.py): sliding-window perplexity, BERT's masked-token
score, a classifier's report, and the command's errors.

The windows: every token after the first scored exactly once, starts every `stride`, at least
block_size - stride tokens of context past the first window (exact bookkeeping over many lengths and
strides). The scores: each token's loss equals a hand loop that runs the model on exactly the
context the definition gives it (float64), one window equals the GPT's own loss, batching changes
nothing, bits per byte count the scored tokens' bytes. BERT: the masked loss and accuracy equal
BertForMaskedLM's own loss on the same seeded masking. The command end to end on GPT, BERT and
classifier checkpoints made by the real loops, and every refused input in one line.
The oracle test (transformers, torch): a tiny random GPT2LMHeadModel saved by transformers, read
with --hf, against Hugging Face's perplexity-guide loop run with transformers' own loss.
"""
import json
import math
import re

import numpy as np
import pytest

from tinygrad_lm import checkpoint, fast
from tinygrad_lm.engine import rng as engine_rng
from tinygrad_lm.models.bert import BertConfig, BertForMaskedLM
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.run.cli import main
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.finetune import FinetuneConfig, evaluate, finetune, load_classifier
from tinygrad_lm.run.mlm import IGNORE_INDEX, MLMCollator, add_special_tokens
from tinygrad_lm.run.perplexity import masked_lm_score, score_text, windows
from tinygrad_lm.run.progress import Progress
from tinygrad_lm.run.train import TrainConfig, load_model, train
from tinygrad_lm.testing.backends import cuda_devices
from tinygrad_lm.tokenizer import CharTokenizer

from oracles import oracle  # tests/oracles.py

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak — café.\n\n"
        "Second Citizen:\nWould you proceed especially against Caius Marcius?\n\n") * 6
ROWS = [("the cat sat.", "cat"), ("a cat on the mat.", "cat"), ("the dog ran.", "dog"), ("a dog to the log.", "dog")]


# ----------------------------------------------------------------------------------- the windows
@pytest.mark.parametrize("B", [2, 3, 8])
def test_every_token_after_the_first_is_scored_once_with_its_context(B):
    for n in range(B, 4 * B + 3):
        for stride in range(1, B):
            wins = windows(n, B, stride)
            count = np.zeros(n, dtype=int)
            for k, (begin, end, first) in enumerate(wins):
                assert begin == k * stride and 0 < end - begin <= B and begin < first <= end
                count[first:end] += 1
                for t in range(first, end):  # context of t: the window's tokens before it
                    assert t - begin >= (t if t < B else B - stride), (n, B, stride, t)
            assert wins[-1][1] == n and (count[0], *count[1:]) == (0, *[1] * (n - 1)), (n, B, stride)
            assert len(wins) == 1 + math.ceil((n - B) / stride), (n, B, stride)  # the guide's count


def test_windows_examples_and_refusals():
    assert windows(10, 4, 2) == [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    assert windows(11, 4, 3) == [(0, 4, 1), (3, 7, 4), (6, 10, 7), (9, 11, 10)]  # the last one: 2 tokens
    assert windows(5, 4, 3) == [(0, 4, 1), (3, 5, 4)]
    with pytest.raises(ValueError, match=r"--stride 4: .*below 4: the first token of each window would have no "
                                         r"context .*use --stride 3"):
        windows(10, 4, 4)
    with pytest.raises(ValueError, match=r"--stride 0: .*use 1\.\.3"):
        windows(10, 4, 0)
    with pytest.raises(ValueError, match="at least 2"):
        windows(1, 4, 2)


# ----------------------------------------------------------------------------------- the scores
def tiny_gpt(vocab_size, block_size=8, dtype=np.float64):
    engine_rng.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16)).to(
        dtype=np.dtype(dtype)).eval()


def prefix_nll(model, ids, t, begin):
    """-log p(ids[t] | ids[begin:t]) from one forward of the prefix alone (its last position)."""
    logits, _ = model(ids[None, begin:t], targets=np.zeros((1, t - begin), dtype=np.int64))  # (1, T, V)
    row = logits.data[0, -1].astype(np.float64)
    return float(np.log(np.exp(row - row.max()).sum()) + row.max() - row[ids[t]])


@pytest.mark.parametrize("stride", [1, 3, 7])
def test_each_token_loss_equals_the_model_on_the_context_the_definition_gives(stride, rng):
    B, n = 8, 23
    model = tiny_gpt(20, B)
    ids = rng.integers(0, 20, size=n)
    got = score_text(model, ids, B, stride, batch_size=2)
    assert np.isnan(got["nll"][0]) and got["count"].tolist() == [0] + [1] * (n - 1) and got["tokens"] == n - 1
    for t in range(1, n):
        begin = 0 if t < B else stride * math.ceil((t - B + 1) / stride)  # the first window that reaches t
        assert got["nll"][t] == pytest.approx(prefix_nll(model, ids, t, begin), rel=1e-12, abs=1e-12), t
    assert got["loss"] == pytest.approx(np.mean(got["nll"][1:]), rel=1e-14)
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-14)
    assert got["bits_per_token"] == pytest.approx(got["loss"] / math.log(2), rel=1e-14)


def test_a_text_of_one_window_scores_what_the_gpts_own_loss_scores(rng):
    B = 8
    model = tiny_gpt(20, B)
    ids = rng.integers(0, 20, size=B)
    _, loss = model(ids[None, :-1], targets=ids[None, 1:])  # the mean cross-entropy of tokens 1..B-1
    for stride in (1, 4, 7):
        got = score_text(model, ids, B, stride)
        assert got["windows"] == 1 and got["tokens"] == B - 1
        assert got["loss"] == pytest.approx(float(loss.item()), rel=1e-13)


def test_batches_and_the_fast_path_change_nothing(rng):
    ids = rng.integers(0, 20, size=41)
    model = tiny_gpt(20, 8)
    one = score_text(model, ids, 8, 3, batch_size=1)
    many = score_text(model, ids, 8, 3, batch_size=5)
    np.testing.assert_allclose(many["nll"][1:], one["nll"][1:], rtol=1e-12)
    assert model.training is False
    model32 = tiny_gpt(20, 8, np.float32).train()
    reference = score_text(model32, ids, 8, 3)
    assert model32.training is True  # eval inside, the mode restored after
    fused = score_text(fast.fuse(model32), ids, 8, 3, batch_size=3)
    np.testing.assert_allclose(fused["nll"][1:], reference["nll"][1:], rtol=1e-5)
    np.testing.assert_allclose(reference["nll"][1:], one["nll"][1:], rtol=1e-4)  # float32 against float64


def test_bits_per_byte_count_the_bytes_of_the_scored_tokens():
    tok = CharTokenizer(TEXT)
    text = "é—" + TEXT[:40]  # the first token (2 bytes) is not scored; the second is 3 bytes
    ids = np.asarray(tok.encode(text))
    got = score_text(tiny_gpt(tok.vocab_size, 8), ids, 8, 4, tokenizer=tok)
    assert got["bytes"] == len(text.encode("utf-8")) - 2
    assert got["bits_per_byte"] == pytest.approx(got["loss"] * got["tokens"] / got["bytes"] / math.log(2), rel=1e-14)


def test_masked_score_equals_berts_own_loss_on_the_same_seeded_masking():
    tok = CharTokenizer(TEXT)
    add_special_tokens(tok)
    engine_rng.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=12,
                                       pad_token_id=tok.special_tokens["[PAD]"])).to(dtype=np.dtype(np.float64))
    ids = np.asarray(tok.encode(TEXT[:95]))  # 9 pieces of 10 tokens and one of 5
    got = masked_lm_score(model, tok, ids, 12, seed=3, batch_size=4)
    collator = MLMCollator(tok)
    seqs, mask = collator.sequences([ids[i:i + 10] for i in range(0, 95, 10)], 12)
    inputs, labels = collator.mask_tokens(seqs, np.random.default_rng(3))
    model.eval()
    logits, loss = model(inputs, attention_mask=mask, labels=labels)
    picked = labels != IGNORE_INDEX
    assert got["pieces"] == 10 and got["picked"] == int(picked.sum()) > 0 and got["tokens"] == 95
    assert got["loss"] == pytest.approx(float(loss.item()), rel=1e-12)
    assert got["accuracy"] == np.mean(logits.data.argmax(-1)[picked] == labels[picked])
    assert masked_lm_score(model, tok, ids, 12, seed=3, batch_size=10)["loss"] == pytest.approx(got["loss"], rel=1e-12)
    assert masked_lm_score(model, tok, ids, 12, seed=4)["picked"] != got["picked"] or \
        masked_lm_score(model, tok, ids, 12, seed=4)["loss"] != got["loss"]  # another seed, other positions


@pytest.mark.parametrize("device", cuda_devices())
def test_on_cupy_both_scores_equal_the_cpus(device, rng):
    """--device cuda: the logits stay on the device; the picked rows' losses come back (a GPU, or
    tests/cupy_standin.py where none is)."""
    ids = rng.integers(0, 20, size=30)
    cpu = score_text(tiny_gpt(20, 8, np.float32), ids, 8, 3)
    gpu = score_text(fast.fuse(tiny_gpt(20, 8, np.float32).to(device=device)), ids, 8, 3)
    np.testing.assert_allclose(gpu["nll"][1:], cpu["nll"][1:], rtol=1e-4)
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz")
    add_special_tokens(tok)
    scores = []
    for where in ("cpu", device):
        engine_rng.manual_seed(1)
        bert = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=32, max_position_embeddings=10))
        scores.append(masked_lm_score(bert.to(device=where), tok, ids % 26, 10))  # letters a..t
    assert scores[0]["picked"] == scores[1]["picked"] and scores[0]["accuracy"] == scores[1]["accuracy"]
    assert scores[1]["loss"] == pytest.approx(scores[0]["loss"], rel=1e-5)


class FakeTerminal:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_redraws_one_line_on_a_terminal_and_prints_tenths_elsewhere():
    term = FakeTerminal(True)
    bar = Progress("scoring windows", term, delay=0.0)
    for done in range(1, 5):
        bar(done, 4)
    bar.close()
    assert term.text.startswith("\r[") and "scoring windows: 4/4 (100%)" in term.text and "\n" not in term.text
    assert term.text.endswith("\r\033[K")  # erased: the results print on a clean line
    log = FakeTerminal(False)
    bar = Progress("scoring windows", log, delay=0.0)
    for done in range(1, 21):
        bar(done, 20)
    assert log.text.count("\n") == 10 and "\r" not in log.text
    quiet = FakeTerminal(True)
    bar = Progress("x", quiet, enabled=False, delay=0.0)
    bar(1, 1)
    bar.close()
    assert quiet.text == ""


# ----------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A GPT, a BERT (objective mlm) and a classifier fine-tuned from each, from the real loops."""
    root = tmp_path_factory.mktemp("eval")
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    rows = [{"text": t, "label": y} for t, y in ROWS * 4]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]), encoding="utf-8")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGRAD_LM_CACHE", str(root / "cache"))
        for name, objective in (("gpt", "clm"), ("mlm", "mlm")):
            train(from_flat(TrainConfig, data=str(root / "corpus.txt"), objective=objective, block_size=16, n_layer=1,
                            n_head=2, n_embd=16, batch_size=4, max_iters=2, eval_interval=2, eval_iters=1,
                            sample_tokens=0, quiet=True, out_dir=str(root / name)))
            out[name] = root / name / "best.npz"
            finetune(from_flat(FinetuneConfig, ckpt=str(out[name]), data=str(root / "train.jsonl"), max_iters=2,
                               batch_size=4, eval_interval=2, quiet=True, out_dir=str(root / f"{name}-cls"),
                               unknown_chars="drop"))
            out[f"{name}-cls"] = root / f"{name}-cls" / "best.npz"
    out["root"] = root
    return out


def cli(capsys, *args):
    code = main(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def number(pattern, text):
    return float(re.search(pattern, text).group(1).replace(",", ""))


def test_cli_on_a_gpt_prints_what_score_text_computes(ckpts, capsys):
    root = ckpts["root"]
    code, out, err = cli(capsys, "--ckpt", ckpts["gpt"], "--data", root / "corpus.txt", "--stride", 5)
    assert code == 0, err
    model, tok, _ = load_model(ckpts["gpt"])
    ids = np.asarray(tok.encode(TEXT))
    want = score_text(fast.fuse(model), ids, 16, 5, tokenizer=tok)
    assert f"{len(ids):,} tokens, {len(TEXT.encode('utf-8')):,} bytes" in out
    assert f"windows: {want['windows']:,} of 16 tokens, one every 5 tokens" in out and "at least 11 tokens" in out
    assert number(r"scored: ([\d,]+) tokens \(all but the first\)", out) == len(ids) - 1 == want["tokens"]
    assert number(r"loss ([\d.]+) nats/token", out) == round(want["loss"], 4)
    assert number(r"perplexity ([\d.]+)", out) == round(want["perplexity"], 3)
    assert number(r"\| ([\d.]+) bits/byte", out) == round(want["bits_per_byte"], 4)
    code, default, _ = cli(capsys, "--ckpt", ckpts["gpt"], "--data", root / "corpus.txt", "--reference")
    assert code == 0 and "one every 8 tokens" in default  # the default stride: half the window
    code, small, _ = cli(capsys, "--ckpt", ckpts["gpt"], "--data", root / "corpus.txt", "--block-size", 6,
                         "--stride", 5)
    assert code == 0 and "of 6 tokens, one every 5 tokens" in small and "at least 1 token of" in small


def test_cli_on_a_bert_reports_the_masked_score(ckpts, capsys):
    code, out, err = cli(capsys, "--ckpt", ckpts["mlm"], "--data", ckpts["root"] / "corpus.txt", "--seed", 2,
                         "--reference")
    assert code == 0, err
    meta, state, _ = checkpoint.load(ckpts["mlm"])
    from tinygrad_lm.tokenizer import tokenizer_from_dict

    tok = tokenizer_from_dict(meta["tokenizer"])
    model = BertForMaskedLM(BertConfig.from_dict(dict(meta["model_config"])))
    model.load_state_dict(state)
    want = masked_lm_score(model, tok, np.asarray(tok.encode(TEXT)), 16, seed=2)
    assert f"masked {want['picked']:,} tokens" in out and f"{want['pieces']} pieces of up to 14 tokens" in out
    assert number(r"masked-token loss ([\d.]+)", out) == round(want["loss"], 4)
    assert number(r"accuracy ([\d.]+)", out) == round(want["accuracy"], 4)


@pytest.mark.parametrize("body", ["gpt", "mlm"])
def test_cli_on_a_classifier_reports_accuracy_macro_f1_and_the_matrix(ckpts, capsys, body):
    root = ckpts["root"]
    code, out, err = cli(capsys, "--ckpt", ckpts[f"{body}-cls"], "--data", root / "test.jsonl", "--unknown-chars",
                         "drop")
    assert code == 0, err
    from tinygrad_lm.run.labeled import load_labeled
    from tinygrad_lm.run.mlm import SpecialIds

    model, tok, meta = load_classifier(ckpts[f"{body}-cls"])
    specials = SpecialIds.of(tok) if body == "mlm" else None
    data = load_labeled(root / "test.jsonl", tok, 16, model.label_names, unknown="drop", specials=specials)
    want = evaluate(model, data)
    assert f"accuracy {want['accuracy']:.4f} | macro-F1 {want['macro_f1']:.4f} | 6 examples" in out
    rows = [line.split() for line in out.splitlines()[-2:]]
    assert [r[0] for r in rows] == ["cat", "dog"] and [list(map(int, r[1:])) for r in rows] == want["confusion"].tolist()


def test_plot_writes_the_confusion_matrix_png(ckpts, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = cli(capsys, "--ckpt", ckpts["gpt-cls"], "--data", ckpts["root"] / "test.jsonl",
                         "--unknown-chars", "drop", "--plot", tmp_path / "cm.png")
    assert code == 0, err
    assert f"wrote {tmp_path / 'cm.png'}" in out
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]  # no temporary left beside it


def test_without_matplotlib_plot_says_how_to_install_before_loading(ckpts, capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # `import matplotlib` now raises
    code, _, err = cli(capsys, "--ckpt", tmp_path / "missing.npz", "--data", "x.jsonl", "--plot", tmp_path / "cm.png")
    assert code == 2 and "pip install -e '.[plot]'" in err and "missing.npz" not in err


def errors(ckpts, tmp_path):
    """(args, expected message) of inputs evaluate refuses in one line."""
    root = ckpts["root"]
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf".encode() + b"\xe9 au lait")
    (tmp_path / "short.txt").write_text("Speak, speak.", encoding="utf-8")
    (tmp_path / "zoe.txt").write_text(TEXT + "Zoë!", encoding="utf-8")
    (tmp_path / "rows.txt").write_text('\n{"text": "the cat", "label": "cat"}\n', encoding="utf-8")
    gpt, cls = ["--ckpt", ckpts["gpt"]], ["--ckpt", ckpts["gpt-cls"]]
    return [
        (gpt + ["--data", tmp_path / "nope.txt"], "nope.txt: no such file"),
        (gpt + ["--data", tmp_path / "empty.txt"], "empty.txt: the file is empty"),
        (gpt + ["--data", tmp_path / "latin1.txt"], r"latin1.txt is not valid UTF-8: .*at byte offset 3"),
        (gpt + ["--data", tmp_path / "short.txt"], r"short.txt: the text is 13 token\(s\), shorter than one window "
                                                   r"of 16 tokens .*pass --block-size 13 or less"),
        (["--ckpt", ckpts["mlm"], "--data", tmp_path / "short.txt"], r"13 token\(s\), shorter than one window of 14 "
                                                                      r"tokens between \[CLS\] and \[SEP\].*--block-size 15"),
        (gpt + ["--data", root / "corpus.txt", "--stride", 16], r"--stride 16: .*use --stride 15"),
        (gpt + ["--data", root / "corpus.txt", "--block-size", 17], r"--block-size 17: this model reads at most 16"),
        (gpt + ["--data", tmp_path / "zoe.txt"], r"zoe.txt: 3 character\(s\) are not in this char-level vocabulary: "
                                                 r"'!' 'Z' 'ë'.*--unknown-chars drop, or change the text"),
        (gpt + ["--data", root / "test.jsonl"], r"test.jsonl, line 1 is a JSON object, but .* is a language model"),
        (gpt + ["--data", tmp_path / "rows.txt"], r"rows.txt, line 2 is a JSON object"),
        (cls + ["--data", root / "corpus.txt"], r"corpus.txt, line 1: not a JSON object; .* is a fine-tuned "
                                                r"classifier, evaluated on labelled JSONL"),
        (cls + ["--data", root / "test.jsonl", "--stride", 4], r"is a fine-tuned classifier: --stride .* does not "
                                                               r"apply; drop it"),
        (gpt + ["--data", root / "corpus.txt", "--plot", tmp_path / "cm.png"], r"--plot \(for a classifier's "
                                                                               r"confusion matrix\) does not apply"),
        (["--ckpt", ckpts["mlm"], "--data", root / "corpus.txt", "--stride", 4], r"--stride .* does not apply"),
        (gpt + ["--data", root / "corpus.txt", "--seed", 1], r"is a GPT: --seed \(for a BERT's masked positions\)"),
        (cls + ["--data", root / "test.jsonl", "--plot", tmp_path / "no" / "cm.png"], r"the folder .*no does not exist"),
        (cls + ["--data", root / "test.jsonl", "--plot", tmp_path / "cm.jpg"], r"must end in \.png"),
    ]


def test_bad_inputs_are_one_line_naming_the_file_and_the_fix(ckpts, capsys, tmp_path):
    pytest.importorskip("matplotlib")  # the --plot cases check matplotlib first
    for args, message in errors(ckpts, tmp_path):
        code, out, err = cli(capsys, *args)
        assert code == 2 and re.search(message, err.splitlines()[0]), (args, err)
        assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["empty.txt", "latin1.txt", "short.txt", "zoe.txt",
                                                                 "rows.txt"])  # nothing written
    code, out, err = cli(capsys, "--ckpt", ckpts["gpt"], "--data", tmp_path / "zoe.txt", "--unknown-chars", "drop")
    assert code == 0 and "dropped 3 text character(s) outside the vocabulary" in err and "scored:" in out
    code, out, err = cli(capsys, "--ckpt", ckpts["gpt"], "--data", tmp_path / "short.txt", "--block-size", 13)
    assert code == 0 and "scored: 12 tokens" in out


# ----------------------------------------------------------------------------------- the oracle
@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random GPT2LMHeadModel (16 positions) saved by transformers, GPT-2 tokenizer files of a
    byte-level BPE trained on TEXT beside it, and a text of about 100 tokens: (folder, model, text)."""
    oracle("safetensors.numpy")
    torch = oracle("torch")
    transformers = oracle("transformers")
    from tinygrad_lm.tokenizer import BPETokenizer
    from tinygrad_lm.tokenizer.gpt2_files import write_gpt2_vocab

    folder = tmp_path_factory.mktemp("hf")
    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train(TEXT, 256 + 40 + 1)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=tok.vocab_size - 1, eos_token_id=tok.vocab_size - 1)
    theirs = transformers.GPT2LMHeadModel(config).eval()
    theirs.save_pretrained(folder)
    write_gpt2_vocab(tok, folder / "vocab.json", folder / "merges.txt")
    text = TEXT[:300]  # about 100 tokens: stride 1 runs a forward per token
    (folder / "text.txt").write_text(text, encoding="utf-8")
    return folder, theirs, text


@pytest.mark.oracle
@pytest.mark.parametrize("stride", [1, 5, 15])
def test_sliding_window_perplexity_equals_transformers_on_the_guides_loop(hf_folder, capsys, stride):
    """Hugging Face's perplexity guide ("Perplexity of fixed-length models"), its loop with
    transformers' tokenizer and transformers' own loss, on a tiny random GPT-2.

    One line differs from the guide: the tokens a window's loss is the mean over are counted as the
    labels left after transformers' shift by one, `(target_ids[:, 1:] != -100).sum()`. The guide
    takes every valid label less one per row, which is that count only when the window's first
    label is valid (the first window); in a later, overlapping window that label is -100 already,
    so the guide's count is one short per window (at stride 1, zero: every later window would
    weigh nothing)."""
    torch = oracle("torch")
    transformers = oracle("transformers")
    folder, theirs, text = hf_folder
    encodings = transformers.GPT2TokenizerFast.from_pretrained(folder)(text, return_tensors="pt")
    max_length, seq_len = theirs.config.n_positions, encodings.input_ids.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):  # the guide's loop, line for line but the count
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = encodings.input_ids[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            neg_log_likelihood = theirs(input_ids, labels=target_ids).loss
        num_loss_tokens = (target_ids[:, 1:] != -100).sum().item()  # the guide: (target_ids != -100) - batch
        nll_sum += neg_log_likelihood.item() * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    assert n_tokens == seq_len - 1 > 4 * max_length

    from tinygrad_lm.hf.gpt2 import load_tokenizer

    ids = np.asarray(load_tokenizer(folder).encode(text))
    assert ids.tolist() == encodings.input_ids[0].tolist()
    ours = score_text(GPT.from_pretrained(folder), ids, 16, stride)
    assert ours["tokens"] == n_tokens
    assert ours["loss"] == pytest.approx(nll_sum / n_tokens, rel=1e-5)
    code, out, err = cli(capsys, "--hf", folder, "--data", folder / "text.txt", "--stride", stride)
    assert code == 0, err
    assert number(r"loss ([\d.]+) nats/token", out) == pytest.approx(nll_sum / n_tokens, abs=6e-5)
    assert number(r"perplexity ([\d.]+)", out) == pytest.approx(math.exp(nll_sum / n_tokens), rel=1e-4)
