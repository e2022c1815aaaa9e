"""WER / WIL and the text normaliser: backend-independent (jiwer, transformers), so run once."""

import jiwer
import keras
import pytest

from keras_dmcodec.asr import error_rates, normalize_text

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def test_normalisation_matches_whisper_rules():
    assert normalize_text("THE QUICK BROWN FOX.") == "the quick brown fox"
    assert normalize_text("Mr. Smith's cat, isn't it?") == "mister smith is cat is not it"
    assert normalize_text("twenty five  dogs!") == "25 dogs"
    assert normalize_text("  Hello,   world  ") == "hello world"


def test_error_rates_match_an_independent_jiwer_computation():
    refs = ["THE CAT SAT ON THE MAT", "A LARGE RED BOAT"]
    hyps = ["The cat sat on a mat.", "a large red boat sailed"]
    rates = error_rates(refs, hyps)
    plain_refs = ["the cat sat on the mat", "a large red boat"]
    plain_hyps = ["the cat sat on a mat", "a large red boat sailed"]
    assert rates["wer"] == pytest.approx(jiwer.wer(plain_refs, plain_hyps))
    assert rates["wil"] == pytest.approx(jiwer.wil(plain_refs, plain_hyps))
    # by hand: 1 substitution + 1 insertion over 10 reference words
    assert rates["wer"] == pytest.approx(0.2)
    assert (rates["substitutions"], rates["insertions"], rates["words"]) == (1, 1, 10)
    # WIL = 1 - H^2 / (N_ref * N_hyp) with H = 9 hits, 10 reference and 11 hypothesis words
    assert rates["wil"] == pytest.approx(1 - 81 / 110)
    assert error_rates("HELLO", "")["wer"] == 1.0
    with pytest.raises(ValueError, match="empty after normalisation"):
        error_rates(["uh [laughs]"], ["x"])
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rates(["a", "b"], ["a"])
