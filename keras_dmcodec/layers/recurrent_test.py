"""FastLSTM and run_lstm equal keras.layers.LSTM (forward, backward, gradients, weights)."""

import keras
import numpy as np
import pytest

from keras_dmcodec.layers.recurrent import FastLSTM, fast_path_applies, run_lstm


def _pair(units, features, go_backwards=False):
    init = dict(bias_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
                return_sequences=True, go_backwards=go_backwards)
    fast = FastLSTM(units, **init)
    slow = keras.layers.LSTM(units, **init)
    fast.build((None, None, features))
    slow.build((None, None, features))
    slow.set_weights(fast.get_weights())
    return fast, slow


@pytest.mark.parametrize("go_backwards", [False, True])
def test_fast_lstm_matches_keras_lstm(go_backwards):
    x = np.random.RandomState(0).randn(3, 37, 6).astype("float32")
    fast, slow = _pair(5, 6, go_backwards)
    assert fast_path_applies(fast, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)),
                               keras.ops.convert_to_numpy(slow(x)), atol=2e-6)


def test_fast_lstm_bidirectional_and_weight_names():
    x = np.random.RandomState(1).randn(2, 20, 4).astype("float32")
    fast = keras.layers.Bidirectional(FastLSTM(3, return_sequences=True, name="lstm_0"),
                                      name="bilstm_0")
    slow = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, name="lstm_0"),
                                      name="bilstm_0")
    fast.build(x.shape)
    slow.build(x.shape)
    assert [w.path for w in fast.weights] == [w.path for w in slow.weights]
    slow.set_weights(fast.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)),
                               keras.ops.convert_to_numpy(slow(x)), atol=2e-6)


def test_fast_lstm_last_state_and_no_sequences():
    x = np.random.RandomState(2).randn(2, 9, 4).astype("float32")
    fast = FastLSTM(3, return_state=True)
    slow = keras.layers.LSTM(3, return_state=True)
    fast.build(x.shape)
    slow.build(x.shape)
    slow.set_weights(fast.get_weights())
    for a, b in zip(fast(x), slow(x), strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), atol=2e-6)


def test_fast_lstm_gradients_match():
    x = np.random.RandomState(3).randn(2, 11, 4).astype("float32")
    fast, slow = _pair(3, 4)
    grads = []
    for layer in (fast, slow):
        model = keras.Sequential([keras.Input((None, 4)), layer,
                                  keras.layers.Lambda(lambda y: keras.ops.mean(y ** 2))])
        grads.append(_gradients(model, x))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _gradients(model, x):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = model(x)
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    if backend == "jax":
        import jax

        def loss_fn(values):
            out, _ = model.stateless_call(values, [v.value for v in model.non_trainable_variables],
                                          x)
            return out

        return [np.asarray(g) for g in
                jax.grad(loss_fn)([v.value for v in model.trainable_variables])]
    model(x)  # torch: autograd on the variables
    for v in model.trainable_variables:
        v.value.grad = None
    model(x).backward()
    return [v.value.grad.numpy() for v in model.trainable_variables]


def test_fast_lstm_serialization_round_trip():
    layer = FastLSTM(4, return_sequences=True, go_backwards=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, FastLSTM)
    assert restored.get_config() == layer.get_config()


def test_masked_input_falls_back_to_keras_loop():
    x = np.random.RandomState(4).randn(2, 6, 4).astype("float32")
    x[1, 3:] = 0.0
    fast, slow = _pair(3, 4)
    masked = keras.layers.Masking(0.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(masked(x))),
                               keras.ops.convert_to_numpy(slow(masked(x))), atol=2e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_run_lstm_on_a_keras_lstm_matches_calling_it(go_backwards):
    x = np.random.RandomState(5).randn(2, 13, 6).astype("float32")
    _, slow = _pair(5, 6, go_backwards)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(run_lstm(slow, x)),
                               keras.ops.convert_to_numpy(slow(x)), atol=2e-6)
    slow.use_fast_path = False  # what exporters set: the layer's own loop
    np.testing.assert_allclose(keras.ops.convert_to_numpy(run_lstm(slow, x)),
                               keras.ops.convert_to_numpy(slow(x)), atol=0)
    with pytest.raises(ValueError, match="return_sequences"):
        run_lstm(keras.layers.LSTM(2), x)
