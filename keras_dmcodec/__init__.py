"""keras-dmcodec: DM-Codec speech tokenizer in Keras 3 (TensorFlow, JAX, PyTorch)."""

__version__ = "0.1.0"

from keras_dmcodec.layers import (  # noqa: E402
    NormConv1D,
    NormConv1DTranspose,
    ResidualVectorQuantizer,
    SEANetDecoder,
    SEANetEncoder,
    SEANetResnetBlock,
    SLSTM,
    VectorQuantizer,
)
from keras_dmcodec.models import DMCodec  # noqa: E402

__all__ = [
    "DMCodec",
    "NormConv1D",
    "NormConv1DTranspose",
    "ResidualVectorQuantizer",
    "SEANetDecoder",
    "SEANetEncoder",
    "SEANetResnetBlock",
    "SLSTM",
    "VectorQuantizer",
    "__version__",
]
