import numpy as np
import pytest
from keras import ops

from keras_dmcodec import DMCodec
from keras_dmcodec.utils.testing import assert_codes_equal_up_to_ties, untied_frames


@pytest.fixture(scope="module")
def model_audio_codes():
    model = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=8,
                    lstm_layers=1, kmeans_iters=3, seed=3)
    audio = (np.random.default_rng(0).normal(size=(1, 3200)) * 0.1).astype("float32")
    model(audio, training=True)
    return model, audio, model.encode(audio)


def test_equal_codes_and_a_clear_flip(model_audio_codes):
    model, audio, codes = model_audio_codes
    assert assert_codes_equal_up_to_ties(model, audio, codes, codes) == 0
    latents = ops.convert_to_numpy(model.encoder(model._as_channels_last(audio)))[0, 3]
    book = ops.convert_to_numpy(model.quantizer.quantizers[0].codebook)
    flipped = codes.copy()
    flipped[0, 0, 3] = np.argmax(((book - latents) ** 2).sum(-1))  # the worst match: no tie
    with pytest.raises(AssertionError, match="frame 3, layer 0.*no tie"):
        assert_codes_equal_up_to_ties(model, audio, flipped, codes)


def test_a_tie_is_accepted(model_audio_codes):
    model, audio, codes = model_audio_codes
    book = model.quantizer.quantizers[0].codebook
    original = np.array(ops.convert_to_numpy(book))
    winner = int(codes[0, 0, 5])
    twin = (winner + 1) % 8
    tied = original.copy()
    tied[twin] = tied[winner]  # two identical entries: either is a correct nearest code
    try:
        book.assign(tied)
        other = codes.copy()
        other[0, 0, 5] = twin
        other[0, 1, 5] = (codes[0, 1, 5] + 1) % 8  # later layers of that frame may differ too
        assert assert_codes_equal_up_to_ties(model, audio, other, codes) == 1
    finally:
        book.assign(original)


def test_untied_frames_flags_a_duplicated_codebook_entry(model_audio_codes):
    model, audio, codes = model_audio_codes
    untied = untied_frames(model, audio[0])
    assert untied.shape == (codes.shape[-1],) and untied.dtype == bool
    book = model.quantizer.quantizers[0].codebook
    original = np.array(ops.convert_to_numpy(book))
    winner = int(codes[0, 0, 5])
    twin = (winner + 1) % 8
    tied = original.copy()
    tied[twin] = tied[winner]  # frame 5's best code now has an exact twin
    try:
        book.assign(tied)
        after = untied_frames(model, audio[0])
    finally:
        book.assign(original)
    assert not after[5]
    # A frame whose best entry is untouched keeps it, and its runner-up can only get farther
    # (an entry was replaced by a copy of another): an untied frame stays untied.
    others = (codes[0, 0] != winner) & (codes[0, 0] != twin)
    np.testing.assert_array_equal(after[others] | ~untied[others], True)
