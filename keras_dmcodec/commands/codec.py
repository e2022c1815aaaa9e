"""``dmcodec encode``, ``decode`` and ``roundtrip``: audio files <-> token files.

Long files are encoded and decoded in chunks (``keras_dmcodec.inference``), so
memory stays bounded; outputs are written atomically and never overwritten
without ``--force``. Keras is imported inside the handlers so that
``--backend`` can choose the backend first.
"""

import sys
import time
from pathlib import Path

# Extensions libsndfile reads; anything else given explicitly is "unsupported format".
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                  ".au", ".snd", ".caf", ".w64", ".rf64")


class CommandError(ValueError):
    """A user error with a one-line message."""


def _add_model_args(parser, default="dmcodec_small"):
    parser.add_argument("--model", default=default,
                        help=f"preset name or preset directory (default: {default})")
    parser.add_argument("--random-weights", action="store_true",
                        help="allow a named preset without shipped weights, randomly "
                             "initialised (seed 0): tests and demos only")


def _add_chunk_args(parser):
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="audio per chunk for long files (default: 30)")
    parser.add_argument("--context-seconds", type=float, default=1.0,
                        help="extra audio encoded on each side of a chunk (default: 1)")


def register(subparsers):
    enc = subparsers.add_parser("encode", help="audio files or folders -> token files (.npz)")
    enc.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    enc.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    _add_model_args(enc)
    enc.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default: all)")
    _add_chunk_args(enc)
    enc.add_argument("--force", action="store_true", help="overwrite existing outputs")
    enc.set_defaults(handler=encode_command)

    dec = subparsers.add_parser("decode", help="token files -> WAV files")
    dec.add_argument("inputs", nargs="+", metavar="TOKENS", help="token files or folders")
    dec.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    _add_model_args(dec, default=None)
    _add_chunk_args(dec)
    dec.add_argument("--force", action="store_true", help="overwrite existing outputs")
    dec.set_defaults(handler=decode_command)

    rt = subparsers.add_parser(
        "roundtrip", help="encode + decode, print bitrate, speed, mel distance and STOI")
    rt.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    rt.add_argument("-o", "--out", default=None, metavar="OUT_DIR",
                    help="also write the decoded WAVs here")
    _add_model_args(rt)
    rt.add_argument("--n-q", type=int, default=None, help="codebooks to use (default: all)")
    _add_chunk_args(rt)
    rt.add_argument("--force", action="store_true", help="overwrite existing outputs")
    rt.set_defaults(handler=roundtrip_command)


# ------------------------------------------------------------------ helpers
def collect_inputs(inputs, suffixes, what):
    """Expands files and folders into ``[(path, relative output stem)]``; one-line errors."""
    found = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise CommandError(f"{path}: no such file or directory")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise CommandError(f"{path}: directory contains no {what} files "
                                   f"({', '.join(suffixes[:4])}, ...)")
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.suffix.lower() not in suffixes:
            raise CommandError(f"{path}: unsupported format {path.suffix or '(no extension)'!r} "
                               f"(expected {what}: {', '.join(suffixes)})")
        else:
            found.append((path, Path(path.stem)))
    stems = {}
    for path, stem in found:
        if stem in stems:
            raise CommandError(f"{path} and {stems[stem]} would write the same output {stem}")
        stems[stem] = path
    return found


def _prepare_out_dir(out):
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(f"{out}: cannot create output directory "
                           f"({err.strerror or type(err).__name__})") from None
    if not out.is_dir():
        raise CommandError(f"{out}: output path is not a directory")
    probe = out / ".dmcodec_write_test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CommandError(f"{out}: output directory is not writable "
                           f"({err.strerror or type(err).__name__})") from None
    return out


def _check_not_exists(paths, force):
    if force:
        return
    for path in paths:
        if path.exists():
            raise CommandError(f"{path}: already exists (use --force to replace it)")


def load_model(spec, random_weights=False):
    """Loads ``spec`` (preset name or directory); returns ``(model, name to record)``."""
    from keras_dmcodec.presets import PRESETS, load_preset, preset_weights_dir

    path = Path(spec)
    if path.is_dir():
        return load_preset(path), str(path.resolve())
    if spec in PRESETS and preset_weights_dir(spec) is None:
        if not random_weights:
            raise CommandError(
                f"no trained weights ship for preset {spec!r}: pass a preset directory to "
                "--model, or --random-weights for a randomly initialised model (tests only)")
        import keras

        keras.utils.set_random_seed(0)
        return load_preset(spec, load_weights=False, seed=0), f"{spec}+random-seed0"
    if spec not in PRESETS and not path.exists():
        raise CommandError(f"--model {spec}: not a preset name {sorted(PRESETS)} or a directory")
    return load_preset(spec), spec


def _chunk_frames(model, args):
    if args.chunk_seconds <= 0 or args.context_seconds < 0:
        raise CommandError("--chunk-seconds must be > 0 and --context-seconds >= 0")
    return (max(1, round(args.chunk_seconds * model.frame_rate)),
            round(args.context_seconds * model.frame_rate))


class _Progress:
    """A progress bar over frames of one file, shown only for files of several chunks."""

    def __init__(self, total_frames, chunk_frames, label):
        self.bar = None
        if total_frames and total_frames > chunk_frames and sys.stderr.isatty():
            import keras

            print(label, file=sys.stderr)
            self.bar = keras.utils.Progbar(total_frames, unit_name="frame")

    def __call__(self, frames_done):
        if self.bar is not None:
            self.bar.update(frames_done)


def _frames_estimate(path, model):
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # unreadable files fail with a clear error when read
        return None
    return model.frames_for(info.frames * model.sample_rate / max(info.samplerate, 1))


def _encode_one(model, path, n_q, chunk, context, label):
    from keras_dmcodec import inference

    progress = _Progress(_frames_estimate(path, model), chunk, label)
    return inference.encode_file(model, path, n_q=n_q, chunk_frames=chunk,
                                 context_frames=context, progress=progress)


def _write_wav_stream(path, blocks, sample_rate):
    """Writes float blocks to a 16-bit WAV atomically, one block at a time."""
    import numpy as np
    import soundfile as sf

    from keras_dmcodec.utils.files import atomic_output

    total = 0
    with atomic_output(path) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16",
                          format="WAV") as handle:
            for block in blocks:
                handle.write(np.clip(block, -1.0, 1.0))
                total += len(block)
    return total


# ----------------------------------------------------------------- commands
def encode_command(args):
    from keras_dmcodec.tokens import SUFFIX, TokenFile, save_tokens

    files = collect_inputs(args.inputs, AUDIO_SUFFIXES, "audio")
    out = _prepare_out_dir(args.out)
    targets = [(src, out / stem.with_suffix(SUFFIX)) for src, stem in files]
    _check_not_exists([t for _, t in targets], args.force)
    model, name = load_model(args.model, args.random_weights)
    n_q = model.quantizer._check_n_q(args.n_q)
    chunk, context = _chunk_frames(model, args)
    start_all, audio_seconds = time.perf_counter(), 0.0
    for i, (src, target) in enumerate(targets, 1):
        start = time.perf_counter()
        codes, num_samples = _encode_one(model, src, n_q, chunk, context, f"encoding {src}")
        save_tokens(target, TokenFile.from_model(model, codes, num_samples, name),
                    overwrite=args.force)
        seconds = num_samples / model.sample_rate
        audio_seconds += seconds
        elapsed = time.perf_counter() - start
        print(f"[{i}/{len(targets)}] {src} -> {target} ({seconds:.2f} s, {codes.shape[1]} frames "
              f"x {n_q} codebooks, {seconds / max(elapsed, 1e-9):.1f}x real time)", flush=True)
    total = time.perf_counter() - start_all
    print(f"encoded {len(targets)} file(s), {audio_seconds:.1f} s of audio in {total:.1f} s, "
          f"{model.bitrate(n_q):.0f} bit/s")
    return 0


def decode_command(args):
    from keras_dmcodec import inference
    from keras_dmcodec.tokens import check_compatible, load_tokens

    files = collect_inputs(args.inputs, (".npz",), "token (.npz)")
    out = _prepare_out_dir(args.out)
    targets = [(src, out / stem.with_suffix(".wav")) for src, stem in files]
    _check_not_exists([t for _, t in targets], args.force)
    tokens = [(src, load_tokens(src), target) for src, target in targets]
    models = {}
    for i, (src, tok, target) in enumerate(tokens, 1):
        spec = args.model or tok.model
        if spec not in models:
            random = spec.endswith("+random-seed0")
            models[spec] = load_model(spec.removesuffix("+random-seed0"),
                                      random or args.random_weights)[0]
        model = models[spec]
        check_compatible(tok, model, name=str(src))
        chunk, context = _chunk_frames(model, args)
        start = time.perf_counter()
        progress = _Progress(tok.frames, chunk, f"decoding {src}")
        blocks = inference.decode_stream(model, tok.codes.astype("int32"), tok.num_samples,
                                         chunk, context, progress)
        _write_wav_stream(target, blocks, model.sample_rate)
        elapsed = time.perf_counter() - start
        print(f"[{i}/{len(tokens)}] {src} -> {target} ({tok.duration:.2f} s, "
              f"{tok.duration / max(elapsed, 1e-9):.1f}x real time)", flush=True)
    return 0


def roundtrip_command(args):
    import numpy as np

    from keras_dmcodec import inference
    from keras_dmcodec.audio import load_audio, write_audio
    from keras_dmcodec.evaluation import mel_distance, stoi

    files = collect_inputs(args.inputs, AUDIO_SUFFIXES, "audio")
    out = _prepare_out_dir(args.out) if args.out else None
    targets = [(src, out / stem.with_suffix(".wav") if out else None) for src, stem in files]
    if out:
        _check_not_exists([t for _, t in targets], args.force)
    model, name = load_model(args.model, args.random_weights)
    n_q = model.quantizer._check_n_q(args.n_q)
    chunk, context = _chunk_frames(model, args)
    print(f"model {name}: {n_q} codebooks, {model.bitrate(n_q):.0f} bit/s")
    print(f"{'file':<40} {'seconds':>8} {'enc xRT':>8} {'dec xRT':>8} {'mel dist':>9} "
          f"{'STOI':>6}")
    for src, target in targets:
        start = time.perf_counter()
        codes, num_samples = _encode_one(model, src, n_q, chunk, context, f"encoding {src}")
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = inference.decode_long(model, codes, num_samples, chunk, context)
        decode_s = time.perf_counter() - start
        # Metrics need the whole reference in memory (pystoi, librosa).
        audio, sr = load_audio(src, sample_rate=model.sample_rate)
        n = min(len(audio), len(decoded))
        seconds = num_samples / sr
        mel = mel_distance(audio[:n], decoded[:n], sample_rate=sr)
        intelligibility = stoi(audio[:n], decoded[:n], sample_rate=sr) if n > sr // 4 else np.nan
        label = str(src) if len(str(src)) <= 40 else "..." + str(src)[-37:]
        print(f"{label:<40} {seconds:8.2f} {seconds / encode_s:8.1f} {seconds / decode_s:8.1f} "
              f"{mel:9.3f} {intelligibility:6.3f}", flush=True)
        if target is not None:
            write_audio(target, decoded, sr, overwrite=args.force)
    return 0
