import json

import keras
import numpy as np
import pytest
import soundfile as sf
from keras import ops

from keras_dmcodec.presets import read_preset
from training.train import build_trainer, load_checkpoint, load_config, train

CONFIG = {
    "model": {"n_filters": 2, "dimension": 8, "semantic_dimension": 0, "n_q": 2,
              "codebook_size": 8, "lstm_layers": 1, "kmeans_iters": 2},
    "discriminators": {"msd": {"num_scales": 1, "channels": [4] * 7}},
    "loss": {"mel_weights": [45.0, 1.0]},
    "data": {"train": None, "segment_seconds": 0.2, "batch_size": 2},
    "optimizer": {"learning_rate": 1e-3},
    "train": {"steps": 4, "steps_per_epoch": 2, "checkpoint_every": 2, "seed": 7},
}


@pytest.fixture
def config(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(corpus / f"u{i}.wav", (rng.normal(size=8000) * 0.1).astype("float32"), 16000)
    cfg = json.loads(json.dumps(CONFIG))
    cfg["data"]["train"] = str(corpus)
    return cfg


def _weights(trainer):
    return [ops.convert_to_numpy(v) for v in trainer.weights]


def test_resumed_run_reproduces_uninterrupted_run(config, tmp_path):
    full = train(config, tmp_path / "full", verbose=0)
    assert full["step"] == 4 and not full["stopped_on_nan"]
    half = train(config, tmp_path / "split", steps=2, verbose=0)
    assert half["step"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, tmp_path / "split", verbose=0)
    resumed = train(config, tmp_path / "split", resume=True, verbose=0)
    assert resumed["step"] == 4

    a, b = build_trainer(config), build_trainer(config)
    assert load_checkpoint(a, tmp_path / "full" / "checkpoints" / "step-4") == 4
    load_checkpoint(b, tmp_path / "split" / "checkpoints" / "step-4")
    for x, y in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    opt_a = [ops.convert_to_numpy(v) for v in a.optimizer.variables]
    opt_b = [ops.convert_to_numpy(v) for v in b.optimizer.variables]
    for x, y in zip(opt_a, opt_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "full" / "train_log.csv").read_text().count("\n") == 3  # header + 2
    assert (tmp_path / "split" / "codec" / "model.weights.h5").is_file()


def test_nan_loss_stops_with_message(config, tmp_path, capsys):
    config["optimizer"]["learning_rate"] = float("nan")
    config["optimizer"]["schedule"] = "constant"
    result = train(config, tmp_path / "nan", verbose=0)
    assert result["stopped_on_nan"]
    assert "non-finite loss" in capsys.readouterr().err
    assert not (tmp_path / "nan" / "codec").exists()


def test_config_checks(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_config(bad)
    cfg = dict(CONFIG, train={"steps": 5, "steps_per_epoch": 2, "checkpoint_every": 2})
    bad.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="multiple of steps_per_epoch"):
        load_config(bad)
    assert load_config("training/configs/dmcodec_base.json")["model"]["dimension"] == 1024
    assert keras.backend.backend() in ("tensorflow", "jax", "torch")


def test_lm_sm_distillation_trains_through_fit(tmp_path):
    """Issue 5: a tiny ``lm+sm`` run reads the teacher cache and reports every loss term."""
    from keras_dmcodec.teachers.cache_test import build_tiny_cache, speech_items

    items = speech_items()[:2]
    build_tiny_cache(tmp_path / "cache", items)  # tiny teachers: SM 8-d, LM 12-d
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{it.path}\t{it.text}\n" for it in items))
    config = json.loads(json.dumps(CONFIG))
    config["model"]["semantic_dimension"] = 8
    config["loss"].update(distill="lm+sm", lm_dimension=12)
    config["data"].update(train=str(corpus), teacher_cache=str(tmp_path / "cache"),
                          segment_seconds=0.4)
    config["train"].update(steps=2, steps_per_epoch=1, checkpoint_every=2)
    result = train(config, tmp_path / "run", verbose=0)
    history = result["history"]
    assert result["step"] == 2 and not result["stopped_on_nan"]
    for name in ("generator_loss", "discriminator_loss", "mel_error", "commitment_loss",
                 "distill_loss", "sm_distill_loss", "lm_distill_loss"):
        assert np.all(np.isfinite(history[name])), name
    assert min(history["sm_distill_loss"]) > 0 and min(history["lm_distill_loss"]) > 0
    assert history["distill_loss"][-1] == pytest.approx(
        0.5 * history["sm_distill_loss"][-1] + 0.5 * history["lm_distill_loss"][-1], rel=1e-4)


def test_config_extends_a_parent(tmp_path):
    (tmp_path / "parent.json").write_text(json.dumps(dict(CONFIG, description="parent")))
    (tmp_path / "child.json").write_text(json.dumps(
        {"extends": "parent.json", "loss": {"distill": "sm"}, "data": {"batch_size": 4}}))
    config = load_config(tmp_path / "child.json")
    assert config["loss"] == {"mel_weights": [45.0, 1.0], "distill": "sm"}
    assert config["data"]["batch_size"] == 4 and config["data"]["segment_seconds"] == 0.2
    assert "description" not in config
    (tmp_path / "loop.json").write_text(json.dumps({"extends": "loop.json"}))
    with pytest.raises(ValueError, match="loops back"):
        load_config(tmp_path / "loop.json")
    for name in ("dmcodec_base_lm.json", "dmcodec_base_sm.json", "dmcodec_base_lm_sm.json"):
        paper = load_config(f"training/configs/{name}")
        assert paper["model"]["dimension"] == 1024 and paper["loss"]["distill_weight"] == 120
        assert paper["loss"]["distill"] in ("lm", "sm", "lm+sm")


def test_ship_writes_a_checkpoint_as_a_preset(config, tmp_path):
    from keras_dmcodec import DMCodec
    from training.ship import main as ship_main

    train(config, tmp_path / "run", verbose=0)
    assert ship_main(["--run", str(tmp_path / "run"), "--step", "2", "--out",
                      str(tmp_path / "preset")]) == 0
    meta = read_preset(tmp_path / "preset").metadata
    assert meta["step"] == 2 and meta["distill"] == "none" and meta["discriminators"] == ["msd"]
    shipped = DMCodec.from_preset(tmp_path / "preset")
    trainer = build_trainer(config)
    load_checkpoint(trainer, tmp_path / "run" / "checkpoints" / "step-2")
    audio = np.random.default_rng(1).normal(size=(1, 3200)).astype("float32") * 0.1
    np.testing.assert_array_equal(shipped.encode(audio), trainer.codec.encode(audio))
    # no silent overwrite, and a clear error for a missing step
    assert ship_main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "preset")]) == 1
    assert ship_main(["--run", str(tmp_path / "run"), "--step", "3", "--out",
                      str(tmp_path / "other")]) == 1


def test_ema_of_the_weights_is_kept_swapped_in_by_fit_and_shipped(config, tmp_path):
    """optimizer.ema_momentum: an EMA of the codec's weights, exact on every backend."""
    from keras_dmcodec import DMCodec
    from training.ship import ship

    config["optimizer"]["ema_momentum"] = 0.5
    config["discriminators"] = {}  # the codec's optimizer is the one that keeps the average
    trainer = build_trainer(config)
    assert trainer.generator_optimizer.use_ema
    assert not trainer.discriminator_optimizer.use_ema
    g_vars = trainer.generator_variables()
    after_each = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # one step per epoch: synced on every backend
            after_each.append([ops.convert_to_numpy(v).copy() for v in g_vars])

    audio = np.random.default_rng(2).normal(size=(2, 3200)).astype("float32") * 0.1
    trainer.fit(audio, batch_size=2, epochs=3, verbose=0, callbacks=[Record()])
    expected = after_each[0]  # the first step starts the average at the weights
    for weights in after_each[1:]:
        expected = [0.5 * a + 0.5 * w for a, w in zip(expected, weights, strict=True)]
    # fit ends by swapping the average in (Keras's finalize_variable_values)
    for var, want in zip(g_vars, expected, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(var), want, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, w) for a, w in zip(expected, after_each[-1], strict=True))

    # A run's presets: the average by default (as fit's own final swap), raw on request.
    train(config, tmp_path / "run", verbose=0)
    ship(tmp_path / "run", tmp_path / "ema", step=4)
    ship(tmp_path / "run", tmp_path / "raw", step=4, average=False)
    assert read_preset(tmp_path / "ema").metadata["weights"] == "ema"
    assert read_preset(tmp_path / "raw").metadata["ema_momentum"] == 0.5
    ema, raw = (_weights(DMCodec.from_preset(tmp_path / n)) for n in ("ema", "raw"))
    final = _weights(DMCodec.from_preset(tmp_path / "run" / "codec"))  # saved after fit's swap
    for a, b in zip(ema, final, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    restored = build_trainer(config)
    load_checkpoint(restored, tmp_path / "run" / "checkpoints" / "step-4")  # raw weights
    for a, b in zip(raw, _weights(restored.codec), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(ema, raw, strict=True))
    config["optimizer"]["ema_momentum"] = 1.0
    with pytest.raises(ValueError, match="ema_momentum must be between 0 and 1"):
        build_trainer(config)


def test_optimizer_warmup_and_clipping(config):
    config["optimizer"].update(warmup_steps=2, global_clipnorm=5.0)
    trainer = build_trainer(config)
    g_opt = trainer.generator_optimizer
    lr = g_opt._learning_rate
    assert float(ops.convert_to_numpy(lr(0))) == 0.0
    assert float(ops.convert_to_numpy(lr(2))) == pytest.approx(1e-3)
    assert float(ops.convert_to_numpy(lr(4))) < 1e-3
    assert g_opt.global_clipnorm == 5.0 and trainer.discriminator_optimizer.global_clipnorm == 5.0


def test_variance_preserving_init_option(config):
    config["train"]["init"] = "variance_preserving"
    a, b = build_trainer(config), build_trainer(config)

    def convs(trainer):
        return [layer for layer in trainer.codec._flatten_layers() if hasattr(layer, "kernel_v")]

    for conv_a, conv_b in zip(convs(a), convs(b), strict=True):
        assert not np.any(ops.convert_to_numpy(conv_a.bias))  # re-initialised
        np.testing.assert_array_equal(ops.convert_to_numpy(conv_a.kernel_v),
                                      ops.convert_to_numpy(conv_b.kernel_v))  # train.seed
    config["train"]["init"] = "xavier"
    with pytest.raises(ValueError, match="train.init"):
        build_trainer(config)


def test_init_from_preset_warm_starts_every_weight(config, tmp_path):
    from keras_dmcodec.models.dmcodec import DMCodec
    from training.ship import main as ship_main

    source = DMCodec(**config["model"], seed=99)
    source.build((None, None))
    source.save_to_preset(tmp_path / "preset", metadata={"step": 10, "train_data": "a.tsv"})
    config["train"]["init_from"] = str(tmp_path / "preset")
    trainer = build_trainer(config)
    for ours, theirs in zip(trainer.codec.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    out = train(config, tmp_path / "run", verbose=0)  # and it trains from there
    assert out["step"] == 4 and not out["stopped_on_nan"]
    # Shipping the fine-tune back over its own starting point records the lineage.
    assert ship_main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "preset"),
                      "--force"]) == 0
    meta = read_preset(tmp_path / "preset").metadata
    assert meta["step"] == 4 and meta["total_steps"] == 14
    assert meta["init_from"]["step"] == 10 and meta["init_from"]["train_data"] == "a.tsv"
    shipped = DMCodec.from_preset(tmp_path / "preset")
    audio = np.random.default_rng(1).normal(size=(1, 3200)).astype("float32") * 0.1
    trained = build_trainer({**config, "train": {**config["train"], "init_from": None}})
    load_checkpoint(trained, tmp_path / "run" / "checkpoints" / "step-4")
    np.testing.assert_array_equal(shipped.encode(audio), trained.codec.encode(audio))


def test_init_from_rejects_other_architecture_and_init(config, tmp_path):
    from keras_dmcodec.models.dmcodec import DMCodec

    other = DMCodec(**{**config["model"], "dimension": 16})
    other.build((None, None))
    other.save_to_preset(tmp_path / "preset")
    config["train"]["init_from"] = str(tmp_path / "preset")
    with pytest.raises(ValueError, match=r"dimension \(16 vs 8\)"):
        build_trainer(config)
    config["train"]["init"] = "variance_preserving"
    with pytest.raises(ValueError, match="exclusive"):
        build_trainer(config)


def test_init_from_may_change_the_codebook_update_settings(config, tmp_path):
    """The quantizer's training-time settings (dead-code threshold, EMA decay) shape no
    weight: a fine-tune may change them, and the copied codebooks are the preset's."""
    from keras_dmcodec.models.dmcodec import DMCodec

    source = DMCodec(**config["model"], seed=3)
    source.build((None, None))
    source.save_to_preset(tmp_path / "preset")
    config["model"] = {**config["model"], "threshold_ema_dead_code": 0.1, "decay": 0.95}
    config["train"]["init_from"] = str(tmp_path / "preset")
    codec = build_trainer(config).codec
    assert codec.quantizer.threshold_ema_dead_code == 0.1
    for ours, theirs in zip(codec.weights, source.weights, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(ours), ops.convert_to_numpy(theirs))


def test_causal_transfer_maps_a_bidirectional_preset_onto_a_causal_codec(config, tmp_path):
    from keras_dmcodec.layers.conv import weight_norm_kernel
    from keras_dmcodec.models.dmcodec import DMCodec

    model = {**config["model"], "lstm_layers": 2, "bidirectional": True}
    source = DMCodec(**model, seed=5)
    source.build((None, None))
    source.save_to_preset(tmp_path / "preset")
    config["model"] = {**model, "causal": True, "bidirectional": False}
    config["train"]["init_from"] = str(tmp_path / "preset")
    with pytest.raises(ValueError, match=r"causal \(False vs True\)"):
        build_trainer(config)  # the default transfer is exact
    config["train"]["init_transfer"] = "causal"
    codec = build_trainer(config).codec

    def value(model, path):
        (variable,) = [v for v in model.weights if v.path.split("/", 1)[1] == path]
        return ops.convert_to_numpy(variable)

    def kernel(model):
        return ops.convert_to_numpy(weight_norm_kernel(
            ops.convert_to_tensor(value(model, "encoder/conv_out/kernel_v")),
            ops.convert_to_tensor(value(model, "encoder/conv_out/kernel_g"))))

    dim = value(codec, "encoder/lstm/lstm_0/lstm_cell/recurrent_kernel").shape[0]  # LSTM width
    for path in ("encoder/conv_in/kernel_v", "decoder/lstm/lstm_0/lstm_cell/kernel",
                 "quantizer/vq_1/codebook", "decoder/conv_out/bias"):
        np.testing.assert_array_equal(value(codec, path), value(source, path))
    for i in (0, 1):
        forward = f"encoder/lstm/bilstm_{i}/forward_lstm_{i}/lstm_cell"
        np.testing.assert_array_equal(value(codec, f"encoder/lstm/lstm_{i}/lstm_cell/kernel"),
                                      value(source, f"{forward}/kernel")[:dim])
        np.testing.assert_array_equal(
            value(codec, f"encoder/lstm/lstm_{i}/lstm_cell/recurrent_kernel"),
            value(source, f"{forward}/recurrent_kernel"))
    # The output conv reads [forward + x, backward + x]: its causal twin maps x exactly as before.
    theirs, ours = kernel(source), kernel(codec)
    np.testing.assert_allclose(ours, theirs[:, :dim] + theirs[:, dim:], rtol=1e-5, atol=1e-6)
    out = train(config, tmp_path / "run", verbose=0)
    assert out["step"] == 4 and not out["stopped_on_nan"]

    config["model"]["causal"] = False
    with pytest.raises(ValueError, match="causal=true"):
        build_trainer(config)
    config["train"]["init_transfer"] = "sideways"
    with pytest.raises(ValueError, match="init_transfer"):
        build_trainer(config)
