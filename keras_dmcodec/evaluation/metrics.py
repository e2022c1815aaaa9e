"""Reconstruction metrics on numpy waveforms ``[samples]``."""

import numpy as np

from keras_dmcodec.audio import resample


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


def pesq_wb(reference, estimate, sample_rate=16000):
    """Wideband PESQ (ITU-T P.862.2, the ``pesq`` package), MOS-LQO from about 1.0 to 4.64.

    Both signals are resampled to 16 kHz when needed. Returns NaN when PESQ finds
    no speech in the reference (``NoUtterancesError``), e.g. for silence.
    """
    from pesq import NoUtterancesError, pesq

    reference, estimate = _pair(reference, estimate)
    if sample_rate != 16000:
        reference = resample(reference, sample_rate, 16000)
        estimate = resample(estimate, sample_rate, 16000)
    try:
        return float(pesq(16000, reference, estimate, "wb"))
    except NoUtterancesError:
        return float("nan")


VISQOL_MAPPERS = ("lattice", "polynomial")


class ViSQOLSpeech:
    """ViSQOL v3 in speech mode (16 kHz), via ``visqol-python`` (a port of Google's ViSQOL 3.3.3).

    ``mapper="lattice"`` is the C++ tool's default for speech mode (the deep-lattice
    TFLite model, run with ai-edge-litert): MOS-LQO of identical speech signals is
    about 4.2-4.4 (it varies with the signal). ``"polynomial"`` is the older mapping,
    scaled so that identical signals score 5.0. The NSIM similarity (``vnsim``, 1.0
    for identical signals) is the same for both. One instance keeps the model loaded;
    numba-compiled kernels are cached on disk after the first process that uses them.

    Args:
        mapper: ``"lattice"`` or ``"polynomial"``.

    Example:

    >>> visqol = ViSQOLSpeech(mapper="polynomial")
    >>> tone = np.sin(np.linspace(0, 800 * np.pi, 16000))
    >>> round(visqol(tone, tone)["moslqo"], 2)
    5.0
    """

    def __init__(self, mapper="lattice"):
        if mapper not in VISQOL_MAPPERS:
            raise ValueError(f"ViSQOL mapper must be one of {VISQOL_MAPPERS}, got {mapper!r}")
        import logging

        from visqol import VisqolApi

        self.mapper = mapper
        self._api = VisqolApi()
        # visqol logs a warning per call when it clips or realigns; results are unaffected.
        logging.getLogger("visqol").setLevel(logging.ERROR)
        self._api.create(mode="speech", use_lattice_model=mapper == "lattice")

    def __call__(self, reference, estimate, sample_rate=16000):
        """``{"moslqo": MOS-LQO, "vnsim": mean NSIM}`` of ``estimate`` against ``reference``."""
        reference, estimate = _pair(reference, estimate)
        if sample_rate != 16000:
            reference = resample(reference, sample_rate, 16000)
            estimate = resample(estimate, sample_rate, 16000)
        result = self._api.measure_from_arrays(reference, estimate, 16000)
        return {"moslqo": float(result.moslqo), "vnsim": float(result.vnsim)}


def reconstruction_scores(reference, estimate, sample_rate=16000, visqol=None):
    """Every reconstruction metric of one utterance, as ``dmcodec evaluate`` records them.

    Args:
        reference: float ``[samples]``, the original.
        estimate: float ``[samples]``, the reconstruction (same length).
        sample_rate: int.
        visqol: a ``ViSQOLSpeech`` (built once per run: it loads its model), or None
            for a new one with ViSQOL's own lattice mapping.

    Returns:
        dict with ``stoi``, ``visqol`` (MOS-LQO), ``visqol_nsim``, ``pesq``,
        ``mel_distance`` and ``si_snr``.
    """
    visqol = visqol or ViSQOLSpeech()
    estimate = np.asarray(estimate, np.float32)
    quality = visqol(reference, estimate, sample_rate)
    return {
        "stoi": stoi(reference, estimate, sample_rate),
        "visqol": quality["moslqo"],
        "visqol_nsim": quality["vnsim"],
        "pesq": pesq_wb(reference, estimate, sample_rate),
        "mel_distance": mel_distance(reference, estimate, sample_rate),
        "si_snr": si_snr(reference, estimate),
    }


def code_histograms(codes, codebook_size):
    """Counts of each code per quantizer: ``codes [n_q, frames]`` -> int64 ``[n_q, size]``."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"expected codes [n_q, frames], got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(f"codes out of range [0, {codebook_size}): found {codes.min()} to "
                         f"{codes.max()}")
    return np.stack([np.bincount(row.astype(np.int64), minlength=codebook_size)
                     for row in codes]).astype(np.int64)


def codebook_usage(counts):
    """Fraction of codes used at least once, per quantizer, from histograms ``[n_q, size]``."""
    counts = np.asarray(counts)
    return (counts > 0).sum(axis=-1) / counts.shape[-1]


def codebook_perplexity(counts):
    """Perplexity ``exp(H)`` of the code distribution per quantizer (natural-log entropy).

    Equals the codebook size for a uniform histogram and 1 when one code is used;
    NaN for a quantizer with no counts.

    >>> codebook_perplexity(np.full((2, 8), 5)).round(6).tolist()
    [8.0, 8.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = counts / totals
        entropy = -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=-1)
    return np.where(totals[..., 0] > 0, np.exp(entropy), np.nan)


def bitrate(n_q, codebook_size, frame_rate):
    """Bits per second of ``n_q`` codebooks of ``codebook_size`` codes at ``frame_rate`` Hz."""
    return float(n_q * np.log2(codebook_size) * frame_rate)
