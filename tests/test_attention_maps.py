"""Attention maps (viz/attention.py) and the `attention` command (run/attention_maps.py).

head_patterns on made-up weights whose pattern is known (previous token, first token, self,
uniform), on the rows that cannot tell the patterns apart, and on real models whose queries
and keys are zeroed, so their attention is uniform and the scores follow from a formula; token
labels of partial UTF-8 bytes, spaces and newlines; the command end to end on tiny GPT, BERT
and classifier checkpoints (table rows, a valid image, --head, --crop and the refusals).
"""
import doctest
import os
import stat
import sys

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run import attention_maps
from tinygrad_lm.run.cli import main
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, train
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer
from tinygrad_lm.viz import attention as viz

TEXT = "Return the number of items in the list.\nSpeak, speak.\n" * 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- head_patterns on weights whose pattern is known

def causal_uniform(T):
    """(T, T): each query spreads evenly over itself and the keys before it."""
    w = np.tril(np.ones((T, T)))
    return w / w.sum(axis=1, keepdims=True)


def one_hot_rows(keys):
    """(T, T) with row q all on key keys[q]."""
    T = len(keys)
    w = np.zeros((T, T))
    w[np.arange(T), keys] = 1.0
    return w


def test_known_heads_get_their_labels():
    T = 7
    q = np.arange(T)
    heads = [one_hot_rows(np.maximum(q - 1, 0)),  # the token before (query 0: itself, its only key)
             one_hot_rows(np.zeros(T, dtype=int)),  # the first token
             one_hot_rows(q),  # itself
             causal_uniform(T)]  # everything before it, evenly
    patterns = viz.head_patterns(np.stack(heads)[None])  # (1 layer, 4 heads, T, T)
    assert [p.label for p in patterns] == ["previous", "first", "self", "mixed"]
    assert [(p.layer, p.head) for p in patterns] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert (patterns[0].previous, patterns[0].first, patterns[0].itself) == (1.0, 0.0, 0.0)
    assert (patterns[1].previous, patterns[1].first, patterns[1].itself) == (0.0, 1.0, 0.0)
    uniform = patterns[3]
    expected = np.mean([1 / (k + 1) for k in range(2, T)])  # row q spreads over q+1 keys; rows 2..T-1
    assert uniform.previous == pytest.approx(expected) and uniform.first == pytest.approx(expected)
    assert uniform.itself == pytest.approx(expected)


def test_the_first_two_query_rows_do_not_count():
    # rows 0 and 1 cannot tell first, previous and self apart: whatever they hold changes nothing
    T = 6
    w = one_hot_rows(np.arange(T) - 1 + (np.arange(T) == 0))  # a previous-token head
    changed = w.copy()
    changed[1] = [0.5, 0.5, 0, 0, 0, 0]
    a, b = viz.head_patterns(w[None, None])[0], viz.head_patterns(changed[None, None])[0]
    assert (a.previous, a.first, a.itself, a.label) == (b.previous, b.first, b.itself, b.label)


def test_bidirectional_uniform_and_threshold():
    T = 5
    w = np.full((1, 2, T, T), 1 / T)  # a BERT head that looks everywhere evenly
    w[0, 1] = 0.4 / (T - 1)
    w[0, 1, np.arange(T), np.arange(T)] = 0.6  # 0.6 on itself
    plain, own = viz.head_patterns(w)
    assert plain.label == "mixed" and plain.first == pytest.approx(1 / T)
    assert own.label == "self" and own.itself == pytest.approx(0.6)
    assert viz.head_patterns(w, threshold=0.65)[1].label == "mixed"
    assert viz.head_patterns(w, threshold=0.15)[0].label in viz.PATTERNS  # a low bar: the largest share names it


def test_bad_weights_are_refused_with_the_shape():
    with pytest.raises(ValueError, match=r"at least 3 tokens.*got 2"):
        viz.head_patterns(np.ones((1, 1, 2, 2)) / 2)
    with pytest.raises(ValueError, match=r"\(layers, heads, T, T\), got \(2, 3, 3\)"):
        viz.head_patterns(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="threshold"):
        viz.head_patterns(np.ones((1, 1, 3, 3)) / 3, threshold=1.0)


def test_table_columns_line_up():
    w = np.stack([causal_uniform(5), one_hot_rows(np.zeros(5, dtype=int))])[None]
    lines = viz.format_patterns(viz.head_patterns(w)).splitlines()
    assert lines[0].split() == ["layer", "head", "prev", "first", "self", "pattern"]
    assert len(lines) == 3 and len({line.index(line.split()[-1]) for line in lines}) == 1  # the label column
    assert lines[2].split()[:2] == ["0", "1"] and lines[2].split()[-1] == "first"


def test_docstring_examples():
    assert doctest.testmod(viz, optionflags=doctest.ELLIPSIS).failed == 0


# ---- token labels

def test_token_labels_show_what_the_tokenizer_split():
    bpe = BPETokenizer()
    ids = list(" é\n\t".encode()) + [ord("a")]
    assert viz.token_labels(bpe, ids) == ["·", "\\xc3", "\\xa9", "\\n", "\\t", "a"]  # é is two bytes: each alone
    bpe.train(" the the the the", 259)  # three merges: " the" becomes one token
    assert viz.token_labels(bpe, bpe.encode(" the")) == ["·the"]
    char = CharTokenizer("ab \n")
    char.add_special_tokens(["[CLS]"])
    assert viz.token_labels(char, [1, 0, 2, 3, 4]) == ["·", "\\n", "a", "b", "[CLS]"]


# ---- the weights of real models

@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny GPT and BERT checkpoints of `train` (one step) on a char-level corpus."""
    root = tmp_path_factory.mktemp("attn")
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGRAD_LM_CACHE", str(root / "cache"))
        for objective in ("clm", "mlm"):
            train(from_flat(TrainConfig, data=str(root / "corpus.txt"), objective=objective, block_size=24, n_layer=2,
                            n_head=3, n_embd=12, batch_size=2, max_iters=1, eval_interval=1, eval_iters=1,
                            sample_tokens=0, quiet=True, out_dir=str(root / objective)))
    return {"gpt": root / "clm" / "best.npz", "bert": root / "mlm" / "best.npz", "root": root}


def zero_queries_and_keys(model):
    """Every attention layer's query and key projections set to 0: all scores equal, so attention
    is uniform over the keys a query may see."""
    for name, p in model.named_parameters():
        if ".attn.c_attn." in name:  # GPT: weight (3C, C) and bias (3C,), the rows of q, k, v in that order
            p.data[: 2 * p.shape[0] // 3] = 0
        elif ".attention.self.query." in name or ".attention.self.key." in name:  # BERT
            p.data[...] = 0
    return model


def test_a_gpt_with_uniform_attention_scores_by_the_formula(ckpts):
    loaded = attention_maps.load_any(ckpts["gpt"])
    ids, _ = attention_maps.encode("Return the list.", loaded.tokenizer, "gpt", loaded.context, crop=False)
    w = attention_maps.attention_of(loaded.model, ids)
    T = ids.shape[1]
    assert w.shape == (2, 3, T, T) and np.allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w, k=1) == 0)  # causal: no weight on later keys
    w = attention_maps.attention_of(zero_queries_and_keys(loaded.model), ids)
    assert np.allclose(w, causal_uniform(T))
    expected = np.mean([1 / (q + 1) for q in range(2, T)])
    for p in viz.head_patterns(w):
        assert p.label == "mixed"
        assert p.previous == pytest.approx(expected) and p.first == pytest.approx(expected)


def test_bert_sees_cls_text_sep_and_uniform_attention_is_one_over_t(ckpts):
    loaded = attention_maps.load_any(ckpts["bert"])
    assert loaded.kind == "bert" and (loaded.n_layer, loaded.n_head, loaded.context) == (2, 3, 24)
    ids, _ = attention_maps.encode("items", loaded.tokenizer, "bert", loaded.context, crop=False)
    assert viz.token_labels(loaded.tokenizer, ids[0]) == ["[CLS]", "i", "t", "e", "m", "s", "[SEP]"]
    w = attention_maps.attention_of(zero_queries_and_keys(loaded.model), ids)
    assert w.shape == (2, 3, 7, 7) and np.allclose(w, 1 / 7)  # bidirectional: every key, evenly
    assert all(p.first == pytest.approx(1 / 7) for p in viz.head_patterns(w))


# ---- the command

def attention(capsys, *args):
    rc = main(["attention", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def check_image(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    plain = path.parent / "plain"
    plain.write_bytes(b"")  # an image gets the mode any new file gets here (the umask's), not a private one
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    plain.unlink()


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_the_command_draws_every_head_and_prints_the_table(ckpts, tmp_path, capsys, kind):
    pytest.importorskip("matplotlib")
    out = tmp_path / "attn.png"
    rc, printed, err = attention(capsys, "--ckpt", ckpts[kind], "--text", "Return the list.", "--out", out)
    assert rc == 0, err
    rows = [line.split() for line in printed.splitlines()[1:-1]]
    assert printed.splitlines()[0].split() == ["layer", "head", "prev", "first", "self", "pattern"]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(layer, h) for layer in range(2) for h in range(3)]
    assert all(r[-1] in viz.PATTERNS + ("mixed",) for r in rows)
    n = len("Return the list.") + (2 if kind == "bert" else 0)
    assert printed.splitlines()[-1] == f"wrote {out} (2 layers x 3 heads, {n} tokens)"
    check_image(out)


def test_one_head_large(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    grid, one = tmp_path / "grid.png", tmp_path / "one.png"
    assert attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak, speak.", "--out", grid)[0] == 0
    rc, printed, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak, speak.", "--head", "1.2",
                                 "--out", one)
    assert rc == 0, err
    assert printed.splitlines()[-1] == f"wrote {one} (layer 1, head 2, 13 tokens)"
    check_image(one)
    assert one.read_bytes() != grid.read_bytes()


@pytest.mark.parametrize("head, message", [
    ("2.0", "--head 2.0: this model has layers 0..1 and heads 0..2"),
    ("0.3", "--head 0.3: this model has layers 0..1 and heads 0..2"),
])
def test_a_head_the_model_lacks_is_refused(ckpts, tmp_path, capsys, head, message):
    pytest.importorskip("matplotlib")
    out = tmp_path / "a.png"
    rc, _, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak", "--head", head, "--out", out)
    assert rc == 2 and message in err and not (tmp_path / "a.png").exists()


def test_a_head_that_is_not_layer_dot_head_is_refused(ckpts, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        attention(capsys, "--ckpt", ckpts["gpt"], "--text", "x", "--head", "1", "--out", tmp_path / "a.png")
    assert e.value.code == 2 and "'1' is not LAYER.HEAD" in capsys.readouterr().err


def test_too_long_is_refused_with_its_count_or_cropped(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    text = "Return the number of items in the list."  # 39 characters, context 24
    for kind, kept, room in (("gpt", "last", 24), ("bert", "first", 22)):
        out = tmp_path / f"{kind}.png"
        rc, _, err = attention(capsys, "--ckpt", ckpts[kind], "--text", text, "--out", out)
        assert rc == 2 and f"the text is 39 tokens, longer than this {kind.upper()} context of 24 tokens" in err
        assert f"pass --crop to keep the {kept} {room}" in err and not out.exists()
        rc, printed, err = attention(capsys, "--ckpt", ckpts[kind], "--text", text, "--crop", "--out", out)
        assert rc == 0, err
        assert printed.startswith(f"cropped the text from 39 to {room} tokens (kept the {kept} {room}")
        assert printed.splitlines()[-1].endswith("(2 layers x 3 heads, 24 tokens)")
    loaded = attention_maps.load_any(ckpts["gpt"])
    ids, _ = attention_maps.encode(text, loaded.tokenizer, "gpt", 24, crop=True)
    assert loaded.tokenizer.decode(ids[0]) == text[-24:]
    title = attention_maps._title("g.npz", loaded.tokenizer, ids[0].tolist(), "gpt", cropped=True)
    assert title == f"attention of g.npz on {text[-24:]!r} (24 tokens, cropped)"  # the text drawn, not the text given
    loaded = attention_maps.load_any(ckpts["bert"])
    ids, _ = attention_maps.encode(text, loaded.tokenizer, "bert", 24, crop=True)
    assert loaded.tokenizer.decode(ids[0, 1:-1]) == text[:22]


def test_a_bad_out_is_refused_before_the_checkpoint_is_read(tmp_path, capsys):
    missing_ckpt = tmp_path / "no.npz"  # the --out error comes first: nothing was loaded
    (tmp_path / "folder.png").mkdir()
    cases = [(tmp_path / "nope" / "a.png", f"the folder {tmp_path / 'nope'} does not exist"),
             (tmp_path / "folder.png", "is a folder; give a file name"),
             (tmp_path / "a.jpg", "the image must end in .png, .svg, .pdf")]
    for out, message in cases:
        rc, _, err = attention(capsys, "--ckpt", missing_ckpt, "--text", "x", "--out", out)
        assert rc == 2 and f"--out {out}" in err and message in err and "Traceback" not in err


def test_an_unwritable_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(attention_maps.os, "access", lambda path, mode: False)  # as a folder of another user's
    rc, _, err = attention(capsys, "--ckpt", tmp_path / "no.npz", "--text", "x", "--out", tmp_path / "a.png")
    assert rc == 2 and f"--out {tmp_path / 'a.png'}: not writable (no permission to write in {tmp_path})" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_out_folder_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, _, err = attention(capsys, "--ckpt", tmp_path / "no.npz", "--text", "x", "--out", locked / "a.png")
    finally:
        locked.chmod(0o700)
    assert rc == 2 and f"--out {locked / 'a.png'}: not writable" in err


def test_empty_text_and_unknown_characters(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "a.png"
    rc, _, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "", "--out", out)
    assert rc == 2 and "the text is empty" in err
    rc, _, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak, Zoë!", "--out", out)
    assert rc == 2 and "--text: 3 character(s) are not in this char-level vocabulary: '!' 'Z' 'ë'" in err
    rc, printed, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak, Zoë!", "--unknown-chars", "drop",
                                 "--out", out)
    assert rc == 0 and "dropped 3" in err and printed.splitlines()[-1].endswith("8 tokens)")  # "Speak, o"
    (tmp_path / "t.txt").write_text("Speak\n", encoding="utf-8")
    rc, printed, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text-file", tmp_path / "t.txt", "--out", out)
    assert rc == 0, err
    assert printed.splitlines()[-1].endswith("6 tokens)")


def test_a_fine_tuned_classifier_checkpoint_works_too(ckpts, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification
    from tinygrad_lm.run.finetune import KIND

    meta, _, _ = checkpoint.load(ckpts["gpt"])
    model = GPTForSequenceClassification.from_pretrained(ckpts["gpt"], 2, verbose=False)
    path = tmp_path / "clf.npz"
    checkpoint.save(path, model.state_dict(), None, {
        "kind": KIND, "model_type": "gpt", "model_config": meta["model_config"], "num_labels": 2,
        "label_names": ["a", "b"], "pooling": "last", "tokenizer": meta["tokenizer"]})
    loaded = attention_maps.load_any(path)
    assert loaded.kind == "gpt" and loaded.n_layer == 2 and not loaded.model.training
    rc, printed, err = attention(capsys, "--ckpt", path, "--text", "Speak, speak.", "--out", tmp_path / "c.png")
    assert rc == 0, err
    assert len(printed.splitlines()) == 1 + 6 + 1


def test_without_matplotlib_the_error_says_how_to_install_it(ckpts, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    rc, _, err = attention(capsys, "--ckpt", ckpts["gpt"], "--text", "Speak", "--out", tmp_path / "a.png")
    assert rc == 2 and "pip install -e '.[plot]'" in err and not (tmp_path / "a.png").exists()
