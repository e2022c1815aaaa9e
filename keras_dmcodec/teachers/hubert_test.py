"""Parity of the Keras HuBERT / wav2vec 2.0 with transformers, and the HF directory loader."""

import json

import keras
import numpy as np
import pytest

from keras_dmcodec.teachers import hubert
from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.transcripts import Transcript

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

backend_independent = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                         reason="backend-independent; runs once")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            conv_dim=(8, 12, 12, 16, 16, 16, 16), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2)
VARIANTS = {
    # Base models: GroupNorm on the first conv, post-LN transformer.
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    # Large / stable-layer-norm models: LayerNorm after every conv, pre-LN + final LayerNorm.
    "stable": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}
VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N"]
ATOL = 1e-4


def _audio():
    return (0.1 * np.random.default_rng(0).standard_normal((2, 8000))).astype("float32")  # 0.5 s


def _torch_outputs(model, audio):
    with torch.no_grad():
        out = model(torch.from_numpy(audio), output_hidden_states=True)
    return out


def _save_bin_with_legacy_weight_norm(model, directory):
    """pytorch_model.bin with torch.nn.utils.weight_norm names (weight_g / weight_v), as in
    the original facebook/hubert-base-ls960 checkpoint."""
    state = {}
    for name, value in model.state_dict().items():
        name = name.replace("parametrizations.weight.original0", "weight_g")
        name = name.replace("parametrizations.weight.original1", "weight_v")
        state[name] = value.clone()
    directory.mkdir()
    torch.save(state, directory / "pytorch_model.bin")
    model.config.to_json_file(directory / "config.json")


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Tiny random transformers models saved as HF directories, with their reference outputs."""
    root = tmp_path_factory.mktemp("hf")
    audio = _audio()
    models = {}
    for variant, options in VARIANTS.items():
        torch.manual_seed(0)
        model = transformers.HubertModel(transformers.HubertConfig(**TINY, **options)).eval()
        model.save_pretrained(root / f"hubert_{variant}")
        out = _torch_outputs(model, audio)
        models[f"hubert_{variant}"] = dict(
            path=root / f"hubert_{variant}", hidden=[h.numpy() for h in out.hidden_states],
            last=out.last_hidden_state.numpy(), input=audio)
        if variant == "base":
            _save_bin_with_legacy_weight_norm(model, root / "hubert_base_bin")
            models["hubert_base_bin"] = dict(models["hubert_base"], path=root / "hubert_base_bin")

        torch.manual_seed(1)
        config = transformers.Wav2Vec2Config(**TINY, **options, vocab_size=len(VOCAB))
        ctc = transformers.Wav2Vec2ForCTC(config).eval()
        with torch.no_grad():  # confident logits, so greedy ids do not hinge on rounding
            ctc.lm_head.weight.mul_(30.0)
        path = root / f"w2v_ctc_{variant}"
        ctc.save_pretrained(path)
        (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
        tokenizer = transformers.Wav2Vec2CTCTokenizer(str(root / "vocab.json"))
        tokenizer.save_pretrained(path)
        extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
        extractor.save_pretrained(path)
        normalized = extractor(list(audio), sampling_rate=16000,
                               return_tensors="np").input_values.astype("float32")
        out = _torch_outputs(ctc, normalized)
        ids = out.logits.numpy().argmax(-1)
        decoded = [tokenizer.decode(row, output_word_offsets=True) for row in ids]
        models[f"w2v_ctc_{variant}"] = dict(
            path=path, hidden=[h.numpy() for h in out.hidden_states], logits=out.logits.numpy(),
            input=normalized, texts=[d.text for d in decoded],
            word_offsets=[[(w["word"], int(w["start_offset"]), int(w["end_offset"]))
                           for w in d.word_offsets] for d in decoded])
    return models


@pytest.mark.parametrize("name", ["hubert_base", "hubert_stable", "hubert_base_bin",
                                  "w2v_ctc_stable"])
def test_every_hidden_state_matches_transformers(hf_models, name):
    reference = hf_models[name]
    encoder, _ = hubert.load_hubert_encoder(reference["path"])
    outputs = encoder.predict_on_batch(reference["input"])
    assert len(outputs["hidden_states"]) == len(reference["hidden"]) == TINY[
        "num_hidden_layers"] + 1
    for index, (ours, theirs) in enumerate(zip(outputs["hidden_states"], reference["hidden"],
                                               strict=True)):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=ATOL, err_msg=f"hidden state {index}")
    if "last" in reference:
        np.testing.assert_allclose(outputs["last_hidden_state"], reference["last"], atol=ATOL)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ctc_logits_and_greedy_transcripts_match_transformers(hf_models, variant):
    reference = hf_models[f"w2v_ctc_{variant}"]
    asr = hubert.CTCTranscriber.from_pretrained(reference["path"])
    assert asr.do_normalize  # from preprocessor_config.json
    np.testing.assert_allclose(asr.logits(_audio()), reference["logits"], atol=ATOL)
    transcripts = asr.transcribe(_audio())
    assert [t.text for t in transcripts] == reference["texts"]
    assert any(t.words for t in transcripts)
    for transcript, offsets in zip(transcripts, reference["word_offsets"], strict=True):
        assert isinstance(transcript, Transcript) and transcript.source == "ctc"
        assert [(w.text, w.start, w.end) for w in transcript.words] == [
            (word, start / 50.0, end / 50.0) for word, start, end in offsets]


def test_teacher_features_layers_and_frames(hf_models):
    reference = hf_models["hubert_stable"]
    teacher = hubert.HubertTeacher.from_pretrained(reference["path"], do_normalize=False)
    assert (teacher.name, teacher.sample_rate, teacher.frame_rate) == ("hubert_stable", 16000,
                                                                         50.0)
    assert (teacher.dimension, teacher.num_hidden_states) == (32, 3)
    audio = reference["input"]
    hidden = reference["hidden"]
    assert teacher.num_frames(audio.shape[1]) == hidden[0].shape[1] == 24
    np.testing.assert_allclose(teacher.features(audio), np.mean(hidden, axis=0), atol=ATOL)
    np.testing.assert_allclose(teacher.features(audio, layer=-1), hidden[-1], atol=ATOL)
    np.testing.assert_allclose(teacher.features(audio, layer=0), hidden[0], atol=ATOL)
    assert teacher.features(audio).dtype == np.float32
    with pytest.raises(ValueError, match="out of range"):
        teacher.features(audio, layer=3)
    with pytest.raises(ValueError, match="'avg' or an int"):
        teacher.features(audio, layer="last")


def test_encoder_saves_and_reloads(tmp_path):
    encoder = hubert.HubertEncoder(**TINY, **VARIANTS["stable"])
    encoder.build()
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, hubert.HubertEncoder)
    assert restored.get_config() == encoder.get_config()
    # Same class, config and weights give the same outputs; the parity tests run the model.
    assert [w.path for w in restored.weights] == [w.path for w in encoder.weights]
    for ours, theirs in zip(restored.get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@backend_independent
def test_normalisation_follows_the_directory(hf_models, tmp_path):
    # No preprocessor_config.json: fairseq's rule (normalise only layer-norm models).
    assert not hubert.HubertTeacher.from_pretrained(hf_models["hubert_base"]["path"]).do_normalize
    assert hubert.HubertTeacher.from_pretrained(hf_models["hubert_stable"]["path"]).do_normalize
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
    audio = _audio()
    expected = extractor(list(audio), sampling_rate=16000, return_tensors="np").input_values
    np.testing.assert_allclose(hubert.normalize_audio(audio), expected, atol=1e-5)


@backend_independent
def test_bad_audio_is_a_one_line_error(hf_models):
    teacher = hubert.HubertTeacher.from_pretrained(hf_models["hubert_base"]["path"])
    bad = {
        "floating point": np.zeros((1, 800), np.int16),
        "empty": np.zeros((1, 0), np.float32),
        "at least 400": np.zeros((1, 399), np.float32),
        "NaN": np.full((1, 800), np.nan, np.float32),
        r"\[batch, samples\]": np.zeros((1, 1, 800), np.float32),
    }
    for message, audio in bad.items():
        with pytest.raises(ValueError, match=message) as error:
            teacher.features(audio)
        assert "\n" not in str(error.value)


def _copy_dir(source, target):
    target.mkdir()
    for item in source.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


@backend_independent
def test_bad_directories_are_one_line_errors(hf_models, tmp_path):
    from safetensors.numpy import load_file, save_file

    good = hf_models["hubert_base"]["path"]

    def broken(name, edit):
        directory = _copy_dir(good, tmp_path / name)
        edit(directory)
        return directory

    def edit_config(**changes):
        def edit(directory):
            config = json.loads((directory / "config.json").read_text())
            config.update(changes)
            (directory / "config.json").write_text(json.dumps(config))
        return edit

    def edit_weights(change):
        def edit(directory):
            tensors = load_file(directory / "model.safetensors")
            change(tensors)
            save_file(tensors, directory / "model.safetensors")
        return edit

    cases = {
        "model directory not found": tmp_path / "nowhere",
        "missing config.json": broken("no_config", lambda d: (d / "config.json").unlink()),
        "not valid JSON": broken("bad_json", lambda d: (d / "config.json").write_text("{")),
        "model_type 'wavlm' is not supported": broken("wavlm", edit_config(model_type="wavlm")),
        "conv_pos_batch_norm=true is not supported": broken(
            "bn", edit_config(conv_pos_batch_norm=True)),
        "feat_extract_norm 'batch'": broken("norm", edit_config(feat_extract_norm="batch")),
        "no weights in": broken("no_weights", lambda d: (d / "model.safetensors").unlink()),
        "cannot read": broken("corrupt", lambda d: (d / "model.safetensors").write_bytes(
            b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")),
        "missing tensor encoder.layers.1.attention.q_proj.weight": broken(
            "missing", edit_weights(lambda t: t.pop("encoder.layers.1.attention.q_proj.weight"))),
        r"intermediate_dense.weight .*has shape \(32, 37\).*expects \(32, 40\)": broken(
            "shape", edit_config(intermediate_size=40)),
        "unexpected tensor extra.weight": broken(
            "extra", edit_weights(lambda t: t.update({"extra.weight": np.zeros(2, "float32")}))),
        "more transformer layers": broken("layers", edit_config(num_hidden_layers=1)),
    }
    for message, directory in cases.items():
        with pytest.raises(HFWeightsError, match=message) as error:
            hubert.load_hubert_encoder(directory)
        assert "\n" not in str(error.value)
    with pytest.raises(HFWeightsError, match="no lm_head"):
        hubert.load_hubert_for_ctc(good)


@backend_independent
def test_pickled_torch_file_is_refused(hf_models, tmp_path):
    directory = _copy_dir(hf_models["hubert_base_bin"]["path"], tmp_path / "pickled")
    torch.save({"weights": object()}, directory / "pytorch_model.bin")
    with pytest.raises(HFWeightsError, match="weights-only"):
        hubert.load_hubert_encoder(directory)


@backend_independent
def test_vocabulary_decoding_edge_cases(tmp_path):
    vocab = hubert.CTCVocabulary(VOCAB)
    assert vocab.decode([]).text == ""
    assert vocab.decode([0, 0, 4, 4, 0]).words == []
    transcript = vocab.decode([5, 5, 0, 5, 4, 6, 99])  # id 99 is outside the vocabulary
    assert transcript.text == "EE T<unk>"
    assert [(w.text, w.start, w.end) for w in transcript.words] == [("EE", 0.0, 0.08),
                                                                   ("T<unk>", 0.1, 0.14)]
    (tmp_path / "vocab.json").write_text(json.dumps({"en": {"<pad>": 0}}))
    with pytest.raises(HFWeightsError, match="multi-language"):
        hubert.CTCVocabulary.from_directory(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"A": 0}))
    with pytest.raises(HFWeightsError, match="lacks the CTC blank"):
        hubert.CTCVocabulary.from_directory(tmp_path)
    lower = hubert.CTCVocabulary(VOCAB, do_lower_case=True)
    assert lower.decode([5, 4, 6]).text == "e t"
