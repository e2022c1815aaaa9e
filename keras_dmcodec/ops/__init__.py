"""Kernels with a per-backend fast path, dispatched in one place per kernel.

Layers call these through ``keras.ops``-style functions; the only backend-specific
code of the model lives here (the pattern of Keras's own ``backend/*/rnn.py``).
"""

from keras_dmcodec.ops.conv import conv1d, conv1d_transpose
from keras_dmcodec.ops.lstm import lstm_sequence

__all__ = ["conv1d", "conv1d_transpose", "lstm_sequence"]
