"""The fast CPU LSTM kernel applied to Keras's own LSTM layers.

``run_lstm(layer, x)`` runs a ``keras.layers.LSTM`` over a whole sequence with
``keras_dmcodec.ops.lstm_sequence`` where that is faster (CPU, JAX or TensorFlow) and
through the layer itself otherwise (GPU: Keras's cuDNN path; torch; masks, dropout, ...).
The layer and its variables are untouched, so checkpoints and presets written with
``keras.layers.LSTM`` load as they are (Keras names saved weights after the layer class,
which is why ``SLSTM`` keeps ``keras.layers.LSTM`` and calls this function instead of
using ``FastLSTM``). ``FastLSTM`` is the same kernel as a drop-in layer.

Where the fast path runs: JAX and TensorFlow on CPU; torch on CPU and GPU.
"""

import keras
from keras import ops

from keras_dmcodec.ops.lstm import lstm_sequence, on_accelerator


def fast_path_applies(layer, sequences, mask=None, training=False):
    """Whether ``lstm_sequence`` can replace ``layer``'s loop on ``sequences``.

    The plain configuration only (tanh / sigmoid, bias, no mask, no active dropout, not
    unrolled), unless ``layer.use_fast_path`` is set to False (the ONNX exporter does:
    tf2onnx pattern-matches Keras's own while loop). On JAX and TensorFlow only on CPU: on
    a GPU Keras's cuDNN path is faster, unless ``use_fast_path == "always"`` (the TFLite
    exporter's choice: converters cannot take the cuDNN op). On torch everywhere:
    ``torch.lstm`` is itself cuDNN's LSTM on a GPU.
    """
    cell = layer.cell
    fast = getattr(layer, "use_fast_path", True)
    return (
        bool(fast)
        and mask is None
        and not layer.unroll
        and cell.use_bias
        and not (training and (cell.dropout or cell.recurrent_dropout))
        and keras.activations.serialize(cell.activation) == "tanh"
        and keras.activations.serialize(cell.recurrent_activation) == "sigmoid"
        and (keras.backend.backend() == "torch" or fast == "always"
             or not on_accelerator(sequences))
    )


def run_lstm(layer, inputs, training=False):
    """``layer(inputs)`` for a built ``keras.layers.LSTM`` with ``return_sequences=True``
    and no initial state, through the fast kernel when it applies.

    As ``layer(inputs)``, a ``go_backwards`` layer returns its outputs in reverse time order.

    Args:
        layer: a built ``keras.layers.LSTM`` (``return_sequences=True``).
        inputs: float tensor ``[batch, time, features]``.
        training: bool, passed to the layer on its own path.

    Example:

    >>> lstm = keras.layers.LSTM(4, return_sequences=True)
    >>> lstm.build((None, None, 3))
    >>> tuple(run_lstm(lstm, np.zeros((2, 7, 3), "float32")).shape)
    (2, 7, 4)
    """
    if not layer.return_sequences or layer.return_state:
        raise ValueError("run_lstm needs return_sequences=True and return_state=False")
    inputs = ops.convert_to_tensor(inputs)
    if not fast_path_applies(layer, inputs, training=training):
        return layer(inputs, training=training)
    cell = layer.cell
    zeros = ops.zeros((ops.shape(inputs)[0], cell.units), dtype=inputs.dtype)
    outputs, _, _ = lstm_sequence(inputs, zeros, zeros, cell.kernel, cell.recurrent_kernel,
                                  cell.bias, go_backwards=layer.go_backwards)
    return outputs


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class FastLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` whose CPU loop runs ``keras_dmcodec.ops.lstm_sequence``.

    Same variables, config and numerics (to float32 summation order) as
    ``keras.layers.LSTM``; the fast path is taken where ``fast_path_applies`` says so,
    otherwise (and with JAX or TensorFlow on a GPU, where Keras uses cuDNN) Keras's own
    ``inner_loop``. Set ``use_fast_path = False`` to force Keras's loop. Note that Keras
    names saved weights after the layer class (``fast_lstm`` instead of ``lstm`` inside
    a list), so to speed up an existing model keep its ``LSTM`` layers and call
    ``run_lstm`` on them, as ``SLSTM`` does.

    Args:
        units: int. Hidden size.
        **kwargs: every ``keras.layers.LSTM`` argument.

    Example:

    >>> lstm = FastLSTM(4, return_sequences=True)
    >>> tuple(lstm(np.zeros((2, 7, 3), "float32")).shape)
    (2, 7, 4)
    """

    use_fast_path = True

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if keras.tree.is_nested(mask):
            mask = mask[0]
        if not fast_path_applies(self, sequences, mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        outputs, h, c = lstm_sequence(
            sequences, initial_state[0], initial_state[1], self.cell.kernel,
            self.cell.recurrent_kernel, self.cell.bias, go_backwards=self.go_backwards,
        )
        return outputs[:, -1], outputs, [h, c]
