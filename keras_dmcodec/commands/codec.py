"""``dmcodec encode``, ``decode`` and ``roundtrip``: audio files <-> token files.

Long files are encoded and decoded in chunks (``keras_dmcodec.inference``), so
memory stays bounded; outputs are written atomically and never overwritten
without ``--force``. Models come from ``keras_dmcodec.models.loader.resolve_model``.

Token files record the model's preset name and fingerprint; ``decode`` finds the model
by that name (a ``PRESETS`` name or a folder in ``saved_models/``) unless ``--model``
names it, and refuses a model whose fingerprint does not fit.
"""

import sys
import time
from pathlib import Path

import keras
import numpy as np
import soundfile as sf

from keras_dmcodec import inference
from keras_dmcodec.asr import make_asr
from keras_dmcodec.audio import AUDIO_SUFFIXES, AudioError, load_audio, write_audio
from keras_dmcodec.corpus import list_files, transcript_of
from keras_dmcodec.evaluation import mel_distance, stoi
from keras_dmcodec.evaluation.html_report import RoundtripReport
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.presets import PresetError, find_named_preset
from keras_dmcodec.tokens import SUFFIX, TokenFile, check_compatible, load_tokens, save_tokens
from keras_dmcodec.utils.files import atomic_output


class CommandError(ValueError):
    """A user error with a one-line message."""


def _add_model_args(parser, default="dmcodec_small"):
    parser.add_argument("--model", default=default,
                        help="preset name, preset folder or keras-hub handle (hf://...)"
                             + (f" (default: {default})" if default else
                                " (default: the model named in each token file)"))
    parser.add_argument("--random-weights", action="store_true",
                        help="the --model architecture with random weights (seed 0) instead "
                             "of trained ones: tests and demos only")


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
    rt.add_argument("--html", default=None, metavar="OUT.html",
                    help="also write a listening report: players, spectrograms, metrics and "
                    "what the ASR judge heard, audio in report_audio/ beside it")
    rt.add_argument("--text", default=None,
                    help="transcript for the report (one input file; default: a *.trans.txt "
                    "line or <name>.txt beside the file, else the judge's transcript of the "
                    "original)")
    rt.add_argument("--asr", default="whisper", metavar="SPEC",
                    help="ASR judge of the report (as in 'dmcodec evaluate'; 'none': no "
                    "transcripts)")
    rt.set_defaults(handler=roundtrip_command)


# ------------------------------------------------------------------ helpers
def collect_inputs(inputs, suffixes, what):
    """Expands files and folders into ``[(path, relative output stem)]``; one-line errors.

    Folders are listed by ``keras_dmcodec.corpus.list_files``: hidden and temporary files
    (such as the ``.tmp_*`` files an interrupted run leaves) are skipped.
    """
    found = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise CommandError(f"{path}: no such file or directory")
        if path.is_dir():
            files = list_files(path, suffixes)
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
    """Resolves ``--model`` (or a ``PresetSource``) with ``models.loader.resolve_model``."""
    return resolve_model(spec, random_weights=random_weights)


# Token files of format 1 named random-weight models "<preset>+random-seed0".
_OLD_RANDOM_SUFFIX = "+random-seed0"


def _token_model_name(resolved):
    """What a token file records: the preset name, ``random:<name>`` for random weights."""
    return f"random:{resolved.name}" if resolved.random_weights else resolved.name


def model_for_tokens(tokens, source, model_spec=None, random_weights=False, cache=None):
    """The resolved model that decodes ``tokens`` (read from ``source``); one-line errors.

    With ``model_spec`` (``--model``), that model; otherwise the model the token file
    names, looked up as a preset name only (``presets.find_named_preset``: a ``PRESETS``
    name or a folder in ``saved_models/``, never a path). Either way its fingerprint must
    fit the tokens' (``tokens.check_compatible``: architecture and codebooks).
    """
    cache = {} if cache is None else cache
    if model_spec is not None:
        key = (str(model_spec), bool(random_weights))
        if key not in cache:
            cache[key] = load_model(model_spec, random_weights)
        check_compatible(tokens, cache[key].model, name=str(source),
                         fingerprint=cache[key].identity)
        return cache[key]
    name = tokens.model
    if name.endswith(_OLD_RANDOM_SUFFIX):
        name = "random:" + name.removesuffix(_OLD_RANDOM_SUFFIX)
    needs = f"{source}: the tokens need model {tokens.model_label}"
    if name not in cache:
        bare = name.removeprefix("random:")
        try:
            named = find_named_preset(bare)
        except PresetError:
            why = ("an older token file, which records a path, not a name"
                   if "/" in bare or "\\" in bare
                   else "not a preset name or a folder in saved_models/ here")
            raise CommandError(f"{needs} ({why}): pass its preset folder with --model") from None
        cache[name] = load_model(named, random_weights=name.startswith("random:"))
    resolved = cache[name]
    try:
        check_compatible(tokens, resolved.model, name=str(source), fingerprint=resolved.identity)
    except ValueError:
        where = resolved.directory or f"preset {resolved.name!r}"
        raise CommandError(f"{needs}, but {where} (fingerprint {resolved.fingerprint}) has "
                           "another configuration or other codebooks: pass the model that "
                           "encoded them with --model") from None
    return resolved


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
            print(label, file=sys.stderr)
            self.bar = keras.utils.Progbar(total_frames, unit_name="frame")

    def __call__(self, frames_done):
        if self.bar is not None:
            self.bar.update(frames_done)


def _frames_estimate(path, model):
    try:
        info = sf.info(str(path))
    except Exception:  # unreadable files fail with a clear error when read
        return None
    return model.frames_for(info.frames * model.sample_rate / max(info.samplerate, 1))


def _encode_one(model, path, n_q, chunk, context, label):
    progress = _Progress(_frames_estimate(path, model), chunk, label)
    return inference.encode_file(model, path, n_q=n_q, chunk_frames=chunk,
                                 context_frames=context, progress=progress)


def _write_wav_stream(path, blocks, sample_rate):
    """Writes float blocks to a 16-bit WAV atomically, one block at a time."""
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
    """Encodes every input; with several inputs an unreadable file is skipped, listed, and
    the run exits with status 1 at the end (one input: its error is the run's error)."""
    files = collect_inputs(args.inputs, AUDIO_SUFFIXES, "audio")
    out = Path(args.out)
    targets = [(src, out / stem.with_suffix(SUFFIX)) for src, stem in files]
    _check_not_exists([t for _, t in targets], args.force)
    resolved = load_model(args.model, args.random_weights)
    model, name = resolved.model, _token_model_name(resolved)
    n_q = model.quantizer.check_n_q(args.n_q)
    chunk, context = _chunk_frames(model, args)
    created = not out.exists()  # everything is checked: only now create the folder
    _prepare_out_dir(out)
    start_all, audio_seconds, bad = time.perf_counter(), 0.0, []
    try:
        for i, (src, target) in enumerate(targets, 1):
            start = time.perf_counter()
            try:
                codes, num_samples = _encode_one(model, src, n_q, chunk, context,
                                                 f"encoding {src}")
            except AudioError as err:
                if len(targets) == 1:
                    raise
                bad.append(str(err))
                print(f"[{i}/{len(targets)}] skipped: {err}", file=sys.stderr, flush=True)
                continue
            tokens = TokenFile.from_model(model, codes, num_samples, name,
                                          fingerprint=resolved.identity)
            save_tokens(target, tokens, overwrite=args.force)
            seconds = num_samples / model.sample_rate
            audio_seconds += seconds
            elapsed = time.perf_counter() - start
            print(f"[{i}/{len(targets)}] {src} -> {target} ({seconds:.2f} s, {codes.shape[1]} "
                  f"frames x {n_q} codebooks, {seconds / max(elapsed, 1e-9):.1f}x real time)",
                  flush=True)
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing could be written: leave no empty output folder behind
    total = time.perf_counter() - start_all
    print(f"encoded {len(targets) - len(bad)} of {len(targets)} file(s), {audio_seconds:.1f} s "
          f"of audio in {total:.1f} s, {model.bitrate(n_q):.0f} bit/s")
    if bad:
        for reason in bad:
            print(f"  bad: {reason}", file=sys.stderr)
        print(f"dmcodec: error: {len(bad)} of {len(targets)} file(s) could not be read and "
              "were skipped (listed above)", file=sys.stderr)
        return 1
    return 0


def decode_command(args):
    files = collect_inputs(args.inputs, (".npz",), "token (.npz)")
    targets = [(src, Path(args.out) / stem.with_suffix(".wav")) for src, stem in files]
    _check_not_exists([t for _, t in targets], args.force)
    tokens = [(src, load_tokens(src), target) for src, target in targets]
    # Every file's model is found and checked before anything is written.
    models, cache = [], {}
    for src, tok, _ in tokens:
        models.append(model_for_tokens(tok, src, args.model, args.random_weights, cache).model)
    _prepare_out_dir(args.out)
    for i, ((src, tok, target), model) in enumerate(zip(tokens, models, strict=True), 1):
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


def _roundtrip_report(args, resolved, n_q, count):
    """The ``--html`` listening report's builder, or None; checks its arguments first."""
    if args.text is not None and count != 1:
        raise CommandError(f"--text gives one transcript, but there are {count} input files")
    if not args.html:
        if args.text is not None:
            raise CommandError("--text is for the --html report; add --html OUT.html")
        return None
    html = Path(args.html)
    if html.suffix.lower() not in (".html", ".htm"):
        raise CommandError(f"{html}: the report must be an .html file")
    _check_not_exists([html], args.force)
    _prepare_out_dir(html.parent)
    judge = None if args.asr == "none" else make_asr(args.asr)
    model = resolved.model
    settings = {"model": resolved.description,
                "codebooks": f"{n_q} of {model.n_q} ({model.bitrate(n_q):.0f} bit/s)",
                "ASR judge": judge.description if judge else "none",
                "backend": keras.backend.backend()}
    return RoundtripReport(html, resolved.name, settings, judge=judge)


def roundtrip_command(args):
    files = collect_inputs(args.inputs, AUDIO_SUFFIXES, "audio")
    out = Path(args.out) if args.out else None
    targets = [(src, out / stem.with_suffix(".wav") if out else None) for src, stem in files]
    if out:
        _check_not_exists([t for _, t in targets], args.force)
    resolved = load_model(args.model, args.random_weights)
    model = resolved.model
    n_q = model.quantizer.check_n_q(args.n_q)
    chunk, context = _chunk_frames(model, args)
    report = _roundtrip_report(args, resolved, n_q, len(targets))
    if out:  # everything is checked: only now create the folder
        _prepare_out_dir(out)
    print(f"model {resolved.description}: {n_q} codebooks, {model.bitrate(n_q):.0f} bit/s")
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
        if report is not None:
            report.add(src.name, audio, decoded, sr, bitrate=model.bitrate(n_q), n_q=n_q,
                       text=args.text or transcript_of(src))
    if report is not None:
        print(f"wrote listening report {report.write()}")
    return 0
