"""Hugging Face directories to Keras: parity with transformers, and one-line errors."""

import json

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_dmcodec.teachers.hf_weights import HFWeightsError
from keras_dmcodec.teachers.hubert import load_hubert_encoder, load_hubert_for_ctc
from keras_dmcodec.teachers.hubert.testing import ATOL, TINY, VARIANTS

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

backend_independent = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                         reason="backend-independent; runs once")


@pytest.mark.parametrize("name", ["hubert_base", "hubert_stable", "hubert_base_bin",
                                  "w2v_ctc_stable"])
def test_every_hidden_state_matches_transformers(hf_models, name):
    reference = hf_models[name]
    encoder, _ = load_hubert_encoder(reference["path"])
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
def test_ctc_model_logits_match_transformers(hf_models, variant):
    reference = hf_models[f"w2v_ctc_{variant}"]
    model, config = load_hubert_for_ctc(reference["path"])
    assert model.vocab_size == config["vocab_size"]
    np.testing.assert_allclose(model.predict_on_batch(reference["input"]), reference["logits"],
                               atol=ATOL)


def _copy_dir(source, target):
    target.mkdir()
    for item in source.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


@backend_independent
def test_bad_directories_are_one_line_errors(hf_models, tmp_path):
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
            load_hubert_encoder(directory)
        assert "\n" not in str(error.value)
    with pytest.raises(HFWeightsError, match="no lm_head"):
        load_hubert_for_ctc(good)


@backend_independent
def test_pickled_torch_file_is_refused(hf_models, tmp_path):
    directory = _copy_dir(hf_models["hubert_base_bin"]["path"], tmp_path / "pickled")
    torch.save({"weights": object()}, directory / "pytorch_model.bin")
    with pytest.raises(HFWeightsError, match="weights-only"):
        load_hubert_encoder(directory)
