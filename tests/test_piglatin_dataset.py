"""scripts/make_piglatin_dataset.py: the Pig Latin rule, and the splits it writes (by position,
every example short enough for the default context, the same files for the same seed)."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_piglatin_dataset.py"
spec = importlib.util.spec_from_file_location("make_piglatin_dataset", SCRIPT)
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)


@pytest.mark.parametrize("word, latin", [("apple", "appleway"), ("string", "ingstray"), ("rhythm", "ythmrhay"),
                                         ("nth", "nthay"), ("the", "ethay"), ("yes", "esyay"), ("use", "useway")])
def test_the_rule(word, latin):
    assert make.pig_latin(word) == latin


def test_splits_are_by_position_short_and_reproducible(tmp_path):
    text = tmp_path / "t.txt"  # 3000 distinct words (xa, xb, ..., xcaa...): a phrase names its position
    text.write_text(" ".join("x" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(3000)), encoding="utf-8")
    args = ["--data", str(text), "--train", "200", "--val", "20", "--test", "20"]
    make.main(args + ["--out", str(tmp_path / "a")])
    make.main(args + ["--out", str(tmp_path / "b")])
    rows = {}
    for name in ("train", "val", "test"):
        a = (tmp_path / "a" / f"{name}.jsonl").read_text()
        assert a == (tmp_path / "b" / f"{name}.jsonl").read_text()  # the same seed, the same files
        rows[name] = [json.loads(line) for line in a.splitlines()]
    for name, split in rows.items():
        for r in split:
            phrase = r["prompt"].removesuffix(" -> ").split(" ")
            assert r["completion"] == " ".join(make.pig_latin(w) for w in phrase)
            assert 2 <= len(phrase) <= 4 and len(" ".join(phrase)) <= 22
    prompts = {name: {r["prompt"] for r in split} for name, split in rows.items()}
    assert not prompts["train"] & prompts["test"] and not prompts["train"] & prompts["val"]


def test_a_text_too_short_is_refused_with_the_counts(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("just a few words here " * 5, encoding="utf-8")
    with pytest.raises(SystemExit, match="only .* train phrases .* 5000 asked"):
        make.main(["--data", str(text), "--out", str(tmp_path / "o")])
