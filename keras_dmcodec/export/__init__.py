"""Export a DMCodec to TensorFlow SavedModel, TFLite and ONNX, with separate encode / decode.

Shapes are static (TFLite without Flex ops needs unrolled LSTMs, and
unrolling needs a fixed number of frames): ``encode`` takes float32 audio
``[1, num_samples]`` and returns int32 ``codes`` ``[1, n_q, frames]``
(``frames = ceil(num_samples / hop)``); ``decode`` takes int32 ``codes``
``[1, n_q, frames]`` and returns float32 ``audio`` ``[1, frames * hop]``.
Longer audio is processed in windows of that size (see ``docs/export.md``).

Export always runs in a TensorFlow-backend process: under another backend,
``export_codec`` saves nothing new but rebuilds the preset in a
``KERAS_BACKEND=tensorflow`` subprocess (weights load identically on every
backend), so weights trained on JAX or torch export the same way.

Outputs in ``out_dir``: ``saved_model/`` (signatures ``encode`` and
``decode``), ``codec.tflite`` (signature runners ``encode`` / ``decode``;
``codec_int8.tflite`` with dynamic-range int8 weights when asked),
``encode.onnx`` and ``decode.onnx``, and ``export.json`` describing the shapes,
the model's preset name and its fingerprint (``tokens.model_fingerprint``, as token
files carry it).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from keras_dmcodec import __version__
from keras_dmcodec.layers.quantization import squared_distances
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.utils.files import atomic_directory

FORMATS = ("saved_model", "tflite", "onnx")
MANIFEST = "export.json"


class ExportError(ValueError):
    """An export that cannot be done, with a one-line reason."""


def _lstm_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        elif isinstance(layer, keras.layers.LSTM):
            yield layer


def prepare_for_export(model, unroll=True):
    """Unrolls the model's LSTMs (TFLite builtins have no while loop over LSTM cells).

    ``unroll=False`` restores the loop (ONNX has a native LSTM and stays dynamic).
    Either way the LSTMs run Keras's own loop, not ``FastLSTM``'s CPU kernel: converters
    recognise Keras's loop (tf2onnx maps it to ONNX's LSTM operator).
    """
    for lstm in _lstm_layers(model):
        lstm.unroll = unroll
        lstm.use_fast_path = False
    return model


def export_codec(preset, out_dir, formats=FORMATS, num_samples=16000, n_q=None, int8=False,
                 overwrite=False, opset=17):
    """Exports a preset to ``out_dir``; returns the manifest dict.

    Args:
        preset: a model spec for ``keras_dmcodec.models.loader.resolve_model``: a preset
            folder, a name with shipped weights or a keras-hub handle.
        out_dir: output folder (created; must not exist unless ``overwrite``).
        formats: any of ``"saved_model"``, ``"tflite"``, ``"onnx"``.
        num_samples: static input length of ``encode`` in samples.
        n_q: codebooks in the exported graphs (default all).
        int8: also write ``codec_int8.tflite`` (dynamic-range int8 weights).
        overwrite: replace an existing ``out_dir``.
        opset: ONNX opset.
    """
    formats = tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {unknown}: choose from {list(FORMATS)}")
    if int(num_samples) < 1:
        raise ExportError(f"num_samples must be positive, got {num_samples}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (use --force to replace it)")
    args = dict(preset=str(preset), out_dir=str(out_dir), formats=list(formats),
                num_samples=int(num_samples), n_q=n_q, int8=bool(int8), opset=int(opset))
    if keras.backend.backend() == "tensorflow":
        return export_in_this_process(**args)
    return _export_in_subprocess(args)


def _export_in_subprocess(args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "keras_dmcodec.export.worker", json.dumps(args)],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise ExportError(f"export in a TensorFlow process failed: "
                          f"{lines[-1] if lines else 'exit code ' + str(result.returncode)}")
    return json.loads((Path(args["out_dir"]) / MANIFEST).read_text())


def export_in_this_process(preset, out_dir, formats, num_samples, n_q, int8, opset):
    """``export_codec``'s work, in a process whose Keras backend is TensorFlow (the
    worker, ``python -m keras_dmcodec.export.worker``, runs it for other backends)."""
    # deferred: TensorFlow is heavy and needed only here (under any backend it is imported
    # only by the export process).
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ExportError("export_in_this_process needs the TensorFlow backend")
    resolved = resolve_model(preset)
    model = resolved.model
    n_q = model.quantizer.check_n_q(n_q)
    frames = model.frames_for(num_samples)
    audio_spec = tf.TensorSpec([1, num_samples], tf.float32, name="audio")
    codes_spec = tf.TensorSpec([1, n_q, frames], tf.int32, name="codes")

    def encode(audio):
        return {"codes": _rvq_encode_tf(model, audio, n_q)}

    def decode(codes):
        return {"audio": model.decode_tensor(codes)}

    with atomic_directory(Path(out_dir)) as tmp:
        files = {}
        saved = tmp / "saved_model"
        if "saved_model" in formats or "tflite" in formats:  # TFLite converts the SavedModel
            prepare_for_export(model)
            # A bare tf.Module holding the variables: saving the Keras model itself would also
            # trace its own tf.functions with unknown lengths, which unrolled LSTMs reject.
            module = tf.Module()
            module.codec_variables = [v.value for v in model.variables]
            module.encode = tf.function(encode, input_signature=[audio_spec])
            module.decode = tf.function(decode, input_signature=[codes_spec])
            tf.saved_model.save(module, str(saved),
                                signatures={"encode": module.encode, "decode": module.decode})
        if "saved_model" in formats:
            files["saved_model"] = "saved_model"
        if "tflite" in formats:
            files["tflite"] = "codec.tflite"
            (tmp / "codec.tflite").write_bytes(_to_tflite(saved, int8=False))
            if int8:
                files["tflite_int8"] = "codec_int8.tflite"
                (tmp / "codec_int8.tflite").write_bytes(_to_tflite(saved, int8=True))
        if "onnx" in formats:
            _to_onnx(prepare_for_export(model, unroll=False), tmp, n_q, opset)
            files.update(onnx_encode="encode.onnx", onnx_decode="decode.onnx")
        if saved.exists() and "saved_model" not in formats:
            shutil.rmtree(saved)
        manifest = dict(
            sample_rate=model.sample_rate, hop_length=model.hop_length, n_q=n_q,
            codebook_size=model.codebook_size, num_samples=num_samples, frames=frames,
            decoded_samples=frames * model.hop_length, files=files,
            encode=dict(input="audio float32 [1, num_samples]", output="codes int32 [1, n_q, "
                        "frames]"),
            decode=dict(input="codes int32 [1, n_q, frames]", output="audio float32 [1, "
                        "frames * hop_length]"),
            onnx=dict(encode="audio float32 [1, any length] -> codes int32 [1, n_q, "
                      "ceil(length / hop_length)]", decode="codes int32 [1, n_q, any frames] "
                      "-> audio float32 [1, frames * hop_length]"),
            model=resolved.name, fingerprint=resolved.fingerprint,
            config_hash=resolved.identity.config, codebook_hash=resolved.identity.codebooks,
            version=__version__,
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _to_onnx(model, out_dir, n_q, opset):
    """Writes ``encode.onnx`` / ``decode.onnx`` with a dynamic number of samples / frames.

    ONNX has a native LSTM (tf2onnx rewrites Keras's while loop into it), so ``model``
    must have its LSTMs *not* unrolled: any length runs, and the
    conversion stays small. Converting the unrolled static graph instead took
    5-8 GiB of memory for a 1 s window of the 34 M-parameter configuration and grew
    with the window (over 24 GiB at 50 frames), because tf2onnx materialises every
    unrolled step.
    """
    # deferred: TensorFlow and tf2onnx are heavy, optional, and needed only to export.
    import tensorflow as tf
    import tf2onnx

    audio_spec = tf.TensorSpec([1, None], tf.float32, name="audio")
    codes_spec = tf.TensorSpec([1, n_q, None], tf.int32, name="codes")
    for name, fn, spec in (
        ("encode", lambda audio: {"codes": _rvq_encode_tf(model, audio, n_q)}, audio_spec),
        ("decode", lambda codes: {"audio": model.decode_tensor(codes)}, codes_spec),
    ):
        function = tf.function(fn, input_signature=[spec])
        tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset,
                                      output_path=str(Path(out_dir) / f"{name}.onnx"))


def _rvq_encode_tf(model, audio, n_q):
    """``model.encode_tensor`` with ``tf.argmin`` for the nearest code.

    Keras's TensorFlow ``argmin`` adds a bitwise -0.0 check (``BitwiseAnd``) that TFLite
    has no builtin for; the distances are the quantiser's own (``squared_distances``, same
    expansion), so codes differ only where two distances are exactly equal.
    """
    # deferred: TensorFlow is heavy and needed only to export.
    import tensorflow as tf

    latents = model.encode_latents(audio)
    residual = tf.reshape(tf.cast(latents, tf.float32), (-1, model.dimension))
    codes = []
    for vq in model.quantizer.quantizers[:n_q]:
        codebook = tf.convert_to_tensor(vq.codebook.value)
        index = tf.argmin(squared_distances(residual, codebook), axis=-1, output_type=tf.int32)
        residual = residual - tf.gather(codebook, index)
        codes.append(tf.reshape(index, tf.shape(latents)[:-1]))
    return tf.stack(codes, axis=1)


def _to_tflite(saved_model_dir, int8=False):
    # deferred: TensorFlow is heavy and needed only to export.
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=["encode", "decode"])
    # Builtin ops only: conversion fails rather than silently needing the Flex delegate.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
    return converter.convert()


class TFLiteCodec:
    """Runs an exported ``codec.tflite`` with ai_edge_litert (no TensorFlow needed).

    Example (needs an export): ``TFLiteCodec("out/codec.tflite").encode(audio)``.
    """

    def __init__(self, path, num_threads=None):
        # deferred: an optional runtime, needed only to run exported files.
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._encode = self.interpreter.get_signature_runner("encode")
        self._decode = self.interpreter.get_signature_runner("decode")

    def encode(self, audio):
        """float32 ``[1, num_samples]`` -> int32 codes ``[1, n_q, frames]``."""
        return self._encode(audio=np.asarray(audio, np.float32))["codes"]

    def decode(self, codes):
        """int32 codes ``[1, n_q, frames]`` -> float32 audio ``[1, frames * hop]``."""
        return self._decode(codes=np.asarray(codes, np.int32))["audio"]


class OnnxCodec:
    """Runs exported ``encode.onnx`` / ``decode.onnx`` with onnxruntime."""

    def __init__(self, directory, num_threads=None):
        # deferred: an optional runtime, needed only to run exported files.
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        directory = Path(directory)
        self._encode = ort.InferenceSession(str(directory / "encode.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self._decode = ort.InferenceSession(str(directory / "decode.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    def encode(self, audio):
        name = self._encode.get_inputs()[0].name
        return self._encode.run(None, {name: np.asarray(audio, np.float32)})[0]

    def decode(self, codes):
        name = self._decode.get_inputs()[0].name
        return self._decode.run(None, {name: np.asarray(codes, np.int32)})[0]
