"""Fine-tuning a checkpoint of `train --objective mlm`: BertForSequenceClassification on [CLS]
through the pooler, with the GPT classifier's loop, data format, metrics and checkpoints."""
import json

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.models.bert_classifier import BertForSequenceClassification
from tinygrad_lm.run.finetune import FinetuneConfig, finetune, load_classifier, predict
from tinygrad_lm.run.labeled import load_labeled, pad_batch
from tinygrad_lm.run.mlm import SpecialIds
from tinygrad_lm.engine.tensor import no_grad
from tinygrad_lm.run.train import TrainConfig, train

FRUIT = "apple pear plum fig grape lemon lime melon".split()
METAL = "iron steel tin lead zinc gold copper nickel".split()


def _line(rng, words):
    return " ".join(rng.choice(words, 5))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A corpus mixing both word sets, a fruit-or-metal labelled task, and an MLM checkpoint of it."""
    import os

    root = tmp_path_factory.mktemp("toy")
    old = os.environ.get("TINYGRAD_LM_CACHE")
    os.environ["TINYGRAD_LM_CACHE"] = str(root / "cache")
    rng = np.random.default_rng(0)
    (root / "corpus.txt").write_text("\n".join(_line(rng, FRUIT) + " and " + _line(rng, METAL) for _ in range(300)),
                                     encoding="utf-8")
    for name, n in (("train", 160), ("val", 40)):
        with open(root / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i in range(n):
                label = ("fruit", "metal")[i % 2]
                f.write(json.dumps({"text": _line(rng, FRUIT if label == "fruit" else METAL), "label": label}) + "\n")
    train(from_flat(TrainConfig, data=str(root / "corpus.txt"), objective="mlm", block_size=16, n_layer=1, n_head=2,
                    n_embd=32, batch_size=8, max_iters=40, warmup_iters=10, eval_interval=40, eval_iters=2,
                    lr=3e-3, out_dir=str(root / "pre"), quiet=True))
    gpt = root / "gpt"
    train(from_flat(TrainConfig, data=str(root / "corpus.txt"), block_size=16, n_layer=1, n_head=2, n_embd=32,
                    batch_size=4, max_iters=2, eval_interval=2, eval_iters=1, out_dir=str(gpt), quiet=True))
    yield root
    if old is None:
        os.environ.pop("TINYGRAD_LM_CACHE", None)
    else:
        os.environ["TINYGRAD_LM_CACHE"] = old


def cfg(toy, out, **kw):
    values = dict(ckpt=str(toy / "pre" / "best.npz"), data=str(toy / "train.jsonl"), val=str(toy / "val.jsonl"),
                  max_iters=30, eval_interval=15, warmup_iters=5, lr=2e-3, batch_size=16, out_dir=str(out), quiet=True)
    values.update(kw)
    return from_flat(FinetuneConfig, **values)


def test_finetuning_an_mlm_checkpoint_pools_cls_and_beats_chance(toy, tmp_path, capsys):
    result = finetune(cfg(toy, tmp_path / "ft", quiet=False))
    out = capsys.readouterr().out
    assert "newly initialised: classifier.weight, classifier.bias" in out and "WARNING" not in out
    assert "unused checkpoint keys: cls.predictions" in out
    model = result["model"]
    assert isinstance(model, BertForSequenceClassification) and model.pooling == "cls"
    assert result["val"]["accuracy"] >= 0.9  # chance is 0.5 on this balanced two-class task
    meta, state, _ = checkpoint.load(tmp_path / "ft" / "best.npz")
    assert meta["model_type"] == "bert" and meta["pooling"] == "cls"
    assert "bert.pooler.dense.weight" in state and "classifier.weight" in state and "cls.predictions.bias" not in state
    again, tokenizer, _ = load_classifier(tmp_path / "ft" / "best.npz")
    assert isinstance(again, BertForSequenceClassification)
    val = load_labeled(toy / "val.jsonl", tokenizer, 16, result["label_names"], specials=SpecialIds.of(tokenizer))
    np.testing.assert_array_equal(predict(again, val.ids).argmax(1), result["val"]["predictions"])


def test_texts_become_cls_text_sep_and_batches_pad_with_pad(toy):
    meta, _, _ = checkpoint.load(toy / "pre" / "best.npz")
    from tinygrad_lm.tokenizer import tokenizer_from_dict

    tok = tokenizer_from_dict(meta["tokenizer"])
    ids = SpecialIds.of(tok)
    data = load_labeled(toy / "train.jsonl", tok, 16, specials=ids)
    first = data.ids[0]
    assert first[0] == ids.cls and first[-1] == ids.sep and len(first) == 16  # 14 characters kept of the text
    assert tok.decode(first[1:-1].tolist()) == data.texts[0][:14] and data.truncated == len(data)
    model = BertForSequenceClassification(BertForSequenceClassification.config_from_meta(meta, "x"), 2).eval()
    short = np.array([ids.cls, 3, 4, ids.sep])
    batch, mask = pad_batch([short, first], ids.pad)  # (2, 16)
    assert (batch[0, 4:] == ids.pad).all()
    with no_grad():
        alone, _ = model(short[None], np.ones((1, 4), dtype=bool))
        padded, _ = model(batch, mask)
    np.testing.assert_allclose(padded.data[0], alone.data[0], rtol=1e-5, atol=1e-6)  # padding changes nothing


def test_scratch_keeps_the_size_and_tokenizer_but_not_the_weights(toy, tmp_path):
    pre = BertForSequenceClassification.from_pretrained(toy / "pre" / "best.npz", 2, verbose=False)
    scratch = BertForSequenceClassification.from_scratch_like(toy / "pre" / "best.npz", 2)
    assert scratch.config == pre.config and scratch.tokenizer.to_dict() == pre.tokenizer.to_dict()
    _, state, _ = checkpoint.load(toy / "pre" / "best.npz")
    w = "bert.encoder.layer.0.attention.self.query.weight"
    np.testing.assert_array_equal(pre.state_dict()[w], state[w])
    assert not np.allclose(scratch.state_dict()[w], state[w])
    frozen = BertForSequenceClassification.from_pretrained(toy / "pre" / "best.npz", 2, freeze_body=True,
                                                           verbose=False)
    assert {n.split(".")[0] for n, _ in frozen.trainable_named_parameters()} == {"classifier"}


def test_bert_finetuning_resumes_bit_for_bit(toy, tmp_path):
    full = finetune(cfg(toy, tmp_path / "a", max_iters=12, eval_interval=5, dropout=0.1))
    part = finetune(cfg(toy, tmp_path / "b", max_iters=12, eval_interval=5, dropout=0.1), stop_at=7)
    rest = finetune(cfg(toy, tmp_path / "b", max_iters=12, eval_interval=5, dropout=0.1), resume=True)
    assert part["history"] + rest["history"] == full["history"]
    _, wa, _ = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    _, wb, _ = checkpoint.load(tmp_path / "b" / "ckpt.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])


def test_pooling_that_does_not_fit_the_checkpoint_is_refused(toy, tmp_path):
    with pytest.raises(ValueError, match="--pooling last is for GPT checkpoints.*--pooling cls"):
        finetune(cfg(toy, tmp_path / "a", pooling="last"))
    with pytest.raises(ValueError, match="--pooling cls is BERT's.*GPT checkpoint.*--pooling last or mean"):
        finetune(cfg(toy, tmp_path / "b", pooling="cls", ckpt=str(toy / "gpt" / "ckpt.npz")))
    result = finetune(cfg(toy, tmp_path / "c", ckpt=str(toy / "gpt" / "ckpt.npz"), max_iters=2, eval_interval=2))
    assert result["model"].pooling == "last"  # a GPT checkpoint still pools its last token by default
