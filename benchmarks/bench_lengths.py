"""Clips of distinct lengths vs equal lengths: time, compilations and code agreement.

A real corpus has a different length for every file. This benchmark encodes (and decodes)
``--clips`` clips of distinct lengths drawn uniformly from ``--min-seconds`` to
``--max-seconds`` and, for comparison, the same number of clips that all have the mean
length (the same total audio), with the shipped ``dmcodec_small`` (or ``--model``), on each
Keras backend in its own fresh process (so compilation is counted, as a user meets it):

- ``one by one``: ``model.encode(clip[None])`` then ``model.decode`` per clip (the CLI's and
  evaluate's path);
- ``batched``: ``inference.encode_batch`` / ``decode_batch`` with ``--batch`` clips per call
  (padded batches with lengths: tokenize-corpus's path).

Each row gives the first pass (cold: includes every compilation) and a second pass (warm),
and the ratio distinct / equal; the target is <= 1.3x. ``agree`` is the share of frames
whose codes in the batched run equal the clip's codes encoded alone. Prints one Markdown
table.

With ``--commands``, the same clips are written as WAV files (one folder of equal, one of
distinct lengths) and timed through the commands a user runs, each a fresh process:
``dmcodec encode FOLDER`` (one file at a time) and ``dmcodec tokenize-corpus FOLDER``
(``--workers 1``, batch 1 and ``--batch``). "cold" starts with an empty JAX compilation
cache, "warm" is the same command again (the CLI keeps JAX's compiled programs on disk;
TensorFlow and torch have nothing to keep). Times are end to end: interpreter, imports,
model load, Ray start-up for tokenize-corpus.

    python benchmarks/bench_lengths.py --backends tensorflow jax torch
    python benchmarks/bench_lengths.py --commands --backends tensorflow jax torch
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
sys.path.insert(0, str(ROOT / "benchmarks"))


def _log(message):
    print(message, file=sys.stderr, flush=True)


def make_clips(n, low, high, equal, sample_rate=16000, seed=0):
    from bench_speechtokenizer import speech_like

    rng = np.random.default_rng(seed)
    seconds = rng.uniform(low, high, size=n)
    if equal:
        seconds = np.full(n, seconds.mean())
    return [speech_like(s, seed=i, sample_rate=sample_rate).astype("float32")
            for i, s in enumerate(seconds)]


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_worker(args, out):
    import keras

    from keras_dmcodec import inference
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(args.model).model
    results = {}
    for kind in ("equal", "distinct"):
        clips = make_clips(args.clips, args.min_seconds, args.max_seconds, kind == "equal",
                           model.sample_rate)

        def one_by_one(clips=clips):
            codes = [model.encode(clip[None])[0] for clip in clips]
            audio = [model.decode(c[None])[0] for c in codes]
            return codes, audio

        def batched(clips=clips):
            codes = inference.encode_batch(model, clips, max_batch=args.batch)
            audio = inference.decode_batch(model, codes, max_batch=args.batch)
            return codes, audio

        for name, fn in (("one by one", one_by_one), ("batched", batched)):
            model.clear_compiled_cache()
            cold, (codes, _) = _timed(fn)
            warm, _ = _timed(fn)
            results[f"{kind}/{name}"] = dict(cold=cold, warm=warm, codes=codes)
            _log(f"{keras.backend.backend()} {kind} {name}: cold {cold:.1f} s, warm {warm:.1f} s")
    agree = {}
    for kind in ("equal", "distinct"):
        alone = results[f"{kind}/one by one"]["codes"]
        batch = results[f"{kind}/batched"]["codes"]
        same = sum(int(np.sum(np.all(a == b, axis=0))) for a, b in zip(alone, batch, strict=True))
        agree[kind] = same / sum(a.shape[1] for a in alone)
    summary = {key: {k: v for k, v in value.items() if k != "codes"}
               for key, value in results.items()}
    summary["agree"] = agree
    summary["audio_seconds"] = sum(len(c) for c in make_clips(
        args.clips, args.min_seconds, args.max_seconds, False)) / model.sample_rate
    Path(out).write_text(json.dumps(summary))


def write_clips(folder, clips, sample_rate=16000):
    import soundfile as sf

    folder.mkdir(parents=True)
    for i, clip in enumerate(clips):
        sf.write(folder / f"clip{i:03d}.wav", clip, sample_rate, subtype="FLOAT")


def run_commands(args):
    """Times ``dmcodec encode`` and ``dmcodec tokenize-corpus`` per backend; prints a table."""
    dmcodec = str(Path(sys.executable).with_name("dmcodec"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind in ("equal", "distinct"):
            write_clips(tmp / kind, make_clips(args.clips, args.min_seconds, args.max_seconds,
                                               kind == "equal"))
        commands = {
            "encode": lambda src, out: ["encode", str(src), "-o", str(out)],
            "tokenize-corpus, batch 1": lambda src, out: [
                "tokenize-corpus", str(src), "-o", str(out), "--workers", "1"],
            f"tokenize-corpus, batch {args.batch}": lambda src, out: [
                "tokenize-corpus", str(src), "-o", str(out), "--workers", "1",
                "--batch-size", str(args.batch)],
        }
        for backend in args.backends:
            for name, build in commands.items():
                times = {}
                for kind in ("equal", "distinct"):
                    cache = tmp / f"jax_cache_{backend}_{len(rows)}_{kind}"
                    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                               JAX_COMPILATION_CACHE_DIR=str(cache))
                    env.pop("RAY_ADDRESS", None)
                    for run in ("cold", "warm"):
                        out = tmp / f"out_{backend}_{len(rows)}_{kind}_{run}"
                        command = [dmcodec, "--backend", backend, *build(tmp / kind, out),
                                   "--model", args.model]
                        seconds, proc = _timed(lambda c=command, e=env: subprocess.run(
                            c, env=e, capture_output=True, text=True))
                        if proc.returncode:
                            _log(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
                            return 1
                        times[f"{kind}/{run}"] = seconds
                        _log(f"{backend} {name} {kind} {run}: {seconds:.1f} s")
                rows.append((backend, name, times))
    audio = sum(len(c) for c in make_clips(args.clips, args.min_seconds, args.max_seconds,
                                           False)) / 16000
    print(f"\n{args.clips} clips, {args.min_seconds:g}-{args.max_seconds:g} s ({audio:.0f} s of "
          f"audio), model {args.model}, encode only, seconds end to end per command (cold: "
          "empty JAX compilation cache; warm: the same command again)\n")
    print("| backend | command | equal cold | distinct cold | ratio | equal warm | distinct warm "
          "| ratio | x real time (distinct, warm) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, name, t in rows:
        print(f"| {backend} | {name} | {t['equal/cold']:.1f} | {t['distinct/cold']:.1f} | "
              f"{t['distinct/cold'] / t['equal/cold']:.2f}x | {t['equal/warm']:.1f} | "
              f"{t['distinct/warm']:.1f} | {t['distinct/warm'] / t['equal/warm']:.2f}x | "
              f"{audio / t['distinct/warm']:.0f}x |")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--model", default="dmcodec_small")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--commands", action="store_true",
                        help="time `dmcodec encode` and `dmcodec tokenize-corpus` instead of "
                        "the Python API")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args, args.worker)
        return 0
    if args.commands:
        return run_commands(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            out = Path(tmp) / f"{backend}.json"
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            command = [sys.executable, __file__, "--worker", str(out), "--model", args.model,
                       "--clips", str(args.clips), "--min-seconds", str(args.min_seconds),
                       "--max-seconds", str(args.max_seconds), "--batch", str(args.batch)]
            proc = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True)
            for line in proc.stderr.splitlines():
                if line.startswith(backend):
                    _log(line)
            if proc.returncode:
                _log(f"{backend} failed:\n{proc.stderr[-3000:]}")
                continue
            rows.append((backend, json.loads(out.read_text())))
    print(f"\n{args.clips} clips, {args.min_seconds:g}-{args.max_seconds:g} s, model "
          f"{args.model}, encode + decode, seconds (cold: first pass incl. compilation; "
          "warm: second pass)\n")
    print("| backend | path | equal cold | distinct cold | ratio | equal warm | distinct warm "
          "| ratio | batched codes = alone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, r in rows:
        for path in ("one by one", "batched"):
            eq, di = r[f"equal/{path}"], r[f"distinct/{path}"]
            agree = r["agree"]["distinct"] if path == "batched" else None
            print(f"| {backend} | {path} | {eq['cold']:.1f} | {di['cold']:.1f} | "
                  f"{di['cold'] / eq['cold']:.2f}x | {eq['warm']:.1f} | {di['warm']:.1f} | "
                  f"{di['warm'] / eq['warm']:.2f}x | "
                  f"{'' if agree is None else f'{100 * agree:.2f} %'} |")
    if rows:
        print(f"\naudio: {rows[0][1]['audio_seconds']:.0f} s per pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
