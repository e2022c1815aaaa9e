"""``dmcodec stream``: runs an audio file through a causal codec 20, 40 or 80 ms at a time, as
a live stream, and prints per-chunk latency statistics.

The Keras model streams with ``inference.StreamingEncoder`` / ``StreamingDecoder``; an export
(``--export DIR --runtime tflite|onnx``) with ``export.streaming``. Both go through
``inference.stream_through``.
"""

import json
import sys
from pathlib import Path

from keras_dmcodec import inference
from keras_dmcodec.audio import load_audio, write_audio
from keras_dmcodec.evaluation import mel_distance
from keras_dmcodec.export import ExportError
from keras_dmcodec.export.streaming import (
    STREAM_RUNTIMES,
    ExportedStreamingDecoder,
    ExportedStreamingEncoder,
)
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.utils.files import atomic_output

CHUNK_MS = (20, 40, 80)


def register(subparsers):
    st = subparsers.add_parser(
        "stream", help="stream an audio file through a causal codec chunk by chunk and "
                       "print per-chunk latency")
    st.add_argument("input", metavar="IN", help="audio file (resampled to the model's rate)")
    st.add_argument("-o", "--out", default=None, metavar="OUT.wav",
                    help="write the decoded stream here")
    st.add_argument("--model", default="dmcodec_small_causal",
                    help="causal preset name, folder or keras-hub handle (default: "
                         "dmcodec_small_causal)")
    st.add_argument("--random-weights", action="store_true",
                    help="the --model architecture with random weights (tests and timing only)")
    st.add_argument("--chunk-ms", type=int, default=20, choices=CHUNK_MS,
                    help="audio per step (default: 20 ms = one frame)")
    st.add_argument("--n-q", type=int, default=None, help="codebooks (default: all)")
    st.add_argument("--realtime", action="store_true",
                    help="feed chunks at real-time pace, as a microphone would (default: as "
                         "fast as possible)")
    st.add_argument("--runtime", default="keras", choices=("keras", *STREAM_RUNTIMES),
                    help="keras (the current backend) or an exported runtime (needs --export)")
    st.add_argument("--export", default=None, metavar="DIR",
                    help="export folder of a causal model (dmcodec export) for --runtime "
                         "tflite|tflite_int8|onnx")
    st.add_argument("--json", default=None, metavar="OUT.json",
                    help="also write the statistics as JSON")
    st.add_argument("--force", action="store_true", help="overwrite existing outputs")
    st.set_defaults(handler=stream_command)


def _streams(args):
    """``(encoder, decoder, name)`` for the chosen runtime."""
    if args.runtime == "keras":
        if args.export:
            raise ValueError("--export needs --runtime tflite, tflite_int8 or onnx")
        resolved = resolve_model(args.model, random_weights=args.random_weights)
        model = resolved.model
        if not model.causal:
            raise ValueError(f"{resolved.name} is not causal and cannot stream (its encoder "
                             f"reads the future); use a causal model such as "
                             f"dmcodec_small_causal")
        return (inference.StreamingEncoder(model, n_q=args.n_q),
                inference.StreamingDecoder(model),
                resolved.name + (" (random weights)" if args.random_weights else ""))
    if not args.export:
        raise ValueError(f"--runtime {args.runtime} needs --export DIR (dmcodec export of a "
                         f"causal model)")
    encoder = ExportedStreamingEncoder(args.export, args.runtime)
    decoder = ExportedStreamingDecoder(args.export, args.runtime)
    if args.n_q is not None and args.n_q != encoder.n_q:
        raise ValueError(f"the export streams {encoder.n_q} codebooks; --n-q cannot change that")
    return encoder, decoder, f"{encoder.manifest.get('model')} ({args.runtime} export)"


def stream_command(args):
    for path in (args.out, args.json):
        if path and Path(path).exists() and not args.force:
            raise FileExistsError(f"{path}: already exists (use --force to overwrite)")
    if args.out and Path(args.out).suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"{args.out}: the output must be a .wav or .flac file")
    try:
        encoder, decoder, name = _streams(args)
    except ExportError as err:
        raise ValueError(str(err)) from None
    sample_rate, hop = encoder.sample_rate, encoder.hop_length
    chunk_samples = sample_rate * args.chunk_ms // 1000
    if chunk_samples % hop:
        raise ValueError(f"--chunk-ms {args.chunk_ms} is not a whole number of "
                         f"{1000 * hop / sample_rate:g} ms frames")
    if chunk_samples % encoder.step_samples:  # an export's step may span several frames
        raise ValueError(f"--chunk-ms {args.chunk_ms} is not a multiple of the export's "
                         f"{1000 * encoder.step_samples / sample_rate:g} ms step")
    audio, _ = load_audio(args.input, sample_rate=sample_rate)
    run = inference.stream_through(encoder, decoder, audio, chunk_samples,
                                   realtime=args.realtime)
    stats = run.summary()
    frames_per_chunk = chunk_samples // hop
    print(f"model        : {name}")
    print(f"input        : {args.input} ({len(audio) / sample_rate:.2f} s, "
          f"{stats['chunks']} chunks of {args.chunk_ms} ms = {frames_per_chunk} frame(s), "
          f"{'real-time pace' if args.realtime else 'as fast as possible'})")
    print(f"algorithmic  : {args.chunk_ms} ms (one chunk; no lookahead: a frame's codes need "
          f"only the samples up to its end)")
    print(f"warm-up      : {run.warmup_seconds:.2f} s (compilation, before the first chunk)")
    print(f"{'per chunk ms':<13}{'median':>9}{'p99':>9}{'max':>9}")
    for key in ("encode", "decode", "total", "latency"):
        print(f"{key:<13}{stats[f'{key}_median_ms']:>9.2f}{stats[f'{key}_p99_ms']:>9.2f}"
              f"{stats[f'{key}_max_ms']:>9.2f}")
    print(f"real time    : {stats['real_time_factor']:.1f}x (audio seconds per compute "
          f"second); {stats['late_chunks']} of {stats['chunks']} chunks took longer than "
          f"{args.chunk_ms} ms")
    print(f"mel distance : {mel_distance(audio, run.audio, sample_rate):.3f} "
          f"(decoded stream vs input)")
    if args.out:
        write_audio(args.out, run.audio, sample_rate, overwrite=args.force)
        print(f"wrote        : {args.out}")
    if args.json:
        stats.update(model=name, input=str(args.input), realtime=bool(args.realtime),
                     warmup_seconds=run.warmup_seconds)
        with atomic_output(args.json) as tmp:
            Path(tmp).write_text(json.dumps(stats, indent=2) + "\n")
    sys.stdout.flush()
    return 0

