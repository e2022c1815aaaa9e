"""The corpus reader: pure file parsing, independent of the Keras backend (runs once)."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.corpus import CorpusError, CorpusListing, Utterance, list_corpus, list_files

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
FLAC = SPEECH / "103" / "1" / "103-1-0000.flac"


def _wav(path, seconds=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def test_librispeech_layout():
    listing = list_corpus(SPEECH)
    assert isinstance(listing, CorpusListing)
    items, problems = listing
    assert [u.id for u in items] == [f"10{i}-1-0000" for i in range(1, 7)]
    assert items[0] == Utterance("101-1-0000", SPEECH / "101" / "1" / "101-1-0000.flac",
                                 "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG")
    assert problems == [] and listing.utterances is items


def test_missing_transcripts_and_audio_are_reported(tmp_path):
    shutil.copytree(SPEECH / "101", tmp_path / "101")
    shutil.copytree(SPEECH / "102", tmp_path / "102")
    (tmp_path / "102" / "1" / "102-1.trans.txt").unlink()  # audio without transcript
    with open(tmp_path / "101" / "1" / "101-1.trans.txt", "a") as f:
        f.write("101-1-0001 NO AUDIO FOR THIS LINE\n101-1-0002\n")
    items, problems = list_corpus(tmp_path, require_text=True)
    assert [u.id for u in items] == ["101-1-0000"]
    assert len(problems) == 3
    assert any("102-1-0000.flac: no transcript (no line '102-1-0000 ...'" in p for p in problems)
    assert any("101-1-0001 has no audio" in p for p in problems)
    assert any("empty transcript for 101-1-0002" in p for p in problems)
    # Without require_text the audio is kept: id = its path under the folder, no text.
    items, problems = list_corpus(tmp_path)
    assert [(u.id, u.text is None) for u in items] == [("101-1-0000", False),
                                                       ("102/1/102-1-0000", True)]
    assert len(problems) == 2


def test_folder_of_plain_audio_ids_are_relative_paths(tmp_path):
    _wav(tmp_path / "spk" / "a.wav")
    _wav(tmp_path / "b.flac")
    (tmp_path / "notes.txt").write_text("not audio, not listed")
    items, problems = list_corpus(tmp_path)
    assert [(u.id, u.path, u.text) for u in items] == [
        ("b", tmp_path / "b.flac", None), ("spk/a", tmp_path / "spk" / "a.wav", None)]
    assert problems == []
    # one audio file is a source too; its id is its stem
    assert list_corpus(tmp_path / "spk" / "a.wav").utterances == [
        Utterance("a", tmp_path / "spk" / "a.wav")]


def test_hidden_and_temporary_files_are_skipped(tmp_path):
    good = _wav(tmp_path / "clip.wav")
    # what a killed `decode` / `export` leaves behind (atomic_output's temporary name)
    (tmp_path / ".tmp_clip.x1y2.wav").write_bytes(b"RIFF" + bytes(40))
    _wav(tmp_path / ".hidden.wav")
    _wav(tmp_path / ".cache" / "inside.flac")
    _wav(tmp_path / "sub" / ".git" / "x.wav")
    (tmp_path / "download.wav.part").write_bytes(b"partial")
    (tmp_path / "edit.wav.tmp").write_bytes(b"temporary")
    (tmp_path / ".hidden.trans.txt").write_text("clip HIDDEN TRANSCRIPTS ARE NOT READ\n")
    items, problems = list_corpus(tmp_path)
    assert items == [Utterance("clip", good)] and problems == []
    assert list_files(tmp_path) == [good]
    assert list_files(tmp_path, (".part", ".tmp")) == []


def test_tsv_and_txt_manifests(tmp_path):
    shutil.copy(FLAC, tmp_path / "a.flac")
    _wav(tmp_path / "clips" / "c.wav")
    tsv = tmp_path / "m.tsv"
    tsv.write_text(f"path\ttext\na.flac\tA LARGE RED BOAT\n{FLAC}\tabsolute path\n"
                   "# a comment\n\nclips/c.wav\n" "b.flac\tno such file\n" "a.flac\tagain\n"
                   "\ttext without a path\n")
    items, problems = list_corpus(tsv)
    assert [(u.id, u.path, u.text) for u in items] == [
        ("103-1-0000", FLAC, "absolute path"), ("a", tmp_path / "a.flac", "A LARGE RED BOAT"),
        ("clips/c", tmp_path / "clips" / "c.wav", None)]
    assert len(problems) == 3
    assert problems[0] == f"{tsv}:7: {tmp_path / 'b.flac'}: no such file -- skipped"
    assert "m.tsv:8: duplicate utterance id 'a'" in problems[1]
    assert "m.tsv:9: no audio path" in problems[2]
    # The same file gives the same corpus whatever its suffix (.txt: one path per line works).
    txt = tmp_path / "m.txt"
    txt.write_text(tsv.read_text())
    assert list_corpus(txt).utterances == items
    # Evaluation needs transcripts: the line without text is skipped and reported.
    items, problems = list_corpus(tsv, require_text=True)
    assert [u.id for u in items] == ["103-1-0000", "a"]
    assert any("m.tsv:6: no transcript for" in p for p in problems)
    # A header names the columns, in any order, extra columns ignored; text may hold tabs.
    tsv.write_text("id\tspeaker\tpath\ttext\nu1\tS\ta.flac\thello\tworld\nu2\tS\tclips/c.wav\n")
    assert [(u.id, u.text) for u in list_corpus(tsv).utterances] == [("u1", "hello\tworld"),
                                                                   ("u2", None)]
    tsv.write_text("audio\nclips/c.wav\n")
    assert [u.id for u in list_corpus(tsv).utterances] == ["clips/c"]


def test_csv_manifest(tmp_path):
    shutil.copy(FLAC, tmp_path / "a.flac")
    csv_file = tmp_path / "m.csv"
    csv_file.write_text('path,text,id\na.flac,"HELLO, WORLD",first\n"a.flac",,second\n')
    items, problems = list_corpus(csv_file)
    assert [(u.id, u.text) for u in items] == [("first", "HELLO, WORLD"), ("second", None)]
    assert problems == []
    csv_file.write_text("a.flac,text,extra\n")
    with pytest.raises(CorpusError, match="expected 'path' or 'path,text'"):
        list_corpus(csv_file)


def test_json_manifests(tmp_path):
    shutil.copy(FLAC, tmp_path / "a.flac")
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"audio": "a.flac", "text": "x", "id": "u1"}) + "\n{oops\n"
                     + json.dumps({"path": "a.flac", "text": "y", "id": "u1"}) + "\n"
                     + json.dumps({"path": "a.flac", "text": 3}) + "\n"
                     + json.dumps(["a.flac"]) + "\n" + json.dumps({"path": "a.flac"}) + "\n"
                     + json.dumps("a.flac") + "\n")
    items, problems = list_corpus(jsonl)
    assert [(u.id, u.text) for u in items] == [("a", None), ("u1", "x")]
    assert "m.jsonl:2: invalid JSON" in problems[0]
    assert "m.jsonl:3: duplicate utterance id 'u1'" in problems[1]
    assert "m.jsonl:4: 'text' must be a string" in problems[2]
    assert "m.jsonl:5: expected a JSON object" in problems[3]
    assert "m.jsonl:7: expected a JSON object" in problems[4]
    assert len(problems) == 5
    array = tmp_path / "m.json"
    array.write_text(json.dumps([{"path": "a.flac", "text": "HI", "id": 7}, {"text": "no path"}]))
    items, problems = list_corpus(array)
    assert items == [Utterance("7", tmp_path / "a.flac", "HI")]
    assert problems == [f"{array}: item 2: expected a string 'path' (or 'audio') -- skipped"]
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps({"path": "a.flac", "text": "HI"}) + "\n")
    assert list_corpus(lines).utterances == [Utterance("a", tmp_path / "a.flac", "HI")]


def test_several_sources_and_duplicate_ids(tmp_path):
    _wav(tmp_path / "one" / "x.wav")
    _wav(tmp_path / "two" / "x.wav")
    _wav(tmp_path / "two" / "y.wav")
    items, problems = list_corpus([tmp_path / "one", str(tmp_path / "two"), SPEECH])
    assert [u.id for u in items][:3] == ["101-1-0000", "102-1-0000", "103-1-0000"]
    assert [u.path for u in items][-2:] == [tmp_path / "one" / "x.wav", tmp_path / "two" / "y.wav"]
    assert problems == [f"{tmp_path / 'two' / 'x.wav'}: duplicate utterance id 'x' (also "
                        f"{tmp_path / 'one' / 'x.wav'}) -- skipped"]


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(CorpusError, match="missing: no such file or folder"):
        list_corpus(tmp_path / "missing")
    (tmp_path / "x.lst").write_text("a.wav\n")
    with pytest.raises(CorpusError, match="expected a folder, an audio file or a manifest"):
        list_corpus(tmp_path / "x.lst")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no usable utterance"):
        list_corpus(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(ValueError, match=r"no usable utterance \(no audio file found\)"):
        list_corpus(tmp_path / "empty")
    with pytest.raises(CorpusError, match=r"with a transcript found\): .*a.wav: no transcript"):
        list_corpus(_wav(tmp_path / "a.wav"), require_text=True)
    (tmp_path / "bad.tsv").write_bytes(b"\xff\xfe\x00a.wav\n")
    with pytest.raises(CorpusError, match="bad.tsv: not a UTF-8 text manifest"):
        list_corpus(tmp_path / "bad.tsv")
    (tmp_path / "head.tsv").write_text("id\ttext\nu\thello\n")
    with pytest.raises(CorpusError, match="no 'path' \\(or 'audio'\\) column"):
        list_corpus(tmp_path / "head.tsv")
    (tmp_path / "gone.tsv").write_text("gone.wav\tTEXT\n")
    with pytest.raises(CorpusError, match="utterance.*gone.tsv:1: .*gone.wav: no such file"):
        list_corpus(tmp_path / "gone.tsv")
    (tmp_path / "blank.tsv").write_text("\n# only a comment\n")
    with pytest.raises(CorpusError, match=r"blank.tsv: no usable utterance \(no audio file fo"):
        list_corpus(tmp_path / "blank.tsv")
    with pytest.raises(CorpusError, match="no corpus source"):
        list_corpus([])
    # every message is one line
    for source in (tmp_path / "missing", tmp_path / "empty", tmp_path / "gone.tsv"):
        with pytest.raises(CorpusError) as err:
            list_corpus(source)
        assert "\n" not in str(err.value)
