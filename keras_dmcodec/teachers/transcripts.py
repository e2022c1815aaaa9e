"""Transcripts with word timings for the LM teacher: ground truth, faster-whisper, wav2vec2 CTC.

The reference (DM-Codec ``extract_rep.py``) transcribes every utterance with
``facebook/wav2vec2-base-960h`` greedy CTC and feeds the text to BERT; it keeps
no timings. Here a transcript also carries word timings where a source has
them, so that ``keras_dmcodec.teachers.alignment`` can map each codec frame to
its word.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Word:
    """One transcript word, with its time span in seconds when known.

    Args:
        text: str. The word as written in the transcript.
        start: float or None. Start time in seconds.
        end: float or None. End time in seconds.

    Example:
    >>> Word("fox", 0.5, 0.8).duration
    0.30000000000000004
    """

    text: str
    start: float | None = None
    end: float | None = None

    @property
    def timed(self):
        """True when both ``start`` and ``end`` are known."""
        return self.start is not None and self.end is not None

    @property
    def duration(self):
        return None if not self.timed else self.end - self.start


@dataclasses.dataclass(frozen=True)
class Transcript:
    """A transcript: its text and its words (with timings when the source has them).

    Args:
        text: str. The full text.
        words: list of ``Word``.
        source: str. Where it came from (``"ground_truth"``, ``"whisper"``, ``"ctc"``).

    Example:
    >>> t = Transcript.from_text("the quick fox")
    >>> [w.text for w in t.words], t.timed
    (['the', 'quick', 'fox'], False)
    """

    text: str
    words: list = dataclasses.field(default_factory=list)
    source: str = "unknown"

    @classmethod
    def from_text(cls, text, source="ground_truth"):
        """A transcript without timings: one ``Word`` per whitespace-separated token."""
        return cls(text=text, words=[Word(w) for w in text.split()], source=source)

    @property
    def timed(self):
        """True when every word has a time span (and there is at least one word)."""
        return bool(self.words) and all(w.timed for w in self.words)
