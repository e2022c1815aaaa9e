"""HuBERT and wav2vec 2.0 in Keras 3: the speech (SM) teacher and the CTC model for the ASR.

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

Modules, one idea each (as keras-hub splits a model family):

- ``layers``: ``HubertFeatureEncoder``, ``HubertPositionalConvEmbedding``,
  ``HubertTransformerLayer`` (and ``HostNormalInitializer``);
- ``encoder``: ``HubertEncoder`` (every hidden state) and ``HubertForCTC`` (+ CTC head);
- ``convert``: Hugging Face config and weights to those models (``load_hubert_encoder``,
  ``load_hubert_for_ctc``, ``read_do_normalize``);
- ``teacher``: ``HubertTeacher`` and the audio checks and normalisation it needs.

The greedy CTC transcriber on ``HubertForCTC`` is ``keras_dmcodec.asr.CTCTranscriber``.
"""

from keras_dmcodec.teachers.hubert.convert import (
    encoder_kwargs_from_hf_config,
    load_hubert_encoder,
    load_hubert_for_ctc,
    read_do_normalize,
)
from keras_dmcodec.teachers.hubert.encoder import (
    ENCODER_DEFAULTS,
    HubertEncoder,
    HubertForCTC,
    encoder_config,
)
from keras_dmcodec.teachers.hubert.layers import (
    ACTIVATIONS,
    HostNormalInitializer,
    HubertFeatureEncoder,
    HubertPositionalConvEmbedding,
    HubertTransformerLayer,
    conv_output_length,
    receptive_field,
)
from keras_dmcodec.teachers.hubert.teacher import HubertTeacher, check_audio, normalize_audio

__all__ = [
    "ACTIVATIONS",
    "ENCODER_DEFAULTS",
    "HostNormalInitializer",
    "HubertEncoder",
    "HubertFeatureEncoder",
    "HubertForCTC",
    "HubertPositionalConvEmbedding",
    "HubertTeacher",
    "HubertTransformerLayer",
    "check_audio",
    "conv_output_length",
    "encoder_config",
    "encoder_kwargs_from_hf_config",
    "load_hubert_encoder",
    "load_hubert_for_ctc",
    "normalize_audio",
    "read_do_normalize",
    "receptive_field",
]
