import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.conv import (
    NormConv1D,
    NormConv1DTranspose,
    extra_padding_for_conv1d,
    reflect_pad_time,
    variance_preserving_init,
)
from keras_dmcodec.utils.testing import run_layer_test, stream_in_chunks


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("length", [1, 2, 7, 31, 320, 321])
@pytest.mark.parametrize("stride", [1, 2, 5, 8])
def test_strided_conv_gives_ceil_frames(length, stride):
    conv = NormConv1D(3, kernel_size=2 * stride, strides=stride)
    y = conv(np.random.randn(2, length, 4).astype("float32"))
    assert tuple(y.shape) == (2, -(-length // stride), 3)
    assert tuple(conv.compute_output_shape((2, length, 4))) == tuple(y.shape)


def test_extra_padding_matches_tensor_formula():
    for length in range(1, 60):
        for k, s in [(4, 2), (10, 5), (16, 8), (7, 1)]:
            total = (k - 1) - (s - 1)
            static = extra_padding_for_conv1d(length, k, s, total)
            dynamic = extra_padding_for_conv1d(ops.convert_to_tensor(length), k, s, total)
            assert static == int(_np(dynamic))


def test_weight_norm_kernel_is_g_times_v_over_norm():
    conv = NormConv1D(5, kernel_size=3)
    conv.build((None, None, 4))
    v = np.random.randn(3, 4, 5).astype("float32")
    g = np.random.rand(5).astype("float32") + 0.5
    conv.kernel_v.assign(v)
    conv.kernel_g.assign(g)
    expected = v * g / np.sqrt((v**2).sum(axis=(0, 1)))
    np.testing.assert_allclose(_np(conv.effective_kernel()), expected, rtol=1e-6)


def test_weight_norm_starts_equal_to_v():
    conv = NormConv1D(5, kernel_size=3)
    conv.build((None, None, 4))
    np.testing.assert_allclose(_np(conv.effective_kernel()), _np(conv.kernel_v), rtol=1e-5)


def test_conv_matches_numpy_reference_with_reflect_padding():
    conv = NormConv1D(2, kernel_size=3, dilation_rate=2, norm="none")
    x = np.random.randn(1, 9, 3).astype("float32")
    y = _np(conv(x))
    k = _np(conv.kernel)
    b = _np(conv.bias)
    # total padding (3 - 1) * 2 = 4 -> 2 left, 2 right, reflect.
    xp = np.pad(x, [(0, 0), (2, 2), (0, 0)], mode="reflect")
    expected = np.stack(
        [sum(xp[0, t + 2 * j] @ k[j] for j in range(3)) + b for t in range(9)]
    )[None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_reflect_pad_short_signal_like_reference():
    # Reference pad1d: zero-extend first when the signal is not longer than the pad.
    x = np.arange(1, 3, dtype="float32").reshape(1, 2, 1)
    y = _np(reflect_pad_time(ops.convert_to_tensor(x), 3, 3))[0, :, 0]
    ext = np.array([1, 2, 0, 0], dtype="float32")
    expected = np.pad(ext, (3, 3), mode="reflect")[:-2]
    np.testing.assert_array_equal(y, expected)


def test_causal_conv_ignores_future():
    conv = NormConv1D(4, kernel_size=7, causal=True)
    x = np.random.randn(1, 50, 2).astype("float32")
    x2 = x.copy()
    x2[:, 30:] = np.random.randn(1, 20, 2)
    y, y2 = _np(conv(x)), _np(conv(x2))
    np.testing.assert_allclose(y[:, :30], y2[:, :30], atol=1e-6)
    assert not np.allclose(y[:, 30:], y2[:, 30:])


@pytest.mark.parametrize("stride", [2, 4, 5, 8])
def test_transposed_conv_length_and_weight_norm_axis(stride):
    up = NormConv1DTranspose(3, kernel_size=2 * stride, strides=stride)
    y = up(np.random.randn(2, 7, 6).astype("float32"))
    assert tuple(y.shape) == (2, 7 * stride, 3)
    assert tuple(up.kernel_g.shape) == (6,)  # one gain per input channel, as torch


def test_transposed_conv_matches_numpy():
    up = NormConv1DTranspose(2, kernel_size=4, strides=2, norm="none")
    x = np.random.randn(1, 3, 3).astype("float32")
    y = _np(up(x))[0]
    k = _np(up.kernel)  # (k, out, in)
    full = np.zeros(((3 - 1) * 2 + 4, 2), "float32")
    for t in range(3):
        for j in range(4):
            full[t * 2 + j] += k[j] @ x[0, t]
    full += _np(up.bias)
    # trim k - s = 2: right 1, left 1
    np.testing.assert_allclose(y, full[1:-1], rtol=1e-5, atol=1e-5)


def test_serialization_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 9, 4)).astype("float32")
    run_layer_test(NormConv1D, dict(filters=3, kernel_size=5, strides=2, dilation_rate=1,
                                    causal=True, pad_mode="constant"),
                   x, (2, 5, 3), expected_num_trainable_weights=3, saving_directory=tmp_path)
    run_layer_test(NormConv1DTranspose, dict(filters=3, kernel_size=8, strides=4, causal=True,
                                             trim_right_ratio=0.5),
                   x, (2, 36, 3), expected_num_trainable_weights=3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        NormConv1D(3, 3, norm="batch_norm")
    with pytest.raises(ValueError, match="pad_mode"):
        NormConv1D(3, 3, pad_mode="wrap")
    with pytest.raises(ValueError, match="trim_right_ratio"):
        NormConv1DTranspose(3, 4, strides=2, trim_right_ratio=0.5)


def test_variance_preserving_init_keeps_the_signal_in_the_latents():
    from keras_dmcodec import DMCodec

    audio = (np.random.default_rng(0).standard_normal((2, 16000)) * 0.07).astype("float32")

    def latents(codec):
        x = _np(codec.encode_latents(audio))
        varying = np.linalg.norm(x - x.mean(axis=(0, 1)), axis=-1).mean()
        return varying, np.linalg.norm(x.mean(axis=(0, 1)))

    codec = DMCodec(n_filters=4, dimension=32, n_q=2, codebook_size=8, lstm_layers=1, seed=3)
    with pytest.raises(ValueError, match="not built"):
        variance_preserving_init(codec)
    codec.build((None, None))
    varying, offset = latents(codec)
    assert varying < 0.1 * offset  # torch's init: the latents are mostly a constant offset
    convs = [layer for layer in codec._flatten_layers() if isinstance(
        layer, NormConv1D | NormConv1DTranspose)]
    assert variance_preserving_init(codec, seed=0) == len(convs) > 10
    varying, offset = latents(codec)
    assert varying > offset  # now the frames differ more than they share
    for conv in convs:
        assert not np.any(_np(conv.bias))
        v = _np(conv.kernel_v)
        np.testing.assert_allclose(_np(conv.effective_kernel()), v, rtol=1e-5, atol=1e-7)
    # Same seed, same weights, on any backend (NumPy draws them).
    first = [_np(w) for w in codec.weights]
    variance_preserving_init(codec, seed=0)
    for a, b in zip(first, [_np(w) for w in codec.weights], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("transposed", [False, True])
def test_variance_preserving_init_kernel_scale(transposed):
    layer = (NormConv1DTranspose(64, 8, strides=4) if transposed
             else NormConv1D(64, 7, norm="none"))
    layer.build((None, None, 32))
    variance_preserving_init(layer, seed=1, scale=2.0)
    kernel = _np(layer.kernel_v if transposed else layer.kernel)
    fan_in = 8 * 32 / 4 if transposed else 7 * 32
    assert kernel.var() == pytest.approx(2.0 / fan_in, rel=0.05)


@pytest.mark.parametrize("kernel,stride,dilation", [(7, 1, 1), (3, 1, 4), (8, 4, 1), (4, 2, 1)])
@pytest.mark.parametrize("chunks", [[1] * 12, [5, 1, 4, 2]])  # more cuts: inference_test
def test_causal_conv_streams_like_the_offline_pass(kernel, stride, dilation, chunks):
    conv = NormConv1D(5, kernel, strides=stride, dilation_rate=dilation, causal=True,
                      pad_mode="constant")
    x = np.random.default_rng(1).normal(size=(2, 12 * stride, 3)).astype("float32")
    offline = ops.convert_to_numpy(conv(x))
    streamed = stream_in_chunks(conv, x, chunks, per_chunk=stride)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


@pytest.mark.parametrize("stride", [2, 5])
@pytest.mark.parametrize("chunks", [[1] * 9, [4, 1, 4]])
def test_causal_transposed_conv_streams_like_the_offline_pass(stride, chunks):
    up = NormConv1DTranspose(4, 2 * stride, strides=stride, causal=True)
    x = np.random.default_rng(2).normal(size=(2, 9, 6)).astype("float32")
    offline = ops.convert_to_numpy(up(x))
    np.testing.assert_allclose(stream_in_chunks(up, x, chunks), offline, atol=1e-5)


def test_streaming_needs_a_causal_zero_padded_layer():
    for conv in (NormConv1D(4, 3), NormConv1D(4, 3, causal=True)):  # centred; reflect padding
        conv.build((None, None, 2))
        with pytest.raises(ValueError, match="streaming needs causal=True and pad_mode"):
            conv.initial_stream_state()
    up = NormConv1DTranspose(4, 4, strides=2, causal=True, trim_right_ratio=0.5)
    up.build((None, None, 2))
    with pytest.raises(ValueError, match="trim_right_ratio 1.0"):
        up.initial_stream_state()
    pointwise = NormConv1D(4, 1, causal=True, pad_mode="constant")
    pointwise.build((None, None, 2))
    assert pointwise.initial_stream_state(3) == ()  # nothing to carry
