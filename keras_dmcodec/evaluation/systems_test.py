"""Codec systems: reference rows and `load_codec_system` (backend-independent: runs once)."""

import keras
import numpy as np
import pytest

from keras_dmcodec import presets
from keras_dmcodec.audio import bundled_sample, load_audio
from keras_dmcodec.convert.reference import REFERENCE_BASE_CONFIG
from keras_dmcodec.evaluation.systems import (
    OriginalAudio,
    SpeechTokenizerReference,
    load_codec_system,
)

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

TINY_CODEC = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
                  lstm_layers=1, kmeans_iters=3)


def test_speechtokenizer_reference_row():
    audio = load_audio(bundled_sample()[0])[0][:8000]
    # The base config (103 M parameters) is what `--reference speechtokenizer` runs; a narrow
    # one keeps this test fast and exercises the same code.
    config = dict(REFERENCE_BASE_CONFIG, n_filters=4, dimension=32, semantic_dimension=16,
                  codebook_size=64, lstm_layers=1)
    system = SpeechTokenizerReference(audio, seed=0, config=config)
    assert "RANDOM weights" in system.label  # never mistaken for the official model
    codes, audio_hat = system.reconstruct(audio, 2)
    assert codes.shape == (2, 25) and codes.dtype == np.int32
    assert 0 <= codes.min() and codes.max() < 64
    assert audio_hat.shape == audio.shape and np.all(np.isfinite(audio_hat))
    assert system.bitrate(2) == 2 * 6 * 50.0
    assert len(np.unique(codes[0])) > 1  # codebooks filled from the latents: codes spread


def test_original_audio_row():
    original = OriginalAudio()
    codes, audio = original.reconstruct(np.ones(4, np.float32), None)
    assert codes is None and audio.tolist() == [1, 1, 1, 1]


def test_random_weights_only_when_asked(monkeypatch, tmp_path):
    monkeypatch.setitem(presets.PRESETS, "tiny_test", {"description": "", "config": TINY_CODEC})
    with pytest.raises(presets.PresetError, match="no trained weights ship.*random:tiny_test"):
        load_codec_system("tiny_test")  # no longer silently random
    audio = load_audio(bundled_sample()[0])[0][:8000]
    system = load_codec_system("random:tiny_test", init_audio=audio)
    assert "RANDOM weights" in system.label and system.key == "tiny_test_random"
    assert system.fingerprint.endswith("-pad0")  # each utterance at its own length
    system.model.save_to_preset(tmp_path / "my_codec")
    trained = load_codec_system(str(tmp_path / "my_codec"), bucket_seconds=1.0)
    assert trained.label == trained.key == "my_codec" and "RANDOM" not in trained.label
    assert trained.fingerprint == system.fingerprint.replace("-pad0", "-pad16000")
