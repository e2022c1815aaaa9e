import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec.losses import (
    MelSpectrogram,
    MultiScaleMelLoss,
    d_axis_distill_loss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    t_axis_distill_loss,
    time_l1_loss,
)
from keras_dmcodec.utils.testing import run_layer_test


def _np(x):
    return ops.convert_to_numpy(x)


def test_time_l1_crops_to_common_length():
    a = np.zeros((2, 10), "float32")
    b = np.ones((2, 12), "float32")
    assert float(_np(time_l1_loss(a, b))) == 1.0


def test_mel_matches_numpy_reference():
    import librosa

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4800)).astype("float32") * 0.1
    n_fft, hop = 512, 120
    ours = _np(MelSpectrogram(16000, n_fft, hop, n_fft)(x))[0]
    # Independent computation: numpy reflect pad, framed periodic-Hann FFT, librosa filters.
    pad = (n_fft - hop) // 2
    y = np.pad(x[0].astype(np.float64), (pad, pad), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([y[i : i + n_fft] * window for i in range(0, len(y) - n_fft + 1, hop)])
    mag = np.abs(np.fft.rfft(frames, axis=1)) + 1e-9
    fb = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=80, htk=True, norm="slaney")
    expected = np.log(np.maximum(mag @ fb.T, 1e-5))
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_multi_scale_mel_loss_scales_and_weights():
    loss = MultiScaleMelLoss()
    assert [m.n_fft for m in loss.mels] == [1024, 512, 256, 128]
    assert [m.hop_length for m in loss.mels] == [240, 120, 60, 30]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 4800)).astype("float32") * 0.1
    b = a + rng.normal(size=a.shape).astype("float32") * 0.01
    parts = [float(_np(v)) for v in loss.scale_losses(a, b)]
    total = float(_np(loss(a, b)))
    assert total == pytest.approx(45 * parts[0] + sum(parts[1:]), rel=1e-5)
    assert float(_np(loss(a, a))) == 0.0


def test_lsgan_and_feature_matching_by_hand():
    real = [(np.array([[1.0, 0.5]], "float32"), [np.ones((1, 3), "float32")])]
    fake = [(np.array([[0.0, 0.5]], "float32"), [np.zeros((1, 3), "float32")])]
    # D: mean((1 - [1, .5])^2) + mean([0, .5]^2) = 0.125 + 0.125
    assert float(_np(discriminator_loss(real, fake))) == pytest.approx(0.25)
    # G: mean((1 - [0, .5])^2) = (1 + .25) / 2
    assert float(_np(generator_adversarial_loss(fake))) == pytest.approx(0.625)
    assert float(_np(feature_matching_loss(real, fake))) == pytest.approx(2.0)


def test_d_axis_distill_loss_by_hand():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(2, 5, 3)).astype("float32")
    t = rng.normal(size=(2, 7, 3)).astype("float32")
    tc = t[:, :5]
    cos = (f * tc).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(tc, axis=1))
    expected = -np.mean(np.log(1 / (1 + np.exp(-cos))))
    assert float(_np(d_axis_distill_loss(f, t))) == pytest.approx(expected, rel=1e-5)
    # identical features: cos = 1 -> -log(sigmoid(1))
    assert float(_np(d_axis_distill_loss(f, f))) == pytest.approx(-math.log(1 / (1 + math.e**-1)),
                                                                   rel=1e-5)
    cos_t = (f * tc).sum(-1) / (np.linalg.norm(f, axis=-1) * np.linalg.norm(tc, axis=-1))
    expected_t = np.abs(f - tc).mean() - 2.0 * np.mean(np.log(1 / (1 + np.exp(-cos_t))))
    assert float(_np(t_axis_distill_loss(f, t, lambda_sim=2.0))) == pytest.approx(expected_t,
                                                                                  rel=1e-5)


def _np_d_axis(f, t):
    cos = (f * t).sum(1) / np.maximum(np.linalg.norm(f, axis=1) * np.linalg.norm(t, axis=1), 1e-8)
    return -np.mean(np.log(1 / (1 + np.exp(-cos))))


def test_masked_distill_losses_match_numpy():
    rng = np.random.default_rng(4)
    f = rng.normal(size=(2, 6, 3)).astype("float32")
    t = rng.normal(size=(2, 8, 3)).astype("float32")
    mask = np.ones((2, 8), "float32")
    mask[0, 4:] = 0  # utterance 0 has 4 real teacher frames
    fm, tm = f * mask[:, :6, None], t[:, :6] * mask[:, :6, None]
    assert float(_np(d_axis_distill_loss(f, t, mask=mask))) == pytest.approx(
        _np_d_axis(fm, tm), rel=1e-5)
    # Masked frames are ignored: changing them does not change the loss.
    f2 = f.copy()
    f2[0, 4:] = 100.0
    assert float(_np(d_axis_distill_loss(f2, t, mask=mask))) == pytest.approx(
        float(_np(d_axis_distill_loss(f, t, mask=mask))), rel=1e-6)
    # t_axis: both terms averaged over the 4 + 6 valid frames only.
    valid = mask[:, :6].astype(bool)
    l1 = np.abs(f - t[:, :6]).mean(-1)[valid].mean()
    cos = (f * t[:, :6]).sum(-1) / (np.linalg.norm(f, axis=-1) * np.linalg.norm(t[:, :6], axis=-1))
    sim = np.log(1 / (1 + np.exp(-cos)))[valid].mean()
    assert float(_np(t_axis_distill_loss(f, t, 0.5, mask=mask))) == pytest.approx(
        l1 - 0.5 * sim, rel=1e-5)


def test_frame0_defect_flag_reproduces_the_reference():
    """The released reference collates targets as (B, 1, T, D): only frame 0 is compared."""
    rng = np.random.default_rng(5)
    f = rng.normal(size=(2, 6, 3)).astype("float32")
    t = rng.normal(size=(2, 6, 3)).astype("float32")
    assert float(_np(d_axis_distill_loss(f, t, frame0_only=True))) == pytest.approx(
        _np_d_axis(f[:, :1], t[:, :1]), rel=1e-5)
    assert float(_np(d_axis_distill_loss(f, t))) == pytest.approx(_np_d_axis(f, t), rel=1e-5)


def test_mel_serialization():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(2, 1600)).astype("float32") * 0.1
    b = a + rng.normal(size=a.shape).astype("float32") * 0.01
    _, value = run_layer_test(MultiScaleMelLoss, dict(weights=(2.0, 1.0)),
                              dict(audio=a, audio_hat=b), (), expected_num_trainable_weights=0)
    assert float(_np(value)) > 0.0
    run_layer_test(MelSpectrogram, dict(sample_rate=16000, n_fft=256, hop_length=64,
                                        win_length=256), a, (2, 25, 80))


def _input_gradient(loss_fn, x):
    """d loss / d x on the current backend (numpy in, numpy out)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: loss_fn(v))(x))
    if backend == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = loss_fn(v)
        return tape.gradient(loss, v).numpy()
    import torch

    v = torch.tensor(x, requires_grad=True)
    loss_fn(v).backward()
    return v.grad.numpy()


@pytest.mark.parametrize("distill_loss", [d_axis_distill_loss, t_axis_distill_loss])
def test_fully_masked_utterance_has_finite_gradients(distill_loss):
    """A crop whose teacher frames are all masked (silence under word alignment) made the
    cosine's sqrt(0) give NaN gradients, which stopped the first default-model run."""
    rng = np.random.default_rng(6)
    f = rng.normal(size=(2, 6, 3)).astype("float32")
    t = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.ones((2, 6), "float32")
    mask[1] = 0.0
    grad = _input_gradient(lambda v: distill_loss(v, t, mask=mask), f)
    assert np.all(np.isfinite(grad))
    assert np.all(grad[1] == 0.0) and np.any(grad[0] != 0.0)
    zero = np.zeros_like(f)  # an all-zero student series too
    assert np.all(np.isfinite(_input_gradient(lambda v: distill_loss(v, t, mask=mask), zero)))
