"""Hugging Face HuBERT / wav2vec 2.0 directories to Keras: config and weight conversion.

Reads a local directory (``config.json`` + ``model.safetensors`` / sharded
safetensors / ``pytorch_model.bin`` read weights-only) of a ``HubertModel``,
``Wav2Vec2Model``, ``Wav2Vec2ForCTC`` or ``HubertForCTC`` checkpoint, as keras-hub
keeps its conversions in ``utils/transformers/convert_*.py``. Every problem is a
one-line ``HFWeightsError``.
"""

from pathlib import Path

import numpy as np

from keras_dmcodec.teachers import hf_weights
from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.hubert.encoder import ENCODER_DEFAULTS, HubertEncoder, HubertForCTC
from keras_dmcodec.teachers.hubert.layers import ACTIVATIONS

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
    for key, default in ENCODER_DEFAULTS.items():
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
        if kwargs[key] not in ACTIVATIONS:
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

