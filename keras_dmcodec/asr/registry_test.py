"""ASR specs: one syntax, one-line errors for the others, plug-in kinds."""

import keras
import numpy as np
import pytest

from keras_dmcodec.asr import ACCEPTED_SPECS, Transcriber, make_asr, register_asr
from keras_dmcodec.teachers.transcripts import Transcript

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="spec parsing is backend-independent; runs once")


def test_other_spellings_name_the_accepted_specs(tmp_path):
    for spec in ("faster-whisper:/models/tiny", "wav2vec2:/models/w2v", "whisper-tiny.en",
                 "kaldi:/nowhere", "ctc", ""):
        with pytest.raises(ValueError, match="unknown ASR") as error:
            make_asr(spec)
        assert ACCEPTED_SPECS in str(error.value) and "\n" not in str(error.value)
    for spec in ("whisper:", "ctc:"):
        with pytest.raises(ValueError, match="a directory is needed"):
            make_asr(spec)
    with pytest.raises(ValueError, match="no model.bin"):
        make_asr(f"whisper:{tmp_path}")
    with pytest.raises(ValueError, match="missing config.json"):
        make_asr(f"ctc:{tmp_path}")
    with pytest.raises(ValueError, match="model directory not found"):
        make_asr(f"ctc:{tmp_path / 'nope'}")


def test_plugins_and_instances():
    class Echo(Transcriber):
        name = "echo"

        def __init__(self, text):
            self.text = text

        def recognize(self, audio, word_timestamps=False):
            return Transcript.from_text(self.text, source="echo")

    register_asr("echo", Echo)
    echo = make_asr("echo:hello world")
    assert echo.transcribe(np.zeros(100, np.float32), 8000).text == "hello world"
    assert make_asr(echo) is echo
    with pytest.raises(ValueError, match="cannot register"):
        register_asr("ctc", Echo)
    with pytest.raises(TypeError, match="callable"):
        register_asr("other", None)
    with pytest.raises(NotImplementedError, match="recognize"):
        Transcriber().transcribe(np.zeros(10, np.float32))
