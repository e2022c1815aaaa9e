import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.seanet import SLSTM, SEANetDecoder, SEANetEncoder, SEANetResnetBlock
from keras_dmcodec.utils.testing import run_layer_test, stream_in_chunks

SMALL = dict(n_filters=4, dimension=16, lstm_layers=1)


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("length", [320, 321, 1000, 16000])
def test_encoder_frame_rate_is_50hz_at_16k(length):
    enc = SEANetEncoder(**SMALL)
    z = enc(np.random.randn(2, length, 1).astype("float32"))
    assert enc.hop_length == 320
    assert tuple(z.shape) == (2, -(-length // 320), 16)


def test_decoder_upsamples_by_hop():
    dec = SEANetDecoder(**SMALL)
    y = dec(np.random.randn(2, 7, 16).astype("float32"))
    assert tuple(y.shape) == (2, 7 * 320, 1)


def test_reference_layer_order_and_sizes():
    enc = SEANetEncoder()
    dec = SEANetDecoder()
    # reference encoder.model: conv, 4 x (resblock, ELU, down conv), SLSTM, ELU, conv = 16 modules
    assert len(enc.model_layers) == 16 and len(dec.model_layers) == 16
    assert isinstance(enc.model_layers[13], SLSTM) and enc.model_layers[13].bidirectional
    assert isinstance(dec.model_layers[1], SLSTM) and not dec.model_layers[1].bidirectional
    assert [enc.model_layers[i].strides for i in (3, 6, 9, 12)] == [2, 4, 5, 8]
    assert [dec.model_layers[i].strides for i in (3, 6, 9, 12)] == [8, 5, 4, 2]
    assert [enc.model_layers[i].filters for i in (3, 6, 9, 12)] == [128, 256, 512, 1024]
    assert enc.model_layers[1].block[1].dilation_rate == 1
    assert enc.model_layers[1].block[1].filters == 32  # compress 2


@pytest.mark.slow
def test_reference_parameter_counts():
    enc, dec = SEANetEncoder(), SEANetDecoder()
    enc.build((None, None, 1))
    dec.build((None, None, 1024))
    # Torch counts two LSTM biases (b_ih, b_hh) where Keras has one:
    # encoder 2 layers x 2 directions x 4096, decoder 2 x 4096 fewer here.
    assert enc.count_params() == 67_705_856 - 4 * 4096
    assert dec.count_params() == 35_182_530 - 2 * 4096


def test_causal_encoder_does_not_look_ahead():
    # Zero padding: reflect padding at the very start reads the first samples.
    enc = SEANetEncoder(causal=True, bidirectional=False, pad_mode="constant", **SMALL)
    x = np.random.randn(1, 3200, 1).astype("float32")
    x2 = x.copy()
    x2[:, 1600:] = np.random.randn(1, 1600, 1)
    z, z2 = _np(enc(x)), _np(enc(x2))
    # Frames whose windows end before sample 1600 are unchanged.
    np.testing.assert_allclose(z[:, :4], z2[:, :4], atol=1e-5)
    assert not np.allclose(z[:, -1], z2[:, -1])


def test_causal_rejects_bidirectional_lstm():
    with pytest.raises(ValueError, match="bidirectional"):
        SEANetEncoder(causal=True, bidirectional=True)


def test_slstm_skip_tiles_input_when_bidirectional():
    lstm = SLSTM(3, num_layers=1, bidirectional=True)
    lstm.build((None, None, 3))
    for w in lstm.weights:
        w.assign(np.zeros(w.shape, "float32"))
    x = np.random.randn(2, 4, 3).astype("float32")
    # zero weights: LSTM output is 0, so the result is the tiled input
    np.testing.assert_allclose(_np(lstm(x)), np.concatenate([x, x], -1), atol=1e-6)


def test_resblock_identity_skip_option():
    block = SEANetResnetBlock(8, true_skip=True)
    assert block.shortcut is None
    assert tuple(block(np.ones((1, 5, 8), "float32")).shape) == (1, 5, 8)


@pytest.mark.parametrize("cls", [SEANetEncoder, SEANetDecoder])
def test_serialization_round_trip_keeps_outputs(cls):
    shape, output_shape = ((1, 640, 1), (1, 2, 16)) if cls is SEANetEncoder else (
        (1, 2, 16), (1, 640, 1))
    x = np.random.randn(*shape).astype("float32")
    run_layer_test(cls, SMALL, x, output_shape)


CAUSAL = dict(dimension=16, n_filters=4, lstm_layers=2, causal=True, pad_mode="constant")


@pytest.mark.parametrize("chunks", [[1] * 10, [4, 1, 2, 3]])
def test_causal_encoder_and_decoder_stream_like_the_offline_pass(chunks):
    rng = np.random.default_rng(3)
    encoder = SEANetEncoder(bidirectional=False, **CAUSAL)
    audio = (rng.normal(size=(2, 10 * encoder.hop_length, 1)) * 0.1).astype("float32")
    offline = ops.convert_to_numpy(encoder(audio))
    streamed = stream_in_chunks(encoder, audio, chunks, encoder.hop_length)
    np.testing.assert_allclose(streamed, offline, atol=1e-5 * np.abs(offline).max())

    decoder = SEANetDecoder(**CAUSAL)
    latents = rng.normal(size=(2, 10, 16)).astype("float32")
    offline = ops.convert_to_numpy(decoder(latents))
    streamed = stream_in_chunks(decoder, latents, chunks, 1)
    np.testing.assert_allclose(streamed, offline, atol=1e-5 * np.abs(offline).max())


def test_slstm_streams_with_its_state_and_refuses_to_stream_bidirectionally():
    lstm = SLSTM(6, num_layers=2)
    x = np.random.default_rng(4).normal(size=(3, 9, 6)).astype("float32")
    offline = ops.convert_to_numpy(lstm(x))
    np.testing.assert_allclose(stream_in_chunks(lstm, x, [4, 1, 4], 1), offline, atol=1e-5)
    (h, c), _ = lstm.initial_stream_state(3)
    assert tuple(h.shape) == (3, 6) and not np.any(ops.convert_to_numpy(c))
    both = SLSTM(6, num_layers=1, bidirectional=True)
    both.build((None, None, 6))
    with pytest.raises(ValueError, match="bidirectional LSTM cannot stream"):
        both.initial_stream_state()
    with pytest.raises(ValueError, match="only a causal stack streams"):
        SEANetDecoder(dimension=16, n_filters=4, lstm_layers=1).initial_stream_state()
