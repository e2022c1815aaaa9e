"""HuBERT and wav2vec 2.0 in Keras 3 (the speech teacher), with a greedy CTC transcriber.

HuBERT and wav2vec 2.0 share one architecture (transformers
``models/hubert/modeling_hubert.py`` and ``models/wav2vec2/modeling_wav2vec2.py``):

1. a feature encoder of strided 1-D convolutions on the waveform (7 layers, total
   stride 320: 50 frames per second at 16 kHz). ``feat_extract_norm="group"``
   (base models) puts a GroupNorm with one group per channel after the first conv
   only; ``"layer"`` (large / ``do_stable_layer_norm`` models) puts a LayerNorm
   (eps 1e-5) after every conv. GELU after each;
2. a feature projection: LayerNorm (``layer_norm_eps``) + Dense to ``hidden_size``;
3. a convolutional positional embedding: one grouped Conv1D (kernel
   ``num_conv_pos_embeddings``, ``num_conv_pos_embedding_groups`` groups, padding
   ``kernel // 2``, the last frame dropped for even kernels), weight-normalised over
   ``dim=2`` (one norm per kernel tap), then GELU, added to its input;
4. a transformer encoder: post-LN layers with a LayerNorm after the positional
   add (``do_stable_layer_norm=False``), or pre-LN layers with a final LayerNorm
   (``True``).

``HubertEncoder`` returns every hidden state as transformers 5.24 does with
``output_hidden_states=True``: ``num_hidden_layers + 1`` tensors, the first being
the transformer's input (after the embedding LayerNorm for post-LN models, before
any LayerNorm for stable-layer-norm models), then each layer's output. For
stable-layer-norm models the final LayerNorm is in ``last_hidden_state`` only,
not in ``hidden_states[-1]`` (transformers 4.x put it in both).

Weights load from a local Hugging Face directory (``HubertModel``,
``Wav2Vec2Model``, ``Wav2Vec2ForCTC`` / ``HubertForCTC`` checkpoints) with
``HubertTeacher.from_pretrained`` and ``CTCTranscriber.from_pretrained``.
"""

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_dmcodec.teachers import hf_weights
from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.transcripts import Transcript, Word

_ACTIVATIONS = {
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
    if name not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


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


# Defaults are facebook/hubert-base-ls960's (and HubertConfig's) values.
_ENCODER_DEFAULTS = dict(
    conv_dim=(512,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=False,
    feat_extract_norm="group",
    feat_extract_activation="gelu",
    feat_proj_layer_norm=True,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    do_stable_layer_norm=False,
)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HubertEncoder(keras.Model):
    """HuBERT / wav2vec 2.0 encoder returning every hidden state.

    Call it on float audio ``[batch, samples]`` (already normalised if the
    checkpoint expects it; ``HubertTeacher`` does that). Returns a dict:
    ``"hidden_states"``, a list of ``num_hidden_layers + 1`` tensors
    ``[batch, frames, hidden_size]`` ordered as transformers 5.24's
    ``output_hidden_states=True``, and ``"last_hidden_state"`` (with the final
    LayerNorm of stable-layer-norm models). The argument names and defaults are
    those of ``transformers.HubertConfig`` (``facebook/hubert-base-ls960``).

    Args:
        conv_dim: list of int. Feature-encoder channels.
        conv_kernel: list of int. Feature-encoder kernel widths.
        conv_stride: list of int. Feature-encoder strides (product 320: 50 Hz at 16 kHz).
        conv_bias: bool. Biases in the feature-encoder convs.
        feat_extract_norm: str. ``"group"`` or ``"layer"``.
        feat_extract_activation: str. Activation of the convs and positional conv.
        feat_proj_layer_norm: bool. LayerNorm before the feature projection.
        hidden_size: int. Transformer width.
        num_hidden_layers: int. Transformer layers.
        num_attention_heads: int. Attention heads.
        intermediate_size: int. Feed-forward width.
        hidden_act: str. Feed-forward activation.
        layer_norm_eps: float. Epsilon of the projection and transformer LayerNorms.
        num_conv_pos_embeddings: int. Positional conv kernel width.
        num_conv_pos_embedding_groups: int. Positional conv groups.
        do_stable_layer_norm: bool. Pre-LN transformer with a final LayerNorm.

    Example:
    >>> encoder = HubertEncoder(conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=2,
    ...                         num_attention_heads=2, intermediate_size=32,
    ...                         num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> encoder.num_hidden_states, encoder.num_frames(1600)
    (3, 4)
    >>> outputs = encoder.predict_on_batch(np.zeros((1, 1600), "float32"))  # doctest: +SKIP
    >>> len(outputs["hidden_states"]), outputs["last_hidden_state"].shape  # doctest: +SKIP
    (3, (1, 4, 16))
    """

    def __init__(self, conv_dim=_ENCODER_DEFAULTS["conv_dim"],
                 conv_kernel=_ENCODER_DEFAULTS["conv_kernel"],
                 conv_stride=_ENCODER_DEFAULTS["conv_stride"], conv_bias=False,
                 feat_extract_norm="group", feat_extract_activation="gelu",
                 feat_proj_layer_norm=True, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                 layer_norm_eps=1e-5, num_conv_pos_embeddings=128,
                 num_conv_pos_embedding_groups=16, do_stable_layer_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.conv_dim = [int(c) for c in conv_dim]
        self.conv_kernel = [int(k) for k in conv_kernel]
        self.conv_stride = [int(s) for s in conv_stride]
        self.conv_bias = bool(conv_bias)
        self.feat_extract_norm = feat_extract_norm
        self.feat_extract_activation = feat_extract_activation
        self.feat_proj_layer_norm = bool(feat_proj_layer_norm)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = hidden_act
        self.layer_norm_eps = float(layer_norm_eps)
        self.num_conv_pos_embeddings = int(num_conv_pos_embeddings)
        self.num_conv_pos_embedding_groups = int(num_conv_pos_embedding_groups)
        self.do_stable_layer_norm = bool(do_stable_layer_norm)

        self.feature_encoder = HubertFeatureEncoder(
            self.conv_dim, self.conv_kernel, self.conv_stride, conv_bias=self.conv_bias,
            norm_mode=feat_extract_norm, activation=feat_extract_activation,
            name="feature_encoder")
        self.projection_norm = (keras.layers.LayerNormalization(
            epsilon=self.layer_norm_eps, name="projection_norm")
            if self.feat_proj_layer_norm else None)
        self.projection = keras.layers.Dense(
            self.hidden_size, kernel_initializer=HostNormalInitializer(0.02),
            name="projection")
        self.pos_conv = HubertPositionalConvEmbedding(
            self.hidden_size, self.num_conv_pos_embeddings, self.num_conv_pos_embedding_groups,
            activation=feat_extract_activation, name="pos_conv")
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_eps,
                                                            name="encoder_norm")
        self.transformer_layers = [
            HubertTransformerLayer(self.hidden_size, self.num_attention_heads,
                                   self.intermediate_size, hidden_act=hidden_act,
                                   layer_norm_eps=self.layer_norm_eps,
                                   stable_layer_norm=self.do_stable_layer_norm,
                                   name=f"layer_{i}")
            for i in range(self.num_hidden_layers)
        ]

    @property
    def num_hidden_states(self):
        return self.num_hidden_layers + 1

    @property
    def hop_length(self):
        return math.prod(self.conv_stride)

    def num_frames(self, num_samples):
        """Frames for ``num_samples`` samples (``floor((n - 400) / 320) + 1`` usually)."""
        return conv_output_length(num_samples, self.conv_kernel, self.conv_stride)

    @property
    def min_samples(self):
        return receptive_field(self.conv_kernel, self.conv_stride)

    def build(self, input_shape=None):
        if self.built:
            return
        # Built from shapes, not by a forward pass: on JAX a forward pass compiles every op.
        self.feature_encoder.build((None, None))
        features = (None, None, self.conv_dim[-1])
        hidden = (None, None, self.hidden_size)
        if self.projection_norm is not None:
            self.projection_norm.build(features)
        self.projection.build(features)
        self.pos_conv.build(hidden)
        self.encoder_norm.build(hidden)
        for layer in self.transformer_layers:
            layer.build(hidden)
        self.built = True

    def build_from_config(self, config):
        self.build()

    def call(self, audio):
        x = self.feature_encoder(audio)
        if self.projection_norm is not None:
            x = self.projection_norm(x)
        x = self.projection(x)
        x = x + self.pos_conv(x)
        if not self.do_stable_layer_norm:
            x = self.encoder_norm(x)
        hidden_states = [x]
        for layer in self.transformer_layers:
            x = layer(x)
            hidden_states.append(x)
        last = self.encoder_norm(x) if self.do_stable_layer_norm else x
        return {"hidden_states": hidden_states, "last_hidden_state": last}

    def get_config(self):
        config = super().get_config()
        config.update(encoder_config(self))
        return config


def encoder_config(encoder):
    """The ``HubertEncoder`` constructor arguments of ``encoder``."""
    return {key: getattr(encoder, key) for key in _ENCODER_DEFAULTS}


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class HubertForCTC(keras.Model):
    """``HubertEncoder`` plus a Dense CTC head (``Wav2Vec2ForCTC`` / ``HubertForCTC``).

    Returns logits ``[batch, frames, vocab_size]`` from the encoder's
    ``last_hidden_state`` (final LayerNorm included for stable-layer-norm models).

    Args:
        vocab_size: int. CTC vocabulary size (blank included).
        **encoder_kwargs: ``HubertEncoder`` arguments.

    Example:
    >>> model = HubertForCTC(5, conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=32,
    ...                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> model.build()
    >>> tuple(model.lm_head.kernel.shape)
    (16, 5)
    >>> model.predict_on_batch(np.zeros((1, 1600), "float32")).shape  # doctest: +SKIP
    (1, 4, 5)
    """

    def __init__(self, vocab_size, name=None, dtype=None, trainable=True, **encoder_kwargs):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.vocab_size = int(vocab_size)
        self.encoder = HubertEncoder(name="encoder", **encoder_kwargs)
        self.lm_head = keras.layers.Dense(
            self.vocab_size, kernel_initializer=HostNormalInitializer(0.02), name="lm_head")

    def build(self, input_shape=None):
        if self.built:
            return
        self.encoder.build()
        self.lm_head.build((None, None, self.encoder.hidden_size))
        self.built = True

    def call(self, audio):
        return self.lm_head(self.encoder(audio)["last_hidden_state"])

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, **encoder_config(self.encoder))
        return config


# ---------------------------------------------------------------------------------------------
# Loading Hugging Face directories.

_SUPPORTED_MODEL_TYPES = ("hubert", "wav2vec2")
# Tensors of pre-training / fine-tuning heads that the encoder does not use.
_IGNORED_PREFIXES = ("masked_spec_embed", "lm_head.", "quantizer.", "project_q.",
                     "project_hid.", "dropout_features", "label_embs_concat", "final_proj.")


def encoder_kwargs_from_hf_config(config, source="config.json"):
    """``HubertEncoder`` arguments from a transformers ``HubertConfig`` / ``Wav2Vec2Config`` dict.

    Raises ``HFWeightsError`` (one line) for model types and options this
    implementation does not have (adapters, batch-norm positional conv, ...).
    """
    model_type = config.get("model_type")
    if model_type not in _SUPPORTED_MODEL_TYPES:
        raise HFWeightsError(f"{source}: model_type {model_type!r} is not supported "
                             f"(supported: {', '.join(_SUPPORTED_MODEL_TYPES)})")
    for flag in ("conv_pos_batch_norm", "add_adapter", "use_weighted_layer_sum"):
        if config.get(flag):
            raise HFWeightsError(f"{source}: {flag}=true is not supported")
    if config.get("adapter_attn_dim") is not None:
        raise HFWeightsError(f"{source}: attention adapters (adapter_attn_dim) are not supported")
    kwargs = {}
    for key, default in _ENCODER_DEFAULTS.items():
        kwargs[key] = config.get(key, default)
    # Wav2Vec2FeatureProjection always has its LayerNorm; only HuBERT makes it optional.
    if model_type == "wav2vec2":
        kwargs["feat_proj_layer_norm"] = True
    layers = config.get("num_feat_extract_layers", len(kwargs["conv_dim"]))
    if not len(kwargs["conv_dim"]) == len(kwargs["conv_kernel"]) == len(kwargs["conv_stride"]) \
            == layers:
        raise HFWeightsError(f"{source}: conv_dim, conv_kernel, conv_stride and "
                             "num_feat_extract_layers disagree in length")
    if kwargs["feat_extract_norm"] not in ("group", "layer"):
        raise HFWeightsError(f"{source}: feat_extract_norm {kwargs['feat_extract_norm']!r} "
                             "is not 'group' or 'layer'")
    for key in ("feat_extract_activation", "hidden_act"):
        if kwargs[key] not in _ACTIVATIONS:
            raise HFWeightsError(f"{source}: {key} {kwargs[key]!r} is not supported")
    if kwargs["hidden_size"] % kwargs["num_attention_heads"]:
        raise HFWeightsError(f"{source}: hidden_size is not divisible by num_attention_heads")
    if kwargs["hidden_size"] % kwargs["num_conv_pos_embedding_groups"]:
        raise HFWeightsError(f"{source}: hidden_size is not divisible by "
                             "num_conv_pos_embedding_groups")
    return kwargs


def _load_encoder_weights(encoder, loader):
    """Copies HF tensors (names without the ``hubert.``/``wav2vec2.`` prefix) into ``encoder``."""
    conv_t = (2, 1, 0)  # torch Conv1d (out, in, k) -> Keras (k, in, out)
    fe = encoder.feature_encoder
    for i in range(len(fe.conv_dim)):
        prefix = f"feature_extractor.conv_layers.{i}."
        loader.assign(fe.kernels[i], prefix + "conv.weight", conv_t)
        if fe.biases[i] is not None:
            loader.assign(fe.biases[i], prefix + "conv.bias")
        if i < len(fe.norm_gammas):
            loader.assign(fe.norm_gammas[i], prefix + "layer_norm.weight")
            loader.assign(fe.norm_betas[i], prefix + "layer_norm.bias")
    if encoder.projection_norm is not None:
        loader.assign(encoder.projection_norm.gamma, "feature_projection.layer_norm.weight")
        loader.assign(encoder.projection_norm.beta, "feature_projection.layer_norm.bias")
    loader.assign(encoder.projection.kernel, "feature_projection.projection.weight", (1, 0))
    loader.assign(encoder.projection.bias, "feature_projection.projection.bias")

    pos = encoder.pos_conv
    name = "encoder.pos_conv_embed.conv."
    # torch.nn.utils.weight_norm saves weight_g / weight_v (older checkpoints such as
    # facebook/hubert-base-ls960); torch.nn.utils.parametrizations.weight_norm, which
    # transformers 5 uses, saves parametrizations.weight.original0 (g) / original1 (v).
    for g_name, v_name in ((name + "weight_g", name + "weight_v"),
                           (name + "parametrizations.weight.original0",
                            name + "parametrizations.weight.original1")):
        if loader.has(v_name) or loader.has(g_name):
            g = loader.get(g_name, (1, 1, pos.kernel_size))
            pos.kernel_g.assign(g.reshape(-1))
            loader.assign(pos.kernel_v, v_name, conv_t)
            break
    else:
        # A plain weight (weight norm folded in): v = weight, g = ||weight|| per tap.
        weight = loader.get(name + "weight", tuple(pos.kernel_v.shape), conv_t)
        pos.kernel_v.assign(weight)
        pos.kernel_g.assign(np.sqrt(np.sum(np.square(weight), axis=(1, 2))))
    loader.assign(pos.bias, name + "bias")
    loader.assign(encoder.encoder_norm.gamma, "encoder.layer_norm.weight")
    loader.assign(encoder.encoder_norm.beta, "encoder.layer_norm.bias")

    for i, layer in enumerate(encoder.transformer_layers):
        prefix = f"encoder.layers.{i}."
        dense = {"attention.q_proj": layer.q_proj, "attention.k_proj": layer.k_proj,
                 "attention.v_proj": layer.v_proj, "attention.out_proj": layer.out_proj,
                 "feed_forward.intermediate_dense": layer.intermediate_dense,
                 "feed_forward.output_dense": layer.output_dense}
        for hf_name, keras_layer in dense.items():
            loader.assign(keras_layer.kernel, prefix + hf_name + ".weight", (1, 0))
            loader.assign(keras_layer.bias, prefix + hf_name + ".bias")
        for hf_name, norm in (("layer_norm", layer.layer_norm),
                              ("final_layer_norm", layer.final_layer_norm)):
            loader.assign(norm.gamma, prefix + hf_name + ".weight")
            loader.assign(norm.beta, prefix + hf_name + ".bias")
    extra = f"encoder.layers.{len(encoder.transformer_layers)}."
    if any(key.startswith(extra) for key in loader.tensors):
        raise HFWeightsError(f"{loader.source} has more transformer layers than "
                             f"num_hidden_layers={len(encoder.transformer_layers)}")


def _read_directory(directory):
    config = hf_weights.read_config(directory)
    kwargs = encoder_kwargs_from_hf_config(config, source=str(Path(directory) / "config.json"))
    tensors, path = hf_weights.load_state_dict(directory)
    tensors = hf_weights.strip_prefix(tensors, ("hubert.", "wav2vec2."))
    return config, kwargs, tensors, path


def load_hubert_encoder(directory):
    """A ``HubertEncoder`` with the weights of a local HF HuBERT / wav2vec 2.0 directory.

    Accepts base-model checkpoints (``HubertModel``, ``Wav2Vec2Model``: no name
    prefix) and head checkpoints (``Wav2Vec2ForCTC``: ``wav2vec2.`` prefix, the
    head ignored). Returns ``(encoder, config_dict)``.
    """
    config, kwargs, tensors, path = _read_directory(directory)
    encoder = HubertEncoder(name="hubert_encoder", **kwargs)
    encoder.build()
    loader = hf_weights.WeightLoader(tensors, path, ignore_prefixes=_IGNORED_PREFIXES)
    _load_encoder_weights(encoder, loader)
    loader.finish()
    return encoder, config


def load_hubert_for_ctc(directory):
    """A ``HubertForCTC`` from a local ``Wav2Vec2ForCTC`` / ``HubertForCTC`` directory.

    Returns ``(model, config_dict)``.
    """
    config, kwargs, tensors, path = _read_directory(directory)
    if "lm_head.weight" not in tensors:
        raise HFWeightsError(f"{path.name} has no lm_head: not a CTC checkpoint "
                             "(Wav2Vec2ForCTC / HubertForCTC)")
    vocab_size = tensors["lm_head.weight"].shape[0]
    if config.get("vocab_size") not in (None, vocab_size):
        raise HFWeightsError(f"lm_head.weight in {path.name} has {vocab_size} outputs, "
                             f"config.json says vocab_size={config['vocab_size']}")
    model = HubertForCTC(vocab_size, name="hubert_ctc", **kwargs)
    model.build()
    loader = hf_weights.WeightLoader(
        tensors, path, ignore_prefixes=tuple(p for p in _IGNORED_PREFIXES if p != "lm_head."))
    _load_encoder_weights(model.encoder, loader)
    loader.assign(model.lm_head.kernel, "lm_head.weight", (1, 0))
    loader.assign(model.lm_head.bias, "lm_head.bias")
    loader.finish()
    return model, config


def read_do_normalize(directory, config):
    """Whether the checkpoint expects zero-mean unit-variance input.

    From ``preprocessor_config.json`` (the HF feature extractor config) when
    present, else ``tokenizer_config.json`` (``Wav2Vec2Tokenizer`` also
    normalises), else fairseq's convention, which the HF conversion scripts
    follow: normalise only ``feat_extract_norm="layer"`` models.
    """
    directory = Path(directory)
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        values = hf_weights.read_json(directory / name, required=False)
        if values is not None and "do_normalize" in values:
            return bool(values["do_normalize"])
    return config.get("feat_extract_norm", "group") == "layer"


# ---------------------------------------------------------------------------------------------
# Audio checks and normalisation shared by the teacher and the transcriber.

def _check_audio(audio, min_samples):
    """``audio`` as float32 ``[batch, samples]``, or a one-line ValueError."""
    array = np.asarray(audio)
    if array.dtype.kind not in "f":
        raise ValueError(f"audio must be floating point, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"audio must be [batch, samples], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"audio is empty (shape {array.shape})")
    if array.shape[1] < min_samples:
        raise ValueError(f"audio has {array.shape[1]} samples; the encoder needs at least "
                         f"{min_samples}")
    if not np.all(np.isfinite(array)):
        raise ValueError("audio contains NaN or infinite values")
    return array.astype(np.float32, copy=False)


def normalize_audio(audio):
    """Zero mean, unit variance per utterance, as ``Wav2Vec2FeatureExtractor`` (eps 1e-7)."""
    audio = np.asarray(audio, np.float64)
    mean = audio.mean(axis=-1, keepdims=True)
    var = audio.var(axis=-1, keepdims=True)
    return ((audio - mean) / np.sqrt(var + 1e-7)).astype(np.float32)


class HubertTeacher:
    """The speech (SM) teacher: HuBERT / wav2vec 2.0 features at 50 frames per second.

    Implements the SM teacher interface: ``name``, ``sample_rate``,
    ``frame_rate``, ``dimension``, ``num_hidden_states``, ``features(audio,
    layer)`` and ``num_frames(num_samples)``. ``layer="avg"`` is the mean of all
    hidden states, as the DM-Codec reference (``extract_rep.py``) distils; an
    int indexes the hidden states (negative from the end). The model is frozen.

    Args:
        encoder: a built ``HubertEncoder``.
        name: str. Teacher name (recorded with cached features).
        do_normalize: bool. Normalise each utterance to zero mean, unit variance first.
        sample_rate: int. Input sample rate (16000 for every released model).

    Example:
    >>> encoder = HubertEncoder(conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=2,
    ...                         num_attention_heads=2, intermediate_size=32,
    ...                         num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> teacher = HubertTeacher(encoder, name="tiny")
    >>> teacher.num_hidden_states, teacher.frame_rate, teacher.num_frames(16000)
    (3, 50.0, 49)
    >>> teacher.features(np.zeros((2, 1600), "float32"), layer="avg").shape  # doctest: +SKIP
    (2, 4, 16)
    """

    def __init__(self, encoder, name="hubert", do_normalize=False, sample_rate=16000):
        self.encoder = encoder
        self.encoder.trainable = False
        self.name = name
        self.do_normalize = bool(do_normalize)
        self.sample_rate = int(sample_rate)

    @classmethod
    def from_pretrained(cls, directory, name=None, do_normalize=None):
        """Loads a local HF directory (e.g. a saved ``facebook/hubert-base-ls960``).

        ``name`` defaults to the directory's name; ``do_normalize`` to the
        directory's feature-extractor config (see ``read_do_normalize``).
        """
        encoder, config = load_hubert_encoder(directory)
        if do_normalize is None:
            do_normalize = read_do_normalize(directory, config)
        return cls(encoder, name=name or Path(directory).resolve().name,
                   do_normalize=do_normalize)

    @property
    def frame_rate(self):
        return self.sample_rate / self.encoder.hop_length

    @property
    def dimension(self):
        return self.encoder.hidden_size

    @property
    def num_hidden_states(self):
        return self.encoder.num_hidden_states

    def num_frames(self, num_samples):
        return self.encoder.num_frames(num_samples)

    def _layer_index(self, layer):
        n = self.num_hidden_states
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            if not -n <= layer < n:
                raise ValueError(f"layer {layer} is out of range for {n} hidden states")
            return int(layer) % n
        if layer == "avg":
            return None
        raise ValueError(f"layer must be 'avg' or an int index, not {layer!r}")

    def hidden_states(self, audio):
        """Every hidden state as float32 numpy ``[batch, frames, dimension]`` arrays."""
        audio = _check_audio(audio, self.encoder.min_samples)
        if self.do_normalize:
            audio = normalize_audio(audio)
        # predict_on_batch runs compiled (jax.jit / tf.function) and without autograd (torch):
        # one compilation per input shape, much faster on JAX than op-by-op eager dispatch.
        outputs = self.encoder.predict_on_batch(audio)
        return [np.asarray(h, np.float32) for h in outputs["hidden_states"]]

    def features(self, audio, layer="avg"):
        """Teacher features, float32 ``[batch, frames, dimension]``.

        Args:
            audio: float ``[batch, samples]`` at ``sample_rate``.
            layer: ``"avg"`` (mean of all hidden states) or an int index.
        """
        index = self._layer_index(layer)
        hidden = self.hidden_states(audio)
        if index is None:
            return np.mean(np.stack(hidden, axis=0), axis=0, dtype=np.float32)
        return hidden[index]


# ---------------------------------------------------------------------------------------------
# Greedy CTC transcription (the reference's ASR: facebook/wav2vec2-base-960h).

# transformers tokenization_utils_base.clean_up_tokenization, in order.
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class CTCVocabulary:
    """A CTC vocabulary and greedy decoding with word timings, as ``Wav2Vec2CTCTokenizer``.

    Decoding merges repeated ids, drops the blank (``pad_token``), turns the
    word delimiter into a space and strips (``convert_tokens_to_string`` in
    transformers ``models/wav2vec2/tokenization_wav2vec2.py``). Word spans come
    from the frames of their characters (``_compute_offsets`` and
    ``_get_word_offsets``): a word starts at its first character's first frame
    and ends after its last character's last frame.

    Args:
        tokens: list of str, the token of each id.
        pad_token: str. The CTC blank.
        word_delimiter_token: str. The word separator (``"|"``).
        unk_token: str. Written for ids outside the vocabulary.
        do_lower_case: bool. Lower-case the output.
        replace_word_delimiter_char: str. What the delimiter becomes in the text.
        clean_up_tokenization_spaces: bool. Remove spaces before punctuation and
            contractions in the text, as transformers' ``clean_up_tokenization``.

    Example:
    >>> vocab = CTCVocabulary(["<pad>", "|", "A", "B"])
    >>> t = vocab.decode([2, 2, 0, 3, 1, 1, 3, 0], frame_rate=50.0)
    >>> t.text, [(w.text, w.start, w.end) for w in t.words]
    ('AB B', [('AB', 0.0, 0.08), ('B', 0.12, 0.14)])
    """

    def __init__(self, tokens, pad_token="<pad>", word_delimiter_token="|", unk_token="<unk>",
                 do_lower_case=False, replace_word_delimiter_char=" ",
                 clean_up_tokenization_spaces=False):
        self.tokens = list(tokens)
        if pad_token not in self.tokens:
            raise ValueError(f"the CTC blank {pad_token!r} is not in the vocabulary")
        self.pad_token = pad_token
        self.word_delimiter_token = word_delimiter_token
        self.unk_token = unk_token
        self.do_lower_case = bool(do_lower_case)
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)

    @classmethod
    def from_directory(cls, directory):
        """Reads ``vocab.json`` (+ ``tokenizer_config.json`` / ``special_tokens_map.json``)."""
        directory = Path(directory)
        vocab = hf_weights.read_json(directory / "vocab.json")
        if vocab and all(isinstance(v, dict) for v in vocab.values()):
            raise HFWeightsError(f"{directory / 'vocab.json'} is a multi-language vocabulary; "
                                 "only single-language CTC vocabularies are supported")
        if not vocab or not all(isinstance(v, int) and not isinstance(v, bool)
                                for v in vocab.values()):
            raise HFWeightsError(f"{directory / 'vocab.json'} must map tokens to integer ids")
        size = max(vocab.values()) + 1
        tokens = [None] * size
        for token, index in vocab.items():
            if index < 0:
                raise HFWeightsError(f"{directory / 'vocab.json'} has a negative id for {token!r}")
            tokens[index] = token
        settings = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            values = hf_weights.read_json(directory / name, required=False) or {}
            settings.update({k: v for k, v in values.items() if v is not None})

        def token_setting(key, default):
            value = settings.get(key, default)
            return value.get("content", default) if isinstance(value, dict) else value

        unk = token_setting("unk_token", "<unk>")
        tokens = [unk if t is None else t for t in tokens]
        pad = token_setting("pad_token", "<pad>")
        if pad not in vocab:
            raise HFWeightsError(f"{directory / 'vocab.json'} lacks the CTC blank {pad!r}")
        return cls(tokens, pad_token=pad,
                   word_delimiter_token=token_setting("word_delimiter_token", "|"),
                   unk_token=unk, do_lower_case=bool(settings.get("do_lower_case", False)),
                   replace_word_delimiter_char=settings.get("replace_word_delimiter_char", " "),
                   clean_up_tokenization_spaces=bool(
                       settings.get("clean_up_tokenization_spaces", False)))

    def __len__(self):
        return len(self.tokens)

    def token(self, index):
        return self.tokens[index] if 0 <= index < len(self.tokens) else self.unk_token

    def decode(self, ids, frame_rate=50.0, source="ctc"):
        """A ``Transcript`` (words timed in seconds) from per-frame ids ``[frames]``.

        ``frame_rate`` is frames per second (50 for a 320-sample hop at 16 kHz).
        """
        groups = []  # (char, start_frame, end_frame) of each run of one id
        for frame, index in enumerate(np.asarray(ids).reshape(-1).tolist()):
            char = self.token(index)
            if groups and groups[-1][0] == char:
                groups[-1][2] = frame + 1
            else:
                groups.append([char, frame, frame + 1])
        space = self.replace_word_delimiter_char
        chars = [(space if char == self.word_delimiter_token else char, start, end)
                 for char, start, end in groups if char != self.pad_token]
        text = "".join(char for char, _, _ in chars).strip()
        words, current = [], None
        for char, start, end in chars:
            if char == space:
                if current is not None:
                    words.append(current)
                current = None
            elif current is None:
                current = [char, start, end]
            else:
                current[0] += char
                current[2] = end
        if current is not None:
            words.append(current)
        if self.do_lower_case:
            text = text.lower()
            words = [[w.lower(), s, e] for w, s, e in words]
        if self.clean_up_tokenization_spaces:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return Transcript(text=text, words=[Word(w, s / frame_rate, e / frame_rate)
                                            for w, s, e in words], source=source)


class CTCTranscriber:
    """Greedy CTC speech recognition with word timings (``Wav2Vec2ForCTC`` weights).

    The DM-Codec reference transcribes with ``facebook/wav2vec2-base-960h``:
    argmax per frame, then ``batch_decode``. This does the same in Keras and
    also times each word from its CTC frames (0.02 s per frame at 16 kHz).

    Args:
        model: a built ``HubertForCTC``.
        vocabulary: ``CTCVocabulary`` (its size must match the model's head).
        do_normalize: bool. Normalise each utterance first (true for wav2vec2-base-960h).
        sample_rate: int. Input sample rate.

    Example:
    >>> model = HubertForCTC(4, conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=32,
    ...                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> asr = CTCTranscriber(model, CTCVocabulary(["<pad>", "|", "A", "B"]))
    >>> asr.frame_rate
    50.0
    >>> transcripts = asr.transcribe(np.zeros((1, 1600), "float32"))  # doctest: +SKIP
    >>> transcripts[0].text, transcripts[0].words  # doctest: +SKIP
    ('AB', [Word(text='AB', start=0.02, end=0.06)])
    """

    def __init__(self, model, vocabulary, do_normalize=True, sample_rate=16000):
        if len(vocabulary) > model.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocabulary)} tokens, the CTC head "
                             f"{model.vocab_size} outputs")
        self.model = model
        self.model.trainable = False
        self.vocabulary = vocabulary
        self.do_normalize = bool(do_normalize)
        self.sample_rate = int(sample_rate)

    @classmethod
    def from_pretrained(cls, directory, do_normalize=None):
        """Loads a local HF ``Wav2Vec2ForCTC`` directory (weights, config, vocab.json)."""
        model, config = load_hubert_for_ctc(directory)
        vocabulary = CTCVocabulary.from_directory(directory)
        if do_normalize is None:
            do_normalize = read_do_normalize(directory, config)
        return cls(model, vocabulary, do_normalize=do_normalize)

    @property
    def frame_rate(self):
        return self.sample_rate / self.model.encoder.hop_length

    def logits(self, audio):
        """CTC logits, float32 ``[batch, frames, vocab_size]``, for ``[batch, samples]`` audio."""
        audio = _check_audio(audio, self.model.encoder.min_samples)
        if self.do_normalize:
            audio = normalize_audio(audio)
        return np.asarray(self.model.predict_on_batch(audio), np.float32)

    def transcribe(self, audio):
        """One ``Transcript`` per utterance (words with start/end seconds).

        ``audio``: float ``[batch, samples]`` or a list of 1-D arrays of any lengths
        (each then runs alone, so no padding changes its normalisation or logits).
        """
        if isinstance(audio, (list, tuple)):
            return [self.transcribe(np.asarray(a)[None])[0] for a in audio]
        ids = np.argmax(self.logits(audio), axis=-1)
        return [self.vocabulary.decode(row, self.frame_rate) for row in ids]
