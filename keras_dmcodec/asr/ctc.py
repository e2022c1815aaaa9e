"""Greedy CTC speech recognition with word timings: the DM-Codec reference's ASR, in Keras.

The reference (``extract_rep.py``) transcribes with ``facebook/wav2vec2-base-960h``:
``Wav2Vec2ForCTC``, argmax per frame, then ``Wav2Vec2CTCTokenizer.batch_decode``.
``CTCTranscriber`` runs the same checkpoint as a Keras ``HubertForCTC``
(``keras_dmcodec.teachers.hubert``, parity-tested with transformers) and
``CTCVocabulary`` decodes as the tokenizer does, and also times each word from
its CTC frames (0.02 s per frame at 16 kHz).
"""

from pathlib import Path

import numpy as np

from keras_dmcodec.asr.base import Transcriber
from keras_dmcodec.teachers import hf_weights
from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.hubert import (
    check_audio,
    load_hubert_for_ctc,
    normalize_audio,
    read_do_normalize,
)
from keras_dmcodec.teachers.transcripts import Transcript, Word

# transformers tokenization_utils_base.clean_up_tokenization, in order.
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class CTCVocabulary:
    """A CTC vocabulary and greedy decoding with word timings, as ``Wav2Vec2CTCTokenizer``.

    Decoding merges repeated ids, drops the blank (``pad_token``), turns the
    word delimiter into a space and strips (``convert_tokens_to_string`` in
    transformers ``models/wav2vec2/tokenization_wav2vec2.py``). Word spans come
    from the frames of their characters (``_compute_offsets`` and
    ``_get_word_offsets``): a word starts at its first character's first frame
    and ends after its last character's last frame.

    Args:
        tokens: list of str, the token of each id.
        pad_token: str. The CTC blank.
        word_delimiter_token: str. The word separator (``"|"``).
        unk_token: str. Written for ids outside the vocabulary.
        do_lower_case: bool. Lower-case the output.
        replace_word_delimiter_char: str. What the delimiter becomes in the text.
        clean_up_tokenization_spaces: bool. Remove spaces before punctuation and
            contractions in the text, as transformers' ``clean_up_tokenization``.

    Example:
    >>> vocab = CTCVocabulary(["<pad>", "|", "A", "B"])
    >>> t = vocab.decode([2, 2, 0, 3, 1, 1, 3, 0], frame_rate=50.0)
    >>> t.text, [(w.text, w.start, w.end) for w in t.words]
    ('AB B', [('AB', 0.0, 0.08), ('B', 0.12, 0.14)])
    """

    def __init__(self, tokens, pad_token="<pad>", word_delimiter_token="|", unk_token="<unk>",
                 do_lower_case=False, replace_word_delimiter_char=" ",
                 clean_up_tokenization_spaces=False):
        self.tokens = list(tokens)
        if pad_token not in self.tokens:
            raise ValueError(f"the CTC blank {pad_token!r} is not in the vocabulary")
        self.pad_token = pad_token
        self.word_delimiter_token = word_delimiter_token
        self.unk_token = unk_token
        self.do_lower_case = bool(do_lower_case)
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)

    @classmethod
    def from_directory(cls, directory):
        """Reads ``vocab.json`` (+ ``tokenizer_config.json`` / ``special_tokens_map.json``)."""
        directory = Path(directory)
        vocab = hf_weights.read_json(directory / "vocab.json")
        if vocab and all(isinstance(v, dict) for v in vocab.values()):
            raise HFWeightsError(f"{directory / 'vocab.json'} is a multi-language vocabulary; "
                                 "only single-language CTC vocabularies are supported")
        if not vocab or not all(isinstance(v, int) and not isinstance(v, bool)
                                for v in vocab.values()):
            raise HFWeightsError(f"{directory / 'vocab.json'} must map tokens to integer ids")
        size = max(vocab.values()) + 1
        tokens = [None] * size
        for token, index in vocab.items():
            if index < 0:
                raise HFWeightsError(f"{directory / 'vocab.json'} has a negative id for {token!r}")
            tokens[index] = token
        settings = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            values = hf_weights.read_json(directory / name, required=False) or {}
            settings.update({k: v for k, v in values.items() if v is not None})

        def token_setting(key, default):
            value = settings.get(key, default)
            return value.get("content", default) if isinstance(value, dict) else value

        unk = token_setting("unk_token", "<unk>")
        tokens = [unk if t is None else t for t in tokens]
        pad = token_setting("pad_token", "<pad>")
        if pad not in vocab:
            raise HFWeightsError(f"{directory / 'vocab.json'} lacks the CTC blank {pad!r}")
        return cls(tokens, pad_token=pad,
                   word_delimiter_token=token_setting("word_delimiter_token", "|"),
                   unk_token=unk, do_lower_case=bool(settings.get("do_lower_case", False)),
                   replace_word_delimiter_char=settings.get("replace_word_delimiter_char", " "),
                   clean_up_tokenization_spaces=bool(
                       settings.get("clean_up_tokenization_spaces", False)))

    def __len__(self):
        return len(self.tokens)

    def token(self, index):
        return self.tokens[index] if 0 <= index < len(self.tokens) else self.unk_token

    def decode(self, ids, frame_rate=50.0, source="ctc"):
        """A ``Transcript`` (words timed in seconds) from per-frame ids ``[frames]``.

        ``frame_rate`` is frames per second (50 for a 320-sample hop at 16 kHz).
        """
        groups = []  # (char, start_frame, end_frame) of each run of one id
        for frame, index in enumerate(np.asarray(ids).reshape(-1).tolist()):
            char = self.token(index)
            if groups and groups[-1][0] == char:
                groups[-1][2] = frame + 1
            else:
                groups.append([char, frame, frame + 1])
        space = self.replace_word_delimiter_char
        chars = [(space if char == self.word_delimiter_token else char, start, end)
                 for char, start, end in groups if char != self.pad_token]
        text = "".join(char for char, _, _ in chars).strip()
        words, current = [], None
        for char, start, end in chars:
            if char == space:
                if current is not None:
                    words.append(current)
                current = None
            elif current is None:
                current = [char, start, end]
            else:
                current[0] += char
                current[2] = end
        if current is not None:
            words.append(current)
        if self.do_lower_case:
            text = text.lower()
            words = [[w.lower(), s, e] for w, s, e in words]
        if self.clean_up_tokenization_spaces:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return Transcript(text=text, words=[Word(w, s / frame_rate, e / frame_rate)
                                            for w, s, e in words], source=source)


class CTCTranscriber(Transcriber):
    """Greedy CTC speech recognition with word timings (``Wav2Vec2ForCTC`` weights, in Keras).

    Argmax per frame, then ``CTCVocabulary.decode``: the reference's recipe, with
    each word also timed from its CTC frames. Words are always timed, so
    ``word_timestamps`` changes nothing here.

    Args:
        model: a built ``keras_dmcodec.teachers.hubert.HubertForCTC``.
        vocabulary: ``CTCVocabulary`` (its size must not exceed the model's head).
        do_normalize: bool. Normalise each utterance first (true for wav2vec2-base-960h).
        sample_rate: int. Input sample rate.
        name: str. Short name (tables, cache settings).

    Example:
    >>> from keras_dmcodec.teachers.hubert import HubertForCTC
    >>> model = HubertForCTC(4, conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=32,
    ...                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> asr = CTCTranscriber(model, CTCVocabulary(["<pad>", "|", "A", "B"]))
    >>> asr.frame_rate
    50.0
    >>> asr.transcribe(np.zeros(1600, "float32")).words  # doctest: +SKIP
    [Word(text='AB', start=0.02, end=0.06)]
    """

    source = "ctc"

    def __init__(self, model, vocabulary, do_normalize=True, sample_rate=16000, name="ctc"):
        if len(vocabulary) > model.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocabulary)} tokens, the CTC head "
                             f"{model.vocab_size} outputs")
        self.model = model
        self.model.trainable = False
        self.vocabulary = vocabulary
        self.do_normalize = bool(do_normalize)
        self.sample_rate = int(sample_rate)
        self.name = name
        self.description = f"{name} (wav2vec 2.0 / HuBERT CTC in Keras, greedy, as the reference)"

    @classmethod
    def from_pretrained(cls, directory, do_normalize=None):
        """Loads a local HF ``Wav2Vec2ForCTC`` / ``HubertForCTC`` directory (+ vocab.json).

        The name is ``ctc:<directory name>``; ``do_normalize`` defaults to the
        directory's feature-extractor config (``read_do_normalize``).
        """
        model, config = load_hubert_for_ctc(directory)
        vocabulary = CTCVocabulary.from_directory(directory)
        if do_normalize is None:
            do_normalize = read_do_normalize(directory, config)
        return cls(model, vocabulary, do_normalize=do_normalize,
                   name=f"ctc:{Path(directory).resolve().name}")

    @property
    def frame_rate(self):
        return self.sample_rate / self.model.encoder.hop_length

    def logits(self, audio):
        """CTC logits, float32 ``[batch, frames, vocab_size]``, for ``[batch, samples]`` audio."""
        audio = check_audio(audio, self.model.encoder.min_samples)
        if self.do_normalize:
            audio = normalize_audio(audio)
        return np.asarray(self.model.predict_on_batch(audio), np.float32)

    def transcribe_batch(self, audio):
        """One ``Transcript`` per utterance (words with start/end seconds), at ``sample_rate``.

        ``audio``: float ``[batch, samples]`` (one padded batch), or a list of 1-D
        arrays of any lengths (each then runs alone, so no padding changes its
        normalisation or logits).
        """
        if isinstance(audio, (list, tuple)):
            return [self.transcribe_batch(np.asarray(a)[None])[0] for a in audio]
        ids = np.argmax(self.logits(audio), axis=-1)
        return [self.vocabulary.decode(row, self.frame_rate, source=self.source) for row in ids]

    def recognize(self, audio, word_timestamps=False):
        return self.transcribe_batch(audio[None])[0]
