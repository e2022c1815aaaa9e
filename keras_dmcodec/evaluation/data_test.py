"""Corpus readers: pure file parsing, independent of the Keras backend (run once)."""

import json
import shutil
from pathlib import Path

import keras
import pytest

from keras_dmcodec.evaluation.data import read_dataset

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"


def test_librispeech_layout():
    items, problems = read_dataset(SPEECH)
    assert [u.id for u in items] == [f"10{i}-1-0000" for i in range(1, 7)]
    assert items[0].text == "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"
    assert items[0].path == SPEECH / "101" / "1" / "101-1-0000.flac"
    assert problems == []


def test_missing_transcripts_and_audio_are_reported(tmp_path):
    shutil.copytree(SPEECH / "101", tmp_path / "101")
    shutil.copytree(SPEECH / "102", tmp_path / "102")
    (tmp_path / "102" / "1" / "102-1.trans.txt").unlink()  # audio without transcript
    with open(tmp_path / "101" / "1" / "101-1.trans.txt", "a") as f:
        f.write("101-1-0001 NO AUDIO FOR THIS LINE\n101-1-0002\n")
    items, problems = read_dataset(tmp_path)
    assert [u.id for u in items] == ["101-1-0000"]
    assert len(problems) == 3
    assert any("102-1-0000.flac: no transcript" in p for p in problems)
    assert any("101-1-0001 has no audio" in p for p in problems)
    assert any("empty transcript for 101-1-0002" in p for p in problems)


def test_manifests(tmp_path):
    flac = SPEECH / "103" / "1" / "103-1-0000.flac"
    shutil.copy(flac, tmp_path / "a.flac")
    tsv = tmp_path / "m.tsv"
    tsv.write_text(f"path\ttext\na.flac\tA LARGE RED BOAT\n{flac}\tabsolute path\nbroken line\n"
                   "b.flac\t\n")
    items, problems = read_dataset(tsv)
    assert [(u.id, u.path, u.text) for u in items] == [
        ("103-1-0000", flac, "absolute path"), ("a", tmp_path / "a.flac", "A LARGE RED BOAT")]
    assert len(problems) == 2 and "expected 'path<TAB>text'" in problems[0]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"audio": "a.flac", "text": "x", "id": "u1"}) + "\n{oops\n"
                     + json.dumps({"path": "a.flac", "text": "y", "id": "u1"}) + "\n")
    items, problems = read_dataset(jsonl)
    assert [(u.id, u.text) for u in items] == [("u1", "x")]
    assert "invalid JSON" in problems[0] and "duplicate utterance id" in problems[1]


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_dataset(tmp_path / "missing")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="expected a folder or a manifest"):
        read_dataset(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no utterances"):
        read_dataset(tmp_path / "empty")
