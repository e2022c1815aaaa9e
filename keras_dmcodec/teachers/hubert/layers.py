"""The layers of HuBERT / wav2vec 2.0: convolutional feature encoder, positional conv, transformer.

Each follows transformers ``models/hubert/modeling_hubert.py`` (wav2vec 2.0's
``modeling_wav2vec2.py`` is the same), dropout-free (the teachers run frozen).
Weights are channels-last Keras kernels; ``keras_dmcodec.teachers.hubert.convert``
copies a Hugging Face checkpoint into them.
"""

import math

import keras
import numpy as np
from keras import ops

ACTIVATIONS = {
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "gelu_new": lambda x: ops.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: ops.gelu(x, approximate=True),
    "relu": ops.relu,
    "silu": ops.silu,
    "swish": ops.silu,
    "tanh": ops.tanh,
}



@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HostNormalInitializer(keras.initializers.Initializer):
    """Normal initialiser drawn with NumPy on the host.

    Keras' random initialisers compile once per weight shape on JAX (about 30 s
    for a tiny HuBERT on this CPU); a teacher's weights are overwritten by the
    checkpoint anyway. Draws are reproducible under ``keras.utils.set_random_seed``
    (which seeds NumPy).

    Args:
        stddev: float or None. Standard deviation; ``None`` means He init,
            ``sqrt(2 / fan_in)`` with ``fan_in`` the product of all axes but the last.
        seed: int or None. Seed of the draw (``None``: from NumPy's global generator).

    Example:
    >>> HostNormalInitializer(0.02, seed=0)((3, 4)).shape
    (3, 4)
    """

    def __init__(self, stddev=None, seed=None):
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=None):
        seed = self.seed if self.seed is not None else np.random.randint(2**31 - 1)
        stddev = self.stddev
        if stddev is None:
            stddev = math.sqrt(2.0 / max(1, math.prod(shape[:-1])))
        values = np.random.default_rng(seed).standard_normal(shape) * stddev
        return values.astype(keras.backend.standardize_dtype(dtype or "float32"))

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}



def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def conv_output_length(num_samples, conv_kernel, conv_stride):
    """Frames the feature encoder makes from ``num_samples`` (0 if too short)."""
    length = int(num_samples)
    for kernel, stride in zip(conv_kernel, conv_stride, strict=True):
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length


def receptive_field(conv_kernel, conv_stride):
    """The fewest samples that give one frame (400 for the standard stack)."""
    length = 1
    for kernel, stride in reversed(list(zip(conv_kernel, conv_stride, strict=True))):
        length = (length - 1) * stride + kernel
    return length



@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HubertFeatureEncoder(keras.layers.Layer):
    """The convolutional waveform encoder of HuBERT / wav2vec 2.0.

    Maps ``[batch, samples]`` audio to ``[batch, frames, conv_dim[-1]]``, with
    ``valid`` convolutions (no padding). ``norm_mode="group"`` normalises each
    channel of the first conv's output over time (GroupNorm with one group per
    channel, eps 1e-5); ``"layer"`` applies a LayerNorm (eps 1e-5) over channels
    after every conv. Kernels are ``(kernel, in, out)`` (channels-last).

    Args:
        conv_dim: list of int. Output channels of each conv.
        conv_kernel: list of int. Kernel widths.
        conv_stride: list of int. Strides.
        conv_bias: bool. Whether the convs have biases.
        norm_mode: str. ``"group"`` or ``"layer"``.
        activation: str. Activation after each conv (``"gelu"`` is exact GELU).

    Example:
    >>> encoder = HubertFeatureEncoder([4, 4], [10, 3], [5, 2])
    >>> tuple(encoder(np.zeros((1, 400), "float32")).shape)
    (1, 39, 4)
    """

    def __init__(self, conv_dim, conv_kernel, conv_stride, conv_bias=False, norm_mode="group",
                 activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.conv_dim = [int(c) for c in conv_dim]
        self.conv_kernel = [int(k) for k in conv_kernel]
        self.conv_stride = [int(s) for s in conv_stride]
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) > 0:
            raise ValueError("conv_dim, conv_kernel and conv_stride must have the same, "
                             f"non-zero length (got {len(self.conv_dim)}, "
                             f"{len(self.conv_kernel)}, {len(self.conv_stride)})")
        if norm_mode not in ("group", "layer"):
            raise ValueError(f"norm_mode must be 'group' or 'layer', not {norm_mode!r}")
        self.conv_bias = bool(conv_bias)
        self.norm_mode = norm_mode
        self.activation = activation
        self._activation = _activation(activation)

    def build(self, input_shape):
        self.kernels, self.biases, self.norm_gammas, self.norm_betas = [], [], [], []
        in_channels = 1
        for i, (channels, kernel) in enumerate(zip(self.conv_dim, self.conv_kernel, strict=True)):
            self.kernels.append(self.add_weight(
                name=f"conv_{i}_kernel", shape=(kernel, in_channels, channels),
                initializer=HostNormalInitializer()))
            self.biases.append(self.add_weight(name=f"conv_{i}_bias", shape=(channels,),
                                               initializer="zeros") if self.conv_bias else None)
            if self.norm_mode == "layer" or i == 0:
                self.norm_gammas.append(self.add_weight(name=f"norm_{i}_gamma", shape=(channels,),
                                                        initializer="ones"))
                self.norm_betas.append(self.add_weight(name=f"norm_{i}_beta", shape=(channels,),
                                                       initializer="zeros"))
            in_channels = channels

    def call(self, audio):
        x = ops.expand_dims(ops.convert_to_tensor(audio, dtype=self.compute_dtype), -1)
        eps = 1e-5  # torch nn.GroupNorm / nn.LayerNorm defaults (the conv norms take no config eps)
        for i, stride in enumerate(self.conv_stride):
            x = ops.conv(x, self.kernels[i], strides=stride, padding="valid")
            if self.biases[i] is not None:
                x = x + self.biases[i]
            if i < len(self.norm_gammas):
                axis = 1 if self.norm_mode == "group" else -1
                mean = ops.mean(x, axis=axis, keepdims=True)
                var = ops.mean(ops.square(x - mean), axis=axis, keepdims=True)
                x = (x - mean) * ops.rsqrt(var + eps) * self.norm_gammas[i] + self.norm_betas[i]
            x = self._activation(x)
        return x

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else conv_output_length(length, self.conv_kernel,
                                                                self.conv_stride)
        return (input_shape[0], frames, self.conv_dim[-1])

    def get_config(self):
        config = super().get_config()
        config.update(conv_dim=self.conv_dim, conv_kernel=self.conv_kernel,
                      conv_stride=self.conv_stride, conv_bias=self.conv_bias,
                      norm_mode=self.norm_mode, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HubertPositionalConvEmbedding(keras.layers.Layer):
    """Weight-normalised grouped convolution that gives the transformer its positions.

    The kernel is ``g * v / ||v||`` with one norm per kernel tap (torch
    ``weight_norm(dim=2)`` on the ``(out, in // groups, kernel)`` weight), stored
    here as ``kernel_v`` ``(kernel, in // groups, out)`` and ``kernel_g``
    ``(kernel,)``. Padding is ``kernel // 2`` on both sides, then one frame is
    dropped at the end for an even kernel, so the output has the input's length.
    Returns the embedding only (the caller adds it to the input).

    Args:
        hidden_size: int. Channels in and out.
        kernel_size: int. ``num_conv_pos_embeddings`` (128 in the released models).
        groups: int. ``num_conv_pos_embedding_groups`` (16).
        activation: str. Activation after the conv.

    Example:
    >>> layer = HubertPositionalConvEmbedding(8, kernel_size=4, groups=2)
    >>> tuple(layer(np.zeros((1, 5, 8), "float32")).shape)
    (1, 5, 8)
    """

    def __init__(self, hidden_size, kernel_size=128, groups=16, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.kernel_size = int(kernel_size)
        self.groups = int(groups)
        if self.hidden_size % self.groups:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"{self.groups} positional conv groups")
        self.activation = activation
        self._activation = _activation(activation)

    def build(self, input_shape):
        shape = (self.kernel_size, self.hidden_size // self.groups, self.hidden_size)
        self.kernel_v = self.add_weight(name="kernel_v", shape=shape,
                                        initializer=HostNormalInitializer())
        self.kernel_g = self.add_weight(name="kernel_g", shape=(self.kernel_size,),
                                        initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(self.hidden_size,), initializer="zeros")

    def kernel(self):
        """The effective kernel ``g * v / ||v||``, shape ``(kernel, in // groups, out)``."""
        norm = ops.sqrt(ops.sum(ops.square(self.kernel_v), axis=(1, 2), keepdims=True))
        return self.kernel_v * (ops.reshape(self.kernel_g, (-1, 1, 1)) / norm)

    def call(self, x):
        left = self.kernel_size // 2
        right = left - 1 if self.kernel_size % 2 == 0 else left
        x = ops.pad(x, [[0, 0], [left, right], [0, 0]])
        y = ops.conv(x, self.kernel(), strides=1, padding="valid") + self.bias
        return self._activation(y)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, kernel_size=self.kernel_size,
                      groups=self.groups, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HubertTransformerLayer(keras.layers.Layer):
    """One transformer layer of HuBERT / wav2vec 2.0 (dropout-free inference).

    Post-LN (``stable_layer_norm=False``): ``x = LN(x + attn(x)); x = LN(x + ff(x))``.
    Pre-LN (``True``): ``x = x + attn(LN(x)); x = x + ff(LN(x))``. Attention is
    multi-head with separate q/k/v/out Dense layers and scale ``head_dim ** -0.5``;
    the feed-forward is Dense, activation, Dense.

    Args:
        hidden_size: int. Model width.
        num_heads: int. Attention heads.
        intermediate_size: int. Feed-forward width.
        hidden_act: str. Feed-forward activation.
        layer_norm_eps: float. LayerNorm epsilon.
        stable_layer_norm: bool. Pre-LN instead of post-LN.

    Example:
    >>> layer = HubertTransformerLayer(8, num_heads=2, intermediate_size=16)
    >>> tuple(layer(np.zeros((1, 5, 8), "float32")).shape)
    (1, 5, 8)
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, hidden_act="gelu",
                 layer_norm_eps=1e-5, stable_layer_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"{self.num_heads} attention heads")
        self.head_dim = self.hidden_size // self.num_heads
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = hidden_act
        self._hidden_act = _activation(hidden_act)
        self.layer_norm_eps = float(layer_norm_eps)
        self.stable_layer_norm = bool(stable_layer_norm)
        dense = dict(kernel_initializer=HostNormalInitializer(0.02))
        self.q_proj = keras.layers.Dense(self.hidden_size, name="q_proj", **dense)
        self.k_proj = keras.layers.Dense(self.hidden_size, name="k_proj", **dense)
        self.v_proj = keras.layers.Dense(self.hidden_size, name="v_proj", **dense)
        self.out_proj = keras.layers.Dense(self.hidden_size, name="out_proj", **dense)
        self.layer_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_eps,
                                                          name="layer_norm")
        self.intermediate_dense = keras.layers.Dense(self.intermediate_size,
                                                     name="intermediate_dense", **dense)
        self.output_dense = keras.layers.Dense(self.hidden_size, name="output_dense", **dense)
        self.final_layer_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_eps,
                                                                name="final_layer_norm")

    def build(self, input_shape):
        hidden_shape = (input_shape[0], input_shape[1], self.hidden_size)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj,
                      self.intermediate_dense):
            layer.build(hidden_shape)
        self.output_dense.build((input_shape[0], input_shape[1], self.intermediate_size))
        self.layer_norm.build(hidden_shape)
        self.final_layer_norm.build(hidden_shape)

    def _attention(self, x):
        batch, frames = ops.shape(x)[0], ops.shape(x)[1]
        heads = (batch, frames, self.num_heads, self.head_dim)
        query = ops.reshape(self.q_proj(x), heads)
        key = ops.reshape(self.k_proj(x), heads)
        value = ops.reshape(self.v_proj(x), heads)
        attended = ops.dot_product_attention(query, key, value, scale=self.head_dim ** -0.5)
        return self.out_proj(ops.reshape(attended, (batch, frames, self.hidden_size)))

    def _feed_forward(self, x):
        return self.output_dense(self._hidden_act(self.intermediate_dense(x)))

    def call(self, x):
        if self.stable_layer_norm:
            x = x + self._attention(self.layer_norm(x))
            return x + self._feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self._attention(x))
        return self.final_layer_norm(x + self._feed_forward(x))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads,
                      intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
                      layer_norm_eps=self.layer_norm_eps,
                      stable_layer_norm=self.stable_layer_norm)
        return config

