"""Runs the stateful streaming steps of an exported causal codec (TFLite or ONNX).

``dmcodec export`` writes, for a causal model, the signatures ``encode_step`` and
``decode_step`` (``keras_dmcodec.export.tf_graphs``): one call takes one step of audio
(``stream.samples`` in ``export.json``: 320 samples = 20 ms by default) or of codes, plus the
state (``state_00``, ``state_01``, ...), and returns the codes or audio plus the next state
(``new_state_00``, ...). A C++, Android or JavaScript runtime drives them the same way:
zero the state, call once per step, feed back the returned state.

``ExportedStreamingEncoder`` / ``ExportedStreamingDecoder`` do that in Python, with the same
``step`` / ``reset`` / ``frames`` interface as ``keras_dmcodec.inference.StreamingEncoder``
/ ``StreamingDecoder``, so code written for the Keras stream runs on an export unchanged.
A chunk may hold several steps; they run one after another.
"""

from pathlib import Path

import numpy as np

from keras_dmcodec.export import ExportError, read_manifest, state_name

STREAM_RUNTIMES = ("tflite", "tflite_int8", "onnx")
STEPS = ("encode_step", "decode_step")


class _TFLiteSteps:
    def __init__(self, path, num_threads=None, steps=STEPS):
        # deferred: an optional runtime, needed only to run exported files.
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.runners = {name: self.interpreter.get_signature_runner(name) for name in steps}

    def run(self, name, inputs):
        return self.runners[name](**inputs)


class _OnnxSteps:
    def __init__(self, directory, files, num_threads=None, steps=STEPS):
        # deferred: an optional runtime, needed only to run exported files.
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.sessions = {
            name: ort.InferenceSession(str(Path(directory) / files[f"onnx_{name}"]), options,
                                       providers=["CPUExecutionProvider"])
            for name in steps}
        self.outputs = {name: [o.name for o in session.get_outputs()]
                        for name, session in self.sessions.items()}

    def run(self, name, inputs):
        values = self.sessions[name].run(None, inputs)
        return dict(zip(self.outputs[name], values, strict=True))


def open_stream_runtime(directory, runtime="tflite", num_threads=None, manifest=None,
                        steps=STEPS):
    """The streaming ``steps`` (default both) of export ``directory`` in ``runtime`` (one
    of ``STREAM_RUNTIMES``); a one-line ``ExportError`` when the export has none."""
    manifest = manifest or read_manifest(directory)
    if runtime not in STREAM_RUNTIMES:
        raise ValueError(f"unknown streaming runtime {runtime!r}: choose from "
                         f"{list(STREAM_RUNTIMES)}")
    if "stream" not in manifest:
        raise ExportError(f"{directory}: no streaming steps (the exported model is not "
                          f"causal)")
    files = manifest["files"]
    key = "onnx_encode_step" if runtime == "onnx" else runtime
    if key not in files:
        raise ExportError(f"{directory}: no {runtime} export (exported: "
                          f"{', '.join(sorted(files))})")
    if runtime == "onnx":
        return _OnnxSteps(directory, files, num_threads=num_threads, steps=steps)
    return _TFLiteSteps(Path(directory) / files[runtime], num_threads=num_threads, steps=steps)


class _ExportedStream:
    """State handling shared by the exported streaming encoder and decoder."""

    kind = None  # "encode_step" or "decode_step"

    def __init__(self, directory, runtime="tflite", num_threads=None):
        self.manifest = read_manifest(directory)
        self.steps = open_stream_runtime(directory, runtime, num_threads, self.manifest,
                                         steps=(self.kind,))
        stream = self.manifest["stream"]
        self.step_frames = int(stream["frames"])
        self.step_samples = int(stream["samples"])
        self.hop_length = int(self.manifest["hop_length"])
        self.sample_rate = int(self.manifest["sample_rate"])
        self.n_q = int(self.manifest["n_q"])
        self.codebook_size = int(self.manifest["codebook_size"])
        self._shapes = [tuple(shape) for shape in
                        stream["encoder_state" if self.kind == "encode_step"
                               else "decoder_state"]]
        self.reset()

    def reset(self):
        """Starts the stream afresh (zero state)."""
        self.state = [np.zeros(shape, np.float32) for shape in self._shapes]
        self.frames = 0

    def _run(self, name, value):
        inputs = {name: value}
        inputs.update({state_name(i): s for i, s in enumerate(self.state)})
        outputs = self.steps.run(self.kind, inputs)
        self.state = [np.asarray(outputs[state_name(i, new=True)])
                      for i in range(len(self.state))]
        return outputs

    def _run_steps(self, name, value, size, output):
        """Runs ``value`` through the exported step ``size`` at a time along its last axis
        (carrying the state); returns the outputs ``output`` joined along their last axis."""
        outputs = [self._run(name, value[..., start:start + size])[output]
                   for start in range(0, value.shape[-1], size)]
        self.frames += value.shape[-1] // size * self.step_frames
        return np.concatenate(outputs, axis=-1)

    @staticmethod
    def _one_stream(array, rank, what):
        array = np.asarray(array)
        if array.ndim == rank - 1:
            array = array[None]
        if array.ndim != rank or array.shape[0] != 1:
            raise ValueError(f"{what} must be [1, ...]: an exported stream runs one stream, "
                             f"got shape {tuple(array.shape)}")
        return array


class ExportedStreamingEncoder(_ExportedStream):
    """Encodes audio as it arrives with an exported causal codec (TFLite or ONNX).

    Args:
        directory: an export folder of a causal model (``dmcodec export``).
        runtime: ``"tflite"`` (default), ``"tflite_int8"`` or ``"onnx"``.
        num_threads: runtime threads.

    Example (needs an export of a causal model):
        ``encoder = ExportedStreamingEncoder("exported/")``;
        ``codes = encoder.step(chunk)`` for each chunk of ``encoder.step_samples`` samples
        (or a multiple), ``[1, n_q, frames]``; ``encoder.reset()`` for a new stream.
    """

    kind = "encode_step"

    def step(self, audio):
        """Codes ``[1, n_q, k]`` (int32) of the next chunk: float audio ``[1, samples]``
        (or ``[samples]``), ``samples`` a positive multiple of the export's step."""
        audio = self._one_stream(audio, 2, "audio")
        if audio.shape[1] == 0 or audio.shape[1] % self.step_samples:
            raise ValueError(f"a chunk must be a positive multiple of the exported step "
                             f"({self.step_samples} samples = "
                             f"{1000 * self.step_samples / self.sample_rate:g} ms), got "
                             f"{audio.shape[1]} samples")
        if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
            raise ValueError("audio must be finite floats (NaN, inf or integers given)")
        return self._run_steps("audio", audio.astype(np.float32), self.step_samples,
                               "codes").astype(np.int32)


class ExportedStreamingDecoder(_ExportedStream):
    """Decodes codes as they arrive with an exported causal codec (TFLite or ONNX).

    Args:
        directory: an export folder of a causal model (``dmcodec export``).
        runtime: ``"tflite"`` (default), ``"tflite_int8"`` or ``"onnx"``.
        num_threads: runtime threads.

    Example (needs an export of a causal model):
        ``decoder = ExportedStreamingDecoder("exported/")``;
        ``audio = decoder.step(codes)`` for codes ``[1, n_q, k]``, ``k`` a multiple of the
        export's step frames; ``decoder.reset()`` for a new stream.
    """

    kind = "decode_step"

    def step(self, codes):
        """Audio ``[1, k * hop]`` (float32) of the next ``k`` frames of codes
        ``[1, n_q, k]`` (or ``[n_q, k]``), ``k`` a positive multiple of the export's step."""
        codes = self._one_stream(codes, 3, "codes")
        if codes.shape[1] != self.n_q:
            raise ValueError(f"codes have {codes.shape[1]} codebooks; the export decodes "
                             f"{self.n_q}")
        if codes.shape[-1] == 0 or codes.shape[-1] % self.step_frames:
            raise ValueError(f"a chunk must be a positive multiple of the exported step "
                             f"({self.step_frames} frame(s)), got {codes.shape[-1]} frames")
        if (not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0
                or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must be integers in [0, {self.codebook_size})")
        return self._run_steps("codes", codes.astype(np.int32), self.step_frames,
                               "audio").astype(np.float32)
