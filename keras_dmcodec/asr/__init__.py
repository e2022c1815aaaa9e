"""One ASR layer: speech recognizers behind one interface and one spec syntax, and WER/WIL.

- ``Transcriber``: ``transcribe(audio, sample_rate, word_timestamps) -> Transcript``
  (``keras_dmcodec.teachers.transcripts.Transcript``: text + words, timed when asked
  and the model can);
- ``WhisperTranscriber``: faster-whisper on a CTranslate2 Whisper (default: the
  packaged tiny.en);
- ``CTCTranscriber`` + ``CTCVocabulary``: greedy CTC of a Hugging Face
  ``Wav2Vec2ForCTC`` checkpoint run in Keras (the DM-Codec reference's ASR);
- ``make_asr(spec)``: ``whisper``, ``whisper:DIR``, ``ctc:DIR`` (``register_asr`` adds kinds),
  used by ``dmcodec evaluate --asr`` and ``dmcodec cache-teachers --asr``;
- ``error_rates`` / ``normalize_text`` / ``align_words``: corpus WER and WIL with Whisper's text
  normaliser, and the word alignment behind them (for marking errors).
"""

from keras_dmcodec.asr.base import Transcriber
from keras_dmcodec.asr.ctc import CTCTranscriber, CTCVocabulary
from keras_dmcodec.asr.registry import ACCEPTED_SPECS, DEFAULT_ASR, make_asr, register_asr
from keras_dmcodec.asr.scoring import align_words, error_rates, normalize_text
from keras_dmcodec.asr.whisper import WhisperTranscriber

__all__ = [
    "ACCEPTED_SPECS",
    "CTCTranscriber",
    "CTCVocabulary",
    "DEFAULT_ASR",
    "Transcriber",
    "WhisperTranscriber",
    "align_words",
    "error_rates",
    "make_asr",
    "normalize_text",
    "register_asr",
]
