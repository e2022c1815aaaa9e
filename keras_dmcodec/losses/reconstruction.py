"""Reconstruction losses: time-domain L1 and the reference's multi-scale mel loss."""

import keras
import numpy as np
from keras import ops


def time_l1_loss(audio, audio_hat):
    """Mean absolute error over the common length of ``[batch, samples]`` waveforms."""
    n = min(audio.shape[-1], audio_hat.shape[-1])
    return ops.mean(ops.abs(audio[..., :n] - audio_hat[..., :n]))


def mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, fmax=None):
    """Slaney-normalised HTK-scale mel filters ``[n_fft // 2 + 1, n_mels]`` (torchaudio's MelScale
    with ``norm="slaney", mel_scale="htk"``, as the reference uses)."""
    import librosa

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                             fmax=fmax if fmax is not None else sample_rate / 2, htk=True,
                             norm="slaney")
    return np.ascontiguousarray(fb.T, dtype=np.float32)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class MelSpectrogram(keras.layers.Layer):
    """Log-mel spectrogram as the reference's ``mel_spectrogram`` (HiFi-GAN style).

    Reflect-pads ``(n_fft - hop) / 2`` on both sides, STFT without centring
    (periodic Hann window of ``win_length``), magnitude ``|X| + 1e-9``, mel
    filters (Slaney norm, HTK scale, ``fmin`` to ``fmax``), ``log(max(., 1e-5))``.
    Output ``[batch, frames, n_mels]``.

    Args:
        sample_rate: int. Audio rate.
        n_fft: int. FFT size.
        hop_length: int. Hop.
        win_length: int. Window length (= n_fft in the reference).
        n_mels: int. Mel bands.
        fmin: float. Lowest frequency.
        fmax: float or None. Highest frequency (None: Nyquist).

    Example:
    >>> mel = MelSpectrogram(16000, 512, 120, 512)
    >>> tuple(mel(keras.ops.ones((1, 4800))).shape)
    (1, 40, 80)
    """

    def __init__(self, sample_rate=16000, n_fft=1024, hop_length=240, win_length=1024,
                 n_mels=80, fmin=0.0, fmax=None, **kwargs):
        super().__init__(**kwargs)
        if win_length != n_fft:
            raise ValueError("win_length must equal n_fft (the reference's configuration)")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self._filters = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin,
                                       self.fmax)

    def call(self, audio):
        pad = (self.n_fft - self.hop_length) // 2
        x = ops.pad(ops.cast(audio, "float32"), [[0, 0], [pad, pad]], mode="reflect")
        real, imag = ops.stft(x, self.win_length, self.hop_length, self.n_fft, window="hann",
                              center=False)
        # Clamped under the root: sqrt has an infinite gradient at an exactly-zero bin.
        magnitude = ops.sqrt(ops.maximum(real * real + imag * imag, 1e-18)) + 1e-9
        mel = ops.matmul(magnitude, ops.convert_to_tensor(self._filters))
        return ops.log(ops.maximum(mel, 1e-5))

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                      win_length=self.win_length, n_mels=self.n_mels, fmin=self.fmin,
                      fmax=self.fmax)
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class MultiScaleMelLoss(keras.layers.Layer):
    """Weighted sum of mel L1 losses at halving resolutions (reference: 1024/240 ... 128/30).

    Scale ``i`` uses ``n_fft = win = n_fft // 2**i`` and ``hop = hop_length // 2**i``.

    Args:
        sample_rate: int. Audio rate.
        n_fft: int. Largest FFT size.
        hop_length: int. Largest hop.
        n_mels: int. Mel bands.
        weights: list of float. Per-scale weights (reference 45, 1, 1, 1).
        fmin: float. Lowest frequency.
        fmax: float or None. Highest frequency.

    Example:
    >>> loss = MultiScaleMelLoss(weights=(1.0, 1.0))
    >>> float(loss(keras.ops.ones((1, 4800)), keras.ops.ones((1, 4800))))
    0.0
    """

    def __init__(self, sample_rate=16000, n_fft=1024, hop_length=240, n_mels=80,
                 weights=(45.0, 1.0, 1.0, 1.0), fmin=0.0, fmax=None, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.scale_weights = [float(w) for w in weights]
        self.fmin = float(fmin)
        self.fmax = fmax
        self.mels = [
            MelSpectrogram(self.sample_rate, self.n_fft // 2**i, self.hop_length // 2**i,
                           self.n_fft // 2**i, self.n_mels, self.fmin, self.fmax,
                           name=f"mel_{i}")
            for i in range(len(self.scale_weights))
        ]

    def scale_losses(self, audio, audio_hat):
        """Unweighted L1 distance of log-mels at each scale."""
        out = []
        for mel in self.mels:
            a, b = mel(audio), mel(audio_hat)
            n = min(a.shape[1], b.shape[1])
            out.append(ops.mean(ops.abs(a[:, :n] - b[:, :n])))
        return out

    def call(self, audio, audio_hat):
        losses = self.scale_losses(audio, audio_hat)
        return sum(w * loss for w, loss in zip(self.scale_weights, losses, strict=True))

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                      n_mels=self.n_mels, weights=self.scale_weights, fmin=self.fmin,
                      fmax=self.fmax)
        return config
