"""Evaluation of speech codecs: reconstruction metrics, an offline ASR judge, a runner and reports.

Metrics are numpy functions independent of the Keras backend. The WER/WIL judge is
``keras_dmcodec.asr`` (faster-whisper with a local CTranslate2 model by default),
``runner`` evaluates models over a corpus (resumable), ``report`` and ``plots``
write the tables and figures. ``dmcodec evaluate`` drives them from the command line.
"""

from keras_dmcodec.evaluation.metrics import (
    ViSQOLSpeech,
    bitrate,
    code_histograms,
    codebook_perplexity,
    codebook_usage,
    mel_distance,
    pesq_wb,
    reconstruction_scores,
    si_snr,
    snr,
    stoi,
)

__all__ = [
    "ViSQOLSpeech",
    "bitrate",
    "code_histograms",
    "codebook_perplexity",
    "codebook_usage",
    "mel_distance",
    "pesq_wb",
    "reconstruction_scores",
    "si_snr",
    "snr",
    "stoi",
]
