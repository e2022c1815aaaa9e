"""Audio I/O: load, validate, downmix, resample and write. The one place that touches audio files.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis, MP3 and more; librosa (soxr)
resamples. tensorflow-io is not used: its latest release (0.37.1) fails to load
beside TensorFlow 2.21 (undefined symbol).
"""

import os
import struct
from pathlib import Path

import numpy as np

from keras_dmcodec.utils.files import atomic_output

# Suffixes taken for audio in folder listings (keras_dmcodec.corpus) and in the commands:
# libsndfile's formats (soundfile.available_formats()) under their usual names. Headerless
# .raw is left out: libsndfile cannot open it without being told the sample format.
AUDIO_SUFFIXES = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64", ".avr", ".htk", ".ircam", ".mat4", ".mat5", ".mpc2k", ".nist",
    ".paf", ".pvf", ".sd2", ".sds", ".svx", ".voc", ".wavex", ".wve", ".xi",
)
# WAVE format tags whose data chunk holds whole frames of block_align bytes: PCM, IEEE
# float, A-law, mu-law and WAVE_FORMAT_EXTENSIBLE.
_FRAMED_WAVE_FORMATS = (1, 3, 6, 7, 0xFFFE)
# Data chunk sizes that writers of unknown-length streams leave in the header.
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


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


def wav_truncation(path):
    """``(declared, held)`` frames of a RIFF/WAVE file whose data chunk is cut short, else None.

    libsndfile reads such a file without complaint, up to where it ends, so a
    half-copied or half-written WAV would pass for a short clip. Files that are
    not RIFF/WAVE, or whose header leaves the data length open, give None.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            size = os.fstat(handle.fileno()).st_size
            position, format_tag, block_align = 12, None, 0
            while position + 8 <= size:
                handle.seek(position)
                chunk_id, length = struct.unpack("<4sI", handle.read(8))
                if chunk_id == b"fmt ":
                    fmt = handle.read(min(length, 16))
                    if len(fmt) >= 14:
                        # tag, channels, sample rate, byte rate, bytes per frame
                        format_tag, _, _, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                elif chunk_id == b"data":
                    if (format_tag not in _FRAMED_WAVE_FORMATS or not block_align
                            or length in _UNKNOWN_DATA_SIZES):
                        return None
                    declared = length // block_align
                    held = min(length, size - position - 8) // block_align
                    return (declared, held) if held < declared else None
                position += 8 + length + (length & 1)  # chunks are padded to even sizes
    except OSError:  # unreadable files get their error from libsndfile
        return None
    return None


def open_with_soundfile(path, opener):
    """``opener(str(path))`` (a soundfile call) with one-line ``AudioError``s for bad input.

    Missing paths, directories, WAV files shorter than their header declares and
    files libsndfile cannot read (corrupt, truncated, unsupported format) all
    become ``AudioError("<path>: ...")``.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    truncated = wav_truncation(path)
    if truncated is not None:
        raise AudioError(f"{path}: truncated: header declares {truncated[0]} samples, file "
                         f"holds {truncated[1]}")
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
        AudioError: missing, unreadable/corrupt, truncated, empty or non-finite audio.
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
    """Writes 16-bit PCM audio atomically (temp file + rename); refuses to overwrite unless asked.

    The format follows the suffix: FLAC for ``.flac`` (lossless, about half the size; what
    listening reports link), WAV otherwise.
    """
    import soundfile as sf

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (use overwrite/--force to replace it)")
    audio = np.asarray(audio, dtype=np.float32)
    with atomic_output(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16",
                 format="FLAC" if path.suffix.lower() == ".flac" else "WAV")
    return path


def bundled_sample():
    """Path and transcript of the speech sample shipped with the package (16 kHz, 6.8 s).

    Synthesised with Festival's CMU US SLT HTS voice from the sentence in the transcript.
    """
    here = Path(__file__).parent / "assets"
    wav = here / "sample_16k.wav"
    text = (here / "sample_16k.txt").read_text().strip()
    return wav, text
