import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec import DMCodec
from keras_dmcodec.utils.testing import (
    assert_codes_equal_up_to_ties,
    assert_outputs_close,
    run_layer_test,
    run_model_saving_test,
    run_serialization_test,
    untied_frames,
)


# ------------------------------------------------------------------------- layer tests
@keras.saving.register_keras_serializable(package="testing_test")
class Scale(keras.layers.Layer):
    """Multiplies by a learned vector; returns ``(scaled, {"sum": per-row sum})``."""

    def __init__(self, units, offset=0.0, forget_offset=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.offset = offset
        self.forget_offset = forget_offset

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="random_normal")
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, inputs):
        scaled = inputs * self.scale + self.offset
        return scaled, {"sum": ops.sum(scaled, axis=-1)}

    def get_config(self):
        config = dict(super().get_config(), units=self.units, forget_offset=self.forget_offset)
        if not self.forget_offset:  # the bug run_layer_test must catch
            config["offset"] = self.offset
        return config


X = np.arange(12, dtype="float32").reshape(3, 4)


def test_run_layer_test_passes_a_correct_layer(tmp_path):
    layer, (scaled, extra) = run_layer_test(
        Scale, {"units": 4, "offset": 1.0}, X, ((3, 4), {"sum": (3,)}),
        expected_num_trainable_weights=1, expected_num_non_trainable_weights=1,
        saving_directory=tmp_path)
    np.testing.assert_allclose(ops.convert_to_numpy(scaled),
                               X * ops.convert_to_numpy(layer.scale) + 1.0, rtol=1e-6)
    assert (tmp_path / "Scale.keras").is_file()


def test_run_layer_test_catches_each_kind_of_fault():
    kwargs = {"units": 4, "offset": 1.0}
    with pytest.raises(AssertionError, match=r"output shapes .*expected"):
        run_layer_test(Scale, kwargs, X, ((3, 4), {"sum": (3, 1)}))
    with pytest.raises(AssertionError, match="has 1 trainable weights, expected 2"):
        run_layer_test(Scale, kwargs, X, expected_num_trainable_weights=2)
    with pytest.raises(AssertionError, match="has 1 non-trainable weights, expected 0"):
        run_layer_test(Scale, kwargs, X, expected_num_non_trainable_weights=0)
    with pytest.raises(AssertionError, match="is float32, not float16"):
        run_layer_test(Scale, kwargs, X, expected_output_dtype="float16")
    # A constructor argument missing from get_config: the config round trips agree with each
    # other, but the revived layer computes something else.
    with pytest.raises(AssertionError, match="deserialized Scale"):
        run_layer_test(Scale, dict(kwargs, forget_offset=True), X)


def test_run_serialization_test_catches_a_changed_config():
    @keras.saving.register_keras_serializable(package="testing_test")
    class Renamed(Scale):
        def get_config(self):
            return dict(super().get_config(), units=self.units + 1)

    with pytest.raises(AssertionError, match="from_config.*changed the config"):
        run_serialization_test(Renamed(4))
    clone = run_serialization_test(Scale(4, offset=2.0))
    assert type(clone) is Scale and clone.offset == 2.0


def test_assert_outputs_close_compares_structure_and_values():
    assert_outputs_close({"a": [np.ones(2), None]}, {"a": [np.ones(2), None]})
    with pytest.raises(AssertionError, match="leaf 1 differs"):
        assert_outputs_close([np.ones(2), np.ones(2)], [np.ones(2), np.zeros(2)])
    with pytest.raises(ValueError):
        assert_outputs_close({"a": np.ones(2)}, {"b": np.ones(2)})


def test_run_model_saving_test_on_a_model(tmp_path):
    model = keras.Sequential([keras.layers.Dense(3)])
    model(X)
    loaded = run_model_saving_test(model, X, tmp_path)
    assert type(loaded) is keras.Sequential
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.layers[0].kernel),
                               ops.convert_to_numpy(model.layers[0].kernel))
    layer = Scale(4, offset=1.0, forget_offset=True)
    layer(X)
    with pytest.raises(AssertionError, match="loaded from .keras"):
        run_model_saving_test(layer, X, tmp_path)


# -------------------------------------------------------------------- code comparisons


@pytest.fixture(scope="module")
def model_audio_codes():
    # Module fixtures are set up before the per-test seed: seed here, so that the initial
    # weights (drawn from the global seed) do not depend on the tests that ran before.
    keras.utils.set_random_seed(1234)
    model = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=8,
                    lstm_layers=1, kmeans_iters=3, seed=3)
    audio = (np.random.default_rng(0).normal(size=(1, 3200)) * 0.1).astype("float32")
    model(audio, training=True)
    return model, audio, model.encode(audio)


def test_equal_codes_and_a_clear_flip(model_audio_codes):
    model, audio, codes = model_audio_codes
    assert assert_codes_equal_up_to_ties(model, audio, codes, codes) == 0
    latents = ops.convert_to_numpy(model.encode_latents(audio))[0, 3]
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
