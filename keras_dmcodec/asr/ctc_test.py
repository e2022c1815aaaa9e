"""Greedy CTC transcripts and word timings: parity with transformers' tokenizer."""

import json

import keras
import numpy as np
import pytest

from keras_dmcodec.asr import CTCTranscriber, CTCVocabulary, make_asr
from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.hubert.testing import (
    ATOL,
    VARIANTS,
    VOCAB,
    random_audio,
    save_ctc_models,
)
from keras_dmcodec.teachers.transcripts import Transcript

backend_independent = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                         reason="backend-independent; runs once")


@pytest.fixture(scope="module")
def ctc_models(tmp_path_factory):
    """Tiny random transformers ``Wav2Vec2ForCTC`` directories with their greedy transcripts."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return save_ctc_models(tmp_path_factory.mktemp("ctc"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ctc_logits_and_greedy_transcripts_match_transformers(ctc_models, variant):
    reference = ctc_models[f"w2v_ctc_{variant}"]
    asr = CTCTranscriber.from_pretrained(reference["path"])
    assert asr.do_normalize  # from preprocessor_config.json
    np.testing.assert_allclose(asr.logits(random_audio()), reference["logits"], atol=ATOL)
    transcripts = asr.transcribe_batch(random_audio())
    assert [t.text for t in transcripts] == reference["texts"]
    assert any(t.words for t in transcripts)
    for transcript, offsets in zip(transcripts, reference["word_offsets"], strict=True):
        assert isinstance(transcript, Transcript) and transcript.source == "ctc"
        assert [(w.text, w.start, w.end) for w in transcript.words] == [
            (word, start / 50.0, end / 50.0) for word, start, end in offsets]


@backend_independent
def test_the_spec_gives_the_same_transcripts_one_utterance_at_a_time(ctc_models):
    reference = ctc_models["w2v_ctc_base"]
    asr = make_asr(f"ctc:{reference['path']}")
    assert isinstance(asr, CTCTranscriber) and asr.name == "ctc:w2v_ctc_base"
    for audio, text in zip(random_audio(), reference["texts"], strict=True):
        heard = asr.transcribe(audio, 16000)
        assert heard.text == text and heard.timed == bool(heard.words)
    # resampled input: 8 kHz audio is brought to the model's 16 kHz
    assert asr.transcribe(random_audio()[0, ::2], 8000).source == "ctc"


@backend_independent
def test_vocabulary_decoding_edge_cases(tmp_path):
    vocab = CTCVocabulary(VOCAB)
    assert vocab.decode([]).text == ""
    assert vocab.decode([0, 0, 4, 4, 0]).words == []
    transcript = vocab.decode([5, 5, 0, 5, 4, 6, 99])  # id 99 is outside the vocabulary
    assert transcript.text == "EE T<unk>"
    assert [(w.text, w.start, w.end) for w in transcript.words] == [("EE", 0.0, 0.08),
                                                                   ("T<unk>", 0.1, 0.14)]
    (tmp_path / "vocab.json").write_text(json.dumps({"en": {"<pad>": 0}}))
    with pytest.raises(HFWeightsError, match="multi-language"):
        CTCVocabulary.from_directory(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"A": 0}))
    with pytest.raises(HFWeightsError, match="lacks the CTC blank"):
        CTCVocabulary.from_directory(tmp_path)
    lower = CTCVocabulary(VOCAB, do_lower_case=True)
    assert lower.decode([5, 4, 6]).text == "e t"
