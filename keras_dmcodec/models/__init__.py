from keras_dmcodec.models.dmcodec import DMCodec

__all__ = ["DMCodec"]
