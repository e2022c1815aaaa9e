"""A fast LSTM over a whole sequence on CPU, for every Keras backend.

Keras's ``LSTM`` on CPU steps the whole cell, input matmul included, once per
frame (its fused paths are cuDNN-only). ``lstm_sequence`` computes the input
projection of all frames in one matmul and runs only ``h @ W_hh`` in the loop,
with the best compiled loop each backend has:

- JAX: ``jax.lax.scan`` (compiled with the rest of the graph by ``jit``);
- TensorFlow: ``tf.scan`` (a ``while_loop`` inside the caller's ``tf.function``);
- torch: the fused ``torch.lstm`` (ATen's CPU kernel, cuDNN on a GPU); the weights map
  exactly (gate order i, f, g, o; ``weight_ih = kernel.T``, ``weight_hh = recurrent.T``,
  ``bias_ih = bias``, ``bias_hh = 0``). Measured on this 2-core AVX2 machine, 500 frames,
  batch 1, no grad: 0.008 s vs 0.057 s for Keras's per-frame loop at 256 units, 0.14 s vs
  0.41 s at 1024 units;
- any other backend: a loop over frames after the one input matmul.

The cell is Keras's ``LSTMCell`` with its defaults: ``z = x @ kernel + h @ recurrent
+ bias``, sigmoid gates, tanh cell activation. Results equal the Keras layer up to
float32 summation order (about 1e-7). On GPUs callers keep Keras's cuDNN path (see
``keras_dmcodec.layers.recurrent.FastLSTM``), which is faster there.
"""

import keras
from keras import ops

_ACCELERATOR = {}


def on_accelerator(inputs=None):
    """Whether the active backend computes on a GPU/TPU (there Keras's cuDNN path wins)."""
    backend = keras.backend.backend()
    if backend == "torch":
        return inputs is not None and ops.convert_to_tensor(inputs).device.type != "cpu"
    if backend not in _ACCELERATOR:
        if backend == "jax":
            import jax  # deferred: backend-specific

            _ACCELERATOR[backend] = jax.default_backend() != "cpu"
        elif backend == "tensorflow":
            import tensorflow as tf  # deferred: backend-specific

            _ACCELERATOR[backend] = bool(tf.config.list_logical_devices("GPU"))
        else:
            _ACCELERATOR[backend] = False
    return _ACCELERATOR[backend]


def _gates(z, c):
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _lstm_jax(projected, h, c, recurrent_kernel):
    import jax  # deferred: backend-specific kernel

    def step(carry, x_t):
        h, c = carry
        h, c = _gates(x_t + h @ recurrent_kernel, c)
        return (h, c), h

    (h, c), outputs = jax.lax.scan(step, (h, c), ops.swapaxes(projected, 0, 1))
    return ops.swapaxes(outputs, 0, 1), h, c


# Frames per iteration of the TensorFlow loop (unrolled inside it); see _lstm_tensorflow.
TF_STEPS_PER_ITERATION = 8


def _lstm_tensorflow(projected, h, c, recurrent_kernel, steps=None):
    """``tf.scan`` over blocks of ``steps`` frames, the frames of a block unrolled.

    One frame per iteration costs TensorFlow's loop overhead per frame, and in TFLite (which
    lowers the scan's output list to a tensor updated in place of a copy) a copy of the whole
    output per frame, quadratic in the length. Blocks divide both by ``steps``. The time
    axis is padded to a multiple of ``steps``; padded frames leave the state unchanged and
    their outputs are dropped.
    """
    import tensorflow as tf  # deferred: backend-specific kernel

    steps = TF_STEPS_PER_ITERATION if steps is None else int(steps)
    time = tf.shape(projected)[1]
    blocks = (time + steps - 1) // steps
    padded = tf.pad(projected, [[0, 0], [0, blocks * steps - time], [0, 0]])
    # [blocks, steps, batch, 4 * units], and which frames are real.
    xs = tf.reshape(tf.transpose(padded, [1, 0, 2]),
                    tf.stack([blocks, steps, tf.shape(projected)[0], tf.shape(projected)[2]]))
    valid = tf.reshape(tf.range(blocks * steps) < time, tf.stack([blocks, steps]))

    def block(carry, inputs):
        h, c, _ = carry
        x_block, valid_block = inputs
        outputs = []
        for t in range(steps):
            h_new, c_new = _gates(x_block[t] + tf.matmul(h, recurrent_kernel), c)
            h = tf.where(valid_block[t], h_new, h)
            c = tf.where(valid_block[t], c_new, c)
            outputs.append(h)
        return h, c, tf.stack(outputs)

    empty = tf.zeros(tf.stack([steps, tf.shape(h)[0], tf.shape(h)[1]]), h.dtype)
    hs, cs, outputs = tf.scan(block, (xs, valid), initializer=(h, c, empty))
    outputs = tf.reshape(outputs, tf.stack([blocks * steps, tf.shape(h)[0], tf.shape(h)[1]]))
    return tf.transpose(outputs[:time], [1, 0, 2]), hs[-1], cs[-1]


def _lstm_torch(inputs, h, c, kernel, recurrent_kernel, bias):
    import torch  # deferred: backend-specific kernel

    weights = [kernel.T.contiguous(), recurrent_kernel.T.contiguous(), bias,
               torch.zeros_like(bias)]
    outputs, h, c = torch.lstm(inputs.contiguous(), (h[None], c[None]), weights, True, 1, 0.0,
                               False, False, True)
    return outputs, h[0], c[0]


def _lstm_loop(projected, h, c, recurrent_kernel):
    outputs = []
    for t in range(projected.shape[1]):
        h, c = _gates(projected[:, t] + ops.matmul(h, recurrent_kernel), c)
        outputs.append(h)
    return ops.stack(outputs, axis=1), h, c


def lstm_sequence(inputs, initial_h, initial_c, kernel, recurrent_kernel, bias,
                  go_backwards=False):
    """Runs a Keras-layout LSTM over ``[batch, time, features]`` inputs.

    Args:
        inputs: float tensor ``[batch, time, features]``.
        initial_h, initial_c: ``[batch, units]`` initial states.
        kernel: ``[features, 4 * units]`` (Keras ``LSTMCell.kernel``, gates i, f, c, o).
        recurrent_kernel: ``[units, 4 * units]``.
        bias: ``[4 * units]``.
        go_backwards: process the sequence in reverse; as Keras's ``LSTM``, the
            outputs are then in reverse time order.

    Returns:
        ``(outputs [batch, time, units], last_h, last_c)``.

    Example:

    >>> x = np.random.rand(2, 5, 3).astype("float32")
    >>> k, r, b = np.ones((3, 8), "float32"), np.ones((2, 8), "float32"), np.zeros(8, "float32")
    >>> h0 = np.zeros((2, 2), "float32")
    >>> out, h, c = lstm_sequence(x, h0, h0, k, r, b)
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 2), (2, 2))
    """
    inputs = ops.convert_to_tensor(inputs)
    if go_backwards:
        inputs = ops.flip(inputs, axis=1)
    backend = keras.backend.backend()
    h, c = ops.convert_to_tensor(initial_h), ops.convert_to_tensor(initial_c)
    recurrent_kernel = ops.convert_to_tensor(recurrent_kernel)
    if backend == "torch":
        return _lstm_torch(inputs, h, c, ops.convert_to_tensor(kernel), recurrent_kernel,
                           ops.convert_to_tensor(bias))
    projected = ops.matmul(inputs, kernel) + bias
    if backend == "jax":
        return _lstm_jax(projected, h, c, recurrent_kernel)
    if backend == "tensorflow":
        return _lstm_tensorflow(projected, h, c, recurrent_kernel)
    return _lstm_loop(projected, h, c, recurrent_kernel)
