"""Exported codec (TFLite float / int8, ONNX, SavedModel) against the Keras model on long speech.

Exports a preset, builds one long clip by joining held-out utterances (default 30 s), and runs
it through Keras-TensorFlow (one whole-file ``DMCodec.encode``) and through every exported
runtime with ``export.ExportedCodec`` (windows with context, as ``inference.encode_long``;
default 10 s chunks with 1 s of context, so a 30 s clip takes three windows). Prints one table:
encode and decode seconds, code agreement with the whole-file Keras codes (all codebooks,
and the first alone), STOI and mel
distance of the reconstruction against the original.

    python benchmarks/bench_export_quality.py [--model dmcodec_small] \
        [--data tests/data/heldout] [--seconds 30] [--chunk-seconds 10] [--threads 2]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def long_clip(data, seconds, sample_rate):
    """Held-out utterances joined (repeated if needed) to ``seconds`` of speech."""
    from keras_dmcodec.audio import load_audio
    from keras_dmcodec.corpus import list_corpus

    items = list_corpus(data).utterances
    if not items:
        raise SystemExit(f"{data}: no utterances")
    parts, total, i = [], 0, 0
    while total < seconds * sample_rate:
        audio, _ = load_audio(items[i % len(items)].path, sample_rate=sample_rate)
        parts.append(audio)
        total += len(audio)
        i += 1
    return np.concatenate(parts)[: int(seconds * sample_rate)]


def best_of(fn, repeats):
    fn()  # warm-up (Keras traces; interpreters allocate)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dmcodec_small")
    parser.add_argument("--data", default=str(ROOT / "tests" / "data" / "heldout"))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--context-seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    import keras
    from pystoi import stoi

    from keras_dmcodec.evaluation.metrics import mel_distance
    from keras_dmcodec.export import ExportedCodec, export_codec
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(args.model).model
    sr = model.sample_rate
    audio = long_clip(args.data, args.seconds, sr)
    out = Path(tempfile.mkdtemp(prefix="export_quality_")) / "exported"
    start = time.perf_counter()
    export_codec(args.model, out, int8=True)
    export_s = time.perf_counter() - start
    chunk = int(round(args.chunk_seconds * model.frame_rate))
    context = int(round(args.context_seconds * model.frame_rate))

    encode_s, keras_codes = best_of(lambda: np.asarray(model.encode(audio[None]))[0],
                                     args.repeats)
    decode_s, keras_audio = best_of(lambda: np.asarray(model.decode(keras_codes[None]))[0],
                                     args.repeats)
    rows = {f"Keras-{keras.backend.backend()}": (encode_s, decode_s, keras_codes,
                                                  keras_audio[: len(audio)])}
    for name, runtime in (("TFLite", "tflite"), ("TFLite int8", "tflite_int8"),
                          ("ONNX", "onnx"), ("SavedModel", "saved_model")):
        codec = ExportedCodec(out, runtime, num_threads=args.threads, chunk_frames=chunk,
                              context_frames=context)
        encode_s, codes = best_of(lambda c=codec: c.encode(audio), args.repeats)
        decode_s, decoded = best_of(lambda c=codec, k=codes: c.decode(k, len(audio)),
                                     args.repeats)
        rows[name] = (encode_s, decode_s, codes, decoded)

    print(f"\n{args.model}: {len(audio) / sr:.1f} s of held-out speech ({args.data}); Keras "
          f"encodes the whole clip, exported runtimes run {args.chunk_seconds:g} s windows with "
          f"{args.context_seconds:g} s context (export.ExportedCodec); {args.threads} threads; "
          f"export took {export_s:.0f} s")
    print(f"{'runtime':<18} {'encode s':>9} {'enc xRT':>8} {'decode s':>9} {'dec xRT':>8} "
          f"{'codes = Keras':>14} {'1st book':>9} {'STOI':>6} {'mel dist.':>10}")
    seconds = len(audio) / sr
    for name, (encode_s, decode_s, codes, decoded) in rows.items():
        agree = np.mean(codes == keras_codes)
        print(f"{name:<18} {encode_s:9.3f} {seconds / encode_s:8.1f} {decode_s:9.3f} "
              f"{seconds / decode_s:8.1f} {100 * agree:13.2f}% "
              f"{100 * np.mean(codes[0] == keras_codes[0]):8.2f}% "
              f"{stoi(audio, decoded, sr):6.3f} {mel_distance(audio, decoded, sr):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
