"""Shared test helpers.

Layer tests (``run_layer_test``, ``run_serialization_test``, ``run_model_saving_test``), in
the manner of keras-hub's ``TestCase``: every layer and model test calls these instead of
writing its own get_config / serialize / save round trips, so each of them checks the same
things in the same way.

Code comparisons (``untied_frames``, ``assert_codes_equal_up_to_ties``) for tests that compare
codes from two compiled paths (graph vs eager, Keras vs an exported runtime, one backend vs
another). A nearest-codebook search is discontinuous: where a frame's two best codes are within
float32 rounding of each other, any change of kernel, thread count or instruction set (AVX2
vs AVX-512 oneDNN kernels) may pick either, and a flip at one RVQ layer changes every later
layer of that frame. Small random test models have such ties. Exact code equality is
therefore not a property two compiled paths can promise; "equal except at ties" is, and is
what these helpers check.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
from keras import ops


# ------------------------------------------------------------------------- layer tests
def _as_json(config):
    return json.dumps(config, sort_keys=True, indent=1)


def _public_attributes(instance):
    return {name for name in dir(instance) if name != "__annotations__"}


def run_serialization_test(instance):
    """Checks that ``instance`` survives its config and ``keras.saving`` round trips.

    Three checks, each comparing configs: ``cls.from_config(instance.get_config())``;
    ``keras.saving.deserialize_keras_object(serialize_keras_object(instance))`` (the revived
    config must equal the original exactly, tuples stay tuples); and the same through a JSON
    text, as a ``.keras`` file stores it (compared as JSON, so that the config must be JSON
    serialisable). The revived objects must have the class and the attributes of the
    original. Cheap: nothing is built or called.

    Args:
        instance: an unbuilt or built Keras layer, model or loss whose class is registered
            with ``keras.saving.register_keras_serializable``.

    Returns:
        the instance revived by ``keras.saving.deserialize_keras_object``.

    Example:
        >>> from keras_dmcodec.layers.conv import NormConv1D
        >>> clone = run_serialization_test(NormConv1D(3, kernel_size=5, causal=True))
        >>> clone.causal
        True
    """
    cls = type(instance)
    config = instance.get_config()
    config_json = _as_json(config)
    attributes = _public_attributes(instance)

    from_config = cls.from_config(config)
    assert from_config.get_config() == config, (
        f"{cls.__name__}.from_config(get_config()) changed the config:\n"
        f"{_as_json(from_config.get_config())}\n!=\n{config_json}")

    serialized = keras.saving.serialize_keras_object(instance)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls, f"deserialized a {type(revived).__name__}, not a {cls.__name__}"
    assert revived.get_config() == config, (
        f"{cls.__name__} serialize/deserialize changed the config:\n"
        f"{_as_json(revived.get_config())}\n!=\n{config_json}")

    from_json = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(from_json) is cls
    assert _as_json(from_json.get_config()) == config_json, (
        f"{cls.__name__}: the config changed on its way through JSON")
    if not instance.built:
        for clone in (from_config, revived, from_json):
            missing = attributes ^ _public_attributes(clone)
            assert not missing, f"{cls.__name__} revived with other attributes: {missing}"
    return revived


def _call(layer, inputs, call_kwargs):
    if isinstance(inputs, dict):
        return layer(**inputs, **call_kwargs)
    return layer(inputs, **call_kwargs)


def _numpy_leaves(structure):
    return [None if x is None else np.asarray(ops.convert_to_numpy(x))
            for x in keras.tree.flatten(structure)]


def assert_outputs_close(actual, expected, atol=1e-6, rtol=1e-6, what="outputs"):
    """Asserts two nested outputs (dicts, lists, tuples of tensors) have the same structure
    and close values.

    Args:
        actual, expected: nested structures of tensors, arrays, numbers or None.
        atol, rtol: tolerances of ``np.testing.assert_allclose``.
        what: how the failure message names the outputs.

    Example:
        >>> assert_outputs_close({"a": [np.ones(2)]}, {"a": [np.ones(2)]})
    """
    keras.tree.assert_same_structure(actual, expected)
    leaves = zip(_numpy_leaves(actual), _numpy_leaves(expected), strict=True)
    for i, (got, want) in enumerate(leaves):
        if want is None:
            assert got is None, f"{what}: leaf {i} is not None"
            continue
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol,
                                   err_msg=f"{what}: leaf {i} differs")


def _shapes(outputs):
    return keras.tree.map_structure(lambda x: None if x is None else tuple(x.shape), outputs)


def run_model_saving_test(instance, input_data, directory, call_kwargs=None, atol=1e-6,
                          rtol=1e-6):
    """Saves ``instance`` to a ``.keras`` file, loads it, and checks the outputs agree.

    A model is saved as it is; a layer is first wrapped in a functional model with the static
    input shapes of ``input_data`` (which returns lists where the layer returns tuples, so
    then the outputs are compared leaf by leaf). ``instance`` must be built (call it once
    first).

    Args:
        instance: a built Keras model or layer.
        input_data: the array (or dict of arrays, passed as keyword arguments) to call it on.
        directory: a folder to write the ``.keras`` file to (pytest's ``tmp_path``).
        call_kwargs: dict of further keyword arguments of ``call`` (e.g. ``training=False``).
        atol, rtol: tolerances for the outputs.

    Returns:
        the loaded model.

    Example:
        >>> from keras_dmcodec.layers.conv import NormConv1D
        >>> import tempfile
        >>> layer = NormConv1D(3, kernel_size=5)
        >>> x = np.ones((1, 8, 2), "float32")
        >>> _ = layer(x)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     loaded = run_model_saving_test(layer, x, tmp)
    """
    call_kwargs = dict(call_kwargs or {})
    expected = _call(instance, input_data, call_kwargs)
    if isinstance(instance, keras.Model):
        model = instance
        call = lambda m: _call(m, input_data, call_kwargs)  # noqa: E731
    else:
        inputs = keras.tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=keras.backend.standardize_dtype(
                x.dtype)), input_data)
        model = keras.Model(inputs, _call(instance, inputs, call_kwargs))
        call = lambda m: keras.tree.flatten(m(input_data))  # noqa: E731
        expected = keras.tree.flatten(expected)
    path = os.path.join(directory, f"{type(instance).__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}"
    assert_outputs_close(call(loaded), expected, atol=atol, rtol=rtol,
                         what=f"{type(instance).__name__} loaded from .keras")
    return loaded


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape=None, *,
                   call_kwargs=None, expected_output_dtype=None,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   run_symbolic_check=True, saving_directory=None, atol=1e-6, rtol=1e-6):
    """The standard checks for a layer or model; returns the built instance and its output.

    1. ``run_serialization_test`` on a fresh instance (unbuilt).
    2. An eager call on ``input_data``: the instance is built, has the expected number of
       weights, its outputs have ``expected_output_shape`` and every floating output has
       ``expected_output_dtype``.
    3. A symbolic call (``keras.KerasTensor`` inputs of the same shapes) on a fresh instance
       gives the same output shapes (Keras's shape inference agrees with the real call).
    4. The built instance, serialized and deserialized with ``keras.saving`` and given its
       weights, gives the same outputs.
    5. Optionally (``saving_directory``), ``run_model_saving_test``: a ``.keras`` save/load
       gives the same outputs.

    Args:
        cls: the layer or model class.
        init_kwargs: dict of constructor arguments.
        input_data: array, or dict of arrays passed as keyword arguments to ``call``.
        expected_output_shape: the output shapes as the output's structure with a tuple in
            place of each tensor (e.g. ``{"codes": (2, 4, 30), ...}``); None skips the check.
        call_kwargs: dict of further keyword arguments of ``call``.
        expected_output_dtype: dtype of every floating output; default the layer's
            ``compute_dtype``.
        expected_num_trainable_weights, expected_num_non_trainable_weights: ints, or None to
            skip.
        run_symbolic_check: False for a layer whose call needs concrete values.
        saving_directory: folder for the ``.keras`` round trip (pytest's ``tmp_path``); None
            skips it (it is the slowest check).
        atol, rtol: tolerances of the output comparisons.

    Returns:
        ``(layer, output)``: the built instance and its eager output, for further checks.

    Example:
        >>> from keras_dmcodec.layers.conv import NormConv1D
        >>> layer, y = run_layer_test(NormConv1D, {"filters": 3, "kernel_size": 4,
        ...                                        "strides": 2},
        ...                           np.ones((2, 9, 4), "float32"), (2, 5, 3),
        ...                           expected_num_trainable_weights=3)
    """
    call_kwargs = dict(call_kwargs or {})
    run_serialization_test(cls(**init_kwargs))

    layer = cls(**init_kwargs)
    output = _call(layer, input_data, call_kwargs)
    name = cls.__name__
    assert layer.built, f"{name} is not built after a call"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{name} has {len(layer.trainable_weights)} trainable weights, expected "
            f"{expected_num_trainable_weights}")
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
            f"{name} has {len(layer.non_trainable_weights)} non-trainable weights, expected "
            f"{expected_num_non_trainable_weights}")
    shapes = _shapes(output)
    if expected_output_shape is not None:
        assert shapes == expected_output_shape, (
            f"{name} output shapes {shapes}, expected {expected_output_shape}")
    dtype = keras.backend.standardize_dtype(expected_output_dtype or layer.compute_dtype)
    for i, leaf in enumerate(keras.tree.flatten(output)):
        if leaf is not None and hasattr(leaf, "dtype"):
            leaf_dtype = keras.backend.standardize_dtype(leaf.dtype)
            if "float" in leaf_dtype:
                assert leaf_dtype == dtype, f"{name} output {i} is {leaf_dtype}, not {dtype}"

    if run_symbolic_check:
        symbolic_inputs = keras.tree.map_structure(
            lambda x: keras.KerasTensor(x.shape, keras.backend.standardize_dtype(x.dtype)),
            input_data)
        symbolic = _call(cls(**init_kwargs), symbolic_inputs, call_kwargs)
        assert _shapes(symbolic) == shapes, (
            f"{name} symbolic output shapes {_shapes(symbolic)} != eager {shapes}")

    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not revived.built:
        _call(revived, input_data, call_kwargs)
    revived.set_weights(layer.get_weights())
    assert_outputs_close(_call(revived, input_data, call_kwargs), output, atol=atol, rtol=rtol,
                         what=f"deserialized {name}")

    if saving_directory is not None:
        run_model_saving_test(layer, input_data, saving_directory, call_kwargs, atol, rtol)
    return layer, output


# ------------------------------------------------------------------------ code comparisons
def _as_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _latents(model, audio):
    """``model``'s encoder output for ``audio`` (``[batch, samples]`` or
    ``[batch, 1, samples]``), float64."""
    return _as_numpy(model.encode_latents(ops.convert_to_tensor(audio)))


def untied_frames(model, audio, margin=1e-4):
    """Frames of one clip whose first-layer nearest code wins by more than float32 rounding.

    The distance ``|x|^2 - 2 x.c + |c|^2`` carries an error of about ``eps * (|x|^2 + |c|^2)``
    in float32, so a frame whose best and second-best distances are within ``margin`` times
    that scale is a tie that any compiled path may flip.

    Args:
        model: the ``DMCodec`` whose encoder and first codebook define the distances.
        audio: float array ``[samples]`` (one clip).
        margin: relative gap below which a frame counts as tied.

    Returns:
        bool array ``[frames]``, True where the first RVQ layer's code is not a tie.

    Example:
        >>> untied = untied_frames(model, audio)  # doctest: +SKIP
        >>> np.testing.assert_array_equal(a[:, untied], b[:, untied])  # doctest: +SKIP
    """
    latents = _latents(model, audio[None])
    codebook = _as_numpy(model.quantizer.quantizers[0].codebook)
    dist = ((latents[0][:, None] - codebook[None]) ** 2).sum(-1)
    nearest = codebook[np.argmin(dist, axis=1)]
    scale = (latents[0] ** 2).sum(-1) + (nearest**2).sum(-1)
    dist = np.sort(dist, axis=1)
    return (dist[:, 1] - dist[:, 0]) > margin * scale


def assert_codes_equal_up_to_ties(model, audio, codes, expected, margin=1e-3):
    """Asserts that ``codes`` equal ``expected`` except in frames whose first differing RVQ
    layer is a float32 tie for ``model``; returns the number of frames that differ.

    Args:
        model: the ``DMCodec`` whose encoder and codebooks define the distances.
        audio: float array ``[batch, samples]`` or ``[batch, 1, samples]`` that was encoded.
        codes, expected: int arrays ``[batch, n_q, frames]``.
        margin: a tie is a distance gap at most ``margin * (|r|^2 + |c|^2)`` (``r`` the
            residual, ``c`` the expected code's vector).

    Example:
        >>> differing = assert_codes_equal_up_to_ties(model, x, exported.encode(x),
        ...                                           model.encode(x))  # doctest: +SKIP
    """
    codes, expected = np.asarray(codes), np.asarray(expected)
    assert codes.shape == expected.shape, f"codes {codes.shape} != {expected.shape}"
    differing = np.argwhere(np.any(codes != expected, axis=1))  # (batch, frame) pairs
    if not len(differing):
        return 0
    latents = _latents(model, audio)
    books = [_as_numpy(q.codebook) for q in model.quantizer.quantizers]
    for item, frame in differing:
        got, want = codes[item, :, frame], expected[item, :, frame]
        layer = int(np.argmax(got != want))
        residual = latents[item, frame] - sum(books[q][want[q]] for q in range(layer))
        wanted_code, other_code = books[layer][want[layer]], books[layer][got[layer]]
        gap = abs(((residual - wanted_code) ** 2).sum() - ((residual - other_code) ** 2).sum())
        scale = (residual**2).sum() + (wanted_code**2).sum()
        assert gap <= margin * scale, (
            f"item {item}, frame {frame}, layer {layer}: code {got[layer]} instead of "
            f"{want[layer]}, and the distance gap {gap:.3g} is no tie (scale {scale:.3g})")
    return len(differing)


def stream_in_chunks(layer, x, chunks, per_chunk=1):
    """Runs ``layer.stream_step`` over ``x`` ``[batch, time, ...]`` cut into ``chunks``.

    Args:
        layer: a layer with ``initial_stream_state`` and ``stream_step``.
        x: numpy input; its time axis must add up to ``sum(chunks) * per_chunk``.
        chunks: sizes of the successive steps, in units of ``per_chunk`` time steps.
        per_chunk: time steps per unit (the layer's stride or hop).

    Returns:
        The steps' outputs concatenated along time (numpy), to compare with ``layer(x)``.

    Example:
        >>> y = stream_in_chunks(conv, x, [5, 1, 4, 2], per_chunk=2)  # doctest: +SKIP
    """
    state, outputs, start = layer.initial_stream_state(x.shape[0]), [], 0
    for size in chunks:
        y, state = layer.stream_step(x[:, start:start + size * per_chunk], state)
        outputs.append(_as_numpy(y))
        start += size * per_chunk
    assert start == x.shape[1], f"the chunks cover {start} of {x.shape[1]} time steps"
    return np.concatenate(outputs, axis=1)



# A Python program that runs ``keras_dmcodec.cli.main`` once per argv of the JSON list in its
# first argument and prints ``[[exit code, stderr], ...]`` as JSON: many error cases in one
# process (a ``dmcodec`` process spends ~10 s importing). Run it as
# ``[sys.executable, "-c", CLI_DRIVER, json.dumps(argvs)]``.
CLI_DRIVER = """
import contextlib, io, json, sys
from keras_dmcodec.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def run_dmcodec(*args, cwd, backend="tensorflow", timeout=600):
    """Runs the installed ``dmcodec`` console script (beside this Python) with ``args`` in
    ``cwd`` under ``KERAS_BACKEND=backend``; returns the ``subprocess.CompletedProcess``
    (text stdout / stderr captured)."""
    command = [str(Path(sys.executable).parent / "dmcodec"), *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=_cli_env(backend), capture_output=True,
                          text=True, timeout=timeout)


def _cli_env(backend):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")


def assert_one_line_errors(cases, cwd, backend="tensorflow"):
    """Runs every ``{expected message: argv}`` case through ``keras_dmcodec.cli.main`` in one
    subprocess (``CLI_DRIVER``) and asserts that each exits with status 1 and prints exactly
    one stderr line, ``dmcodec: error: ...``, containing its expected message."""
    result = subprocess.run([sys.executable, "-c", CLI_DRIVER, json.dumps(list(cases.values()))],
                            cwd=cwd, env=_cli_env(backend), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for (expected, argv), (code, stderr) in zip(cases.items(), outcomes, strict=True):
        lines = stderr.strip().splitlines()
        assert code == 1, (argv, code, stderr)
        assert len(lines) == 1 and lines[0].startswith("dmcodec: error: "), (argv, stderr)
        assert expected.strip() in lines[0], (expected, lines[0])
