"""Streaming latency: compute time per 20 / 40 / 80 ms step of a causal codec over a long stream.

Model: ``dmcodec_small_causal`` (trained weights when ``saved_models/dmcodec_small_causal``
ships, else the same architecture with random weights; the cost does not depend on the weight
values). Input: the bundled speech sample repeated to ``--seconds`` (default 60 s).

Rows, all through ``inference.stream_through`` (as fast as possible, after one untimed
warm-up step that compiles):

- Keras on TensorFlow, JAX and torch (one subprocess per backend): ``StreamingEncoder`` /
  ``StreamingDecoder``, compiled with ``tf.function`` / ``jax.jit`` / torch under no_grad;
- the exported stateful steps (``dmcodec export --stream-frames K``, one export per chunk
  size, so each chunk is one call): TFLite (ai_edge_litert, float32) and ONNX (onnxruntime);
- the reference, ``speechtokenizer`` (PyTorch) at the same size: it has no streaming mode
  (bidirectional encoder LSTM, centred convolutions), so the row emulates one the only way a
  user can, re-encoding and re-decoding the last 1 s window every step (``--reference-steps``
  steps); its algorithmic latency is not bounded by the chunk, as it reads the future.

Per step: median and p99 of encode, decode and their sum, the real-time factor (audio seconds
per compute second) and the chunks that took longer than the chunk (``late``).

    python benchmarks/bench_streaming.py [--seconds 60] [--chunk-ms 20 40 80] [--threads 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESET = "dmcodec_small_causal"


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _speech(seconds):
    from keras_dmcodec.audio import bundled_sample, load_audio

    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    repeats = int(np.ceil(seconds * 16000 / len(speech)))
    return np.tile(speech, repeats)[: int(seconds * 16000)]


def _trained():
    from keras_dmcodec.presets import preset_weights_dir

    return preset_weights_dir(PRESET) is not None


def _stats(run):
    out = run.summary()
    out["warmup_s"] = run.warmup_seconds
    return out


def worker_keras(workdir, seconds, chunks):
    from keras_dmcodec import inference
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(PRESET, random_weights=not _trained()).model
    if not (workdir / "preset").exists() and _keras_backend() == "tensorflow":
        model.save_to_preset(workdir / "preset")
    audio = _speech(seconds)
    rows = {}
    for chunk_ms in chunks:
        run = inference.stream_through(inference.StreamingEncoder(model),
                                       inference.StreamingDecoder(model), audio,
                                       chunk_samples=16 * chunk_ms)
        rows[str(chunk_ms)] = _stats(run)
        _log(f"  {_keras_backend()} {chunk_ms} ms: total median "
             f"{rows[str(chunk_ms)]['total_median_ms']:.2f} ms")
    return rows


def _keras_backend():
    import keras

    return keras.backend.backend()


def worker_exported(workdir, seconds, chunks, threads):
    from keras_dmcodec import inference
    from keras_dmcodec.export import export_codec
    from keras_dmcodec.export.streaming import ExportedStreamingDecoder, ExportedStreamingEncoder

    audio = _speech(seconds)
    rows = {"TFLite": {}, "TFLite 1 thread": {}, "ONNX": {}}
    for chunk_ms in chunks:
        # One export per chunk size: a step of chunk_ms per call (one call per chunk).
        out = workdir / f"exported_{chunk_ms}ms"
        if not out.exists():
            start = time.perf_counter()
            export_codec(workdir / "preset", out, formats=("tflite", "onnx"),
                         stream_frames=chunk_ms // 20)
            _log(f"  export with {chunk_ms} ms steps: {time.perf_counter() - start:.0f} s")
        for name, runtime, n in (("TFLite", "tflite", threads), ("TFLite 1 thread", "tflite", 1),
                                 ("ONNX", "onnx", threads)):
            run = inference.stream_through(
                ExportedStreamingEncoder(out, runtime, num_threads=n),
                ExportedStreamingDecoder(out, runtime, num_threads=n), audio,
                chunk_samples=16 * chunk_ms)
            rows[name][str(chunk_ms)] = _stats(run)
            _log(f"  {name} {chunk_ms} ms: total median "
                 f"{rows[name][str(chunk_ms)]['total_median_ms']:.2f} ms")
    return rows


class _WindowedReference:
    """The reference emulating a stream: every step re-encodes the last ``window`` samples
    and decodes them, keeping the newest chunk's codes and audio."""

    def __init__(self, model, window, torch):
        self.model, self.window, self.torch = model, window, torch
        self.sample_rate = 16000
        self.reset()

    def reset(self):
        self.history = np.zeros(self.window, np.float32)

    def step(self, chunk):
        chunk = np.asarray(chunk, np.float32)[0]
        self.history = np.concatenate([self.history, chunk])[-self.window:]
        with self.torch.inference_mode():
            codes = self.model.encode(self.torch.from_numpy(self.history)[None, None])
        frames = len(chunk) // 320
        self.last_codes = codes
        return codes.numpy()[:, :, -frames:].transpose(1, 0, 2)


class _WindowedReferenceDecoder:
    def __init__(self, encoder):
        self.encoder = encoder

    def reset(self):
        pass

    def step(self, codes):
        with self.encoder.torch.inference_mode():
            audio = self.encoder.model.decode(self.encoder.last_codes)
        samples = codes.shape[-1] * 320
        return audio.numpy()[:, 0, -samples:]


def worker_reference(seconds, chunks, steps, threads):
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_inference import SMALL
    from bench_speechtokenizer import speech_like

    from keras_dmcodec import inference
    from keras_dmcodec.convert.reference import build_random_reference

    torch.set_num_threads(threads)
    ref = build_random_reference(dict(SMALL), seed=0, probe_audio=speech_like(3, seed=123)[None])
    ref.eval()
    audio = _speech(seconds)
    rows = {}
    for chunk_ms in chunks:
        encoder = _WindowedReference(ref, 16000, torch)
        run = inference.stream_through(encoder, _WindowedReferenceDecoder(encoder),
                                       audio[: steps * 16 * chunk_ms],
                                       chunk_samples=16 * chunk_ms)
        rows[str(chunk_ms)] = _stats(run)
        _log(f"  speechtokenizer {chunk_ms} ms: total median "
             f"{rows[str(chunk_ms)]['total_median_ms']:.2f} ms")
    return rows


def _subprocess(args, backend="tensorflow"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, __file__, *map(str, args)], env=env,
                            capture_output=True, text=True)
    for line in result.stderr.splitlines():
        if line.startswith("  "):
            _log(line)
    if result.returncode != 0:
        raise RuntimeError(f"{backend} worker failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_table(rows, chunks):
    lines = ["| runtime | chunk ms | encode median / p99 ms | decode median / p99 ms | "
             "total median / p99 ms | x real time | late chunks | warm-up s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, by_chunk in rows.items():
        for chunk_ms in chunks:
            r = by_chunk[str(chunk_ms)]
            lines.append(
                f"| {name} | {chunk_ms} | {r['encode_median_ms']:.2f} / {r['encode_p99_ms']:.2f}"
                f" | {r['decode_median_ms']:.2f} / {r['decode_p99_ms']:.2f} | "
                f"{r['total_median_ms']:.2f} / {r['total_p99_ms']:.2f} | "
                f"{r['real_time_factor']:.1f} | {r['late_chunks']} of {r['chunks']} | "
                f"{r['warmup_s']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-ms", type=int, nargs="+", default=[20, 40, 80])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reference-steps", type=int, default=150,
                        help="steps of the windowed reference emulation (it is slow)")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("--worker", choices=["keras", "exported", "reference"])
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "keras":
            result = worker_keras(Path(args.workdir), args.seconds, args.chunk_ms)
        elif args.worker == "exported":
            result = worker_exported(Path(args.workdir), args.seconds, args.chunk_ms,
                                     args.threads)
        else:
            result = worker_reference(args.seconds, args.chunk_ms, args.reference_steps,
                                      args.threads)
        print(json.dumps(result))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench_streaming_"))
    common = ["--workdir", workdir, "--seconds", args.seconds, "--threads", args.threads,
              "--reference-steps", args.reference_steps, "--chunk-ms", *args.chunk_ms]
    rows = {}
    backends = ["tensorflow"] + [b for b in args.backends if b != "tensorflow"]
    for backend in backends:  # TensorFlow first: it saves the preset the export reads
        _log(f"Keras {backend} ...")
        rows[f"Keras {backend}"] = _subprocess(["--worker", "keras", *common], backend)
    _log("exported TFLite / ONNX ...")
    for name, by_chunk in _subprocess(["--worker", "exported", *common]).items():
        rows[f"{name} (exported steps)"] = by_chunk
    _log("speechtokenizer, windowed emulation ...")
    rows["speechtokenizer, 1 s window re-run per step"] = _subprocess(
        ["--worker", "reference", *common])
    weights = "trained" if _trained() else "random"
    print(f"\nStreaming compute per step, {PRESET} ({weights} weights), {args.seconds:g} s of "
          f"speech, {args.threads} threads, as fast as possible after one warm-up step; "
          f"reference: {args.reference_steps} steps")
    print(format_table(rows, args.chunk_ms))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
