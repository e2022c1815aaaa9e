"""Hugging Face directory reading: file choice, shards, dtypes, prefixes, checked assignment."""

import json

import keras
import numpy as np
import pytest

from keras_dmcodec.teachers import hf_weights
from keras_dmcodec.teachers.hf_weights import HFWeightsError, WeightLoader

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def test_safetensors_is_preferred_over_torch_bin(tmp_path):
    safetensors_numpy.save_file({"a": np.ones(2, "float32")}, tmp_path / "model.safetensors")
    torch.save({"a": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    tensors, path = hf_weights.load_state_dict(tmp_path)
    assert path.name == "model.safetensors"
    np.testing.assert_array_equal(tensors["a"], [1.0, 1.0])
    (tmp_path / "model.safetensors").unlink()
    tensors, path = hf_weights.load_state_dict(tmp_path)
    assert path.name == "pytorch_model.bin" and tensors["a"].dtype == np.float32


def test_sharded_safetensors_and_half_precision(tmp_path):
    safetensors_torch.save_file({"a": torch.ones(2, dtype=torch.bfloat16)},
                                tmp_path / "model-00001-of-00002.safetensors")
    safetensors_torch.save_file({"b": torch.full((3,), 0.5, dtype=torch.float16)},
                                tmp_path / "model-00002-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors",
                            "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    tensors, _ = hf_weights.load_state_dict(tmp_path)
    assert tensors["a"].dtype == tensors["b"].dtype == np.float32
    np.testing.assert_array_equal(tensors["b"], [0.5] * 3)
    index["weight_map"]["c"] = "../elsewhere.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(HFWeightsError, match="shard '../elsewhere.safetensors'"):
        hf_weights.load_state_dict(tmp_path)


def test_torch_file_with_non_tensor_entries_is_refused(tmp_path):
    torch.save({"a": torch.zeros(1), "step": 3}, tmp_path / "pytorch_model.bin")
    with pytest.raises(HFWeightsError, match="entry 'step' in pytorch_model.bin is not a tensor"):
        hf_weights.load_state_dict(tmp_path)
    torch.save({"a": torch.zeros(1, dtype=torch.int64)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(HFWeightsError, match="dtype int64, not float"):
        hf_weights.load_state_dict(tmp_path)


def test_config_must_be_a_json_object(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(HFWeightsError, match="must hold a JSON object"):
        hf_weights.read_config(tmp_path)
    assert hf_weights.read_json(tmp_path / "absent.json", required=False) is None
    with pytest.raises(HFWeightsError, match="not a model directory"):
        hf_weights.read_config(tmp_path / "config.json")


def test_strip_prefix_keeps_head_names():
    tensors = {"wav2vec2.encoder.x": 1, "lm_head.weight": 2}
    assert hf_weights.strip_prefix(tensors, ("hubert.", "wav2vec2.")) == {
        "encoder.x": 1, "lm_head.weight": 2}
    assert hf_weights.strip_prefix({"encoder.x": 1}, ("hubert.",)) == {"encoder.x": 1}


def test_weight_loader_checks_names_shapes_and_leftovers():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    tensors = {"w": np.arange(6, dtype="float32").reshape(2, 3), "b": np.zeros(3, "float32"),
               "skip.me": np.zeros(1, "float32")}
    loader = WeightLoader(tensors, "dir/model.safetensors", ignore_prefixes=("skip.",))
    loader.assign(layer.kernel, "w", transpose=(1, 0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), tensors["w"].T)
    with pytest.raises(HFWeightsError, match=r"tensor b in model.safetensors has shape \(3,\)"):
        loader.assign(layer.bias, "b")
    with pytest.raises(HFWeightsError, match="has rank 1, expected 2"):
        loader.get("b", transpose=(1, 0))
    with pytest.raises(HFWeightsError, match="missing tensor c in model.safetensors"):
        loader.get("c")
    with pytest.raises(HFWeightsError, match="unexpected tensor b in"):
        loader.finish()
