"""The transcriber interface: mono audio in, a ``Transcript`` (text + words) out."""

import numpy as np

from keras_dmcodec.audio import resample, validate_waveform


class Transcriber:
    """Interface of a speech recognizer: ``transcribe(audio, sample_rate) -> Transcript``.

    ``transcribe`` validates the waveform, resamples it to ``sample_rate`` (16 kHz)
    and calls ``recognize``, which each implementation provides. The transcript's
    words carry start/end seconds when ``word_timestamps`` is asked for and the
    model gives them (Whisper: word timestamps; CTC: always, from its frames).
    ``name`` is short (tables, cache settings, resume checks); ``description`` is
    one line for reports.

    Attributes:
        name: str. Short name.
        description: str. One line for reports.
        sample_rate: int. The rate ``recognize`` expects.

    Example:
    >>> from keras_dmcodec.teachers.transcripts import Transcript
    >>> class Echo(Transcriber):
    ...     name = "echo"
    ...     def recognize(self, audio, word_timestamps=False):
    ...         return Transcript.from_text(f"{len(audio)} samples", source="echo")
    >>> Echo().transcribe(np.zeros(800, "float32"), sample_rate=8000).text
    '1600 samples'
    """

    name = "asr"
    description = "speech recognizer"
    sample_rate = 16000

    def transcribe(self, audio, sample_rate=16000, word_timestamps=False):
        """A ``Transcript`` of mono float ``audio`` ``[samples]`` at ``sample_rate`` Hz.

        Args:
            audio: float array ``[samples]``.
            sample_rate: int. Its rate; resampled to ``self.sample_rate`` when different.
            word_timestamps: bool. Time each word (slower for Whisper; CTC always does).
        """
        audio = validate_waveform(np.asarray(audio, dtype=np.float32), name="ASR input")
        if sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate).astype(np.float32)
        return self.recognize(audio, word_timestamps=word_timestamps)

    def recognize(self, audio, word_timestamps=False):
        """The ``Transcript`` of validated float32 ``audio`` at ``sample_rate``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement recognize()")
