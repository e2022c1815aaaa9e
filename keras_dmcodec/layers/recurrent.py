"""``FastLSTM``: Keras's LSTM layer with a fast CPU kernel, weight-compatible with it."""

import keras

from keras_dmcodec.ops.lstm import lstm_sequence, on_accelerator


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class FastLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` whose CPU loop runs ``keras_dmcodec.ops.lstm_sequence``.

    Same variables, names, config and numerics (to float32 summation order) as
    ``keras.layers.LSTM``, so existing weights and presets load unchanged. The fast
    path is taken on CPU with JAX and TensorFlow (Keras's torch backend already has
    the equivalent loop) for the plain configuration (tanh / sigmoid, bias, no mask,
    no dropout, not unrolled); otherwise, and on a GPU (where Keras uses cuDNN), the
    layer runs Keras's own ``inner_loop``. Set ``use_fast_path = False`` to force
    Keras's loop (e.g. for a converter that pattern-matches Keras's while loop).

    Args:
        units: int. Hidden size.
        **kwargs: every ``keras.layers.LSTM`` argument.

    Example:

    >>> lstm = FastLSTM(4, return_sequences=True)
    >>> tuple(lstm(np.zeros((2, 7, 3), "float32")).shape)
    (2, 7, 4)
    """

    use_fast_path = True

    def _fast_path_applies(self, sequences, mask, training):
        cell = self.cell
        return (
            self.use_fast_path
            and mask is None
            and not self.unroll
            and cell.use_bias
            and not (training and (cell.dropout or cell.recurrent_dropout))
            and keras.activations.serialize(cell.activation) == "tanh"
            and keras.activations.serialize(cell.recurrent_activation) == "sigmoid"
            and not on_accelerator(sequences)
            # Keras's torch backend already projects all frames in one matmul on CPU.
            and keras.backend.backend() != "torch"
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if keras.tree.is_nested(mask):
            mask = mask[0]
        if not self._fast_path_applies(sequences, mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        outputs, h, c = lstm_sequence(
            sequences, initial_state[0], initial_state[1], self.cell.kernel,
            self.cell.recurrent_kernel, self.cell.bias, go_backwards=self.go_backwards,
        )
        return outputs[:, -1], outputs, [h, c]
