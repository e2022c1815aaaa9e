"""Inference speed and parity: converted DMCodec (each Keras backend) vs reference SpeechTokenizer.

Builds the reference DM-Codec / SpeechTokenizer configuration (103.7 M parameters) in
PyTorch with random weights (codebooks filled so codes spread, ``weight_g != ||weight_v||``),
saves it as a checkpoint, and times encode and decode of the same speech-like input
(band-passed noise with a syllable-rate envelope, peak 0.1) for

- the reference (``torch.inference_mode()``, ``torch.set_num_threads(os.cpu_count())``);
- our converted model on each Keras backend, each in its own process (the backend is
  fixed per process), converted from the saved checkpoint with ``convert_checkpoint``.

Each timing is a warm-up call (which includes compilation) then the median of
``--repeats`` runs, of a batch of ``--batch`` clips (default 1; each clip its own
speech-like signal). ``--size small`` uses the shipped ``dmcodec_small`` architecture
(random weights) instead of the reference's base configuration. Our decode times decode
the *reference's* codes, and the parity columns compare our codes with the reference's
and our decoding of the reference's codes with the reference's decoding. Prints one
Markdown table.

    python benchmarks/bench_speechtokenizer.py --lengths 10 60 --repeats 3 \\
        --backends tensorflow jax torch [--size small] [--batch 8]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SAMPLE_RATE = 16000


def speech_like(seconds, seed=0, sample_rate=SAMPLE_RATE):
    """Band-passed (100-4000 Hz) noise with a ~4 Hz syllable envelope and pauses, peak 0.1."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    sos = signal.butter(4, [100, 4000], btype="bandpass", fs=sample_rate, output="sos")
    audio = signal.sosfilt(sos, rng.standard_normal(n))
    t = np.arange(n) / sample_rate
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)))
    phrases = np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi)) ** 2
    audio = audio * syllables * phrases
    return (0.1 * audio / np.max(np.abs(audio))).astype("float32")


def _timed(fn, repeats):
    """Warm-up call, then ``(median seconds of repeats, last result)``."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _log(message):
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ reference side
def run_reference(workdir, lengths, repeats, size="base", batch=1):
    """Builds and saves the reference model, times it, stores its codes and decodings."""
    import torch
    from profile_stages import reference_config

    from keras_dmcodec.convert.reference import build_random_reference

    torch.set_num_threads(os.cpu_count())
    cfg = reference_config(size)
    ref = build_random_reference(cfg, seed=0, probe_audio=speech_like(3, seed=123)[None])
    torch.save(ref.state_dict(), workdir / "reference.pt")
    (workdir / "config.json").write_text(json.dumps(cfg))
    results = {}
    for seconds in lengths:
        audio = np.stack([speech_like(seconds, seed=seconds + 1000 * i) for i in range(batch)])
        x = torch.from_numpy(audio)[:, None]
        with torch.inference_mode():
            encode_s, codes = _timed(lambda x=x: ref.encode(x), repeats)  # (n_q, batch, frames)
            decode_s, decoded = _timed(lambda c=codes: ref.decode(c), repeats)
        np.savez(workdir / f"reference_{seconds}.npz", audio=audio,  # [batch, samples]
                 codes=codes.numpy().transpose(1, 0, 2).astype("int32"),
                 decoded=decoded[:, 0].numpy())
        results[seconds] = dict(encode_s=encode_s, decode_s=decode_s)
        _log(f"speechtokenizer {seconds:g} s: encode {encode_s:.3f} s, decode {decode_s:.3f} s")
    return results


# ------------------------------------------------------------------ our side
def run_worker(workdir, lengths, repeats):
    """Runs in a subprocess with KERAS_BACKEND set: converts, times, compares; writes JSON."""
    import keras

    from keras_dmcodec.convert import convert_checkpoint

    backend = keras.backend.backend()
    start = time.perf_counter()
    model = convert_checkpoint(workdir / "reference.pt", workdir / "config.json")
    results = {"convert_s": time.perf_counter() - start, "lengths": {}}
    for seconds in lengths:
        ref = np.load(workdir / f"reference_{seconds}.npz")
        audio = ref["audio"]
        encode_s, codes = _timed(lambda a=audio: model.encode(a), repeats)
        decode_s, decoded = _timed(lambda c=ref["codes"]: model.decode(c), repeats)
        results["lengths"][str(seconds)] = dict(
            encode_s=encode_s,
            decode_s=decode_s,
            code_agreement=float(np.mean(codes == ref["codes"])),
            max_abs_diff=float(np.max(np.abs(decoded - ref["decoded"]))),
        )
        _log(f"{backend} {seconds:g} s: encode {encode_s:.3f} s, decode {decode_s:.3f} s")
    (workdir / f"result_{backend}.json").write_text(json.dumps(results))


def _run_backend(backend, workdir, lengths, repeats):
    return run_backend_worker(__file__, backend, workdir,
                              ["--repeats", str(repeats), "--lengths", *map(str, lengths)])


def run_backend_worker(script, backend, workdir, args):
    """Runs ``script --worker --workdir WORKDIR ARGS`` with ``KERAS_BACKEND=backend`` in a fresh
    process, echoes its ``backend ...`` progress lines and returns the JSON it wrote to
    ``WORKDIR/result_<backend>.json`` (None if it failed)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, str(script), "--worker", "--workdir", str(workdir), *args]
    proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    for line in proc.stderr.splitlines():
        if line.startswith(backend):
            _log(line)
    if proc.returncode != 0:
        _log(f"{backend} failed:\n{proc.stderr[-3000:]}")
        return None
    return json.loads((workdir / f"result_{backend}.json").read_text())


def format_table(reference, ours, lengths, batch=1):
    """The Markdown table: one row per input length and implementation."""
    rows = [
        "| input | implementation | encode s | decode s | x real time | speed vs "
        "speechtokenizer | codes equal | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for seconds in lengths:
        base = reference[seconds]
        base_total = base["encode_s"] + base["decode_s"]
        rows.append(f"| {seconds:g} s | speechtokenizer (torch) | {base['encode_s']:.3f} | "
                    f"{base['decode_s']:.3f} | {batch * seconds / base_total:.1f} | 1.00 | - | - |")
        for backend, result in ours.items():
            if result is None:
                rows.append(f"| {seconds:g} s | keras-dmcodec ({backend}) | failed | | | | | |")
                continue
            r = result["lengths"][str(seconds)]
            total = r["encode_s"] + r["decode_s"]
            rows.append(
                f"| {seconds:g} s | keras-dmcodec ({backend}) | {r['encode_s']:.3f} | "
                f"{r['decode_s']:.3f} | {batch * seconds / total:.1f} | {base_total / total:.2f} | "
                f"{100 * r['code_agreement']:.2f} % | {r['max_abs_diff']:.1e} |"
            )
    return "\n".join(rows)


def main(argv=None):
    """Parses arguments and runs the reference then every backend (or one worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10, 60],
                        help="input lengths in seconds (default: 10 60)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"],
                        choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--size", choices=["base", "small"], default="base",
                        help="base: the reference configuration; small: dmcodec_small's")
    parser.add_argument("--batch", type=int, default=1, help="clips per call (default 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lengths = [int(s) if float(s).is_integer() else s for s in args.lengths]
    if args.worker:
        run_worker(Path(args.workdir), lengths, args.repeats)
        return 0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_speechtokenizer_") as tmp:
        workdir = Path(tmp)
        reference = run_reference(workdir, lengths, args.repeats, args.size, args.batch)
        ours = {b: _run_backend(b, workdir, lengths, args.repeats) for b in args.backends}
    print(f"\nSize {args.size}, CPU threads: {os.cpu_count()}, batch {args.batch}, median of "
          f"{args.repeats} runs after a warm-up; decode times decode the reference's codes. "
          "1-minute load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (other processes on the "
          "machine skew timings).\n")
    print(format_table(reference, ours, lengths, args.batch))
    conversions = ", ".join(f"{b} {r['convert_s']:.1f} s" for b, r in ours.items() if r)
    print(f"\nCheckpoint conversion (build + load): {conversions}")
    return 0 if all(ours.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
