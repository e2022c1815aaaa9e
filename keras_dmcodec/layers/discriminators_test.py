import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.discriminators import (
    DiscriminatorConv,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
    PeriodDiscriminator,
    STFTDiscriminator,
)
from keras_dmcodec.utils.testing import run_layer_test


def _np(x):
    return ops.convert_to_numpy(x)


def test_grouped_conv_per_group_split_equals_native(monkeypatch):
    conv = DiscriminatorConv(8, 5, strides=2, padding=2, groups=4, norm="none")
    x = np.random.default_rng(0).normal(size=(2, 30, 8)).astype("float32")
    monkeypatch.setattr(DiscriminatorConv, "SPLIT_GROUP_BACKENDS", ())
    native = _np(conv(x))
    monkeypatch.setattr(DiscriminatorConv, "SPLIT_GROUP_BACKENDS", ("tensorflow", "jax", "torch"))
    np.testing.assert_allclose(_np(conv(x)), native, atol=1e-5)
    # output length as torch Conv1d(k=5, s=2, padding=2)
    assert native.shape == (2, (30 + 4 - 5) // 2 + 1, 8)


def test_spectral_norm_converges_to_unit_norm():
    conv = DiscriminatorConv(6, 3, norm="spectral_norm", seed=0)
    x = np.random.default_rng(1).normal(size=(1, 10, 4)).astype("float32")
    for _ in range(50):
        conv(x, training=True)
    matrix = _np(conv._kernel(False)).reshape(-1, 6)
    assert np.linalg.svd(matrix, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-2)


def test_weight_norm_gain_per_output_channel():
    conv = DiscriminatorConv(3, (5, 1), rank=2)
    conv.build((None, None, None, 2))
    v = np.random.default_rng(2).normal(size=(5, 1, 2, 3)).astype("float32")
    conv.kernel.assign(v)
    conv.kernel_g.assign(np.array([1.0, 2.0, 3.0], "float32"))
    k = _np(conv._kernel(False))
    np.testing.assert_allclose(np.sqrt((k**2).sum(axis=(0, 1, 2))), [1.0, 2.0, 3.0], rtol=1e-5)


def test_reference_layouts_and_output_structure():
    # The full-size discriminators (70 M weights) are built for real, but called on a symbolic
    # input: Keras traces the same call code to get the shapes, without the minute of
    # op-by-op compilation an eager full-size forward costs under JAX. Their numerics are
    # checked at small size in the other tests.
    audio = keras.KerasTensor((1, 3200))
    mpd = MultiPeriodDiscriminator()
    outs = mpd(audio)
    assert [d.period for d in mpd.discriminators] == [2, 3, 5, 7, 11]
    assert all(len(fmaps) == 6 for _, fmaps in outs)  # 5 convs + post
    # period 7 pads 3200 -> 3206 (reflect) and folds to [458, 7]
    assert outs[3][1][0].shape[1:3] == (153, 7)
    msd = MultiScaleDiscriminator()
    outs = msd(audio)
    assert [d.norm for d in msd.discriminators] == ["spectral_norm", "weight_norm", "weight_norm"]
    assert [fm[0].shape[1] for _, fm in outs] == [3200, 1601, 801]  # AvgPool1d(4, 2, pad 2)
    stft = MultiScaleSTFTDiscriminator()
    outs = stft(audio)
    assert [d.n_fft for d in stft.discriminators] == [1024, 2048, 512, 256, 128]
    # 1024/256 without centring: 9 frames, 513 bins -> stride 2 three times on frequency
    logits, fmaps = outs[0]
    assert fmaps[0].shape == (1, 9, 513, 32) and logits.shape == (1, 9, 65, 1)
    assert stft.discriminators[0].convs[0].norm == "none"


def test_period_discriminator_needs_static_length_and_serializes():
    audio = np.random.default_rng(4).normal(size=(1, 320)).astype("float32") * 0.1
    # 320 samples pad to 321 and fold to [107, 3]; stride 3, then 1 for the last conv and the
    # post conv; the logits are flattened as the reference's torch.flatten(x, 1, -1).
    run_layer_test(PeriodDiscriminator, dict(period=3, channels=(4, 8)), audio,
                   ((1, 108), [(1, 36, 3, 4), (1, 36, 3, 8), (1, 36, 3, 1)]))
    # 320 samples, n_fft 64, hop 16: 17 frames of 33 bins.
    run_layer_test(STFTDiscriminator, dict(filters=4, n_fft=64, hop_length=16), audio, None)


def test_every_discriminator_weight_is_unique_and_gets_a_gradient():
    """No orphan variables: each trainable weight is used (and so receives a gradient)."""
    import keras as _keras

    from keras_dmcodec.layers.discriminators import (
        MultiPeriodDiscriminator,
        MultiScaleDiscriminator,
        MultiScaleSTFTDiscriminator,
    )

    for disc in (MultiPeriodDiscriminator(periods=[2, 3], channels=[4, 8]),
                 MultiScaleDiscriminator(num_scales=2, channels=[8] * 7),
                 MultiScaleSTFTDiscriminator(filters=4, n_ffts=[256, 128],
                                             hop_lengths=[64, 32])):
        disc(_keras.ops.zeros((1, 1600)))
        paths = [v.path for v in disc.trainable_variables]
        assert len(paths) == len(set(paths)), sorted(p for p in paths if paths.count(p) > 1)
        per_conv = {p.rsplit("/", 1)[0] for p in paths}
        # weight norm: kernel_v, kernel_g, bias; spectral norm / none: kernel, bias
        assert len(paths) <= 3 * len(per_conv)
