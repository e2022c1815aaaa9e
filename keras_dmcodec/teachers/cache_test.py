import dataclasses
import functools
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dmcodec.audio import load_audio
from keras_dmcodec.corpus import Utterance, list_corpus
from keras_dmcodec.teachers.alignment import codec_frames, reference_num_tokens
from keras_dmcodec.teachers.cache import (
    SplitTeacherCache,
    TeacherCache,
    build_cache,
    open_teacher_cache,
    utterance_key,
)
from keras_dmcodec.teachers.text import TextTeacher
from keras_dmcodec.teachers.whisper import WhisperEncoder, WhisperEncoderTeacher

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"
# Caching is numpy + file logic around the teachers, whose forward passes are tested on
# every backend by their own modules (text_test, whisper_test, hubert/); the ASR
# transcribers' part is tested on the ASR side (keras_dmcodec/asr/teacher_cache_test.py).
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")
TEXTS = {utt.id: utt.text for utt in list_corpus(SPEECH).utterances}
WORDS = sorted({w.lower() for t in TEXTS.values() for w in t.split()})


@functools.lru_cache(maxsize=1)
def tiny_teachers():
    """A tiny random Whisper-encoder SM teacher (8-d) and a tiny random BERT LM teacher (12-d).

    Shared by the tests of one process (they are frozen and stateless), so that the
    backends' compiled functions for each utterance length are reused.
    """
    import keras_hub  # heavy optional dependency (the teachers extra)

    sm = WhisperEncoderTeacher(WhisperEncoder(n_mels=80, hidden_dim=8, num_layers=1, num_heads=2,
                                              intermediate_dim=16),
                               name="tiny-whisper")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=1,
                                             num_heads=2, hidden_dim=12, intermediate_dim=24,
                                             max_sequence_length=256)
    return sm, TextTeacher(backbone, tokenizer, name="tiny-bert")


def speech_items():
    return list_corpus(SPEECH).utterances


def build_tiny_cache(out_dir, items=None, **kwargs):
    sm, lm = tiny_teachers()
    kwargs.setdefault("alignment", "positional")
    return build_cache(items or speech_items(), out_dir, sm_teacher=sm, lm_teacher=lm,
                       root=SPEECH, **kwargs)


def test_build_read_and_resume(tmp_path):
    items = speech_items()[:3]
    report = build_tiny_cache(tmp_path / "cache", items[:2])
    assert report["cached"] == 2 and not report["failed"] and not report["no_transcript"]
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["settings"]["sm_teacher"] == "tiny-whisper"
    assert index["settings"]["lm_layer"] == "avg" and index["settings"]["alignment"] == "positional"
    cache = TeacherCache(tmp_path / "cache")
    audio, _ = load_audio(items[0].path, sample_rate=16000)
    got = cache.load(items[0].path)
    frames = codec_frames(len(audio))
    assert got["num_samples"] == len(audio)
    assert got["sm_features"].shape == (frames, 8) and got["sm_features"].dtype == np.float32
    assert got["lm_features"].shape == (frames, 12)
    # positional: the reference's [CLS] tokens [SEP] [PAD]... over its CTC frame count
    assert got["lm_mask"].tolist() == [1] * reference_num_tokens(len(audio)) + [0] * (
        frames - reference_num_tokens(len(audio)))
    with np.load(tmp_path / "cache" / f"{utterance_key(items[0].path, SPEECH)}.npz",
                 allow_pickle=False) as raw:
        assert raw["sm_features"].dtype == np.float16 and raw["sm_features"].ndim == 2
    assert cache.load(items[2].path) is None
    # resume: the two are skipped, the third computed
    report = build_tiny_cache(tmp_path / "cache", items)
    assert (report["cached"], report["already_cached"], report["utterances"]) == (1, 2, 3)
    with pytest.raises(ValueError, match="other settings"):
        build_tiny_cache(tmp_path / "cache", items, alignment="positional", layer=0)


def test_missing_transcripts_and_bad_files_are_reported(tmp_path):
    items = speech_items()[:2]
    items[1] = dataclasses.replace(items[1], text=None)
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio")
    items.append(Utterance("bad", bad, "hello"))
    report = build_tiny_cache(tmp_path / "cache", items)
    key = utterance_key(items[1].path, SPEECH)
    assert report["no_transcript"] == [key] and report["cached"] == 2
    assert list(report["failed"]) == [utterance_key(bad, SPEECH)]
    cache = TeacherCache(tmp_path / "cache")
    got = cache.load(items[1].path)
    assert "sm_features" in got and "lm_features" not in got
    assert json.loads((tmp_path / "cache" / "index.json").read_text())["no_transcript"] == [key]


def test_bad_arguments_and_corrupt_cache(tmp_path):
    sm, lm = tiny_teachers()
    with pytest.raises(ValueError, match="nothing to cache"):
        build_cache(speech_items(), tmp_path)
    with pytest.raises(ValueError, match="needs an ASR"):
        build_cache(speech_items(), tmp_path, lm_teacher=lm, alignment="aligned")
    with pytest.raises(FileNotFoundError, match="no teacher cache"):
        TeacherCache(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a teacher cache index"):
        TeacherCache(tmp_path)


def test_split_cache_takes_each_teacher_from_its_own_cache(tmp_path):
    sm, lm = tiny_teachers()
    items = speech_items()[:2]
    build_cache(items, tmp_path / "sm", sm_teacher=sm, root=SPEECH)
    build_tiny_cache(tmp_path / "both", items)  # positional LM + SM
    split = open_teacher_cache({"sm": str(tmp_path / "sm"), "lm": str(tmp_path / "both")})
    assert isinstance(split, SplitTeacherCache)
    assert (split.sm_dimension, split.lm_dimension) == (8, 12)
    got, both = split.load(items[0].path), TeacherCache(tmp_path / "both").load(items[0].path)
    np.testing.assert_array_equal(got["lm_features"], both["lm_features"])
    np.testing.assert_array_equal(got["lm_mask"], both["lm_mask"])
    sm_only = TeacherCache(tmp_path / "sm").load(items[0].path)
    np.testing.assert_array_equal(got["sm_features"], sm_only["sm_features"])
    assert split.load(speech_items()[3].path) is None
    with pytest.raises(ValueError, match="has no LM teacher features"):
        SplitTeacherCache(tmp_path / "sm", tmp_path / "sm")
    with pytest.raises(ValueError, match="exactly the keys"):
        open_teacher_cache({"sm": str(tmp_path / "sm")})
