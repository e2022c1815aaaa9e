from keras_dmcodec.layers.conv import NormConv1D, NormConv1DTranspose
from keras_dmcodec.layers.quantization import ResidualVectorQuantizer, VectorQuantizer
from keras_dmcodec.layers.seanet import SLSTM, SEANetDecoder, SEANetEncoder, SEANetResnetBlock

__all__ = [
    "NormConv1D",
    "NormConv1DTranspose",
    "ResidualVectorQuantizer",
    "SEANetDecoder",
    "SEANetEncoder",
    "SEANetResnetBlock",
    "SLSTM",
    "VectorQuantizer",
]
