import keras
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


# The metrics below are numpy/C libraries, independent of the Keras backend: run them once.
once = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="backend-independent; runs once")


@once
def test_si_snr_closed_form_for_scaled_and_noised_signal(speech):
    """SI-SNR(x, a x + n) with n orthogonal to x is 10 log10(a^2 |x|^2 / |n|^2)."""
    from keras_dmcodec.evaluation import si_snr

    x = speech - speech.mean()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=x.shape)
    noise -= noise.mean()
    noise -= np.dot(noise, x) / np.dot(x, x) * x  # orthogonal to x (and zero mean)
    noise *= 0.05 * np.linalg.norm(x) / np.linalg.norm(noise)
    scale = 0.3
    expected = 10 * np.log10(scale**2 * np.sum(x**2) / np.sum(noise**2))
    assert si_snr(x, scale * x + noise) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(20 * np.log10(0.3 / 0.05), abs=1e-4)


@once
def test_pesq_wideband(speech):
    from keras_dmcodec.evaluation import pesq_wb

    assert pesq_wb(speech, speech) > 4.5  # P.862.2 maps a perfect match to about 4.64
    noisy = speech + 0.05 * np.random.default_rng(0).normal(size=speech.shape)
    assert pesq_wb(speech, noisy) < 2.0
    assert np.isnan(pesq_wb(np.zeros(16000), np.zeros(16000)))  # no speech to score


@once
def test_visqol_identical_signals_score_its_maximum(speech):
    from keras_dmcodec.evaluation import ViSQOLSpeech

    clip = speech[:32000]
    noisy = clip + 0.01 * np.random.default_rng(0).normal(size=clip.shape)
    polynomial = ViSQOLSpeech("polynomial")
    same = polynomial(clip, clip)
    assert same["moslqo"] == pytest.approx(5.0, abs=1e-6)
    assert same["vnsim"] == pytest.approx(1.0, abs=1e-6)
    assert polynomial(clip, noisy)["moslqo"] < 4.8
    lattice = ViSQOLSpeech("lattice")  # ViSQOL's default speech mapping, tops out near 4.2-4.4
    top = lattice(clip, clip)["moslqo"]
    assert 4.0 < top <= 5.0
    assert lattice(clip, noisy)["moslqo"] < top - 0.5
    with pytest.raises(ValueError, match="mapper"):
        ViSQOLSpeech("cubic")


@once
def test_codebook_statistics():
    from keras_dmcodec.evaluation import (
        bitrate,
        code_histograms,
        codebook_perplexity,
        codebook_usage,
    )

    size = 16
    uniform = np.tile(np.arange(size), (3, 5))  # 3 quantizers, every code 5 times
    counts = code_histograms(uniform, size)
    assert counts.shape == (3, size) and (counts == 5).all()
    np.testing.assert_allclose(codebook_perplexity(counts), [size] * 3)
    np.testing.assert_allclose(codebook_usage(counts), [1.0] * 3)
    one_code = code_histograms(np.zeros((2, 40), int), size)
    np.testing.assert_allclose(codebook_perplexity(one_code), [1.0, 1.0])
    np.testing.assert_allclose(codebook_usage(one_code), [1 / size] * 2)
    two_codes = code_histograms(np.array([[0, 0, 0, 1]]), size)  # p = 3/4, 1/4
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    np.testing.assert_allclose(codebook_perplexity(two_codes), [expected])
    assert bitrate(8, 1024, 50.0) == 4000.0
    with pytest.raises(ValueError, match="out of range"):
        code_histograms(np.array([[size]]), size)
