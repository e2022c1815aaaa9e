"""The HuBERT / wav2vec 2.0 encoder (every hidden state) and its CTC model.

``HubertEncoder`` returns every hidden state as transformers 5.24 does with
``output_hidden_states=True``: ``num_hidden_layers + 1`` tensors, the first being
the transformer's input (after the embedding LayerNorm for post-LN models, before
any LayerNorm for stable-layer-norm models), then each layer's output. For
stable-layer-norm models the final LayerNorm is in ``last_hidden_state`` only,
not in ``hidden_states[-1]`` (transformers 4.x put it in both). ``HubertForCTC``
adds the Dense CTC head of ``Wav2Vec2ForCTC`` / ``HubertForCTC``.
"""

import math

import keras

from keras_dmcodec.teachers.hubert.layers import (
    HostNormalInitializer,
    HubertFeatureEncoder,
    HubertPositionalConvEmbedding,
    HubertTransformerLayer,
    conv_output_length,
    receptive_field,
)

# Defaults are facebook/hubert-base-ls960's (and HubertConfig's) values.
ENCODER_DEFAULTS = dict(
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

    def __init__(self, conv_dim=ENCODER_DEFAULTS["conv_dim"],
                 conv_kernel=ENCODER_DEFAULTS["conv_kernel"],
                 conv_stride=ENCODER_DEFAULTS["conv_stride"], conv_bias=False,
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
    return {key: getattr(encoder, key) for key in ENCODER_DEFAULTS}


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

