"""Transcripts with word timings for the LM teacher, and timing ground truth with ASR words.

The reference (DM-Codec ``extract_rep.py``) transcribes every utterance with
``facebook/wav2vec2-base-960h`` greedy CTC and feeds the text to BERT; it keeps
no timings. Here a transcript also carries word timings where a source has
them, so that ``keras_dmcodec.teachers.alignment`` can map each codec frame to
its word. Sources: ground truth (from the corpus; timed by ``align_words``
against ASR words) and the ASR layer, ``keras_dmcodec.asr`` (faster-whisper word
timestamps, or wav2vec2 greedy CTC with words timed from their CTC frames), which
returns these ``Transcript`` and ``Word`` objects.
"""

import dataclasses
import difflib

import numpy as np


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


SOURCES = ("ground_truth", "whisper", "ctc")


def normalize_word(word):
    """Lower-case letters, digits and apostrophes only: how ASR and ground-truth words are matched.

    Example:
    >>> normalize_word(" Watcher."), normalize_word("DON'T")
    ('watcher', "don't")
    """
    return "".join(c for c in str(word).lower() if c.isalnum() or c == "'").strip("'")


def align_words(text, timed, source="aligned"):
    """Times the words of ``text`` (e.g. ground truth) with the words of an ASR ``Transcript``.

    Words are matched after ``normalize_word`` with ``difflib.SequenceMatcher``.
    A matched word takes the ASR word's span. A run of unmatched words that the
    ASR replaced by other words shares the span of those ASR words, split in
    proportion to the words' lengths; a run the ASR missed shares the gap between
    its timed neighbours. Words that still cannot be placed (e.g. the ASR heard
    nothing) stay untimed, and ``keras_dmcodec.teachers.alignment`` then falls
    back to positional pairing for that utterance.

    Args:
        text: str. The transcript to time.
        timed: ``Transcript`` with timed words.
        source: str. ``source`` of the result.

    Returns:
        ``(Transcript, stats)``, stats ``{"matched", "interpolated", "untimed"}`` word counts.

    Example:
    >>> asr = Transcript("a large red boat", [Word("A", 0.0, 0.3), Word("large", 0.3, 0.6),
    ...                  Word("bred", 0.6, 0.8), Word("boat.", 0.8, 1.2)])
    >>> t, stats = align_words("A LARGE RED BOAT", asr)
    >>> [(w.text, w.start, w.end) for w in t.words][2], stats
    (('RED', 0.6, 0.8), {'matched': 3, 'interpolated': 1, 'untimed': 0})
    """
    words = str(text).split()
    asr = [w for w in timed.words if w.timed]
    spans = [None] * len(words)
    stats = {"matched": 0, "interpolated": 0, "untimed": 0}
    matcher = difflib.SequenceMatcher(a=[normalize_word(w) for w in words],
                                      b=[normalize_word(w.text) for w in asr], autojunk=False)
    opcodes = matcher.get_opcodes()
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                spans[i] = (asr[j].start, asr[j].end)
                stats["matched"] += 1
    for tag, i1, i2, j1, j2 in opcodes:
        if tag not in ("replace", "delete") or i1 == i2:
            continue
        if tag == "replace":
            start, end = asr[j1].start, asr[j2 - 1].end
        else:
            before = [s for s in spans[:i1] if s is not None]
            after = [s for s in spans[i2:] if s is not None]
            if not before or not after:
                continue
            start, end = before[-1][1], after[0][0]
        if end <= start:
            continue
        weights = np.array([max(len(normalize_word(w)), 1) for w in words[i1:i2]], float)
        edges = start + (end - start) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
        for k, i in enumerate(range(i1, i2)):
            spans[i] = (float(edges[k]), float(edges[k + 1]))
            stats["interpolated"] += 1
    stats["untimed"] = sum(s is None for s in spans)
    result = [Word(w, *(s if s is not None else (None, None))) for w, s in zip(words, spans,
                                                                               strict=True)]
    return Transcript(text=str(text), words=result, source=source), stats
