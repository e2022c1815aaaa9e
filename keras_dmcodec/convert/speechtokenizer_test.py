"""Parity of converted reference SpeechTokenizer / DM-Codec checkpoints (random weights).

The reference model is built with random weights (codebooks filled, ``weight_g``
scaled away from ``||weight_v||``), saved as a PyTorch checkpoint, converted
and compared with the reference on the same audio.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec import DMCodec
from keras_dmcodec.convert import (
    config_from_reference,
    convert_checkpoint,
    convert_to_file,
    load_reference_weights,
    read_state_dict,
)
from keras_dmcodec.convert.reference import REFERENCE_BASE_CONFIG, build_random_reference
from keras_dmcodec.presets import read_preset

torch = pytest.importorskip("torch")
pytest.importorskip("einops")

SMALL_CONFIG = dict(
    REFERENCE_BASE_CONFIG,
    n_filters=8,
    dimension=64,
    semantic_dimension=32,
    codebook_size=64,
    n_q=8,
    lstm_layers=2,
    bidirectional=True,
)
# 9999 is not a multiple of the 320-sample hop (the reference pads the last frame), 9600 is.
LENGTHS = (9999, 9600)


def _audio(length, batch=2, seed=0):
    """Gaussian noise at 0.1 standard deviation, ``[batch, length]`` float32."""
    return (0.1 * np.random.default_rng(seed).standard_normal((batch, length))).astype("float32")


def _reference_codes(ref, audio, n_q):
    """Reference codes as ``[batch, n_q, frames]`` and its decoding ``[batch, samples]``."""
    with torch.inference_mode():
        codes = ref.encode(torch.from_numpy(audio)[:, None, :], n_q=n_q)  # (n_q, B, F)
        decoded = ref.decode(codes)[:, 0]
    return codes.numpy().transpose(1, 0, 2), decoded.numpy()


def _weights(model):
    """All of a model's variables as numpy arrays."""
    return [ops.convert_to_numpy(w) for w in model.weights]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The reference model, its checkpoint and config files, and the converted model."""
    directory = tmp_path_factory.mktemp("reference")
    ref = build_random_reference(SMALL_CONFIG, seed=0, probe_audio=_audio(LENGTHS[0]))
    checkpoint = directory / "SpeechTokenizer.pt"
    torch.save(ref.state_dict(), checkpoint)
    config = directory / "config.json"
    config.write_text(json.dumps(SMALL_CONFIG))
    model = convert_checkpoint(checkpoint, config)
    return dict(ref=ref, checkpoint=checkpoint, config=config, model=model)


# ------------------------------------------------------------------ parity
# Each (length, n_q) compiles new encode/decode graphs, so not every pair is run.
@pytest.mark.parametrize("length, n_q", [(LENGTHS[0], 1), (LENGTHS[0], 2), (LENGTHS[0], 8),
                                         (LENGTHS[1], 8)])
def test_codes_and_decoding_match_reference(small, length, n_q):
    """Codes and decoded audio agree with the reference through the public API."""
    ref, model = small["ref"], small["model"]
    audio = _audio(length, seed=length)
    ref_codes, ref_audio = _reference_codes(ref, audio, n_q)
    codes = model.encode(audio, n_q=n_q)
    assert codes.shape == ref_codes.shape == (2, n_q, model.frames_for(length))
    assert (codes == ref_codes).mean() >= 0.999
    # Decode the reference's codes through both models so one flipped code cannot mask
    # (or cause) a decoder difference.
    decoded = model.decode(ref_codes.astype("int32"))
    assert decoded.shape == ref_audio.shape
    np.testing.assert_allclose(decoded, ref_audio, rtol=0, atol=1e-4)


def test_forward_features_and_reconstruction_match_reference(small):
    """``call`` (eval mode) matches the reference ``forward``: audio and the projected
    first-layer features, which exercises the ``transform`` mapping."""
    ref, model = small["ref"], small["model"]
    audio = _audio(LENGTHS[0], seed=5)
    with torch.inference_mode():
        ref_audio, _, ref_features = ref(torch.from_numpy(audio)[:, None, :])
    out = model(audio)
    np.testing.assert_allclose(ops.convert_to_numpy(out["audio"]),
                               ref_audio[:, 0, : audio.shape[1]].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(out["distill_features"]),
                               ref_features.numpy(), rtol=0, atol=1e-4)


def test_converted_weights_are_the_reference_values(small):
    """Spot checks of the layout transforms (conv, transposed conv, LSTM, codebook)."""
    ref_state = {k: v.numpy() for k, v in small["ref"].state_dict().items()}
    model = small["model"]
    conv = model.encoder.model_layers[3]
    weight_v = ref_state["encoder.model.3.conv.conv.weight_v"]
    np.testing.assert_array_equal(ops.convert_to_numpy(conv.kernel_v), weight_v.transpose(2, 1, 0))
    up = model.decoder.model_layers[3]
    np.testing.assert_array_equal(ops.convert_to_numpy(up.kernel_g),
                                  ref_state["decoder.model.3.convtr.convtr.weight_g"].reshape(-1))
    backward = model.encoder.model_layers[13].lstms[1].backward_layer.cell
    prefix = "encoder.model.13.lstm."
    np.testing.assert_allclose(
        ops.convert_to_numpy(backward.bias),
        ref_state[prefix + "bias_ih_l1_reverse"] + ref_state[prefix + "bias_hh_l1_reverse"],
    )
    vq = model.quantizer.quantizers[7]
    np.testing.assert_array_equal(ops.convert_to_numpy(vq.codebook),
                                  ref_state["quantizer.vq.layers.7._codebook.embed"])
    assert float(ops.convert_to_numpy(vq.initialized)) == 1.0


# ------------------------------------------------------------ checkpoint forms
def test_trainer_package_and_safetensors_load_the_same_weights(small, tmp_path):
    """A trainer package (state dict under "generator") and a .safetensors file both load."""
    from safetensors.numpy import save_file

    state = small["ref"].state_dict()
    package = tmp_path / "SpeechTokenizerTrainer_00001000"
    # The reference trainer's resumable checkpoint: the state dict under "generator".
    torch.save({"generator": state, "best_dev_mel_loss": 1.5, "optim_g": {"state": {}}},
               package)
    safetensors = tmp_path / "model.safetensors"
    save_file({k: v.numpy() for k, v in state.items()}, str(safetensors))
    expected = _weights(small["model"])
    for path in (package, safetensors):
        model = convert_checkpoint(path, small["config"])
        for got, want in zip(_weights(model), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_ddp_prefix_new_weight_norm_names_and_folded_weights(small):
    """``module.`` prefixes, ``parametrizations.weight.original0/1`` names and convs
    saved with weight norm removed (plain ``weight``) all load."""
    state = read_state_dict(small["checkpoint"])
    renamed = {}
    for key, value in state.items():
        if key.startswith("decoder.") and key.endswith(("weight_g", "weight_v")):
            suffix = "original0" if key.endswith("weight_g") else "original1"
            key = key.rsplit(".", 1)[0] + ".parametrizations.weight." + suffix
        renamed["module." + key] = value
    prefix = "encoder.model.0.conv.conv."
    g, v = state[prefix + "weight_g"], state[prefix + "weight_v"]
    del renamed["module." + prefix + "weight_g"], renamed["module." + prefix + "weight_v"]
    renamed["module." + prefix + "weight"] = g * v / np.sqrt((v**2).sum(axis=(1, 2), keepdims=True))

    model = DMCodec(**config_from_reference(SMALL_CONFIG))
    load_reference_weights(model, renamed)
    folded = model.encoder.model_layers[0]
    refolded = {id(folded.kernel_g), id(folded.kernel_v)}  # g, v differ; g * v / ||v|| agrees
    for got, want in zip(model.weights, small["model"].weights, strict=True):
        if id(got) not in refolded:
            np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))
    np.testing.assert_allclose(ops.convert_to_numpy(folded.effective_kernel()),
                               ops.convert_to_numpy(
                                   small["model"].encoder.model_layers[0].effective_kernel()),
                               rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------- errors
def test_mismatched_state_dict_reports_every_problem_at_once(small):
    """Unknown, missing and mis-shaped tensors are all named in one error; nothing is written."""
    state = read_state_dict(small["checkpoint"])
    state["encoder.model.99.conv.conv.bias"] = np.zeros(3, "float32")
    state["discriminator.weight"] = np.zeros(3, "float32")
    del state["decoder.model.1.lstm.bias_hh_l1"]
    del state["quantizer.vq.layers.3._codebook.embed"]
    state["encoder.model.0.conv.conv.weight_v"] = np.zeros((8, 1, 5), "float32")
    model = DMCodec(**config_from_reference(SMALL_CONFIG))
    model.build((None, None))
    before = _weights(model)
    with pytest.raises(ValueError) as info:
        load_reference_weights(model, state)
    message = str(info.value)
    assert message.splitlines()[0].startswith("checkpoint does not match")
    assert "2 unknown key(s), 2 missing key(s), 1 shape mismatch(es)" in message
    for key in ("encoder.model.99.conv.conv.bias", "discriminator.weight",
                "decoder.model.1.lstm.bias_hh_l1", "quantizer.vq.layers.3._codebook.embed"):
        assert key in message
    assert "encoder.model.0.conv.conv.weight_v: checkpoint (8, 1, 5)" in message
    assert "expected (8, 1, 7)" in message
    # Nothing was written.
    for got, want in zip(_weights(model), before, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "key, value",
    [("unknown", np.zeros(2, "float32")), ("missing", None), ("shape", np.zeros(5, "float32"))],
)
def test_each_kind_of_mismatch_is_an_error(small, key, value):
    """A single unknown key, missing key or shape mismatch is enough to refuse the load."""
    state = read_state_dict(small["checkpoint"])
    if key == "unknown":
        state["transform.extra"] = value
        expected = "unknown keys (1):\n    transform.extra"
    elif key == "missing":
        del state["transform.bias"]
        expected = "missing keys (1):\n    transform.bias"
    else:
        state["transform.bias"] = value
        expected = "transform.bias: checkpoint (5,) float32, expected (32,)"
    with pytest.raises(ValueError, match="checkpoint does not match") as info:
        load_reference_weights(DMCodec(**config_from_reference(SMALL_CONFIG)), state)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(activation="Snake"), "activation 'Snake'"),
        (dict(n_q=None), "lacks required model keys: n_q"),
        (dict(lstm_layers=0), "bidirectional=true with lstm_layers=0"),
        (dict(strides=[8, 0]), "'strides' must be a list of positive integers"),
        (dict(n_filters=True), "'n_filters' must be an integer"),
        (dict(dimension=64.5), "'dimension' must be an integer"),
        (dict(bidirectional="yes"), "'bidirectional' must be true or false"),
        (dict(sample_rate=0), "'sample_rate' must be a positive integer"),
    ],
)
def test_unsupported_configs_are_rejected(change, match):
    """Configs the model cannot represent raise a ValueError that says why."""
    cfg = dict(SMALL_CONFIG, **change)
    with pytest.raises(ValueError, match=match):
        config_from_reference(cfg)


def test_config_mapping_of_the_reference_base_config():
    """The DM-Codec base config maps to the expected kwargs; training keys are ignored."""
    kwargs = config_from_reference(dict(REFERENCE_BASE_CONFIG, num_mels=80, batch_size=6))
    assert kwargs == dict(
        sample_rate=16000, n_filters=64, ratios=[8, 5, 4, 2], dimension=1024,
        semantic_dimension=768, n_q=8, codebook_size=1024, lstm_layers=2, bidirectional=True,
        dilation_base=2, residual_kernel_size=3, n_residual_layers=1, causal=False, compress=2,
        decay=0.99, kmeans_init=True, kmeans_iters=50, threshold_ema_dead_code=2.0,
    )


def test_malformed_checkpoint_is_a_clear_error(tmp_path, small):
    """Garbage files and pickles without a model state dict give a clear ValueError."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read as a PyTorch state dict"):
        convert_checkpoint(bad, small["config"])
    other = tmp_path / "other.pt"
    torch.save({"optimizer": {"lr": 1.0}}, other)
    with pytest.raises(ValueError, match="no SpeechTokenizer / DM-Codec state dict"):
        convert_checkpoint(other, small["config"])


def test_identity_transform_when_semantic_dimension_equals_dimension(tmp_path):
    """The reference uses ``nn.Identity`` then (no ``transform`` keys); ours becomes identity."""
    cfg = dict(SMALL_CONFIG, n_filters=4, dimension=16, semantic_dimension=16, codebook_size=16,
               n_q=2, lstm_layers=1)
    ref = build_random_reference(cfg, seed=1)
    assert not any(key.startswith("transform.") for key in ref.state_dict())
    model = DMCodec(**config_from_reference(cfg))
    load_reference_weights(model, {k: v.numpy() for k, v in ref.state_dict().items()})
    projection = model.distill_projection
    np.testing.assert_array_equal(ops.convert_to_numpy(projection.kernel), np.eye(16))
    np.testing.assert_array_equal(ops.convert_to_numpy(projection.bias), np.zeros(16))


# ------------------------------------------------------------------- output files
def test_convert_to_file_refuses_to_overwrite(small, tmp_path):
    """Both output forms refuse to overwrite, leave no temporaries, and load back."""
    audio = _audio(LENGTHS[1], seed=9)
    expected = small["model"].encode(audio)
    directory = tmp_path / "converted"
    archive = tmp_path / "converted.keras"
    assert convert_to_file(small["checkpoint"], small["config"], directory) == directory
    assert convert_to_file(small["checkpoint"], small["config"], archive) == archive
    for out in (directory, archive):
        with pytest.raises(FileExistsError, match="already exists"):
            convert_to_file(small["checkpoint"], small["config"], out)
    convert_to_file(small["checkpoint"], small["config"], archive, overwrite=True)
    convert_to_file(small["checkpoint"], small["config"], directory, overwrite=True)
    # No temporary files are left beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "converted.keras"]

    metadata = read_preset(directory).metadata
    assert metadata["converted_from"] == "SpeechTokenizer.pt"
    np.testing.assert_array_equal(DMCodec.from_preset(directory).encode(audio), expected)
    np.testing.assert_array_equal(keras.saving.load_model(archive).encode(audio), expected)


def test_importing_the_converter_does_not_import_torch():
    """Importing the converter (and the reference helpers) does not import torch."""
    code = ("import sys, keras_dmcodec.convert, keras_dmcodec.convert.reference; "
            "print('torch' in sys.modules)")
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


# ------------------------------------------------------------------- full size
@pytest.mark.slow
def test_full_reference_configuration(capsys):
    """The reference DM-Codec configuration (103.7 M parameters) on 1 s of audio."""
    start = time.perf_counter()
    audio = _audio(16000, batch=1, seed=11)
    ref = build_random_reference(REFERENCE_BASE_CONFIG, seed=0, probe_audio=audio)
    model = DMCodec(**config_from_reference(REFERENCE_BASE_CONFIG))
    load_reference_weights(model, {k: v.numpy() for k, v in ref.state_dict().items()})

    ref_codes, ref_audio = _reference_codes(ref, audio, n_q=8)
    assert len(np.unique(ref_codes[:, 0])) > 10  # the codes really spread over the codebook
    assert (model.encode(audio) == ref_codes).mean() >= 0.999
    np.testing.assert_allclose(model.decode(ref_codes.astype("int32")), ref_audio,
                               rtol=0, atol=1e-4)

    # torch keeps two LSTM biases (b_ih, b_hh) that only ever appear as their sum; Keras
    # keeps one. Everything else (weight-norm g and v, conv biases, the transform) matches
    # one to one, and the codebooks are buffers / non-trainable variables on both sides.
    ref_params = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    duplicated_biases = sum(p.numel() for name, p in ref.named_parameters()
                            if ".lstm.bias_hh_" in name)
    ours = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert ours == ref_params - duplicated_biases == 103_651_010
    with capsys.disabled():
        print(f"\n[{keras.backend.backend()}] full-size parity: "
              f"{time.perf_counter() - start:.1f} s")
