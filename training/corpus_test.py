import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.corpus import list_corpus
from training.corpus import (
    DEFAULT_SENTENCES,
    LICENCE_FILE,
    VOICES,
    CorpusError,
    build_corpus,
    main,
    parse_args,
    plan_corpus,
    read_sentences,
)

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")
needs_tts = pytest.mark.skipif(not (shutil.which("flite") and shutil.which("sox")),
                               reason="flite and sox (Debian) are not installed")

# Two fast flite voices; kal16 is heard only in the test split.
TINY = ["--seed", "3", "--num-utterances", "6", "--num-validation", "1", "--num-test", "2",
        "--voices", "flite:slt,flite:kal16", "--test-voices", "flite:kal16", "--min-words", "4"]


def _build(out, *extra):
    return build_corpus(parse_args(["--out", str(out)] + TINY + list(extra)), log=lambda m: None)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tts") / "corpus"
    _build(root)
    return root


def _rows(root):
    lines = (Path(root) / "utterances.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


@needs_tts
def test_layout_transcripts_and_audio(corpus):
    rows = _rows(corpus)
    splits = [r["split"] for r in rows]
    assert [splits.count(s) for s in ("train", "validation", "test")] == [3, 1, 2]
    texts = {utt.id: utt.text for utt in list_corpus(corpus).utterances}
    for row in rows:
        spk, chapter, _ = row["id"].split("-")
        path = corpus / row["split"] / spk / chapter / f"{row['id']}.flac"
        assert (path.parent / f"{spk}-{chapter}.trans.txt").is_file()
        assert texts[row["id"]] == row["transcript"]
        assert row["transcript"] == row["transcript"].upper()
        assert set(row["transcript"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")
        assert len(row["transcript"].split()) >= 4
        audio, rate = sf.read(path)
        assert rate == 16000 and audio.ndim == 1
        assert abs(np.max(np.abs(audio)) - 10 ** (-3 / 20)) < 0.02  # norm -3 dBFS
        assert np.max(np.abs(audio[:800])) < 0.05  # 0.1 s of padding, then speech
        assert abs(len(audio) / rate - float(row["seconds"])) < 1e-3
    # The training loader reads it as a LibriSpeech corpus, transcripts attached.
    items, problems = list_corpus(corpus / "train")
    assert len(items) == 3 and all(item.text for item in items) and not problems
    meta = json.loads((corpus / "corpus.json").read_text())
    assert meta["complete"] and meta["splits"]["test"]["unseen_voices"] == ["flite:kal16"]
    assert meta["total_hours"] == pytest.approx(sum(float(r["seconds"]) for r in rows) / 3600,
                                                abs=2e-3)
    assert "WordNet" in meta["sentence_source"]["name"]


@needs_tts
def test_test_split_holds_out_sentences_and_a_voice(corpus):
    rows = _rows(corpus)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}
    held_speakers = {"1030", "1031", "1032"}  # flite kal16, its three variants
    assert not held_speakers & {r["speaker"] for r in by_split["train"] + by_split["validation"]}
    assert held_speakers & {r["speaker"] for r in by_split["test"]}
    assert not (corpus / "train" / "1030").exists()
    train_text = {r["transcript"] for r in by_split["train"]}
    assert not train_text & {r["transcript"] for r in by_split["test"] + by_split["validation"]}


@needs_tts
def test_same_seed_same_corpus_and_resume(corpus, tmp_path):
    again = tmp_path / "again"
    _build(again, "--workers", "2")
    _same(again, corpus)

    # A killed run: two utterances and every text file missing, a temporary left over.
    done = sorted(again.rglob("*.flac"))
    for path in done[:2]:
        path.unlink()
    for path in list(again.rglob("*.trans.txt")) + [again / "utterances.tsv"]:
        path.unlink()
    meta = json.loads((again / "corpus.json").read_text())
    (again / "corpus.json").write_text(json.dumps({"complete": False,
                                                   "settings": meta["settings"]}))
    (done[3].parent / ".tmp_half.flac").write_bytes(b"half-written")
    untouched = done[4].stat().st_mtime_ns
    logs = []
    build_corpus(parse_args(["--out", str(again)] + TINY), log=logs.append)
    assert any("4 already done" in line for line in logs)
    assert done[4].stat().st_mtime_ns == untouched
    assert not list(again.rglob(".tmp_*"))
    _same(again, corpus)

    # Growing the corpus adds training utterances only; shrinking it back restores it.
    logs.clear()
    grown = build_corpus(parse_args(["--out", str(again)] + TINY[:3] + ["7"] + TINY[4:]),
                         log=logs.append)
    assert any("6 already done" in line for line in logs)
    assert grown["splits"]["train"]["utterances"] == 4
    _build(again)
    _same(again, corpus)


def _same(root, reference):
    assert _files(root) == _files(reference)
    for name in _files(reference):
        if name.endswith((".flac", ".txt", ".tsv")):
            assert (root / name).read_bytes() == (reference / name).read_bytes(), name


@needs_tts
def test_other_settings_in_same_folder_refused(corpus, capsys):
    assert main(["--out", str(corpus)] + TINY[:-2] + ["--min-words", "5"]) == 2
    assert "built with other settings" in capsys.readouterr().err


def test_plan_properties():
    sentences = read_sentences(DEFAULT_SENTENCES)
    assert len(sentences) > 30000
    plan = plan_corpus(sentences, seed=0, num_utterances=600, num_validation=50, num_test=100)
    assert plan == plan_corpus(sentences, seed=0, num_utterances=600, num_validation=50,
                               num_test=100)
    other = plan_corpus(sentences, seed=1, num_utterances=600, num_validation=50, num_test=100)
    assert [p["transcript"] for p in plan] != [p["transcript"] for p in other]
    split = {s: [p for p in plan if p["split"] == s] for s in ("train", "validation", "test")}
    assert [len(v) for v in split.values()] == [450, 50, 100]
    sents = {s: {x for p in v for x in p["sentences"]} for s, v in split.items()}
    assert not sents["train"] & sents["test"] and not sents["train"] & sents["validation"]
    assert not sents["validation"] & sents["test"]
    held = {"flite:rms", "festival:ked_diphone"}
    assert not held & {p["voice"] for p in split["train"] + split["validation"]}
    assert sum(p["voice"] in held for p in split["test"]) == 50
    assert all(len(p["transcript"].split()) >= 15 for p in plan)
    counts = np.bincount([p["speaker"] for p in split["train"]])
    counts = counts[counts > 0]
    assert len(counts) == 3 * (len(VOICES) - 2) and counts.max() - counts.min() <= 1
    assert len({p["path"] for p in plan}) == len(plan)


def test_bad_options_fail_with_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--voices", "flite:nobody"]) == 2
    assert "unknown voice 'flite:nobody'" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--num-utterances", "10", "--num-test", "10"]) == 2
    assert "must exceed" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a corpus")
    assert main(["--out", str(tmp_path)] + TINY[2:]) == 2
    assert "holds no corpus.json" in capsys.readouterr().err
    with pytest.raises(CorpusError, match="must be among the voices"):
        plan_corpus(["a b c d"] * 3, 0, 3, 1, 1, voices=["flite:slt"],
                    test_voices=["flite:rms"])
    assert LICENCE_FILE.is_file() and "Princeton" in LICENCE_FILE.read_text()
