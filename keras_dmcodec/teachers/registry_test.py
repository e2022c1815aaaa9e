import json

import keras
import pytest

from keras_dmcodec.teachers.registry import (
    load_speech_teacher,
    load_text_teacher,
    load_transcriber,
)

once = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="loaders are tested per backend by their modules; runs once")


@once
def test_unknown_and_malformed_specs(tmp_path):
    with pytest.raises(ValueError, match="unknown speech teacher"):
        load_speech_teacher("wavlm")
    with pytest.raises(ValueError, match="a directory is needed"):
        load_speech_teacher("hubert:")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_speech_teacher(f"hubert:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="unknown text teacher"):
        load_text_teacher("gpt2")
    with pytest.raises(ValueError, match="unknown transcriber"):
        load_transcriber("ctc")


@once
def test_hubert_and_ctc_specs_drive_the_cache(tmp_path):
    """hubert:DIR and ctc:DIR load H2's Keras HuBERT / wav2vec2 CTC from HF directories."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from keras_dmcodec.audio import load_audio
    from keras_dmcodec.teachers.cache import TeacherCache, build_cache
    from keras_dmcodec.teachers.cache_test import SPEECH, speech_items, tiny_teachers

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
    asr = load_transcriber(f"ctc:{tmp_path / 'ctc'}")
    items = speech_items()[:2]
    _, lm = tiny_teachers()
    report = build_cache(items, tmp_path / "cache", sm_teacher=sm, lm_teacher=lm,
                         transcripts="ctc", transcriber=asr, alignment="aligned", root=SPEECH)
    assert report["cached"] == 2
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["settings"]["transcriber"] == "wav2vec2-ctc"
    cache = TeacherCache(tmp_path / "cache")
    for item in items:
        audio, _ = load_audio(item["path"], sample_rate=16000)
        entry = cache.entries[str(SPEECH.joinpath(item["path"]).resolve())]
        heard = asr.transcribe(audio)
        got = cache.load(item["path"])
        assert got["sm_features"].shape == (sm.num_frames(len(audio)), 16)
        assert heard.text  # scaled random head: letters, so the LM path runs
        assert entry["transcript"]["text"] == heard.text
        assert entry["transcript"]["source"] == "ctc" and entry["alignment_used"] == "aligned"
        assert len(entry["transcript"]["words"]) == len(heard.words) and got["lm_mask"].any()
    assert report["no_transcript"] == []
