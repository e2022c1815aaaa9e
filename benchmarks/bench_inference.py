"""Inference speed of every runtime on one input, and peak memory of chunked long-audio encoding.

Model: the ``dmcodec_small`` architecture (16 kHz, 8 x 1024 codes, n_filters 16, 256-d latent,
10.7 M parameters counting the codebooks' EMA state) with RANDOM
weights, built as a reference ``speechtokenizer`` model (random init, codebooks from a probe
clip) and converted, so the PyTorch reference and our model hold the same weights. Speed does not
depend on the weight values; code agreement of a random model is not a quality measure.

Rows: Keras on TensorFlow, JAX and torch (one subprocess per backend, ``DMCodec.encode/decode`` on
the whole clip), the exported graphs run by ``export.ExportedCodec`` (TFLite float and
dynamic-range int8 with ai_edge_litert, ONNX with onnxruntime, SavedModel with TensorFlow; 30 s
windows with 1 s of context, so a 10 s clip is one window), and the ``speechtokenizer``
PyTorch model. Then peak RSS of ``inference.encode_file`` (30 s chunks, 1 s context) on a 1-minute
and a 60-minute WAV, each in a
fresh process, plus the chunked-vs-whole code agreement on the benchmark clip.

    python benchmarks/bench_inference.py [--seconds 10] [--memory-minutes 1 60] [--threads 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_speechtokenizer import _timed, speech_like  # noqa: E402

SMALL = dict(n_filters=16, strides=[8, 5, 4, 2], dimension=256, semantic_dimension=384,
             bidirectional=True, dilation_base=2, residual_kernel_size=3, n_residual_layers=1,
             lstm_layers=2, activation="ELU", codebook_size=1024, n_q=8, sample_rate=16000)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def build(workdir):
    """Random reference model -> checkpoint -> Keras preset (run once, torch side)."""
    import torch

    from keras_dmcodec.convert.reference import build_random_reference

    ref = build_random_reference(dict(SMALL), seed=0, probe_audio=speech_like(3, seed=123)[None])
    torch.save(ref.state_dict(), workdir / "reference.pt")
    (workdir / "config.json").write_text(json.dumps(SMALL))


def worker_keras(workdir, seconds, repeats):
    import keras

    from keras_dmcodec import inference
    from keras_dmcodec.convert.speechtokenizer import convert_checkpoint

    model = convert_checkpoint(workdir / "reference.pt", workdir / "config.json")
    if keras.backend.backend() == "tensorflow" and not (workdir / "preset").exists():
        model.save_to_preset(workdir / "preset")
    audio = speech_like(seconds, seed=1)
    encode_s, codes = _timed(lambda: model.encode(audio[None]), repeats)
    decode_s, _ = _timed(lambda: model.decode(codes), repeats)
    chunked = inference.encode_long(model, audio, chunk_frames=100, context_frames=50)
    np.save(workdir / f"codes_{keras.backend.backend()}.npy", codes[0])
    return dict(encode_s=encode_s, decode_s=decode_s,
                chunk_agreement=float(np.mean(chunked == codes[0])))


def worker_memory(workdir, minutes):
    import soundfile as sf

    from keras_dmcodec import inference
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(workdir / "preset").model
    path = workdir / f"long_{minutes}.wav"
    if not path.exists():
        with sf.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as handle:
            block = speech_like(60, seed=2)
            for _ in range(int(minutes)):
                handle.write(block)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    codes, n = inference.encode_file(model, path)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(minutes=minutes, frames=int(codes.shape[1]), seconds=elapsed,
                peak_rss_mb=peak, rss_before_mb=base)


def run_exported(workdir, seconds, repeats, threads):
    from keras_dmcodec.export import ExportedCodec, export_codec

    out = workdir / "exported"
    if not out.exists():
        export_codec(workdir / "preset", out, int8=True)
    audio = speech_like(seconds, seed=1)
    reference = np.load(workdir / "codes_tensorflow.npy")
    rows = {}
    for name, runtime in (("TFLite", "tflite"), ("TFLite int8", "tflite_int8"),
                          ("ONNX", "onnx"), ("SavedModel", "saved_model")):
        # Windows with context, as inference.encode_long (30 s chunks, 1 s context).
        codec = ExportedCodec(out, runtime, num_threads=threads)
        encode_s, codes = _timed(lambda c=codec: c.encode(audio), repeats)
        decode_s, _ = _timed(lambda c=codec, k=codes: c.decode(k), repeats)
        rows[name] = dict(encode_s=encode_s, decode_s=decode_s,
                          agreement=float(np.mean(codes == reference)))
    return rows


def run_reference(workdir, seconds, repeats, threads):
    import torch

    from keras_dmcodec.convert.reference import build_random_reference

    torch.set_num_threads(threads)
    ref = build_random_reference(dict(SMALL), seed=0, probe_audio=speech_like(3, seed=123)[None])
    ref.load_state_dict(torch.load(workdir / "reference.pt", weights_only=True))
    x = torch.from_numpy(speech_like(seconds, seed=1))[None, None]
    with torch.inference_mode():
        encode_s, codes = _timed(lambda: ref.encode(x), repeats)
        decode_s, _ = _timed(lambda: ref.decode(codes), repeats)
    return dict(encode_s=encode_s, decode_s=decode_s)


def _subprocess(args, backend="tensorflow"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, __file__, *map(str, args)], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{backend} worker failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--memory-minutes", type=int, nargs="*", default=[1, 60])
    parser.add_argument("--worker", choices=["keras", "memory", "exported", "reference"])
    parser.add_argument("--workdir")
    parser.add_argument("--minutes", type=int)
    args = parser.parse_args(argv)
    if args.worker:
        workdir = Path(args.workdir)
        if args.worker == "keras":
            result = worker_keras(workdir, args.seconds, args.repeats)
        elif args.worker == "memory":
            result = worker_memory(workdir, args.minutes)
        elif args.worker == "exported":
            result = run_exported(workdir, args.seconds, args.repeats, args.threads)
        else:
            result = run_reference(workdir, args.seconds, args.repeats, args.threads)
        print(json.dumps(result))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    common = ["--workdir", workdir, "--seconds", args.seconds, "--repeats", args.repeats,
              "--threads", args.threads]
    build(workdir)
    rows = {}
    for backend in ("tensorflow", "jax", "torch"):
        _log(f"Keras {backend} ...")
        rows[f"Keras {backend}"] = _subprocess(["--worker", "keras", *common], backend)
    _log("TFLite / ONNX (export + run) ...")
    rows.update(_subprocess(["--worker", "exported", *common]))
    _log("speechtokenizer (PyTorch) ...")
    rows["speechtokenizer"] = _subprocess(["--worker", "reference", *common])
    seconds = args.seconds
    print(f"\nEncode/decode speed, dmcodec_small architecture (random weights), {seconds} s of "
          f"speech-like audio, {args.threads} threads; x RT = audio seconds per second")
    print(f"{'runtime':<18} {'encode s':>9} {'enc xRT':>8} {'decode s':>9} {'dec xRT':>8} "
          f"{'codes = Keras-TF':>17}")
    tf_codes = np.load(workdir / "codes_tensorflow.npy")
    for name, row in rows.items():
        if name.startswith("Keras"):
            agree = np.mean(np.load(workdir / f"codes_{name.split()[1]}.npy") == tf_codes)
            agreement = f"{100 * agree:.2f} %"
        elif "agreement" in row:
            agreement = f"{100 * row['agreement']:.2f} % *"
        else:
            agreement = "-"
        print(f"{name:<18} {row['encode_s']:9.3f} {seconds / row['encode_s']:8.1f} "
              f"{row['decode_s']:9.3f} {seconds / row['decode_s']:8.1f} {agreement:>17}")
    print("* exported graphs through ExportedCodec (30 s windows, 1 s context); int8 rows "
          "differ by quantisation")
    chunk = rows["Keras tensorflow"]["chunk_agreement"]
    print(f"chunked (2 s chunks, 1 s context) vs whole-clip codes, Keras TF: {100 * chunk:.2f} %")
    if args.memory_minutes:
        print("\nPeak RSS of encode_file (30 s chunks + 1 s context, TF backend, fresh process)")
        print(f"{'audio':>8} {'frames':>8} {'seconds':>9} {'x RT':>6} {'peak RSS MB':>12}")
        for minutes in args.memory_minutes:
            _log(f"memory {minutes} min ...")
            row = _subprocess(["--worker", "memory", "--minutes", minutes, *common])
            print(f"{minutes:>6} m {row['frames']:>8} {row['seconds']:9.1f} "
                  f"{minutes * 60 / row['seconds']:6.1f} {row['peak_rss_mb']:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
