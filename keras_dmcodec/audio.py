"""Audio I/O: load, validate, downmix, resample and write. The one place that touches audio files.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis, MP3 and more; librosa (soxr)
resamples. tensorflow-io is not used: its latest release (0.37.1) fails to load
beside TensorFlow 2.21 (undefined symbol).
"""

from pathlib import Path

import numpy as np

from keras_dmcodec.utils.files import atomic_output


class AudioError(ValueError):
    """An audio file or array that cannot be used, with a one-line reason."""


def validate_waveform(audio, name="audio"):
    """Checks a mono float waveform ``[samples]``; returns it as contiguous float32."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioError(f"{name}: expected a mono waveform [samples], got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"{name}: expected floating-point samples, got dtype {audio.dtype}")
    if audio.size == 0:
        raise AudioError(f"{name}: audio is empty")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{name}: audio contains NaN or infinite values")
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio, orig_sr, target_sr):
    """Resamples ``audio`` ``[samples]`` from ``orig_sr`` to ``target_sr`` (soxr, high quality)."""
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def open_with_soundfile(path, opener):
    """``opener(str(path))`` (a soundfile call) with one-line ``AudioError``s for bad input.

    Missing paths, directories and files libsndfile cannot read (corrupt,
    truncated, unsupported format) all become ``AudioError("<path>: ...")``.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    try:
        return opener(str(path))
    except Exception as err:  # libsndfile raises several types for bad files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudioError(f"{path}: cannot read audio ({reason})") from None


def load_audio(path, sample_rate=None):
    """Reads an audio file as mono float32, downmixing channels and optionally resampling.

    Args:
        path: file path.
        sample_rate: int or None. Resample to this rate (None keeps the file's rate).

    Returns:
        ``(audio [samples] float32, sample_rate)``.

    Raises:
        AudioError: missing, unreadable/corrupt, empty or non-finite audio.
    """
    import soundfile as sf

    path = Path(path)
    data, sr = open_with_soundfile(
        path, lambda name: sf.read(name, dtype="float32", always_2d=True))
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    audio = validate_waveform(audio, name=str(path))
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate).astype(np.float32)
        sr = sample_rate
    return audio, int(sr)


def write_audio(path, audio, sample_rate, overwrite=False):
    """Writes 16-bit PCM WAV atomically (temp file + rename); refuses to overwrite unless asked."""
    import soundfile as sf

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (use overwrite/--force to replace it)")
    audio = np.asarray(audio, dtype=np.float32)
    with atomic_output(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path


def bundled_sample():
    """Path and transcript of the speech sample shipped with the package (16 kHz, 6.8 s).

    Synthesised with Festival's CMU US SLT HTS voice from the sentence in the transcript.
    """
    here = Path(__file__).parent / "assets"
    wav = here / "sample_16k.wav"
    text = (here / "sample_16k.txt").read_text().strip()
    return wav, text
