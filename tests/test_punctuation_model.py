"""The punctuation fixture exported and run: ONNX against PyTorch, the runtime, the CLI."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from streamasr.export import cli
from streamasr.export import punctuation as export
from streamasr.server.decoding.punctuation.labels import apply_all, resolve_case
from streamasr.server.decoding.punctuation.manifest import read_manifest
from streamasr.server.decoding.punctuation.model import PunctuationModel
from streamasr.server.decoding.punctuation.stable import FrozenWord, StablePunctuator
from streamasr.server.manifest import sha256_file

FIXTURE = Path(__file__).parent / "data" / "punctuation-fixture"
SENTENCES = [
    "WELL I THINK SO BUT I AM NOT SURE WHAT DO YOU THINK",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND THEN IT RUNS AWAY",
    "A COMPUTER IS A MACHINE THAT DOES WHAT YOU SAY NOT WHAT YOU MEAN",
    "AND GOD SAID LET THERE BE LIGHT AND THERE WAS LIGHT",
    "WHY",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("punct") / "fixture"
    export.run(export.PunctuationExportConfig(str(FIXTURE), out))
    return out


def torch_labels(folder: Path, batch: list[list[str]]) -> list[list[str]]:
    """The label names PyTorch gives each word's first sub-token."""
    import torch

    loaded = export.load(str(folder))
    inputs, firsts = export.encode(loaded, batch)
    with torch.no_grad():
        best = loaded.model(**inputs).logits.argmax(-1)
    return [[loaded.labels[int(best[r, c])] for c in cols] for r, cols in enumerate(firsts)]


def test_export_validates_against_pytorch(exported: Path) -> None:
    manifest = read_manifest(exported)
    assert manifest.layout == "mark+case"
    assert set(manifest.models) == {"fp32", "int8"}
    for precision, entry in manifest.models.items():
        assert sha256_file(exported / entry.file) == entry.sha256
        assert (exported / entry.file).stat().st_size == entry.bytes
        limit_diff, limit_agree = export.THRESHOLDS[precision]
        assert entry.validation["passed"] is True
        assert entry.validation["max_abs_diff"] <= limit_diff
        assert entry.validation["agreement"] >= limit_agree
    # the embeddings (most of a tiny model) stay fp32: only MatMul/Gemm weights are int8
    assert manifest.models["int8"].bytes < 0.8 * manifest.models["fp32"].bytes
    assert sha256_file(exported / manifest.tokenizer.file) == manifest.tokenizer.sha256


def test_runtime_fp32_matches_pytorch(exported: Path) -> None:
    batch = [s.split() for s in SENTENCES]
    model = PunctuationModel.open(exported, "fp32")
    got = model.punctuate_batch(batch)
    names = torch_labels(FIXTURE, batch)
    expected = [[(n[0] if n[0] != "O" else "", n[1] == "U") for n in row] for row in names]
    assert [[(lab.mark, lab.upper) for lab in row] for row in got] == expected


def test_int8_agrees_with_fp32_on_most_words(exported: Path) -> None:
    rng = random.Random(5)
    pool = " ".join(SENTENCES).split()
    batch = [rng.sample(pool, rng.randint(3, 30)) for _ in range(30)]
    fp32 = PunctuationModel.open(exported, "fp32").punctuate_batch(batch)
    int8 = PunctuationModel.open(exported, "int8").punctuate_batch(batch)
    pairs = [(a, b) for ra, rb in zip(fp32, int8, strict=True) for a, b in zip(ra, rb, strict=True)]
    assert sum(a == b for a, b in pairs) / len(pairs) >= export.THRESHOLDS["int8"][1]


def test_words_in_are_words_out(exported: Path) -> None:
    model = PunctuationModel.open(exported, "int8")
    rng = random.Random(11)
    pool = [*" ".join(SENTENCES).split(), "XYZZY", "QWERTYUIOPASDFGHJKL", "O'NEILL", "'", "Z"]
    batch = [[rng.choice(pool) for _ in range(n)] for n in (0, 1, 2, 7, 60, 300, 700)]
    batch += [s.split() for s in SENTENCES]
    labels = model.punctuate_batch(batch)
    assert [len(x) for x in labels] == [len(x) for x in batch]
    for words, row in zip(batch, labels, strict=True):
        out = apply_all(words, resolve_case(words, row, None))
        assert [t.rstrip(".,?!:").lower() for t in out] == [w.lower() for w in words]


def test_long_inputs_are_chunked_and_batched_the_same(exported: Path) -> None:
    model = PunctuationModel.open(exported, "fp32", overlap=8)
    words = (" ".join(SENTENCES[:4]) + " ").split() * 12  # several hundred sub-tokens
    alone = model.punctuate_batch([words])[0]
    together = model.punctuate_batch([SENTENCES[0].split(), words, SENTENCES[1].split()])[1]
    assert together == alone
    assert len(alone) == len(words)
    tight = PunctuationModel.open(exported, "fp32", overlap=8, max_batch=1)
    assert tight.punctuate_batch([words])[0] == alone


def test_real_model_frozen_words_never_change(exported: Path) -> None:
    model = PunctuationModel.open(exported, "int8")
    rng = random.Random(2)
    words = " ".join(SENTENCES).split()
    punctuator = StablePunctuator(model, lookahead=3, context=6)
    seen: list[FrozenWord] = []
    committed = 0
    while committed < len(words):
        committed += rng.randint(1, 4)
        provisional = [rng.choice(words) for _ in range(rng.randint(0, 3))]
        seen += punctuator.update(words[:committed], provisional)
        assert punctuator.frozen == seen
    seen += punctuator.update(words, final=True)
    assert [f.word for f in seen] == words
    assert punctuator.frozen == seen


def test_the_fixture_punctuates_plain_text(exported: Path) -> None:
    model = PunctuationModel.open(exported, "fp32")

    def caption(text: str) -> str:
        return " ".join(model.punctuate(text.split(" ")))

    assert caption("WHERE ARE YOU GOING") == "Where are you going?"
    said = caption("I SAID YES AND THEN WE LEFT THE HOUSE IT WAS LATE")
    # The fixture's own answer, comma splice included (a tiny model: docs/punctuation.md).
    assert said == "I said, Yes, and then we left the house, it was late."
    assert caption("WELL I THINK SO") == "Well, I think so."
    assert model.punctuate(["GOODBYE"], end_mark="!")[0].lower() == "goodbye!"


def tiny_checkpoint(folder: Path, labels: list[str]) -> Path:
    """A seeded random BERT with the fixture's tokenizer and ``labels``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=AutoTokenizer.from_pretrained(FIXTURE).vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    BertForTokenClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(FIXTURE).save_pretrained(folder)
    return folder


def test_punct_only_checkpoints_export_and_take_the_case_rule(tmp_path: Path) -> None:
    source = tiny_checkpoint(tmp_path / "fullstop", ["0", ".", ",", "?", "-", ":"])
    assert cli.main(["--punctuation", str(source), "--out", str(tmp_path / "out")]) == 0
    folder = tmp_path / "out" / "punctuation-fullstop"
    model = PunctuationModel.open(folder, "fp32")
    assert model.layout == "punct-only"
    assert model.manifest.max_length == 64
    words = ("I SAID " * 40).split()  # past 64 sub-tokens: chunked
    labels = model.punctuate_batch([words])[0]
    assert all(lab.upper is None for lab in labels)
    resolved = resolve_case(words, labels, None)
    assert all(lab.upper for w, lab in zip(words, resolved, strict=True) if w == "I")


def test_unknown_layout_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tiny_checkpoint(tmp_path / "ner", ["O", "B-PER", "I-PER"])
    assert cli.main(["--punctuation", str(source), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown punctuation label layout" in err
    assert "'mark+case'" in err and "'punct-only'" in err
    assert not (tmp_path / "out" / "punctuation-ner").exists()


def test_a_file_failing_validation_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    strict: dict[str, Any] = {**export.THRESHOLDS, "int8": (0.0, 1.0)}
    monkeypatch.setattr(export, "THRESHOLDS", strict)
    assert cli.main(["--punctuation", str(FIXTURE), "--out", str(tmp_path)]) == 3
    assert "int8" in capsys.readouterr().err
    folder = tmp_path / "punctuation-punctuation-fixture"
    manifest = read_manifest(folder)
    assert set(manifest.models) == {"fp32"}
    assert not (folder / "model.int8.onnx").exists()


def test_mark_penalty_trades_marks_away(exported: Path) -> None:
    batch = [s.split() for s in SENTENCES]
    plain = PunctuationModel.open(exported, "fp32").punctuate_batch(batch)
    shy = PunctuationModel.open(exported, "fp32", mark_penalty=100.0).punctuate_batch(batch)
    assert any(lab.mark for row in plain for lab in row)
    assert not any(lab.mark for row in shy for lab in row)
    assert sum(len(row) for row in shy) == sum(len(ws) for ws in batch)
    no_stops = PunctuationModel.open(exported, "fp32", mark_penalty={".": 100.0})
    labels = no_stops.punctuate_batch(batch)
    assert not any(lab.mark == "." for row in labels for lab in row)
    kept = [lab for row in labels for lab in row]
    assert any(lab.mark == "," for lab in kept), "other marks are untouched"
