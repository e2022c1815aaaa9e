"""Reconstruction metrics (numpy; independent of the Keras backend)."""

from keras_dmcodec.evaluation.metrics import mel_distance, si_snr, snr, stoi

__all__ = ["mel_distance", "si_snr", "snr", "stoi"]
