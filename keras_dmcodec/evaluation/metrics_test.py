import numpy as np
import pytest

from keras_dmcodec.audio import bundled_sample, load_audio
from keras_dmcodec.evaluation import mel_distance, si_snr, snr, stoi


@pytest.fixture(scope="module")
def speech():
    path, _ = bundled_sample()
    return load_audio(path)[0]


def test_identical_signals(speech):
    assert stoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert mel_distance(speech, speech) == 0.0
    assert si_snr(speech, speech) > 100
    assert snr(speech, speech) > 100


def test_known_noise_level(speech):
    rng = np.random.default_rng(0)
    noise = rng.normal(size=speech.shape)
    noise *= np.sqrt(np.sum(speech**2) / np.sum(noise**2)) / 10.0  # 20 dB
    assert snr(speech, speech + noise) == pytest.approx(20.0, abs=0.05)
    assert si_snr(speech, 0.5 * speech) > 100  # scale invariant
    assert stoi(speech, speech + noise) < 1.0
    assert mel_distance(speech, speech + noise) > 0.0


def test_shape_mismatch_is_an_error(speech):
    with pytest.raises(ValueError, match="same shape"):
        snr(speech, speech[:-1])
