"""Converters from reference PyTorch checkpoints to Keras ``DMCodec`` models.

``keras_dmcodec.convert.speechtokenizer`` reads SpeechTokenizer / DM-Codec
state dicts (the two share one model definition). PyTorch is imported only
when a ``.pt`` checkpoint is read.
"""

from keras_dmcodec.convert.speechtokenizer import (
    config_from_reference,
    convert_checkpoint,
    convert_to_file,
    load_reference_weights,
    read_reference_config,
    read_state_dict,
    reference_weight_map,
)

__all__ = [
    "config_from_reference",
    "convert_checkpoint",
    "convert_to_file",
    "load_reference_weights",
    "read_reference_config",
    "read_state_dict",
    "reference_weight_map",
]
