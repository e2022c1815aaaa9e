"""The ASR layer drives the teacher cache: word timings and transcripts for the LM teacher.

These tests live on the ASR side because ``keras_dmcodec.asr`` imports
``keras_dmcodec.teachers`` (the CTC model), never the other way round.
"""

import json

import keras
import pytest

from keras_dmcodec.asr import make_asr
from keras_dmcodec.audio import load_audio
from keras_dmcodec.teachers.cache import TeacherCache, build_cache, utterance_key
from keras_dmcodec.teachers.cache_test import SPEECH, build_tiny_cache, speech_items, tiny_teachers
from keras_dmcodec.teachers.registry import load_speech_teacher

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="loaders are tested per backend by their modules; runs once")


def test_aligned_ground_truth_with_whisper_timings(tmp_path):
    pytest.importorskip("faster_whisper")
    items = speech_items()[:2]
    # cache-teachers' settings: greedy Whisper with word timestamps
    report = build_tiny_cache(tmp_path / "cache", items, alignment="aligned",
                              transcriber=make_asr("whisper", beam_size=1, cpu_threads=1))
    assert not report["alignment_fallbacks"]
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["settings"]["transcriber"] == "whisper-tiny.en"
    entry = index["utterances"][utterance_key(items[0].path, SPEECH)]
    assert entry["alignment_used"] == "aligned"
    assert entry["transcript"]["source"] == "ground_truth+whisper"
    assert entry["alignment_stats"]["untimed"] == 0
    got = TeacherCache(tmp_path / "cache").load(items[0].path)
    mask = got["lm_mask"]
    # frames inside a word share that word's feature; speech covers most of the clip
    assert 0.5 < mask.mean() <= 1.0
    first = entry["transcript"]["words"][0]
    j = int((first["start"] + first["end"]) / 2 * 50)
    assert mask[j] == 1


def test_hubert_and_ctc_specs_drive_the_cache(tmp_path):
    """hubert:DIR and ctc:DIR load the Keras HuBERT / wav2vec2 CTC from HF directories."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tiny = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**tiny)).eval().save_pretrained(
        tmp_path / "hubert")
    vocab = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O"]
    ctc = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**tiny,
                                                                  vocab_size=len(vocab)))
    with torch.no_grad():  # confident logits: words, not only blanks
        ctc.lm_head.weight.mul_(30.0)
    ctc.eval().save_pretrained(tmp_path / "ctc")
    (tmp_path / "ctc" / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))

    sm = load_speech_teacher(f"hubert:{tmp_path / 'hubert'}")
    assert (sm.name, sm.dimension) == ("hubert", 16)
    asr = make_asr(f"ctc:{tmp_path / 'ctc'}")
    items = speech_items()[:2]
    _, lm = tiny_teachers()
    report = build_cache(items, tmp_path / "cache", sm_teacher=sm, lm_teacher=lm,
                         transcripts="ctc", transcriber=asr, alignment="aligned", root=SPEECH)
    assert report["cached"] == 2
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["settings"]["transcriber"] == "ctc:ctc"
    cache = TeacherCache(tmp_path / "cache")
    for item in items:
        audio, _ = load_audio(item.path, sample_rate=16000)
        entry = cache.entries[str(SPEECH.joinpath(item.path).resolve())]
        heard = asr.transcribe(audio, word_timestamps=True)
        got = cache.load(item.path)
        assert got["sm_features"].shape == (sm.num_frames(len(audio)), 16)
        assert heard.text  # scaled random head: letters, so the LM path runs
        assert entry["transcript"]["text"] == heard.text
        assert entry["transcript"]["source"] == "ctc" and entry["alignment_used"] == "aligned"
        assert len(entry["transcript"]["words"]) == len(heard.words) and got["lm_mask"].any()
    assert report["no_transcript"] == []
