"""keras-dmcodec: DM-Codec speech tokenizer in Keras 3 (TensorFlow, JAX, PyTorch).

Public names are imported lazily so that ``dmcodec --backend ...`` can choose the
Keras backend before Keras is first imported.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DMCodec": "keras_dmcodec.models.dmcodec",
    "NormConv1D": "keras_dmcodec.layers.conv",
    "NormConv1DTranspose": "keras_dmcodec.layers.conv",
    "ResidualVectorQuantizer": "keras_dmcodec.layers.quantization",
    "VectorQuantizer": "keras_dmcodec.layers.quantization",
    "SEANetDecoder": "keras_dmcodec.layers.seanet",
    "SEANetEncoder": "keras_dmcodec.layers.seanet",
    "SEANetResnetBlock": "keras_dmcodec.layers.seanet",
    "SLSTM": "keras_dmcodec.layers.seanet",
    "CTCTranscriber": "keras_dmcodec.asr",
    "HubertEncoder": "keras_dmcodec.teachers.hubert",
    "HubertTeacher": "keras_dmcodec.teachers.hubert",
    "PRESETS": "keras_dmcodec.presets",
    "resolve_model": "keras_dmcodec.models.loader",
    "save_preset": "keras_dmcodec.presets",
    "tokenize_corpus": "keras_dmcodec.pipelines.tokenize",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_dmcodec' has no attribute {name!r}")


def __dir__():
    return __all__
