"""The ``dmcodec`` command.

Subcommands: ``demo`` (encode + decode the bundled speech sample, print codes,
bitrate, speed and reconstruction metrics, write the decoded WAV), ``info``
(model configuration and bitrates) and ``convert`` (reference PyTorch
checkpoint to a Keras preset). ``--backend`` picks the Keras backend.
"""

import argparse
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

from keras_dmcodec.audio import bundled_sample, load_audio, write_audio
from keras_dmcodec.corpus import transcript_of
from keras_dmcodec.evaluation.metrics import mel_distance, si_snr, stoi
from keras_dmcodec.presets import locate_preset
from keras_dmcodec.utils.files import atomic_output

BACKENDS = ("tensorflow", "jax", "torch")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
DTYPE_HELP = ("compute precision (default float32); mixed_bfloat16 runs every layer but the "
              "quantiser in bfloat16: faster with torch on CPUs with AVX512_BF16, slower with "
              "TF and JAX on CPU, and changes ~12 %% of the codes (docs/performance.md)")

# Subcommands that live beside the code they drive. Each module defines
# ``register(subparsers)``, which adds its parsers and sets ``handler=`` on them
# (``parser.set_defaults(handler=run)``). They import the library (and so Keras) at
# module top: ``main`` sets the backend from ``--backend`` before importing them. This
# module itself is imported before that, so it imports only modules that do not import
# Keras, and the few that do inside functions (commented).
COMMAND_MODULES = (
    "keras_dmcodec.commands.evaluate",
    "keras_dmcodec.commands.teachers",
    "keras_dmcodec.commands.tokenize_corpus",
    "keras_dmcodec.commands.codec",
    "keras_dmcodec.commands.export",
    "keras_dmcodec.commands.stream",
)


def _parser():
    parser = argparse.ArgumentParser(prog="dmcodec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    parser.add_argument("--dtype", choices=DTYPE_POLICIES, default="float32", help=DTYPE_HELP)
    parser.add_argument("--verbose", action="store_true",
                        help="also show the native libraries' start-up log lines")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="encode and decode a speech sample, print metrics")
    demo.add_argument("--model", default="dmcodec_small",
                      help="preset name, preset folder or keras-hub handle (default: "
                      "dmcodec_small); a preset without shipped weights runs with random "
                      "weights, and says so")
    demo.add_argument("--input", default=None, help="audio file (default: bundled sample)")
    demo.add_argument("--n-q", type=int, default=None, help="codebooks to use (default: all)")
    demo.add_argument("-o", "--out", default="outputs/demo", help="output directory")
    demo.add_argument("--force", action="store_true", help="overwrite existing outputs")

    info = sub.add_parser("info", help="print a model's configuration and bitrates")
    info.add_argument("--model", default="dmcodec_base",
                      help="preset name, preset folder or keras-hub handle")

    conv = sub.add_parser("convert", help="convert a reference PyTorch checkpoint")
    conv.add_argument("checkpoint", help="reference state dict (.pt/.pth/.bin/.safetensors)")
    conv.add_argument("config", help="reference config.json")
    conv.add_argument("out", help="output: directory (preset) or file ending in .keras")
    conv.add_argument("--force", action="store_true", help="overwrite an existing output")
    demo.set_defaults(handler=_demo)
    info.set_defaults(handler=_info)
    conv.set_defaults(handler=_convert)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    # `dmcodec encode --backend jax ...` as well as `dmcodec --backend jax encode ...`.
    # SUPPRESS keeps a subcommand without the flag from resetting the top-level value.
    for command in sub.choices.values():
        if "--backend" not in command._option_string_actions:
            command.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                                 help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
        command.add_argument("--dtype", choices=DTYPE_POLICIES, default=argparse.SUPPRESS,
                             help=DTYPE_HELP)
    return parser


def _resolve(spec, allow_random):
    """``resolve_model(spec)``, with random weights asked for explicitly where ``allow_random``
    and ``spec`` is a ``PRESETS`` name without shipped weights (``dmcodec_base``): the demo
    and ``info`` show an architecture before any trained model of it exists."""
    # deferred: the resolver imports Keras, which waits until main() has chosen the backend.
    from keras_dmcodec.models.loader import resolve_model, split_random_prefix

    bare, asked = split_random_prefix(spec)
    source = locate_preset(bare)
    return resolve_model(source, random_weights=asked or (allow_random and source.weights is None
                                                          and source.directory is None))


def _demo(args):
    # deferred: Keras is imported once main() has chosen the backend.
    import keras

    # The report's modules import Keras (through the ASR layer), which must wait for main().
    from keras_dmcodec.asr import make_asr  # deferred: imports Keras
    from keras_dmcodec.evaluation.html_report import RoundtripReport  # deferred: likewise

    out_dir = Path(args.out)
    wav_out = out_dir / "decoded.wav"
    codes_out = out_dir / "codes.npz"
    report_out = out_dir / "report.html"
    for path in (wav_out, codes_out, report_out):
        if path.exists() and not args.force:
            raise FileExistsError(f"{path}: already exists (use --force to replace it)")

    resolved = _resolve(args.model, allow_random=True)
    model, random_weights = resolved.model, resolved.random_weights
    description = f"{resolved.name} (trained weights, fingerprint {resolved.fingerprint})"
    if random_weights:
        description = (
            f"{resolved.name} architecture with RANDOMLY INITIALISED weights (seed "
            f"{model.seed}), asked for because no trained weights ship: the reconstruction is "
            "not meaningful speech. Codebooks are k-means initialised on the input clip."
        )
    source, text = (Path(args.input), transcript_of(args.input)) if args.input \
        else bundled_sample()
    audio, sr = load_audio(source, sample_rate=model.sample_rate)
    batch = audio[None]
    if random_weights:
        model(batch, training=True)  # one training-mode pass runs the k-means initialisation

    print(f"backend      : {keras.backend.backend()}")
    print(f"model        : {description}")
    print(f"parameters   : {model.count_params():,} "
          f"({sum(int(np.prod(w.shape)) for w in model.trainable_weights):,} trainable)")
    print(f"input        : {source} ({len(audio) / sr:.2f} s at {sr} Hz)")

    # The first call per input shape traces/compiles (TF, JAX); time the second.
    start = time.perf_counter()
    model.encode(batch, n_q=args.n_q)
    first_encode_s = time.perf_counter() - start
    start = time.perf_counter()
    codes = model.encode(batch, n_q=args.n_q)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    model.decode(codes, num_samples=len(audio))
    first_decode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = model.decode(codes, num_samples=len(audio))[0]
    decode_s = time.perf_counter() - start

    n_q = codes.shape[1]
    duration = len(audio) / sr
    print(f"codes        : shape {tuple(codes.shape)} [batch, n_q, frames], int32, "
          f"{model.frame_rate:g} frames/s, {model.codebook_size} codes per codebook")
    print(f"bitrate      : {model.bitrate(n_q):.0f} bit/s ({n_q} codebooks)")
    print(f"encode       : {encode_s:.3f} s ({duration / encode_s:.1f}x real time; "
          f"first call with compilation {first_encode_s:.2f} s)")
    print(f"decode       : {decode_s:.3f} s ({duration / decode_s:.1f}x real time; "
          f"first call with compilation {first_decode_s:.2f} s)")
    print(f"SI-SNR       : {si_snr(audio, decoded):.2f} dB")
    print(f"mel distance : {mel_distance(audio, decoded, sample_rate=sr):.3f} (L1 of log-mel)")
    print(f"STOI         : {stoi(audio, decoded, sample_rate=sr):.3f}")

    out_dir.mkdir(parents=True, exist_ok=True)
    write_audio(wav_out, decoded, sr, overwrite=args.force)
    with atomic_output(codes_out) as tmp:
        np.savez(tmp, codes=codes.astype(np.int16 if model.codebook_size <= 32768 else np.int32),
                 sample_rate=sr, n_q=n_q, num_samples=len(audio))
    print(f"wrote        : {wav_out} and {codes_out}")
    judge = make_asr("whisper")
    report = RoundtripReport(report_out, resolved.name, {
        "model": description, "codebooks": f"{n_q} ({model.bitrate(n_q):.0f} bit/s)",
        "ASR judge": judge.description, "backend": keras.backend.backend()}, judge=judge)
    report.add(source.name, audio, decoded, sr, text=text, bitrate=model.bitrate(n_q), n_q=n_q)
    print(f"report       : {report.write()} (open it in a browser: audio players, "
          "spectrograms, metrics, what an ASR judge heard)")
    if random_weights:
        print("note         : random weights -- metrics show the pipeline works, not quality")
    return 0


def _info(args):
    resolved = _resolve(args.model, allow_random=True)
    model = resolved.model
    description = (f"{resolved.name} (no trained weights ship; configuration only)"
                   if resolved.random_weights else resolved.description)
    print(f"model       : {description}")
    print(f"parameters  : {model.count_params():,}")
    print(f"sample rate : {model.sample_rate} Hz, hop {model.hop_length}, "
          f"{model.frame_rate:g} frames/s")
    print(f"codebooks   : {model.n_q} x {model.codebook_size}")
    rates = ", ".join(f"{n}: {model.bitrate(n):.0f}" for n in range(1, model.n_q + 1))
    print(f"bit/s by n_q: {rates}")
    return 0


def _convert(args):
    # deferred: the converter imports Keras, which waits until main() has chosen the backend.
    from keras_dmcodec.convert import convert_to_file

    out = convert_to_file(args.checkpoint, args.config, args.out, overwrite=args.force)
    print(f"wrote {out}")
    return 0


def _import_keras(quiet):
    """Imports Keras and TensorFlow once the backend is chosen.

    TensorFlow's native start-up lines (oneDNN notice, CUDA driver probing) are written
    to file descriptor 2 before its logging is configured, so TF_CPP_MIN_LOG_LEVEL does
    not hide them; unless ``quiet`` is False they are discarded, and the command prints
    only its own lines. TensorFlow is imported here on every backend because Keras's
    predict path and tf.data import it later anyway (on JAX and torch too), and would
    then print the same lines. Errors raised by the imports themselves still reach stderr.
    """
    if not quiet or "keras" in sys.modules:
        import keras  # noqa: F401  (deferred: the backend is chosen first)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (deferred: the backend is chosen first)

        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401  (deferred, heavy: only to silence its start-up)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _choose_backend(argv):
    """Reads ``--backend`` / ``--verbose`` wherever they stand, before Keras is imported.

    Returns ``(verbose, error)``: the subcommand modules import the library (and so
    Keras) at module top, so the backend must be set before the full parser is built.
    """
    early = argparse.ArgumentParser(prog="dmcodec", add_help=False)
    early.add_argument("--backend", choices=BACKENDS, default=None)
    early.add_argument("--verbose", action="store_true")
    known, _ = early.parse_known_args(argv)
    if known.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != known.backend:
            return known.verbose, "--backend must be chosen before Keras is imported"
        os.environ["KERAS_BACKEND"] = known.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return known.verbose, None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    verbose, error = _choose_backend(argv)
    if error:
        print(f"dmcodec: error: {error}", file=sys.stderr)
        return 2
    _import_keras(quiet=not verbose)
    # deferred: imports Keras, whose backend was chosen just above.
    from keras_dmcodec.ops.graphs import use_persistent_compilation_cache

    use_persistent_compilation_cache()  # JAX: compile each bucket size once per machine
    args = _parser().parse_args(argv)
    try:
        # Before any model is built: models whose config names no dtype follow the global
        # policy (every layer computes in bfloat16, the quantiser stays float32).
        import keras  # deferred: imported above by _import_keras, after the backend choice

        keras.config.set_dtype_policy(args.dtype)
        return args.handler(args)
    except (ValueError, TypeError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"dmcodec: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
