"""Export a DMCodec to TensorFlow SavedModel, TFLite and ONNX, with separate encode / decode.

Every exported graph is **dynamic in time**: ``encode`` takes float32 audio
``[1, samples]`` of any length and returns int32 ``codes`` ``[1, n_q, ceil(samples / hop)]``;
``decode`` takes int32 ``codes`` ``[1, n_q, frames]`` and returns float32 ``audio``
``[1, frames * hop]``. A whole clip through an exported graph is the Keras model's own
computation on that clip.

The LSTMs are what decide how: for SavedModel and TFLite they run the fast kernel of
``keras_dmcodec.ops.lstm`` (one matmul for the input projection, a ``tf.scan`` over
``h @ W_hh``), which the TFLite converter turns into a builtin ``WHILE`` loop, so no
unrolling, no static length and no Flex ops. For ONNX they run Keras's own loop, which
tf2onnx rewrites into ONNX's native ``LSTM`` operator.

``ExportedCodec`` runs any exported format over audio of any length the way
``keras_dmcodec.inference.encode_long`` runs the Keras model: chunks with overlapping
context on both sides (default 30 s chunks, 1 s of context), so memory is bounded by one
window and the codes equal a whole-file Keras encoding up to float near-ties.

Export always runs in a TensorFlow-backend process: under another backend,
``export_codec`` saves nothing new but rebuilds the preset in a
``KERAS_BACKEND=tensorflow`` subprocess (weights load identically on every
backend), so weights trained on JAX or torch export the same way.

Outputs in ``out_dir``: ``saved_model/`` (signatures ``encode`` and ``decode``),
``codec.tflite`` (signature runners ``encode`` / ``decode``; ``codec_int8.tflite`` with
dynamic-range int8 weights when asked), ``encode.onnx`` and ``decode.onnx``, and
``export.json`` describing the shapes, the architecture numbers the windowing needs, the
model's preset name and its fingerprint (``tokens.model_fingerprint``, as token files
carry it).

A **causal** model's export also holds the stateful streaming steps (``export.tf_graphs``):
signatures ``encode_step`` / ``decode_step`` in the SavedModel and in ``codec.tflite``, and
``encode_step.onnx`` / ``decode_step.onnx``, each one step of ``stream_frames`` frames with
the state as named inputs and outputs; ``export.json``'s ``stream`` section lists the state
shapes. ``keras_dmcodec.export.streaming`` runs them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from keras_dmcodec import __version__, inference
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.utils.files import atomic_directory

FORMATS = ("saved_model", "tflite", "onnx")
RUNTIMES = ("tflite", "tflite_int8", "onnx", "saved_model")
MANIFEST = "export.json"
# Architecture numbers ``inference.conv_context_frames`` needs; the manifest carries them
# so that ``ExportedCodec`` windows exactly as ``inference.encode_long`` does.
ARCHITECTURE_KEYS = ("ratios", "n_residual_layers", "residual_kernel_size", "dilation_base")


def state_name(index, new=False):
    """The name of flattened streaming-state tensor ``index`` in the exported steps
    (``new_`` for a step's output; distinct input and output names, which ONNX needs)."""
    return f"{'new_' if new else ''}state_{index:02d}"


class ExportError(ValueError):
    """An export that cannot be done, with a one-line reason."""


def _lstm_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        elif isinstance(layer, keras.layers.LSTM):
            yield layer


def prepare_for_export(model, fast_lstm=True):
    """Chooses the LSTM loop the exported graphs contain.

    ``fast_lstm=True`` (SavedModel, TFLite): the fast kernel of ``ops.lstm`` (a
    ``tf.scan``; ``"always"``, so also when TensorFlow sees a GPU, where Keras would
    otherwise pick its cuDNN op, which no converter handles). The TFLite converter lowers it
    to a builtin ``WHILE`` loop, so graphs stay dynamic in time. ``fast_lstm=False`` (ONNX):
    Keras's own loop, which tf2onnx rewrites into ONNX's ``LSTM`` operator.
    """
    for lstm in _lstm_layers(model):
        lstm.unroll = False
        lstm.use_fast_path = "always" if fast_lstm else False
    return model


def export_codec(preset, out_dir, formats=FORMATS, n_q=None, int8=False, overwrite=False,
                 opset=17, stream_frames=1):
    """Exports a preset to ``out_dir``; returns the manifest dict.

    Args:
        preset: a model spec for ``keras_dmcodec.models.loader.resolve_model``: a preset
            folder, a name with shipped weights or a keras-hub handle.
        out_dir: output folder (created; must not exist unless ``overwrite``).
        formats: any of ``"saved_model"``, ``"tflite"``, ``"onnx"``.
        n_q: codebooks in the exported graphs (default all).
        int8: also write ``codec_int8.tflite`` (dynamic-range int8 weights).
        overwrite: replace an existing ``out_dir``.
        opset: ONNX opset.
        stream_frames: for a causal model, frames per call of the streaming steps
            ``encode_step`` / ``decode_step`` (1 = 20 ms, 4 = 80 ms), which every format
            then holds beside ``encode`` / ``decode`` (``keras_dmcodec.export.streaming``).
    """
    formats = tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {unknown}: choose from {list(FORMATS)}")
    if int(stream_frames) < 1:
        raise ExportError(f"stream frames must be at least 1, got {stream_frames}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (use --force to replace it)")
    args = dict(preset=str(preset), out_dir=str(out_dir), formats=list(formats), n_q=n_q,
                int8=bool(int8), opset=int(opset), stream_frames=int(stream_frames))
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


def export_in_this_process(preset, out_dir, formats, n_q, int8, opset, stream_frames=1):
    """``export_codec``'s work, in a process whose Keras backend is TensorFlow (the
    worker, ``python -m keras_dmcodec.export.worker``, runs it for other backends)."""
    # deferred: TensorFlow is heavy and needed only here (under any backend it is imported
    # only by the export process).
    import tensorflow as tf

    # deferred: tf_graphs imports TensorFlow at its top.
    from keras_dmcodec.export.tf_graphs import codec_signatures, stream_signatures

    if keras.backend.backend() != "tensorflow":
        raise ExportError("export_in_this_process needs the TensorFlow backend")
    resolved = resolve_model(preset)
    model = resolved.model
    n_q = model.quantizer.check_n_q(n_q)
    streams = bool(model.causal)

    def graphs(fast_lstm):
        prepare_for_export(model, fast_lstm=fast_lstm)
        signatures = dict(zip(("encode", "decode"), codec_signatures(model, n_q),
                                  strict=True))
        stream = None
        if streams:
            encode_step, decode_step, stream = stream_signatures(model, n_q, stream_frames)
            signatures.update(encode_step=encode_step, decode_step=decode_step)
        return signatures, stream

    with atomic_directory(Path(out_dir)) as tmp:
        files = {}
        saved = tmp / "saved_model"
        stream = None
        if "saved_model" in formats or "tflite" in formats:  # TFLite converts the SavedModel
            signatures, stream = graphs(fast_lstm=True)
            # A bare tf.Module holding the variables: saving the Keras model itself would also
            # trace its own tf.functions, which the export does not need.
            module = tf.Module()
            module.codec_variables = [v.value for v in model.variables]
            module.functions = list(signatures.values())
            tf.saved_model.save(module, str(saved), signatures=signatures)
        if "saved_model" in formats:
            files["saved_model"] = "saved_model"
        if "tflite" in formats:
            files["tflite"] = "codec.tflite"
            keys = list(signatures)
            (tmp / "codec.tflite").write_bytes(_to_tflite(saved, keys, int8=False))
            if int8:
                files["tflite_int8"] = "codec_int8.tflite"
                (tmp / "codec_int8.tflite").write_bytes(_to_tflite(saved, keys, int8=True))
        if "onnx" in formats:
            signatures, stream = graphs(fast_lstm=False)
            for name, function in signatures.items():
                _to_onnx(function, tmp / f"{name}.onnx", opset)
            files.update({f"onnx_{name}": f"{name}.onnx" for name in signatures})
        if saved.exists() and "saved_model" not in formats:
            shutil.rmtree(saved)
        manifest = dict(
            sample_rate=model.sample_rate, hop_length=model.hop_length,
            frame_rate=model.frame_rate, n_q=n_q, codebook_size=model.codebook_size,
            files=files,
            encode=dict(input="audio float32 [1, samples]",
                        output="codes int32 [1, n_q, ceil(samples / hop_length)]"),
            decode=dict(input="codes int32 [1, n_q, frames]",
                        output="audio float32 [1, frames * hop_length]"),
            architecture={key: getattr(model, key) for key in ARCHITECTURE_KEYS},
            conv_context_frames=inference.conv_context_frames(model),
            model=resolved.name, fingerprint=resolved.fingerprint,
            config_hash=resolved.identity.config, codebook_hash=resolved.identity.codebooks,
            version=__version__,
        )
        if stream is not None:
            manifest["stream"] = stream
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _to_onnx(function, path, opset):
    """Writes one ``tf.function`` as an ONNX file (dynamic axes stay dynamic).

    The model must run Keras's own LSTM loop (``prepare_for_export(model,
    fast_lstm=False)``): tf2onnx rewrites it into ONNX's native LSTM, so any length runs
    and the conversion stays small. (Converting an unrolled static graph instead took
    5-8 GiB of memory for a 1 s window of the 34 M-parameter configuration, because
    tf2onnx materialises every unrolled step.)
    """
    # deferred: tf2onnx is heavy, optional, and needed only to export.
    import tf2onnx

    tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                  opset=opset, output_path=str(path))


def _to_tflite(saved_model_dir, signature_keys, int8=False):
    # deferred: TensorFlow is heavy and needed only to export.
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=list(signature_keys))
    # Builtin ops only: conversion fails rather than silently needing the Flex delegate.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
    return converter.convert()


def _check_audio(audio):
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[0] != 1 or audio.shape[1] < 1:
        raise ValueError(f"audio must have shape [1, samples] with samples >= 1, got "
                         f"{audio.shape}")
    return audio


def _check_codes(codes):
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape[0] != 1 or codes.shape[2] < 1:
        raise ValueError(f"codes must have shape [1, n_q, frames] with frames >= 1, got "
                         f"{codes.shape}")
    return codes.astype(np.int32)


class TFLiteCodec:
    """Runs an exported ``codec.tflite`` with ai_edge_litert (no TensorFlow needed).

    One call is one window: the graph takes any length, and ``ExportedCodec`` cuts long
    audio into windows with context.

    Args:
        path: the ``.tflite`` file (``codec.tflite`` or ``codec_int8.tflite``).
        num_threads: interpreter threads (default: the runtime's choice).

    Example (needs an export): ``TFLiteCodec("out/codec.tflite").encode(audio[None])``.
    """

    def __init__(self, path, num_threads=None):
        # deferred: an optional runtime, needed only to run exported files.
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._encode = self.interpreter.get_signature_runner("encode")
        self._decode = self.interpreter.get_signature_runner("decode")

    def encode(self, audio):
        """float32 ``[1, samples]`` -> int32 codes ``[1, n_q, ceil(samples / hop)]``."""
        return self._encode(audio=_check_audio(audio))["codes"]

    def decode(self, codes):
        """int32 codes ``[1, n_q, frames]`` -> float32 audio ``[1, frames * hop]``."""
        return self._decode(codes=_check_codes(codes))["audio"]


class OnnxCodec:
    """Runs exported ``encode.onnx`` / ``decode.onnx`` with onnxruntime (CPU).

    Args:
        directory: the export folder.
        num_threads: intra-op threads (default: the runtime's choice).

    Example (needs an export): ``OnnxCodec("out").encode(audio[None])``.
    """

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
        """float32 ``[1, samples]`` -> int32 codes ``[1, n_q, ceil(samples / hop)]``."""
        name = self._encode.get_inputs()[0].name
        return self._encode.run(None, {name: _check_audio(audio)})[0]

    def decode(self, codes):
        """int32 codes ``[1, n_q, frames]`` -> float32 audio ``[1, frames * hop]``."""
        name = self._decode.get_inputs()[0].name
        return self._decode.run(None, {name: _check_codes(codes)})[0]


class SavedModelCodec:
    """Runs the exported ``saved_model/`` signatures with TensorFlow.

    Args:
        directory: the export folder (or its ``saved_model/`` folder).

    Example (needs an export): ``SavedModelCodec("out").encode(audio[None])``.
    """

    def __init__(self, directory):
        # deferred: TensorFlow is heavy and needed only for this runtime.
        import tensorflow as tf

        directory = Path(directory)
        if (directory / "saved_model").is_dir():
            directory = directory / "saved_model"
        loaded = tf.saved_model.load(str(directory))
        self._tf, self._loaded = tf, loaded
        self._encode, self._decode = loaded.signatures["encode"], loaded.signatures["decode"]

    def encode(self, audio):
        """float32 ``[1, samples]`` -> int32 codes ``[1, n_q, ceil(samples / hop)]``."""
        return self._encode(audio=self._tf.constant(_check_audio(audio)))["codes"].numpy()

    def decode(self, codes):
        """int32 codes ``[1, n_q, frames]`` -> float32 audio ``[1, frames * hop]``."""
        return self._decode(codes=self._tf.constant(_check_codes(codes)))["audio"].numpy()


def open_runtime(directory, runtime="tflite", num_threads=None, manifest=None):
    """One exported format of ``directory`` as a ``TFLiteCodec`` / ``OnnxCodec`` /
    ``SavedModelCodec`` (``runtime`` one of ``RUNTIMES``); ``manifest``: its ``export.json``
    when the caller has read it already."""
    directory = Path(directory)
    files = (manifest or read_manifest(directory))["files"]
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {list(RUNTIMES)}")
    key = "onnx_encode" if runtime == "onnx" else runtime
    if key not in files:
        raise ExportError(f"{directory}: no {runtime} export (exported: "
                          f"{', '.join(sorted(files))})")
    if runtime == "onnx":
        return OnnxCodec(directory, num_threads=num_threads)
    if runtime == "saved_model":
        return SavedModelCodec(directory)
    return TFLiteCodec(directory / files[runtime], num_threads=num_threads)


def read_manifest(directory):
    """``export.json`` of an export folder, with a one-line error when it is missing or old."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{directory}: no {MANIFEST}; not an export folder") from None
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: corrupt manifest ({err.msg})") from None
    if "architecture" not in manifest:
        raise ExportError(f"{path}: exported by an older version with static windows; "
                          f"export again")
    return manifest


class ExportedCodec:
    """Encodes / decodes audio of any length with an exported codec, in windows with context.

    The windowing is ``keras_dmcodec.inference``'s own (``encode_long`` / ``decode_long``):
    chunks of ``chunk_frames`` frames, each run with ``context_frames`` extra frames on
    both sides of which only the chunk's frames are kept. Memory is bounded by one window
    whatever the length, and the codes equal a whole-file encoding by the Keras model up to
    float near-ties (the same as ``encode_long``; ``tests/test_export.py`` checks it).

    Args:
        directory: an export folder (``dmcodec export``).
        runtime: one of ``RUNTIMES``: ``"tflite"`` (default), ``"tflite_int8"``,
            ``"onnx"``, ``"saved_model"``.
        num_threads: runtime threads (TFLite, ONNX).
        chunk_frames: frames kept per window (default 30 s).
        context_frames: context frames on each side of a window (default 1 s).

    Example:
        ``codec = ExportedCodec("exported/")``;
        ``codes = codec.encode(audio)`` (``[n_q, frames]``);
        ``audio_hat = codec.decode(codes, num_samples=len(audio))``.
    """

    def __init__(self, directory, runtime="tflite", num_threads=None, chunk_frames=None,
                 context_frames=None):
        self.manifest = read_manifest(directory)
        self.runtime = open_runtime(directory, runtime, num_threads=num_threads,
                                    manifest=self.manifest)
        self.chunk_frames, self.context_frames = chunk_frames, context_frames
        # What inference.encode_stream / decode_stream read of a model.
        self.sample_rate = self.manifest["sample_rate"]
        self.hop_length = self.manifest["hop_length"]
        self.frame_rate = self.manifest["frame_rate"]
        self.n_q = self.manifest["n_q"]
        for key in ARCHITECTURE_KEYS:
            setattr(self, key, self.manifest["architecture"][key])

    def encode(self, audio, n_q=None):
        """float32 audio ``[samples]`` (or ``[1, samples]`` for one window as the model's
        ``encode``) -> int32 codes ``[n_q, frames]`` (``[1, n_q, frames]``)."""
        audio = np.asarray(audio, np.float32)
        if n_q is not None and not 1 <= int(n_q) <= self.n_q:
            raise ValueError(f"n_q must be between 1 and {self.n_q} (exported), got {n_q}")
        if audio.ndim == 2:
            return self.runtime.encode(audio)[:, :n_q]
        return inference.encode_long(self, audio, n_q=n_q, chunk_frames=self.chunk_frames,
                                     context_frames=self.context_frames)

    def decode(self, codes, num_samples=None):
        """int32 codes ``[n_q, frames]`` -> float32 audio ``[num_samples]`` (default
        ``frames * hop``); ``[1, n_q, frames]`` -> ``[1, frames * hop]`` for one window."""
        codes = np.asarray(codes)
        # Checked for one window too: an exported graph gathers out-of-range codes unchecked.
        if codes.ndim in (2, 3) and codes.shape[-2] != self.n_q:
            raise ValueError(f"codes have {codes.shape[-2]} codebooks; the export decodes "
                             f"{self.n_q}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.manifest["codebook_size"]):
            raise ValueError(f"codes out of range [0, {self.manifest['codebook_size']})")
        if codes.ndim == 3:
            return self.runtime.decode(codes)
        return inference.decode_long(self, codes, num_samples=num_samples,
                                     chunk_frames=self.chunk_frames,
                                     context_frames=self.context_frames)
