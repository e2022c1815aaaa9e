"""Quality of the exported codec (TFLite float / int8, ONNX) against the Keras model, on speech.

Exports a preset (1 s TFLite windows, dynamic ONNX), runs held-out utterances through each
runtime and prints one table: code agreement with Keras, STOI and mel distance of the
reconstruction against the original, and the int8 file's loss relative to float TFLite (same
windows, so the difference is the quantisation's alone).

    python benchmarks/bench_export_quality.py [--model dmcodec_small] \
        [--data data/tts_corpus/test] [--max-utterances 20]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _windows(audio, size):
    padded = np.pad(audio, (0, -len(audio) % size))
    return padded.reshape(-1, 1, size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dmcodec_small")
    parser.add_argument("--data", default=str(ROOT / "tests" / "data" / "heldout"))
    parser.add_argument("--max-utterances", type=int, default=20)
    parser.add_argument("--window", type=int, default=16000, help="TFLite window in samples")
    args = parser.parse_args(argv)

    from pystoi import stoi

    from keras_dmcodec.audio import load_audio
    from keras_dmcodec.corpus import list_corpus
    from keras_dmcodec.evaluation.metrics import mel_distance
    from keras_dmcodec.export import OnnxCodec, TFLiteCodec, export_codec
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(args.model).model
    out = Path(tempfile.mkdtemp(prefix="export_quality_")) / "exported"
    export_codec(args.model, out, formats=("tflite", "onnx"), num_samples=args.window, int8=True)
    runtimes = {"TFLite": TFLiteCodec(out / "codec.tflite"),
                "TFLite int8": TFLiteCodec(out / "codec_int8.tflite"),
                "ONNX": OnnxCodec(out)}
    items = list_corpus(args.data).utterances[: args.max_utterances]
    rows = {name: {"agree": [], "stoi": [], "mel": []} for name in ("Keras", *runtimes)}
    for item in items:
        audio, _ = load_audio(item.path, sample_rate=model.sample_rate)
        n = len(audio)
        keras_codes = np.asarray(model.encode(audio[None]))
        results = {"Keras": (keras_codes, np.asarray(model.decode(keras_codes))[0, :n])}
        onnx = runtimes["ONNX"]
        codes = onnx.encode(audio[None])
        results["ONNX"] = (codes, onnx.decode(codes)[0, :n])
        for name in ("TFLite", "TFLite int8"):
            codec = runtimes[name]
            parts = [codec.encode(w) for w in _windows(audio, args.window)]
            codes = np.concatenate(parts, axis=-1)
            audio_hat = np.concatenate([codec.decode(p)[0] for p in parts])[:n]
            results[name] = (codes, audio_hat)
        for name, (codes, audio_hat) in results.items():
            frames = min(codes.shape[-1], keras_codes.shape[-1])
            rows[name]["agree"].append(np.mean(codes[..., :frames] == keras_codes[..., :frames]))
            rows[name]["stoi"].append(stoi(audio, audio_hat, model.sample_rate))
            rows[name]["mel"].append(mel_distance(audio, audio_hat, model.sample_rate))
    print(f"\n{args.model}: {len(items)} utterances from {args.data}; TFLite in "
          f"{args.window / model.sample_rate:g} s windows (hard cuts), Keras and ONNX whole clips")
    print(f"{'runtime':<12} {'codes = Keras':>14} {'STOI':>7} {'mel dist.':>10}")
    for name, row in rows.items():
        print(f"{name:<12} {100 * np.mean(row['agree']):13.2f}% {np.mean(row['stoi']):7.3f} "
              f"{np.mean(row['mel']):10.3f}")
    loss = np.mean(rows["TFLite"]["stoi"]) - np.mean(rows["TFLite int8"]["stoi"])
    mel_loss = np.mean(rows["TFLite int8"]["mel"]) - np.mean(rows["TFLite"]["mel"])
    print(f"int8 quality loss vs float TFLite (same windows): STOI {loss:+.3f} lower, "
          f"mel distance {mel_loss:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
