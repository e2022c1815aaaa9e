"""HubertTeacher: features per layer, input normalisation, and one-line errors for bad audio."""

import keras
import numpy as np
import pytest

from keras_dmcodec.teachers.hubert import HubertTeacher, normalize_audio
from keras_dmcodec.teachers.hubert.testing import ATOL, random_audio

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

backend_independent = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                         reason="backend-independent; runs once")


def test_teacher_features_layers_and_frames(hf_models):
    reference = hf_models["hubert_stable"]
    teacher = HubertTeacher.from_pretrained(reference["path"], do_normalize=False)
    assert (teacher.name, teacher.sample_rate, teacher.frame_rate) == ("hubert_stable", 16000,
                                                                         50.0)
    assert (teacher.dimension, teacher.num_hidden_states) == (32, 3)
    audio = reference["input"]
    hidden = reference["hidden"]
    assert teacher.num_frames(audio.shape[1]) == hidden[0].shape[1] == 24
    np.testing.assert_allclose(teacher.features(audio), np.mean(hidden, axis=0), atol=ATOL)
    np.testing.assert_allclose(teacher.features(audio, layer=-1), hidden[-1], atol=ATOL)
    np.testing.assert_allclose(teacher.features(audio, layer=0), hidden[0], atol=ATOL)
    assert teacher.features(audio).dtype == np.float32
    with pytest.raises(ValueError, match="out of range"):
        teacher.features(audio, layer=3)
    with pytest.raises(ValueError, match="'avg' or an int"):
        teacher.features(audio, layer="last")


@backend_independent
def test_normalisation_follows_the_directory(hf_models):
    # No preprocessor_config.json: fairseq's rule (normalise only layer-norm models).
    assert not HubertTeacher.from_pretrained(hf_models["hubert_base"]["path"]).do_normalize
    assert HubertTeacher.from_pretrained(hf_models["hubert_stable"]["path"]).do_normalize
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
    audio = random_audio()
    expected = extractor(list(audio), sampling_rate=16000, return_tensors="np").input_values
    np.testing.assert_allclose(normalize_audio(audio), expected, atol=1e-5)


@backend_independent
def test_bad_audio_is_a_one_line_error(hf_models):
    teacher = HubertTeacher.from_pretrained(hf_models["hubert_base"]["path"])
    bad = {
        "floating point": np.zeros((1, 800), np.int16),
        "empty": np.zeros((1, 0), np.float32),
        "at least 400": np.zeros((1, 399), np.float32),
        "NaN": np.full((1, 800), np.nan, np.float32),
        r"\[batch, samples\]": np.zeros((1, 1, 800), np.float32),
    }
    for message, audio in bad.items():
        with pytest.raises(ValueError, match=message) as error:
            teacher.features(audio)
        assert "\n" not in str(error.value)
