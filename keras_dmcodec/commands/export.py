"""``dmcodec export``: SavedModel, TFLite (no Flex ops) and ONNX with encode/decode signatures."""

from pathlib import Path

from keras_dmcodec.export import FORMATS, export_codec


def register(subparsers):
    exp = subparsers.add_parser(
        "export", help="export encode/decode to SavedModel, TFLite and/or ONNX")
    exp.add_argument("--model", required=True,
                     help="preset folder, preset name with shipped weights, or keras-hub "
                     "handle (hf://...)")
    exp.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    exp.add_argument("--format", action="append", choices=FORMATS,
                     dest="formats", help="repeatable; default: all three")
    exp.add_argument("--n-q", type=int, default=None, help="codebooks (default: all)")
    exp.add_argument("--int8", action="store_true",
                     help="also write codec_int8.tflite (dynamic-range int8 weights)")
    exp.add_argument("--stream-frames", type=int, default=1, metavar="K",
                     help="causal models: frames per streaming step in the exported "
                          "encode_step/decode_step (1 = 20 ms, default; 4 = 80 ms)")
    exp.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    exp.set_defaults(handler=export_command)


def export_command(args):
    formats = tuple(args.formats or FORMATS)
    manifest = export_codec(args.model, args.out, formats=formats, n_q=args.n_q,
                            int8=args.int8, overwrite=args.force,
                            stream_frames=args.stream_frames)
    print(f"exported {', '.join(formats)} to {Path(args.out)}: encode audio [1, samples] -> "
          f"codes [1, {manifest['n_q']}, ceil(samples / {manifest['hop_length']})], decode -> "
          f"audio [1, frames * {manifest['hop_length']}] (any length; ExportedCodec runs "
          f"long audio in windows with context)")
    if "stream" in manifest:
        stream = manifest["stream"]
        print(f"streaming steps encode_step/decode_step: {stream['samples']} samples "
              f"({stream['milliseconds']:g} ms) <-> codes [1, {manifest['n_q']}, "
              f"{stream['frames']}] per call, state as state_NN -> new_state_NN "
              f"(keras_dmcodec.export.streaming runs them)")
    for kind, name in manifest["files"].items():
        print(f"  {kind:<12} {Path(args.out) / name}")
    return 0
