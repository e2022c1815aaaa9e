"""Reconstruction metrics on numpy waveforms ``[samples]``."""

import numpy as np


def _pair(reference, estimate):
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim != 1:
        raise ValueError(
            f"expected two waveforms of the same shape [samples], got {reference.shape} and "
            f"{estimate.shape}"
        )
    return reference, estimate


def snr(reference, estimate):
    """Signal-to-noise ratio in dB of ``estimate`` against ``reference``."""
    reference, estimate = _pair(reference, estimate)
    noise = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(noise, 1e-20) + 1e-20))


def si_snr(reference, estimate):
    """Scale-invariant SNR in dB (both signals made zero-mean)."""
    reference, estimate = _pair(reference, estimate)
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = np.dot(estimate, reference) / max(np.dot(reference, reference), 1e-20)
    target = scale * reference
    noise = estimate - target
    return float(10 * np.log10(max(np.sum(target**2), 1e-20) / max(np.sum(noise**2), 1e-20)))


def mel_distance(reference, estimate, sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80):
    """Mean absolute difference of log-mel spectrograms (natural log, floor 1e-5)."""
    import librosa

    reference, estimate = _pair(reference, estimate)
    mels = [
        librosa.feature.melspectrogram(
            y=x.astype(np.float32), sr=sample_rate, n_fft=n_fft, hop_length=hop_length,
            n_mels=n_mels, power=1.0,
        )
        for x in (reference, estimate)
    ]
    logs = [np.log(np.maximum(m, 1e-5)) for m in mels]
    return float(np.mean(np.abs(logs[0] - logs[1])))


def stoi(reference, estimate, sample_rate=16000, extended=False):
    """Short-time objective intelligibility (pystoi); 1.0 for identical signals."""
    from pystoi import stoi as _stoi

    reference, estimate = _pair(reference, estimate)
    return float(_stoi(reference, estimate, sample_rate, extended=extended))
