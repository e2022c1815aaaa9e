import keras
import numpy as np
import pytest

from keras_dmcodec.teachers.transcripts import (
    Transcript,
    Word,
    align_words,
    normalize_word,
)

once = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="backend-independent; runs once")


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

