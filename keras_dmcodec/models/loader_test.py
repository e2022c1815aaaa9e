"""The one resolver: names, folders (both layouts), keras-hub handles, random weights, bad files."""

import json

import keras
import numpy as np
import pytest

from keras_dmcodec import DMCodec, presets
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.presets import PresetError, locate_preset, read_preset
from keras_dmcodec.tokens import model_fingerprint

TINY_CODEC = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
                  lstm_layers=1, kmeans_iters=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny codec with k-means codebooks, saved as a keras-hub-layout preset folder."""
    model = DMCodec(**TINY_CODEC, seed=3)
    model(np.random.default_rng(0).normal(size=(1, 4000)).astype("float32") * 0.1,
          training=True)
    folder = tmp_path_factory.mktemp("loader") / "tiny_codec"
    model.save_to_preset(folder, metadata={"step": 7})
    return model, folder


def test_preset_folder_keras_hub_layout(trained):
    model, folder = trained
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"]
    config = json.loads((folder / "config.json").read_text())
    assert config["registered_name"] == "keras_dmcodec>DMCodec"
    assert config["class_name"] == "DMCodec" and config["config"]["n_q"] == 4
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["step"] == 7 and meta["parameter_count"] == model.count_params()
    assert meta["keras_version"] == keras.version()

    resolved = resolve_model(folder)
    assert resolved.name == "tiny_codec" and resolved.directory == folder
    assert not resolved.random_weights
    assert resolved.identity == model_fingerprint(model)
    assert isinstance(resolved.fingerprint, str) and len(resolved.fingerprint) == 16
    assert read_preset(folder).metadata["step"] == 7
    # DMCodec.from_preset takes the same path.
    assert model_fingerprint(DMCodec.from_preset(folder)) == resolved.identity


def test_old_layout_folder_still_loads(trained, tmp_path):
    model, _ = trained
    folder = tmp_path / "old"
    folder.mkdir()
    config = {k: v for k, v in model.get_config().items()
              if k not in ("name", "trainable", "dtype")}
    (folder / "config.json").write_text(json.dumps({
        "class_name": "DMCodec", "config": config, "keras_dmcodec_version": "0.1.0",
        "metadata": {"step": 3}}))
    model.save_weights(folder / "model.weights.h5")
    resolved = resolve_model(str(folder))
    assert resolved.identity.codebooks == model_fingerprint(model).codebooks
    assert resolved.identity.config == model_fingerprint(model).config
    assert read_preset(folder).metadata == {"step": 3}


def test_shipped_preset_by_name():
    source = locate_preset("dmcodec_small")
    assert source.directory == presets.SAVED_MODELS_DIR / "dmcodec_small"
    assert source.metadata["step"] > 0  # the shipped folder's older layout
    resolved = resolve_model("dmcodec_small")
    assert resolved.name == "dmcodec_small" and not resolved.random_weights
    assert resolved.model.n_q == 8 and resolved.directory == source.directory


def test_random_weights_only_when_asked(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "tiny_test", {"description": "", "config": TINY_CODEC})
    with pytest.raises(PresetError, match="no trained weights ship for preset 'tiny_test'.*"
                                          "random"):
        resolve_model("tiny_test")
    with pytest.raises(PresetError, match="no trained weights"):
        DMCodec.from_preset("tiny_test")
    first = resolve_model("tiny_test", random_weights=True)
    assert first.random_weights and first.name == "tiny_test" and first.directory is None
    assert first.model.seed == presets.RANDOM_SEED
    # Seeded: the same spec gives the same weights again, and the prefix asks the same way.
    again = resolve_model("random:tiny_test")
    assert again.random_weights and again.fingerprint == first.fingerprint
    assert model_fingerprint(DMCodec.from_preset("tiny_test", load_weights=False)) == \
        first.identity

    _, folder = trained
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(PresetError, match="missing model.weights.h5.*random"):
        resolve_model(tmp_path / "no_weights")
    random = resolve_model(tmp_path / "no_weights", random_weights=True)
    assert random.random_weights and random.name == "no_weights"
    # Asked for, random weights replace the folder's trained ones.
    assert resolve_model(folder, random_weights=True).identity.codebooks != \
        resolve_model(folder).identity.codebooks


def test_bad_weights_files_name_the_file(trained, tmp_path):
    _, folder = trained
    weights = (folder / "model.weights.h5").read_bytes()

    def preset_with(name, data):
        target = tmp_path / name
        target.mkdir()
        (target / "config.json").write_text((folder / "config.json").read_text())
        (target / "model.weights.h5").write_bytes(data)
        return target / "model.weights.h5"

    cut = preset_with("cut", weights[: len(weights) // 2])
    with pytest.raises(PresetError) as err:
        resolve_model(cut.parent)
    message = str(err.value)
    assert message.startswith(f"{cut}: truncated weights file") and "\n" not in message
    junk = preset_with("junk", b"\x00" * 4096)
    with pytest.raises(PresetError, match=f"^{junk}: (not an HDF5|unreadable or corrupt)"):
        resolve_model(junk.parent)

    other = DMCodec(**dict(json.loads((folder / "config.json").read_text())["config"],
                           codebook_size=8, name=None))
    other.build((None, None))
    other.save_weights(tmp_path / "other.weights.h5")
    wrong = preset_with("wrong", (tmp_path / "other.weights.h5").read_bytes())
    with pytest.raises(PresetError, match=f"^{wrong}: weights do not fit"):
        resolve_model(wrong.parent)


def test_bad_specs(trained, tmp_path):
    _, folder = trained
    with pytest.raises(PresetError, match="unknown preset 'no_such_codec'"):
        resolve_model("no_such_codec")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PresetError, match="not a preset folder \\(no config.json\\)"):
        resolve_model(tmp_path / "empty")
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "config.json").write_text("{not json")
    with pytest.raises(PresetError, match="config.json: invalid JSON"):
        resolve_model(tmp_path / "bad_json")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps(
        {"class_name": "BertBackbone", "registered_name": "keras_hub>BertBackbone",
         "config": {}}))
    with pytest.raises(PresetError, match="not a DMCodec config \\(found 'keras_hub>Bert"):
        resolve_model(tmp_path / "bert")
    with pytest.raises(PresetError, match="a file, expected a folder"):
        resolve_model(folder / "config.json")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="keras-hub's loader; backend-independent, runs once")
def test_keras_hub_loads_our_preset_and_we_load_handles(trained, monkeypatch):
    from keras_hub.src.utils import preset_utils

    model, folder = trained
    # keras-hub's own loader reads our folder as it reads any keras-hub preset.
    loader = preset_utils.get_preset_loader(str(folder))
    assert preset_utils.check_config_class(loader.config) is DMCodec
    loaded = loader.load_backbone(DMCodec, load_weights=True)
    assert model_fingerprint(loaded).codebooks == model_fingerprint(model).codebooks

    # A handle goes through keras-hub's get_file; no network here, so it serves the folder.
    def get_file(preset, path):
        assert preset == "hf://someone/tiny_codec"
        if not (folder / path).exists():
            raise FileNotFoundError(path)
        return str(folder / path)

    monkeypatch.setattr(preset_utils, "get_file", get_file)
    resolved = resolve_model("hf://someone/tiny_codec")
    assert resolved.name == "tiny_codec" and resolved.identity == model_fingerprint(model)
