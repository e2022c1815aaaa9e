"""ASR judge and WER/WIL: backend-independent (numpy, jiwer, CTranslate2), so run once."""

from pathlib import Path

import jiwer
import keras
import numpy as np
import pytest

from keras_dmcodec.audio import load_audio
from keras_dmcodec.evaluation.asr import (
    ASRJudge,
    error_rates,
    make_judge,
    normalize_text,
    register_judge,
)

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"


def _utterance(utt_id):
    speaker, chapter, _ = utt_id.split("-")
    folder = SPEECH / speaker / chapter
    lines = (folder / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
    text = dict(line.split(" ", 1) for line in lines)[utt_id]
    return load_audio(folder / f"{utt_id}.flac", sample_rate=16000)[0], text


@pytest.fixture(scope="module")
def judge():
    return make_judge()  # loaded once per module: about a second


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


def test_whisper_judge_on_the_original_recordings(judge):
    """The judge's own WER on the TTS originals (measured here: 0 % on these three voices)."""
    ids = ["101-1-0000", "104-1-0000", "106-1-0000"]  # flite slt, rms, kal16
    refs, hyps = [], []
    for utt_id in ids:
        audio, text = _utterance(utt_id)
        refs.append(text)
        hyps.append(judge.transcribe(audio, 16000))
    rates = error_rates(refs, hyps)
    assert rates["wer"] <= 0.05, hyps
    assert judge.name == "whisper-tiny.en"
    # resampled input gives the same words
    audio, text = _utterance("106-1-0000")
    import librosa

    audio_8k = librosa.resample(audio, orig_sr=16000, target_sr=22050)
    assert error_rates(text, judge.transcribe(audio_8k, 22050))["wer"] <= 0.15


def test_judge_input_errors_and_plugins(judge, tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        judge.transcribe(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(ValueError, match="unknown ASR judge"):
        make_judge("kaldi:/nowhere")
    with pytest.raises(ValueError, match="no model.bin"):
        make_judge(f"faster-whisper:{tmp_path}")
    with pytest.raises(ValueError, match="no config.json"):
        make_judge(f"wav2vec2:{tmp_path}")

    class Echo(ASRJudge):
        name = "echo"

        def __init__(self, text):
            self.text = text

        def _transcribe(self, audio):
            return self.text

    register_judge("echo", Echo)
    assert make_judge("echo:hello world").transcribe(np.zeros(100, np.float32), 8000) == \
        "hello world"
